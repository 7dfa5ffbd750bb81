"""Validation shared by forms and the API, so a field means the same thing everywhere.

Each validator returns the normalised value or raises `FieldError` with a message that says what
to fix. `collect()` gathers many fields into one `ValidationError`.
"""

import json
import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, available_timezones

import phonenumbers
import re2
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import func, select

from openduty import outbound
from openduty.errors import ValidationError
from openduty.extensions import db
from openduty.models.user import CONTACT_KINDS
from openduty.notifiers import apprise as apprise_channel


class FieldError(ValueError):
    """One field's problem; the message is shown next to the field."""


def email(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FieldError("Enter an email address.")
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise FieldError(f"Not a valid email address: {exc}") from exc


def phone(value: Any) -> str:
    """A phone number in E.164 form (+ and country code), e.g. +14155550100."""
    if not isinstance(value, str) or not value.strip():
        raise FieldError("Enter a phone number.")
    text = value.strip()
    if not text.startswith("+"):
        raise FieldError("Phone numbers need the + and country code (E.164), e.g. +14155550100.")
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as exc:
        raise FieldError(f"Not a valid phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(number):
        raise FieldError("Not a valid phone number; use E.164, e.g. +14155550100.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_ZONES: set[str] | None = None


def time_zone(value: Any) -> str:
    """An IANA time zone name such as Europe/Budapest."""
    global _ZONES
    if _ZONES is None:
        _ZONES = available_timezones() | {"UTC"}
    if not isinstance(value, str) or value.strip() not in _ZONES:
        raise FieldError("Unknown time zone; use an IANA name such as Europe/Budapest or UTC.")
    ZoneInfo(value.strip())
    return value.strip()


def time_zone_names() -> list[str]:
    """Every name `time_zone` accepts, sorted (for a form's picker)."""
    time_zone("UTC")  # fills _ZONES
    return sorted(_ZONES or ())


PASSWORD_MIN_LENGTH = 8  # with the login throttle, long enough against online guessing


def password(value: Any) -> str:
    """A new password: at least PASSWORD_MIN_LENGTH characters, at most 200."""
    if not isinstance(value, str) or not value:
        raise FieldError("Enter a password.")
    if len(value) < PASSWORD_MIN_LENGTH:
        raise FieldError(f"Use at least {PASSWORD_MIN_LENGTH} characters.")
    if len(value) > 200:
        raise FieldError("Use at most 200 characters.")
    return value


def url(value: Any, schemes: tuple[str, ...] = ("http", "https")) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FieldError("Enter a URL.")
    _refuse_unstorable(value, "The URL")
    parsed = urlparse(value.strip())
    if parsed.scheme not in schemes or not parsed.netloc:
        raise FieldError(f"Not a valid URL; it must start with {' or '.join(s + '://' for s in schemes)}.")
    return value.strip()


def unstorable(value: str) -> str | None:
    """Why no database can store this text (a NUL or a lone surrogate), or None if it can."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (text that is not valid Unicode)"
    return None


def _refuse_unstorable(value: str, label: str) -> None:
    reason = unstorable(value)
    if reason:
        raise FieldError(f"{label} {reason}; remove it.")


def unstorable_path(value: Any, path: str = "") -> tuple[str, str] | None:
    """The first (path, reason) in a JSON value whose text (or key) cannot be stored, else None.

    Paths read like `payload.custom_details.disk[2]`; the walk is iterative, so depth costs nothing.
    """
    stack = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            reason = unstorable(item)
            if reason:
                return where or "body", reason
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                child_path = f"{where}.{key}" if where else str(key)
                if isinstance(key, str) and unstorable(key):
                    shown = child_path.encode("utf-8", "backslashreplace").decode().replace("\x00", "\\x00")
                    return shown, "has a key that " + unstorable(key)
                stack.append((child_path, child))
        elif isinstance(item, list):
            for i in reversed(range(len(item))):
                stack.append((f"{where}[{i}]", item[i]))
    return None


# JSON bodies nest at most this deep. Real payloads nest a few levels (Alertmanager's: 4); deep
# nesting only costs stack and CPU, and past ~990 levels the parser itself fails.
MAX_JSON_DEPTH = 64


class JsonTooDeep(ValueError):
    """A JSON body nested deeper than allowed (a ValueError, like every other bad JSON)."""


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):  # 1e400: no database's JSON can store the infinity it becomes
        raise ValueError(f"the number {literal[:20]} is out of range")
    return value


def loads(data: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a JSON request body: strict JSON (no NaN, Infinity or numbers that overflow to them),
    nested at most `max_depth` deep.

    Raises `JsonTooDeep` (too deep) or another ValueError (not JSON). The app's JSON provider uses
    it for every `request.get_json()`; the ingest endpoints call it on their raw bodies.
    """
    too_deep = f"The JSON is nested deeper than {max_depth} levels; send a flatter object."
    try:
        value = json.loads(data, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise JsonTooDeep(too_deep) from None
    # Depth needs at least that many brackets; counting them is C-fast, so most bodies skip the walk.
    opening = ("[", "{") if isinstance(data, str) else (b"[", b"{")
    if data.count(opening[0]) + data.count(opening[1]) > max_depth and json_depth(value) > max_depth:
        raise JsonTooDeep(too_deep)
    return value


def json_depth(value: Any) -> int:
    """How deeply a parsed JSON value nests (a scalar is 0, `[]` and `{}` are 1); iterative."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def text(value: Any, *, max_length: int, required: bool = True, label: str = "This field") -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise FieldError(f"{label} must be text.")
    _refuse_unstorable(value, label)
    value = value.strip()
    if required and not value:
        raise FieldError(f"{label} is required.")
    if len(value) > max_length:
        raise FieldError(f"{label} is too long ({len(value)} characters; at most {max_length}).")
    return value


# The largest value an INTEGER column holds (PostgreSQL's int4): every id and every whole number
# a client sends is at most this, so none can overflow the database.
MAX_INTEGER = 2**31 - 1


def unique_name(value: Any, model, current, taken: str) -> str:
    """A name of 1 to 200 characters that no other row of `model` has, compared without regard to
    case (`current` is the row being changed, or None); `taken` is the message when one does."""
    name = text(value, max_length=200, label="Name")
    clash = db.session.scalar(select(model.id).where(func.lower(model.name) == func.lower(name)))
    if clash is not None and (current is None or clash != current.id):
        raise FieldError(taken)
    return name


def integer(value: Any, *, minimum: int | None = None, maximum: int | None = None, label: str = "This") -> int:
    """A whole number (JSON integer or its text), within [minimum, maximum]; at most MAX_INTEGER."""
    if isinstance(value, bool):
        raise FieldError(f"{label} must be a whole number.")
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError as exc:  # also text of more than 4300 digits
            raise FieldError(f"{label} must be a whole number.") from exc
    if not isinstance(value, int):
        raise FieldError(f"{label} must be a whole number.")
    if minimum is not None and value < minimum:
        raise FieldError(f"{label} must be at least {minimum}.")
    maximum = MAX_INTEGER if maximum is None else min(maximum, MAX_INTEGER)
    if value > maximum:
        raise FieldError(f"{label} must be at most {maximum}.")
    return value


def id_in_text(value: str) -> int | None:
    """The id that a text of ASCII digits names (at most MAX_INTEGER), else None: for lookups by id or name."""
    if value.isascii() and value.isdigit() and len(value) <= 10 and int(value) <= MAX_INTEGER:
        return int(value)
    return None


def object_id(value: Any, label: str = "The id") -> int:
    """An id of a stored object: a whole number from 1 to MAX_INTEGER (whether it exists is the caller's check)."""
    try:
        return integer(value, minimum=1, label=label)
    except FieldError as exc:
        raise FieldError(f"{label} must be an id: a whole number from 1 to {MAX_INTEGER}.") from exc


def boolean(value: Any, label: str = "This") -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "on", "yes", "y"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "0", "off", "no", "n", ""):
        return False
    raise FieldError(f"{label} must be true or false.")


def _xmpp(value: Any) -> str:
    address = email(value)  # a bare JID has the shape of an email address
    return address


def _allowed_destination(host: str) -> None:
    """Refuse a destination host the outbound policy would refuse (checked again at every send,
    since DNS may change; a name that does not resolve now is left to that check)."""
    try:
        outbound.check_host(host, outbound.policy_for(current_app.config))
    except outbound.OutboundError as exc:
        raise FieldError(f"This address is {exc}.") from exc


def destination_url(value: Any) -> str:
    """An http(s) URL the server may call (webhook and Slack contact methods)."""
    clean = url(value)
    _allowed_destination(urlparse(clean).hostname or "")
    return clean


def _apprise(value: Any, privileged: bool = False) -> str:
    """An Apprise URL Apprise recognises; admin-only schemes only for admins' contact methods."""
    if not isinstance(value, str) or "://" not in value.strip():
        raise FieldError("Not an Apprise URL; it looks like scheme://..., e.g. tgram://bottoken/ChatID.")
    # Apprise loads its plugins lazily, and one imports the deprecated imghdr module.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import apprise  # slow to import (100+ plugins): only checking an Apprise URL pays

        plugin = apprise.Apprise.instantiate(value.strip())
    if plugin is None:
        raise FieldError("Apprise does not recognise this URL; see the Apprise wiki for the format.")
    reason = None if privileged else apprise_channel.admin_only_reason(value)
    if reason:
        raise FieldError(reason[0].upper() + reason[1:])
    # Self-hosted services (ntfy, gotify, matrix, ...: those with a plain-HTTP scheme too) name
    # their server as the URL's host; for hosted ones (tgram, discord, ...) the "host" is a token.
    if getattr(plugin, "protocol", None):
        _allowed_destination(getattr(plugin, "host", None) or "")
    return value.strip()


def _pushover(value: Any) -> str:
    if not isinstance(value, str) or not value.strip().isalnum() or len(value.strip()) != 30:
        raise FieldError("A Pushover user key is 30 letters and digits.")
    return value.strip()


CONTACT_ADDRESS_VALIDATORS: dict[str, Callable[[Any], str]] = {
    "email": email,
    "sms": phone,
    "voice": phone,
    "slack": destination_url,
    "webhook": destination_url,
    "pushover": _pushover,
    "xmpp": _xmpp,
    "apprise": _apprise,
}
assert set(CONTACT_ADDRESS_VALIDATORS) == set(CONTACT_KINDS)


def contact_kind(value: Any) -> str:
    if not isinstance(value, str) or value not in CONTACT_KINDS:
        raise FieldError(f"Unknown kind; use one of {', '.join(CONTACT_KINDS)}.")
    return value


def contact_address(kind: str, value: Any, *, privileged: bool = False) -> str:
    """A contact method's address for its kind; `privileged` when its owner is an admin (who
    may use admin-only Apprise schemes)."""
    if isinstance(value, str):
        _refuse_unstorable(value, "The address")
    if kind == "apprise":
        return _apprise(value, privileged=privileged)
    return CONTACT_ADDRESS_VALIDATORS[kind](value)


def refuse_unknown(data: Any, allowed: Iterable[str]) -> None:
    """Refuse fields nobody reads (a typo must not pass silently): one 422 naming each, listing the known ones."""
    if not isinstance(data, Mapping):
        return
    allowed = tuple(allowed)
    unknown = sorted(str(name) for name in set(data) - set(allowed))
    if unknown:
        known = ", ".join(allowed) if allowed else "nothing (send no body)"
        raise ValidationError({_printable(name): f"Unknown field; use {known}." for name in unknown})


def _printable(name: str) -> str:
    """A field name as it can be shown and stored (NUL and lone surrogates escaped)."""
    return name.encode("utf-8", "backslashreplace").decode().replace("\x00", "\\x00")


def collect(checks: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Run each field's check; return the clean values, or raise one ValidationError naming all."""
    clean: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field, check in checks.items():
        try:
            clean[field] = check()
        except FieldError as exc:
            errors[field] = str(exc)
    if errors:
        raise ValidationError(errors)
    return clean


# Dates and times anyone sends lie in these years (inclusive): wide enough for any schedule or
# maintenance window, narrow enough that no arithmetic on them (offsets, +400 days) overflows.
MIN_YEAR = 1970
MAX_YEAR = 2200


def in_year_range(value: datetime | date, label: str = "This") -> None:
    """Refuse a date or time outside MIN_YEAR..MAX_YEAR (checked before any zone arithmetic)."""
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise FieldError(f"{label} must be between the years {MIN_YEAR} and {MAX_YEAR}.")


def aware_datetime(value: Any, *, label: str = "This", local_zone: str | None = None) -> datetime:
    """An ISO 8601 date-time with a UTC offset, returned in UTC, between MIN_YEAR and MAX_YEAR.

    With `local_zone`, a time without an offset (e.g. from a datetime-local form field) is read as
    wall-clock time in that IANA zone; without it, the offset is required.
    """
    # Forms (a zone for wall-clock input) are answered in people's words; API bodies in the standard's.
    form = "a date and time, e.g. 2026-03-01 09:00"
    expected = form if local_zone else "an ISO 8601 date and time, e.g. 2026-03-01T09:00:00+01:00"
    if not isinstance(value, str) or not value.strip():
        raise FieldError(f"{label} is required: {expected}.")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise FieldError(f"{label} is not {expected}.") from exc
    in_year_range(parsed, label)
    if parsed.tzinfo is None:
        if local_zone is None:
            raise FieldError(f"{label} needs a UTC offset, e.g. 2026-03-01T09:00:00+01:00 or ...Z.")
        parsed = parsed.replace(tzinfo=ZoneInfo(local_zone))
    return parsed.astimezone(UTC)


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is the user's error, said in the answer, not logged
_RE2_OPTIONS.max_mem = 8 << 20  # a pattern whose automaton needs more is refused at compile time
RegexError = re2.error


def regex(value: str):
    """`value` compiled by RE2, whose matching takes time linear in the text whatever the pattern
    (no catastrophic backtracking: patterns come from users and run on every event). RE2 has no
    backreferences or lookarounds; a pattern using them is refused with RE2's reason."""
    try:
        return re2.compile(value, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise FieldError(
            f"Not a valid regular expression ({reason}); the syntax is RE2's: no backreferences or lookarounds."
        ) from None


def regex_text(value: Any, *, max_length: int, groups: int | None = None, label: str = "This pattern") -> str:
    """A pattern as text that `regex()` compiles, with exactly `groups` capture groups when given;
    returned as written (surrounding spaces removed), to be stored."""
    pattern = text(value, max_length=max_length, label=label)
    try:
        compiled = regex(pattern)
    except FieldError as exc:
        raise FieldError(f"{label}: {exc}") from None
    if groups is not None and compiled.groups != groups:
        found = f"{compiled.groups} capture groups" if compiled.groups != 1 else "1 capture group"
        raise FieldError(
            f"{label} must have exactly {groups} capture group (the part in parentheses), not {found}; "
            "write other groups as (?:...)."
        )
    return pattern
