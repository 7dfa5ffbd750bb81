"""Directory (LDAP) logins and sync through ldap3: find a person, bind as them, mirror them as a user.

The directory is the truth for the people it holds (auth_source "ldap"): their name, email and admin
flag are refreshed at each login and by `sync()`; someone who left the directory is deactivated (their
sessions, API tokens and acknowledge links end with it). Local accounts never touch the directory, so an
admin can always get in while it is down. Settings: the LDAP_* block of config.py (docs/deployment.md).
The functions that talk to the directory import ldap3 themselves: ~4.5 MB that a process without
LDAP_URL (the worker, run-all, most web apps) would carry for nothing.
"""

import contextlib
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app
from sqlalchemy import select

from openduty import audit, teams, validation
from openduty.extensions import db
from openduty.models import ContactMethod, User

if TYPE_CHECKING:
    import ldap3

WRONG = "Wrong username or password."


class DirectoryDown(Exception):
    """The directory did not answer (unreachable, timed out, TLS failed) or refused the service account."""


class LoginRefused(Exception):
    """The directory answered no: wrong password, unknown person, or an entry we cannot use."""


@dataclass(frozen=True)
class Person:
    """What the directory says about one person."""

    dn: str
    email: str
    name: str
    is_admin: bool
    phone: str | None = None  # E.164, when LDAP_ATTR_PHONE holds a usable number
    # The team groups (LDAP_TEAM_GROUPS) the person is in, DN -> name; None when teams are not mirrored.
    teams: dict[str, str] | None = None


def enabled() -> bool:
    return bool(current_app.config.get("LDAP_URL"))


def _setting(name: str):
    return current_app.config.get(name)


def _server() -> "ldap3.Server":
    import ldap3  # directory calls only (module docstring)

    url = _setting("LDAP_URL")
    tls = None
    if url.startswith("ldaps://") or _setting("LDAP_START_TLS") or _setting("LDAP_CA_FILE"):
        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=_setting("LDAP_CA_FILE") or None)
    return ldap3.Server(
        url,
        use_ssl=url.startswith("ldaps://"),
        tls=tls,
        connect_timeout=_setting("LDAP_TIMEOUT_SECONDS"),
        get_info=ldap3.NONE,
    )


def _connect(dn: str | None, password: str | None) -> "ldap3.Connection | None":
    """A connection bound as `dn` (anonymous when None); None when the directory refuses the bind."""
    import ldap3  # directory calls only (module docstring)
    from ldap3.core import exceptions as ldap_errors  # with ldap3 (module docstring)

    connection = ldap3.Connection(
        _server(), dn, password, receive_timeout=_setting("LDAP_TIMEOUT_SECONDS"), read_only=True
    )
    try:
        connection.open()
        if _setting("LDAP_START_TLS") and not _setting("LDAP_URL").startswith("ldaps://"):
            connection.start_tls()
        if connection.bind():
            return connection
    except ldap_errors.LDAPException as exc:
        _close(connection)
        if "certificate" in str(exc).lower():
            raise DirectoryDown(
                "The directory's TLS certificate was not accepted (is LDAP_CA_FILE its CA?); no password was sent."
            ) from exc
        raise DirectoryDown(f"The directory is not answering ({type(exc).__name__}).") from exc
    _close(connection)
    return None


def _close(connection: "ldap3.Connection") -> None:
    """Unbind, and close the socket too: ldap3 leaves it open when connecting failed."""
    from ldap3.core import exceptions as ldap_errors  # directory calls only (module docstring)

    with contextlib.suppress(ldap_errors.LDAPException):  # a connection that never opened has nothing to end
        connection.unbind()
    if connection.socket is not None:
        connection.socket.close()


def _service() -> "ldap3.Connection":
    """The connection searches run on: the service account, or anonymous when none is set."""
    connection = _connect(_setting("LDAP_BIND_DN") or None, _setting("LDAP_BIND_PASSWORD") or None)
    if connection is None:
        raise DirectoryDown("The directory refused Openduty's service account (LDAP_BIND_DN).")
    return connection


def _search(
    connection: "ldap3.Connection", base: str, query: str, scope="SUBTREE", attributes=(), size_limit: int = 2
) -> list:
    """The entries under `base` (scope: ldap3's SUBTREE, LEVEL or BASE) matching `query`."""
    from ldap3.core import exceptions as ldap_errors  # directory calls only (module docstring)

    try:
        connection.search(base, query, scope, attributes=list(attributes), size_limit=size_limit)
    except ldap_errors.LDAPNoSuchObjectResult:
        return []
    except ldap_errors.LDAPException as exc:
        raise DirectoryDown(f"The directory is not answering ({type(exc).__name__}).") from exc
    if connection.result.get("result") == 32:  # noSuchObject: the base (a person's DN) is gone
        return []
    return list(connection.entries)


def _user_filter(login: str) -> str:
    """The search for a login: the configured filter with the value escaped (so `*)(uid=*` is just
    text), or by email when the login looks like one."""
    from ldap3.utils.conv import escape_filter_chars  # directory calls only (module docstring)

    value = escape_filter_chars(login.strip())
    by_name = _setting("LDAP_USER_FILTER").replace("{username}", value)
    if "@" in login:
        return f"(|{by_name}({_setting('LDAP_ATTR_EMAIL')}={value}))"
    return by_name


def _attributes() -> list[str]:
    return [name for name in (_setting(f"LDAP_ATTR_{n}") for n in ("EMAIL", "NAME", "PHONE")) if name]


def _phone(entry) -> str | None:
    """The entry's phone number as E.164, or None when it has none or it is not one (never a reason to
    refuse a login: the number is only a convenience)."""
    attribute = _setting("LDAP_ATTR_PHONE")
    raw = _value(entry, attribute) if attribute else ""
    try:
        return validation.contact_address("sms", raw) if raw else None
    except validation.FieldError:
        return None


def _value(entry, attribute: str) -> str:
    values = entry.entry_attributes_as_dict.get(attribute) or []
    return str(values[0]).strip() if values else ""


def _is_admin(connection: "ldap3.Connection", dn: str) -> bool:
    group = _setting("LDAP_ADMIN_GROUP")
    if not group:
        return False
    return bool(_search(connection, group, _member_filter(dn), "BASE"))


def _member_filter(dn: str) -> str:
    """Groups that list `dn` as a member (groupOfNames) or uniqueMember (groupOfUniqueNames)."""
    from ldap3.utils.conv import escape_filter_chars  # directory calls only (module docstring)

    member = escape_filter_chars(dn)
    return f"(|(member={member})(uniqueMember={member}))"


# At most this many team groups are read for one person.
MAX_TEAM_GROUPS = 200


def _team_groups(connection: "ldap3.Connection", dn: str) -> dict[str, str] | None:
    """The LDAP_TEAM_GROUPS groups `dn` is a member of (DN -> cn), or None when teams are not mirrored."""
    groups = _setting("LDAP_TEAM_GROUPS")
    if not groups:
        return None
    query = f"(&{groups}{_member_filter(dn)})"
    found = _search(connection, _setting("LDAP_GROUP_BASE"), query, attributes=["cn"], size_limit=MAX_TEAM_GROUPS)
    return {entry.entry_dn: (_value(entry, "cn") or entry.entry_dn)[:200] for entry in found}


def _person(connection: "ldap3.Connection", entry) -> Person:
    email = _value(entry, _setting("LDAP_ATTR_EMAIL"))
    if not email or "@" not in email:
        raise LoginRefused(
            "Your directory entry has no email address, and Openduty pages by email first: "
            "ask your directory administrator to add one."
        )
    name = _value(entry, _setting("LDAP_ATTR_NAME")) or email.split("@")[0]
    return Person(
        dn=entry.entry_dn,
        email=email,
        name=name[:200],
        is_admin=_is_admin(connection, entry.entry_dn),
        phone=_phone(entry),
        teams=_team_groups(connection, entry.entry_dn),
    )


def authenticate(login: str, password: str) -> Person:
    """The person whose username or email is `login`, if `password` is theirs.

    Raises LoginRefused (wrong password, unknown or ambiguous login, unusable entry) or DirectoryDown.
    An empty password is refused here: LDAP would treat it as an anonymous bind, which always succeeds.
    """
    if not login.strip() or not password:
        raise LoginRefused(WRONG)
    service = _service()
    try:
        entries = _search(service, _setting("LDAP_USER_BASE"), _user_filter(login), attributes=_attributes())
        if len(entries) != 1:
            raise LoginRefused(WRONG)
        own = _connect(entries[0].entry_dn, password)
        if own is None:
            raise LoginRefused(WRONG)
        _close(own)
        return _person(service, entries[0])
    finally:
        _close(service)


def mirror(person: Person) -> User:
    """The user for `person`, created on first login or refreshed (name, email, admin flag).

    A local account with the same email and no password (someone an admin added to be paged) becomes
    this person's account; one with a password stays local (LoginRefused), so a directory entry can
    never take over a local login.
    """
    user = db.session.scalar(select(User).where(User.directory_dn == person.dn))
    if user is None:
        user = User.by_email(person.email)
        if user is not None and (user.auth_source != "ldap" and user.password_hash):
            raise LoginRefused("This email belongs to a local account here: log in with its password.")
    if user is None:
        user = User(email=person.email, name=person.name, auth_source="ldap")
        user.contact_methods.append(ContactMethod(kind="email", address=person.email))
        if person.phone:  # offered, not used: no notification rule pages it until its owner adds one
            user.contact_methods.append(ContactMethod(kind="sms", address=person.phone, label="from the directory"))
        db.session.add(user)
    user.auth_source = "ldap"
    user.directory_dn = person.dn
    user.name = person.name
    user.email = person.email
    user.is_admin = person.is_admin
    db.session.flush()
    if person.teams is not None:
        teams.mirror_directory_teams(user, person.teams)
    return user


def deactivate(user: User) -> None:
    """Someone left the directory: no more logins, sessions, API tokens or pages."""
    user.active = False
    user.end_sessions()
    for token in list(user.api_tokens):
        db.session.delete(token)


def sync() -> dict[str, int]:
    """Refresh every directory user from the directory and deactivate those who left it.

    Runs as one transaction for the caller to commit; raises DirectoryDown (and changes nothing) when
    the directory cannot be read, so a directory outage never deactivates anyone.
    """
    with audit.acting_as(audit.LDAP_SYNC):  # the flush at the end writes the audit entries
        return _sync()


def _sync() -> dict[str, int]:
    counts = {"refreshed": 0, "unchanged": 0, "deactivated": 0, "failed": 0}
    users = db.session.scalars(select(User).where(User.auth_source == "ldap", User.active)).all()
    service = _service()
    try:
        for user in users:
            entries = _search(service, user.directory_dn or "", "(objectClass=*)", "BASE", _attributes())
            if not user.directory_dn or not entries:
                deactivate(user)
                counts["deactivated"] += 1
                continue
            try:
                person = _person(service, entries[0])
            except LoginRefused:
                counts["failed"] += 1
                continue
            before = (user.name, user.email, user.is_admin, user.team_ids())
            user.name, user.email, user.is_admin = person.name, person.email, person.is_admin
            if person.teams is not None:
                teams.mirror_directory_teams(user, person.teams)
            after = (user.name, user.email, user.is_admin, user.team_ids())
            counts["refreshed" if before != after else "unchanged"] += 1
    finally:
        _close(service)
    db.session.flush()
    return counts
