"""Reports: per period (weeks or months, openduty.report_periods), for everything, a service or a
team: incidents, escalations beyond level 1, time to acknowledge and to resolve (median and p90),
pages per person and those sent out of hours, on-call hours per person.

Everything but on-call hours is aggregated by SQL, in one code path for SQLite and PostgreSQL:
a row's period is a CASE over the periods' UTC boundaries; durations are differences of whole
epoch seconds; percentiles come from window functions (row_number over each period's sorted
durations), which return at most four rows per period, interpolated here as PostgreSQL's
`percentile_cont` would. "Out of hours" is 22:00 to 07:00 on the paged person's own clock: their
zone's UTC offsets over the report's range (a few DST segments, computed here) become a CASE in
the query. On-call hours come from the final schedules (openduty.oncall), not from SQL.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import BigInteger, Integer, and_, case, cast, func, literal, or_, select, union
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from openduty import oncall
from openduty.extensions import db
from openduty.models import (
    EscalationLevel,
    EscalationTarget,
    Incident,
    Notification,
    Schedule,
    Service,
    User,
)
from openduty.models.notification import ESCALATED_PAGE_SQL
from openduty.report_periods import ReportQuery

# Out of hours on the paged person's clock: from 22:00 to 07:00.
NIGHT_STARTS = 22 * 3600
NIGHT_ENDS = 7 * 3600
# A page counted in "pages per person": one that was sent (failed and cancelled ones woke nobody).
# The predicate of the index the query reads (models.notification.SENT_PAGE_SQL), qualified because
# the query may join incidents, which have a status too.
SENT_PAGE = "notifications.purpose = 'page' AND notifications.status = 'sent'"
QUANTILES = (0.5, 0.9)


class epoch_seconds(FunctionElement):
    """Whole seconds since 1970 of a stored (naive UTC) timestamp, floored alike on both databases."""

    type = BigInteger()
    inherit_cache = True


@compiles(epoch_seconds, "sqlite")
def _epoch_sqlite(element, compiler, **kw):
    return compiler.process(cast(func.strftime("%s", *element.clauses), Integer), **kw)


@compiles(epoch_seconds, "postgresql")
def _epoch_postgresql(element, compiler, **kw):
    return f"CAST(FLOOR(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})) AS BIGINT)"


class seconds_between(FunctionElement):
    """`end - start` in seconds, rounded to whole seconds alike on both databases."""

    type = BigInteger()
    inherit_cache = True


@compiles(seconds_between, "sqlite")
def _between_sqlite(element, compiler, **kw):
    end, start = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(ROUND((julianday({end}) - julianday({start})) * 86400) AS INTEGER)"


@compiles(seconds_between, "postgresql")
def _between_postgresql(element, compiler, **kw):
    end, start = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(ROUND(EXTRACT(EPOCH FROM ({end} - {start}))) AS BIGINT)"


def _period_of(column, query: ReportQuery):
    """The index of the period a timestamp column falls in (rows are already inside the range)."""
    inner = query.bounds[1:-1]
    if not inner:
        return literal(0)
    return case(*[(column < bound, index) for index, bound in enumerate(inner)], else_=len(inner))


def _in_scope(query: ReportQuery):
    """The incidents the report is about (a condition on Incident.service_id), or None for all."""
    if query.service is not None:
        return Incident.service_id == query.service.id
    if query.team is not None:
        return Incident.service_id.in_(select(Service.id).where(Service.team_id == query.team.id))
    return None


# --- Incidents, escalations, MTTA and MTTR ------------------------------------------------------


@dataclass
class Duration:
    """Seconds from opening to the first acknowledgement or to resolution, over one period."""

    count: int = 0
    median: float | None = None
    p90: float | None = None


@dataclass
class IncidentFigures:
    label: str
    start: datetime
    end: datetime
    incidents: int = 0
    escalated: int = 0
    mtta: Duration = field(default_factory=Duration)
    mttr: Duration = field(default_factory=Duration)


def incident_report(query: ReportQuery) -> list[IncidentFigures]:
    """Per period (by when incidents opened): how many, how many escalated beyond level 1, and
    the median and p90 time to acknowledge (acknowledged ones) and to resolve (resolved ones)."""
    rows = [IncidentFigures(p.label, p.start, p.end) for p in query.periods]
    scope = _in_scope(query)
    opened = [Incident.created_at >= query.start, Incident.created_at < query.end]
    if scope is not None:
        opened.append(scope)
    period = _period_of(Incident.created_at, query)
    escalated = select(Notification.incident_id).where(db.text(ESCALATED_PAGE_SQL))
    counts = (
        select(
            period,
            func.count(),
            func.sum(case((Incident.id.in_(escalated), 1), else_=0)),
            func.count(Incident.acknowledged_at),
            func.count(Incident.resolved_at),
        )
        .where(*opened)
        .group_by(period)
    )
    sizes: dict[str, dict[int, int]] = {"mtta": {}, "mttr": {}}
    for index, count, escalations, acknowledged, resolved in db.session.execute(counts):
        rows[index].incidents, rows[index].escalated = count, escalations or 0
        sizes["mtta"][index], sizes["mttr"][index] = acknowledged, resolved
    for name, column in (("mtta", Incident.acknowledged_at), ("mttr", Incident.resolved_at)):
        seconds = seconds_between(column, Incident.created_at)
        durations = select(period.label("period"), seconds.label("seconds")).where(*opened, column.isnot(None))
        for index, figure in percentiles(durations.subquery(), sizes[name]).items():
            setattr(rows[index], name, figure)
    return rows


def percentiles(durations, sizes: dict[int, int]) -> dict[int, Duration]:
    """Median and p90 of `seconds` per `period` of a subquery holding `sizes[period]` rows,
    interpolated linearly between the two nearest ranks (PostgreSQL's percentile_cont): the
    database numbers each period's rows in order and returns only those ranks."""
    ranks = {index: _ranks(n) for index, n in sizes.items() if n}
    if not ranks:
        return {}
    ordered = select(
        durations.c.period,
        durations.c.seconds,
        func.row_number().over(partition_by=durations.c.period, order_by=durations.c.seconds).label("rank"),
    ).subquery()
    wanted = or_(*(and_(ordered.c.period == index, ordered.c.rank.in_(r)) for index, r in ranks.items()))
    found: dict[int, dict[int, int]] = defaultdict(dict)
    for index, seconds, rank in db.session.execute(select(ordered).where(wanted)):
        found[index][rank] = seconds
    return {index: Duration(sizes[index], *(_interpolate(found[index], sizes[index], q) for q in QUANTILES))
            for index in ranks}  # fmt: skip


def _ranks(n: int) -> list[int]:
    """The ranks (1-based) the quantiles of n values lie between."""
    out = set()
    for q in QUANTILES:
        below = (10 + int(q * 10) * (n - 1)) // 10
        out |= {below, min(below + 1, n)}
    return sorted(out)


def _interpolate(ranked: dict[int, int], n: int, q: float) -> float:
    tenths = 10 + int(q * 10) * (n - 1)  # 10 x the rank 1 + q(n - 1), in integers as in the query
    below, fraction = tenths // 10, (tenths % 10) / 10
    low = ranked[below]
    high = ranked.get(below + 1, low)
    return round(low + (high - low) * fraction, 3)


# --- Pages per person, out of hours ---------------------------------------------------------------


@dataclass
class PersonFigures:
    user_id: int
    name: str
    time_zone: str
    values: list[float]  # per period
    out_of_hours: list[int] = field(default_factory=list)  # pages only

    @property
    def total(self) -> float:
        return sum(self.values)

    @property
    def total_out_of_hours(self) -> int:
        return sum(self.out_of_hours)


def offset_segments(zone: str, start: datetime, end: datetime) -> list[tuple[datetime, int]]:
    """The UTC offsets (seconds) of `zone` over [start, end): [(from, offset), ...], a new entry at
    each change (DST), found day by day and then to the second."""
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")

    def offset(at: datetime) -> int:
        return int(at.astimezone(tz).utcoffset().total_seconds())

    segments = [(start, offset(start))]
    at = start
    while at < end:  # by the day: zones change their offset at most a few times a year
        step = min(at + timedelta(days=1), end)
        if offset(step) != segments[-1][1]:
            low, high = at, step  # the change lies in (low, high]
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                low, high = (low, middle) if offset(middle) != segments[-1][1] else (middle, high)
            segments.append((high.replace(microsecond=0), offset(high)))
        at = step
    return segments


def _local_offset(zones: dict[int, str], query: ReportQuery):
    """A CASE giving the paged person's UTC offset (seconds) at Notification.sent_at: by user id
    (people of one zone share a branch), so the query needs no join and no string comparison."""
    people: dict[str, list[int]] = defaultdict(list)
    for user_id, zone in zones.items():
        people[zone].append(user_id)
    whens = []
    for zone, ids in sorted(people.items()):
        segments = offset_segments(zone, query.start, query.end)
        if len(segments) == 1 and segments[0][1] == 0:
            continue  # the default
        ours = Notification.user_id.in_(ids)
        for (_, offset), (following, _) in zip(segments, segments[1:], strict=False):
            whens.append((and_(ours, Notification.sent_at < following), offset))
        whens.append((ours, segments[-1][1]))
    return case(*whens, else_=0) if whens else literal(0)


def page_report(query: ReportQuery) -> list[PersonFigures]:
    """Per person and period (by when pages were sent): pages sent, and how many of them between
    22:00 and 07:00 in the person's own time zone."""
    zones = dict(db.session.execute(select(User.id, User.time_zone)).all())
    local = (epoch_seconds(Notification.sent_at) + _local_offset(zones, query)) % 86400
    night = case((local.between(NIGHT_ENDS, NIGHT_STARTS - 1), 0), else_=1)
    period = _period_of(Notification.sent_at, query)
    pages = (
        select(Notification.user_id, period, func.count(), func.sum(night))
        .where(db.text(SENT_PAGE), Notification.sent_at >= query.start, Notification.sent_at < query.end)
        # The period first: grouped by user first, SQLite walks the user index and visits every row.
        .group_by(period, Notification.user_id)
    )
    scope = _in_scope(query)
    if scope is not None:
        pages = pages.join(Incident, Incident.id == Notification.incident_id).where(scope)
    counts = db.session.execute(pages).all()
    users = oncall.users_by_id(user_id for user_id, *_ in counts)
    people: dict[int, PersonFigures] = {}
    size = len(query.periods)
    for user_id, index, count, nights in counts:
        user = users[user_id]
        person = people.setdefault(user_id, PersonFigures(user_id, user.name, user.time_zone, [0] * size, [0] * size))
        person.values[index], person.out_of_hours[index] = count, nights or 0
    return sorted(people.values(), key=lambda p: (-p.total, p.name))


# --- On-call hours ----------------------------------------------------------------------------------


def schedules_in_scope(query: ReportQuery) -> list[Schedule]:
    """Every schedule; a service's: those its escalation policy pages; a team's: those it owns and
    those its services' policies page."""
    if query.service is None and query.team is None:
        return list(db.session.scalars(select(Schedule).order_by(Schedule.name)))
    targeted = (
        select(EscalationTarget.schedule_id)
        .join(EscalationLevel, EscalationLevel.id == EscalationTarget.level_id)
        .join(Service, Service.escalation_policy_id == EscalationLevel.policy_id)
        .where(EscalationTarget.schedule_id.isnot(None))
    )
    if query.service is not None:
        ids = targeted.where(Service.id == query.service.id)
    else:
        ids = union(
            targeted.where(Service.team_id == query.team.id),
            select(Schedule.id).where(Schedule.team_id == query.team.id),
        )
    return list(db.session.scalars(select(Schedule).where(Schedule.id.in_(ids)).order_by(Schedule.name)))


def oncall_report(query: ReportQuery) -> list[PersonFigures]:
    """Per person and period: hours on call in the final schedules of the scope (openduty.oncall),
    counted once when someone is on call in two schedules at the same time."""
    spans: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    for schedule in schedules_in_scope(query):
        for shift in oncall.shifts(schedule, query.start, query.end):
            start, end = max(shift.start, query.start), min(shift.end, query.end)
            for user_id in shift.user_ids:
                spans[user_id].append((start, end))
    users = oncall.users_by_id(spans)
    people = []
    for user_id, found in spans.items():
        hours = [0.0] * len(query.periods)
        for start, end in _merged(found):
            for index, p in enumerate(query.periods):
                overlap = min(end, p.end) - max(start, p.start)
                if overlap > timedelta(0):
                    hours[index] += overlap.total_seconds() / 3600
        user = users.get(user_id)
        if user is not None:
            people.append(PersonFigures(user_id, user.name, user.time_zone, [round(h, 2) for h in hours]))
    return sorted(people, key=lambda p: (-p.total, p.name))


def _merged(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def duration_text(seconds: float | None) -> str:
    """A duration for people: "45 s", "12 min 5 s", "3 h 20 min", "2 d 4 h"; an empty figure is "–"."""
    if seconds is None:
        return "–"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"
