"""Generic webhook: a JSON POST, signed with HMAC-SHA256 when WEBHOOK_SECRET is set.

Headers: `X-Openduty-Timestamp: <unix seconds>` and `X-Openduty-Signature: sha256=<hex>`, the
HMAC-SHA256 of `<timestamp>.<body>` keyed with WEBHOOK_SECRET (the timestamp stops replays).
"""

import hashlib
import hmac
import json
import time

from openduty.notifiers import http
from openduty.notifiers.base import Message, Notifier


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def payload(message: Message) -> dict:
    return {
        "event": message.purpose,  # page | resolve | test
        "subject": message.subject,
        "message": message.body,
        "incidents": message.incidents,
        "acknowledge_url": message.action_url,
    }


class WebhookNotifier(Notifier):
    kind = "webhook"

    def send(self, address: str, message: Message) -> str:
        body = json.dumps(payload(message), separators=(",", ":"), sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "Openduty"}
        secret = self.config.get("WEBHOOK_SECRET")
        if secret:
            timestamp = str(int(time.time()))
            headers["X-Openduty-Timestamp"] = timestamp
            headers["X-Openduty-Signature"] = signature(secret, timestamp, body)
        response = http.post(address, "Webhook", data=body, headers=headers)
        return f"HTTP {response.status_code}"
