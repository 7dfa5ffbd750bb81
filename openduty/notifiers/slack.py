"""Slack incoming webhooks, formatted with Block Kit: a header, the incident's facts as fields,
its first details as fields, who else was paged and the event's links as context, and URL buttons
(Acknowledge: the signed link; Open incident). `text` stays as the notification's fallback.

Built here in Python rather than from a JSON template: every string must be escaped for Slack's
markup and cut to Slack's limits field by field, and a template cannot guarantee valid JSON.
Event text is escaped (&, <, >), so it cannot mention @channel or a person, or form a link; the
only links are the event's http(s) links, percent-encoded by openduty.messages (no spaces, <, >
or |), written as <href|text>.
"""

from openduty.notifiers import http
from openduty.notifiers.base import Message, Notifier
from openduty.notifiers.text import one_line, plain_text, slack_escape, truncate

HEADER_MAX_LENGTH = 150
SECTION_MAX_LENGTH = 3000
FIELD_MAX_LENGTH = 2000
BUTTON_TEXT_MAX_LENGTH = 75
# Slack takes at most 50 blocks; a message folds several incidents only on SMS/voice, so Slack
# shows at most this many (the acknowledge link's page shows every one).
MAX_INCIDENTS = 8


def _field(label: str, value) -> dict:
    """A field: the label in bold, the value under it (both one line, escaped, within the limit)."""
    title = f"*{slack_escape(one_line(label, 100) or '—')}*\n"
    return {"type": "mrkdwn", "text": title + slack_escape(one_line(str(value)) or "—", FIELD_MAX_LENGTH - len(title))}


def _link(link: dict) -> str:
    href = link["href"].replace("&", "&amp;")
    return f"<{href}|{slack_escape(one_line(link['text'], 80) or 'link')}>"


def incident_blocks(incident: dict) -> list[dict]:
    """One incident: its summary, facts, first details and context (paged people, links)."""
    summary = plain_text(f"#{incident.get('number')} {incident.get('summary') or ''}").strip()
    blocks: list[dict] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": slack_escape(summary, SECTION_MAX_LENGTH)}}
    ]
    facts = [("Service", incident.get("service")), ("Severity", incident.get("severity"))]
    if incident.get("urgency"):
        facts.append(("Urgency", incident["urgency"]))
    if incident.get("source"):
        facts.append(("Source", incident["source"]))
    facts.append(("Status", incident.get("status")))
    if incident.get("status") != "resolved" and incident.get("open_for"):
        facts.append(("Open for", incident["open_for"]))
    blocks.append({"type": "section", "fields": [_field(label, value) for label, value in facts]})
    details = incident.get("highlights") or []
    if details:
        blocks.append({"type": "section", "fields": [_field(str(k), v) for k, v in details[:10]]})
    context = []
    if incident.get("paged"):
        names = ", ".join(one_line(n, 80) for n in incident["paged"])
        context.append({"type": "mrkdwn", "text": slack_escape(f"Also paged: {names}", SECTION_MAX_LENGTH)})
    links = incident.get("links") or []
    if links:
        text = "Links: " + " · ".join(_link(link) for link in links)
        if len(text) <= SECTION_MAX_LENGTH:
            context.append({"type": "mrkdwn", "text": text})
    if context:
        blocks.append({"type": "context", "elements": context})
    return blocks


def _button(label: str, url: str, style: str | None = None) -> dict:
    text = {"type": "plain_text", "text": truncate(label, BUTTON_TEXT_MAX_LENGTH)}
    return {"type": "button", "text": text, "url": url, **({"style": style} if style else {})}


def blocks(message: Message) -> list[dict]:
    result: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": message.title(HEADER_MAX_LENGTH), "emoji": False}},
    ]
    if message.incidents:
        for incident in message.incidents[:MAX_INCIDENTS]:
            result += incident_blocks(incident)
    else:
        result.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": slack_escape(message.text(), SECTION_MAX_LENGTH)}}
        )
    buttons = []
    if message.action_url:
        if message.purpose == "page":
            buttons.append(_button("Acknowledge", message.action_url, "danger"))
        else:
            buttons.append(_button("Open", message.action_url))
    if len(message.incidents) == 1 and message.incidents[0].get("incident_url"):
        buttons.append(_button("Open incident", message.incidents[0]["incident_url"]))
    if buttons:
        result.append({"type": "actions", "elements": buttons})
    return result


def payload(message: Message) -> dict:
    """The JSON Slack receives; `text` is the notification's fallback and is markup too."""
    return {"text": slack_escape(message.title(SECTION_MAX_LENGTH), SECTION_MAX_LENGTH), "blocks": blocks(message)}


class SlackNotifier(Notifier):
    kind = "slack"

    def send(self, address: str, message: Message) -> str:
        reply = http.post(address, "Slack", policy=http.user_policy(), json=payload(message))
        return f"HTTP {reply.status}"
