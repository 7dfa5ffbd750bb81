"""Applying a configuration document, the parts with an order: schedules (layers, overrides),
escalation policies (levels), integrations and event rules; and how changes are noted.
openduty.config_import runs them in the right order, inside one transaction.
"""

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import inspect, select
from sqlalchemy.orm import selectinload

from openduty import event_rule_edit, heartbeats, ical, inbound_email, schedules, services, timers, validation
from openduty.config_check import ConfigError
from openduty.extensions import db
from openduty.models import (
    EscalationLevel,
    EscalationPolicy,
    EscalationTarget,
    EventRule,
    Integration,
    Schedule,
    ScheduleLayer,
    ScheduleOverride,
    Service,
    Team,
    User,
)

# What an import reads with each kind of object: the parts it compares with the document.
LOADED = {
    User: (selectinload(User.contact_methods), selectinload(User.notification_rules), selectinload(User.api_tokens)),
    Team: (selectinload(Team.members),),
    Schedule: (
        selectinload(Schedule.layers).selectinload(ScheduleLayer.participants),
        selectinload(Schedule.overrides),
    ),
    EscalationPolicy: (selectinload(EscalationPolicy.levels).selectinload(EscalationLevel.targets),),
    Service: (
        selectinload(Service.integrations).selectinload(Integration.heartbeat),
        selectinload(Service.integrations).selectinload(Integration.email_settings),
    ),
}
# A value shown in a change line is cut to this many characters.
SHOWN = 60


def short(value: Any) -> str:
    text = repr(value.isoformat() if isinstance(value, datetime) else value)
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


def wall_clock(value: str) -> datetime:
    """A rotation's first handoff as stored: naive wall-clock time in the schedule's zone."""
    return datetime.fromisoformat(value).replace(microsecond=0)


class Parts:
    """The changes noted so far, and the parts of an import that build on users and teams."""

    with_secrets: bool

    def __init__(self) -> None:
        self.changes: list[str] = []
        self.notes: list[str] = []
        self.touched_schedules: set[int] = set()
        self.loaded: dict[type, dict[str, Any]] = {}

    # --- Noting changes ------------------------------------------------------------------------

    def created(self, label: str) -> None:
        self.changes.append(f"create {label}")

    def changed(self, label: str) -> None:
        self.changes.append(f"change {label}")

    def removed(self, label: str) -> None:
        self.changes.append(f"remove {label}")

    def update(self, obj, label: str, values: dict[str, Any], secret: bool = False) -> bool:
        """Set each value that differs; a stored object's changes are noted field by field."""
        stored = inspect(obj).persistent
        changed = False
        for name, value in values.items():
            old = getattr(obj, name)
            if old == value:
                continue
            if stored:
                shown = "(secret)" if secret else f"{short(old)} -> {short(value)}"
                self.changed(f"{label}: {name} {shown}")
            setattr(obj, name, value)
            changed = True
        return changed

    # --- Lookups by name (the document was checked: every name resolves) -----------------------

    def named(self, model, name: str):
        """The object of `model` with this name (any case), or None. Each table is read once, with
        the parts an import compares (a query per name would flush the session each time)."""
        if model not in self.loaded:
            query = select(model).options(*LOADED.get(model, ()))
            self.loaded[model] = {obj.name.lower(): obj for obj in db.session.scalars(query)}
        return self.loaded[model].get(name.strip().lower())

    def remember(self, obj) -> None:
        """A new object, found by name from now on."""
        self.named(type(obj), obj.name)
        self.loaded[type(obj)][obj.name.lower()] = obj

    def user_named(self, email: str) -> User | None:
        if User not in self.loaded:
            query = select(User).options(*LOADED[User])
            self.loaded[User] = {user.email.lower(): user for user in db.session.scalars(query)}
        return self.loaded[User].get(email.strip().lower())

    def named_or_new(self, model, what: str, data: dict, fields: tuple[str, ...]):
        """(the object named data["name"], made if there is none; its label) with `fields` and its
        owning team (`team`) updated from `data` where `data` has them."""
        found = self.named(model, data["name"])
        label = f"{what} {data['name']}"
        if found is None:
            found = model(name=data["name"].strip(), **({"time_zone": "UTC"} if model is Schedule else {}))
            db.session.add(found)
            self.remember(found)
            self.created(label)
        values = {name: data[name] for name in fields if name in data}
        if "team" in data:
            values["team_id"] = self.team_id(data["team"])
        self.update(found, label, values)
        return found, label

    def user_id(self, email: str) -> int:
        return self.user_named(email).id

    def team_id(self, name: str | None) -> int | None:
        return None if name is None else self.named(Team, name).id

    def policy_id(self, name: str | None) -> int | None:
        return None if name is None else self.named(EscalationPolicy, name).id

    # --- Schedules -----------------------------------------------------------------------------

    def schedules(self, items: list[dict]) -> None:
        touched = []
        for data in items:
            before = len(self.changes)
            schedule = self.schedule(data)
            if len(self.changes) > before:
                touched.append(schedule)
        db.session.flush()
        self.touched_schedules.update(schedule.id for schedule in touched)

    def schedule(self, data: dict) -> Schedule:
        schedule, label = self.named_or_new(Schedule, "schedule", data, ("time_zone", "description"))
        if "layers" in data:
            self.layers(schedule, label, data["layers"])
        if "overrides" in data:
            self.overrides(schedule, label, data["overrides"])
        return schedule

    def layers(self, schedule: Schedule, label: str, given: list[dict]) -> None:
        existing = sorted(schedule.layers, key=lambda layer: layer.position)
        for n, data in enumerate(given):
            layer = existing[n] if n < len(existing) else None
            what = f"{label}: layer {n + 1}"
            if layer is None:
                layer = ScheduleLayer(position=n)
                schedule.layers.append(layer)
                self.created(what)
            layer.position = n
            if data["kind"] == "ical":
                self.ical_layer(schedule, layer, what, data)
                continue
            clean = {
                "name": (data.get("name") or "").strip() or f"Layer {n + 1}",
                "kind": "rotation",
                "start": wall_clock(data["start"]),
                "shift_length": data.get("shift_length", 1),
                "shift_unit": data.get("shift_unit", "weeks"),
                "restrictions": schedules.parse_restrictions(data.get("restrictions")),
                "participants": [self.user_id(email) for email in data["participants"]],
            }
            current = {
                **{name: getattr(layer, name) for name in ("name", "kind", "start", "shift_length", "shift_unit")},
                "restrictions": layer.restrictions or [],
                "participants": [p.user_id for p in layer.participants],
            }
            if current != clean:
                if inspect(layer).persistent:
                    self.changed(f"{what}: {', '.join(k for k in clean if clean[k] != current[k])}")
                schedules.apply_layer(layer, clean, schedule.time_zone)
        for layer in existing[len(given) :]:
            schedule.layers.remove(layer)
            self.removed(f"{label}: layer {layer.position + 1} ({layer.name})")

    def ical_layer(self, schedule: Schedule, layer: ScheduleLayer, what: str, data: dict) -> None:
        """An iCal layer: its calendar is the document's (not fetched now; the refresh job fetches)."""
        url = layer.ical_url if layer.kind == "ical" else None
        if "ical_url" in data and (data["ical_url"] is None or self.with_secrets):
            url = data["ical_url"]
        name = (data.get("name") or "").strip() or "Layer"
        self.update(layer, what, {"name": name, "kind": "ical"})
        self.update(layer, what, {"ical_url": url}, secret=True)
        if layer.participants:
            layer.participants = []
        calendar = data.get("ical_data")
        if calendar is not None and calendar != layer.ical_data:
            if inspect(layer).persistent:
                self.changed(f"{what}: its calendar")
            try:
                ical.import_ical(layer, calendar, ZoneInfo(schedule.time_zone))
            except ical.ICalImportError as exc:
                raise ConfigError([(f"{what}.ical_data", str(exc))]) from exc

    def overrides(self, schedule: Schedule, label: str, given: list[dict]) -> None:
        free = list(schedule.overrides)
        for data in given:
            user_id = self.user_id(data["user"])
            start, end = validation.aware_datetime(data["start"]), validation.aware_datetime(data["end"])
            created_by = self.user_id(data["created_by"]) if data.get("created_by") else None
            values = {"note": (data.get("note") or "").strip(), "created_by_id": created_by}
            what = f"{label}: override of {data['user']} from {start:%Y-%m-%d %H:%M} UTC"
            match = next((o for o in free if (o.user_id, o.start, o.end) == (user_id, start, end)), None)
            if match is None:
                schedule.overrides.append(ScheduleOverride(user_id=user_id, start=start, end=end, **values))
                self.created(what)
            else:
                free.remove(match)
                self.update(match, what, values)
        for override in free:
            schedule.overrides.remove(override)
            self.removed(f"{label}: override of {override.user.email} from {override.start:%Y-%m-%d %H:%M} UTC")

    # --- Escalation policies -------------------------------------------------------------------

    def policy(self, data: dict) -> None:
        policy, label = self.named_or_new(EscalationPolicy, "escalation policy", data, ("description", "repeat_count"))
        if "levels" not in data:
            return
        wanted = [
            (level.get("delay_minutes", 5), [self.target(target) for target in level.get("targets") or []])
            for level in data["levels"]
        ]
        current = [
            (level.delay_minutes, [(t.target_type, t.user_id or t.schedule_id) for t in level.targets])
            for level in policy.levels
        ]
        if wanted == current:
            return
        if inspect(policy).persistent:
            self.changed(f"{label}: levels")
        policy.levels = [
            EscalationLevel(
                position=n,
                delay_minutes=delay,
                targets=[
                    EscalationTarget(target_type=kind, **{"user_id" if kind == "user" else "schedule_id": ref})
                    for kind, ref in targets
                ],
            )
            for n, (delay, targets) in enumerate(wanted)
        ]

    def target(self, target: dict) -> tuple[str, int]:
        if "user" in target:
            return "user", self.user_id(target["user"])
        return "schedule", self.named(Schedule, target["schedule"]).id

    # --- Integrations and event rules ----------------------------------------------------------

    def integrations(self, service: Service, label: str, path: str, given: list[dict]) -> None:
        free = list(service.integrations)
        for n, data in enumerate(given):
            kind = data["kind"]
            name = (data.get("name") or "").strip() or kind.replace("_", " ").title()
            key = data.get("key") if self.with_secrets else None
            what = f"{label}: integration {name}"
            match = next((i for i in free if key and i.key == key), None)
            if match is not None and match.kind != kind:
                raise ConfigError(
                    [(f"{path}.integrations[{n}].key", f"This key is the {match.kind} integration {match.name}'s.")]
                )
            match = match or next((i for i in free if (i.kind, i.name) == (kind, name)), None)
            beat = data.get("heartbeat") or {}
            if match is None:
                fields = {"kind": kind, "name": name, **({"email": data["email"]} if "email" in data else {})}
                fields.update({k: beat[k] for k in heartbeats.SETTINGS if k in beat})
                match = services.add_integration(service, fields)
                if key:
                    match.key = key
                if beat.get("paused"):
                    heartbeats.update(match.heartbeat, {"paused": True})
                self.created(what)
                continue
            free.remove(match)
            if key:
                self.update(match, what, {"key": key}, secret=True)
            email = inbound_email.clean_settings(data["email"]) if kind == "email" and "email" in data else None
            if name != match.name or (email is not None and email != inbound_email.settings_of(match)):
                self.changed(what)
                services.update_integration(match, {"name": name, **({"email": email} if email else {})})
            if match.heartbeat is not None and beat:
                differing = {k: v for k, v in beat.items() if getattr(match.heartbeat, k) != v}
                if differing:
                    self.changed(f"{what}: heartbeat {', '.join(differing)}")
                    heartbeats.update(match.heartbeat, differing)
        for integration in free:
            timers.set_timer(heartbeats.TIMER_KIND, integration.id, None)
            service.integrations.remove(integration)
            self.removed(f"{label}: integration {integration.name}")

    def event_rules(self, service_id: int | None, given: list[dict], label: str) -> None:
        existing = event_rule_edit.rules_of(service_id)
        for n, data in enumerate(given):
            fields = {k: v for k, v in data.items() if k != "route_to"}
            if data.get("action") == "route":
                fields["route_to_service_id"] = self.named(Service, data["route_to"]).id
            clean = event_rule_edit.clean_rule(fields, service_id)
            clean["position"] = n + 1
            what = f"{label}: event rule {n + 1}"
            if n < len(existing):
                self.update(existing[n], what, clean)
            else:
                db.session.add(EventRule(service_id=service_id, **clean))
                self.created(what)
        for rule in existing[len(given) :]:
            db.session.delete(rule)
            self.removed(f"{label}: event rule {rule.position} ({rule.name})")
