"""Applying events in one transaction that is committed, retried, or refused at its commit gate.

`apply_and_commit()` wraps `events.apply_events()` in one write transaction and retries it on a
deadlock, a serialisation failure, a busy database or a lost connection. Its `Claim` is the commit
gate: asked just before COMMIT, it lets the group-commit batcher (event_batcher) refuse to commit
events whose request already answered 503. The exceptions here say what a failure means to the
sender: `NotStored` (retry), `OutcomeUnknown` (the COMMIT's answer was lost), and `unavailable()`.
"""

from __future__ import annotations

import logging
import time

from flask import current_app
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from openduty.event_intake import forget_rules
from openduty.events import Event, Outcome, apply_events
from openduty.extensions import db
from openduty.integration_keys import forget_keys
from openduty.transactions import begin_write

log = logging.getLogger(__name__)


def discard_transaction() -> None:
    """Roll the session's transaction back; if even that fails, drop the session (and its connection)."""
    try:
        db.session.rollback()
    except Exception:
        log.warning("Rollback failed; discarding the session", exc_info=True)
        db.session.remove()


def _retryable(exc: DBAPIError) -> bool:
    """A deadlock, a serialisation failure, a busy SQLite, or a lost connection: worth another try."""
    code = getattr(exc.orig, "sqlstate", None)
    return code in ("40P01", "40001") or "database is locked" in str(exc.orig) or exc.connection_invalidated


def _commit_may_have_landed(exc: BaseException) -> bool:
    """Whether a COMMIT that raised may still have been applied: only if its answer never came back."""
    return not isinstance(exc, DBAPIError) or exc.connection_invalidated or isinstance(exc, InterfaceError)


# What a 503 asks the sender to wait before retrying.
RETRY_AFTER_SECONDS = 5


class NotStored(Exception):
    """The events were not stored and never will be from this attempt: the sender may safely retry."""


class OutcomeUnknown(Exception):
    """The COMMIT was sent but its answer was lost (the connection broke): the events may be stored."""


class GaveUp(Exception):
    """A request of the batch being applied gave up waiting before its COMMIT (see `Batcher`)."""


def unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot take events now (down, frozen, locked, out of
    connections) rather than that something is wrong with them: answered 503, retry later."""
    return isinstance(exc, NotStored | OperationalError | InterfaceError | DisconnectionError | PoolTimeout)


class Claim:
    """The commit gate of one transaction: `claim()` just before COMMIT says whether to go on.

    The Batcher's gate refuses when a request of the batch already gave up (it was answered 503,
    so its events must not be committed); otherwise it marks every request as committing, after
    which none may give up: each waits for the definitive outcome. `release()` undoes the mark when
    the COMMIT definitely failed (so the request may give up again while the retry runs).
    """

    def claim(self) -> bool:
        return True

    def release(self) -> None:
        pass


def apply_and_commit(events: list[Event], attempts: int = 3, gate: Claim | None = None) -> list[Outcome]:
    """Apply `events` in one transaction and commit; retried on a deadlock, serialisation failure,
    busy database or lost connection. Raises `GaveUp` (nothing stored) if `gate` refuses.

    Any failure rolls the whole transaction back before anything else runs in the session. If a
    COMMIT's answer was lost, the retry applies the same events again (their dedup keys are fixed
    at parse time, so a trigger that did land folds into its own incident); if no attempt then
    succeeds, `OutcomeUnknown` says the events may be stored. A foreign-key violation may mean a
    cached key's service was just deleted by another process: the key cache is dropped and the
    events are applied once more (then the key is unknown), as is the rule book (a route's target).
    """
    gate = gate or Claim()
    maybe_landed: BaseException | None = None
    for attempt in range(attempts):
        committing = False
        try:
            begin_write()
            outcomes = apply_events(events)
            if not gate.claim():
                raise GaveUp()
            committing = True
            db.session.commit()
            return outcomes
        except BaseException as exc:
            # Whatever failed (the driver's UnicodeEncodeError is no DBAPIError), nothing of this
            # attempt may stay in the session: a retry, or the next batch, starts clean.
            discard_transaction()
            if committing:
                if _commit_may_have_landed(exc):
                    maybe_landed = exc
                else:
                    gate.release()
            retry = isinstance(exc, DBAPIError) and attempt < attempts - 1
            stale_key = isinstance(exc, IntegrityError) and current_app.config["EVENTS_KEY_CACHE_SECONDS"] > 0
            if stale_key:
                forget_keys()
                forget_rules()  # a route's target may be gone too
            if not (retry and (stale_key or _retryable(exc))):
                if maybe_landed is not None and isinstance(exc, Exception):
                    raise OutcomeUnknown(str(maybe_landed)) from exc
                raise
            time.sleep(0.005 * (attempt + 1))
    raise AssertionError("unreachable")
