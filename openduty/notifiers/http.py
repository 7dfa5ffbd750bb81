"""HTTP for the notifiers: every call goes through the outbound policy and its limits, and what
went wrong maps to transient, unconfirmed or permanent with a short reason (never the remote body).

Destinations users chose (Slack, webhooks) are called under the policy for user destinations;
provider APIs the operator configured (Twilio, Pushover) with `outbound.OPERATOR`.
"""

import json

from flask import current_app, has_app_context

from openduty import outbound
from openduty.notifiers.base import PermanentError, TransientError, UnconfirmedError
from openduty.notifiers.text import one_line

# Seconds to connect, and to wait for an answer once the request is sent (defaults of the
# NOTIFY_CONNECT_TIMEOUT_SECONDS / NOTIFY_READ_TIMEOUT_SECONDS settings). A refused or timed-out
# connection reached nobody and is retried; a request sent but not answered in time may have
# arrived, so it is retried at most once. Sends run on the worker's sender threads, so a long
# read timeout holds up only the slow receiver's own page.
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 30


def user_policy() -> outbound.Policy:
    """The policy for destinations a user chose, from the app's OUTBOUND_ALLOWED_NETWORKS."""
    return outbound.policy_for(current_app.config)


def post(url: str, what: str, *, policy: outbound.Policy, **kwargs) -> outbound.Reply:
    """POST and return the reply; raise TransientError (no connection, 5xx, 429), UnconfirmedError
    (sent, but no answer in time) or PermanentError (refused by the policy, redirects, other 4xx)
    naming what was being called.

    Redirects are not followed: a receiver that moved must be given its new URL.
    """
    connect, read = timeouts()
    try:
        # The whole exchange may take one connect and one full read wait (a dripping answer is cut).
        reply = outbound.request("POST", url, policy, timeouts=(connect, read), deadline=connect + read, **kwargs)
    except outbound.OutboundError as exc:
        if exc.unconfirmed:
            raise UnconfirmedError(f"{what}: {exc}; it may have arrived") from exc
        raise (TransientError if exc.transient else PermanentError)(f"{what}: {exc}") from exc
    status = reply.status
    if status == 429 or status >= 500:
        raise TransientError(f"{what}: HTTP {status}{_provider_says(reply, policy)}")
    if 300 <= status < 400:
        raise PermanentError(f"{what}: HTTP {status}; redirects are not followed, use the URL it points to")
    if status >= 400:
        raise PermanentError(f"{what}: HTTP {status}{_provider_says(reply, policy)}")
    return reply


def timeouts() -> tuple[float, float]:
    """(connect, read) timeouts in seconds, from the app's settings when there is an app."""
    config = current_app.config if has_app_context() else {}
    return (
        float(config.get("NOTIFY_CONNECT_TIMEOUT_SECONDS") or CONNECT_TIMEOUT),
        float(config.get("NOTIFY_READ_TIMEOUT_SECONDS") or READ_TIMEOUT),
    )


def json_field(reply: outbound.Reply, name: str) -> str:
    """A field of a JSON reply as text ('' if the reply is not JSON or lacks it)."""
    try:
        data = json.loads(reply.body)
    except ValueError:
        return ""
    return str(data.get(name, "")) if isinstance(data, dict) else ""


def _provider_says(reply: outbound.Reply, policy: outbound.Policy) -> str:
    """What a provider the operator configured says went wrong (Twilio's `message`, Pushover's
    `errors`), one line; nothing from servers users chose."""
    if not policy.any_address:
        return ""
    text = json_field(reply, "message") or json_field(reply, "errors")
    return f": {one_line(text, 200)}" if text else ""
