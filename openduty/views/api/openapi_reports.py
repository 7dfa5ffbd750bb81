"""The OpenAPI description of the reports API (openduty.views.api.reports): its objects and
operations, merged into the document by openapi.build()."""

from openduty.report_periods import MAX_COUNT, PERIODS
from openduty.views.api.openapi_schemas import ID, INT, NINT, STR, TIME, obj, param, ref

NUMBER = {"type": "number"}
NNUMBER = {"type": ["number", "null"]}
DURATION = obj({"count": INT, "median_seconds": NNUMBER, "p90_seconds": NNUMBER})
ENVELOPE = {
    "period": {"enum": list(PERIODS)},
    "time_zone": STR,
    "since": {"type": "string", "format": "date"},
    "until": {"type": "string", "format": "date"},
    "service_id": NINT,
    "team_id": NINT,
}
PERIOD = obj({"label": STR, "start": TIME, "end": TIME})
SCHEMAS: dict[str, dict] = {
    "IncidentReport": obj(
        {
            **ENVELOPE,
            "periods": {
                "type": "array",
                "items": obj(
                    {**PERIOD["properties"], "incidents": INT, "escalated": INT, "mtta": DURATION, "mttr": DURATION}
                ),  # fmt: skip
            },
        }
    ),
    "PageReport": obj(
        {
            **ENVELOPE,
            "periods": {"type": "array", "items": PERIOD},
            "people": {
                "type": "array",
                "items": obj(
                    {
                        "user_id": ID,
                        "name": STR,
                        "time_zone": STR,
                        "pages": INT,
                        "out_of_hours": INT,
                        "periods": {"type": "array", "items": obj({"label": STR, "pages": INT, "out_of_hours": INT})},
                    }
                ),  # fmt: skip
            },
        }
    ),
    "OnCallReport": obj(
        {
            **ENVELOPE,
            "periods": {"type": "array", "items": PERIOD},
            "people": {
                "type": "array",
                "items": obj(
                    {
                        "user_id": ID,
                        "name": STR,
                        "time_zone": STR,
                        "hours": NUMBER,
                        "periods": {"type": "array", "items": obj({"label": STR, "hours": NUMBER})},
                    }
                ),  # fmt: skip
            },
        }
    ),
}

DAY = {"type": "string", "format": "date"}
QUERY = [
    param("period", {"enum": list(PERIODS)}, description="week (from Monday) or month (default week)"),
    param("since", DAY, description="the first day (in the caller's time zone); default: 8 weeks or 6 months back"),
    param(
        "until",
        DAY,
        description=f"the last day, inclusive (default today); at most {MAX_COUNT['week']} weeks or "
        f"{MAX_COUNT['month']} months from since",
    ),
    param("service_id", ID, description="one service's incidents, pages and the schedules its policy pages"),
    param("team_id", ID, description="the team's services' incidents and pages, its own and its services' schedules"),
]
# Rows as openapi_operations.OPERATIONS: (method, path, summary, status, answer, body, query params).
OPERATIONS: list[tuple[str, str, str, int, dict | None, str | None, list]] = [
    ("get", "/reports/incidents", "Per period: incidents, escalations beyond level 1, MTTA and MTTR (median, p90)",
     200, ref("IncidentReport"), None, QUERY),
    ("get", "/reports/pages", "Per person and period: pages sent, and those out of hours (22:00-07:00 in their zone)",
     200, ref("PageReport"), None, QUERY),
    ("get", "/reports/oncall", "Per person and period: hours on call in the final schedules", 200,
     ref("OnCallReport"), None, QUERY),
]  # fmt: skip
