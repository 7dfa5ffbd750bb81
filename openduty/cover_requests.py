"""Cover requests: a person asks the others of a schedule's rotations to take part of their shift.

Asking checks the range is the asker's own on-call time (all of it, in the final schedule) and
still ahead, and notifies the other active participants of the schedule's rotation layers (or of
the one layer chosen) with a "cover" notice: the same path as shift reminders (shift_notices.send_notice,
their chosen channel), carrying a link to the request's page. The first to accept gets an
override for the range (overrides.add_override) and the asker is told who. Every change of status
is a conditional UPDATE (`status = 'open'`), so two acceptors (or an accept and a cancel, or the
expiry) cannot both win. An open request expires at its start (a durable timer, EXPIRE_KIND).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from openduty import clock, oncall, overrides, shift_notices, timers
from openduty import validation as v
from openduty.errors import ApiError, ValidationError
from openduty.extensions import db
from openduty.models import CoverRequest, LayerParticipant, Schedule, ScheduleLayer, User
from openduty.models.cover_request import NOTE_MAX_LENGTH

EXPIRE_KIND = "cover_expire"
FIELDS = ("start", "end", "note", "layer_id")
# The schedule page lists the open requests and this many of the others (newest first).
CLOSED_SHOWN = 10
TAKEN = "Someone else already accepted this cover request."
NOT_OPEN = {
    "accepted": TAKEN,
    "cancelled": "This cover request was cancelled.",
    "expired": "This cover request expired: its start has passed.",
}


def clean_request(body: Mapping[str, Any], schedule: Schedule, requester: User, *, local_input: bool = False):
    """start, end (ISO 8601 with offset; from forms, wall-clock in the schedule's zone), note, layer_id:
    a part of the requester's own on-call time in this schedule, still ahead (ValidationError per field)."""
    zone = schedule.time_zone if local_input else None
    clean = v.collect(
        {
            "start": lambda: v.aware_datetime(body.get("start"), label="Start", local_zone=zone),
            "end": lambda: v.aware_datetime(body.get("end"), label="End", local_zone=zone),
            "note": lambda: v.text(body.get("note"), max_length=NOTE_MAX_LENGTH, required=False, label="Note"),
            "layer_id": lambda: _layer_of(schedule, body.get("layer_id")),
        }
    )
    if clean["end"] <= clean["start"]:
        raise ValidationError({"end": "End must be after start."})
    if clean["start"] <= clock.now():
        raise ValidationError({"start": "Start must be in the future: ask for cover for time still ahead."})
    if not oncall.on_call_throughout(schedule, requester.id, clean["start"], clean["end"]):
        mine = f"You are not on call for all of this time in {schedule.name}"
        raise ValidationError({"start": mine + ": pick a part of one of your shifts."})
    return clean


def _layer_of(schedule: Schedule, value: Any) -> int | None:
    if value in (None, ""):
        return None
    layer = db.session.get(ScheduleLayer, v.object_id(value, label="Layer"))
    if layer is None or layer.schedule_id != schedule.id or layer.kind != "rotation":
        raise v.FieldError(f"Choose one of the rotation layers of {schedule.name} (or none: all of them).")
    return layer.id


def participants(schedule_id: int, layer_id: int | None = None) -> list[User]:
    """The active people of the schedule's rotation layers (or of one layer), by name."""
    layers = select(ScheduleLayer.id).where(ScheduleLayer.schedule_id == schedule_id)
    if layer_id is not None:
        layers = layers.where(ScheduleLayer.id == layer_id)
    ids = select(LayerParticipant.user_id).where(LayerParticipant.layer_id.in_(layers))
    return list(db.session.scalars(select(User).where(User.id.in_(ids), User.active.is_(True)).order_by(User.name)))


def ask(schedule: Schedule, requester: User, clean: Mapping[str, Any]) -> tuple[CoverRequest, int]:
    """Store the request, arm its expiry and notify the others; returns it and how many were notified."""
    request = CoverRequest(
        schedule_id=schedule.id, layer_id=clean.get("layer_id"), requester_id=requester.id, start=clean["start"],
        end=clean["end"], note=clean.get("note") or "", status="open", created_at=clock.now(),
    )  # fmt: skip
    db.session.add(request)
    db.session.flush()
    timers.set_timer(EXPIRE_KIND, request.id, request.start)
    others = [u for u in participants(schedule.id, request.layer_id) if u.id != requester.id]
    for user in others:
        _notify(user, request, *_ask_text(user, request, schedule, requester))
    return request, len(others)


def may_accept(user: User, request: CoverRequest, eligible: set[int] | None = None) -> bool:
    """The other people of the request's rotations, and the team's managers (admins); not observers."""
    if user.id == request.requester_id or not user.active or (user.observer and not user.is_admin):
        return False
    if user.manages(request.schedule.team_id):
        return True
    ids = eligible if eligible is not None else {u.id for u in participants(request.schedule_id, request.layer_id)}
    return user.id in ids


def may_cancel(user: User, request: CoverRequest) -> bool:
    return user.id == request.requester_id or user.manages(request.schedule.team_id)


def accept(request: CoverRequest, user: User):
    """Give `user` the override for the request's range if it is still open (ApiError 403 / 409 if not)."""
    if not may_accept(user, request):
        raise ApiError(403, "Only the other people of this schedule's rotations (or its team's managers) can accept.")
    if request.status == "open" and request.start <= clock.now():
        _close(request, "expired")
    if not _close(request, "accepted", accepted_by_id=user.id):
        raise ApiError(409, NOT_OPEN.get(_status_now(request), TAKEN))
    schedule = request.schedule
    note = f"Covers for {request.requester.name} (cover request #{request.id})"
    override = overrides.add_override(
        schedule, {"user_id": user.id, "start": request.start, "end": request.end, "note": note}, user
    )
    request.override_id = override.id
    timers.set_timer(EXPIRE_KIND, request.id, None)
    _notify(request.requester, request, *_accepted_text(request.requester, request, schedule, user))
    db.session.flush()
    return override


def cancel(request: CoverRequest, user: User) -> None:
    if not may_cancel(user, request):
        raise ApiError(403, "Only whoever asked (or the schedule team's managers) can cancel a cover request.")
    if not _close(request, "cancelled"):
        raise ApiError(409, NOT_OPEN.get(_status_now(request), TAKEN))
    timers.set_timer(EXPIRE_KIND, request.id, None)


def expire(request_id: int, due: datetime) -> None:
    """The expiry timer (openduty.jobs.TIMER_HANDLERS): an open request whose start passed expires."""
    request = db.session.get(CoverRequest, request_id)
    if request is not None and request.status == "open" and request.start <= clock.now():
        _close(request, "expired")


def _close(request: CoverRequest, status: str, **values: Any) -> bool:
    """Move an open request to `status` with one conditional UPDATE; False if it was no longer open.
    The loaded object then takes the same values, so the audit log records the change."""
    moved = db.session.execute(
        update(CoverRequest)
        .where(CoverRequest.id == request.id, CoverRequest.status == "open")
        .values(status=status, **values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        return False
    request.status = status
    for key, value in values.items():
        setattr(request, key, value)
    db.session.flush()
    return True


def _status_now(request: CoverRequest) -> str:
    return db.session.scalar(select(CoverRequest.status).where(CoverRequest.id == request.id)) or "cancelled"


# --- The schedule page's list --------------------------------------------------------------------


@dataclass(frozen=True)
class CoverList:
    open: list[CoverRequest]
    closed: list[CoverRequest]  # accepted, cancelled, expired: the latest CLOSED_SHOWN
    may_accept: set[int]  # request ids the viewer may accept
    may_cancel: set[int]


def listing(schedule: Schedule, viewer: User) -> CoverList:
    """What the schedule page shows, loaded with its people (rendering queries nothing)."""
    query = select(CoverRequest).where(CoverRequest.schedule_id == schedule.id)
    query = query.options(joinedload(CoverRequest.requester), joinedload(CoverRequest.accepted_by))
    opened = db.session.scalars(query.where(CoverRequest.status == "open").order_by(CoverRequest.start)).all()
    closed = db.session.scalars(
        query.where(CoverRequest.status != "open").order_by(CoverRequest.created_at.desc()).limit(CLOSED_SHOWN)
    ).all()
    people: dict[int | None, set[int]] = {}
    for request in opened:
        if request.layer_id not in people:
            people[request.layer_id] = {u.id for u in participants(schedule.id, request.layer_id)}
    return CoverList(
        list(opened),
        list(closed),
        {r.id for r in opened if may_accept(viewer, r, people[r.layer_id])},
        {r.id for r in opened if may_cancel(viewer, r)},
    )


def request_json(request: CoverRequest) -> dict[str, Any]:
    def ref(user: User | None):
        return {"id": user.id, "name": user.name, "email": user.email} if user is not None else None

    return {
        "id": request.id, "schedule_id": request.schedule_id, "layer_id": request.layer_id,
        "requester": ref(request.requester), "start": _iso(request.start), "end": _iso(request.end),
        "note": request.note, "status": request.status, "accepted_by": ref(request.accepted_by),
        "override_id": request.override_id, "created_at": _iso(request.created_at),
    }  # fmt: skip


def _iso(at: datetime) -> str:
    return at.astimezone(ZoneInfo("UTC")).isoformat()


# --- What is said --------------------------------------------------------------------------------


def page_url(request: CoverRequest) -> str:
    """The request's page (its confirm-and-accept page)."""
    return f"{shift_notices.base_url()}/schedules/{request.schedule_id}/cover-requests/{request.id}/accept"


def _range(user: User, request: CoverRequest) -> str:
    tz = ZoneInfo(user.time_zone or "UTC")
    when = shift_notices.when
    return f"{when(request.start, tz)} to {when(request.end, tz)} ({user.time_zone or 'UTC'})"


def _ask_text(user: User, request: CoverRequest, schedule: Schedule, requester: User) -> tuple[str, str, str]:
    line = f"{requester.name} asks for cover on {schedule.name} from {_range(user, request)}."
    note = f"\nNote: {request.note}\n" if request.note else ""
    body = f"{line}\n{note}\nThe first to accept gets the shift: {page_url(request)}\n"
    return f"[Openduty] Cover request: {schedule.name}", body, f"Openduty: {line} Accept: {page_url(request)}"


def _accepted_text(user: User, request: CoverRequest, schedule: Schedule, by: User) -> tuple[str, str, str]:
    line = f"{by.name} covers your shift on {schedule.name} from {_range(user, request)}."
    body = f"{line}\n\nSchedule: {shift_notices.base_url()}/schedules/{schedule.id}\n"
    return f"[Openduty] Cover accepted: {by.name} covers {schedule.name}", body, f"Openduty: {line}"


def _notify(user: User, request: CoverRequest, subject: str, body: str, short: str) -> None:
    """A "cover" notice through the shift notices' path (the user's chosen channel, delivery)."""
    settings = shift_notices.settings_for(user)
    shift_notices.send_notice(user, settings, "cover", request.schedule_id, request.created_at, subject, body, short)
