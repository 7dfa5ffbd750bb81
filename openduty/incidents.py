"""Incidents: every action on one, and an incident's timeline (lists: openduty.incident_lists).

Every path that acts on an incident (web, API, acknowledge link, SMS reply, voice keypad, bulk,
events) calls the functions here: acknowledge, resolve, add_note, escalate_now, snooze, reassign,
bulk_act. Each works on a locked row (SELECT ... FOR UPDATE on PostgreSQL, BEGIN IMMEDIATE on
SQLite, taken before the row is read), so two people acting at once never lose or double an
action, and each change of state bumps the epoch exactly once. The caller commits.
"""

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from openduty import clock, escalation
from openduty.extensions import db
from openduty.models import Incident, LogEntry, User
from openduty.timers import track_incident
from openduty.transactions import begin_write

ACTIONS = ("acknowledge", "resolve")
SNOOZE_MAX_MINUTES = 7 * 24 * 60

# The incident page shows this many timeline entries at first, and each "Show older" as many more.
TIMELINE_PAGE = 50
# A poll brings at most this many new entries (a storm's worth); the page reload shows the rest.
TIMELINE_NEW_MAX = 500


def timeline(incident_id: int, *, before: int | None = None, after: int | None = None) -> tuple[list[LogEntry], bool]:
    """Timeline entries newest first, and whether older ones remain: the newest page, the page older
    than entry `before`, or every entry newer than `after` (what a poll has not seen yet)."""
    query = (
        select(LogEntry)
        .where(LogEntry.incident_id == incident_id)
        .options(joinedload(LogEntry.actor))
        .order_by(LogEntry.id.desc())
    )
    if after is not None:
        return list(db.session.scalars(query.where(LogEntry.id > after).limit(TIMELINE_NEW_MAX))), False
    if before is not None:
        query = query.where(LogEntry.id < before)
    entries = list(db.session.scalars(query.limit(TIMELINE_PAGE + 1)))
    return entries[:TIMELINE_PAGE], len(entries) > TIMELINE_PAGE


# --- Locking -------------------------------------------------------------------------------------

# session.info key: (the transaction, ids of the incidents it has locked).
_LOCKED = "openduty.incidents.locked"


def lock(incident_ids: list[int]) -> list[Incident]:
    """Load incidents for a change, locked until commit (in id order, so locks never deadlock).

    The rows are read again under the lock (populate_existing): an Incident loaded earlier in the
    session now shows what the lock protects.
    """
    begin_write()
    incidents = list(
        db.session.scalars(
            select(Incident)
            .where(Incident.id.in_(incident_ids))
            .order_by(Incident.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).all()
    )
    transaction = db.session().get_transaction()
    held = db.session.info.get(_LOCKED)
    if held is None or held[0] is not transaction:
        held = db.session.info[_LOCKED] = (transaction, set())
    held[1].update(incident.id for incident in incidents)
    return incidents


def _locked(incident: Incident) -> None:
    """Lock the incident's row unless this transaction already holds it (each action starts here)."""
    held = db.session.info.get(_LOCKED)
    if held is None or held[0] is not db.session().get_transaction() or incident.id not in held[1]:
        lock([incident.id])


# --- Actions (the caller commits) ----------------------------------------------------------------


class ActionError(ValueError):
    """The action does not apply to the incident in its current state; the message says why."""


# What an action leaves for later: the event batch runs the escalation side of acknowledge and
# resolve at its end, in order, after the incidents it opened have started escalating.
Deferred = list[tuple[Callable[[Incident], None], Incident]]


def acknowledge(
    incident: Incident,
    by: User | None = None,
    channel: str = "web",
    message: str | None = None,
    defer: Deferred | None = None,
) -> bool:
    """Acknowledge a triggered incident and stop paging; False (nothing changes) if it is not triggered.

    With an ack timeout on the service the incident re-triggers then, unless resolved first.
    """
    _locked(incident)
    if incident.status != "triggered":
        return False
    _set_acknowledged(incident, by, channel, message)
    incident.bump_epoch()
    _then(defer, _stop_after_acknowledge, incident)
    return True


def _set_acknowledged(incident: Incident, by: User | None, channel: str, message: str | None = None) -> None:
    incident.status = "acknowledged"
    incident.acknowledged_at = clock.now()
    incident.acknowledged_by = by
    incident.log("acknowledge", message or f"Acknowledged{_by(by)} via {channel}.", by=by, channel=channel)


def _stop_after_acknowledge(incident: Incident) -> None:
    escalation.cancel_pending_pages(incident)
    incident.snoozed_until = None
    timeout = incident.service.ack_timeout_minutes
    incident.next_escalation_at = clock.now() + timedelta(minutes=timeout) if timeout else None
    track_incident(incident)


def resolve(
    incident: Incident,
    by: User | None = None,
    channel: str = "web",
    message: str | None = None,
    defer: Deferred | None = None,
) -> bool:
    """Resolve an open incident; False (nothing changes) if it is already resolved.

    Pending pages are cancelled; everyone a page reached gets a resolve notice on the channels
    that paged them (except whoever resolved it).
    """
    _locked(incident)
    if incident.status == "resolved":
        return False
    incident.status = "resolved"
    incident.resolved_at = clock.now()
    incident.resolved_by = by
    incident.next_escalation_at = None
    incident.log("resolve", message or f"Resolved{_by(by)} via {channel}.", by=by, channel=channel)
    incident.bump_epoch()
    _then(defer, _stop_after_resolve, incident)
    return True


def _stop_after_resolve(incident: Incident) -> None:
    escalation.cancel_pending_pages(incident)
    incident.next_escalation_at = None
    incident.snoozed_until = None
    escalation.queue_resolve_notices(incident)


def _then(defer: Deferred | None, effect: Callable[[Incident], None], incident: Incident) -> None:
    if defer is None:
        effect(incident)
    else:
        defer.append((effect, incident))


def add_note(incident: Incident, text: str, by: User | None = None, channel: str = "web") -> LogEntry:
    """Add a note to the timeline (the status and the escalation do not change, nor the epoch)."""
    _locked(incident)
    return incident.log("note", text, by=by, channel=channel)


def escalate_now(incident: Incident, by: User | None = None, channel: str = "web") -> None:
    """Escalate to the next level now (re-triggering an acknowledged incident)."""
    _locked(incident)
    if not incident.is_open:
        raise ActionError("This incident is resolved; there is nobody left to escalate to.")
    policy = incident.service.escalation_policy
    if policy is None or not policy.levels:
        raise ActionError("This incident's service has no escalation policy with levels.")
    if incident.status == "acknowledged":
        escalation.retrigger(incident)
    incident.bump_epoch()
    incident.next_escalation_at = clock.now()
    if incident.escalation_level >= len(policy.levels) and incident.escalation_loop >= policy.repeat_count:
        incident.escalation_level = len(policy.levels) - 1  # past the end: page the last level again
    incident.log("escalate", f"Escalated to the next level{_by(by)} via {channel}.", by=by, channel=channel)
    track_incident(incident)


def snooze(incident: Incident, minutes: int, by: User | None = None, channel: str = "web") -> None:
    """Acknowledge for `minutes` (a triggered incident is acknowledged first), then re-trigger and
    escalate from level 1."""
    _locked(incident)
    if not incident.is_open:
        raise ActionError("A resolved incident cannot be snoozed.")
    if incident.status == "triggered":
        _set_acknowledged(incident, by, channel)
    escalation.cancel_pending_pages(incident)
    incident.bump_epoch()
    until = clock.now() + timedelta(minutes=minutes)
    incident.snoozed_until = until
    incident.next_escalation_at = until
    message = f"Snoozed for {minutes} min{_by(by)} via {channel}; re-triggers at {until:%H:%M} UTC."
    incident.log("snooze", message, by=by, channel=channel)
    track_incident(incident)


def reassign(incident: Incident, user: User, by: User | None = None, channel: str = "web") -> None:
    """Hand the incident to `user`: page them now on their rules; the policy's timer restarts.

    An acknowledged incident goes back to triggered, so the new assignee has to acknowledge it.
    """
    _locked(incident)
    if not incident.is_open:
        raise ActionError("A resolved incident cannot be reassigned.")
    if not user.active:
        raise ActionError(f"{user.name} is deactivated and cannot be paged.")
    if incident.status == "acknowledged":
        escalation.retrigger(incident)
    escalation.cancel_pending_pages(incident)
    incident.bump_epoch()
    now = clock.now()
    incident.assigned_to_id = user.id
    policy = incident.service.escalation_policy
    if policy is not None and policy.levels and incident.service.escalation_policy_id is not None:
        current = policy.levels[max(incident.escalation_level - 1, 0) % len(policy.levels)]
        incident.next_escalation_at = now + timedelta(minutes=current.delay_minutes)
    else:
        incident.next_escalation_at = None
    incident.log("reassign", f"Reassigned to {user.name}{_by(by)} via {channel}.", by=by, channel=channel)
    escalation.page_user(incident, user, now, level=None, loop=None)
    track_incident(incident)


def _by(user: User | None) -> str:
    return f" by {user.name}" if user is not None else ""


def act(incident: Incident, action: str, user: User | None, channel: str) -> bool:
    """Acknowledge or resolve; False when the incident was already past that state."""
    if action == "acknowledge":
        return acknowledge(incident, by=user, channel=channel)
    if action == "resolve":
        return resolve(incident, by=user, channel=channel)
    raise ValueError(f"unknown action {action!r}")


def bulk_act(incident_ids: list[int], action: str, user: User, channel: str) -> tuple[int, int]:
    """Apply `action` to many incidents in the current transaction; (changed, unchanged)."""
    changed = 0
    incidents = lock(incident_ids)
    for incident in incidents:
        changed += act(incident, action, user, channel)
    return changed, len(incidents) - changed
