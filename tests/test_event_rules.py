"""Event rules, the pure part (openduty.event_rules): operators, paths, order, continue, global rules
first, routes, and the validation and warnings of openduty.event_rule_edit."""

import itertools

import pytest

from openduty import event_rule_edit, event_rules
from openduty.errors import ValidationError
from openduty.event_rules import RuleBook, ServiceSettings, evaluate
from openduty.events import Event
from openduty.models import EventRule
from tests import factories_events

_ids = itertools.count(1)
SERVICES = {1: ServiceSettings("Web", False, None), 2: ServiceSettings("Database", False, None)}


def rule(service_id=1, conditions=(), action="suppress", match="all", **fields) -> EventRule:
    conditions = [dict(zip(("field", "operator", "value"), c, strict=False)) for c in conditions]
    position = fields.pop("position", next(_ids))
    return EventRule(
        id=next(_ids),
        service_id=service_id,
        position=position,
        name=fields.pop("name", ""),
        match=match,
        conditions=conditions,
        action=action,
        continue_matching=fields.pop("continue_matching", False),
        **fields,
    )


def event(summary="Disk full on web-1", severity="critical", source="web-1", action="trigger", **details) -> Event:
    return Event("key", action, "k", summary, severity, source=source, details=details)


def verdict(ev, *rules, service_id=1):
    return evaluate(ev, service_id, RuleBook.of(rules, SERVICES))


@pytest.mark.parametrize(
    ("operator", "value", "hits"),
    [
        ("equals", "web-1", True),
        ("equals", "web", False),
        ("not_equals", "web", True),
        ("contains", "eb-", True),
        ("contains", "db", False),
        ("not_contains", "db", True),
        ("matches", r"^web-\d$", True),
        ("matches", r"^db", False),
        ("not_matches", r"^db", True),
        ("exists", "", True),
        ("not_exists", "", False),
    ],
)
def test_each_operator_on_a_field(operator, value, hits):
    result = verdict(event(), rule(conditions=[("source", operator, value)]))
    assert result.suppressed is hits


@pytest.mark.parametrize(
    ("field", "operator", "value", "hits"),
    [
        ("custom_details.env", "equals", "prod", True),
        ("custom_details.a.b", "equals", "deep", True),
        ("custom_details.disks[1].name", "equals", "sdb", True),
        ("custom_details.disks.0.name", "equals", "sda", True),
        ("custom_details.load", "equals", "12.5", True),  # numbers compare as JSON writes them
        ("custom_details.ok", "equals", "true", True),
        ("custom_details.missing", "exists", "", False),
        ("custom_details.missing", "not_exists", "", True),
        ("custom_details.missing", "not_equals", "x", True),
        ("custom_details.env.deeper", "exists", "", False),
        ("component", "equals", "nginx", True),
        ("group", "contains", "we", True),
        ("class", "matches", "^cp", True),
        ("details.component", "equals", "nginx", True),
    ],
)
def test_paths_into_the_details(field, operator, value, hits):
    custom = {"env": "prod", "a": {"b": "deep"}, "disks": [{"name": "sda"}, {"name": "sdb"}], "load": 12.5, "ok": True}
    ev = event(custom_details=custom, component="nginx", group="web", **{"class": "cpu"})
    assert verdict(ev, rule(conditions=[(field, operator, value)])).suppressed is hits


def test_all_and_any():
    conditions = [("severity", "equals", "critical"), ("source", "equals", "db-1")]
    assert not verdict(event(), rule(conditions=conditions, match="all")).suppressed
    assert verdict(event(), rule(conditions=conditions, match="any")).suppressed
    assert verdict(event(), rule(conditions=[])).suppressed  # no conditions: every event


def test_each_action():
    assert verdict(event(), rule(action="set_severity", severity="warning")).severity == "warning"
    assert verdict(event(), rule(action="set_urgency", urgency="low")).urgency == "low"
    assert verdict(event(), rule(action="drop")).dropped
    routed = verdict(event(), rule(action="route", route_to_service_id=2))
    assert routed.service_id == 2 and not routed.suppressed


def test_the_first_match_wins_unless_it_says_continue():
    first = rule(conditions=[("severity", "equals", "critical")], action="set_severity", severity="warning")
    second = rule(conditions=[("severity", "equals", "warning")], action="suppress")
    assert verdict(event(), first, second).severity == "warning"
    assert not verdict(event(), first, second).suppressed
    first.continue_matching = True
    result = verdict(event(), first, second)  # the next rule sees the new severity
    assert result.suppressed and result.severity == "warning"
    said, outcome = event_rules.describe(result, RuleBook.of([first, second], SERVICES))
    assert said == f"match rule {first.position} -> set severity warning, then match rule {second.position} -> suppress"
    assert outcome.startswith("Suppressed: stored as an alert on Web")


def test_rules_run_in_position_order_whatever_the_ids():
    late = rule(position=2, action="drop")
    early = rule(position=1, action="set_urgency", urgency="low")
    result = verdict(event(), late, early)
    assert result.urgency == "low" and not result.dropped


def test_global_rules_apply_first_then_the_service_rules():
    glob = rule(service_id=None, action="set_severity", severity="info")
    own = rule(conditions=[("severity", "equals", "info")], action="drop")
    result = verdict(event(), glob, own)
    assert result.dropped
    assert [s.rule.label for s in result.steps] == [f"global rule {glob.position}", f"rule {own.position}"]
    suppressing = rule(service_id=None, action="suppress")
    assert verdict(event(), suppressing, own).suppressed  # suppress ends it: the service's rules never run


def test_a_route_applies_the_target_services_rules_and_happens_once():
    to_db = rule(service_id=1, action="route", route_to_service_id=2, name="to db")
    on_db = rule(service_id=2, action="set_urgency", urgency="low", continue_matching=True)
    back = rule(service_id=2, action="route", route_to_service_id=1)
    result = verdict(event(), to_db, on_db, back)
    assert result.service_id == 2 and result.urgency == "low"
    assert [s.effect for s in result.steps] == [
        "route to Database",
        "set urgency low",
        "route ignored: an event is routed once",
    ]
    assert result.steps[0].rule.label == f"rule {to_db.position} (to db)"


def test_acknowledge_and_resolve_only_follow_routes():
    suppress = rule(action="suppress")
    result = verdict(event(action="resolve", summary=""), suppress)
    assert not result.suppressed and not result.steps[0].applied
    routed = verdict(event(action="resolve"), rule(action="route", route_to_service_id=2))
    assert routed.service_id == 2


@pytest.mark.parametrize(
    ("path", "parsed"),
    [
        ("severity", ("severity",)),
        ("custom_details", ("custom_details",)),
        ("custom_details.a.b", ("custom_details", "a", "b")),
        ("custom_details.disks[0].name", ("custom_details", "disks", 0, "name")),
        ("details.labels.k8s-app", ("details", "labels", "k8s-app")),
    ],
)
def test_well_formed_paths(path, parsed):
    assert event_rules.parse_path(path) == parsed


@pytest.mark.parametrize("path", ["", "custom_details.", "custom_details..a", "labels.team", "details", "a b", "x[y]"])
def test_paths_that_are_not_well_formed(path):
    with pytest.raises(event_rules.PathError):
        event_rules.parse_path(path)


def _errors(data, service_id=None) -> dict:
    with pytest.raises(ValidationError) as caught:
        event_rule_edit.clean_rule(data, service_id)
    return caught.value.fields


def test_validation_names_each_bad_field(app):
    service = factories_events.make_service(name="Web")
    errors = _errors(
        {
            "action": "set_severity",
            "severity": "loud",
            "conditions": [
                {"field": "summary", "operator": "matches", "value": "disk ("},
                {"field": "custom_details..env", "operator": "equals", "value": "x"},
                {"field": "summary", "operator": "like", "value": "x"},
            ],
        }
    )
    assert errors["conditions.0.value"].startswith("Not a valid regular expression")
    assert "dotted path" in errors["conditions.1.field"]
    assert errors["conditions.2.operator"].startswith("Use one of equals")
    assert errors["severity"].startswith("Use one of critical")
    assert "Use one of high, low" in _errors({"action": "set_urgency", "urgency": "urgent"})["urgency"]
    assert "No service" in _errors({"action": "route", "route_to_service_id": 999})["route_to_service_id"]
    same = _errors({"action": "route", "route_to_service_id": service.id}, service_id=service.id)
    assert "another service" in same["route_to_service_id"]
    assert "Use one of suppress" in _errors({"action": "explode"})["action"]
    assert "Unknown field" in _errors({"action": "drop", "colour": "red"})["colour"]


def test_a_rule_that_can_never_match_is_saved_with_a_warning(app):
    data = {"action": "suppress", "conditions": [{"field": "severity", "operator": "equals", "value": "sev1"}]}
    saved = event_rule_edit.save_rule(None, data)
    assert saved.position == 1
    assert event_rule_edit.warnings(saved) == [
        "Condition 1 can never match: the severity is always one of critical, error, warning, info."
    ]
    both = [{"field": "source", "operator": "equals", "value": v} for v in ("a", "b")]
    assert "never a match" in event_rule_edit.warnings({"match": "all", "conditions": both})[0]
    assert event_rule_edit.warnings({"match": "any", "conditions": both}) == []
    regex = [{"field": "severity", "operator": "matches", "value": "^sev"}]
    assert event_rule_edit.warnings({"match": "all", "conditions": regex})


def test_regexes_run_in_linear_time_and_backtracking_constructs_are_refused(app):
    """Rules run on every event: a pattern that would backtrack for ever with Python's re (nested
    quantifiers on a long near-miss) finishes at once under RE2; constructs RE2 lacks are refused."""
    catastrophic = rule(conditions=[("summary", "matches", r"^(a+)+$")], action="suppress")
    assert verdict(event(summary="a" * 5000 + "b"), catastrophic).suppressed is False
    assert verdict(event(summary="a" * 5000), catastrophic).suppressed is True
    for pattern in (r"(a)\1", r"(?<=a)b", r"x(?!y)"):
        message = _errors(
            {"action": "suppress", "conditions": [{"field": "summary", "operator": "matches", "value": pattern}]}
        )
        assert "RE2" in message["conditions.0.value"] and message["conditions.0.value"].startswith("Not a valid")
