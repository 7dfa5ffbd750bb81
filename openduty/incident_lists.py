"""Incident lists: the one query behind the console and the API (filters, search, paging, counts).

Lists are newest first (created_at DESC, id DESC) and every filter has an index in that order
(models/incident.py), so a page reads one index and stops after per_page + 1 rows, whatever the
table's size. Paging is by keyset: a cursor names the last incident shown, and the next page is
what sorts after it, so new incidents arriving in between neither shift nor repeat rows. `page=`
(an offset, found on the index alone) still works for the API's older clients. Counts are capped
(COUNT_CAP) so that the console's poll never counts a year of incidents; the API counts exactly
only when asked.

Search looks for the text in summary, dedup key and source (case-insensitive, anywhere in the
text), or for an incident number. PostgreSQL runs ILIKE, served by trigram indexes (pg_trgm);
SQLite asks its FTS5 trigram index for texts of 3 or more characters (the shortest a trigram
index can serve; shorter ones use LIKE, which a page of a frequent text stops early), quoting
the text as one phrase so that FTS operators (`OR`, `NEAR`, `*`, quotes) in it are searched for,
not obeyed. FTS5 folds the case of all letters, SQLite's LIKE of ASCII letters only.
"""

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, column, func, literal, literal_column, or_, select, table, text, tuple_
from sqlalchemy.orm import joinedload

from openduty import validation
from openduty.extensions import db
from openduty.models import Incident
from openduty.models.incident import FTS_TABLE, OPEN_SQL, SEARCHED
from openduty.validation import FieldError

# The console's tabs and the API's `status` values.
STATUS_FILTERS = ("open", "triggered", "acknowledged", "resolved", "all")
PER_PAGE = 25
MAX_PER_PAGE = 100
MAX_SEARCH = 200
# Counts stop here: the console shows "1,000+" rather than count every match on every poll.
COUNT_CAP = 1000
# The shortest text FTS5's trigram tokenizer can look up.
FTS_MIN_LENGTH = 3
# A search on SQLite with more matches than this walks the list's index (see _search).
FTS_COMMON = 2000
MAX_CURSOR = 100

_FTS = table(FTS_TABLE, column("rowid"), column(FTS_TABLE))
# Newest first; the id breaks ties, so that every incident has one place (what a cursor names).
_ORDER = (Incident.created_at.desc(), Incident.id.desc())


class BadCursor(FieldError):
    """A `cursor` that no list gave out (answered 400: start again from the first page)."""


@dataclass(frozen=True)
class Cursor:
    """A place in a list: the last incident shown (its created_at and id, the sort key)."""

    created_at: datetime
    id: int

    @classmethod
    def after(cls, incident: Incident) -> "Cursor":
        return cls(incident.created_at, incident.id)

    def encode(self) -> str:
        raw = f"{self.created_at.astimezone(UTC).isoformat()}/{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> "Cursor":
        """The cursor `encode` wrote; raises BadCursor for anything else."""
        try:
            if len(value) > MAX_CURSOR:
                raise ValueError("too long")
            raw = base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True).decode()
            when, _, number = raw.partition("/")
            created_at = datetime.fromisoformat(when)
            incident_id = validation.object_id(number)
            if created_at.tzinfo is None:
                raise ValueError("no time zone")
        except (ValueError, binascii.Error, FieldError) as exc:
            raise BadCursor(
                "cursor: this is not a cursor a list gave out (copy the `next` link whole, "
                "or start again from the first page without `cursor`)."
            ) from exc
        return cls(created_at, incident_id)


@dataclass
class Filters:
    status: str = "open"
    service_id: int | None = None
    q: str = ""
    assigned_to_id: int | None = None
    page: int = 1
    per_page: int = PER_PAGE
    cursor: Cursor | None = None


@dataclass
class Page:
    incidents: list[Incident]
    # Where the next page starts, or None on the last page.
    next_cursor: Cursor | None


def parse_filters(args: Any, default_status: str = "open") -> Filters:
    """Read list filters from query arguments; raises FieldError naming the bad one (BadCursor for
    a bad `cursor`)."""
    status = (args.get("status") or default_status).strip().lower()
    if status not in STATUS_FILTERS:
        raise FieldError(f"status: use one of {', '.join(STATUS_FILTERS)}.")
    q = (args.get("q") or "").strip()[:MAX_SEARCH]
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
    if args.get("cursor"):
        if filters.page > 1:
            raise FieldError("page: give either `page` or `cursor`, not both (`next` links carry the cursor).")
        filters.cursor = Cursor.decode(args["cursor"])
    return filters


def _conditions(filters: Filters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.status == "open":
        conditions.append(text(f"incidents.{OPEN_SQL}"))
    elif filters.status != "all":
        conditions.append(Incident.status == filters.status)
    if filters.service_id is not None:
        conditions.append(Incident.service_id == filters.service_id)
    if filters.assigned_to_id is not None:
        conditions.append(Incident.assigned_to_id == filters.assigned_to_id)
    if filters.q:
        conditions.append(_search(filters.q))
    return conditions


def incident_query(filters: Filters) -> Select:
    """Incidents matching `filters` (not their place: see `page_of`), newest first."""
    return select(Incident).options(joinedload(Incident.service)).where(*_conditions(filters)).order_by(*_ORDER)


def _search(q: str) -> ColumnElement[bool]:
    """Incidents whose summary, dedup key or source holds `q` (any case), or whose number it names."""
    if db.session.get_bind().dialect.name == "sqlite" and len(q) >= FTS_MIN_LENGTH:
        phrase = '"' + q.replace('"', '""') + '"'  # one quoted phrase: operators in q are just text
        matching = select(_FTS.c.rowid).where(_FTS.c[FTS_TABLE].op("MATCH")(phrase))
        common = db.session.scalar(select(func.count()).select_from(matching.limit(FTS_COMMON + 1).subquery()))
        # Few matches: read them and sort. Many: walk the list's index and keep the matches
        # (`id + 0` keeps SQLite from reading the matches by id first), which stops after a page.
        conditions = [(Incident.id + literal_column("0") if common > FTS_COMMON else Incident.id).in_(matching)]
    else:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        # Written into the SQL, not bound: a plan PostgreSQL prepares for any pattern (psycopg
        # prepares a statement run 5 times) cannot know that this one is rare, and walks the table.
        inline = literal(pattern, literal_execute=True)
        conditions = [getattr(Incident, name).ilike(inline, escape="\\") for name in SEARCHED]
    number = validation.id_in_text(q.lstrip("#"))
    if number is not None:
        conditions.append(Incident.number == number)
    return or_(*conditions)


def page_of(filters: Filters) -> Page:
    """The page of matching incidents that `filters` names: after its cursor, at its page, or the first."""
    query = incident_query(filters)
    place = tuple_(Incident.created_at, Incident.id)
    if filters.cursor is not None:
        query = query.where(place < tuple_(filters.cursor.created_at, filters.cursor.id))
    elif filters.page > 1:
        # Find where the page starts on the index alone (only the sort key, no rows), then read
        # the page from there as a cursor would.
        keys = select(Incident.created_at, Incident.id).where(*_conditions(filters)).order_by(*_ORDER)
        start = db.session.execute(keys.offset((filters.page - 1) * filters.per_page).limit(1)).first()
        if start is None:
            return Page([], None)
        query = query.where(place <= tuple_(*start))
    rows = list(db.session.scalars(query.limit(filters.per_page + 1)))
    items = rows[: filters.per_page]
    return Page(items, Cursor.after(items[-1]) if len(rows) > len(items) else None)


def count(filters: Filters, *, cap: int | None) -> int:
    """How many incidents match `filters` (wherever the page is); with a `cap` (COUNT_CAP for
    people), counting stops at cap + 1, which means "more than cap"; None counts every match."""
    query = select(literal_column("1")).select_from(Incident).where(*_conditions(filters))
    if cap is not None:
        # In the lists' order, so that the count reads the same index as a page (the first cap + 1).
        query = query.order_by(*_ORDER).limit(cap + 1)
    return db.session.scalar(select(func.count()).select_from(query.subquery())) or 0


def open_count() -> int:
    """Open incidents (the navigation's badge), counted up to COUNT_CAP + 1."""
    return count(Filters(status="open"), cap=COUNT_CAP)


def shown_count(n: int) -> str:
    """A count capped at COUNT_CAP as people read it: "37", "1,000+"."""
    return f"{COUNT_CAP:,}+" if n > COUNT_CAP else f"{n:,}"
