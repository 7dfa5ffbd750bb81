"""Slack incoming webhooks, formatted with Block Kit, with an Acknowledge button (the signed link).

Event text is escaped for Slack's markup (&, <, >), so a summary cannot mention @channel or a
person, or form a link; fields are cut to Slack's limits (header 150, section 3000 characters).
"""

from openduty.notifiers import http
from openduty.notifiers.base import Message, Notifier
from openduty.notifiers.text import slack_escape

HEADER_MAX_LENGTH = 150
SECTION_MAX_LENGTH = 3000


def blocks(message: Message) -> list[dict]:
    result: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": message.title(HEADER_MAX_LENGTH), "emoji": False}},
        {"type": "section", "text": {"type": "mrkdwn", "text": slack_escape(message.text(), SECTION_MAX_LENGTH)}},
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


def payload(message: Message) -> dict:
    """The JSON Slack receives; `text` is the notification's fallback and is markup too."""
    return {"text": slack_escape(message.title(SECTION_MAX_LENGTH), SECTION_MAX_LENGTH), "blocks": blocks(message)}


class SlackNotifier(Notifier):
    kind = "slack"

    def send(self, address: str, message: Message) -> str:
        reply = http.post(address, "Slack", policy=http.user_policy(), json=payload(message))
        return f"HTTP {reply.status}"
