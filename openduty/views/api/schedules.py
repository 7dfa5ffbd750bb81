"""Schedules API: schedules, their layers and overrides, who is on call, shifts.

Everyone can read; admins manage schedules and layers; anyone can take a shift (an override for
themselves) or have someone cover their own shift.
"""

from typing import Any

from flask import request, url_for
from sqlalchemy import select

from openduty import clock, ical, oncall, overrides, schedules
from openduty.errors import ApiError
from openduty.extensions import db
from openduty.limits import allow_body_bytes
from openduty.models import Schedule, ScheduleLayer, ScheduleOverride, User
from openduty.views.api import api_user, bp, created, get_or_404, iso, json_body
from openduty.views.api.users import user_ref


def shift_json(shift: oncall.Shift, users: dict[int, User]) -> dict[str, Any]:
    return {
        "start": iso(shift.start),
        "end": iso(shift.end),
        "users": [user_ref(users[u]) for u in shift.user_ids if u in users],
        "source": shift.source,
        "layer_id": shift.layer_id,
        "override_id": shift.override_id,
    }


def layer_json(layer: ScheduleLayer, schedule: Schedule) -> dict[str, Any]:
    body: dict[str, Any] = {"id": layer.id, "position": layer.position, "name": layer.name, "kind": layer.kind}
    if layer.kind == "rotation":
        body.update(
            start=layer.start.isoformat() if layer.start else None,
            shift_length=layer.shift_length,
            shift_unit=layer.shift_unit,
            participants=[p.user_id for p in layer.participants],
            restrictions=layer.restrictions or [],
            rrules=oncall.layer_rrules(layer, schedule),
        )
    else:
        body.update(
            ical_url=layer.shown_ical_url(api_user()),
            ical_refreshed_at=iso(layer.ical_refreshed_at),
            ical_error=layer.shown_ical_error(api_user()),
            ical_unmatched=layer.ical_unmatched or [],
            events=len(layer.events),
        )
    return body


def override_json(override: ScheduleOverride, overlap: str | None = None) -> dict[str, Any]:
    body = {
        "id": override.id,
        "schedule_id": override.schedule_id,
        "user": user_ref(override.user),
        "start": iso(override.start),
        "end": iso(override.end),
        "note": override.note,
        "created_by_id": override.created_by_id,
        "created_at": iso(override.created_at),
    }
    if overlap is not None:
        body["overlap"] = overlap
    return body


def schedule_json(schedule: Schedule) -> dict[str, Any]:
    now = clock.now()
    warning = oncall.gap_warnings(schedule)
    return {
        "id": schedule.id,
        "name": schedule.name,
        "time_zone": schedule.time_zone,
        "description": schedule.description,
        "team_id": schedule.team_id,
        "layers": [layer_json(layer, schedule) for layer in schedule.layers],
        "on_call_now": [user_ref(u) for u in oncall.who_is_on_call(schedule, now)],
        "gap_warning": warning.message if warning else None,
        "ical_url": ical.schedule_ical_url(schedule, api_user()),
    }


def _schedule(schedule_id: int) -> Schedule:
    return get_or_404(Schedule, schedule_id, "schedule")


@bp.get("/schedules")
def list_schedules():
    found = db.session.scalars(select(Schedule).order_by(Schedule.name)).all()
    return {"schedules": [schedule_json(s) for s in found]}


@bp.post("/schedules")
def create_schedule():
    body = json_body(schedules.SCHEDULE_FIELDS)
    clean = schedules.clean_schedule(body, actor=api_user())
    layers = schedules.clean_layers(body.get("layers", []), clean["time_zone"])
    schedule = Schedule(**clean)
    db.session.add(schedule)
    schedules.replace_layers(schedule, layers)
    db.session.commit()
    return created(schedule_json(schedule), url_for("api.get_schedule", schedule_id=schedule.id))


@bp.get("/schedules/<int:schedule_id>")
def get_schedule(schedule_id: int):
    return schedule_json(_schedule(schedule_id))


@bp.patch("/schedules/<int:schedule_id>")
def update_schedule(schedule_id: int):
    schedule = _schedule(schedule_id)
    body = json_body(schedules.SCHEDULE_FIELDS)
    clean = schedules.clean_schedule(body, schedule, actor=api_user())
    zone = clean.get("time_zone", schedule.time_zone)
    layers = schedules.clean_layers(body["layers"], zone) if "layers" in body else None
    for key, value in clean.items():
        setattr(schedule, key, value)
    if layers is not None:
        schedules.replace_layers(schedule, layers)
    db.session.commit()
    return schedule_json(schedule)


@bp.delete("/schedules/<int:schedule_id>")
def delete_schedule(schedule_id: int):
    schedules.delete_schedule(_schedule(schedule_id))
    db.session.commit()
    return "", 204


@bp.get("/schedules/<int:schedule_id>/layers")
def list_layers(schedule_id: int):
    schedule = _schedule(schedule_id)
    return {"layers": [layer_json(layer, schedule) for layer in schedule.layers]}


@bp.post("/schedules/<int:schedule_id>/layers")
@allow_body_bytes(schedules.layer_body_limit)
def create_layer(schedule_id: int):
    """Add a layer on top (it wins over the existing ones where it has someone)."""
    schedule = _schedule(schedule_id)
    clean = schedules.clean_layer(
        json_body(schedules.LAYER_FIELDS), schedule.time_zone, default_name=f"Layer {len(schedule.layers) + 1}"
    )
    layer = ScheduleLayer(position=len(schedule.layers))
    result = schedules.apply_layer(layer, clean, schedule.time_zone)
    schedule.layers.append(layer)
    db.session.commit()
    body = layer_json(layer, schedule)
    if result is not None:
        body["imported"] = {"events": len(result.events), "unmatched": result.unmatched}
    return created(body, url_for("api.get_layer", schedule_id=schedule.id, layer_id=layer.id))


def _layer(schedule: Schedule, layer_id: int) -> ScheduleLayer:
    layer = db.session.get(ScheduleLayer, layer_id)
    if layer is None or layer.schedule_id != schedule.id:
        raise ApiError(404, f"Schedule {schedule.id} has no layer with id {layer_id}.")
    return layer


@bp.get("/schedules/<int:schedule_id>/layers/<int:layer_id>")
def get_layer(schedule_id: int, layer_id: int):
    schedule = _schedule(schedule_id)
    return layer_json(_layer(schedule, layer_id), schedule)


@bp.patch("/schedules/<int:schedule_id>/layers/<int:layer_id>")
@allow_body_bytes(schedules.layer_body_limit)
def update_layer(schedule_id: int, layer_id: int):
    schedule = _schedule(schedule_id)
    layer = _layer(schedule, layer_id)
    body = json_body((*schedules.LAYER_FIELDS, "position"))
    position = schedules.clean_position(body["position"], schedule) if "position" in body else None
    fields = {k: val for k, val in body.items() if k != "position"}
    result = None
    if fields:
        clean = schedules.clean_layer(fields, schedule.time_zone, layer=layer)
        result = schedules.apply_layer(layer, clean, schedule.time_zone)
    if position is not None:
        schedules.move_layer(schedule, layer, position)
    db.session.commit()
    db.session.refresh(schedule)
    body = layer_json(layer, schedule)
    if result is not None:
        body["imported"] = {"events": len(result.events), "unmatched": result.unmatched}
    return body


@bp.delete("/schedules/<int:schedule_id>/layers/<int:layer_id>")
def delete_layer(schedule_id: int, layer_id: int):
    schedule = _schedule(schedule_id)
    schedules.remove_layer(schedule, _layer(schedule, layer_id))
    db.session.commit()
    return "", 204


@bp.get("/schedules/<int:schedule_id>/overrides")
def list_overrides(schedule_id: int):
    schedule = _schedule(schedule_id)
    since, until = schedules.clean_range(request.args)
    found = db.session.scalars(
        select(ScheduleOverride)
        .where(
            ScheduleOverride.schedule_id == schedule.id,
            ScheduleOverride.end > since,
            ScheduleOverride.start < until,
        )
        .order_by(ScheduleOverride.start, ScheduleOverride.id)
    ).all()
    return {"overrides": [override_json(o) for o in found]}


@bp.post("/schedules/<int:schedule_id>/overrides")
def create_override(schedule_id: int):
    """Put a user on call for a range, beating every layer; where overrides overlap the later-created wins."""
    schedule = _schedule(schedule_id)
    clean = overrides.clean_override(json_body(overrides.OVERRIDE_FIELDS), schedule)
    caller = api_user()
    if not overrides.can_add_override(caller, schedule, clean["user_id"], clean["start"], clean["end"]):
        raise ApiError(403, overrides.OVERRIDE_FORBIDDEN)
    override = overrides.add_override(schedule, clean, caller)
    overlap = overrides.overlap_note(override)
    db.session.commit()
    location = url_for("api.get_override", schedule_id=schedule.id, override_id=override.id)
    return created(override_json(override, overlap), location)


def _override(schedule_id: int, override_id: int) -> ScheduleOverride:
    schedule = _schedule(schedule_id)
    override = db.session.get(ScheduleOverride, override_id)
    if override is None or override.schedule_id != schedule.id:
        raise ApiError(404, f"Schedule {schedule.id} has no override with id {override_id}.")
    return override


@bp.get("/schedules/<int:schedule_id>/overrides/<int:override_id>")
def get_override(schedule_id: int, override_id: int):
    return override_json(_override(schedule_id, override_id))


@bp.delete("/schedules/<int:schedule_id>/overrides/<int:override_id>")
def delete_override(schedule_id: int, override_id: int):
    override = _override(schedule_id, override_id)
    if not overrides.can_delete_override(api_user(), override):
        raise ApiError(403, "Only admins, the override's user or its creator can delete it.")
    db.session.delete(override)
    db.session.commit()
    return "", 204


@bp.get("/schedules/<int:schedule_id>/oncall")
def schedule_oncall(schedule_id: int):
    """Who is on call at `at` (default now), with the start and end of that final shift (or gap)."""
    schedule = _schedule(schedule_id)
    at = schedules.query_time(request.args, "at", clock.now())
    shift = oncall.current_shift(schedule, at)
    users = oncall.users_by_id(shift.user_ids)
    return {
        "users": [user_ref(users[u]) for u in shift.user_ids if u in users],
        "start": iso(shift.start),
        "end": iso(shift.end),
        "source": shift.source,
    }


@bp.get("/schedules/<int:schedule_id>/shifts")
def schedule_shifts(schedule_id: int):
    """Final shifts overlapping [since, until) (whole shifts), and the gaps in that window."""
    schedule = _schedule(schedule_id)
    since, until = schedules.clean_range(request.args)
    timeline = oncall.timeline(schedule, since, until)
    users = oncall.users_by_id(u for s in timeline for u in s.user_ids)
    return {
        "since": iso(since),
        "until": iso(until),
        "shifts": [shift_json(s, users) for s in timeline if not s.is_gap],
        "gaps": [{"start": iso(max(s.start, since)), "end": iso(min(s.end, until))} for s in timeline if s.is_gap],
    }
