"""Pushover: pages at high priority (they bypass quiet hours), with the acknowledge link."""

from openduty import outbound
from openduty.notifiers import http
from openduty.notifiers.base import Message, Notifier, PermanentError

# Pushover's limits: title 250, message 1024, supplementary URL 512 characters.
TITLE_MAX_LENGTH, MESSAGE_MAX_LENGTH, URL_MAX_LENGTH = 250, 1024, 512


def params(address: str, message: Message, token: str) -> dict:
    """The form Pushover receives."""
    data = {
        "token": token,
        "user": address,
        "title": message.title(TITLE_MAX_LENGTH),
        "message": message.short_lines(MESSAGE_MAX_LENGTH),
        "priority": 1 if message.purpose == "page" else 0,
    }
    if message.action_url and len(message.action_url) <= URL_MAX_LENGTH:
        data.update(url=message.action_url, url_title="Acknowledge" if message.purpose == "page" else "Open")
    return data


class PushoverNotifier(Notifier):
    kind = "pushover"

    def send(self, address: str, message: Message) -> str:
        token = self.config.get("PUSHOVER_TOKEN")
        if not token:
            raise PermanentError("PUSHOVER_TOKEN is not set.")
        data = params(address, message, token)
        base = self.config.get("PUSHOVER_BASE_URL", "https://api.pushover.net").rstrip("/")
        reply = http.post(f"{base}/1/messages.json", "Pushover", policy=outbound.OPERATOR, data=data)
        return http.json_field(reply, "request") or f"HTTP {reply.status}"
