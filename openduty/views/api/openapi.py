"""`GET /api/v1/openapi.json`: the JSON API and the event endpoints, described as OpenAPI 3.1.

Public (no token): it describes shapes and rules, never data or secrets, so that tools can read it
before anyone has a token. tests/test_openapi.py keeps it true: every /api/v1 and ingest route is
described, every described path exists, and schemathesis checks live answers against it.
"""

from typing import Any

from flask import jsonify

from openduty import validation
from openduty.event_formats import MAX_DEDUP_KEY, MAX_SUMMARY
from openduty.incidents import MAX_PER_PAGE, STATUS_FILTERS
from openduty.models.incident import SEVERITIES
from openduty.models.schedule import SHIFT_UNITS
from openduty.models.service import INTEGRATION_KINDS
from openduty.models.user import CONTACT_KINDS
from openduty.views.api import bp

# --- Building blocks ------------------------------------------------------------------------------

ID = {"type": "integer", "minimum": 1, "maximum": validation.MAX_INTEGER}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
STR = {"type": "string"}
NSTR = {"type": ["string", "null"]}
TIME = {"type": "string", "format": "date-time"}
NTIME = {"type": ["string", "null"], "format": "date-time"}
NINT = {"type": ["integer", "null"]}
ANY_OBJECT = {"type": "object"}
# A date-time anyone sends: ISO 8601 with an offset, between validation.MIN_YEAR and MAX_YEAR.
SENT_TIME = {
    "type": "string",
    "format": "date-time",
    "description": f"ISO 8601 with a UTC offset, years {validation.MIN_YEAR} to {validation.MAX_YEAR}",
}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict, required: tuple[str, ...] | None = None, closed: bool = False) -> dict:
    """An object schema; `required` defaults to every property; `closed` refuses other properties."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": list(properties if required is None else required),
    }
    if closed:
        schema["additionalProperties"] = False
    return schema


def text(max_length: int, **extra) -> dict:
    return {"type": "string", "maxLength": max_length, **extra}


def nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def list_of(key: str, item: dict, **extra) -> dict:
    return obj({key: {"type": "array", "items": item}, **extra})


# --- Objects answered ------------------------------------------------------------------------------

USER_REF = obj({"id": ID, "name": STR, "email": STR})
SCHEMAS: dict[str, dict] = {
    "Error": obj(
        {
            "error": obj(
                {"code": STR, "message": STR, "fields": {"type": "object", "additionalProperties": STR}},
                required=("code", "message"),
            )
        }
    ),
    "EventError": obj({"status": STR, "message": STR, "errors": {"type": "array", "items": STR}}),
    "UserRef": USER_REF,
    "User": obj(
        {
            "id": ID,
            "email": STR,
            "name": STR,
            "time_zone": STR,
            "is_admin": BOOL,
            "active": BOOL,
            "has_password": BOOL,
            "auth_source": STR,
            "created_at": NTIME,
        }
    ),
    "ContactMethod": obj(
        {
            "id": ID,
            "user_id": ID,
            "kind": {"enum": list(CONTACT_KINDS)},
            "address": STR,
            "label": NSTR,
            "created_at": NTIME,
        }
    ),
    "NotificationRule": obj({"id": ID, "user_id": ID, "contact_method_id": ID, "delay_minutes": INT}),
    "Integration": obj(
        {"id": ID, "kind": {"enum": list(INTEGRATION_KINDS)}, "name": STR, "key": STR, "url": STR, "created_at": NTIME}
    ),
    "Service": obj(
        {
            "id": ID,
            "name": STR,
            "description": NSTR,
            "escalation_policy_id": NINT,
            "ack_timeout_minutes": NINT,
            "maintenance_until": NTIME,
            "disabled": BOOL,
            "created_at": NTIME,
            "integrations": {"type": "array", "items": ref("Integration")},
        }
    ),
    "Target": obj({"type": {"enum": ["user", "schedule"]}, "id": NINT, "name": NSTR}),
    "EscalationPolicy": obj(
        {
            "id": ID,
            "name": STR,
            "description": NSTR,
            "repeat_count": INT,
            "levels": {
                "type": "array",
                "items": obj(
                    {
                        "id": ID,
                        "position": INT,
                        "delay_minutes": INT,
                        "targets": {"type": "array", "items": ref("Target")},
                    }
                ),
            },
            "preview": {"type": "array", "items": ANY_OBJECT},
        },
        required=("id", "name", "description", "repeat_count", "levels"),
    ),
    "Layer": obj(
        {
            "id": ID,
            "position": INT,
            "name": STR,
            "kind": {"enum": ["rotation", "ical"]},
            "start": NSTR,
            "shift_length": NINT,
            "shift_unit": NSTR,
            "participants": {"type": "array", "items": INT},
            "restrictions": {"type": "array"},
            "rrules": {"type": "array"},
            "ical_url": NSTR,
            "ical_refreshed_at": NTIME,
            "ical_error": NSTR,
            "ical_unmatched": {"type": "array"},
            "events": INT,
            "imported": ANY_OBJECT,
        },
        required=("id", "position", "name", "kind"),
    ),
    "Schedule": obj(
        {
            "id": ID,
            "name": STR,
            "time_zone": STR,
            "description": NSTR,
            "layers": {"type": "array", "items": ref("Layer")},
            "on_call_now": {"type": "array", "items": ref("UserRef")},
            "gap_warning": NSTR,
            "ical_url": NSTR,
        }
    ),
    "Override": obj(
        {
            "id": ID,
            "schedule_id": ID,
            "user": nullable(ref("UserRef")),
            "start": TIME,
            "end": TIME,
            "note": NSTR,
            "created_by_id": NINT,
            "created_at": NTIME,
            "overlap": NSTR,
        },
        required=("id", "schedule_id", "user", "start", "end"),
    ),
    "Shift": obj(
        {
            "start": TIME,
            "end": TIME,
            "users": {"type": "array", "items": ref("UserRef")},
            "source": NSTR,
            "layer_id": NINT,
            "override_id": NINT,
        }
    ),
    "IncidentSummary": obj(
        {
            "id": ID,
            "number": NINT,
            "status": {"enum": ["triggered", "acknowledged", "resolved"]},
            "summary": STR,
            "severity": STR,
            "service_id": ID,
            "dedup_key": STR,
            "alert_count": INT,
            "created_at": NTIME,
            "acknowledged_at": NTIME,
            "resolved_at": NTIME,
        }
    ),
    "Incident": {
        "allOf": [
            ref("IncidentSummary"),
            obj(
                {
                    "service": obj({"id": ID, "name": STR}),
                    "source": NSTR,
                    "details": {"type": ["object", "null"]},
                    "last_event_at": NTIME,
                    "acknowledged_by": nullable(ref("UserRef")),
                    "resolved_by": nullable(ref("UserRef")),
                    "assigned_to": nullable(ref("UserRef")),
                    "escalation_level": INT,
                    "escalation_loop": INT,
                    "next_escalation_at": NTIME,
                    "snoozed_until": NTIME,
                    "changed": BOOL,
                },
                required=("service", "escalation_level", "escalation_loop"),
            ),
        ]
    },
    "LogEntry": obj(
        {
            "id": ID,
            "at": NTIME,
            "kind": STR,
            "message": NSTR,
            "actor": nullable(ref("UserRef")),
            "channel": NSTR,
            "data": {"type": ["object", "null"]},
        }
    ),
}

# --- Bodies sent (closed: unknown fields are refused) ---------------------------------------------

LAYER_BODY = obj(
    {
        "name": text(200),
        "kind": {"enum": ["rotation", "ical"]},
        "start": {"type": "string", "description": "wall-clock time in the schedule's zone, e.g. 2026-01-05T09:00"},
        "shift_length": {"type": "integer", "minimum": 1},
        "shift_unit": {"enum": list(SHIFT_UNITS)},
        "participants": {"type": "array", "items": {"anyOf": [ID, STR]}, "minItems": 1},
        "restrictions": {"type": "array", "items": ANY_OBJECT},
        "ical_url": STR,
        "ical_data": STR,
    },
    required=(),
    closed=True,
)
USER_FIELDS = {
    "email": STR,
    "name": text(200),
    "time_zone": STR,
    "is_admin": BOOL,
    "password": {"type": ["string", "null"], "maxLength": 200},
}
SERVICE_FIELDS = {
    "name": text(200),
    "description": {"type": ["string", "null"], "maxLength": 2000},
    "escalation_policy_id": nullable(ID),
    "ack_timeout_minutes": {"type": ["integer", "null"], "minimum": 1},
    "maintenance_until": nullable(SENT_TIME),
    "disabled": BOOL,
}
POLICY_FIELDS = {
    "name": text(200),
    "description": {"type": ["string", "null"], "maxLength": 2000},
    "repeat_count": {"type": "integer", "minimum": 0},
    "levels": {
        "type": "array",
        "items": obj(
            {
                "delay_minutes": {"type": "integer", "minimum": 0},
                "targets": {
                    "type": "array",
                    "minItems": 1,
                    "items": obj({"type": {"enum": ["user", "schedule"]}, "id": ID}),
                },
            },
            required=("targets",),
        ),
    },
}
SCHEDULE_FIELDS = {
    "name": text(200),
    "time_zone": STR,
    "description": {"type": ["string", "null"], "maxLength": 2000},
    "layers": {"type": "array", "items": LAYER_BODY},
}
NO_FIELDS = obj({}, closed=True)
BODIES: dict[str, dict] = {
    "UserCreate": obj(USER_FIELDS, required=("email", "name"), closed=True),
    "UserUpdate": obj({**USER_FIELDS, "active": BOOL, "current_password": STR}, required=(), closed=True),
    "ContactMethodCreate": obj(
        {
            "kind": {"enum": list(CONTACT_KINDS)},
            "address": STR,
            "label": {"type": ["string", "null"], "maxLength": 100},
        },
        required=("kind", "address"),
        closed=True,
    ),
    "NotificationRuleCreate": obj(
        {"contact_method_id": ID, "delay_minutes": {"type": ["integer", "null"], "minimum": 0}},
        required=("contact_method_id",),
        closed=True,
    ),
    "ServiceCreate": obj(SERVICE_FIELDS, required=("name",), closed=True),
    "ServiceUpdate": obj(SERVICE_FIELDS, required=(), closed=True),
    "IntegrationCreate": obj(
        {"kind": {"enum": list(INTEGRATION_KINDS)}, "name": {"type": ["string", "null"], "maxLength": 200}},
        required=("kind",),
        closed=True,
    ),
    "PolicyCreate": obj(POLICY_FIELDS, required=("name",), closed=True),
    "PolicyUpdate": obj(POLICY_FIELDS, required=(), closed=True),
    "ScheduleCreate": obj(SCHEDULE_FIELDS, required=("name",), closed=True),
    "ScheduleUpdate": obj(SCHEDULE_FIELDS, required=(), closed=True),
    "LayerCreate": LAYER_BODY,
    "LayerUpdate": {**LAYER_BODY, "properties": {**LAYER_BODY["properties"], "position": {"type": "integer"}}},
    "OverrideCreate": obj(
        {"user_id": ID, "start": SENT_TIME, "end": SENT_TIME, "note": {"type": ["string", "null"], "maxLength": 500}},
        required=("user_id", "start", "end"),
        closed=True,
    ),
    "Note": obj({"note": text(5000, minLength=1)}, closed=True),
    "Snooze": obj({"minutes": {"type": "integer", "minimum": 1}}, closed=True),
    "Reassign": obj({"user_id": ID}, closed=True),
    "NoFields": NO_FIELDS,
}

# --- Operations ------------------------------------------------------------------------------------


def _param(name: str, schema: dict, where: str = "query", description: str | None = None) -> dict:
    param = {"name": name, "in": where, "required": where == "path", "schema": schema}
    if description:
        param["description"] = description
    return param


RANGE = [
    _param("since", SENT_TIME, description="default now"),
    _param("until", SENT_TIME, description="default since + 7 days; at most 400 days after since"),
]
AT = [_param("at", SENT_TIME, description="default now")]
INCIDENT_FILTERS = [
    _param("status", {"enum": list(STATUS_FILTERS)}),
    _param("service_id", ID),
    _param("q", text(200), description="text in summary, dedup key or source, or #number"),
    _param("assigned_to", {"enum": ["me"]}),
    _param("page", {"type": "integer", "minimum": 1, "maximum": validation.MAX_INTEGER}),
    _param("per_page", {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE}),
]

# (method, path, summary, success status, answer schema or None, request body or None, query params)
OPERATIONS: list[tuple[str, str, str, int, dict | None, str | None, list]] = [
    ("get", "/users", "List users", 200, list_of("users", ref("User")), None, [_param("active", BOOL)]),
    ("post", "/users", "Create a user (admins)", 201, ref("User"), "UserCreate", []),
    ("get", "/users/{user_id}", "A user, with the caller's feed URL of their shifts", 200, ref("User"), None, []),
    (
        "patch",
        "/users/{user_id}",
        "Change a user (themselves, or anyone for admins)",
        200,
        ref("User"),
        "UserUpdate",
        [],
    ),
    ("delete", "/users/{user_id}", "Deactivate a user (admins)", 200, ref("User"), None, []),
    (
        "get",
        "/users/{user_id}/contact-methods",
        "A user's contact methods",
        200,
        list_of("contact_methods", ref("ContactMethod")),
        None,
        [],
    ),
    (
        "post",
        "/users/{user_id}/contact-methods",
        "Add a contact method",
        201,
        ref("ContactMethod"),
        "ContactMethodCreate",
        [],
    ),
    ("get", "/users/{user_id}/contact-methods/{method_id}", "A contact method", 200, ref("ContactMethod"), None, []),
    ("delete", "/users/{user_id}/contact-methods/{method_id}", "Remove a contact method", 204, None, None, []),
    (
        "get",
        "/users/{user_id}/notification-rules",
        "A user's notification rules",
        200,
        list_of("notification_rules", ref("NotificationRule")),
        None,
        [],
    ),
    (
        "post",
        "/users/{user_id}/notification-rules",
        "Add a notification rule",
        201,
        ref("NotificationRule"),
        "NotificationRuleCreate",
        [],
    ),
    (
        "get",
        "/users/{user_id}/notification-rules/{rule_id}",
        "A notification rule",
        200,
        ref("NotificationRule"),
        None,
        [],
    ),
    ("delete", "/users/{user_id}/notification-rules/{rule_id}", "Remove a notification rule", 204, None, None, []),
    (
        "post",
        "/contact-methods/{method_id}/test",
        "Send a test notification (queued)",
        202,
        obj({"notification_id": ID, "status": STR}),
        "NoFields",
        [],
    ),
    ("get", "/services", "List services", 200, list_of("services", ref("Service")), None, []),
    ("post", "/services", "Create a service (admins)", 201, ref("Service"), "ServiceCreate", []),
    ("get", "/services/{service_id}", "A service with its integrations", 200, ref("Service"), None, []),
    ("patch", "/services/{service_id}", "Change a service (admins)", 200, ref("Service"), "ServiceUpdate", []),
    ("delete", "/services/{service_id}", "Delete a service with its incidents (admins)", 204, None, None, []),
    (
        "get",
        "/services/{service_id}/integrations",
        "A service's integrations",
        200,
        list_of("integrations", ref("Integration")),
        None,
        [],
    ),
    (
        "post",
        "/services/{service_id}/integrations",
        "Add an integration (admins)",
        201,
        ref("Integration"),
        "IntegrationCreate",
        [],
    ),
    (
        "get",
        "/services/{service_id}/integrations/{integration_id}",
        "An integration",
        200,
        ref("Integration"),
        None,
        [],
    ),
    ("delete", "/services/{service_id}/integrations/{integration_id}", "Delete an integration", 204, None, None, []),
    (
        "post",
        "/services/{service_id}/integrations/{integration_id}/regenerate",
        "A new integration key (admins)",
        200,
        ref("Integration"),
        "NoFields",
        [],
    ),
    (
        "get",
        "/escalation-policies",
        "List escalation policies",
        200,
        list_of("escalation_policies", ref("EscalationPolicy")),
        None,
        [],
    ),
    ("post", "/escalation-policies", "Create a policy (admins)", 201, ref("EscalationPolicy"), "PolicyCreate", []),
    (
        "get",
        "/escalation-policies/{policy_id}",
        "A policy with its preview",
        200,
        ref("EscalationPolicy"),
        None,
        [],
    ),
    (
        "patch",
        "/escalation-policies/{policy_id}",
        "Change a policy (admins)",
        200,
        ref("EscalationPolicy"),
        "PolicyUpdate",
        [],
    ),
    ("delete", "/escalation-policies/{policy_id}", "Delete an unused policy (admins)", 204, None, None, []),
    ("get", "/schedules", "List schedules", 200, list_of("schedules", ref("Schedule")), None, []),
    ("post", "/schedules", "Create a schedule (admins)", 201, ref("Schedule"), "ScheduleCreate", []),
    ("get", "/schedules/{schedule_id}", "A schedule", 200, ref("Schedule"), None, []),
    ("patch", "/schedules/{schedule_id}", "Change a schedule (admins)", 200, ref("Schedule"), "ScheduleUpdate", []),
    ("delete", "/schedules/{schedule_id}", "Delete a schedule (admins)", 204, None, None, []),
    ("get", "/schedules/{schedule_id}/layers", "A schedule's layers", 200, list_of("layers", ref("Layer")), None, []),
    ("post", "/schedules/{schedule_id}/layers", "Add a layer on top (admins)", 201, ref("Layer"), "LayerCreate", []),
    ("get", "/schedules/{schedule_id}/layers/{layer_id}", "A layer", 200, ref("Layer"), None, []),
    (
        "patch",
        "/schedules/{schedule_id}/layers/{layer_id}",
        "Change or move a layer (admins)",
        200,
        ref("Layer"),
        "LayerUpdate",
        [],
    ),
    ("delete", "/schedules/{schedule_id}/layers/{layer_id}", "Remove a layer (admins)", 204, None, None, []),
    (
        "get",
        "/schedules/{schedule_id}/overrides",
        "Overrides overlapping since..until",
        200,
        list_of("overrides", ref("Override")),
        None,
        RANGE,
    ),
    (
        "post",
        "/schedules/{schedule_id}/overrides",
        "Put someone on call for a range",
        201,
        ref("Override"),
        "OverrideCreate",
        [],
    ),
    ("get", "/schedules/{schedule_id}/overrides/{override_id}", "An override", 200, ref("Override"), None, []),
    ("delete", "/schedules/{schedule_id}/overrides/{override_id}", "Remove an override", 204, None, None, []),
    (
        "get",
        "/schedules/{schedule_id}/oncall",
        "Who is on call at `at`",
        200,
        obj({"users": {"type": "array", "items": ref("UserRef")}, "start": NTIME, "end": NTIME, "source": NSTR}),
        None,
        AT,
    ),
    (
        "get",
        "/schedules/{schedule_id}/shifts",
        "Final shifts and gaps in since..until",
        200,
        obj(
            {
                "since": TIME,
                "until": TIME,
                "shifts": {"type": "array", "items": ref("Shift")},
                "gaps": {"type": "array", "items": obj({"start": TIME, "end": TIME})},
            }
        ),
        None,
        RANGE,
    ),
    (
        "get",
        "/oncalls",
        "Who is on call for every policy and level",
        200,
        obj({"at": TIME, "oncalls": {"type": "array", "items": ANY_OBJECT}}),
        None,
        [*AT, _param("escalation_policy_ids[]", {"type": "array", "items": ID})],
    ),
    (
        "get",
        "/incidents",
        "Incidents, newest first",
        200,
        obj(
            {
                "incidents": {"type": "array", "items": ref("IncidentSummary")},
                "page": INT,
                "per_page": INT,
                "total": INT,
                "more": BOOL,
            }
        ),
        None,
        INCIDENT_FILTERS,
    ),
    ("get", "/incidents/{incident_id}", "An incident", 200, ref("Incident"), None, []),
    (
        "get",
        "/incidents/{incident_id}/log",
        "An incident's timeline",
        200,
        list_of("log_entries", ref("LogEntry")),
        None,
        [],
    ),
    ("get", "/incidents/{incident_id}/log/{entry_id}", "A timeline entry", 200, ref("LogEntry"), None, []),
    ("post", "/incidents/{incident_id}/acknowledge", "Acknowledge", 200, ref("Incident"), "NoFields", []),
    ("post", "/incidents/{incident_id}/resolve", "Resolve", 200, ref("Incident"), "NoFields", []),
    (
        "post",
        "/incidents/{incident_id}/escalate",
        "Escalate to the next level now",
        200,
        ref("Incident"),
        "NoFields",
        [],
    ),
    ("post", "/incidents/{incident_id}/snooze", "Snooze for `minutes`", 200, ref("Incident"), "Snooze", []),
    ("post", "/incidents/{incident_id}/reassign", "Reassign to a user", 200, ref("Incident"), "Reassign", []),
    ("post", "/incidents/{incident_id}/notes", "Add a note to the timeline", 201, ref("LogEntry"), "Note", []),
]

EVENT_RESULT = obj({"status": STR, "message": STR}, required=("status", "message"))
V2_EVENT = obj(
    {
        "routing_key": STR,
        "event_action": {"enum": ["trigger", "acknowledge", "resolve"]},
        "dedup_key": text(MAX_DEDUP_KEY),
        "payload": obj(
            {
                "summary": text(MAX_SUMMARY),
                "source": STR,
                "severity": {"enum": list(SEVERITIES)},
                "custom_details": ANY_OBJECT,
            },
            required=("summary", "source", "severity"),
        ),
    },
    required=("routing_key", "event_action"),
)
V1_EVENT = obj(
    {
        "service_key": STR,
        "event_type": {"enum": ["trigger", "acknowledge", "resolve"]},
        "incident_key": STR,
        "description": STR,
        "details": ANY_OBJECT,
    },
    required=("service_key", "event_type"),
)
KEY = [_param("key", STR, "path", "the integration key")]
# (path, summary, success status, body schema, path params) of the ingest endpoints (docs/integrations.md).
EVENT_OPERATIONS = [
    ("/v2/enqueue", "PagerDuty Events API v2", 202, V2_EVENT, []),
    ("/generic/2010-04-15/create_event.json", "PagerDuty Events API v1", 200, V1_EVENT, []),
    ("/api/create_event", "The original Openduty event API (JSON or form)", 201, ANY_OBJECT, []),
    ("/integrations/alertmanager/{key}", "Prometheus Alertmanager webhook", 200, ANY_OBJECT, KEY),
    ("/integrations/generic/{key}", "Plain JSON webhook", 202, ANY_OBJECT, KEY),
]


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _error_responses(schema: str = "Error") -> dict:
    return {"4XX": {"description": "What to fix, in `message` (and `fields`)", **_json(ref(schema))}}


def _path_params(path: str) -> list[dict]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    return [_param(name, ID, "path") for name in names]


def build() -> dict:
    """The whole document (built per request: cheap, and always what this code answers)."""
    paths: dict[str, dict] = {}
    for method, path, summary, status, answer, body, query in OPERATIONS:
        operation: dict[str, Any] = {
            "summary": summary,
            "parameters": _path_params(path) + query,
            "responses": {
                str(status): {"description": summary, **(_json(answer) if answer is not None else {})},
                **_error_responses(),
            },
        }
        if body is not None:
            operation["requestBody"] = {"required": body != "NoFields", **_json(ref(body))}
        paths.setdefault("/api/v1" + path, {})[method] = operation
    paths["/api/v1/openapi.json"] = {
        "get": {
            "summary": "This description (public: it holds no data and no secrets)",
            "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1", **_json(ANY_OBJECT)}},
        }
    }
    for path, summary, status, body, params in EVENT_OPERATIONS:
        paths[path] = {
            "post": {
                "summary": summary,
                "tags": ["events"],
                "security": [],
                "parameters": params,
                "requestBody": {"required": True, **_json(body)},
                "responses": {
                    str(status): {"description": "Stored (answered only after the commit)", **_json(EVENT_RESULT)},
                    **_error_responses("EventError"),
                    "503": {"description": "Not stored; retry after Retry-After", **_json(ref("EventError"))},
                },
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Openduty API",
            "version": "1",
            "description": "The JSON REST API (docs/api.md) and the event endpoints (docs/integrations.md).",
        },
        "servers": [{"url": "/"}],
        "security": [{"token": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "token": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "`Token <token>`; create one on your profile.",
                }
            },
            "schemas": {**SCHEMAS, **BODIES},
        },
    }


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 description of the API and the event endpoints (public)."""
    return jsonify(build())
