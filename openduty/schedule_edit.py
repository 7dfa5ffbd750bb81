"""Validating and applying changes to schedules, layers and overrides (shared by the API and pages).

Every `clean_*` function either returns clean values or raises one `ValidationError` naming every
bad field; nothing is changed until all of them pass.
"""

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select

from openduty import oncall
from openduty import validation as v
from openduty.errors import ApiError, ValidationError
from openduty.extensions import db
from openduty.models import (
    EscalationLevel,
    EscalationPolicy,
    EscalationTarget,
    LayerParticipant,
    Schedule,
    ScheduleLayer,
    ScheduleOverride,
    User,
)
from openduty.models.schedule import SHIFT_UNITS

MAX_SHIFT = {"hours": 24 * 366, "days": 366, "weeks": 104}
MAX_PARTICIPANTS = 200
MAX_OVERRIDE = timedelta(days=366)
# The fields each body may have (anything else is refused, so a typo never passes silently).
SCHEDULE_FIELDS = ("name", "time_zone", "description", "layers")
LAYER_FIELDS = (
    "name",
    "kind",
    "start",
    "shift_length",
    "shift_unit",
    "participants",
    "restrictions",
    "ical_url",
    "ical_data",
)
OVERRIDE_FIELDS = ("user_id", "start", "end", "note")


def layer_body_limit() -> int:
    """Bytes a layer create/edit request may carry: an uploaded calendar on top of MAX_CONTENT_LENGTH."""
    return oncall.MAX_ICAL_BYTES + current_app.config["MAX_CONTENT_LENGTH"]


def clean_schedule(body: dict[str, Any], schedule: Schedule | None = None) -> dict[str, Any]:
    """Name (unique), time zone and description; on PATCH (`schedule` given) every field is optional."""
    checks = {}
    if schedule is None or "name" in body:
        checks["name"] = lambda: _unique_name(body.get("name"), schedule)
    if schedule is None or "time_zone" in body:
        checks["time_zone"] = lambda: v.time_zone(body.get("time_zone", "UTC"))
    if "description" in body:
        checks["description"] = lambda: v.text(body.get("description"), max_length=2000, required=False)
    return v.collect(checks)


def _unique_name(value: Any, schedule: Schedule | None) -> str:
    name = v.text(value, max_length=200, label="Name")
    existing = db.session.scalar(select(Schedule).where(func.lower(Schedule.name) == func.lower(name)))
    if existing is not None and existing is not schedule:
        raise v.FieldError("A schedule with this name already exists; pick another name.")
    return name


def clean_layers(value: Any, time_zone: str) -> list[dict[str, Any]]:
    """A list of layer bodies, lowest first; errors are named `layers[i].field`."""
    if not isinstance(value, list):
        raise ValidationError({"layers": "Layers must be a list of layer objects."})
    cleaned, errors = [], {}
    for i, item in enumerate(value):
        try:
            cleaned.append(clean_layer(item, time_zone, default_name=f"Layer {i + 1}"))
        except ValidationError as exc:
            errors.update({f"layers[{i}].{name}": message for name, message in exc.fields.items()})
    if errors:
        raise ValidationError(errors)
    return cleaned


def clean_layer(body: Any, time_zone: str, default_name: str = "Layer", layer: ScheduleLayer | None = None) -> dict:
    """One layer: a rotation (start, shift length and unit, participants, restrictions) or an iCal source.

    With `layer` (PATCH), missing fields keep the layer's values.
    """
    if not isinstance(body, dict):
        raise ValidationError({"layer": "Each layer must be an object."})
    current = _layer_values(layer) if layer is not None else {}
    merged = {**current, **body}
    is_ical = merged.get("kind") == "ical" or "ical_url" in body or "ical_data" in body
    if layer is not None and layer.kind == "ical":
        is_ical = True
    checks: dict[str, Any] = {"name": lambda: v.text(merged.get("name") or default_name, max_length=200, label="Name")}
    if is_ical:
        checks["source"] = lambda: _ical_source(body, layer)
        clean = v.collect(checks)
        return {"kind": "ical", "name": clean["name"], **clean["source"]}
    checks.update(
        {
            "start": lambda: _local_start(merged.get("start"), time_zone),
            "shift_length": lambda: v.integer(merged.get("shift_length", 1), minimum=1, label="Shift length"),
            "shift_unit": lambda: _shift_unit(merged.get("shift_unit", "weeks")),
            "participants": lambda: _participants(merged.get("participants")),
            "restrictions": lambda: _restrictions(merged.get("restrictions")),
        }
    )
    clean = v.collect(checks)
    limit = MAX_SHIFT[clean["shift_unit"]]
    if clean["shift_length"] > limit:
        raise ValidationError({"shift_length": f"Shift length must be at most {limit} {clean['shift_unit']}."})
    clean["kind"] = "rotation"
    return clean


def _layer_values(layer: ScheduleLayer) -> dict:
    return {
        "name": layer.name,
        "kind": layer.kind,
        "start": layer.start.isoformat() if layer.start else None,
        "shift_length": layer.shift_length,
        "shift_unit": layer.shift_unit,
        "participants": [p.user_id for p in layer.participants],
        "restrictions": layer.restrictions or [],
    }


def _local_start(value: Any, time_zone: str) -> datetime:
    """The first handoff as wall-clock time in the schedule's zone (an offset, if given, is converted)."""
    if not isinstance(value, str) or not value.strip():
        raise v.FieldError("Start is required: the first handoff in the schedule's time zone, e.g. 2026-01-05T09:00.")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise v.FieldError("Start is not an ISO 8601 date and time, e.g. 2026-01-05T09:00:00.") from exc
    v.in_year_range(parsed, "Start")
    if parsed.tzinfo is not None:
        parsed = oncall.wall_clock(parsed, ZoneInfo(time_zone))
    return parsed.replace(microsecond=0)


def _shift_unit(value: Any) -> str:
    if value not in SHIFT_UNITS:
        raise v.FieldError(f"Shift unit must be one of {', '.join(SHIFT_UNITS)}.")
    return value


def _participants(value: Any) -> list[int]:
    """User ids in rotation order; a user may appear more than once. Emails are accepted too."""
    if not isinstance(value, list) or not value:
        raise v.FieldError("A rotation needs at least one participant (a list of user ids, in order).")
    if len(value) > MAX_PARTICIPANTS:
        raise v.FieldError(f"At most {MAX_PARTICIPANTS} participants per layer.")
    ids = []
    for item in value:
        if isinstance(item, str) and "@" in item:
            user = User.by_email(item)
            if user is None:
                raise v.FieldError(f"No user with email {item}.")
            ids.append(user.id)
            continue
        try:
            ids.append(v.object_id(item, label="Each participant"))
        except v.FieldError as exc:
            raise v.FieldError("Participants must be user ids (or emails).") from exc
    known = set(db.session.scalars(select(User.id).where(User.id.in_(set(ids)))))
    unknown = [str(i) for i in dict.fromkeys(ids) if i not in known]
    if unknown:
        raise v.FieldError(f"No user with id {', '.join(unknown)}.")
    return ids


def _restrictions(value: Any) -> list[dict]:
    try:
        return oncall.parse_restrictions(value)
    except ValueError as exc:
        raise v.FieldError(str(exc)) from exc


def _ical_source(body: dict, layer: ScheduleLayer | None) -> dict:
    url, data = body.get("ical_url"), body.get("ical_data")
    if url and data:
        raise v.FieldError("Give either ical_url or ical_data, not both.")
    if url:
        return {"ical_url": v.url(url, schemes=("http", "https", "webcal"))}
    if data:
        if not isinstance(data, str):
            raise v.FieldError("ical_data must be the text of an .ics file.")
        return {"ical_url": None, "ical_data": data}
    if layer is not None:
        return {}
    raise v.FieldError("An iCal layer needs ical_url (a calendar URL) or ical_data (the .ics text).")


def apply_layer(layer: ScheduleLayer, clean: dict, time_zone: str) -> oncall.ImportResult | None:
    """Write clean values onto a layer; an iCal source is fetched/parsed now (raises ValidationError)."""
    layer.name = clean["name"]
    layer.kind = clean["kind"]
    if clean["kind"] == "rotation":
        layer.start = clean["start"]
        layer.shift_length = clean["shift_length"]
        layer.shift_unit = clean["shift_unit"]
        layer.restrictions = clean["restrictions"]
        layer.participants = [LayerParticipant(position=i, user_id=uid) for i, uid in enumerate(clean["participants"])]
        layer.ical_url = layer.ical_data = None
        layer.events = []
        return None
    if "ical_url" in clean:
        layer.ical_url = clean["ical_url"]
    data = clean.get("ical_data")
    try:
        if layer.ical_url and "ical_data" not in clean:
            data = oncall.fetch_ical(layer.ical_url)
        if data is None:
            data = layer.ical_data or ""
        return oncall.import_ical(layer, data, ZoneInfo(time_zone))
    except oncall.ICalImportError as exc:
        raise ValidationError({"ical_url" if layer.ical_url else "ical_data": str(exc)}) from exc


def replace_layers(schedule: Schedule, cleaned: list[dict]) -> list[oncall.ImportResult]:
    results = []
    schedule.layers = []
    db.session.flush()
    for position, clean in enumerate(cleaned):
        layer = ScheduleLayer(position=position)
        schedule.layers.append(layer)
        result = apply_layer(layer, clean, schedule.time_zone)
        if result is not None:
            results.append(result)
    return results


def clean_position(value: Any, schedule: Schedule) -> int:
    """A layer's new place: 0 is the bottom, the highest position wins; raises naming `position`."""
    try:
        return v.integer(value, minimum=0, maximum=max(len(schedule.layers) - 1, 0), label="Position")
    except v.FieldError as exc:
        raise ValidationError({"position": str(exc)}) from exc


def move_layer(schedule: Schedule, layer: ScheduleLayer, position: int) -> None:
    """Put `layer` at a clean `position` and renumber the others, keeping their order."""
    ordered = [x for x in schedule.layers if x is not layer]
    ordered.insert(position, layer)
    for i, x in enumerate(ordered):
        x.position = i


def remove_layer(schedule: Schedule, layer: ScheduleLayer) -> None:
    """Delete a layer; the ones above move down so positions stay 0..n-1."""
    schedule.layers.remove(layer)
    for i, x in enumerate(schedule.layers):
        x.position = i


def clean_override(body: dict[str, Any], schedule: Schedule, *, local_input: bool = False) -> dict[str, Any]:
    """user_id, start, end (ISO 8601 with offset; from forms, wall-clock in the schedule's zone), note."""
    zone = schedule.time_zone if local_input else None
    clean = v.collect(
        {
            "user_id": lambda: _existing_user(body.get("user_id")),
            "start": lambda: v.aware_datetime(body.get("start"), label="Start", local_zone=zone),
            "end": lambda: v.aware_datetime(body.get("end"), label="End", local_zone=zone),
            "note": lambda: v.text(body.get("note"), max_length=500, required=False, label="Note"),
        }
    )
    if clean["end"] <= clean["start"]:
        raise ValidationError({"end": "End must be after start."})
    if clean["end"] - clean["start"] > MAX_OVERRIDE:
        raise ValidationError({"end": "An override can last at most 366 days."})
    return clean


def _existing_user(value: Any) -> int:
    user_id = v.object_id(value, label="User")
    user = db.session.get(User, user_id)
    if user is None or not user.active:
        raise v.FieldError(f"No active user with id {user_id}.")
    return user_id


OVERRIDE_FORBIDDEN = (
    "You can take time for yourself, or hand over time in which you are on call (all of it, in this"
    " schedule's final shifts); anything else needs an admin."
)


def can_add_override(caller: User, schedule: Schedule, user_id: int, start: datetime, end: datetime) -> bool:
    """Who may put `user_id` on call for [start, end): the one rule for the pages and the API.

    Admins may add any override. Others may take time for themselves, or hand over time in which
    they are on call: the whole range must be their own on-call time in the final schedule (an hour
    on call does not let anyone give away a year).
    """
    if caller.is_admin or user_id == caller.id:
        return True
    return oncall.on_call_throughout(schedule, caller.id, start, end)


def can_delete_override(caller: User, override: ScheduleOverride) -> bool:
    return caller.is_admin or caller.id in (override.user_id, override.created_by_id)


def overlapping_overrides(override: ScheduleOverride) -> list[ScheduleOverride]:
    """Other overrides of the same schedule overlapping this one, oldest first."""
    return list(
        db.session.scalars(
            select(ScheduleOverride)
            .where(
                ScheduleOverride.schedule_id == override.schedule_id,
                ScheduleOverride.id != override.id,
                ScheduleOverride.start < override.end,
                ScheduleOverride.end > override.start,
            )
            .order_by(ScheduleOverride.id)
        )
    )


def overlap_message(override: ScheduleOverride, others: list[ScheduleOverride]) -> str | None:
    """What the UI and API say about overlaps: the later-created override wins where they overlap."""
    if not others:
        return None
    earlier = [o for o in others if o.id < override.id]
    later = [o for o in others if o.id > override.id]
    parts = []
    if earlier:
        names = ", ".join(f"#{o.id} ({o.user.name})" for o in earlier)
        parts.append(f"overlaps earlier override {names}: this one wins where they overlap (created later)")
    if later:
        names = ", ".join(f"#{o.id} ({o.user.name})" for o in later)
        parts.append(f"is beaten by later override {names} where they overlap")
    return f"Override #{override.id} " + "; ".join(parts) + "."


def add_override(schedule: Schedule, clean: dict, created_by: User) -> ScheduleOverride:
    override = ScheduleOverride(
        schedule=schedule,
        user_id=clean["user_id"],
        start=clean["start"],
        end=clean["end"],
        note=clean.get("note", ""),
        created_by_id=created_by.id,
    )
    db.session.add(override)
    db.session.flush()
    return override


def policies_using(schedule: Schedule) -> list[EscalationPolicy]:
    """Escalation policies with a level that targets this schedule."""
    return list(
        db.session.scalars(
            select(EscalationPolicy)
            .join(EscalationLevel)
            .join(EscalationTarget)
            .where(EscalationTarget.schedule_id == schedule.id)
            .distinct()
            .order_by(EscalationPolicy.name)
        )
    )


def delete_schedule(schedule: Schedule) -> None:
    """Delete a schedule unless a policy still pages through it (that would silently empty a level)."""
    using = policies_using(schedule)
    if using:
        names = ", ".join(p.name for p in using)
        raise ApiError(409, f"Escalation policies {names} target this schedule; remove it from them first.")
    db.session.delete(schedule)
