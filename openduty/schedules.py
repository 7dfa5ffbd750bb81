"""Validating and applying changes to schedules and layers (shared by the API and the pages),
including the restriction windows' two spellings (JSON list and the form's text).

Every `clean_*` function either returns clean values or raises one `ValidationError` naming every
bad field; nothing is changed until all of them pass. Overrides have their own module (overrides.py).
"""

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select

from openduty import clock, ical, teams
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
    User,
)
from openduty.models.schedule import SHIFT_UNITS
from openduty.shifts import WEEKDAYS, minutes_of_day, wall_clock

MAX_SHIFT = {"hours": 24 * 366, "days": 366, "weeks": 104}
MAX_PARTICIPANTS = 200
MAX_RANGE = timedelta(days=400)  # the longest since..until a shift listing may ask for
# The fields each body may have (anything else is refused, so a typo never passes silently).
_NAME_TAKEN = "A schedule with this name already exists; pick another name."
SCHEDULE_FIELDS = ("name", "time_zone", "description", "team_id", "layers")
LAYER_FIELDS = (
    "name", "kind", "start", "shift_length", "shift_unit", "participants", "restrictions", "ical_url", "ical_data"
)  # fmt: skip


def layer_body_limit() -> int:
    """Bytes a layer create/edit request may carry: an uploaded calendar on top of MAX_CONTENT_LENGTH."""
    return ical.MAX_ICAL_BYTES + current_app.config["MAX_CONTENT_LENGTH"]


def clean_schedule(body: dict[str, Any], schedule: Schedule | None = None, actor: User | None = None) -> dict[str, Any]:
    """Name (unique), time zone and description; on PATCH (`schedule` given) every field is optional."""
    checks = {}
    if schedule is None or "name" in body:
        checks["name"] = lambda: v.unique_name(
            body.get("name"), Schedule, schedule, "A schedule with this name already exists; pick another name."
        )
    if schedule is None or "time_zone" in body:
        checks["time_zone"] = lambda: v.time_zone(body.get("time_zone", "UTC"))
    if "description" in body:
        checks["description"] = lambda: v.text(body.get("description"), max_length=2000, required=False)
    return v.collect({**checks, **teams.owner_check(body, actor, schedule)})


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
        raise v.FieldError("Start is required: the first handoff in the schedule's time zone, e.g. 2026-01-05 09:00.")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise v.FieldError("Start is not a date and time: write the first handoff as e.g. 2026-01-05 09:00.") from exc
    v.in_year_range(parsed, "Start")
    if parsed.tzinfo is not None:
        parsed = wall_clock(parsed, ZoneInfo(time_zone))
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
        return parse_restrictions(value)
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


def apply_layer(layer: ScheduleLayer, clean: dict, time_zone: str) -> ical.ImportResult | None:
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
            data = ical.fetch_ical(layer.ical_url)
        if data is None:
            data = layer.ical_data or ""
        return ical.import_ical(layer, data, ZoneInfo(time_zone))
    except ical.ICalImportError as exc:
        raise ValidationError({"ical_url" if layer.ical_url else "ical_data": str(exc)}) from exc


def replace_layers(schedule: Schedule, cleaned: list[dict]) -> list[ical.ImportResult]:
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


def clean_range(args: Mapping[str, str], now: datetime | None = None) -> tuple[datetime, datetime]:
    """`since` (default now) and `until` (default a week later) from query parameters, at most MAX_RANGE apart."""
    since = query_time(args, "since", now or clock.now())
    until = query_time(args, "until", since + timedelta(days=7))
    if until <= since:
        raise ValidationError({"until": "until must be after since."})
    if until - since > MAX_RANGE:
        raise ValidationError({"until": "Ask for at most 400 days at a time."})
    return since, until


def query_time(args: Mapping[str, str], name: str, default: datetime) -> datetime:
    """The aware time in query parameter `name`, or `default` when it is absent; raises naming `name`."""
    value = args.get(name)
    if value is None:
        return default
    try:
        return v.aware_datetime(value.replace(" ", "+"), label=name)  # a raw '+' in a query string is a space
    except v.FieldError as exc:
        raise ValidationError({name: str(exc)}) from exc


# --- Restrictions: weekday/time windows a rotation layer is kept to ---------------------------------


def parse_restrictions(value) -> list[dict]:
    """Validate restrictions: a list of {"days": [...], "start": "HH:MM", "end": "HH:MM"}.

    `end` at or before `start` crosses midnight ("22:00"-"06:00"); "00:00"-"24:00" is the whole
    day. Returns the normalised list; raises ValueError with a message saying what to fix.
    """
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return parse_restrictions_text(value)
    if not isinstance(value, list):
        raise ValueError('Restrictions must be a list like [{"days": ["mon"], "start": "09:00", "end": "17:00"}].')
    clean = []
    for i, item in enumerate(value, 1):
        if not isinstance(item, dict):
            raise ValueError(f"Restriction {i} must be an object with days, start and end.")
        days = item.get("days", list(WEEKDAYS))
        if isinstance(days, str):
            days = [days]
        if not isinstance(days, list) or not days:
            raise ValueError(f"Restriction {i}: days must be a non-empty list of mon..sun.")
        norm_days = []
        for day in days:
            key = str(day).strip().lower()[:3]
            if key not in WEEKDAYS:
                raise ValueError(f"Restriction {i}: unknown day {day!r}; use mon, tue, wed, thu, fri, sat, sun.")
            if key not in norm_days:
                norm_days.append(key)
        start = minutes_of_day(item.get("start", "00:00"), f"Restriction {i}: start")
        end = minutes_of_day(item.get("end", "24:00"), f"Restriction {i}: end")
        if start == 1440:
            raise ValueError(f"Restriction {i}: start must be before 24:00.")
        norm_days.sort(key=WEEKDAYS.index)
        clean.append({"days": norm_days, "start": _fmt_minutes(start), "end": _fmt_minutes(end)})
    return clean


_TEXT_LINE = re.compile(r"^\s*(?P<days>[a-z,\- ]+?)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$", re.I)


def parse_restrictions_text(text: str) -> list[dict]:
    """The form's format: one window per line, e.g. `mon-fri 09:00-17:00` or `sat,sun 00:00-24:00`."""
    items = []
    for n, line in enumerate(text.replace(";", "\n").splitlines(), 1):
        if not line.strip():
            continue
        match = _TEXT_LINE.match(line)
        if not match:
            raise ValueError(f"Line {n} ({line.strip()!r}): write days then times, e.g. 'mon-fri 09:00-17:00'.")
        days: list[str] = []
        for part in match["days"].replace(" ", "").lower().split(","):
            if "-" in part:
                first, _, last = part.partition("-")
                if first[:3] not in WEEKDAYS or last[:3] not in WEEKDAYS:
                    raise ValueError(f"Line {n}: unknown day range {part!r}; use e.g. mon-fri.")
                a, b = WEEKDAYS.index(first[:3]), WEEKDAYS.index(last[:3])
                days.extend(WEEKDAYS[(a + i) % 7] for i in range((b - a) % 7 + 1))
            else:
                days.append(part)
        items.append({"days": days, "start": match["start"], "end": match["end"]})
    return parse_restrictions(items) if items else []


def restrictions_text(restrictions: list[dict]) -> str:
    """Restrictions in the form's text format (the inverse of `parse_restrictions_text`)."""
    return "\n".join(f"{','.join(r['days'])} {r['start']}-{r['end']}" for r in restrictions or [])


def _fmt_minutes(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
