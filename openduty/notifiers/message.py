"""What to say: one channel-independent Message built from the notifications being sent.

`build_message` renders the subject, the plain/HTML body and the short text (SMS, push, voice)
for one notification, or for several pages folded into one message when SMS/voice are throttled.
Each channel then turns it into its own wire format (see the channel modules).
"""

from flask import current_app, render_template

from openduty.models import Incident, Notification
from openduty.models.user import CONTACT_KIND_LABELS
from openduty.notifiers.base import Message


def _incident_info(incident: Incident, user_id: int) -> dict:
    from openduty.views.ack import ack_url

    return {
        "id": incident.id,
        "number": incident.number,
        "summary": incident.summary,
        "service": incident.service.name,
        "severity": incident.severity,
        "status": incident.status,
        "url": ack_url([incident.id], user_id),
    }


def build_message(batch: list[Notification]) -> Message:
    """What to say for these notifications (several only when throttled pages fold together)."""
    from openduty.views.ack import ack_token, ack_url

    primary = batch[0]
    user = primary.user
    base_url = current_app.config["BASE_URL"].rstrip("/")
    if primary.purpose == "test":
        subject = "[Openduty] Test notification"
        body = f"This is a test notification from Openduty to {user.name} ({CONTACT_KIND_LABELS.get(primary.kind)})."
        return Message(subject=subject, body=body, purpose="test", short=body, html=None)

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
        subject = f"[Openduty] #{first['number']} {state}: {first['summary']}"[:250]
    else:
        subject = f"[Openduty] {len(incidents)} incidents need attention"
    short_parts = [f"#{i['number']} {i['summary'][:80]}" for i in incidents]
    if purpose == "resolve":
        short = "Resolved: " + "; ".join(short_parts)
    else:
        numbers = " ".join(str(i["number"]) for i in incidents)
        short = "Openduty: " + "; ".join(short_parts)
        if primary.kind == "sms":
            short += f". Reply 'ack {numbers}' to acknowledge, 'res {numbers}' to resolve. {action_url}"
        elif primary.kind == "voice":
            short = f"Openduty alert. {len(incidents)} incident{'s' if len(incidents) > 1 else ''}: " + ". ".join(
                f"number {i['number']}, {i['summary'][:120]}" for i in incidents
            )
    context = {
        "incidents": incidents,
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
    )
