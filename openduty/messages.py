"""What to say: one channel-independent Message built from the notifications being sent, and
what the incident's timeline says about each delivery.

`build_message` renders the subject, the plain/HTML body and the short text (SMS, push, voice)
for one notification, or for several pages folded into one message when SMS/voice are throttled.
Each channel then turns it into its own wire format (see the channel modules). `sent_note`,
`failure_note` and `given_up_unconfirmed` word the timeline entries delivery writes.
"""

from flask import current_app, render_template

from openduty import masking
from openduty.ack_links import ack_token, ack_url
from openduty.models import Incident, Notification
from openduty.models.user import CONTACT_KIND_LABELS
from openduty.notifiers.base import Message, NotifierError
from openduty.notifiers.text import one_line, plain_text, truncate
from openduty.notifiers.twilio import SMS_MAX_LENGTH

# Room left in an SMS for the acknowledge link the channel appends (a signed token, ~150 characters).
ACK_LINK_ROOM = 300


def _incident_info(incident: Incident, user_id: int) -> dict:
    return {
        "id": incident.id,
        "number": incident.number,
        "summary": incident.summary,
        "service": incident.service.name,
        "severity": incident.severity,
        "status": incident.status,
        "url": ack_url([incident.id], user_id),
    }


# Lengths of one incident's summary in the short forms: SMS/push, and what a call says.
SHORT_SUMMARY_LENGTH = 80
VOICE_SUMMARY_LENGTH = 120
SUBJECT_MAX_LENGTH = 250


def _for_text(info: dict) -> dict:
    """An incident's fields as the message bodies show them: summary as plain text (its own
    lines kept), service name on one line."""
    return {**info, "summary": plain_text(info["summary"]), "service": one_line(info["service"])}


def build_message(batch: list[Notification]) -> Message:
    """What to say for these notifications (several only when throttled pages fold together).

    Subject and short text are one line however the event's summary was written; the bodies keep
    its line breaks; `incidents` keeps the summary as stored (the webhook sends it as JSON).
    """
    primary = batch[0]
    user = primary.user
    base_url = current_app.config["BASE_URL"].rstrip("/")
    if primary.purpose == "test":
        subject = "[Openduty] Test notification"
        label = CONTACT_KIND_LABELS.get(primary.kind)
        body = f"This is a test notification from Openduty to {one_line(user.name)} ({label})."
        return Message(
            subject=subject, body=body, purpose="test", short=body, html=None, recipient_is_admin=user.is_admin
        )

    incidents = []
    for row in batch:
        if row.incident is not None and all(i["id"] != row.incident_id for i in incidents):
            incidents.append(_incident_info(row.incident, user.id))
    ids = [i["id"] for i in incidents]
    token = ack_token(ids, user.id)
    action_url = ack_url(ids, user.id)
    purpose = "resolve" if all(r.purpose == "resolve" for r in batch) else "page"
    first = incidents[0]
    if len(incidents) == 1:
        state = "RESOLVED" if purpose == "resolve" else "TRIGGERED"
        subject = one_line(f"[Openduty] #{first['number']} {state}: {one_line(first['summary'])}", SUBJECT_MAX_LENGTH)
    else:
        subject = f"[Openduty] {len(incidents)} incidents need attention"
    short_parts = [f"#{i['number']} {one_line(i['summary'], SHORT_SUMMARY_LENGTH)}" for i in incidents]
    if purpose == "resolve":
        short = "Resolved: " + "; ".join(short_parts)
    else:
        numbers = " ".join(str(i["number"]) for i in incidents)
        short = "Openduty: " + "; ".join(short_parts)
        if primary.kind == "sms":
            # The SMS channel appends the acknowledge link; the reply commands must survive a cut.
            commands = f". Reply 'ack {numbers}' to acknowledge, 'res {numbers}' to resolve."
            short = truncate(short, SMS_MAX_LENGTH - ACK_LINK_ROOM - len(commands)) + commands
        elif primary.kind == "voice":
            short = f"Openduty alert. {len(incidents)} incident{'s' if len(incidents) > 1 else ''}: " + ". ".join(
                f"number {i['number']}, {one_line(i['summary'], VOICE_SUMMARY_LENGTH)}" for i in incidents
            )
    context = {
        "incidents": [_for_text(i) for i in incidents],
        "purpose": purpose,
        "user": user,
        "action_url": action_url,
        "base_url": base_url,
    }
    body = render_template("notifications/message.txt", **context)
    html = render_template("notifications/message.html", **context) if primary.kind == "email" else None
    return Message(
        subject=subject,
        body=body,
        action_url=action_url,
        incident_id=first["id"],
        incident_number=first["number"],
        purpose=purpose,
        html=html,
        short=short,
        incidents=incidents,
        ack_token=token,
        recipient_is_admin=user.is_admin,
    )


# --- The timeline's words for a delivery ---------------------------------------------------------


def recipient(row: Notification) -> str:
    """'Bob by Slack (hooks.slack.com/…/B0SE…)': every user reads timelines, so the address is
    masked (masking.contact_address); its owner and admins see it in full on the profile."""
    label = CONTACT_KIND_LABELS.get(row.kind, row.kind)
    return f"{row.user.name} by {label} ({masking.contact_address(row.kind, row.address)})"


def sent_note(row: Notification, folded: int) -> str:
    """'Paged Bob by SMS (…).', saying when `folded` other pages went in the same message."""
    verb = {"page": "Paged", "resolve": "Sent the resolve notice to"}.get(row.purpose, "Notified")
    together = f" (in one message with {folded} other page(s))" if folded else ""
    return f"{verb} {recipient(row)}{together}."


def failure_note(row: Notification, exc: NotifierError, retry_in: int | None, unconfirmed: bool) -> str:
    """Why a send failed and what happens next (`retry_in` seconds, or None: given up)."""
    what = recipient(row)
    if retry_in is not None and unconfirmed:
        return (f"No answer from {what} (attempt {row.attempts}); it may have arrived; "
                f"sending once more in {retry_in} s: {exc}")  # fmt: skip
    if retry_in is not None:
        return f"Could not page {what} (attempt {row.attempts}); retrying in {retry_in} s: {exc}"
    if exc.transient:
        return f"Gave up paging {what} after {row.attempts} attempts: {exc}"
    return f"Could not page {what}: {exc}"


def given_up_unconfirmed(row: Notification, exc: NotifierError) -> str:
    """A send that got no answer twice: it may have arrived, so it is not sent a third time."""
    return f"No answer from {recipient(row)} twice; it may have arrived, so it is not sent again: {exc}"
