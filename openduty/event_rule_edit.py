"""Changing event rules: validation, create / change / move / delete, shared by the pages and the API.

Each change validates first and raises `ValidationError` naming every bad field (conditions as
`conditions.0.value`) before changing anything; the caller commits. A rule that is valid but could
never match is saved; `warnings()` says why, for the page and the API to show.
"""

from typing import Any

from sqlalchemy import select

from openduty import event_rules, validation
from openduty.errors import ValidationError
from openduty.extensions import db
from openduty.models import EventRule, Service
from openduty.models.event_rule import RULE_ACTIONS, URGENCIES
from openduty.models.incident import SEVERITIES

RULE_FIELDS = (
    "name",
    "match",
    "conditions",
    "action",
    "severity",
    "urgency",
    "route_to_service_id",
    "continue",
    "position",
)
MAX_CONDITIONS = 10
MAX_VALUE = 1000
MAX_FIELD = 300


def rules_of(service_id: int | None) -> list[EventRule]:
    """A service's rules (None: the global rules), in order."""
    query = select(EventRule).where(
        EventRule.service_id.is_(None) if service_id is None else EventRule.service_id == service_id
    )
    return list(db.session.scalars(query.order_by(EventRule.position, EventRule.id)))


def rule_in(service_id: int | None, rule_id: int) -> EventRule | None:
    """The rule if it belongs to this service (or is global when `service_id` is None)."""
    rule = db.session.get(EventRule, rule_id)
    return rule if rule is not None and rule.service_id == service_id else None


def values_of(rule: EventRule) -> dict[str, Any]:
    """A rule as the fields clean_rule() takes."""
    return {
        "name": rule.name,
        "match": rule.match,
        "conditions": [dict(c) for c in rule.conditions or []],
        "action": rule.action,
        "severity": rule.severity,
        "urgency": rule.urgency,
        "route_to_service_id": rule.route_to_service_id,
        "continue": rule.continue_matching,
    }


def warnings(rule: EventRule | dict) -> list[str]:
    """Why the rule could never match, if it could not (it is still saved)."""
    values = values_of(rule) if isinstance(rule, EventRule) else rule
    return event_rules.never_match_warnings(values.get("conditions") or [], values.get("match") or "all")


def _condition(data: Any, n: int, errors: dict[str, str]) -> dict[str, str] | None:
    where = f"conditions.{n}"
    if not isinstance(data, dict):
        errors[where] = "Each condition is an object with field, operator and value."
        return None
    unknown = set(data) - {"field", "operator", "value"}
    if unknown:
        errors[where] = f"Unknown keys {', '.join(sorted(map(str, unknown)))}; use field, operator and value."
        return None
    clean: dict[str, str] = {}
    try:
        clean["field"] = validation.text(data.get("field"), max_length=MAX_FIELD, label="The field")
        event_rules.parse_path(clean["field"])
    except (validation.FieldError, event_rules.PathError) as exc:
        errors[f"{where}.field"] = str(exc)
    operator = data.get("operator")
    if not isinstance(operator, str) or operator not in event_rules.OPERATORS:
        errors[f"{where}.operator"] = f"Use one of {', '.join(event_rules.OPERATORS)}."
        return None
    clean["operator"] = operator
    if operator in event_rules.VALUELESS:
        clean["value"] = ""
        return clean
    try:
        value = data.get("value")
        value = value if isinstance(value, str) else "" if value is None else event_rules.as_text(value)
        clean["value"] = validation.text(
            value, max_length=MAX_VALUE, required=operator.endswith("matches"), label="The value"
        )
        if operator.endswith("matches"):
            validation.regex(clean["value"])
    except validation.FieldError as exc:
        errors[f"{where}.value"] = str(exc)
    return clean


def _conditions(value: Any, errors: dict[str, str]) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        errors["conditions"] = "A list of conditions, each {field, operator, value}."
        return []
    if len(value) > MAX_CONDITIONS:
        errors["conditions"] = f"At most {MAX_CONDITIONS} conditions per rule."
        return []
    cleaned = [_condition(c, n, errors) for n, c in enumerate(value)]
    return [c for c in cleaned if c is not None]


def _route_target(value: Any, service_id: int | None) -> int:
    target = validation.object_id(value, label="The service to route to")
    if db.session.get(Service, target) is None:
        raise validation.FieldError(f"No service with id {target}.")
    if target == service_id:
        raise validation.FieldError("Route to another service: this rule already belongs to this one.")
    return target


def clean_rule(data: dict[str, Any], service_id: int | None, rule: EventRule | None = None) -> dict[str, Any]:
    """Validate a rule (`data` over the rule's current values when changing one); the clean columns."""
    validation.refuse_unknown(data, RULE_FIELDS)
    merged = {**(values_of(rule) if rule is not None else {}), **data}
    errors: dict[str, str] = {}
    conditions = _conditions(merged.get("conditions"), errors)
    action = merged.get("action")

    def choice(name: str, choices: tuple[str, ...], needed: bool):
        value = merged.get(name) or None
        if not needed:
            return None
        if value not in choices:
            raise validation.FieldError(f"Use one of {', '.join(choices)}.")
        return value

    def act():
        if action not in RULE_ACTIONS:
            raise validation.FieldError(f"Use one of {', '.join(RULE_ACTIONS)}.")
        return action

    def position():
        if merged.get("position") in (None, ""):
            return None
        return validation.integer(merged["position"], minimum=1, label="The position")

    try:
        clean = validation.collect(
            {
                "name": lambda: validation.text(merged.get("name"), max_length=200, required=False, label="The name"),
                "match": lambda: choice("match", ("all", "any"), True) if merged.get("match") else "all",
                "action": act,
                "severity": lambda: choice("severity", SEVERITIES, action == "set_severity"),
                "urgency": lambda: choice("urgency", URGENCIES, action == "set_urgency"),
                "route_to_service_id": lambda: (
                    _route_target(merged.get("route_to_service_id"), service_id) if action == "route" else None
                ),
                "continue": lambda: validation.boolean(merged.get("continue") or False, "Continue"),
                "position": position,
            }
        )
    except ValidationError as exc:
        errors.update(exc.fields)
    if errors:
        raise ValidationError(errors)
    clean["conditions"] = conditions
    clean["continue_matching"] = clean.pop("continue")
    return clean


def save_rule(service_id: int | None, data: dict[str, Any], rule: EventRule | None = None) -> EventRule:
    """Create a rule at the end (or at `position`), or change one; ValidationError if anything is bad."""
    clean = clean_rule(data, service_id, rule)
    position = clean.pop("position")
    siblings = rules_of(service_id)
    if rule is None:
        rule = EventRule(service_id=service_id, position=len(siblings) + 1, **clean)
        db.session.add(rule)
        siblings.append(rule)
    else:
        for name, value in clean.items():
            setattr(rule, name, value)
    if position is not None:
        siblings.remove(rule)
        siblings.insert(min(position, len(siblings) + 1) - 1, rule)
        _renumber(siblings)
    return rule


def move_rule(rule: EventRule, direction: str) -> None:
    """One place up or down (at either end: nothing changes)."""
    if direction not in ("up", "down"):
        raise ValidationError({"direction": "Use up or down."})
    siblings = rules_of(rule.service_id)
    i = siblings.index(rule)
    j = i - 1 if direction == "up" else i + 1
    if 0 <= j < len(siblings):
        siblings[i], siblings[j] = siblings[j], siblings[i]
        _renumber(siblings)


def delete_rule(rule: EventRule) -> None:
    siblings = [r for r in rules_of(rule.service_id) if r.id != rule.id]
    db.session.delete(rule)
    _renumber(siblings)


def _renumber(rules: list[EventRule]) -> None:
    for n, rule in enumerate(rules, 1):
        if rule.position != n:
            rule.position = n
