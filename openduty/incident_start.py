"""How a new incident starts: its escalation at level 1 right away, or held, and the entry saying why.

One decision for both ways an incident opens: through the ORM (escalation.incident_triggered) and
as rows written in bulk by ingest (openduty.events), which must write the same fields and timeline.
"""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class FirstEscalation:
    """When a new incident first escalates (None: not now), whether its service's maintenance holds
    it, and the timeline entry (kind, message) that says why it does not start."""

    next_escalation_at: datetime | None
    in_maintenance: bool = False
    entry: tuple[str, str] | None = None


def first_escalation(
    service_name: str, policy_id: int | None, maintenance_end: datetime | None, now: datetime
) -> FirstEscalation:
    """Level 1 at `now`, unless the service is in maintenance until `maintenance_end` (held: the
    window's end starts it, openduty.maintenance) or has no escalation policy (nobody to page)."""
    if maintenance_end is not None:
        message = (
            f"Service {service_name} is in maintenance until {maintenance_end:%Y-%m-%d %H:%M} UTC: nobody is "
            "paged; the escalation starts at level 1 when the maintenance ends."
        )
        return FirstEscalation(None, True, ("maintenance", message))
    if policy_id is None:
        return FirstEscalation(
            None, entry=("nobody_to_page", f"Service {service_name} has no escalation policy: nobody to page.")
        )
    return FirstEscalation(now)
