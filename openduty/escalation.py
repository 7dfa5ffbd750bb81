"""The escalation state machine and its planning (pure; time is passed in).

Hooks called by the rest of the app inside the transaction that changes an incident; the
engine decides what to page and arms its timers only after that transaction commits.
"""

from openduty import clock
from openduty.extensions import db
from openduty.models import Incident, LogEntry


def incident_triggered(incident: Incident) -> None:
    """A new incident opened (not a duplicate): start its escalation.

    Called before commit by every path that opens an incident (events, API, web).
    """
    service = incident.service
    now = clock.now()
    if service.in_maintenance(now):
        until = service.maintenance_until.strftime("%Y-%m-%d %H:%M UTC")
        _log(incident, "maintenance", f"Service {service.name} is in maintenance until {until}: nobody is paged.")
        return
    if service.escalation_policy_id is None:
        _log(incident, "nobody_to_page", f"Service {service.name} has no escalation policy: nobody to page.")
        return


def incident_acknowledged(incident: Incident) -> None:
    """The incident was acknowledged (its status and log already updated): stop paging."""


def incident_resolved(incident: Incident) -> None:
    """The incident was resolved (its status and log already updated): stop paging, send notices."""


def _log(incident: Incident, kind: str, message: str) -> None:
    db.session.add(LogEntry(incident=incident, kind=kind, message=message, channel="system"))
