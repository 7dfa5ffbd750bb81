"""The OpenAPI description of the event rules API (docs/api.md, "Event rules"): its schemas, bodies
and operations, in the shapes of openapi_schemas and openapi_operations; openapi.build() adds them."""

from openduty import event_rules
from openduty.event_rule_edit import MAX_CONDITIONS, MAX_FIELD, MAX_VALUE
from openduty.models.event_rule import RULE_ACTIONS, URGENCIES
from openduty.models.incident import SEVERITIES
from openduty.views.api.openapi_schemas import (
    ANY_OBJECT,
    BOOL,
    ID,
    INT,
    NINT,
    NSTR,
    NTIME,
    STR,
    list_of,
    obj,
    ref,
    text,
)

CONDITION = obj(
    {"field": text(MAX_FIELD), "operator": {"enum": list(event_rules.OPERATORS)}, "value": text(MAX_VALUE)},
    required=("field", "operator"),
    closed=True,
)
RULE_FIELDS = {
    "name": {"type": ["string", "null"], "maxLength": 200},
    "match": {"enum": ["all", "any"]},
    "conditions": {"type": "array", "items": CONDITION, "maxItems": MAX_CONDITIONS},
    "action": {"enum": list(RULE_ACTIONS)},
    "severity": {"enum": [*SEVERITIES, None]},
    "urgency": {"enum": [*URGENCIES, None]},
    "route_to_service_id": {"anyOf": [ID, {"type": "null"}]},
    "continue": BOOL,
    "position": {"type": ["integer", "null"], "minimum": 1},
}
SCHEMAS = {
    "EventRule": obj(
        {
            "id": ID,
            "service_id": NINT,
            "position": INT,
            "name": STR,
            "match": {"enum": ["all", "any"]},
            "conditions": {"type": "array", "items": CONDITION},
            "action": {"enum": list(RULE_ACTIONS)},
            "severity": NSTR,
            "urgency": NSTR,
            "route_to_service_id": NINT,
            "continue": BOOL,
            "match_count": INT,
            "last_matched_at": NTIME,
            "warnings": {"type": "array", "items": STR},
            "created_at": NTIME,
        }
    ),
    "EventRuleTest": obj(
        {
            "steps": {
                "type": "array",
                "items": obj({"rule_id": ID, "rule": STR, "effect": STR, "applied": BOOL}),
            },
            "outcome": {"enum": ["incident", "suppressed", "dropped"]},
            "service_id": NINT,
            "severity": STR,
            "urgency": NSTR,
            "summary": STR,
        }
    ),
}
BODIES = {
    "EventRuleCreate": obj(RULE_FIELDS, required=("action",), closed=True),
    "EventRuleUpdate": obj(RULE_FIELDS, required=(), closed=True),
    "EventRuleSample": obj({"event": ANY_OBJECT}, closed=True),
}


def _operations(prefix: str, whose: str, rule_id: str) -> list[tuple]:
    one = prefix + "/{" + rule_id + "}"
    return [
        ("get", prefix, f"{whose} event rules, in order", 200, list_of("event_rules", ref("EventRule")), None, []),
        (
            "post",
            prefix,
            f"Add {whose.lower()} event rule (at the end, or at `position`)",
            201,
            ref("EventRule"),
            "EventRuleCreate",
            [],
        ),
        ("get", one, "An event rule (`warnings`: why it could never match)", 200, ref("EventRule"), None, []),
        ("patch", one, "Change or move an event rule", 200, ref("EventRule"), "EventRuleUpdate", []),
        ("delete", one, "Delete an event rule", 204, None, None, []),
        (
            "post",
            prefix + "/test",
            "What the rules would do with a sample event (nothing stored)",
            200,
            ref("EventRuleTest"),
            "EventRuleSample",
            [],
        ),
    ]


OPERATIONS = [
    *_operations("/services/{service_id}/event-rules", "A service's", "event_rule_id"),
    *_operations("/event-rules", "Global (admins)", "global_rule_id"),
]
