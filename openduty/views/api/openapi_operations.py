"""The OpenAPI description's operations: every /api/v1 route and every ingest endpoint, one row each.

Each row names the method, path, summary, success status, answer schema, request body and query
parameters; openapi.build() turns the rows into paths. tests/test_openapi.py checks that the rows
and the app's routes are the same set.
"""

from openduty import validation
from openduty.audit import OBJECT_TYPES
from openduty.audit_log import MAX_PAGE_SIZE as MAX_AUDIT_PAGE
from openduty.change_events import MAX_PER_PAGE as MAX_CHANGES_PAGE
from openduty.event_formats import MAX_DEDUP_KEY, MAX_SHORT_FIELD, MAX_SUMMARY
from openduty.incident_lists import MAX_CURSOR, MAX_PER_PAGE, MAX_SEARCH, STATUS_FILTERS
from openduty.models.incident import SEVERITIES
from openduty.views.api.openapi_schemas import (
    ANY_OBJECT,
    BOOL,
    ID,
    INT,
    NINT,
    NSTR,
    NTIME,
    SENT_TIME,
    STR,
    TIME,
    list_of,
    obj,
    param,
    ref,
    text,
)

# --- Operations ------------------------------------------------------------------------------------

RANGE = [
    param("since", SENT_TIME, description="default now"),
    param("until", SENT_TIME, description="default since + 7 days; at most 400 days after since"),
]
AT = [param("at", SENT_TIME, description="default now")]
INCIDENT_FILTERS = [
    param("status", {"enum": list(STATUS_FILTERS)}),
    param("service_id", ID),
    param("team_id", STR, description="a team's id, mine (the caller's teams) or all (default)"),
    param("q", text(MAX_SEARCH), description="text in summary, dedup key or source, or #number"),
    param("assigned_to", {"enum": ["me"]}),
    param("per_page", {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE}),
    param(
        "cursor",
        text(MAX_CURSOR),
        description="where the page starts: follow the answer's `next` link (400 for a cursor no list gave out)",
    ),
    param(
        "page",
        {"type": "integer", "minimum": 1, "maximum": validation.MAX_INTEGER},
        description="an offset in pages (older clients; not with `cursor`, which is stable while incidents arrive)",
    ),
    param("total", BOOL, description="true: count every match into `total` (costs a scan of the matches)"),
]

AUDIT_FILTERS = [
    param("actor", text(300), description="part of the actor's email or name"),
    param("object_type", {"enum": list(OBJECT_TYPES)}),
    param("object_id", ID),
    param("since", STR, description="a date (2026-03-01, from its start in UTC) or an ISO 8601 time with offset"),
    param("until", STR, description="a date (up to its end in UTC) or an ISO 8601 time with offset"),
    param("before", ID, description="the keyset cursor: entries older than this id (from `next`)"),
    param("per_page", {"type": "integer", "minimum": 1, "maximum": MAX_AUDIT_PAGE}),
]

# (method, path, summary, success status, answer schema or None, request body or None, query params)
OPERATIONS: list[tuple[str, str, str, int, dict | None, str | None, list]] = [
    ("get", "/users", "List users", 200, list_of("users", ref("User")), None, [param("active", BOOL)]),
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
    (
        "patch",
        "/services/{service_id}/integrations/{integration_id}",
        "Change an integration's name or email settings (admins)",
        200,
        ref("Integration"),
        "IntegrationUpdate",
        [],
    ),
    ("delete", "/services/{service_id}/integrations/{integration_id}", "Delete an integration", 204, None, None, []),
    (
        "patch",
        "/services/{service_id}/integrations/{integration_id}/heartbeat",
        "Change a heartbeat's interval or grace, or pause / resume it (admins, managers)",
        200,
        ref("Integration"),
        "HeartbeatUpdate",
        [],
    ),
    (
        "get",
        "/services/{service_id}/change-events",
        "A service's change events, newest first",
        200,
        list_of("change_events", ref("ChangeEvent")),
        None,
        [
            param("since", SENT_TIME, description="changes at or after this time"),
            param("until", SENT_TIME, description="changes before this time"),
            param("per_page", {"type": "integer", "minimum": 1, "maximum": MAX_CHANGES_PAGE}),
        ],
    ),
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
        [*AT, param("escalation_policy_ids[]", {"type": "array", "items": ID})],
    ),
    (
        "get",
        "/incidents",
        "Incidents, newest first",
        200,
        obj(
            {
                "incidents": {"type": "array", "items": ref("IncidentSummary")},
                "page": NINT,
                "per_page": INT,
                "total": NINT,
                "more": BOOL,
                "next": NSTR,
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
    ("get", "/teams", "Teams with their members", 200, list_of("teams", ref("Team")), None, []),
    ("post", "/teams", "Create a team (admins)", 201, ref("Team"), "TeamBody", []),
    ("get", "/teams/{team_id}", "A team", 200, ref("Team"), None, []),
    ("patch", "/teams/{team_id}", "Change a team (admins, its managers)", 200, ref("Team"), "TeamBody", []),
    ("delete", "/teams/{team_id}", "Delete a team (admins)", 204, None, None, []),
    (
        "post",
        "/teams/{team_id}/members",
        "Add a member or change their role (admins, the team's managers)",
        200,
        ref("Team"),
        "TeamMemberBody",
        [],
    ),
    ("delete", "/teams/{team_id}/members/{user_id}", "Remove a member", 204, None, None, []),
    (
        "get",
        "/audit",
        "The audit log, newest first (admins)",
        200,
        obj({"entries": {"type": "array", "items": ref("AuditEntry")}, "next": NSTR}),
        None,
        AUDIT_FILTERS,
    ),
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
CHANGE_EVENT = obj(
    {
        "routing_key": STR,
        "payload": obj(
            {
                "summary": text(MAX_SUMMARY),
                "source": text(MAX_SHORT_FIELD),
                "timestamp": {"type": "string", "format": "date-time"},
                "custom_details": ANY_OBJECT,
            },
            required=("summary",),
        ),
        "links": {"type": "array", "items": obj({"href": STR, "text": STR}, required=("href",))},
    },
    required=("routing_key", "payload"),
)
KEY = [param("key", STR, "path", "the integration key")]
# (path, summary, success status, body schema, path params) of the ingest endpoints (docs/integrations.md).
EVENT_OPERATIONS = [
    ("/v2/enqueue", "PagerDuty Events API v2", 202, V2_EVENT, []),
    ("/generic/2010-04-15/create_event.json", "PagerDuty Events API v1", 200, V1_EVENT, []),
    ("/api/create_event", "The original Openduty event API (JSON or form)", 201, ANY_OBJECT, []),
    ("/integrations/alertmanager/{key}", "Prometheus Alertmanager webhook", 200, ANY_OBJECT, KEY),
    ("/integrations/generic/{key}", "Plain JSON webhook", 202, ANY_OBJECT, KEY),
    ("/v2/change/enqueue", "PagerDuty change events (an Events API v2 integration's key)", 202, CHANGE_EVENT, []),
]
HEARTBEAT_RESULT = obj({"status": STR, "message": STR, "state": STR, "due_at": NSTR})
