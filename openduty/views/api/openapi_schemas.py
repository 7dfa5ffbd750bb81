"""The OpenAPI description's data: schema building blocks, the objects answered, the bodies sent.

Kept apart from the operations (openapi_operations) and from the assembly and view (openapi), so
each reads as one table. The limits come from the code that enforces them (validation, models,
event_formats), so the description cannot drift from the checks. One module because the
components are one namespace that every `ref()` names: split, a schema and its references would
live apart (it passed 450 lines with the email integrations' settings).
"""

from typing import Any

from openduty import validation
from openduty.models.email_integration import DEDUP_SOURCES, MAX_REGEX_LENGTH
from openduty.models.heartbeat import HEARTBEAT_STATES, MAX_INTERVAL_SECONDS, MIN_INTERVAL_SECONDS
from openduty.models.incident import URGENCIES
from openduty.models.schedule import SHIFT_UNITS
from openduty.models.service import INTEGRATION_KINDS, SERVICE_URGENCIES
from openduty.models.user import CONTACT_KINDS
from openduty.services import MAX_AUTO_RESOLVE_HOURS, MAX_GROUP_WINDOW_MINUTES

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
    """A reference to a named schema in components."""
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
    """A string of at most `max_length` characters."""
    return {"type": "string", "maxLength": max_length, **extra}


def nullable(schema: dict) -> dict:
    """`schema` or null."""
    return {"anyOf": [schema, {"type": "null"}]}


# A user's shift notice settings (docs/notifications.md, "Before and after a shift").
SHIFT_NOTICE_FIELDS = {
    "reminder_hours": {"type": "integer", "minimum": 0, "maximum": 168},
    "reminder_contact_method_id": nullable(ID),
    "weekly_summary": BOOL,
}


def list_of(key: str, item: dict, **extra) -> dict:
    """A list answered under a plural key, as every list of the API is."""
    return obj({key: {"type": "array", "items": item}, **extra})


def param(name: str, schema: dict, where: str = "query", description: str | None = None) -> dict:
    """An operation parameter (in the query unless `where` says otherwise; path parameters are required)."""
    param = {"name": name, "in": where, "required": where == "path", "schema": schema}
    if description:
        param["description"] = description
    return param


DAYS = {"type": "array", "minItems": 1, "items": {"enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}}
URGENCY, SUPPORT_HOURS = {"enum": list(URGENCIES)}, obj({"time_zone": STR, "days": DAYS, "start": STR, "end": STR})
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
            "observer": BOOL,
            "role": {"enum": ["admin", "member", "observer"]},
            "active": BOOL,
            "has_password": BOOL,
            "auth_source": STR,
            "created_at": NTIME,
            **SHIFT_NOTICE_FIELDS,
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
    "NotificationRule": obj(
        {"id": ID, "user_id": ID, "contact_method_id": ID, "delay_minutes": INT, "urgency": URGENCY}
    ),
    "Integration": obj(
        {
            "id": ID,
            "kind": {"enum": list(INTEGRATION_KINDS)},
            "name": STR,
            "key": STR,
            "url": STR,
            "created_at": NTIME,
            "heartbeat": nullable(ref("Heartbeat")),
            "address": NSTR,  # email integrations: <key>@INBOUND_EMAIL_DOMAIN, the key shown as in `key`
            "email": nullable(ref("EmailSettings")),
        }
    ),
    "EmailSettings": obj({"dedup_source": {"enum": list(DEDUP_SOURCES)}, "dedup_regex": NSTR, "resolve_regex": NSTR}),
    "Heartbeat": obj(
        {
            "interval_seconds": INT,
            "grace_seconds": INT,
            "paused": BOOL,
            "state": {"enum": list(HEARTBEAT_STATES)},
            "last_ping_at": NTIME,
            "due_at": NTIME,
        }
    ),
    "ChangeEvent": obj(
        {
            "id": ID,
            "service_id": ID,
            "summary": STR,
            "source": STR,
            "timestamp": TIME,
            "custom_details": {},
            "links": {"type": "array", "items": obj({"href": STR, "text": STR})},
            "received_at": TIME,
        }
    ),
    "Service": obj(
        {
            "id": ID,
            "name": STR,
            "description": NSTR,
            "team_id": NINT,
            "escalation_policy_id": NINT,
            "ack_timeout_minutes": NINT,
            "maintenance_until": {
                **NTIME,
                "readOnly": True,
                "description": "the latest end of the maintenance windows covering the service now; null: none",
            },
            "disabled": BOOL,
            "auto_resolve_hours": NINT,
            "group_window_minutes": NINT,
            "urgency": {"enum": list(SERVICE_URGENCIES)},
            "support_hours": nullable(SUPPORT_HOURS),
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
            "team_id": NINT,
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
            "team_id": NINT,
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
            "urgency": URGENCY,
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
    "Team": obj(
        {
            "id": ID,
            "name": STR,
            "description": NSTR,
            "from_directory": BOOL,
            "members": {"type": "array", "items": obj({"user": USER_REF, "role": {"enum": ["member", "manager"]}})},
            "created_at": NTIME,
        }
    ),
    "AuditEntry": obj(
        {
            "id": ID,
            "at": TIME,
            "actor": STR,
            "actor_id": NINT,
            "action": STR,
            "object_type": STR,
            "object_id": NINT,
            "object_label": STR,
            "changes": {"type": "object", "description": "{field: [before, after]}, secrets masked"},
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
    "observer": BOOL,
    "password": {"type": ["string", "null"], "maxLength": 200},
}
SERVICE_FIELDS = {
    "name": text(200),
    "description": {"type": ["string", "null"], "maxLength": 2000},
    "team_id": nullable(ID),
    "escalation_policy_id": nullable(ID),
    "ack_timeout_minutes": {"type": ["integer", "null"], "minimum": 1},
    "disabled": BOOL,
    "auto_resolve_hours": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_AUTO_RESOLVE_HOURS},
    "group_window_minutes": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_GROUP_WINDOW_MINUTES},
    "urgency": {"enum": list(SERVICE_URGENCIES)},
    "support_hours": nullable(SUPPORT_HOURS),
}
POLICY_FIELDS = {
    "name": text(200),
    "description": {"type": ["string", "null"], "maxLength": 2000},
    "team_id": nullable(ID),
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
    "team_id": nullable(ID),
    "layers": {"type": "array", "items": LAYER_BODY},
}
_REGEX = {"type": ["string", "null"], "maxLength": MAX_REGEX_LENGTH}
_EMAIL = {"dedup_source": {"enum": list(DEDUP_SOURCES)}, "dedup_regex": _REGEX, "resolve_regex": _REGEX}
EMAIL_SETTINGS = obj(_EMAIL, required=(), closed=True)  # an email integration's settings as sent, each optional
NO_FIELDS = obj({}, closed=True)
# A heartbeat's settings (openduty.heartbeats): for kind heartbeat only; the interval is required there.
HEARTBEAT_SETTINGS = {
    "interval_seconds": {"type": "integer", "minimum": MIN_INTERVAL_SECONDS, "maximum": MAX_INTERVAL_SECONDS},
    "grace_seconds": {"type": "integer", "minimum": 0, "maximum": MAX_INTERVAL_SECONDS},
}
BODIES: dict[str, dict] = {
    "UserCreate": obj(USER_FIELDS, required=("email", "name"), closed=True),
    "UserUpdate": obj(
        {**USER_FIELDS, "active": BOOL, "current_password": STR, **SHIFT_NOTICE_FIELDS}, required=(), closed=True
    ),
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
        {"contact_method_id": ID, "delay_minutes": {"type": ["integer", "null"], "minimum": 0}, "urgency": URGENCY},
        required=("contact_method_id",),
        closed=True,
    ),
    "ServiceCreate": obj(SERVICE_FIELDS, required=("name",), closed=True),
    "ServiceUpdate": obj(SERVICE_FIELDS, required=(), closed=True),
    "IntegrationCreate": obj(
        {
            "kind": {"enum": list(INTEGRATION_KINDS)},
            "name": {"type": ["string", "null"], "maxLength": 200},
            **HEARTBEAT_SETTINGS,
            "email": EMAIL_SETTINGS,
        },
        required=("kind",),
        closed=True,
    ),
    "HeartbeatUpdate": obj({**HEARTBEAT_SETTINGS, "paused": BOOL}, required=(), closed=True),
    "IntegrationUpdate": obj(
        {"name": {"type": ["string", "null"], "maxLength": 200}, "email": EMAIL_SETTINGS}, required=(), closed=True
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
    "Urgency": obj({"urgency": URGENCY}, closed=True),
    "NoFields": NO_FIELDS,
    "TeamBody": obj(
        {"name": text(200), "description": {"type": "string", "maxLength": 2000}}, required=(), closed=True
    ),
    "TeamMemberBody": obj({"user_id": ID, "role": {"enum": ["member", "manager"]}}, required=("user_id",), closed=True),
}
