"""Log lines (text, or one JSON object a line with LOG_FORMAT=json) and the request id they carry.

Every web request gets an id: the caller's X-Request-ID when it is sane (up to 128 letters, digits
and `-_.:/+=@`), else a new one; the answer echoes it in X-Request-ID. The jobs a request enqueues
carry it in their meta (openduty.timers), and the worker runs them under it (openduty.worker), as
do the sends they start on sender threads (openduty.senders) and the jobs those enqueue: one grep
follows an event from its request to the pages it caused. Events the group commit applies
together run under the ids of all their requests (openduty.event_batcher: `joined`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from flask import Flask, g, request
from flask.logging import default_handler

REQUEST_ID_HEADER = "X-Request-ID"
# Where job meta keeps the id of the request that caused the job.
META_KEY = "request_id"
_SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=@-]{0,127}")
# A group-commit batch names at most this many of its requests (the rest as "+N").
MAX_BATCH_IDS = 10
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s"

_request_id: ContextVar[str | None] = ContextVar("openduty_request_id", default=None)
_job_id: ContextVar[str | None] = ContextVar("openduty_job_id", default=None)


def current_request_id() -> str | None:
    return _request_id.get()


def job_meta() -> dict[str, str]:
    """The meta a job enqueued now carries: the request id it runs under, if any."""
    request_id = _request_id.get()
    return {META_KEY: request_id} if request_id else {}


@contextmanager
def running_as(request_id: str | None, job_id: str | None = None) -> Iterator[None]:
    """Log (and enqueue jobs) under `request_id` (and `job_id`) inside the block."""
    tokens = (_request_id.set(request_id), _job_id.set(job_id))
    try:
        yield
    finally:
        _request_id.reset(tokens[0])
        _job_id.reset(tokens[1])


def joined(request_ids: Iterable[str | None]) -> str | None:
    """One id for work done for several requests: theirs, comma-separated (the first few)."""
    ids = list(dict.fromkeys(i for i in request_ids if i))
    if len(ids) > MAX_BATCH_IDS:
        ids = [*ids[:MAX_BATCH_IDS], f"+{len(ids) - MAX_BATCH_IDS}"]
    return ",".join(ids) or None


def incoming_request_id(value: str | None) -> str:
    """The caller's X-Request-ID if it is sane, else a new id."""
    if value and _SANE.fullmatch(value):
        return value
    return uuid.uuid4().hex


# --- Web requests ---------------------------------------------------------------------------------


def _begin_request() -> None:
    g.request_id = incoming_request_id(request.headers.get(REQUEST_ID_HEADER))
    g.request_id_token = _request_id.set(g.request_id)


def _echo_request_id(response):
    request_id = g.get("request_id")
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id
    return response


def _end_request(_exc) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        _request_id.reset(token)


def init_app(app: Flask) -> None:
    """Give every request its id (first of the hooks, so every line of the request carries it), and
    set up logging."""
    app.before_request_funcs.setdefault(None, []).insert(0, _begin_request)
    app.after_request(_echo_request_id)
    app.teardown_request(_end_request)
    configure(app.config["LOG_FORMAT"], app.config["LOG_LEVEL"])
    if app.config["LOG_FORMAT"]:  # every line through the root's handler, Flask's own lines too
        app.logger.removeHandler(default_handler)


# --- Formatting -----------------------------------------------------------------------------------


class _Context(logging.Filter):
    """Stamps each record with the request and job it was logged under."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        record.job_id = _job_id.get()
        parts = [
            f"request {record.request_id}" if record.request_id else "",
            f"job {record.job_id}" if record.job_id else "",
        ]
        record.context = f" [{' '.join(p for p in parts if p)}]" if any(parts) else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, process, thread, request_id and
    job_id when set, exception when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "thread": record.threadName,
        }
        for key in ("request_id", "job_id"):
            value = getattr(record, key, None)
            if value:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a line is logged (a test runner may swap it)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr


def configure(log_format: str, level: str) -> None:
    """Log through one root handler on stderr, as text or JSON at `level`; an empty format leaves
    logging alone (and takes this module's handler away: the test suite's choice)."""
    root = logging.getLogger()
    ours = next((h for h in root.handlers if isinstance(h, _Stderr)), None)
    if not log_format:
        if ours is not None:
            root.removeHandler(ours)
        return
    if log_format.lower() not in ("text", "json"):
        raise RuntimeError(f"LOG_FORMAT must be text or json, got {log_format!r}")
    if not isinstance(logging.getLevelName(level.upper()), int):
        raise RuntimeError(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {level!r}")
    if ours is None:
        ours = _Stderr()
        ours.addFilter(_Context())
        root.addHandler(ours)
    ours.setFormatter(JsonFormatter() if log_format.lower() == "json" else logging.Formatter(TEXT_FORMAT))
    root.setLevel(level.upper())
