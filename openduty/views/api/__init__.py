"""The JSON REST API under /api/v1, authenticated with `Authorization: Token <token>`.

One module per area registers its routes on `bp`; who may call each is in openduty.access.RULES.
Errors use the shape in openduty.errors.
Conventions (docs/api.md): a single object is answered flat (`{"id": ..., ...}`), a list under its
plural key (`{"users": [...]}`); a create answers 201 with `Location`; deleting answers 204 (except
DELETE user, which deactivates and answers the user); timestamps are ISO 8601 in UTC.
"""

from collections.abc import Iterable
from datetime import UTC
from typing import Any

from flask import Blueprint, g, jsonify, request
from werkzeug.exceptions import BadRequest

from openduty import validation
from openduty.errors import ApiError
from openduty.extensions import csrf
from openduty.models import User
from openduty.views import get_or_404  # noqa: F401  (the route modules take it from here)

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)


def api_user() -> User:
    """The caller, authenticated by its API token in openduty.access (which also checks admin rules)."""
    return g.api_user


def json_body(allowed: Iterable[str], *, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object, or a 400/415 that says what is wrong with it.

    Fields not in `allowed` are refused (422 naming them). With `optional` (actions that take no
    or few fields), no body at all counts as `{}`.
    """
    if optional and not request.get_data(cache=True):
        return {}
    if not request.is_json:
        raise ApiError(415, "Send a JSON body with 'Content-Type: application/json'.")
    try:
        body = request.get_json()
    except BadRequest as exc:  # not JSON, or nested too deep (openduty.limits says which)
        raise ApiError(400, exc.description or "The body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object.")
    validation.refuse_unknown(body, allowed)
    return body


def iso(value) -> str | None:
    """A timestamp as ISO 8601 in UTC (`2026-03-02T09:00:00+00:00`), whatever zone it was computed in."""
    if value is None:
        return None
    return (value.astimezone(UTC) if value.tzinfo is not None else value).isoformat()


def created(body: dict[str, Any], location: str):
    """201 with the new object (flat) and `Location` pointing at where it can be read again."""
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = location
    return response


# Route modules register themselves on `bp`.
from openduty.views.api import (  # noqa: E402,F401
    audit,
    cover_requests,
    escalation,
    event_rules,
    incidents,
    maintenance,
    oncalls,
    openapi,
    policies,
    reports,
    schedules,
    services,
    teams,
    users,
)
