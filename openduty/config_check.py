"""Configuration as code: checking a whole document before anything changes (`openduty import`).

Every problem is collected with the JSON path of the value to fix (`$.users[2].contact_methods[0]
.address`), so one run lists them all. Field rules are the domain's own (openduty.validation,
services, event_rule_edit, heartbeats, inbound_email, urgency, schedules); references by name must
name an object of the document or one already in the database. The document's format is
openduty.config_export's.
"""

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from openduty import event_rule_edit, heartbeats, policies, schedules, services, shift_notices, users, validation
from openduty.config_export import FORMAT, SECTIONS, VERSION
from openduty.errors import ValidationError
from openduty.extensions import db
from openduty.maintenance import MAX_LENGTH, MAX_SERVICES
from openduty.models import EscalationPolicy, Integration, Schedule, Service, Team, User
from openduty.models.schedule import LAYER_KINDS, SHIFT_UNITS
from openduty.models.service import INTEGRATION_KEY_LENGTH
from openduty.models.team import TEAM_ROLES

_KEY = re.compile(rf"[a-z0-9]{{{INTEGRATION_KEY_LENGTH}}}")
_HASH = re.compile(r"[0-9a-f]{64}")
_USER_KEYS = (
    *("email", "name", "time_zone", "is_admin", "observer", "active", "auth_source", "directory_dn"),
    *("password_hash", "calendar_token", "api_tokens", "contact_methods", "notification_rules", "shift_notices"),
)
_SERVICE_KEYS = (
    *("name", "description", "escalation_policy", "ack_timeout_minutes", "disabled", "auto_resolve_hours"),
    *("group_window_minutes", "team", "urgency", "support_hours", "integrations", "event_rules"),
)
_RULE_KEYS = ("name", "match", "conditions", "action", "severity", "urgency", "route_to", "continue")


class ConfigError(Exception):
    """A document that cannot be imported: (JSON path, what to fix) for every problem found."""

    def __init__(self, errors: list[tuple[str, str]]):
        super().__init__(f"{len(errors)} problem(s) in the document")
        self.errors = errors

    def __str__(self) -> str:
        lines = [f"The document was not imported ({len(self.errors)} problem(s)); nothing changed:"]
        return "\n".join([*lines, *(f"  {path}: {message}" for path, message in self.errors)])


class _Checker:
    def __init__(self, document: dict[str, Any]):
        self.errors: list[tuple[str, str]] = []
        self.names = {
            "user": _known(document, "users", "email", User.email),
            "team": _known(document, "teams", "name", Team.name),
            "schedule": _known(document, "schedules", "name", Schedule.name),
            "policy": _known(document, "escalation_policies", "name", EscalationPolicy.name),
            "service": _known(document, "services", "name", Service.name),
        }

    def error(self, path: str, message: str) -> None:
        self.errors.append((path, message))

    def value(self, path: str, check: Callable[[], Any]) -> Any:
        try:
            return check()
        except validation.FieldError as exc:
            self.error(path, str(exc))
        except ValidationError as exc:
            for name, message in exc.fields.items():
                self.error(f"{path}.{name}", message)
        return None

    def object(self, value: Any, path: str, keys: tuple[str, ...], required: tuple[str, ...] = ()) -> dict | None:
        """`value` if it is an object of known keys with the required ones, else None (errors said)."""
        if not isinstance(value, dict):
            self.error(path, "Must be an object.")
            return None
        for key in sorted(set(value) - set(keys), key=str):
            self.error(f"{path}.{key}", f"Unknown key; use {', '.join(keys)}.")
        for key in required:
            if key not in value:
                self.error(f"{path}.{key}", "Required.")
        return value

    def items(self, value: Any, path: str) -> list[tuple[str, Any]]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, "Must be a list.")
            return []
        return [(f"{path}[{n}]", item) for n, item in enumerate(value)]

    def ref(self, kind: str, value: Any, path: str, optional: bool = False) -> None:
        if value is None and optional:
            return
        if not isinstance(value, str) or value.strip().lower() not in self.names[kind]:
            what = "escalation policy" if kind == "policy" else kind
            self.error(path, f"No {what} named {value!r} in the document or the database.")

    def unique(self, items: list[tuple[str, Any]], key: str, what: str, fold: bool = True) -> None:
        """A column the database keeps unique: no two objects of the document may share a value."""
        seen: set[str] = set()
        for path, item in items:
            name = item.get(key) if isinstance(item, dict) else None
            if isinstance(name, str):
                name = name.strip().lower() if fold else name
                if name in seen:
                    self.error(f"{path}.{key}", f"Another {what} of the document has this {key}.")
                seen.add(name)


def _list(data: dict, key: str) -> list:
    return data[key] if isinstance(data.get(key), list) else []


def _known(document: dict, section: str, key: str, column) -> set[str]:
    given = document.get(section) if isinstance(document.get(section), list) else []
    names = {item[key].strip().lower() for item in given if isinstance(item, dict) and isinstance(item.get(key), str)}
    return names | set(db.session.scalars(select(func.lower(column))))


def check_document(document: Any) -> None:
    """Raise ConfigError listing every problem of `document`; return if it can be imported."""
    if not isinstance(document, dict):
        raise ConfigError([("$", "The document must be a JSON object (as `openduty export` writes).")])
    if document.get("format") != FORMAT:
        raise ConfigError([("$.format", f'Must be "{FORMAT}": is this a document `openduty export` wrote?')])
    if document.get("version") != VERSION:
        raise ConfigError([("$.version", f"This Openduty reads version {VERSION} documents; export it again.")])
    checker = _Checker(document)
    checker.object(document, "$", ("format", "version", "exported_at", "with_secrets", *SECTIONS))
    sections = {name: checker.items(document.get(name), f"$.{name}") for name in SECTIONS}
    for name, key in (("users", "email"), ("teams", "name"), ("schedules", "name")):
        checker.unique(sections[name], key, name[:-1])
    checker.unique(sections["escalation_policies"], "name", "escalation policy")
    checker.unique(sections["services"], "name", "service")
    checker.unique(sections["users"], "directory_dn", "user", fold=False)
    checker.unique(sections["users"], "calendar_token", "user", fold=False)
    checker.unique(sections["teams"], "directory_dn", "team", fold=False)
    tokens = [
        (f"{path}.api_tokens[{n}]", token)
        for path, user in sections["users"]
        if isinstance(user, dict)
        for n, token in enumerate(_list(user, "api_tokens"))
    ]
    checker.unique(tokens, "token_hash", "API token", fold=False)
    for path, item in sections["users"]:
        _user(checker, path, item)
    for path, item in sections["teams"]:
        _team(checker, path, item)
    for path, item in sections["schedules"]:
        _schedule(checker, path, item)
    for path, item in sections["escalation_policies"]:
        _policy(checker, path, item)
    keys: dict[str, str] = {}
    for path, item in sections["services"]:
        _service(checker, path, item, keys)
    for path, item in sections["event_rules"]:
        _rule(checker, path, item, None)
    for path, item in sections["maintenance_windows"]:
        _window(checker, path, item)
    if checker.errors:
        raise ConfigError(checker.errors)


def _text(checker: _Checker, data: dict, path: str, key: str, max_length: int, required: bool = False) -> None:
    if key in data and not (data[key] is None and not required):
        checker.value(f"{path}.{key}", lambda: validation.text(data[key], max_length=max_length, required=required))


def _flags(checker: _Checker, data: dict, path: str, *keys: str) -> None:
    for key in keys:
        if key in data and not isinstance(data[key], bool):
            checker.error(f"{path}.{key}", "Must be true or false.")


def _integer(checker: _Checker, data: dict, path: str, key: str, low: int, high: int, optional: bool = False) -> None:
    if key in data and not (optional and data[key] is None):
        checker.value(f"{path}.{key}", lambda: validation.integer(data[key], minimum=low, maximum=high, label="It"))


# --- Users and teams -------------------------------------------------------------------------------


def _user(checker: _Checker, path: str, data: Any) -> None:
    if checker.object(data, path, _USER_KEYS, ("email", "name")) is None:
        return
    checker.value(f"{path}.email", lambda: validation.email(data.get("email")))
    _text(checker, data, path, "name", 200, required=True)
    if "time_zone" in data:
        checker.value(f"{path}.time_zone", lambda: validation.time_zone(data["time_zone"]))
    _flags(checker, data, path, "is_admin", "observer", "active")
    if data.get("auth_source", "local") not in ("local", "ldap"):
        checker.error(f"{path}.auth_source", "Use local or ldap.")
    _text(checker, data, path, "directory_dn", 1000)
    _text(checker, data, path, "password_hash", 255)
    _text(checker, data, path, "calendar_token", 64)
    for token_path, token in checker.items(data.get("api_tokens"), f"{path}.api_tokens"):
        if checker.object(token, token_path, ("name", "prefix", "token_hash", "read_only"), ("name", "token_hash")):
            _text(checker, token, token_path, "name", 100, required=True)
            _text(checker, token, token_path, "prefix", 12)
            _flags(checker, token, token_path, "read_only")
            if not isinstance(token.get("token_hash"), str) or not _HASH.fullmatch(token["token_hash"]):
                checker.error(f"{token_path}.token_hash", "Must be a token's SHA-256 hash (64 hex digits).")
    methods = checker.items(data.get("contact_methods"), f"{path}.contact_methods")
    seen = set()
    for method_path, method in methods:
        if checker.object(method, method_path, ("kind", "label", "address"), ("kind",)) is None:
            continue
        kind = checker.value(f"{method_path}.kind", lambda m=method: validation.contact_kind(m.get("kind")))
        _text(checker, method, method_path, "label", 100)
        if kind and "address" in method:
            address = checker.value(
                f"{method_path}.address",
                lambda k=kind, m=method: validation.contact_address(k, m["address"], privileged=True),
            )
            if (kind, address) in seen:
                checker.error(f"{method_path}.address", "The user has this contact method already.")
            seen.add((kind, address))
    _rules_of_user(checker, path, data.get("notification_rules"), len(methods))
    notices = data.get("shift_notices")
    notices_path = f"{path}.shift_notices"
    if notices is not None and checker.object(
        notices, notices_path, ("reminder_hours", "weekly_summary", "contact_method")
    ):
        _integer(checker, notices, notices_path, "reminder_hours", 0, shift_notices.MAX_REMINDER_HOURS)
        _flags(checker, notices, notices_path, "weekly_summary")
        _index(checker, notices.get("contact_method"), f"{notices_path}.contact_method", len(methods), optional=True)


def _index(checker: _Checker, value: Any, path: str, count: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < count:
        checker.error(path, f"Must be the index of one of the user's {count} contact methods (0 is the first).")


def _rules_of_user(checker: _Checker, path: str, value: Any, methods: int) -> None:
    path = f"{path}.notification_rules"
    if value is None or checker.object(value, path, ("high", "low")) is None:
        return
    for urgency, rules in value.items():
        seen = set()
        for rule_path, rule in checker.items(rules, f"{path}.{urgency}"):
            if checker.object(rule, rule_path, ("contact_method", "delay_minutes"), ("contact_method",)) is None:
                continue
            _index(checker, rule.get("contact_method"), f"{rule_path}.contact_method", methods)
            _integer(checker, rule, rule_path, "delay_minutes", 0, users.MAX_RULE_DELAY_MINUTES)
            if (rule.get("contact_method"), rule.get("delay_minutes", 0)) in seen:
                checker.error(rule_path, "The same rule is in this list twice.")
            seen.add((rule.get("contact_method"), rule.get("delay_minutes", 0)))


def _team(checker: _Checker, path: str, data: Any) -> None:
    if checker.object(data, path, ("name", "description", "directory_dn", "members"), ("name",)) is None:
        return
    _text(checker, data, path, "name", 200, required=True)
    _text(checker, data, path, "description", 2000)
    _text(checker, data, path, "directory_dn", 1000)
    seen = set()
    for member_path, member in checker.items(data.get("members"), f"{path}.members"):
        if checker.object(member, member_path, ("user", "role"), ("user",)) is None:
            continue
        checker.ref("user", member.get("user"), f"{member_path}.user")
        if member.get("role", "member") not in TEAM_ROLES:
            checker.error(f"{member_path}.role", f"Use one of {', '.join(TEAM_ROLES)}.")
        if str(member.get("user")).lower() in seen:
            checker.error(f"{member_path}.user", "This person is in the team's list twice.")
        seen.add(str(member.get("user")).lower())


# --- Schedules and policies ------------------------------------------------------------------------


def _schedule(checker: _Checker, path: str, data: Any) -> None:
    keys = ("name", "time_zone", "description", "team", "layers", "overrides")
    if checker.object(data, path, keys, ("name",)) is None:
        return
    _text(checker, data, path, "name", 200, required=True)
    _text(checker, data, path, "description", 2000)
    if "time_zone" in data:
        checker.value(f"{path}.time_zone", lambda: validation.time_zone(data["time_zone"]))
    checker.ref("team", data.get("team"), f"{path}.team", optional=True)
    for layer_path, layer in checker.items(data.get("layers"), f"{path}.layers"):
        _layer(checker, layer_path, layer)
    keys = ("user", "start", "end", "note", "created_by")
    for override_path, override in checker.items(data.get("overrides"), f"{path}.overrides"):
        if checker.object(override, override_path, keys, ("user", "start", "end")) is None:
            continue
        checker.ref("user", override.get("user"), f"{override_path}.user")
        checker.ref("user", override.get("created_by"), f"{override_path}.created_by", optional=True)
        start, end = _range(checker, override, override_path)
        if start and end and end <= start:
            checker.error(f"{override_path}.end", "End must be after start.")
        _text(checker, override, override_path, "note", 500)


def _range(checker: _Checker, data: dict, path: str) -> tuple[datetime | None, datetime | None]:
    return tuple(
        checker.value(f"{path}.{key}", lambda k=key: validation.aware_datetime(data.get(k), label=k.title()))
        for key in ("start", "end")
    )


def _layer(checker: _Checker, path: str, data: Any) -> None:
    rotation = ("start", "shift_length", "shift_unit", "restrictions", "participants")
    if checker.object(data, path, ("name", "kind", *rotation, "ical_url", "ical_data"), ("kind",)) is None:
        return
    _text(checker, data, path, "name", 200)
    if data.get("kind") not in LAYER_KINDS:
        checker.error(f"{path}.kind", f"Use one of {', '.join(LAYER_KINDS)}.")
        return
    if data["kind"] == "ical":
        if data.get("ical_url") is not None:
            checker.value(f"{path}.ical_url", lambda: validation.url(data["ical_url"], ("http", "https", "webcal")))
        if data.get("ical_data") is not None and not isinstance(data["ical_data"], str):
            checker.error(f"{path}.ical_data", "Must be the text of an .ics file.")
        return
    for key in ("start", "participants"):
        if key not in data:
            checker.error(f"{path}.{key}", "Required for a rotation layer.")
    checker.value(f"{path}.start", lambda: _wall_clock(data.get("start")))
    unit = data.get("shift_unit", "weeks")
    if unit not in SHIFT_UNITS:
        checker.error(f"{path}.shift_unit", f"Use one of {', '.join(SHIFT_UNITS)}.")
    else:
        _integer(checker, data, path, "shift_length", 1, schedules.MAX_SHIFT[unit])
    try:
        schedules.parse_restrictions(data.get("restrictions"))
    except ValueError as exc:
        checker.error(f"{path}.restrictions", str(exc))
    people = checker.items(data.get("participants"), f"{path}.participants")
    if not people or len(people) > schedules.MAX_PARTICIPANTS:
        checker.error(f"{path}.participants", f"A rotation has 1 to {schedules.MAX_PARTICIPANTS} participants.")
    for person_path, person in people:
        checker.ref("user", person, person_path)


def _wall_clock(value: Any) -> datetime:
    """A rotation's first handoff: a wall-clock time in the schedule's zone, without an offset."""
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is not None:
        raise validation.FieldError("Must be a wall-clock ISO 8601 time without an offset, e.g. 2026-01-05T09:00:00.")
    validation.in_year_range(parsed, "Start")
    return parsed


def _policy(checker: _Checker, path: str, data: Any) -> None:
    if checker.object(data, path, ("name", "description", "repeat_count", "team", "levels"), ("name",)) is None:
        return
    _text(checker, data, path, "name", 200, required=True)
    _text(checker, data, path, "description", 2000)
    _integer(checker, data, path, "repeat_count", 0, policies.MAX_REPEAT)
    checker.ref("team", data.get("team"), f"{path}.team", optional=True)
    levels = checker.items(data.get("levels"), f"{path}.levels")
    if len(levels) > policies.MAX_LEVELS:
        checker.error(f"{path}.levels", f"At most {policies.MAX_LEVELS} levels.")
    for level_path, level in levels:
        if checker.object(level, level_path, ("delay_minutes", "targets")) is None:
            continue
        _integer(checker, level, level_path, "delay_minutes", 0, policies.MAX_DELAY_MINUTES)
        targets = checker.items(level.get("targets"), f"{level_path}.targets")
        if len(targets) > policies.MAX_TARGETS:
            checker.error(f"{level_path}.targets", f"At most {policies.MAX_TARGETS} targets per level.")
        for target_path, target in targets:
            if not isinstance(target, dict) or len(target) != 1 or not set(target) <= {"user", "schedule"}:
                checker.error(target_path, 'A target is {"user": email} or {"schedule": name}.')
                continue
            kind, name = next(iter(target.items()))
            checker.ref(kind, name, f"{target_path}.{kind}")


# --- Services, rules, maintenance ------------------------------------------------------------------


def _service(checker: _Checker, path: str, data: Any, keys: dict[str, str]) -> None:
    if checker.object(data, path, _SERVICE_KEYS, ("name",)) is None:
        return
    current = db.session.scalar(select(Service).where(func.lower(Service.name) == str(data.get("name")).lower()))
    fields = {name: data[name] for name in services.SERVICE_FIELDS if name in data}
    checker.value(path, lambda: services.clean_service(fields, current))
    checker.ref("policy", data.get("escalation_policy"), f"{path}.escalation_policy", optional=True)
    checker.ref("team", data.get("team"), f"{path}.team", optional=True)
    for item_path, item in checker.items(data.get("integrations"), f"{path}.integrations"):
        _integration(checker, item_path, item, data.get("name"), keys)
    for rule_path, rule in checker.items(data.get("event_rules"), f"{path}.event_rules"):
        _rule(checker, rule_path, rule, data.get("name"))


def _integration(checker: _Checker, path: str, data: Any, service: Any, keys: dict[str, str]) -> None:
    if checker.object(data, path, ("kind", "name", "key", "email", "heartbeat"), ("kind",)) is None:
        return
    fields = {name: data[name] for name in ("kind", "name", "email") if name in data}
    checker.value(path, lambda: services.clean_integration(fields))
    beat = data.get("heartbeat")
    if data.get("kind") == "heartbeat" and checker.object(beat, f"{path}.heartbeat", (*heartbeats.FIELDS,)):
        checker.value(f"{path}.heartbeat", lambda: heartbeats.clean_settings(beat))
        _flags(checker, beat, f"{path}.heartbeat", "paused")
    elif data.get("kind") != "heartbeat" and beat is not None:
        checker.error(f"{path}.heartbeat", "Only heartbeat integrations have heartbeat settings.")
    key = data.get("key")
    if key is None:
        return
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        checker.error(f"{path}.key", f"An integration key is {INTEGRATION_KEY_LENGTH} lowercase letters and digits.")
        return
    if key in keys:
        checker.error(f"{path}.key", f"{keys[key]} has this key too.")
    keys[key] = path
    owner = db.session.scalar(select(Service.name).join(Integration).where(Integration.key == key))
    if owner is not None and owner.lower() != str(service).lower():
        checker.error(f"{path}.key", f"The integration key of another service ({owner}) in this database.")


def _rule(checker: _Checker, path: str, data: Any, service: Any) -> None:
    if checker.object(data, path, _RULE_KEYS, ("action",)) is None:
        return
    fields = {name: data[name] for name in _RULE_KEYS if name in data and name != "route_to"}
    if data.get("action") == "route":
        fields["action"] = "drop"  # the route target is a name here: checked below, not as an id
        checker.ref("service", data.get("route_to"), f"{path}.route_to")
        if isinstance(service, str) and str(data.get("route_to")).lower() == service.lower():
            checker.error(f"{path}.route_to", "Route to another service: this rule already belongs to this one.")
    elif data.get("route_to") is not None:
        checker.error(f"{path}.route_to", "Only route rules have a service to route to.")
    checker.value(path, lambda: event_rule_edit.clean_rule(fields, None))


def _window(checker: _Checker, path: str, data: Any) -> None:
    keys = ("start", "end", "description", "services", "created_by")
    if checker.object(data, path, keys, ("start", "end", "services")) is None:
        return
    start, end = _range(checker, data, path)
    if start and end and not start < end <= start + MAX_LENGTH:
        checker.error(f"{path}.end", f"End must be after start, at most {MAX_LENGTH.days} days later.")
    _text(checker, data, path, "description", 1000)
    checker.ref("user", data.get("created_by"), f"{path}.created_by", optional=True)
    names = checker.items(data.get("services"), f"{path}.services")
    if not 1 <= len(names) <= MAX_SERVICES:
        checker.error(f"{path}.services", f"A window has 1 to {MAX_SERVICES} services.")
    for name_path, name in names:
        checker.ref("service", name, name_path)
