"""The OpenAPI description of the cover requests API (openduty.views.api.cover_requests): its
objects, bodies and operations, merged into the document by openapi.build()."""

from openduty.models.cover_request import COVER_STATUSES, NOTE_MAX_LENGTH
from openduty.views.api.openapi_schemas import (
    ID,
    INT,
    NINT,
    SENT_TIME,
    STR,
    TIME,
    USER_REF,
    list_of,
    nullable,
    obj,
    ref,
)

SCHEMAS: dict[str, dict] = {
    "CoverRequest": obj(
        {
            "id": ID,
            "schedule_id": ID,
            "layer_id": NINT,
            "requester": USER_REF,
            "start": TIME,
            "end": TIME,
            "note": STR,
            "status": {"enum": list(COVER_STATUSES)},
            "accepted_by": nullable(USER_REF),
            "override_id": NINT,
            "created_at": TIME,
        }
    ),
    "CoverRequestCreate": obj(
        {
            "start": {**SENT_TIME, "description": "in the future, within one of the caller's shifts here"},
            "end": {**SENT_TIME, "description": "after start; [start, end) is all the caller's on-call time"},
            "note": {"type": ["string", "null"], "maxLength": NOTE_MAX_LENGTH},
            "layer_id": {**NINT, "description": "ask only this rotation layer's people (default: all)"},
        },
        required=("start", "end"),
        closed=True,
    ),
}
CREATED = obj({**SCHEMAS["CoverRequest"]["properties"], "notified": INT})

COVER = ref("CoverRequest")
LIST = "/schedules/{schedule_id}/cover-requests"
ONE = LIST + "/{request_id}"
# Rows as openapi_operations.OPERATIONS: (method, path, summary, status, answer, body, query params).
OPERATIONS: list[tuple[str, str, str, int, dict | None, str | None, list]] = [
    ("get", LIST, "A schedule's cover requests: open ones (soonest first), then the latest others", 200,
     list_of("cover_requests", COVER), None, []),
    ("post", LIST, "Ask the others of the schedule's rotations to cover part of your shift (they are notified)",
     201, CREATED, "CoverRequestCreate", []),
    ("post", ONE + "/accept", "Accept: the first to accept gets the override (409 once taken)", 200, COVER,
     "NoFields", []),
    ("post", ONE + "/cancel", "Cancel an open request (whoever asked, or the team's managers)", 200, COVER,
     "NoFields", []),
]  # fmt: skip
