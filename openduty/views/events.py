"""Ingest endpoints: every inbound event format, parsed into Events (see openduty.event_formats).

Each endpoint only parses, checks the rate limit and answers in its format's own dialect; the
events all go through `event_batcher.submit()`. The answer is sent only after the commit. Beside
them, two ingest endpoints that store no event: change events (openduty.change_events) and
heartbeat pings (openduty.heartbeats), each one short transaction.
"""

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, g, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from openduty import change_events, event_formats, heartbeats, metrics, validation
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
    """How one format answers: the success body and status, and its error body; `kind` names it in
    the metrics (the `via` of its events)."""

    kind: str
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


V2 = Dialect("events_v2", 202, _dedup)
V1 = Dialect("events_v1", 200, _incident_key)
LEGACY = Dialect("openduty", 201, _incident_key, error_status="failure", unknown_key_status=404)
ALERTMANAGER = Dialect(
    "alertmanager",
    200,
    lambda outcomes: {"status": "success", "message": "Event processed", "alerts": len(outcomes)},
    unknown_key_status=404,
)
GENERIC = Dialect("generic", 202, _dedup, unknown_key_status=404)
CHANGE = Dialect("change", 202, lambda outcomes: {"status": "success", "message": "Change event processed"})
HEARTBEAT = Dialect(
    "heartbeat", 200, lambda outcomes: {}, error_message="Heartbeat not recorded", unknown_key_status=404
)


# The body's "status" for answers that are not about the event's content.
_STATUS_TEXTS = {429: "throttle event", 500: "error", 503: "unavailable"}
# Why an answer refused the events, for the metrics (any other status: the events were invalid).
_REASONS = {413: "too_large", 429: "throttled", 500: "error", 503: "unavailable"}


def counted(dialect: Dialect):
    """Count each answer of the wrapped endpoint once (openduty.metrics): its events accepted, by
    what they did, or refused, by why (`_ok` and `_error` say which); and how long it took."""

    def wrap(view):
        @functools.wraps(view)
        def counted_view(*args, **kwargs):
            started = time.perf_counter()
            try:
                return view(*args, **kwargs)
            finally:
                accepted, reason = g.pop("ingest_accepted", None), g.pop("ingest_refused", "error")
                events = g.pop("ingest_events", 1)
                if accepted is not None:
                    metrics.events_accepted(dialect.kind, accepted)
                else:
                    metrics.events_rejected(dialect.kind, reason, events)
                metrics.INGEST_SECONDS.labels(dialect.kind).observe(time.perf_counter() - started)

        return counted_view

    return wrap


def _ok(dialect: Dialect, body: dict[str, Any], results: list[str]):
    """The success answer; `results` what each event did (Outcome.result), for the metrics."""
    g.ingest_accepted = results
    return jsonify(body), dialect.ok_status


def _error(
    dialect: Dialect, status: int, errors: list[str], message: str | None = None, headers=None, reason: str = ""
):
    g.ingest_refused = reason or _REASONS.get(status, "invalid")
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
    return _error(dialect, dialect.unknown_key_status, [problem], reason=result)


def ingest(dialect: Dialect, parse: Callable[[], list[Event]], url_key: str | None = None):
    """Parse, rate-limit, submit and answer: the one path every endpoint takes."""
    parsed, refusal = _parse(dialect, parse)
    if refusal is not None:
        return refusal
    if parsed:
        g.ingest_events = len(parsed)
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
        return _error(dialect, 500, problem, "Event outcome unknown", reason="outcome_unknown")
    except Exception as exc:
        return _not_stored(dialect, exc)
    rejected = [o for o in outcomes if not o.accepted]
    if rejected:
        return _refused(dialect, rejected[0].result)
    if not outcomes:  # an Alertmanager webhook with no alerts
        return _ok(dialect, dialect.ok([]), [])
    return _ok(dialect, dialect.ok(outcomes), [o.result for o in outcomes])


@bp.post("/v2/enqueue")
@counted(V2)
def enqueue_v2():
    """PagerDuty Events API v2."""
    return ingest(V2, lambda: [event_formats.parse_v2(_json_body())])


@bp.post("/generic/2010-04-15/create_event.json")
@counted(V1)
def create_event_v1():
    """PagerDuty Events API v1 (the "generic" API)."""
    return ingest(V1, lambda: [event_formats.parse_v1(_json_body())])


@bp.post("/api/create_event")
@counted(LEGACY)
def create_event_legacy():
    """The original Openduty event API (JSON or form fields)."""
    return ingest(LEGACY, lambda: [event_formats.parse_legacy(_form_or_json_body())])


@bp.post("/integrations/alertmanager/<key>")
@counted(ALERTMANAGER)
def alertmanager(key: str):
    """Prometheus Alertmanager webhook receiver (version 4)."""
    return ingest(ALERTMANAGER, lambda: event_formats.parse_alertmanager(key, _json_body()), url_key=key)


@bp.post("/integrations/generic/<key>")
@counted(GENERIC)
def generic(key: str):
    """Plain JSON webhook."""
    return ingest(GENERIC, lambda: [event_formats.parse_generic(key, _json_body())])


@bp.post("/v2/change/enqueue")
@counted(CHANGE)
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
    return _ok(CHANGE, CHANGE.ok([]), ["recorded"])


@bp.route("/heartbeat/<key>", methods=["GET", "POST"])
@counted(HEARTBEAT)
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
    return _ok(HEARTBEAT, {"status": "success", "message": "Heartbeat received", **body}, ["received"])
