"""Event rules API: a service's rules under /services/<id>/event-rules, the global rules (admins)
under /event-rules, and the tester. The rules are openduty.event_rule_edit and openduty.event_rules,
shared with the rules pages."""

from typing import Any

from flask import abort, url_for

from openduty import event_intake, event_rule_edit, event_rules
from openduty.errors import ValidationError
from openduty.event_formats import InvalidEvent, parse_sample
from openduty.extensions import db
from openduty.models import EventRule, Service
from openduty.views import for_global_rules
from openduty.views.api import bp, created, get_or_404, iso, json_body


def rule_json(rule: EventRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "service_id": rule.service_id,
        "position": rule.position,
        "name": rule.name,
        "match": rule.match,
        "conditions": rule.conditions,
        "action": rule.action,
        "severity": rule.severity,
        "urgency": rule.urgency,
        "route_to_service_id": rule.route_to_service_id,
        "continue": rule.continue_matching,
        "match_count": rule.match_count,
        "last_matched_at": iso(rule.last_matched_at),
        "warnings": event_rule_edit.warnings(rule),
        "created_at": iso(rule.created_at),
    }


def _scope(service_id: int | None) -> None:
    if service_id is not None:
        get_or_404(Service, service_id, "service")


def _rule(service_id: int | None, event_rule_id: int) -> EventRule:
    _scope(service_id)
    rule = event_rule_edit.rule_in(service_id, event_rule_id)
    if rule is None:
        abort(404, f"No event rule with id {event_rule_id} here.")
    return rule


def _location(service_id: int | None, event_rule_id: int) -> str:
    if service_id is None:
        return url_for("api.get_event_rule", global_rule_id=event_rule_id)
    return url_for("api.get_service_event_rule", service_id=service_id, event_rule_id=event_rule_id)


def list_rules(service_id: int | None):
    _scope(service_id)
    return {"event_rules": [rule_json(r) for r in event_rule_edit.rules_of(service_id)]}


def create_rule(service_id: int | None):
    _scope(service_id)
    rule = event_rule_edit.save_rule(service_id, json_body(event_rule_edit.RULE_FIELDS))
    db.session.commit()
    return created(rule_json(rule), _location(service_id, rule.id))


def get_rule(service_id: int | None, event_rule_id: int):
    return rule_json(_rule(service_id, event_rule_id))


def update_rule(service_id: int | None, event_rule_id: int):
    rule = _rule(service_id, event_rule_id)
    event_rule_edit.save_rule(service_id, json_body(event_rule_edit.RULE_FIELDS), rule)
    db.session.commit()
    return rule_json(rule)


def delete_rule(service_id: int | None, event_rule_id: int):
    event_rule_edit.delete_rule(_rule(service_id, event_rule_id))
    db.session.commit()
    return "", 204


def test_rules(service_id: int | None):
    """`{"event": {...}}` (an Events API v2 body or its payload) -> what the rules would do with it."""
    _scope(service_id)
    body = json_body(("event",))
    try:
        event = parse_sample(body.get("event"))
    except InvalidEvent as exc:
        raise ValidationError({"event": " ".join(exc.errors)}) from exc
    book = event_intake.rule_book()
    verdict = event_rules.evaluate(event, service_id, book)
    said, result = event_rules.describe(verdict, book)
    return {
        "steps": [
            {"rule_id": s.rule.id, "rule": s.rule.label, "effect": s.effect, "applied": s.applied}
            for s in verdict.steps
        ],
        "outcome": "dropped" if verdict.dropped else "suppressed" if verdict.suppressed else "incident",
        "service_id": verdict.service_id,
        "severity": verdict.severity,
        "urgency": verdict.urgency,
        "summary": f"This event would: {said}. {result}",
    }


# Each view serves a service's rules and, without a service, the global rules (its own endpoint,
# so that openduty.access gives each its rule: the owning team's managers, or admins).


_SERVICE = "/services/<int:service_id>/event-rules"
_GLOBAL = "/event-rules"
_ROUTES = (
    ("", "event_rules", list_rules, "GET"),
    ("", "event_rule", create_rule, "POST"),
    ("/<int:event_rule_id>", "event_rule", get_rule, "GET"),
    ("/<int:event_rule_id>", "event_rule", update_rule, "PATCH"),
    ("/<int:event_rule_id>", "event_rule", delete_rule, "DELETE"),
    ("/test", "event_rules", test_rules, "POST"),
)
for _path, _noun, _view, _method in _ROUTES:
    _verb = _view.__name__.split("_")[0]
    bp.add_url_rule(_SERVICE + _path, f"{_verb}_service_{_noun}", _view, methods=[_method])
    bp.add_url_rule(
        _GLOBAL + _path.replace("event_rule_id", "global_rule_id"),
        f"{_verb}_{_noun}",
        for_global_rules(_view),
        methods=[_method],
    )
