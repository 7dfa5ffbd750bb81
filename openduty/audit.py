"""The audit log: every configuration change recorded in the transaction that makes it.

Changes are not recorded by each view or command (one forgotten call would be a change nobody can
see): a SQLAlchemy `after_flush` hook looks at every object the flush wrote and, for the audited
models below, inserts one `AuditEntry` per object with the changed fields, before and after, on the
same connection. So an entry exists exactly when its change was committed, and a rolled-back change
leaves none. Several flushes of one object in one transaction (create, then set a field) update that
object's entry, so one change is one entry.

Who: `set_actor()` names the actor for what follows in this app context: access.enforce does it for
every request (the session's user, or an API token and its user), the CLI commands say "cli", the
directory sync "ldap-sync", a directory login "directory login"; anything else (jobs) is "system".
Logins and failed logins are not changes to a row and are recorded by `record()`.

Secrets are masked before they are stored (password hashes, keys, token and calendar secrets,
contact addresses and iCal URLs as openduty.masking shows them to everyone). Reading the log and
its retention purge are openduty.audit_log.
"""

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from flask import g, has_app_context
from sqlalchemy import event, insert, inspect, update
from sqlalchemy.orm import Session

from openduty import clock, masking
from openduty.extensions import db
from openduty.models import (
    ApiToken,
    AuditEntry,
    ContactMethod,
    CoverRequest,
    EmailSettings,
    EscalationLevel,
    EscalationPolicy,
    EscalationTarget,
    EventRule,
    Heartbeat,
    Integration,
    LayerParticipant,
    MaintenanceWindow,
    MaintenanceWindowService,
    NotificationRule,
    Schedule,
    ScheduleLayer,
    ScheduleOverride,
    Service,
    Team,
    TeamMember,
    User,
)
from openduty.services import SERVICE_FIELDS

_INFO_KEY = "openduty.audit.pending"
_TABLE = AuditEntry.__table__


@dataclass(frozen=True)
class Actor:
    """Who makes the changes that follow: a user (id and how they are shown) or a process."""

    label: str
    user_id: int | None = None


SYSTEM = Actor("system")
CLI = Actor("cli")
LDAP_SYNC = Actor("ldap-sync")
DIRECTORY_LOGIN = Actor("directory login")
ANONYMOUS = Actor("anonymous")


def user_actor(user: User) -> Actor:
    return Actor(user.email, user.id)


def token_actor(token: ApiToken) -> Actor:
    return Actor(f"{token.user.email} (API token {token.prefix}…)", token.user_id)


def set_actor(actor: Actor) -> None:
    """Name who makes the changes flushed from now on in this app context (a request, a command)."""
    g.audit_actor = actor


@contextmanager
def acting_as(actor: Actor) -> Iterator[None]:
    """Name the actor for a block that flushes its own changes (the directory sync), then restore."""
    previous = g.get("audit_actor")
    g.audit_actor = actor
    try:
        yield
    finally:
        if previous is None:
            g.pop("audit_actor", None)
        else:
            g.audit_actor = previous


def current_actor() -> Actor:
    return g.get("audit_actor", SYSTEM) if has_app_context() else SYSTEM


# --- What is audited ------------------------------------------------------------------------------


def _masked_password(value: str | None) -> str:
    """'set (3f9a1c)': a fingerprint of the hash, so a change shows, and nothing of the hash itself."""
    return f"set ({hashlib.sha256(value.encode()).hexdigest()[:6]})" if value else "none"


def _characters(value: str | None) -> str | None:
    return f"{len(value)} characters" if value else None


@dataclass(frozen=True)
class Audited:
    """How one model is recorded: its object type, the fields that count as configuration (others,
    such as a token's last use or a layer's refresh time, change without an entry), the fields shown
    masked, and a label built from the row's own columns."""

    object_type: str
    fields: tuple[str, ...]
    label: Callable[[dict], str]
    masked: dict[str, Callable[[Any, dict], Any]] = field(default_factory=dict)


def _named(state: dict) -> str:
    return str(state.get("name") or "")


AUDITED: dict[type, Audited] = {
    User: Audited(
        "user",
        (
            "email",
            "name",
            "time_zone",
            "is_admin",
            "observer",
            "active",
            "auth_source",
            "directory_dn",
            "session_generation",
        ),
        lambda s: str(s.get("email") or ""),
        {
            "password_hash": lambda v, s: _masked_password(v),
            "calendar_token": lambda v, s: masking.secret(v),
        },
    ),
    ApiToken: Audited(
        "api token", ("user_id", "name", "prefix", "read_only"), lambda s: f"{s.get('name')} ({s.get('prefix')}…)"
    ),
    ContactMethod: Audited(
        "contact method",
        ("user_id", "kind", "label"),
        lambda s: masking.contact_address(s.get("kind") or "", s.get("address")),
        {"address": lambda v, s: masking.contact_address(s.get("kind") or "", v)},
    ),
    NotificationRule: Audited(
        "notification rule",
        ("user_id", "contact_method_id", "delay_minutes", "urgency"),
        lambda s: f"after {s.get('delay_minutes')} min",
    ),
    Service: Audited(
        "service",
        SERVICE_FIELDS,
        _named,
    ),
    Integration: Audited(
        "integration", ("service_id", "kind", "name"), _named, {"key": lambda v, s: masking.secret(v)}
    ),
    Heartbeat: Audited(
        "heartbeat",
        ("integration_id", "interval_seconds", "grace_seconds", "paused"),
        lambda s: f"heartbeat of integration #{s.get('integration_id')}",
    ),
    EmailSettings: Audited(
        "email settings",
        ("integration_id", "dedup_source", "dedup_regex", "resolve_regex"),
        lambda s: f"email settings of integration #{s.get('integration_id')}",
    ),
    EscalationPolicy: Audited("escalation policy", ("name", "description", "team_id", "repeat_count"), _named),
    EscalationLevel: Audited(
        "escalation level",
        ("policy_id", "position", "delay_minutes"),
        lambda s: f"level {(s.get('position') or 0) + 1} of policy #{s.get('policy_id')}",
    ),
    EscalationTarget: Audited(
        "escalation target",
        ("level_id", "target_type", "user_id", "schedule_id"),
        lambda s: f"{s.get('target_type')} #{s.get('user_id') or s.get('schedule_id')}",
    ),
    Schedule: Audited("schedule", ("name", "time_zone", "description", "team_id"), _named),
    Team: Audited("team", ("name", "description", "directory_dn"), _named),
    TeamMember: Audited(
        "team member",
        ("team_id", "user_id", "role"),
        lambda s: f"user #{s.get('user_id')} in team #{s.get('team_id')}",
    ),
    ScheduleLayer: Audited(
        "schedule layer",
        ("schedule_id", "position", "name", "kind", "start", "shift_length", "shift_unit", "restrictions"),
        lambda s: str(s.get("name") or f"layer {(s.get('position') or 0) + 1}"),
        {"ical_url": lambda v, s: masking.url(v) if v else None, "ical_data": lambda v, s: _characters(v)},
    ),
    LayerParticipant: Audited(
        "layer participant",
        ("layer_id", "position", "user_id"),
        lambda s: f"user #{s.get('user_id')} in layer #{s.get('layer_id')}",
    ),
    EventRule: Audited(
        "event rule",
        ("service_id", "position", "name", "match", "conditions", "action", "severity", "urgency")
        + ("route_to_service_id", "continue_matching"),
        lambda s: str(s.get("name") or f"rule {s.get('position')}"),
    ),
    MaintenanceWindow: Audited(
        "maintenance window",
        ("start", "end", "description", "created_by_id"),
        lambda s: str(s.get("description") or f"maintenance window #{s.get('id')}"),
    ),
    MaintenanceWindowService: Audited(
        "maintenance window service",
        ("window_id", "service_id"),
        lambda s: f"service #{s.get('service_id')} in maintenance window #{s.get('window_id')}",
    ),
    ScheduleOverride: Audited(
        "override",
        ("schedule_id", "user_id", "start", "end", "note", "created_by_id"),
        lambda s: f"user #{s.get('user_id')} on schedule #{s.get('schedule_id')}",
    ),
    CoverRequest: Audited(
        "cover request",
        ("schedule_id", "layer_id", "requester_id", "start", "end", "note", "status", "accepted_by_id", "override_id"),
        lambda s: f"cover for user #{s.get('requester_id')} on schedule #{s.get('schedule_id')}",
    ),
}

# How an audited object leads to the team that owns it: its own `team_id`, or its parent's.
_PARENTS: dict[type, tuple[str, type, str]] = {
    Integration: ("service", Service, "service_id"),
    Heartbeat: ("integration", Integration, "integration_id"),
    EventRule: ("service", Service, "service_id"),
    EmailSettings: ("integration", Integration, "integration_id"),
    EscalationLevel: ("policy", EscalationPolicy, "policy_id"),
    EscalationTarget: ("level", EscalationLevel, "level_id"),
    ScheduleLayer: ("schedule", Schedule, "schedule_id"),
    LayerParticipant: ("layer", ScheduleLayer, "layer_id"),
    ScheduleOverride: ("schedule", Schedule, "schedule_id"),
    CoverRequest: ("schedule", Schedule, "schedule_id"),
}


def _team_of(session: Session, obj, depth: int = 0) -> int | None:
    """The team that owns `obj` (for its managers' view of the log), from loaded state or the session."""
    state = inspect(obj).dict
    if isinstance(obj, Team):
        return state.get("id")
    if "team_id" in type(obj).__table__.c:
        return state.get("team_id")
    parent_of = _PARENTS.get(type(obj))
    if parent_of is None or depth > 3:
        return None
    relationship, model, key = parent_of
    parent = state.get(relationship)
    if parent is None and state.get(key) is not None:
        parent = session.get(model, state[key])
    return _team_of(session, parent, depth + 1) if parent is not None else None


OBJECT_TYPES = sorted({spec.object_type for spec in AUDITED.values()})  # logins are on "user"


def _json(value: Any) -> Any:
    """A value as JSON can hold it (timestamps as ISO 8601 text)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str | list | dict):
        return value
    return str(value)


def _shown(spec: Audited, name: str, value: Any, state: dict) -> Any:
    mask = spec.masked.get(name)
    return _json(mask(value, state) if mask and value is not None else value)


def _changes(obj, spec: Audited, action: str) -> dict[str, list]:
    """{field: [before, after]} for the fields this flush wrote, from the loaded state only (no SQL)."""
    state = inspect(obj)
    loaded = state.dict
    changes: dict[str, list] = {}
    for name in (*spec.fields, *spec.masked):
        if action == "created":
            before, after = None, loaded.get(name)
        elif action == "deleted":
            before, after = loaded.get(name), None
        else:
            history = state.attrs[name].history
            if not history.added and not history.deleted:
                continue
            before = history.deleted[0] if history.deleted else None
            after = history.added[0] if history.added else None
        if before != after:
            changes[name] = [_shown(spec, name, before, loaded), _shown(spec, name, after, loaded)]
    return changes


def _written(flush_context) -> list[tuple[Any, str]]:
    """What this flush wrote: the unit of work's states, which (unlike session.deleted) include the
    orphans it deleted (a layer removed from its schedule's list)."""
    writes = []
    for state, (is_delete, list_only) in flush_context.states.items():
        if list_only or state.obj() is None:
            continue
        action = "deleted" if is_delete else "created" if state.key is None else "changed"
        writes.append((state.obj(), action))
    return writes


def _after_flush(session: Session, flush_context) -> None:
    writes = _written(flush_context)
    pending = session.info.setdefault(_INFO_KEY, {})
    actor = None
    for obj, action in writes:
        spec = AUDITED.get(type(obj))
        if spec is None:
            continue
        changes = _changes(obj, spec, action)
        if action == "changed" and not changes:
            continue
        actor = actor or current_actor()
        state = inspect(obj)
        object_id = state.identity[0] if state.identity else state.dict.get("id")  # new rows: set by the INSERT
        label = spec.label(state.dict)[:300]
        key = (spec.object_type, object_id)
        if key in pending:
            _merge(session, pending[key], action, changes)
            continue
        row = {
            "at": clock.now(),
            "actor_id": actor.user_id,
            "actor": actor.label[:300],
            "action": action,
            "object_type": spec.object_type,
            "object_id": object_id,
            "object_label": label,
            "changes": changes,
            "team_id": _team_of(session, obj),
        }
        entry_id = session.connection().execute(insert(_TABLE).returning(_TABLE.c.id), [row]).scalar_one()
        pending[key] = {"id": entry_id, "action": action, "changes": changes}


def _merge(session: Session, entry: dict, action: str, changes: dict[str, list]) -> None:
    """A later flush of an object already recorded in this transaction: one entry, first before, last after."""
    for name, (before, after) in changes.items():
        entry["changes"][name] = [entry["changes"].get(name, [before])[0], after]
    if action == "deleted":
        entry["action"] = "deleted"
    values = {"action": entry["action"], "changes": dict(entry["changes"])}
    session.connection().execute(update(_TABLE).where(_TABLE.c.id == entry["id"]).values(**values))


def _forget(session: Session, *args) -> None:
    session.info.pop(_INFO_KEY, None)


def install() -> None:
    """Register the hooks on every session (once per process; the app factory calls it)."""
    if not event.contains(Session, "after_flush", _after_flush):
        event.listen(Session, "after_flush", _after_flush)
        event.listen(Session, "after_commit", _forget)
        event.listen(Session, "after_soft_rollback", _forget)


def record(action: str, object_type: str, object_id: int | None, label: str, changes: dict | None = None) -> None:
    """An entry that is not a row's change (a login, a failed login), as part of the current transaction."""
    actor = current_actor()
    db.session.add(
        AuditEntry(
            actor_id=actor.user_id,
            actor=actor.label[:300],
            action=action,
            object_type=object_type,
            object_id=object_id,
            object_label=label[:300],
            changes={name: _json(value) for name, value in (changes or {}).items()},
        )
    )
