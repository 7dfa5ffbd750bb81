"""Incident lists: the one query behind the console and the API (filters, search, paging, counts).

Lists are newest first (created_at DESC, id DESC) and every filter has an index in that order
(models/incident.py), so a page reads one index and stops after per_page + 1 rows, whatever the
table's size. Paging is by keyset: a cursor names the last incident shown, and the next page is
what sorts after it, so new incidents arriving in between neither shift nor repeat rows. `page=`
(an offset, found on the index alone) still works for the API's older clients. Counts are capped
(COUNT_CAP) so that the console's poll never counts a year of incidents; the API counts exactly
only when asked.

Search looks for the text in summary, dedup key and source (case-insensitive, anywhere in the
text), or for an incident number. Texts of 3 or more characters are looked up in a trigram
index: on PostgreSQL pg_trgm's, which serve ILIKE; on SQLite an FTS5 table, asked for the text
quoted as one phrase so that FTS operators (`OR`, `NEAR`, `*`, quotes) in it are searched for,
not obeyed. Shorter texts use (I)LIKE, which a page of a frequent text stops early. FTS5 folds
the case of all letters, SQLite's LIKE of ASCII letters only.
"""

import base64
import binascii
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    Select,
    any_,
    cast,
    column,
    func,
    literal,
    literal_column,
    or_,
    select,
    table,
    text,
    tuple_,
)
from sqlalchemy.orm import joinedload

from openduty import validation
from openduty.extensions import db
from openduty.models import Incident, Service, User
from openduty.models.incident import FTS_TABLE, OPEN_SQL, SEARCHED, URGENCIES
from openduty.validation import FieldError

# The console's tabs and the API's `status` values.
STATUS_FILTERS = ("open", "triggered", "acknowledged", "resolved", "all")
PER_PAGE = 25
MAX_PER_PAGE = 100
MAX_SEARCH = 200
# Counts stop here: the console shows "1,000+" rather than count every match on every poll.
COUNT_CAP = 1000
# The shortest text a trigram index (FTS5's trigram tokenizer, pg_trgm) can look up.
TEXT_INDEX_MIN = 3
# A search with at most this many matches reads them by id; more walk the list's index (_search).
FEW_MATCHES = 2000
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
    urgency: str | None = None  # high | low; None: both
    # "all", "mine" (the viewer's teams; the console's default for people in a team) or a team's id.
    team: str = "all"
    team_ids: set[int] | None = None  # what `team` means for the viewer (for_viewer): None is everything
    page: int = 1
    per_page: int = PER_PAGE
    cursor: Cursor | None = None


@dataclass
class Page:
    incidents: list[Incident]
    # Where the next page starts, or None on the last page.
    next_cursor: Cursor | None


def parse_filters(args: Any, default_status: str = "open", default_team: str = "all") -> Filters:
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
    urgency = (args.get("urgency") or "").strip().lower()
    if urgency and urgency not in URGENCIES:
        raise FieldError("urgency: use high or low (or leave it out for both).")
    filters.urgency = urgency or None
    team = (args.get("team_id") or "").strip() or default_team
    if team not in ("all", "mine"):
        try:
            team = str(validation.object_id(team, label="team_id"))
        except FieldError as exc:
            raise FieldError(f"team_id: {exc} (or all, or mine)") from exc
    filters.team = team
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


def for_viewer(filters: Filters, viewer: User) -> Filters:
    """Resolve `team` for `viewer`: "mine" is the viewer's teams, a number that team, "all" everything."""
    if filters.team == "mine":
        filters.team_ids = viewer.team_ids()
    elif filters.team != "all":
        filters.team_ids = {int(filters.team)}
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
    if filters.urgency is not None:
        conditions.append(Incident.urgency == filters.urgency)
    if filters.team_ids is not None:
        owned = select(Service.id).where(Service.team_id.in_(filters.team_ids or {-1}))
        conditions.append(Incident.service_id.in_(owned))
    if filters.q:
        conditions.append(_search(filters.q))
    return conditions


def incident_query(filters: Filters) -> Select:
    """Incidents matching `filters` (not their place: see `page_of`), newest first."""
    return select(Incident).options(joinedload(Incident.service)).where(*_conditions(filters)).order_by(*_ORDER)


def _search(q: str) -> ColumnElement[bool]:
    """Incidents whose summary, dedup key or source holds `q` (any case), or whose number it names.

    A text the index can serve is looked up there first, at most FEW_MATCHES + 1 ids: few
    matches are then read by id and sorted; many are kept while the list's index is walked in
    order, which stops after a page. (Left to itself, a planner that guesses "1% match" walks
    the whole table for a text that matches nothing.)"""
    if len(q) < TEXT_INDEX_MIN:
        condition = _contains(q)
    else:
        ids = list(db.session.scalars(_text_matches(q).limit(FEW_MATCHES + 1)))
        condition = _few(q, ids) if len(ids) <= FEW_MATCHES else _text_condition(q)
    number = validation.id_in_text(q.lstrip("#"))
    return condition if number is None else or_(condition, Incident.number == number)


def _sqlite() -> bool:
    return db.session.get_bind().dialect.name == "sqlite"


def _fts_phrase(q: str) -> Select:
    """The ids SQLite's FTS table finds for `q`, quoted as one phrase: operators in it are text."""
    return select(_FTS.c.rowid).where(_FTS.c[FTS_TABLE].op("MATCH")('"' + q.replace('"', '""') + '"'))


def _text_matches(q: str) -> Select:
    """Ids of incidents holding `q` (3+ characters), read from the text index."""
    return _fts_phrase(q) if _sqlite() else select(Incident.id).where(_contains(q))


def _few(q: str, ids: list[int]) -> ColumnElement[bool]:
    """Few matches, read by id: from the FTS table on SQLite, as one array parameter on PostgreSQL."""
    return Incident.id.in_(_fts_phrase(q)) if _sqlite() else Incident.id == any_(cast(ids, ARRAY(Integer)))


def _text_condition(q: str) -> ColumnElement[bool]:
    """`q` (3+ characters) as a condition checked row by row while the list's index is walked."""
    # `id + 0`: SQLite would otherwise read every match by id and sort them.
    return (Incident.id + literal_column("0")).in_(_fts_phrase(q)) if _sqlite() else _contains(q)


def _contains(q: str) -> ColumnElement[bool]:
    """ILIKE '%q%' on the searched columns, every character of q taken as itself."""
    pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    # Written into the SQL, not bound: a plan PostgreSQL prepares for any pattern (psycopg
    # prepares a statement run 5 times) cannot know how often this one matches.
    inline = literal(pattern, literal_execute=True)
    return or_(*(getattr(Incident, name).ilike(inline, escape="\\") for name in SEARCHED))


def _pg_text_search(filters: Filters) -> bool:
    return len(filters.q) >= TEXT_INDEX_MIN and not _sqlite()


@contextmanager
def _trigram_plans(filters: Filters) -> Iterator[None]:
    """While a PostgreSQL search runs, its plans read indexes, never the whole table: the planner
    guesses how often a text matches (no statistics fit "anywhere in the text"), and a guess too
    high for a rare text scanned every row (700 ms at 100k incidents) where the trigram index
    answers in a millisecond. SET LOCAL ends with the transaction anyway."""
    searching = _pg_text_search(filters)
    if searching:
        db.session.execute(text("SET LOCAL enable_seqscan = off"))
    yield
    if searching:
        db.session.execute(text("SET LOCAL enable_seqscan = on"))


def page_of(filters: Filters) -> Page:
    """The page of matching incidents that `filters` names: after its cursor, at its page, or the first."""
    with _trigram_plans(filters):
        query = incident_query(filters)
        place = tuple_(Incident.created_at, Incident.id)
        if filters.cursor is not None:
            query = query.where(place < tuple_(filters.cursor.created_at, filters.cursor.id))
        elif filters.page > 1:
            # Find where the page starts on the index alone (only the sort key, no rows), then
            # read the page from there as a cursor would.
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
    with _trigram_plans(filters):
        query = select(literal_column("1")).select_from(Incident).where(*_conditions(filters))
        if cap is not None:
            query = query.limit(cap + 1)
            if not _pg_text_search(filters):
                # In the lists' order, so that the count reads the index a page reads (SQLite
                # takes the partial index of open incidents only so); a PostgreSQL search stops
                # at cap + 1 rows of its trigram index's matches instead.
                query = query.order_by(*_ORDER)
        return db.session.scalar(select(func.count()).select_from(query.subquery())) or 0


def open_count() -> int:
    """Open incidents (the navigation's badge), counted up to COUNT_CAP + 1."""
    return count(Filters(status="open"), cap=COUNT_CAP)


def shown_count(n: int) -> str:
    """A count capped at COUNT_CAP as people read it: "37", "1,000+"."""
    return f"{COUNT_CAP:,}+" if n > COUNT_CAP else f"{n:,}"
