"""Event rules: what a rule's conditions mean and what its actions do to an event (pure functions).

One home for the evaluation: ingest's pre-pass (openduty.event_intake) and the rules pages' tester
both call `evaluate()`. Rules are compiled once (paths parsed, regexes compiled) into a `RuleBook`;
evaluating an event against it touches no database.

Order: the global rules first, then the rules of the event's service. Within each list the first
matching rule wins unless it says "continue". Suppress and drop end everything. A route moves the
event to another service, whose own rules then apply; a route happens at most once (a second one
is ignored), so two services routing to each other cannot loop. Acknowledge and resolve events
only follow routes (suppress, drop and the set-actions apply to triggers).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from openduty import validation
from openduty.models.incident import SEVERITIES

# The event's own fields a condition may name; anything else is a path into the details.
FIELDS = ("summary", "source", "severity", "component", "group", "class")
# Where a path may start: the sender's custom details, or everything Openduty keeps of the event
# (`details.labels.team` for Alertmanager's labels).
PATH_ROOTS = ("custom_details", "details")
OPERATORS = {
    "equals": "equals",
    "not_equals": "does not equal",
    "contains": "contains",
    "not_contains": "does not contain",
    "matches": "matches regex",
    "not_matches": "does not match regex",
    "exists": "exists",
    "not_exists": "does not exist",
}
VALUELESS = ("exists", "not_exists")
ACTION_LABELS = {
    "suppress": "suppress (store the alert, open no incident)",
    "set_severity": "set severity",
    "set_urgency": "set urgency",
    "route": "route to another service",
    "drop": "drop (count it, keep nothing)",
}

_SEGMENT = r"(?:[A-Za-z_][A-Za-z0-9_-]*|[0-9]+)"
_PATH = re.compile(rf"{_SEGMENT}(?:\[[0-9]+\])*(?:\.{_SEGMENT}(?:\[[0-9]+\])*)*")
_PART = re.compile(rf"({_SEGMENT})|\[([0-9]+)\]")


class PathError(ValueError):
    """A condition's field is not one of FIELDS nor a well-formed path; the message says what to write."""


def parse_path(text: str) -> tuple[str | int, ...]:
    """`custom_details.a.b[0]` -> ("custom_details", "a", "b", 0); a bare field -> ("severity",)."""
    if text in FIELDS:
        return (text,)
    if not _PATH.fullmatch(text):
        raise PathError(
            "Use an event field (" + ", ".join(FIELDS) + ") or a dotted path such as custom_details.env, "
            "custom_details.disks[0].name or details.labels.team."
        )
    parts: list[str | int] = []
    for name, index in _PART.findall(text.replace(".", " ")):
        parts.append(int(index) if index else (int(name) if name.isdigit() else name))
    if parts[0] not in PATH_ROOTS:
        raise PathError(f"A path starts with {' or '.join(PATH_ROOTS)} (or use one of {', '.join(FIELDS)}).")
    if parts[0] == "details" and len(parts) == 1:
        raise PathError("Name something inside details, such as details.labels.team.")
    return tuple(parts)


def event_fields(event) -> dict[str, Any]:
    """What conditions look at, from an `openduty.events.Event` (component, group and class of the
    Events API v2 are kept in its details)."""
    details = event.details or {}
    return {
        "summary": event.summary,
        "source": event.source,
        "severity": event.severity,
        "component": details.get("component"),
        "group": details.get("group"),
        "class": details.get("class"),
        "custom_details": details.get("custom_details"),
        "details": details,
    }


def lookup(fields: dict[str, Any], path: tuple[str | int, ...]) -> tuple[bool, Any]:
    """(found, value) at `path`; an index also reads a key of that name in an object."""
    value: Any = fields
    for part in path:
        if isinstance(value, dict):
            key = str(part)
            if key not in value:
                return False, None
            value = value[key]
        elif isinstance(value, list) and isinstance(part, int) and part < len(value):
            value = value[part]
        else:
            return False, None
    return value is not None, value


def as_text(value: Any) -> str:
    """A value as conditions compare it: text as is, numbers and true/false as JSON writes them."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Condition:
    path: tuple[str | int, ...]
    operator: str
    value: str
    pattern: re.Pattern | None = None

    def holds(self, fields: dict[str, Any]) -> bool:
        found, raw = lookup(fields, self.path)
        op = self.operator
        if op in VALUELESS:
            return found == (op == "exists")
        negated = op.startswith("not_")
        if not found:
            return negated
        text = as_text(raw)
        if op.endswith("equals"):
            hit = text == self.value
        elif op.endswith("contains"):
            hit = self.value in text
        else:
            hit = self.pattern is not None and self.pattern.search(text) is not None
        return hit != negated


def compile_condition(data: dict[str, Any]) -> Condition:
    """A stored condition, compiled (raises PathError or FieldError for one that is not valid)."""
    operator = data["operator"]
    value = "" if operator in VALUELESS else str(data.get("value") or "")
    pattern = validation.regex(value) if operator.endswith("matches") else None
    return Condition(parse_path(data["field"]), operator, value, pattern)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: int
    service_id: int | None
    position: int
    name: str
    match_any: bool
    conditions: tuple[Condition, ...]
    action: str
    severity: str | None = None
    urgency: str | None = None
    route_to_service_id: int | None = None
    continue_matching: bool = False

    def matches(self, fields: dict[str, Any]) -> bool:
        if not self.conditions:
            return True  # no conditions: every event
        results = (c.holds(fields) for c in self.conditions)
        return any(results) if self.match_any else all(results)

    @property
    def label(self) -> str:
        where = "global rule" if self.service_id is None else "rule"
        return f"{where} {self.position}" + (f" ({self.name})" if self.name else "")


def compile_rule(rule) -> CompiledRule | None:
    """An `EventRule` row compiled for evaluation; None if a condition no longer compiles (never matches)."""
    try:
        conditions = tuple(compile_condition(c) for c in rule.conditions or [])
    except (PathError, validation.FieldError, KeyError, TypeError):
        return None
    return CompiledRule(
        rule.id,
        rule.service_id,
        rule.position,
        rule.name or "",
        rule.match == "any",
        conditions,
        rule.action,
        rule.severity,
        rule.urgency,
        rule.route_to_service_id,
        bool(rule.continue_matching),
    )


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """What intake needs of a service beside its rules."""

    name: str
    disabled: bool
    group_window_minutes: int | None


@dataclass(frozen=True)
class RuleBook:
    """Every rule, compiled and in order, with the services they may route to."""

    global_rules: tuple[CompiledRule, ...] = ()
    by_service: dict[int, tuple[CompiledRule, ...]] = field(default_factory=dict)
    services: dict[int, ServiceSettings] = field(default_factory=dict)

    @classmethod
    def of(cls, rules, services: dict[int, ServiceSettings]) -> RuleBook:
        """From EventRule rows (any order) and the services' settings."""
        compiled = sorted(
            (c for c in map(compile_rule, rules) if c is not None), key=lambda c: (c.service_id or 0, c.position, c.id)
        )
        by_service: dict[int, list[CompiledRule]] = {}
        for rule in compiled:
            if rule.service_id is not None:
                by_service.setdefault(rule.service_id, []).append(rule)
        global_rules = tuple(r for r in compiled if r.service_id is None)
        return cls(global_rules, {k: tuple(v) for k, v in by_service.items()}, services)


@dataclass(frozen=True, slots=True)
class Step:
    """One matching rule and what it did (`applied` False: matched, but had no effect here)."""

    rule: CompiledRule
    effect: str
    applied: bool = True


@dataclass
class Verdict:
    """What the rules make of one event."""

    service_id: int | None
    severity: str
    urgency: str | None
    steps: list[Step] = field(default_factory=list)
    # The rule that ended it by suppressing or dropping the event, if one did.
    final: CompiledRule | None = None

    @property
    def suppressed(self) -> bool:
        return self.final is not None and self.final.action == "suppress"

    @property
    def dropped(self) -> bool:
        return self.final is not None and self.final.action == "drop"


def evaluate(event, service_id: int | None, book: RuleBook) -> Verdict:
    """Run `event` (an openduty.events.Event sent to `service_id`) through the global rules, then
    its service's rules (after a route: the target service's), and say what they make of it.
    (`service_id` None: the global rules alone, for their tester.)"""
    verdict = Verdict(service_id, event.severity, event.urgency)
    fields = event_fields(event)
    trigger = event.action == "trigger"
    state = {"routed": False}

    def run(rules: tuple[CompiledRule, ...]) -> str | None:
        """ "end" (suppressed or dropped), "route" (to verdict.service_id), or None (go on)."""
        for rule in rules:
            if not rule.matches(fields):
                continue
            step, stop = _act(rule, verdict, book, trigger, state)
            verdict.steps.append(step)
            if step.applied and rule.action == "set_severity":
                fields["severity"] = verdict.severity
            if stop:
                return stop
            if not rule.continue_matching:
                return None
        return None

    if run(book.global_rules) == "end":
        return verdict
    if run(book.by_service.get(verdict.service_id or 0, ())) == "route":
        run(book.by_service.get(verdict.service_id or 0, ()))
    return verdict


def _act(rule: CompiledRule, verdict: Verdict, book: RuleBook, trigger: bool, state: dict) -> tuple[Step, str | None]:
    action = rule.action
    if action == "route":
        target = book.services.get(rule.route_to_service_id or 0)
        if state["routed"]:
            return Step(rule, "route ignored: an event is routed once", False), None
        if target is None:
            return Step(rule, "route ignored: the target service no longer exists", False), None
        state["routed"] = True
        verdict.service_id = rule.route_to_service_id  # type: ignore[assignment]
        return Step(rule, f"route to {target.name}"), "route"
    if not trigger:
        return Step(rule, f"{action.replace('_', ' ')} (only for triggers: not applied)", False), None
    if action == "set_severity":
        verdict.severity = rule.severity or verdict.severity
        return Step(rule, f"set severity {verdict.severity}"), None
    if action == "set_urgency":
        verdict.urgency = rule.urgency
        return Step(rule, f"set urgency {rule.urgency}"), None
    verdict.final = rule
    return Step(rule, action), "end"


def describe(verdict: Verdict, book: RuleBook) -> tuple[str, str]:
    """The tester's answer: ("match rule 2 -> set severity warning, then rule 4 -> suppress", result)."""
    if verdict.steps:
        said = ", then ".join(f"match {s.rule.label} -> {s.effect}" for s in verdict.steps)
    else:
        said = "match no rule"
    target = book.services.get(verdict.service_id or 0)
    name = target.name if target else "its service"
    if verdict.dropped:
        result = "Dropped: nothing is kept; the rule counts it."
    elif verdict.suppressed:
        result = f"Suppressed: stored as an alert on {name}; no incident, nobody is paged."
    else:
        urgency = verdict.urgency or "as the service's urgency setting decides"
        result = f"Goes to {name} with severity {verdict.severity}, urgency {urgency}."
    return said, result


def _search(pattern: str, text: str) -> bool:
    try:
        return validation.regex(pattern).search(text) is not None
    except validation.FieldError:
        return False


def never_match_warnings(conditions: list[dict[str, Any]], match: str) -> list[str]:
    """Why a (valid) rule could never match, if it could not: shown beside it, it is still saved."""
    warnings = []
    for n, c in enumerate(conditions, 1):
        op, value = c["operator"], str(c.get("value") or "")
        if c["field"] != "severity":
            continue
        never = (
            (op == "equals" and value not in SEVERITIES)
            or op == "not_exists"
            or (op == "matches" and not any(_search(value, s) for s in SEVERITIES))
            or (op == "contains" and not any(value in s for s in SEVERITIES))
        )
        if never:
            warnings.append(f"Condition {n} can never match: the severity is always one of {', '.join(SEVERITIES)}.")
    if match == "all":
        equals: dict[str, set[str]] = {}
        for c in conditions:
            if c["operator"] == "equals":
                equals.setdefault(c["field"], set()).add(str(c.get("value") or ""))
        for name, values in equals.items():
            if len(values) > 1:
                warnings.append(f"{name} cannot equal {' and '.join(sorted(values))} at once: with all, never a match.")
    if match == "any" and conditions and len(warnings) < len(conditions):
        return []  # another condition may still match
    return warnings
