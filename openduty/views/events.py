"""Ingest endpoints: every inbound event format, parsed into Events (see openduty.event_formats).

Each endpoint only parses, checks the rate limit and answers in its format's own dialect; the
events all go through `event_batcher.submit()`. The answer is sent only after the commit. Beside
them, two ingest endpoints that store no event: change events (openduty.change_events) and
heartbeat pings (openduty.heartbeats), each one short transaction.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from openduty import change_events, event_formats, heartbeats, validation
from openduty.event_batcher import submit
from openduty.event_commit import RETRY_AFTER_SECONDS, OutcomeUnknown, discard_transaction, unavailable
from openduty.event_formats import MAX_BODY_BYTES, InvalidEvent
from openduty.event_rate_limit import seconds_until_allowed
from openduty.events import Event, Outcome
from openduty.extensions import csrf, db
from openduty.integration_keys import key_refusal
from openduty.transactions import begin_write

bp = Blueprint("events", __name__)
csrf.exempt(bp)  # machine-to-machine: authenticated by the integration key, not a session

log = logging.getLogger(__name__)


@bp.before_request
def limit_body_size() -> None:
    request.max_content_length = MAX_BODY_BYTES


@dataclass(frozen=True)
class Dialect:
    """How one format answers: the success body and status, and its error body."""

    ok_status: int
    ok: Callable[[list[Outcome]], dict[str, Any]]
    error_status: str = "invalid event"
    error_message: str = "Event object is invalid"
    # How an unknown or disabled key is answered: 400 in the body-key formats, 404 in the URL ones.
    unknown_key_status: int = 400


def _dedup(outcomes: list[Outcome]) -> dict[str, Any]:
    return {"status": "success", "message": "Event processed", "dedup_key": outcomes[0].dedup_key}


def _incident_key(outcomes: list[Outcome]) -> dict[str, Any]:
    return {"status": "success", "message": "Event processed", "incident_key": outcomes[0].dedup_key}


V2 = Dialect(202, _dedup)
V1 = Dialect(200, _incident_key)
LEGACY = Dialect(201, _incident_key, error_status="failure", unknown_key_status=404)
ALERTMANAGER = Dialect(
    200,
    lambda outcomes: {"status": "success", "message": "Event processed", "alerts": len(outcomes)},
    unknown_key_status=404,
)
GENERIC = Dialect(202, _dedup, unknown_key_status=404)
CHANGE = Dialect(202, lambda outcomes: {"status": "success", "message": "Change event processed"})
HEARTBEAT = Dialect(200, lambda outcomes: {}, error_message="Heartbeat not recorded", unknown_key_status=404)


# The body's "status" for answers that are not about the event's content.
_STATUS_TEXTS = {429: "throttle event", 500: "error", 503: "unavailable"}


def _error(dialect: Dialect, status: int, errors: list[str], message: str | None = None, headers=None):
    kind = _STATUS_TEXTS.get(status, dialect.error_status)
    body = {"status": kind, "message": message or dialect.error_message, "errors": errors}
    return jsonify(body), status, headers or {}


def _json_body() -> Any:
    """The parsed JSON body (whatever Content-Type the sender used: several send text/plain)."""
    raw = request.get_data(cache=False)
    if not raw:
        raise InvalidEvent(["The body is empty; send the event as a JSON object."])
    try:
        return validation.loads(raw)
    except validation.JsonTooDeep as exc:
        raise InvalidEvent([str(exc)]) from exc
    except ValueError as exc:  # (UnicodeDecodeError is one)
        raise InvalidEvent([f"The body is not valid JSON: {exc}."]) from exc


def _form_or_json_body() -> Any:
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return request.form.to_dict()
    return _json_body()


def _parse(dialect: Dialect, parse: Callable[[], Any]):
    """(what `parse` returned, None), or (None, the answer that refuses the body)."""
    try:
        return parse(), None
    except RequestEntityTooLarge:
        size = f"{MAX_BODY_BYTES // 1024} KB"
        return None, _error(dialect, 413, [f"The body is larger than {size}."], f"Request body is larger than {size}")
    except InvalidEvent as exc:
        return None, _error(dialect, exc.status, exc.errors)


def _throttled(dialect: Dialect, routing_key: str, count: int = 1):
    """The 429 answer if the key is over its rate limit, else None."""
    wait = seconds_until_allowed(routing_key, count)
    if not wait:
        return None
    return _error(
        dialect,
        429,
        [f"Too many events for this integration key; retry after {wait} seconds."],
        "Requests for this integration key are arriving too quickly",
        {"Retry-After": str(wait)},
    )


def _not_stored(dialect: Dialect, exc: Exception):
    """The answer when storing failed: 503 (retry later) if the database is unavailable, else 500."""
    if not unavailable(exc):
        log.exception("Ingest failed")
        problem = ["The event was not stored: an internal error occurred (it was logged)."]
        return _error(dialect, 500, problem, "Internal server error")
    log.warning("Ingest: events not stored, the database is unavailable: %s", exc)
    wait = RETRY_AFTER_SECONDS
    problem = [f"The event was not stored: the database is unavailable. Retry after {wait} seconds."]
    return _error(dialect, 503, problem, "Service temporarily unavailable", {"Retry-After": str(wait)})


def _refused(dialect: Dialect, result: str, unknown: str | None = None):
    if result == "disabled":
        problem = "The service of this integration key is disabled; enable it to accept events."
    else:
        problem = unknown or "Invalid routing key: no integration has this key (it may have been regenerated)."
    return _error(dialect, dialect.unknown_key_status, [problem])


def ingest(dialect: Dialect, parse: Callable[[], list[Event]], url_key: str | None = None):
    """Parse, rate-limit, submit and answer: the one path every endpoint takes."""
    parsed, refusal = _parse(dialect, parse)
    if refusal is not None:
        return refusal
    if parsed:
        throttled = _throttled(dialect, parsed[0].routing_key, len(parsed))
        if throttled is not None:
            return throttled
    try:
        outcomes = submit(parsed)
        if not parsed and url_key is not None:  # nothing to store, but the key must still be right
            refusal = key_refusal(url_key)
            outcomes = [Outcome(refusal, "")] if refusal else []
    except OutcomeUnknown:
        log.exception("Ingest: the database connection was lost while committing")
        problem = [
            "The database connection was lost while the event was being committed: it may or may not be "
            "stored. Retry with the same dedup_key, which folds into the incident if it was."
        ]
        return _error(dialect, 500, problem, "Event outcome unknown")
    except Exception as exc:
        return _not_stored(dialect, exc)
    rejected = [o for o in outcomes if not o.accepted]
    if rejected:
        return _refused(dialect, rejected[0].result)
    if not outcomes:  # an Alertmanager webhook with no alerts
        return jsonify(dialect.ok([])), dialect.ok_status
    return jsonify(dialect.ok(outcomes)), dialect.ok_status


@bp.post("/v2/enqueue")
def enqueue_v2():
    """PagerDuty Events API v2."""
    return ingest(V2, lambda: [event_formats.parse_v2(_json_body())])


@bp.post("/generic/2010-04-15/create_event.json")
def create_event_v1():
    """PagerDuty Events API v1 (the "generic" API)."""
    return ingest(V1, lambda: [event_formats.parse_v1(_json_body())])


@bp.post("/api/create_event")
def create_event_legacy():
    """The original Openduty event API (JSON or form fields)."""
    return ingest(LEGACY, lambda: [event_formats.parse_legacy(_form_or_json_body())])


@bp.post("/integrations/alertmanager/<key>")
def alertmanager(key: str):
    """Prometheus Alertmanager webhook receiver (version 4)."""
    return ingest(ALERTMANAGER, lambda: event_formats.parse_alertmanager(key, _json_body()), url_key=key)


@bp.post("/integrations/generic/<key>")
def generic(key: str):
    """Plain JSON webhook."""
    return ingest(GENERIC, lambda: [event_formats.parse_generic(key, _json_body())])


@bp.post("/v2/change/enqueue")
def enqueue_change():
    """PagerDuty change events: stored on the routing key's service (an Events API v2 integration)."""
    change, refusal = _parse(CHANGE, lambda: event_formats.parse_change(_json_body()))
    if refusal is not None:
        return refusal
    throttled = _throttled(CHANGE, change.routing_key)
    if throttled is not None:
        return throttled
    try:
        change_events.record(change)
        db.session.commit()
    except change_events.ChangeRefused as exc:
        discard_transaction()
        unknown = "Invalid routing key: no Events API v2 integration has this key (it may have been regenerated)."
        return _refused(CHANGE, exc.result, unknown)
    except Exception as exc:
        discard_transaction()
        return _not_stored(CHANGE, exc)
    return jsonify(CHANGE.ok([])), CHANGE.ok_status


@bp.route("/heartbeat/<key>", methods=["GET", "POST"])
def heartbeat(key: str):
    """A heartbeat's ping (GET or POST, any body or none: `curl` in a cron job will do)."""
    try:
        event_formats.url_key(key)
    except InvalidEvent as exc:  # it cannot be a key of ours: as unknown as any other
        return _error(HEARTBEAT, 404, exc.errors)
    throttled = _throttled(HEARTBEAT, key)
    if throttled is not None:
        return throttled
    try:
        begin_write()
        beat = heartbeats.ping(key)
        due = beat and beat.due_at and beat.due_at.isoformat()
        body = None if beat is None else {"state": beat.shown_state, "due_at": due or None}
        db.session.commit()
    except Exception as exc:
        discard_transaction()
        return _not_stored(HEARTBEAT, exc)
    if body is None:
        return _refused(HEARTBEAT, "unknown_key", "No heartbeat has this key (it may have been regenerated).")
    return jsonify({"status": "success", "message": "Heartbeat received", **body}), HEARTBEAT.ok_status
