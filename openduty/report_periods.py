"""What a report covers: its scope (everything, a service, a team) and its periods (weeks or months
in the reader's time zone), read from query arguments, with messages that say what to fix.

Weeks start on Monday at 00:00 and months on the 1st at 00:00, in the report's zone; a period
across a DST change is 1 hour shorter or longer. The SQL side (openduty.reports) only compares
stored UTC times with the UTC boundaries computed here, so SQLite and PostgreSQL agree.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from openduty import clock, validation
from openduty.errors import ValidationError
from openduty.extensions import db
from openduty.models import Service, Team
from openduty.shifts import localize

PERIODS = ("week", "month")
# Without `since`, a report shows this many periods up to and including the current one.
DEFAULT_COUNT = {"week": 8, "month": 6}
# At most this many periods in one report: two years (the queries stay fast, the charts readable).
MAX_COUNT = {"week": 106, "month": 24}


@dataclass(frozen=True)
class Period:
    label: str  # 2026-03-02 (the Monday of a week) or 2026-03
    start: datetime  # aware UTC
    end: datetime


@dataclass(frozen=True)
class ReportQuery:
    """One report's question: which incidents (scope), which periods, in which zone."""

    period: str
    zone: str
    periods: tuple[Period, ...]
    service: Service | None = None
    team: Team | None = None

    @property
    def start(self) -> datetime:
        return self.periods[0].start

    @property
    def end(self) -> datetime:
        return self.periods[-1].end

    @property
    def bounds(self) -> list[datetime]:
        """The n+1 UTC boundaries of the n periods."""
        return [p.start for p in self.periods] + [self.end]

    @property
    def since(self) -> date:
        return self.start.astimezone(ZoneInfo(self.zone)).date()

    @property
    def until(self) -> date:
        """The last day covered (inclusive)."""
        return (self.end.astimezone(ZoneInfo(self.zone)) - timedelta(hours=12)).date()

    @property
    def scope_label(self) -> str:
        if self.service is not None:
            return f"service {self.service.name}"
        if self.team is not None:
            return f"team {self.team.name}"
        return "all services"

    def args(self) -> dict[str, str]:
        """The query arguments that ask this report again (links, CSV downloads)."""
        args = {"period": self.period, "since": self.since.isoformat(), "until": self.until.isoformat()}
        if self.service is not None:
            args["service_id"] = str(self.service.id)
        if self.team is not None:
            args["team_id"] = str(self.team.id)
        return args


def period_start(day: date, period: str) -> date:
    """The first day of the week (Monday) or month holding `day`."""
    return day - timedelta(days=day.weekday()) if period == "week" else day.replace(day=1)


def _next_start(day: date, period: str) -> date:
    if period == "week":
        return day + timedelta(days=7)
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _previous_start(day: date, period: str) -> date:
    if period == "week":
        return day - timedelta(days=7)
    return date(day.year - (day.month == 1), (day.month - 2) % 12 + 1, 1)


def _label(day: date, period: str) -> str:
    return day.isoformat() if period == "week" else day.strftime("%Y-%m")


def periods(first: date, last: date, period: str, zone: str) -> tuple[Period, ...]:
    """The periods from the one holding `first` to the one holding `last`, with UTC boundaries."""
    tz = ZoneInfo(zone)
    out, day = [], period_start(first, period)
    while day <= last:
        following = _next_start(day, period)
        start = localize(datetime(day.year, day.month, day.day), tz)
        end = localize(datetime(following.year, following.month, following.day), tz)
        out.append(Period(_label(day, period), start, end))
        day = following
    return tuple(out)


def _day(value: str, name: str) -> date:
    try:
        day = date.fromisoformat(value.strip())
    except ValueError as exc:
        raise validation.FieldError(f"Use a date like 2026-03-01 for {name}.") from exc
    validation.in_year_range(day, name)
    return day


def _scope(args: Mapping[str, str], errors: dict[str, str]) -> tuple[Service | None, Team | None]:
    found: dict[str, object] = {}
    for name, model, label in (("service_id", Service, "service"), ("team_id", Team, "team")):
        value = (args.get(name) or "").strip()
        if not value:
            continue
        try:
            object_id = validation.object_id(value, label=name)
        except validation.FieldError as exc:
            errors[name] = str(exc)
            continue
        found[name] = db.session.scalar(select(model).where(model.id == object_id))
        if found[name] is None:
            errors[name] = f"No {label} with id {object_id}."
    if found.get("service_id") is not None and found.get("team_id") is not None:
        errors["team_id"] = "Give service_id or team_id, not both."
    return found.get("service_id"), found.get("team_id")  # type: ignore[return-value]


def parse(args: Mapping[str, str], zone: str) -> ReportQuery:
    """The report asked for by query arguments `period` (week | month), `since` and `until` (dates
    in `zone`, inclusive), `service_id` or `team_id`; raises ValidationError naming each bad field."""
    errors: dict[str, str] = {}
    period = (args.get("period") or "week").strip()
    if period not in PERIODS:
        errors["period"] = "Use week or month for period."
        period = "week"
    days: dict[str, date] = {}
    for name in ("since", "until"):
        if (args.get(name) or "").strip():
            try:
                days[name] = _day(args[name], name)
            except validation.FieldError as exc:
                errors[name] = str(exc)
    service, team = _scope(args, errors)
    today = clock.now().astimezone(ZoneInfo(zone)).date()
    last = days.get("until", today)
    first = days.get("since")
    if first is None:
        first = period_start(last, period)
        for _ in range(DEFAULT_COUNT[period] - 1):
            first = _previous_start(first, period)
    if not errors and first > last:
        errors["since"] = "since must be on or before until."
    if not errors:
        count = len(periods(first, min(last, _limit(first, period)), period, zone))
        if count > MAX_COUNT[period]:
            most = f"{MAX_COUNT[period]} {period}s"
            errors["until"] = f"A report covers at most {most}; choose a later since or an earlier until."
    if errors:
        raise ValidationError(errors, "The report's " + ", ".join(sorted(errors)) + ": " + " ".join(errors.values()))
    return ReportQuery(period, zone, periods(first, last, period, zone), service, team)


def _limit(first: date, period: str) -> date:
    """A day just past the most periods a report may cover (so counting them stays cheap)."""
    day = period_start(first, period)
    for _ in range(MAX_COUNT[period] + 1):
        day = _next_start(day, period)
    return day
