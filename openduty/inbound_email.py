"""Inbound email: `email` integrations' settings and addresses, and mail turned into Events.

An email integration's address is `<key>@INBOUND_EMAIL_DOMAIN`. The SMTP listener
(openduty.inbound_smtp) asks `refusal()` at RCPT whether to take an address, and hands each
message it took to `receive()`: the message is parsed once (subject -> summary, text body or HTML
converted to text -> details), each recipient's integration settings give its dedup key and
whether the message resolves, and the Events go through the same group commit as the HTTP ingest
(event_batcher.submit), so a message is answered only once its events are durable.
"""

from __future__ import annotations

import email
import email.policy
import functools
import logging
import re
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, select

from openduty import validation
from openduty.errors import ValidationError
from openduty.event_batcher import submit
from openduty.event_formats import MAX_BODY_BYTES, MAX_DEDUP_KEY, MAX_SHORT_FIELD, MAX_SUMMARY
from openduty.event_rate_limit import seconds_until_allowed
from openduty.events import Event, Outcome
from openduty.extensions import db
from openduty.models import EmailSettings, Integration, Service
from openduty.models.email_integration import DEDUP_SOURCES, DEFAULT_RESOLVE_REGEX, MAX_REGEX_LENGTH
from openduty.models.service import INTEGRATION_KEY_LENGTH

log = logging.getLogger(__name__)

SETTINGS_FIELDS = ("dedup_source", "dedup_regex", "resolve_regex")
DEFAULT_SETTINGS = {"dedup_source": "subject", "dedup_regex": None, "resolve_regex": DEFAULT_RESOLVE_REGEX}
# A message's text kept in the event (and searched by a body regex): a page needs far less, and
# at 4 bytes a character at most it keeps the event well inside the ingest's body limit.
MAX_BODY_TEXT = MAX_BODY_BYTES // 8
NO_SUBJECT = "(no subject)"
_KEY_SHAPE = re.compile(rf"[a-z0-9]{{1,{INTEGRATION_KEY_LENGTH}}}")
# What stays between a resolve word and the rest of the subject ("RESOLVED: Disk full").
_SEPARATORS = " \t:-–—|*[]()"


# --- Settings --------------------------------------------------------------------------------------


def settings_of(integration: Integration) -> dict[str, Any]:
    """The email settings as the API and the form show them (the defaults if none were saved)."""
    settings = integration.email_settings
    if settings is None:
        return dict(DEFAULT_SETTINGS)
    return {name: getattr(settings, name) for name in SETTINGS_FIELDS}


def clean_settings(data: Any, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate email settings (those `data` names, over `current`); ValidationError names each bad one.

    `dedup_regex` is needed, with exactly one capture group, when the dedup key comes from a regex;
    an empty `resolve_regex` means that no message resolves.
    """
    if not isinstance(data, dict):
        raise ValidationError({"email": "Send the email settings as an object."})
    validation.refuse_unknown(data, SETTINGS_FIELDS)
    merged = {**(current or DEFAULT_SETTINGS), **data}

    def source():
        if merged.get("dedup_source") not in DEDUP_SOURCES:
            raise validation.FieldError(f"Use one of {', '.join(DEDUP_SOURCES)}.")
        return merged["dedup_source"]

    def dedup_regex():
        value = merged.get("dedup_regex")
        needed = merged.get("dedup_source") in ("subject_regex", "body_regex")
        if value in (None, "") and not needed:
            return None
        if value in (None, ""):
            raise validation.FieldError("A regex dedup source needs a pattern with one capture group, e.g. #(\\d+).")
        return validation.regex_text(value, max_length=MAX_REGEX_LENGTH, groups=1, label="The dedup pattern")

    def resolve_regex():
        value = merged.get("resolve_regex")
        if value in (None, "") or (isinstance(value, str) and not value.strip()):
            return None
        return validation.regex_text(value, max_length=MAX_REGEX_LENGTH, label="The resolve pattern")

    return validation.collect({"dedup_source": source, "dedup_regex": dedup_regex, "resolve_regex": resolve_regex})


def save_settings(integration: Integration, clean: dict[str, Any]) -> EmailSettings:
    """Store clean settings (from `clean_settings`) on an email integration; the commit is the caller's."""
    settings = integration.email_settings
    if settings is None:
        settings = integration.email_settings = EmailSettings()
    for name, value in clean.items():
        setattr(settings, name, value)
    return settings


def address(integration: Integration, viewer) -> str:
    """The integration's email address, its key shown as `viewer` may see it."""
    return f"{integration.shown_key(viewer)}@{current_app.config['INBOUND_EMAIL_DOMAIN']}"


def shown(integrations: list[Integration], viewer) -> dict[int, dict[str, Any]]:
    """Integration id -> {"address", "settings"} for the email integrations among `integrations`
    (what the service page shows; loaded here, not while the template renders)."""
    return {
        i.id: {"address": address(i, viewer), "settings": settings_of(i)} for i in integrations if i.kind == "email"
    }


def form_settings(form) -> dict[str, Any]:
    """The email settings fields a form sent (those it has), for clean_settings."""
    return {name: form[name] for name in SETTINGS_FIELDS if name in form}


# --- Recipients ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recipient:
    """An email integration as the listener needs it: its service's state and its settings."""

    key: str
    disabled: bool
    dedup_source: str = "subject"
    dedup_regex: str | None = None
    resolve_regex: str | None = DEFAULT_RESOLVE_REGEX


def key_of(address_: str) -> str | None:
    """The integration key an address names (`<key>@INBOUND_EMAIL_DOMAIN`, any case), or None."""
    local, _, domain = address_.strip().strip("<>").rpartition("@")
    if domain.lower() != current_app.config["INBOUND_EMAIL_DOMAIN"].lower():
        return None
    local = local.lower()
    return local if _KEY_SHAPE.fullmatch(local) else None


@functools.cache
def _recipients_query():
    return (
        select(Integration.key, Service.disabled, EmailSettings)
        .join(Service, Service.id == Integration.service_id)
        .outerjoin(EmailSettings, EmailSettings.integration_id == Integration.id)
        .where(Integration.kind == "email", Integration.key.in_(bindparam("keys", expanding=True)))
    )


def recipients(keys: set[str]) -> dict[str, Recipient]:
    """Key -> Recipient for the keys that belong to email integrations (one query)."""
    found = {}
    for key, disabled, settings in db.session.execute(_recipients_query(), {"keys": sorted(keys)}):
        if settings is None:
            found[key] = Recipient(key, disabled)
        else:
            found[key] = Recipient(key, disabled, settings.dedup_source, settings.dedup_regex, settings.resolve_regex)
    return found


def refusal(address_: str) -> str | None:
    """Why mail to this address is refused ("unknown", "disabled"), or None if it is taken."""
    key = key_of(address_)
    recipient = recipients({key}).get(key) if key else None
    if recipient is None:
        return "unknown"
    return "disabled" if recipient.disabled else None


# --- Messages --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mail:
    """What Openduty reads of one message."""

    subject: str
    body: str
    details: dict[str, Any]


def _storable(value: str) -> str:
    """Text any database stores: NULs dropped, undecodable bytes (lone surrogates) replaced."""
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _cut(value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    return value[:limit] + f"\n[... {len(value) - limit} more characters not kept]"


def _header(message: EmailMessage, name: str) -> str:
    """A header as text ("" if absent); a header the parser chokes on is read raw."""
    try:
        value = message.get(name)
    except Exception:  # the stdlib's header parser still raises on some malformed headers
        value = next((v for k, v in message.raw_items() if k.lower() == name.lower()), None)
    return _storable(str(value)) if value is not None else ""


def _body(message: EmailMessage) -> str:
    """The text body, or the HTML body converted to text (html-text: no markup, scripts or styles)."""
    try:
        part = message.get_body(preferencelist=("plain", "html"))
    except Exception:  # a broken MIME structure: no body rather than no event
        log.warning("Inbound email: could not find the body of a message", exc_info=True)
        return ""
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, ValueError):  # an unknown charset or a broken encoding
        payload = part.get_payload(decode=True) or b""
        content = payload.decode("utf-8", "replace")
    if not isinstance(content, str):
        return ""
    if part.get_content_subtype() == "html":
        import html_text  # noqa: PLC0415 (lxml: ~7 MB in every process; only the SMTP listener reads HTML)

        content = html_text.extract_text(content) if content.strip() else ""
    return _storable(content).strip()


def parse_message(raw: bytes) -> Mail:
    """Read a message (RFC 5322 bytes) with the stdlib's `email` package (policy=default)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    subject = _one_line(_header(message, "Subject")) or NO_SUBJECT
    body = _cut(_body(message), MAX_BODY_TEXT)
    details = {"from": _header(message, "From"), "to": _header(message, "To")}
    for name, header in (("cc", "Cc"), ("date", "Date"), ("message_id", "Message-ID")):
        value = _header(message, header)
        if value:
            details[name] = value
    details = {name: _cut(value, 1000) for name, value in details.items()}
    details["body"] = body
    return Mail(subject, body, details)


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str):
    """A stored pattern compiled by RE2 (linear time whatever the pattern; validation.regex)."""
    return validation.regex(pattern)


def _without(subject: str, match) -> str:
    """The subject less what the resolve pattern matched, so "RESOLVED: Disk full" keys as "Disk full"."""
    if match is None:
        return subject
    rest = (subject[: match.start()] + " " + subject[match.end() :]).strip(_SEPARATORS)
    return _one_line(rest) or subject


def event_for(mail: Mail, recipient: Recipient) -> Event:
    """The Event one recipient makes of a message: trigger, or resolve when the subject matches
    its resolve pattern; the dedup key per its dedup source (the subject when a regex finds nothing)."""
    resolved = _compiled(recipient.resolve_regex).search(mail.subject) if recipient.resolve_regex else None
    details = dict(mail.details)
    dedup_key = _without(mail.subject, resolved)
    if recipient.dedup_source != "subject" and recipient.dedup_regex:
        text = mail.subject if recipient.dedup_source == "subject_regex" else mail.body
        found = _compiled(recipient.dedup_regex).search(text)
        if found and found.group(1) and found.group(1).strip():
            dedup_key = _one_line(found.group(1))
        else:
            details["dedup_note"] = "The dedup pattern found nothing; the subject is the dedup key."
    source = _one_line(mail.details["from"])[:MAX_SHORT_FIELD]
    return Event(
        recipient.key,
        "resolve" if resolved else "trigger",
        dedup_key[:MAX_DEDUP_KEY],
        summary=mail.subject[:MAX_SUMMARY],
        source=source,
        details={"custom_details": details},
        via="email",
    )


class Throttled(Exception):
    """Too many events for one of the recipients' keys (EVENTS_RATE_LIMIT): try again later."""

    def __init__(self, seconds: int):
        super().__init__(f"retry after {seconds} seconds")
        self.seconds = seconds


def receive(raw: bytes, addresses: list[str]) -> list[Outcome]:
    """Apply one message for each address that belongs to an email integration; the Events are
    committed (group commit) before this returns.

    Raises as `event_batcher.submit` does when nothing was stored (the listener answers 451 so the
    sender retries) and `Throttled` when a key is over its rate limit. A recipient whose
    integration was deleted or whose service was disabled since RCPT gets an outcome that is not
    accepted.
    """
    keys = list(dict.fromkeys(k for k in map(key_of, addresses) if k))
    found = recipients(set(keys))
    db.session.rollback()  # end the lookup's read transaction before the batcher writes
    mail = parse_message(raw)
    events = []
    outcomes: list[Outcome] = []
    for key in keys:
        recipient = found.get(key)
        if recipient is None:
            outcomes.append(Outcome("unknown_key", ""))
            continue
        wait = seconds_until_allowed(key)
        if wait:
            raise Throttled(wait)
        events.append(event_for(mail, recipient))
    return outcomes + submit(events)
