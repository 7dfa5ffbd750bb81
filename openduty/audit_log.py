"""Reading the audit log (openduty.audit writes it): filters from the page and the API, a manager's
view (their teams' entries), pages newest first by a keyset cursor, and the retention purge."""

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import delete, select

from openduty import clock, validation
from openduty.audit import OBJECT_TYPES
from openduty.extensions import db
from openduty.models import AuditEntry, User

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class Filters:
    """What the page and the API filter by; every field optional. `before` is the keyset cursor:
    entries with a smaller id (the log is read newest first)."""

    actor: str = ""
    object_type: str = ""
    object_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: int | None = None
    # A manager's view: only entries about what these teams own (None: every entry, for admins).
    team_ids: set[int] | None = None


def for_viewer(filters: Filters, viewer: User) -> Filters:
    """Admins read every entry; a team's managers read the entries about what their teams own."""
    return filters if viewer.is_admin else replace(filters, team_ids=viewer.managed_team_ids())


def _day_or_time(value: str, label: str, end_of_day: bool) -> datetime:
    """A date (a whole day in UTC; `end_of_day` takes the next midnight) or an ISO 8601 time with offset."""
    text = value.strip()
    if len(text) == 10:
        try:
            day = date.fromisoformat(text)
        except ValueError as exc:
            message = f"{label}: use a date like 2026-03-01 or a time like 2026-03-01T09:00Z."
            raise validation.FieldError(message) from exc
        validation.in_year_range(day, label)
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return start + timedelta(days=1) if end_of_day else start
    try:
        return validation.aware_datetime(text, label=label)
    except validation.FieldError as exc:
        raise validation.FieldError(f"{label}: {exc}") from exc


def parse_filters(args: Mapping[str, str]) -> Filters:
    """Filters from query arguments (the page and the API); raises FieldError "<name>: <what to fix>"."""
    values: dict[str, Any] = {}
    actor = (args.get("actor") or "").strip()
    if len(actor) > 300 or validation.unstorable(actor):
        raise validation.FieldError("actor: give at most 300 printable characters of an email or a name.")
    values["actor"] = actor
    object_type = (args.get("object_type") or "").strip()
    if object_type and object_type not in OBJECT_TYPES:
        raise validation.FieldError(f"object_type: use one of {', '.join(OBJECT_TYPES)}.")
    values["object_type"] = object_type
    for name in ("object_id", "before"):
        if args.get(name):
            try:
                values[name] = validation.object_id(args[name], label=name)
            except validation.FieldError as exc:
                raise validation.FieldError(f"{name}: {exc}") from exc
    if args.get("since"):
        values["since"] = _day_or_time(args["since"], "since", end_of_day=False)
    if args.get("until"):
        values["until"] = _day_or_time(args["until"], "until", end_of_day=True)
    return Filters(**values)


def entries(filters: Filters, limit: int = PAGE_SIZE) -> tuple[list[AuditEntry], int | None]:
    """One page of the log, newest first, and the cursor of the next page (None at the end)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit + 1)
    if filters.actor:
        pattern = "%" + filters.actor.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(db.func.lower(AuditEntry.actor).like(pattern, escape="\\"))
    if filters.object_type:
        query = query.where(AuditEntry.object_type == filters.object_type)
    if filters.object_id is not None:
        query = query.where(AuditEntry.object_id == filters.object_id)
    if filters.since is not None:
        query = query.where(AuditEntry.at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEntry.at < filters.until)
    if filters.before is not None:
        query = query.where(AuditEntry.id < filters.before)
    if filters.team_ids is not None:
        query = query.where(AuditEntry.team_id.in_(filters.team_ids or {-1}))
    rows = list(db.session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


def purge(now: datetime | None = None) -> int:
    """Delete entries older than AUDIT_RETENTION_DAYS (0 keeps them forever); returns how many."""
    days = current_app.config["AUDIT_RETENTION_DAYS"]
    if not days:
        return 0
    cutoff = (now or clock.now()) - timedelta(days=days)
    result = db.session.execute(delete(AuditEntry).where(AuditEntry.at < cutoff))
    return result.rowcount or 0
