"""The OpenAPI description of the maintenance windows API (openduty.views.api.maintenance): its
objects, bodies and operations, merged into the document by openapi.build()."""

from openduty.maintenance import MAX_LENGTH, MAX_SERVICES, PAST_SHOWN
from openduty.views.api.openapi_schemas import ID, NINT, NTIME, SENT_TIME, STR, TIME, list_of, obj, param, ref

STATES = ["upcoming", "current", "past"]
WINDOW_FIELDS = {
    "start": SENT_TIME,
    "end": {**SENT_TIME, "description": f"after start, at most {MAX_LENGTH.days} days later, in the future"},
    "description": {"type": ["string", "null"], "maxLength": 1000},
    "service_ids": {"type": "array", "items": ID, "minItems": 1, "maxItems": MAX_SERVICES},
}
SCHEMAS: dict[str, dict] = {
    "MaintenanceWindow": obj(
        {
            "id": ID,
            "start": TIME,
            "end": TIME,
            "state": {"enum": STATES},
            "description": STR,
            "service_ids": {"type": "array", "items": ID},
            "created_by_id": NINT,
            "created_at": NTIME,
        }
    ),
    "MaintenanceWindowCreate": obj(WINDOW_FIELDS, required=("start", "end", "service_ids"), closed=True),
    "MaintenanceWindowUpdate": obj(WINDOW_FIELDS, required=(), closed=True),
}

WINDOW = ref("MaintenanceWindow")
ONE = "/maintenance-windows/{window_id}"
FILTERS = [param("state", {"enum": STATES}), param("service_id", ID)]
# Rows as openapi_operations.OPERATIONS: (method, path, summary, status, answer, body, query params).
OPERATIONS: list[tuple[str, str, str, int, dict | None, str | None, list]] = [
    (
        "get",
        "/maintenance-windows",
        f"Current and upcoming maintenance windows (soonest first), then the latest {PAST_SHOWN} past ones",
        200,
        list_of("maintenance_windows", WINDOW),
        None,
        FILTERS,
    ),
    ("post", "/maintenance-windows", "Schedule a window (admins, managers of every service in it)", 201, WINDOW,
     "MaintenanceWindowCreate", []),
    ("get", ONE, "A maintenance window", 200, WINDOW, None, []),
    ("patch", ONE, "Change a window that has not ended (a started one keeps its start)", 200, WINDOW,
     "MaintenanceWindowUpdate", []),
    ("post", ONE + "/end", "End a current window now", 200, WINDOW, "NoFields", []),
    ("delete", ONE, "Delete a window", 204, None, None, []),
]  # fmt: skip
