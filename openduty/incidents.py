"""Incident queries and actions shared by the console and the API.

The state changes themselves are the model's domain actions (`Incident.acknowledge`, `.resolve`,
`.add_note`); this module finds incidents, locks them for a change and filters lists.
"""

from dataclasses import dataclass
from typing import Any

from flask import abort
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import joinedload

from openduty import validation
from openduty.extensions import db
from openduty.models import Incident, User
from openduty.transactions import begin_write
from openduty.validation import FieldError

# The tabs of the console, and the statuses each shows.
STATUS_FILTERS: dict[str, tuple[str, ...] | None] = {
    "open": ("triggered", "acknowledged"),
    "triggered": ("triggered",),
    "acknowledged": ("acknowledged",),
    "resolved": ("resolved",),
    "all": None,
}
PER_PAGE = 25
MAX_PER_PAGE = 100
ACTIONS = ("acknowledge", "resolve")


@dataclass
class Filters:
    status: str = "open"
    service_id: int | None = None
    q: str = ""
    assigned_to_id: int | None = None
    page: int = 1
    per_page: int = PER_PAGE


def parse_filters(args: Any, default_status: str = "open") -> Filters:
    """Read list filters from query arguments; raises FieldError naming the bad one."""
    status = (args.get("status") or default_status).strip().lower()
    if status not in STATUS_FILTERS:
        raise FieldError(f"status: use one of {', '.join(STATUS_FILTERS)}.")
    q = (args.get("q") or "").strip()[:200]
    reason = validation.unstorable(q)
    if reason:
        raise FieldError(f"q: the search text {reason}; remove it.")
    filters = Filters(status=status, q=q)
    for name in ("service_id", "page", "per_page"):
        raw = args.get(name)
        if raw in (None, ""):
            continue
        try:
            value = validation.integer(raw, minimum=1, maximum=MAX_PER_PAGE if name == "per_page" else None, label=name)
        except FieldError as exc:
            raise FieldError(f"{name}: {exc}") from exc
        setattr(filters, name, value)
    return filters


def incident_query(filters: Filters) -> Select:
    """Incidents matching `filters`, newest first."""
    query = select(Incident).options(joinedload(Incident.service))
    statuses = STATUS_FILTERS[filters.status]
    if statuses is not None:
        query = query.where(Incident.status.in_(statuses))
    if filters.service_id is not None:
        query = query.where(Incident.service_id == filters.service_id)
    if filters.assigned_to_id is not None:
        query = query.where(Incident.assigned_to_id == filters.assigned_to_id)
    if filters.q:
        pattern = "%" + filters.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions = [
            Incident.summary.ilike(pattern, escape="\\"),
            Incident.dedup_key.ilike(pattern, escape="\\"),
            Incident.source.ilike(pattern, escape="\\"),
        ]
        number = validation.id_in_text(filters.q.lstrip("#"))
        if number is not None:
            conditions.append(Incident.number == number)
        query = query.where(or_(*conditions))
    return query.order_by(Incident.created_at.desc(), Incident.id.desc())


def page_of(filters: Filters) -> tuple[list[Incident], int]:
    """One page of matching incidents and the total count."""
    query = incident_query(filters)
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    items = db.session.scalars(query.limit(filters.per_page).offset((filters.page - 1) * filters.per_page)).all()
    return list(items), total or 0


def open_count() -> int:
    return db.session.scalar(select(func.count()).where(Incident.status != "resolved")) or 0


def get_incident_or_404(incident_id: int) -> Incident:
    incident = db.session.get(Incident, incident_id)
    if incident is None:
        abort(404, f"No incident with id {incident_id}.")
    return incident


def lock(incident_ids: list[int]) -> list[Incident]:
    """Load incidents for a change, locked until commit (in id order, so locks never deadlock)."""
    begin_write()
    return list(
        db.session.scalars(
            select(Incident).where(Incident.id.in_(incident_ids)).order_by(Incident.id).with_for_update()
        ).all()
    )


def act(incident: Incident, action: str, user: User, channel: str) -> bool:
    """Acknowledge or resolve; False when the incident was already past that state."""
    if action == "acknowledge":
        return incident.acknowledge(by=user, channel=channel)
    if action == "resolve":
        return incident.resolve(by=user, channel=channel)
    raise ValueError(f"unknown action {action!r}")


def bulk_act(incident_ids: list[int], action: str, user: User, channel: str) -> tuple[int, int]:
    """Apply `action` to many incidents in the current transaction; (changed, unchanged)."""
    changed = 0
    incidents = lock(incident_ids)
    for incident in incidents:
        changed += act(incident, action, user, channel)
    return changed, len(incidents) - changed
