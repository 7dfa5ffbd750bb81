"""What to say: one channel-independent Message built from the notifications being sent, and
what the incident's timeline says about each delivery.

`build_message` gathers everything a page shows (incident facts, the event's first details and
links, how long it has been open, who else was paged, the incident and acknowledge links) in a
fixed number of queries, then renders the channel's words from `templates/notifications/`
(email.txt|html, short.txt for SMS, push and chat, voice.txt) with plain data only: nothing
queries the database while a template renders. Slack's blocks and the webhook's JSON are built
in their channel modules from the same data. `sent_note`, `failure_note` and
`given_up_unconfirmed` word the timeline entries delivery writes.
"""

import json
import logging
import re
from datetime import datetime
from itertools import islice
from urllib.parse import quote

from flask import current_app, get_template_attribute, render_template
from sqlalchemy import func, select

from openduty import clock, masking, shift_notices
from openduty.ack_links import ack_token, ack_url, token_url
from openduty.extensions import db
from openduty.models import Incident, Notification, User
from openduty.models.shift_notice import NOTICE_KINDS
from openduty.models.user import CONTACT_KIND_LABELS
from openduty.notifiers.base import Message, NotifierError
from openduty.notifiers.text import one_line, plain_text, truncate
from openduty.notifiers.twilio import SMS_MAX_LENGTH, VOICE_MAX_LENGTH

log = logging.getLogger(__name__)

# Room left in an SMS for the acknowledge link the channel appends (a signed token, ~150 characters).
ACK_LINK_ROOM = 300
# Lengths of one incident's summary in the short forms: SMS/push, and what a call says.
SHORT_SUMMARY_LENGTH = 80
VOICE_SUMMARY_LENGTH = 120
SUBJECT_MAX_LENGTH = 250
# The event's details a page shows: the first DETAIL_FIELDS fields, each on one line and cut.
DETAIL_FIELDS = 5
DETAIL_KEY_LENGTH = 40
DETAIL_VALUE_LENGTH = 120
# The event's links a page shows (http/https only), and how long their text and address may be.
PAGE_LINKS = 5
LINK_TEXT_LENGTH = 80
LINK_HREF_LENGTH = 2000
# Characters an event link keeps as they are; anything else (spaces, controls, quotes, <, >, |,
# non-ASCII) is percent-encoded, so the address is one token in every channel's markup.
_HREF_SAFE = "/:?#[]@!$&'()*+,;=%~"
_WEB_ADDRESS = re.compile(r"https?://[^/?#@]*[^/?#@:]", re.IGNORECASE)
# Who else was paged: at most this many names (then "and N more").
PAGED_NAMES = 10
# A page counts as "paged" once it is being sent or was sent.
_PAGED_STATUSES = ("sending", "sent")


def open_for(seconds: float, spoken: bool = False) -> str:
    """'12 min', '3 h 5 min', '2 d 4 h' (spoken: '12 minutes', ...): how long an incident is open."""
    minutes = max(int(seconds // 60), 0)
    days, hours, mins = minutes // 1440, minutes // 60 % 24, minutes % 60
    if spoken:
        units = [(days, "day"), (hours, "hour"), (mins, "minute")]
        words = [f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in units if n]
        return " ".join(words[:2]) or "less than a minute"
    if not minutes:
        return "under 1 min"
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{mins} min" if mins and not days else ""]
    return " ".join(p for p in parts if p)


def _detail_value(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return one_line(text, DETAIL_VALUE_LENGTH) or "—"


def highlights(details) -> list[list[str]]:
    """The event's most useful details as [key, value] pairs, one line each: the first
    DETAIL_FIELDS fields of `custom_details` (Events API v2 payload.custom_details, v1 and generic
    `details`), or for Alertmanager its annotations (but the summary) and then its labels."""
    if not isinstance(details, dict):
        return []
    custom = details.get("custom_details")
    if isinstance(custom, dict):
        pairs = custom.items()
    elif custom not in (None, "", [], {}):
        pairs = [("details", custom)]
    else:
        annotations, labels = details.get("annotations"), details.get("labels")
        pairs = [
            *((k, v) for k, v in (annotations.items() if isinstance(annotations, dict) else ()) if k != "summary"),
            *(labels.items() if isinstance(labels, dict) else ()),
        ]
    return [
        [one_line(str(key), DETAIL_KEY_LENGTH) or "—", _detail_value(value)]
        for key, value in islice(pairs, DETAIL_FIELDS)
    ]


def _safe_href(href) -> str | None:
    """An http(s) address with a host, percent-encoded; None for anything else (javascript:, ...)."""
    if not isinstance(href, str):
        return None
    quoted = quote(href.strip(), safe=_HREF_SAFE, errors="replace")
    return quoted if _WEB_ADDRESS.match(quoted) and len(quoted) <= LINK_HREF_LENGTH else None


def event_links(details) -> list[dict[str, str]]:
    """The event's links (`details.links[]`, each {href, text}, then `client_url`), http(s) only,
    at most PAGE_LINKS: `href` percent-encoded, `text` one line."""
    if not isinstance(details, dict):
        return []
    raw = details.get("links") if isinstance(details.get("links"), list) else []
    candidates = [link for link in raw if isinstance(link, dict)]
    candidates.append({"href": details.get("client_url"), "text": details.get("client") or "Monitoring client"})
    links = []
    for link in candidates:
        href = _safe_href(link.get("href"))
        if href:
            text = link.get("text") if isinstance(link.get("text"), str) else ""
            links.append({"href": href, "text": one_line(text, LINK_TEXT_LENGTH) or truncate(href, LINK_TEXT_LENGTH)})
            if len(links) == PAGE_LINKS:
                break
    return links


def paged_names(incident_ids: list[int]) -> dict[int, list[tuple[int, str]]]:
    """Who was paged for each incident, as (user id, name), first paged first: one query for any
    number of incidents (a batch's messages share it: `build_message`'s `paged`)."""
    rows = db.session.execute(
        select(Notification.incident_id, User.id, User.name)
        .join(User, User.id == Notification.user_id)
        .where(
            Notification.incident_id.in_(incident_ids),
            Notification.purpose == "page",
            Notification.status.in_(_PAGED_STATUSES),
        )
        .group_by(Notification.incident_id, User.id, User.name)
        .order_by(func.min(Notification.id))
    )
    names: dict[int, list[tuple[int, str]]] = {}
    for incident_id, user_id, name in rows:
        names.setdefault(incident_id, []).append((user_id, name))
    return names


def paged_for(rows: list[Notification]) -> dict[int, list[tuple[int, str]]] | None:
    """`paged_names` of these rows' incidents, to build their messages with; None (each message
    then looks for itself) if the lookup fails."""
    ids = list({row.incident_id for row in rows if row.incident_id is not None})
    if not ids:
        return {}
    try:
        return paged_names(ids)
    except Exception:
        log.exception("Could not look up who was paged; each message looks for itself")
        db.session.rollback()
        return None


def _names(names: list[str]) -> list[str]:
    shown = [one_line(n, 80) or "—" for n in names[:PAGED_NAMES]]
    return shown + ([f"and {len(names) - PAGED_NAMES} more"] if len(names) > PAGED_NAMES else [])


def _incident_info(incident: Incident, acknowledge: str, paged: list[str], base_url: str, now: datetime) -> dict:
    """Everything a page says about one incident, as stored (the webhook sends it as JSON)."""
    seconds = max((now - incident.created_at).total_seconds(), 0) if incident.created_at else 0
    return {
        "id": incident.id,
        "number": incident.number,
        "summary": incident.summary,
        "service": incident.service.name,
        "service_id": incident.service_id,
        "severity": incident.severity,
        "urgency": incident.urgency,
        "status": incident.status,
        "source": incident.source or "",
        "dedup_key": incident.dedup_key,
        "alert_count": incident.alert_count,
        "created_at": incident.created_at.isoformat() if incident.created_at else None,
        "open_seconds": int(seconds),
        "open_for": open_for(seconds),
        "details": incident.details or {},
        "highlights": highlights(incident.details),
        "links": event_links(incident.details),
        "paged": paged,
        "incident_url": f"{base_url}/incidents/{incident.id}",
        "acknowledge_url": acknowledge,
        "url": acknowledge,  # webhook version 1's name for the acknowledge link, kept for its readers
    }


def _for_text(info: dict) -> dict:
    """An incident's fields as the rendered words show them: `summary` as plain text (its own
    lines kept) and `summary_line` on one line; service, source and names on one line each."""
    return {
        **info,
        "summary": plain_text(info["summary"]),
        "summary_line": one_line(info["summary"], SHORT_SUMMARY_LENGTH),
        "voice_summary": one_line(info["summary"], VOICE_SUMMARY_LENGTH),
        "service": one_line(info["service"], 200),
        "source": one_line(info["source"], 200),
        "paged": _names(info["paged"]),
        "open_spoken": open_for(info["open_seconds"], spoken=True),
    }


def fit(parts: list[str], room: int, separator: str) -> str:
    """Join `parts` within `room` characters: when they do not fit, the longest are cut to an
    equal share, so that every part keeps its beginning (a folded SMS names every incident)."""
    room -= len(separator) * max(len(parts) - 1, 0)
    if sum(len(p) for p in parts) <= room:
        return separator.join(parts)
    remaining, cap = room, room
    for index, length in enumerate(sorted(len(p) for p in parts)):
        cap = remaining // (len(parts) - index)
        if length > cap:
            break
        remaining -= length
    cap = max(cap, 1)
    return separator.join(p if len(p) <= cap else truncate(p, cap) for p in parts)


def _test_message(primary: Notification) -> Message:
    user = primary.user
    label = CONTACT_KIND_LABELS.get(primary.kind)
    body = f"This is a test notification from Openduty to {one_line(user.name)} ({label})."
    return Message(
        subject="[Openduty] Test notification", body=body, purpose="test", short=body, html=None,
        recipient_is_admin=user.is_admin,
    )  # fmt: skip


def _short_lines(info: dict, brief: bool) -> list[str]:
    """One incident's short text (templates/notifications/short.txt), line by line."""
    rendered = get_template_attribute("notifications/short.txt", "incident")(info, brief)
    return [line.strip() for line in str(rendered).splitlines() if line.strip()]


def _short(kind: str, purpose: str, incidents: list[dict]) -> str:
    """The short form: the SMS (one line, reply commands never cut), what a call says, or the
    push/chat text (a few lines per incident)."""
    count = f"{len(incidents)} incident{'s' if len(incidents) > 1 else ''}"
    if kind == "voice":
        say = get_template_attribute("notifications/voice.txt", "incident")
        opening = f"Openduty alert. {count}. " if purpose == "page" else f"Openduty. Resolved: {count}. "
        parts = [one_line(str(say(i))) for i in incidents]
        return opening + fit(parts, VOICE_MAX_LENGTH - len(opening), " ")
    brief = len(incidents) > 1  # folded: the acknowledge link's page shows each one in full
    if kind == "sms":
        numbers = " ".join(str(i["number"]) for i in incidents)
        if purpose == "resolve":
            opening, commands = "Resolved: ", ""
        else:
            opening = "Openduty: "
            commands = f". Reply 'ack {numbers}' to acknowledge, 'res {numbers}' to resolve."
        parts = [" | ".join(_short_lines(i, brief)) for i in incidents]
        room = SMS_MAX_LENGTH - ACK_LINK_ROOM - len(opening) - len(commands)
        return opening + fit(parts, room, "; ") + commands
    opening = "Resolved:\n" if purpose == "resolve" else ""
    return opening + "\n\n".join("\n".join(_short_lines(i, brief)) for i in incidents)


def build_message(batch: list[Notification], paged: dict[int, list[tuple[int, str]]] | None = None) -> Message:
    """What to say for these notifications (several only when throttled pages fold together).

    Gathers every fact first (the notifications' incidents are loaded with their services; who
    else was paged is one query, or `paged_names` of their incidents when the caller builds
    several messages), then renders. Subject and short text are one line however the event's
    summary was written; the bodies keep its line breaks; `incidents` keeps the fields as stored
    (the webhook sends them as JSON).
    """
    primary = batch[0]
    if primary.purpose == "test":
        return _test_message(primary)
    if primary.purpose in NOTICE_KINDS:  # reminders, handoffs, summaries: their own words
        return shift_notices.message(primary)
    user = primary.user
    base_url = current_app.config["BASE_URL"].rstrip("/")
    now = clock.now()
    rows = {}
    for row in batch:
        if row.incident is not None:
            rows.setdefault(row.incident_id, row.incident)
    if paged is None:
        paged = paged_names(list(rows))
    token = ack_token(list(rows), user.id)
    action_url = token_url(token)
    incidents = [
        _incident_info(
            i,
            action_url if len(rows) == 1 else ack_url([i.id], user.id),
            [name for user_id, name in paged.get(i.id, []) if user_id != user.id],
            base_url,
            now,
        )
        for i in rows.values()
    ]
    purpose = "resolve" if all(r.purpose == "resolve" for r in batch) else "page"
    first = incidents[0]
    if len(incidents) == 1:
        state = "RESOLVED" if purpose == "resolve" else "TRIGGERED"
        subject = one_line(f"[Openduty] #{first['number']} {state}: {one_line(first['summary'])}", SUBJECT_MAX_LENGTH)
    else:
        subject = f"[Openduty] {len(incidents)} incidents need attention"
    shown = [_for_text(i) for i in incidents]
    context = {"incidents": shown, "purpose": purpose, "action_url": action_url, "base_url": base_url}
    return Message(
        subject=subject,
        body=render_template("notifications/email.txt", **context),
        action_url=action_url,
        incident_id=first["id"],
        incident_number=first["number"],
        purpose=purpose,
        html=render_template("notifications/email.html", **context) if primary.kind == "email" else None,
        short=_short(primary.kind, purpose, shown),
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
