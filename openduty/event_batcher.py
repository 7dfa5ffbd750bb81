"""Group commit: one thread per process applies the events of many concurrent requests together.

`submit()` is what the ingest endpoints call. It hands the events to this process's `Batcher`,
which applies everything that arrived meanwhile in one transaction (event_commit) and wakes each
request only after that commit; it never answers before the events are durable, and a request
that gave up waiting (503) is never committed afterwards (the batch's commit gate refuses).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time

from flask import Flask, current_app

from openduty import logs
from openduty.event_commit import (
    Claim,
    GaveUp,
    NotStored,
    OutcomeUnknown,
    apply_and_commit,
    discard_transaction,
    unavailable,
)
from openduty.events import Event, Outcome
from openduty.extensions import db

log = logging.getLogger(__name__)

# A request's events, from the queue to their outcome. QUEUED until the batcher is about to commit
# them (COMMITTING) or the request gives up first (GAVE_UP: the batcher skips, or rolls back and
# re-applies the batch without them). Only the batcher's lock moves an item between states.
QUEUED, COMMITTING, GAVE_UP = "queued", "committing", "gave up"


class _Pending:
    __slots__ = ("events", "outcomes", "error", "done", "state", "request_id")

    def __init__(self, events: list[Event]):
        self.events = events
        self.request_id = logs.current_request_id()  # the batch runs under its requests' ids
        self.outcomes: list[Outcome] | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.state = QUEUED


class _BatchClaim(Claim):
    def __init__(self, lock: threading.Lock, items: list[_Pending]):
        self.lock = lock
        self.items = items

    def claim(self) -> bool:
        with self.lock:
            if any(p.state == GAVE_UP for p in self.items):
                return False
            for p in self.items:
                p.state = COMMITTING
            return True

    def release(self) -> None:
        with self.lock:
            for p in self.items:
                p.state = QUEUED


class Batcher:
    """One per process and app: applies the events of many concurrent requests in one transaction.

    Requests put their events on a queue and wait. A single thread takes everything queued (up to
    EVENTS_BATCH_MAX events, after lingering EVENTS_BATCH_LINGER_MS for more), applies it in one
    transaction, commits, and only then wakes the requests. Under load many events share one
    commit (one fsync); alone, an event waits for nothing but its own transaction. If a batch
    fails for something in the events, it was rolled back whole and each request's events are
    applied alone, so one bad event fails only its own request.

    A request waits EVENTS_COMMIT_TIMEOUT_SECONDS for its COMMIT to begin; if it has not (the
    database is frozen, locked or slow), the request gives up and answers 503, and its events are
    never committed: the batcher checks, under one lock, that nobody gave up before it commits,
    and otherwise rolls back and applies the batch again without them. Once the COMMIT has begun a
    request cannot give up; it waits for the outcome. So a 503 always means "not stored".
    The thread exits after a while idle and is restarted on demand (also after a fork).
    """

    def __init__(self, app: Flask):
        self.app = app
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def submit(self, events: list[Event], timeout: float) -> list[Outcome]:
        pending = _Pending(events)
        with self._lock:
            self._queue.put(pending)
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="openduty-event-batcher", daemon=True)
                self._thread.start()
        if not pending.done.wait(timeout):
            with self._lock:
                if pending.state == QUEUED:
                    pending.state = GAVE_UP
                    raise NotStored(f"the database did not take the events within {timeout:g} seconds")
            pending.done.wait()  # its COMMIT has begun: only its outcome may answer
        if pending.error is not None:
            raise pending.error
        assert pending.outcomes is not None
        return pending.outcomes

    def _run(self) -> None:
        with self.app.app_context():
            max_events = current_app.config["EVENTS_BATCH_MAX"]
            linger = current_app.config["EVENTS_BATCH_LINGER_MS"] / 1000
            idle = current_app.config["EVENTS_BATCHER_IDLE_SECONDS"]
        while True:
            try:
                first = self._queue.get(timeout=idle)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            batch, count = [first], len(first.events)
            deadline = time.monotonic() + linger
            while count < max_events:
                try:
                    remaining = deadline - time.monotonic()
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
                count += len(item.events)
            self._apply(batch)

    def _apply(self, batch: list[_Pending]) -> None:
        try:
            with self.app.app_context(), logs.running_as(logs.joined(p.request_id for p in batch)):
                try:
                    self._apply_together(batch)
                finally:
                    db.session.remove()
        except Exception as exc:  # a bug here must not leave requests waiting forever
            log.exception("Event batcher failed")
            for p in batch:
                if p.outcomes is None and p.error is None:
                    p.error = exc
        finally:
            for p in batch:
                p.done.set()

    def _waiting(self, items: list[_Pending]) -> list[_Pending]:
        with self._lock:
            return [p for p in items if p.state != GAVE_UP]

    def _apply_together(self, batch: list[_Pending]) -> None:
        while live := self._waiting(batch):
            try:
                outcomes = apply_and_commit([e for p in live for e in p.events], gate=_BatchClaim(self._lock, live))
            except GaveUp:
                continue  # someone gave up while the batch was applied: again, without them
            except Exception as exc:
                if len(live) == 1 or unavailable(exc) or isinstance(exc, OutcomeUnknown):
                    for p in live:  # the database, not one event: the same answer for all
                        p.error = exc
                    return
                log.warning("Event batch of %d requests failed (%s); retrying one by one", len(live), exc)
                discard_transaction()  # (apply_and_commit did; a retry must never ride on it)
                for p in live:
                    self._apply_alone(p)
                return
            for p in live:
                p.outcomes, outcomes = outcomes[: len(p.events)], outcomes[len(p.events) :]
            return

    def _apply_alone(self, pending: _Pending) -> None:
        try:
            pending.outcomes = apply_and_commit(pending.events, gate=_BatchClaim(self._lock, [pending]))
        except GaveUp:
            pass  # its request has answered 503 already
        except Exception as exc:
            pending.error = exc


_batchers_lock = threading.Lock()


def submit(events: list[Event]) -> list[Outcome]:
    """Apply `events` durably (group commit, or inline when EVENTS_GROUP_COMMIT is off).

    Returns their outcomes once committed. Raises `NotStored` or a database error for which
    `unavailable()` is true when the events were not stored (retry later), `OutcomeUnknown` when
    they may have been, and anything else for a bug (nothing stored).
    """
    app = current_app._get_current_object()
    if not events:
        return []
    if not current_app.config["EVENTS_GROUP_COMMIT"]:
        return apply_and_commit(events)
    batcher = app.extensions.get("openduty_event_batcher")
    if batcher is None:
        with _batchers_lock:
            batcher = app.extensions.setdefault("openduty_event_batcher", Batcher(app))
    return batcher.submit(events, timeout=current_app.config["EVENTS_COMMIT_TIMEOUT_SECONDS"])
