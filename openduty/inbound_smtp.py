"""The inbound SMTP listener (aiosmtpd): mail to email integrations' addresses becomes events.

It translates SMTP into openduty.inbound_email calls, as the ingest views translate HTTP: RCPT is
taken only for an email integration's address (`550` otherwise, and for a disabled service), DATA
larger than INBOUND_EMAIL_MAX_BYTES is refused (`552`, by aiosmtpd), and a message is answered
`250` only once its events are committed. Whenever they were not stored (the database is down,
locked or slow, a key is over its rate limit) the answer is `451`, so the sending server keeps the
message and tries again: nothing is lost and nothing is stored twice (a retried trigger folds into
its incident by its dedup key). The database calls run on worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiosmtpd.controller import Controller
from flask import Flask

from openduty import inbound_email, metrics
from openduty.event_commit import unavailable
from openduty.extensions import db

log = logging.getLogger(__name__)

REFUSALS = {
    "unknown": "550 5.1.1 No email integration has this address (its key may have been regenerated)",
    "disabled": "550 5.2.1 The service of this address is disabled; enable it in Openduty to accept mail",
}
TRY_LATER = "451 4.3.0 The message was not stored: Openduty's database is unavailable; try again later"
CHECK_LATER = "451 4.3.0 Could not check this address now: Openduty's database is unavailable; try again later"
FAILED = "451 4.3.0 The message was not stored: an internal error occurred (it was logged); try again later"


class InboundHandler:
    """aiosmtpd's handler: RCPT checks the address, DATA applies the message for every recipient."""

    def __init__(self, app: Flask):
        self.app = app

    def _in_app(self, function: Callable[..., Any], *args) -> Any:
        with self.app.app_context():
            try:
                return function(*args)
            finally:
                db.session.remove()

    async def handle_RCPT(self, server, session, envelope, address: str, rcpt_options) -> str:
        try:
            refusal = await asyncio.to_thread(self._in_app, inbound_email.refusal, address)
        except Exception as exc:
            if unavailable(exc):
                log.warning("Inbound email: cannot check a recipient, the database is unavailable: %s", exc)
            else:
                log.exception("Inbound email: checking a recipient failed")
            return CHECK_LATER
        if refusal:
            metrics.events_rejected("email", "unknown_key" if refusal == "unknown" else refusal)
            return REFUSALS[refusal]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        started = time.perf_counter()
        reply, counted = await self._data(envelope)
        if isinstance(counted, list):
            metrics.events_accepted("email", counted)
        else:
            metrics.events_rejected("email", counted, len(envelope.rcpt_tos))
        metrics.INGEST_SECONDS.labels("email").observe(time.perf_counter() - started)
        return reply

    async def _data(self, envelope) -> tuple[str, list[str] | str]:
        """The reply, and for the metrics what the events did (a list of results) or why they were refused."""
        try:
            outcomes = await asyncio.to_thread(
                self._in_app, inbound_email.receive, envelope.content, list(envelope.rcpt_tos)
            )
        except inbound_email.Throttled as exc:
            return f"451 4.7.1 Too many events for this address; try again in {exc.seconds} seconds", "throttled"
        except Exception as exc:
            if unavailable(exc):
                log.warning("Inbound email: message not stored, the database is unavailable: %s", exc)
                return TRY_LATER, "unavailable"
            # Also a lost COMMIT answer (OutcomeUnknown): the retry folds into the same incident.
            log.exception("Inbound email: a message could not be applied")
            return FAILED, "error"
        stored = [o for o in outcomes if o.accepted]
        if not stored:  # every recipient went away between RCPT and DATA
            disabled = any(o.result == "disabled" for o in outcomes)
            return REFUSALS["disabled" if disabled else "unknown"], "disabled" if disabled else "unknown_key"
        return f"250 2.0.0 OK: {len(stored)} event(s) stored", [o.result for o in stored]


def controller(app: Flask, host: str, port: int) -> Controller:
    """The listener for `app` on host:port (not started: call `.start()` and, at the end, `.stop()`)."""
    return Controller(
        InboundHandler(app),
        hostname=host,
        port=port,
        server_hostname=app.config["INBOUND_EMAIL_DOMAIN"],
        ident="Openduty inbound email",
        data_size_limit=app.config["INBOUND_EMAIL_MAX_BYTES"],
        # SMTPUTF8 lets senders use UTF-8 in headers without encoding them; the parser reads both.
        enable_SMTPUTF8=True,
    )
