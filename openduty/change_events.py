"""Change events: deploys and configuration changes (PagerDuty's change events API), kept per service.

`record()` stores one; its routing key is the integration key of an Events API v2 integration, as
in PagerDuty. A service's page lists its latest changes and an incident's page the changes of its
service in the hour before it opened (`recent_for_incident`), both from the index on (service,
timestamp). `purge()` drops changes that arrived more than CHANGE_EVENT_RETENTION_DAYS ago.
"""

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import delete, select

from openduty import clock, schedules, validation
from openduty.errors import ValidationError
from openduty.event_formats import Change
from openduty.extensions import db
from openduty.models import ChangeEvent, Incident, Integration, Service

# An incident shows the changes of its service made up to this long before it opened.
RECENT_WINDOW = timedelta(hours=1)
# How many changes a service's page and an incident's page show (the newest).
SHOWN = 10
MAX_PER_PAGE = 100


class ChangeRefused(Exception):
    """No events_v2 integration has the routing key ("unknown_key"), or its service is disabled."""

    def __init__(self, result: str):
        super().__init__(result)
        self.result = result


def record(change: Change) -> ChangeEvent:
    """Store `change` on the service of its routing key (the caller commits); ChangeRefused if none."""
    row = db.session.execute(
        select(Integration.kind, Service.id, Service.disabled)
        .join(Service, Service.id == Integration.service_id)
        .where(Integration.key == change.routing_key)
    ).first()
    if row is None or row.kind != "events_v2":
        raise ChangeRefused("unknown_key")
    if row.disabled:
        raise ChangeRefused("disabled")
    now = clock.now()
    event = ChangeEvent(
        service_id=row.id,
        summary=change.summary,
        source=change.source,
        timestamp=change.timestamp or now,
        custom_details=change.custom_details,
        links=change.links,
        received_at=now,
    )
    db.session.add(event)
    return event


def for_service(
    service_id: int, limit: int = SHOWN, since: datetime | None = None, until: datetime | None = None
) -> list[ChangeEvent]:
    """A service's changes, newest first: at most `limit`, from `since` (inclusive) to `until` (exclusive)."""
    query = select(ChangeEvent).where(ChangeEvent.service_id == service_id)
    if since is not None:
        query = query.where(ChangeEvent.timestamp >= since)
    if until is not None:
        query = query.where(ChangeEvent.timestamp < until)
    return list(db.session.scalars(query.order_by(ChangeEvent.timestamp.desc(), ChangeEvent.id.desc()).limit(limit)))


def query(args: Mapping[str, str]) -> dict[str, Any]:
    """`since`, `until` (ISO 8601 times with an offset) and `per_page` (1..MAX_PER_PAGE, default
    SHOWN) from a query string, as for_service() takes them; ValidationError naming the bad one."""
    since = schedules.query_time(args, "since", None)
    until = schedules.query_time(args, "until", None)
    try:
        limit = validation.integer(args.get("per_page") or SHOWN, minimum=1, maximum=MAX_PER_PAGE, label="per_page")
    except validation.FieldError as exc:
        raise ValidationError({"per_page": str(exc)}) from exc
    return {"since": since, "until": until, "limit": limit}


def recent_for_incident(incident: Incident) -> list[ChangeEvent]:
    """The changes of the incident's service in the RECENT_WINDOW before it opened, newest first."""
    opened = incident.created_at
    return for_service(incident.service_id, since=opened - RECENT_WINDOW, until=opened + timedelta(microseconds=1))


def purge(now: datetime | None = None) -> int:
    """Delete changes received more than CHANGE_EVENT_RETENTION_DAYS ago (0 keeps them); returns how many."""
    days = current_app.config["CHANGE_EVENT_RETENTION_DAYS"]
    if not days:
        return 0
    cutoff = (now or clock.now()) - timedelta(days=days)
    return db.session.execute(delete(ChangeEvent).where(ChangeEvent.received_at < cutoff)).rowcount or 0
