"""Secrets shown masked: enough to tell which one it is, never enough to use it.

What is secret and who sees it in full (docs/security.md):
- Contact addresses: their owner and admins, on the profile and in the API. Incident timelines
  are read by everyone, so the entry stores the masked form (`contact_address`): the text of a
  timeline entry, on the page and at /api/v1/incidents/<id>/log, never holds a token or a key.
  Email addresses and XMPP addresses are directory information in a team tool (every member
  lists users and their emails through the API) and are shown as they are; phone numbers keep
  their last four digits; URLs keep scheme and host; keys keep their last four characters.
- Integration keys and iCal source URLs: admins; members see `secret()` / `url()`.
"""

from urllib.parse import urlsplit

ELLIPSIS = "…"


def secret(value: str | None, keep: int = 4) -> str:
    """'…' and the last `keep` characters (a key stays recognisable; 26 of 30+ characters stay hidden)."""
    value = value or ""
    if len(value) <= keep * 2:
        return ELLIPSIS
    return ELLIPSIS + value[-keep:]


def url(value: str | None) -> str:
    """Scheme and host only (no user info, port, path or query, where tokens live): 'https://host/…'."""
    try:
        parts = urlsplit((value or "").strip())
        host = parts.hostname or ""
    except ValueError:
        return ELLIPSIS
    if not parts.scheme:
        return ELLIPSIS
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}/{ELLIPSIS}" if host else f"{parts.scheme}://{ELLIPSIS}"


def _slack(value: str) -> str:
    """hooks.slack.com/…/B0SE… : the host and the start of the webhook's id, not its token."""
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return ELLIPSIS
    segments = [s for s in parts.path.split("/") if s]
    webhook_id = segments[-2][:4] + ELLIPSIS if len(segments) >= 3 else ""
    return f"{parts.hostname or ''}/{ELLIPSIS}/{webhook_id}" if webhook_id else url(value)


def _phone(value: str) -> str:
    digits = [c for c in value if c.isdigit()]
    return f"{ELLIPSIS}{''.join(digits[-4:])}" if len(digits) > 4 else ELLIPSIS


def contact_address(kind: str, address: str | None) -> str:
    """A contact method's address as anyone may see it (timelines)."""
    address = address or ""
    if kind in ("email", "xmpp"):
        return address
    if kind in ("sms", "voice"):
        return _phone(address)
    if kind == "slack":
        return _slack(address)
    if kind == "webhook":
        return url(address)
    if kind == "apprise":
        scheme = address.partition("://")[0].lower()
        return f"{scheme}://{ELLIPSIS}" if scheme.isalnum() else ELLIPSIS
    return secret(address)  # pushover user keys, and any kind added later
