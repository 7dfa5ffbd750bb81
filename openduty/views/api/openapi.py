"""`GET /api/v1/openapi.json`: the JSON API and the event endpoints, described as OpenAPI 3.1.

Public (no token): it describes shapes and rules, never data or secrets, so that tools can read it
before anyone has a token. tests/test_openapi.py keeps it true: every /api/v1 and ingest route is
described, every described path exists, and schemathesis checks live answers against it. The
schemas are in openapi_schemas, the operations in openapi_operations; this module assembles them.
"""

from typing import Any

from flask import jsonify

from openduty.views.api import bp, openapi_cover, openapi_intake, openapi_maintenance, openapi_reports
from openduty.views.api.openapi_operations import EVENT_OPERATIONS, EVENT_RESULT, HEARTBEAT_RESULT, OPERATIONS
from openduty.views.api.openapi_schemas import ANY_OBJECT, BODIES, ID, SCHEMAS, STR, param, ref


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _error_responses(schema: str = "Error") -> dict:
    return {"4XX": {"description": "What to fix, in `message` (and `fields`)", **_json(ref(schema))}}


def _path_params(path: str) -> list[dict]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    return [param(name, ID, "path") for name in names]


def build() -> dict:
    """The whole document (built per request: cheap, and always what this code answers)."""
    paths: dict[str, dict] = {}
    for method, path, summary, status, answer, body, query in [
        *OPERATIONS,
        *openapi_intake.OPERATIONS,
        *openapi_maintenance.OPERATIONS,
        *openapi_cover.OPERATIONS,
        *openapi_reports.OPERATIONS,
    ]:
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
    ping = {
        "summary": "A heartbeat's ping (GET or POST; any body or none is ignored)",
        "tags": ["events"],
        "security": [],
        "parameters": [param("key", STR, "path", "the heartbeat integration's key")],
        "responses": {
            "200": {"description": "Recorded (answered after the commit)", **_json(HEARTBEAT_RESULT)},
            **_error_responses("EventError"),
            "503": {"description": "Not recorded; retry after Retry-After", **_json(ref("EventError"))},
        },
    }
    paths["/heartbeat/{key}"] = {"get": ping, "post": ping}
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
            "schemas": {
                **SCHEMAS,
                **BODIES,
                **openapi_intake.SCHEMAS,
                **openapi_intake.BODIES,
                **openapi_maintenance.SCHEMAS,
                **openapi_cover.SCHEMAS,
                **openapi_reports.SCHEMAS,
            },
        },
    }


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 description of the API and the event endpoints (public)."""
    return jsonify(build())
