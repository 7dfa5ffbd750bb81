"""Factories for services, integrations and incidents. Call inside an app context."""

import itertools

from openduty import event_rule_edit, services
from openduty.event_commit import apply_and_commit
from openduty.events import Event
from openduty.extensions import db
from openduty.models import EventRule, Incident, Integration, Service

_seq = itertools.count(1)


def make_service(**fields) -> Service:
    n = next(_seq)
    fields.setdefault("name", f"Service {n}")
    service = Service(**fields)
    db.session.add(service)
    db.session.commit()
    return service


def make_integration(service: Service | None = None, kind: str = "events_v2", **fields) -> Integration:
    service = service or make_service()
    fields.setdefault("name", kind)
    integration = Integration(service=service, kind=kind, **fields)
    db.session.add(integration)
    db.session.commit()
    return integration


def make_incident(integration: Integration | None = None, summary: str = "Disk full", **fields) -> Incident:
    """An incident opened the way events open them (numbered, logged, hooks called)."""
    integration = integration or make_integration()
    dedup_key = fields.pop("dedup_key", f"key-{next(_seq)}")
    severity = fields.pop("severity", "critical")
    event = Event(
        integration.key, "trigger", dedup_key, summary, severity, source="host-1", details=fields.pop("details", {})
    )
    outcome = apply_and_commit([event])[0]
    incident = db.session.get(Incident, outcome.incident_id)
    for name, value in fields.items():
        setattr(incident, name, value)
    db.session.commit()
    return incident


def make_heartbeat(service: Service | None = None, interval: int = 60, grace: int = 30, **fields) -> Integration:
    """A heartbeat integration (waiting for its first ping), made as the pages and the API make one."""
    service = service or make_service()
    data = {"kind": "heartbeat", "interval_seconds": interval, "grace_seconds": grace, **fields}
    integration = services.add_integration(service, data)
    db.session.commit()
    return integration


def make_rule(service: Service | None, action: str = "suppress", conditions=(), **fields) -> EventRule:
    """An event rule, validated as the pages save it; `conditions` as (field, operator, value) triples."""
    data = {
        "action": action,
        "conditions": [dict(zip(("field", "operator", "value"), c, strict=False)) for c in conditions],
    }
    rule = event_rule_edit.save_rule(service.id if service else None, {**data, **fields})
    db.session.commit()
    return rule


def make_email_integration(service: Service | None = None, **settings) -> Integration:
    """An email integration with its settings (the defaults, changed by `settings`), made as the
    pages and the API make one."""
    data = {"kind": "email", "name": "Email", "email": settings}
    integration = services.add_integration(service or make_service(), data)
    db.session.commit()
    return integration
