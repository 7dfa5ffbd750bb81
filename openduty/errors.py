"""Error handling: JSON errors for API clients, pages for people, rollback on failure.

API errors have one shape everywhere:
`{"error": {"code": "...", "message": "...", "fields": {"field": "what to fix"}}}`.
"""

from typing import Any

from flask import Flask, jsonify, render_template, request
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import Conflict, HTTPException, RequestEntityTooLarge

from openduty.extensions import db


class ApiError(Exception):
    """An error an API client caused; answered as JSON with `status`.

    `retry_after` (seconds), when given, is sent as the Retry-After header: a 429 or 503 says when
    to try again.
    """

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        fields: dict[str, str] | None = None,
        retry_after: int | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _CODES.get(status, "error")
        self.fields = fields or {}
        self.retry_after = retry_after


class ValidationError(ApiError):
    """Input that names fields to fix (422 for the API, re-rendered form for pages)."""

    def __init__(self, fields: dict[str, str], message: str | None = None):
        super().__init__(422, message or "Some fields are invalid: " + ", ".join(sorted(fields)), fields=fields)


_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


def error_body(status: int, message: str, code: str | None = None, fields: dict[str, Any] | None = None) -> dict:
    body: dict[str, Any] = {"code": code or _CODES.get(status, "error"), "message": message}
    if fields:
        body["fields"] = fields
    return {"error": body}


def _size(n: int) -> str:
    """Bytes as a short human size: 512 KB, 1 MB."""
    if n >= 1024 * 1024 and n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MB"
    if n >= 1024:
        return f"{n // 1024} KB"
    return f"{n} bytes"


def wants_json() -> bool:
    if request.path.startswith(("/api/", "/v2/", "/generic/", "/integrations/", "/healthz")):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        db.session.rollback()
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else {}
        return jsonify(error_body(exc.status, exc.message, exc.code, exc.fields)), exc.status, headers

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge):
        limit = request.max_content_length
        size = f" (at most {_size(limit)})" if limit else ""
        if request.content_length and limit and request.content_length <= limit:
            size = " (a form field is larger than this server accepts)"
        exc.description = f"The request is too large{size}; send less data."
        return http_error(exc)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if exc.code and exc.code >= 500:
            db.session.rollback()
        if wants_json():
            response = jsonify(error_body(exc.code or 500, exc.description or exc.name))
            response.status_code = exc.code or 500
            return response
        return render_template("errors/error.html", error=exc), exc.code

    @app.errorhandler(IntegrityError)
    def integrity_error(exc: IntegrityError):
        # The checks before a write ask the database first (unique names, existing ids); this is
        # what is left: a concurrent change won the race. Nothing was written.
        db.session.rollback()
        app.logger.warning("Integrity error on %s %s: %s", request.method, request.path, exc.orig)
        message = "This conflicts with a change stored meanwhile (e.g. a name that must be unique); reload and retry."
        return http_error(Conflict(message))

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        db.session.rollback()
        app.logger.exception("Unhandled error on %s %s", request.method, request.path)
        if wants_json():
            return jsonify(error_body(500, "Internal server error; the error was logged.")), 500
        return render_template("errors/error.html", error=None), 500
