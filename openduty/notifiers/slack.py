"""Slack incoming webhooks, formatted with Block Kit, with an Acknowledge button (the signed link)."""

from openduty.notifiers import http
from openduty.notifiers.base import Message, Notifier


def blocks(message: Message) -> list[dict]:
    result: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": message.subject[:150], "emoji": False}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _escape(message.body)[:2900]}},
    ]
    if message.action_url:
        label = "Acknowledge" if message.purpose == "page" else "Open"
        result.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": label},
                        "url": message.action_url,
                        **({"style": "danger"} if message.purpose == "page" else {}),
                    }
                ],
            }
        )
    return result


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackNotifier(Notifier):
    kind = "slack"

    def send(self, address: str, message: Message) -> str:
        response = http.post(address, "Slack", json={"text": message.subject, "blocks": blocks(message)})
        return f"HTTP {response.status_code}"
