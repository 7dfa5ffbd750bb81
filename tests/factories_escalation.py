"""Factories for escalation policies, paged users and incidents that escalate. Call inside an app context."""

import itertools
from datetime import timedelta

from openduty import clock, escalation
from openduty.events import next_incident_numbers
from openduty.extensions import db
from openduty.models import (
    EscalationLevel,
    EscalationPolicy,
    EscalationTarget,
    Incident,
    Integration,
    Notification,
    Schedule,
    User,
)
from tests import factories, factories_events

_seq = itertools.count(1)


def make_policy(levels: list[tuple[int, list]] | None = None, repeat_count: int = 0, **fields) -> EscalationPolicy:
    """`levels`: [(delay_minutes, [User or Schedule, ...]), ...]."""
    fields.setdefault("name", f"Policy {next(_seq)}")
    policy = EscalationPolicy(repeat_count=repeat_count, description=fields.pop("description", ""), **fields)
    for position, (delay, targets) in enumerate(levels or []):
        level = EscalationLevel(position=position, delay_minutes=delay)
        for target in targets:
            if isinstance(target, User):
                level.targets.append(EscalationTarget(target_type="user", user=target))
            elif isinstance(target, Schedule):
                level.targets.append(EscalationTarget(target_type="schedule", schedule=target))
            else:
                raise TypeError(target)
        policy.levels.append(level)
    db.session.add(policy)
    db.session.commit()
    return policy


def make_pager(
    name: str,
    channels: dict[str, tuple[str, int]] | None = None,
    low: dict[str, tuple[str, int]] | None = None,
    **fields,
) -> User:
    """A user with notification rules: channels = {"sms": ("+14155550100", 0), "email": (addr, 2)}
    are the high-urgency rules, `low` (the same shape) the low-urgency ones."""
    email = fields.pop("email", f"{name.lower().replace(' ', '.')}{next(_seq)}@example.com")
    user = factories.make_user(name=name, email=email, **fields)
    for urgency, rules in (("high", channels), ("low", low)):
        for kind, (address, delay) in (rules or {}).items():
            method = factories.make_contact_method(user, kind=kind, address=address)
            factories.make_notification_rule(user, method, delay_minutes=delay, urgency=urgency)
    return user


def make_service(policy: EscalationPolicy | None = None, **fields):
    return factories_events.make_service(escalation_policy=policy, **fields)


def open_incident(service, summary: str = "Disk full", dedup_key: str | None = None) -> Incident:
    """Open an incident directly (model + hook in one transaction), the way the engine expects."""
    number = next_incident_numbers(1)
    incident = Incident(
        service=service, dedup_key=dedup_key or f"k{next(_seq)}", summary=summary, number=number, status="triggered"
    )
    db.session.add(incident)
    incident.log("trigger", f"Triggered: {summary}", channel="event")
    escalation.incident_triggered(incident)
    db.session.commit()
    return incident


def trigger_event(service, summary: str = "Disk full", dedup_key: str = "flap") -> Incident:
    """Open (or deduplicate into) an incident through the events ingest, as a monitor would."""

    integration = db.session.scalar(db.select(Integration).where(Integration.service_id == service.id))
    integration = integration or factories_events.make_integration(service)
    return factories_events.make_incident(integration, summary=summary, dedup_key=dedup_key)


def make_overdue(incident_id: int) -> None:
    """Pretend time passed (for real processes, whose clock tests cannot move): the incident's next
    escalation and every pending notification are due a second ago."""
    past = clock.now() - timedelta(seconds=1)
    db.session.rollback()
    incident = db.session.get(Incident, incident_id)
    incident.next_escalation_at = past
    for notification in db.session.scalars(db.select(Notification).where(Notification.status == "pending")):
        notification.send_at = past
    db.session.commit()
