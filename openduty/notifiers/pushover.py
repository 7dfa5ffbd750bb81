"""Pushover: pages at high priority (they bypass quiet hours), with the acknowledge link."""

from openduty.notifiers import http
from openduty.notifiers.base import Message, Notifier, PermanentError


class PushoverNotifier(Notifier):
    kind = "pushover"

    def send(self, address: str, message: Message) -> str:
        token = self.config.get("PUSHOVER_TOKEN")
        if not token:
            raise PermanentError("PUSHOVER_TOKEN is not set.")
        data = {
            "token": token,
            "user": address,
            "title": message.subject[:250],
            "message": (message.short or message.body)[:1024],
            "priority": 1 if message.purpose == "page" else 0,
        }
        if message.action_url:
            data.update(url=message.action_url, url_title="Acknowledge" if message.purpose == "page" else "Open")
        base = self.config.get("PUSHOVER_BASE_URL", "https://api.pushover.net").rstrip("/")
        response = http.post(f"{base}/1/messages.json", "Pushover", data=data)
        try:
            return str(response.json().get("request", ""))
        except ValueError:
            return f"HTTP {response.status_code}"
