"""Apprise URLs: one contact method reaches any of the 100+ services Apprise supports.

Members may use the notification services in MEMBER_SCHEMES; every other scheme (the raw
transports json://, form://, xml://, syslog://, mailto:// with any SMTP server, ...) lets its
author choose the method, path, headers or protocol, and is for admins' own contact methods only:
refused when a member adds one, and at send time if the owner is no longer an admin. Apprise's
HTTP requests run under the outbound policy (outbound.guard), like every user-chosen destination.
"""

import warnings
from urllib.parse import urlsplit

from openduty import outbound
from openduty.notifiers import http
from openduty.notifiers.base import Message, Notifier, PermanentError, TransientError

TITLE_MAX_LENGTH = 250

# Notification services a member may use: chat, push and paging services reached over HTTP(S)
# (so the outbound policy covers them). Self-hosted ones (ntfy, gotify, matrix, mattermost, ...)
# are checked against the policy like a webhook. Not here: raw transports and non-HTTP protocols.
MEMBER_SCHEMES = frozenset(
    """
    tgram discord slack workflow workflows gchat wxteams webex zulip guilded revolt flock ryver twist
    matrix matrixs mmost mmosts rocket rockets ncloud nclouds nctalk nctalks signal signals
    ntfy ntfys gotify gotifys pover pbul pushed prowl psafer psafers spush simplepush bark barks join
    lametric lametrics ifttt line mastodon mastodons toot toots
    opsgenie pagerduty pagertree ilert signl4 splunk victorops squadcast incidentio
    """.split()
)


def scheme_of(url: str) -> str:
    """The URL's scheme, lower case ('' if it has none)."""
    return urlsplit(url.strip()).scheme.lower()


def admin_only_reason(url: str) -> str | None:
    """Why only an admin may use this Apprise URL, or None if members may."""
    scheme = scheme_of(url)
    if scheme in MEMBER_SCHEMES:
        return None
    return (
        f"{scheme}:// is for admins only; members may use notification services such as "
        "tgram://, discord://, slack://, ntfy://, gotify://, matrix:// (see docs/notifications.md)."
    )


def title_and_body(message: Message) -> tuple[str, str]:
    """A one-line title and the short form's lines, ending with the acknowledge link."""
    body = message.short_lines() + (f"\n\n{message.action_url}" if message.action_url else "")
    return message.title(TITLE_MAX_LENGTH), body


class AppriseNotifier(Notifier):
    kind = "apprise"

    def send(self, address: str, message: Message) -> str:
        reason = None if message.recipient_is_admin else admin_only_reason(address)
        if reason:
            raise PermanentError(f"Apprise: {reason} The owner of this contact method is not an admin.")
        with warnings.catch_warnings():
            # Apprise loads its plugins lazily, and one imports the stdlib's deprecated imghdr.
            warnings.simplefilter("ignore", DeprecationWarning)
            return self._send(address, message)

    def _send(self, address: str, message: Message) -> str:
        import apprise  # slow to import (100+ plugins); only workers that send through it pay

        target = apprise.Apprise()
        if not target.add(address):
            raise PermanentError("Apprise does not recognise this URL; see the Apprise wiki for the format.")
        title, body = title_and_body(message)
        kind = apprise.NotifyType.FAILURE if message.purpose == "page" else apprise.NotifyType.SUCCESS
        with outbound.guard(http.user_policy()) as state:
            sent = target.notify(title=title, body=body, notify_type=kind)
        if state.refusals:
            raise PermanentError(f"Apprise: {state.refusals[0]}")
        if state.expired:
            raise TransientError(f"Apprise: timed out after {outbound.TOTAL_TIMEOUT} s")
        # Apprise reports only success or failure; a failure may be an outage, so it is retried.
        if not sent:
            raise TransientError("Apprise could not deliver the notification (see the worker log for details).")
        return "sent"
