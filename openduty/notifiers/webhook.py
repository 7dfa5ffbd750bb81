"""Generic webhook: a JSON POST, signed with HMAC-SHA256 when WEBHOOK_SECRET is set.

Headers: `X-Openduty-Webhook-Version` (the payload's `version`), and with a secret
`X-Openduty-Timestamp: <unix seconds>` and `X-Openduty-Signature: sha256=<hex>`, the HMAC-SHA256 of
`<timestamp>.<body>` keyed with WEBHOOK_SECRET (the timestamp stops replays). The payload's fields,
version by version, are in docs/notifications.md.
"""

import hashlib
import hmac
import json
import time

from openduty.notifiers import http
from openduty.notifiers.base import Message, Notifier

SUBJECT_MAX_LENGTH = 250
# The payload's version: 2 added `version` and each incident's urgency, source, service_id,
# dedup_key, alert_count, created_at, open_seconds, open_for, details, highlights, links, paged,
# incident_url and acknowledge_url; every version 1 field is still there.
VERSION = "2"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def payload(message: Message) -> dict:
    """What the receiver gets: `subject` on one line, `message` plain text, and each incident's
    fields as stored (JSON carries any text; receivers format it themselves)."""
    return {
        "version": VERSION,
        "event": message.purpose,  # page | resolve | test
        "subject": message.title(SUBJECT_MAX_LENGTH),
        "message": message.text(),
        "incidents": message.incidents,
        "acknowledge_url": message.action_url,
    }


def body(message: Message) -> bytes:
    """The request body: compact, strict JSON (ASCII, so any text survives any receiver)."""
    return json.dumps(payload(message), separators=(",", ":"), sort_keys=True, allow_nan=False).encode()


class WebhookNotifier(Notifier):
    kind = "webhook"

    def send(self, address: str, message: Message) -> str:
        data = body(message)
        headers = {"Content-Type": "application/json", "User-Agent": "Openduty", "X-Openduty-Webhook-Version": VERSION}
        secret = self.config.get("WEBHOOK_SECRET")
        if secret:
            timestamp = str(int(time.time()))
            headers["X-Openduty-Timestamp"] = timestamp
            headers["X-Openduty-Signature"] = signature(secret, timestamp, data)
        reply = http.post(address, "Webhook", policy=http.user_policy(), data=data, headers=headers)
        return f"HTTP {reply.status}"
