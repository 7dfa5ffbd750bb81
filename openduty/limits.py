"""App-wide request limits, so that no request is too big or too deep to answer with a clear 4xx.

- Body size: every request body is limited to `MAX_CONTENT_LENGTH` (config.py); a view that takes
  larger bodies (an uploaded calendar) says so with `@allow_body_bytes(...)`. Too large -> 413 with
  a message (openduty.errors).
- Ids in URLs: `<int:...>` matches only what an id can be (1 to MAX_INTEGER); anything larger is a
  page that does not exist (404), on every route, so no view ever sees an id the database cannot hold.
- JSON: every `request.get_json()` parses with `validation.loads`, so JSON nested deeper than
  `validation.MAX_JSON_DEPTH`, or not strict JSON (NaN, Infinity), is a 400 that says so. Code
  that parses raw bodies itself (the ingest endpoints) calls `validation.loads` directly.
"""

from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, request
from flask import Request as FlaskRequest
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import BadRequest, NotFound
from werkzeug.routing import IntegerConverter

from openduty import validation


class IdConverter(IntegerConverter):
    """`<int:...>` in every route: a whole number an id column can hold; a larger one is a 404.

    It raises NotFound itself: a failed conversion would let Werkzeug answer 405 when a route with
    the same path exists for another method.
    """

    def to_python(self, value: str) -> int:
        number = super().to_python(value)
        if number > validation.MAX_INTEGER:
            raise NotFound(f"Nothing has the id {value[:30]}: ids are at most {validation.MAX_INTEGER}.")
        return number


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, except that parsing request bodies goes through `validation.loads`."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return validation.loads(s)


class Request(FlaskRequest):
    """Says why a JSON body was refused (Flask hides the reason outside debug mode)."""

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if e is None:  # not sent as JSON: Flask's 415
            return super().on_json_loading_failed(e)
        if isinstance(e, validation.JsonTooDeep):
            raise BadRequest(str(e))
        raise BadRequest(f"The body is not valid JSON: {e}.")


def allow_body_bytes(limit: int | Callable[[], int]):
    """Let one view take bodies up to `limit` bytes (or `limit()`), instead of MAX_CONTENT_LENGTH."""

    def mark(view):
        view.max_body_bytes = limit
        return view

    return mark


def body_limit() -> int | None:
    """The body size this request may have: its view's own limit, else MAX_CONTENT_LENGTH."""
    view = current_app.view_functions.get(request.endpoint or "")
    limit = getattr(view, "max_body_bytes", None)
    if limit is None:
        return current_app.config["MAX_CONTENT_LENGTH"]
    return limit() if callable(limit) else limit


def register(app: Flask) -> None:
    """Install the limits. Call before any blueprint (routes bind their converters when added) and
    before CSRFProtect, whose check reads the form (and so the body)."""
    app.url_map.converters["int"] = IdConverter  # before any route is added
    app.request_class = Request
    app.json_provider_class = JSONProvider
    app.json = JSONProvider(app)

    @app.before_request
    def apply_body_limit() -> None:
        limit = body_limit()
        if limit != app.config["MAX_CONTENT_LENGTH"]:
            request.max_content_length = limit
