"""A schedule compiled for queries: rotations as handoff rules, restriction windows, imported
events and overrides, merged into the final `Shift`s (cached per `Schedule.revision`).

openduty.oncall asks the questions (who is on call at t, the shifts of a range); this module holds
the arithmetic. Rotations are recurrence rules computed by arithmetic (tests cross-check them
against dateutil's expansion); see openduty.oncall for the rules in words.
"""

import bisect
import heapq
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from operator import itemgetter
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from openduty.extensions import db
from openduty.models import Schedule, ScheduleLayer, ScheduleOverride

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_UNIT_DELTA = {"hours": timedelta(hours=1), "days": timedelta(days=1), "weeks": timedelta(weeks=1)}
_UNIT_FREQ = {"hours": "HOURLY", "days": "DAILY", "weeks": "WEEKLY"}
_BYDAY = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")

# --- Time helpers ------------------------------------------------------------------------------


def localize(wall: datetime, tz: ZoneInfo) -> datetime:
    """A naive local wall-clock time in `tz` as an aware UTC datetime.

    fold=0 (PEP 495): an ambiguous time (fall back) is its first occurrence; a missing time
    (spring forward) keeps the offset from before the change, so 02:30 becomes 03:30.
    """
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def wall_clock(at: datetime, tz: ZoneInfo) -> datetime:
    """The naive local wall-clock time of the aware datetime `at` in `tz`."""
    return at.astimezone(tz).replace(tzinfo=None)


def _floor_div(delta: timedelta, period: timedelta) -> int:
    return delta // period


# --- Compiled layers ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """A restriction: on these weekdays (0 = Monday), from start to end minutes after midnight."""

    weekdays: frozenset[int]
    start_minute: int
    end_minute: int  # > start_minute, may exceed 1440 (crosses midnight)


def minutes_of_day(value, label: str) -> int:
    """ "HH:MM" (00:00 to 24:00) as minutes after midnight; raises ValueError saying what `label` must be."""
    if not isinstance(value, str) or not re.fullmatch(r"\d{1,2}:\d{2}", value.strip()):
        raise ValueError(f"{label} must be a time like 09:00.")
    hours, minutes = (int(x) for x in value.strip().split(":"))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise ValueError(f"{label} must be a time between 00:00 and 24:00.")
    return hours * 60 + minutes


def _windows(restrictions: list[dict]) -> tuple[Window, ...]:
    windows = []
    for r in restrictions or []:
        start, end = minutes_of_day(r["start"], "start"), minutes_of_day(r["end"], "end")
        if end <= start:
            end += 1440
        windows.append(Window(frozenset(WEEKDAYS.index(d) for d in r["days"]), start, end))
    return tuple(windows)


class CompiledRotation:
    """A rotation layer as one handoff rule; shift k belongs to participant k mod n."""

    def __init__(self, layer: ScheduleLayer, tz: ZoneInfo):
        self.layer_id = layer.id
        self.tz = tz
        self.unit = layer.shift_unit
        self.user_ids = tuple(p.user_id for p in layer.participants)
        self.period = _UNIT_DELTA[layer.shift_unit] * layer.shift_length
        self.start_wall = layer.start
        # Hour rotations run on elapsed time (frame UTC); day and week rotations on local wall time.
        self.elapsed = layer.shift_unit == "hours"
        self.start_utc = localize(layer.start, tz)
        self.windows = _windows(layer.restrictions)
        self.max_span = self.period

    def handoff(self, k: int) -> datetime:
        if self.elapsed:
            return self.start_utc + k * self.period
        return localize(self.start_wall + k * self.period, self.tz)

    def index_at(self, at: datetime) -> int:
        """The index of the shift running at `at` (negative before the first handoff)."""
        if self.elapsed:
            return _floor_div(at - self.start_utc, self.period)
        k = _floor_div(wall_clock(at, self.tz) - self.start_wall, self.period)
        # The wall clock is ambiguous for an hour each autumn: settle on exact instants.
        while self.handoff(k + 1) <= at:
            k += 1
        while self.handoff(k) > at:
            k -= 1
        return k

    def users_at(self, at: datetime) -> tuple[int, ...]:
        if not self.user_ids:
            return ()
        k = self.index_at(at)
        if k < 0 or (self.windows and not self._in_window(at)):
            return ()
        return (self.user_ids[k % len(self.user_ids)],)

    def _in_window(self, at: datetime) -> bool:
        day = wall_clock(at, self.tz).date()
        for d in (day - timedelta(days=1), day):
            for s, e in self._day_windows(d):
                if s <= at < e:
                    return True
        return False

    def _day_windows(self, day: date) -> Iterable[tuple[datetime, datetime]]:
        midnight = datetime.combine(day, time())
        for w in self.windows:
            if day.weekday() in w.weekdays:
                yield (
                    localize(midnight + timedelta(minutes=w.start_minute), self.tz),
                    localize(midnight + timedelta(minutes=w.end_minute), self.tz),
                )

    def window_union(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """The restriction windows overlapping [start, end), merged and sorted."""
        first = wall_clock(start, self.tz).date() - timedelta(days=1)
        last = wall_clock(end, self.tz).date()
        spans = []
        day = first
        while day <= last:
            spans.extend((s, e) for s, e in self._day_windows(day) if e > start and s < end and e > s)
            day += timedelta(days=1)
        spans.sort()
        merged: list[list[datetime]] = []
        for s, e in spans:
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        return [(s, e) for s, e in merged]

    def segments(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime, tuple[int, ...]]]:
        """Whole shifts overlapping [start, end), each cut to the restriction windows."""
        if not self.user_ids or end <= start:
            return []
        n = len(self.user_ids)
        k = max(self.index_at(start), 0)
        out = []
        s = self.handoff(k)
        while s < end:
            e = self.handoff(k + 1)
            if e > start:
                out.append((s, e, (self.user_ids[k % n],)))
            k += 1
            s = e
        if not self.windows or not out:
            return out
        windows = self.window_union(out[0][0], out[-1][1])
        cut = []
        i = 0
        for s, e, users in out:
            while i < len(windows) and windows[i][1] <= s:
                i += 1
            j = i
            while j < len(windows) and windows[j][0] < e:
                ws, we = windows[j]
                cut.append((max(s, ws), min(e, we), users))
                j += 1
        return cut

    def rrules(self) -> list[str]:
        """One iCalendar recurrence rule per participant position (what this layer compiles to)."""
        n = len(self.user_ids)
        freq = _UNIT_FREQ[self.unit]
        length = self.period // _UNIT_DELTA[self.unit]
        rules = []
        for i in range(n):
            if self.elapsed:
                dtstart = "DTSTART:" + (self.start_utc + i * self.period).strftime("%Y%m%dT%H%M%SZ")
            else:
                first = self.start_wall + i * self.period
                dtstart = f"DTSTART;TZID={self.tz.key}:{first:%Y%m%dT%H%M%S}"
            rules.append(f"{dtstart}\nRRULE:FREQ={freq};INTERVAL={length * n}")
        return rules

    def restriction_rrules(self) -> list[str]:
        """The restriction windows as weekly rules (their starts) with a duration, for display."""
        rules = []
        for w in self.windows:
            days = ",".join(_BYDAY[d] for d in sorted(w.weekdays))
            rules.append(
                f"RRULE:FREQ=WEEKLY;BYDAY={days};BYHOUR={w.start_minute // 60};BYMINUTE={w.start_minute % 60}"
                f" DURATION:PT{(w.end_minute - w.start_minute) // 60}H{(w.end_minute - w.start_minute) % 60}M"
            )
        return rules


class CompiledEvents:
    """An iCal source layer: its imported events (already expanded and matched to users)."""

    def __init__(self, layer: ScheduleLayer):
        self.layer_id = layer.id
        events = sorted((e.start, e.end, e.user_id) for e in layer.events if e.end > e.start)
        self.starts = [e[0] for e in events]
        self.events = events
        self.max_span = max((e - s for s, e, _ in events), default=timedelta(0))

    def users_at(self, at: datetime) -> tuple[int, ...]:
        hi = bisect.bisect_right(self.starts, at)
        users: list[int] = []
        for s, e, user_id in self.events[:hi][::-1]:
            if s < at - self.max_span:
                break
            if e > at and user_id not in users:
                users.append(user_id)
        return tuple(sorted(users))

    def segments(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime, tuple[int, ...]]]:
        lo = bisect.bisect_left(self.starts, start - self.max_span)
        hi = bisect.bisect_left(self.starts, end)
        relevant = [ev for ev in self.events[lo:hi] if ev[1] > start]
        if not relevant:
            return []
        points = sorted({p for s, e, _ in relevant for p in (s, e)})
        out = []
        for a, b in zip(points, points[1:], strict=False):
            users = tuple(sorted({u for s, e, u in relevant if s <= a and e >= b}))
            if not users:
                continue
            if out and out[-1][1] == a and out[-1][2] == users:
                out[-1] = (out[-1][0], b, users)
            else:
                out.append((a, b, users))
        return out


@dataclass(frozen=True, slots=True)
class Shift:
    """A stretch of the final schedule: who is on call (nobody for a gap) and why."""

    start: datetime
    end: datetime
    user_ids: tuple[int, ...]
    source: str  # layer | override | gap
    layer_id: int | None = None
    override_id: int | None = None

    @property
    def is_gap(self) -> bool:
        return not self.user_ids

    def uid(self, schedule_id: int, user_id: int) -> str:
        """Stable across fetches: the same shift keeps its UID (start, schedule and person)."""
        return f"shift-{schedule_id}-{user_id}-{self.start:%Y%m%dT%H%M%SZ}@openduty"


class OverrideSpan(NamedTuple):
    """An override as the compiled schedule keeps it: plain values, cheap to scan (no ORM object)."""

    start: datetime
    end: datetime
    user_id: int
    id: int


@dataclass
class CompiledSchedule:
    schedule_id: int
    name: str
    tz: ZoneInfo
    layers: list = field(default_factory=list)
    # In creation order (by id): later ones win.
    overrides: list[OverrideSpan] = field(default_factory=list)

    @property
    def pad(self) -> timedelta:
        return max([layer.max_span for layer in self.layers] + [timedelta(days=1)])

    def user_ids_at(self, at: datetime) -> tuple[int, ...]:
        for s, e, user_id, _ in reversed(self.overrides):
            if s <= at < e:
                return (user_id,)
        for layer in reversed(self.layers):
            users = layer.users_at(at)
            if users:
                return users
        return ()

    def timeline(self, start: datetime, end: datetime) -> list[Shift]:
        """The final schedule over [start, end), gaps included, cut exactly at start and end."""
        if end <= start:
            return []
        items: list[tuple[datetime, datetime, int, tuple[int, ...], str, int]] = []
        for priority, layer in enumerate(self.layers):
            for s, e, users in layer.segments(start, end):
                if e > start and s < end:
                    items.append((max(s, start), min(e, end), priority, users, "layer", layer.layer_id))
        base = len(self.layers)
        items += [
            (s if s > start else start, e if e < end else end, base + rank, (user_id,), "override", override_id)
            for rank, (s, e, user_id, override_id) in enumerate(self.overrides)
            if e > start and s < end
        ]
        return _sweep(items, start, end)


def _sweep(items, start: datetime, end: datetime) -> list[Shift]:
    """Flatten prioritised intervals: at every moment the highest priority wins; uncovered is a gap.

    Each Shift is made once, when its run ends (a month with 1,000 overrides has 2,000 pieces to walk
    and a few hundred shifts)."""
    items.sort(key=itemgetter(0))
    points = sorted({start, end, *map(itemgetter(0), items), *map(itemgetter(1), items)})
    heap: list[tuple[int, datetime, int]] = []
    push, pop = heapq.heappush, heapq.heappop
    out: list[Shift] = []
    starts = [it[0] for it in items] + [end]  # `end` stops the walk below: nothing starts there
    i = 0
    top = -2  # the item on top for the previous piece (-1: nobody)
    run: tuple | None = None  # (start, users, source, ref) of the shift being built
    for a in points[:-1]:  # each piece runs from a point to the next one
        while starts[i] <= a:
            push(heap, (-items[i][2], items[i][1], i))
            i += 1
        while heap and heap[0][1] <= a:
            pop(heap)
        idx = heap[0][2] if heap else -1
        if idx == top:
            continue
        top = idx
        users, source, ref = items[idx][3:] if idx >= 0 else ((), "gap", None)
        if run is not None:
            if run[1] == users and run[2] == source:
                continue
            out.append(_shift(run, a))
        run = (a, users, source, ref)
    if run is not None:
        out.append(_shift(run, points[-1]))
    return out


def _shift(run: tuple, end: datetime) -> Shift:
    start, users, source, ref = run
    return Shift(
        start,
        end,
        users,
        source,
        layer_id=ref if source == "layer" else None,
        override_id=ref if source == "override" else None,
    )


# --- Compilation cache -------------------------------------------------------------------------

_cache: dict[tuple[int, str], CompiledSchedule] = {}
_cache_lock = threading.Lock()
_CACHE_SIZE = 512  # compiled schedules kept per process; cleared wholesale when full


def compile_schedule(schedule: Schedule) -> CompiledSchedule:
    """The schedule's layers and overrides compiled for fast queries, cached per revision."""
    session = db.session
    if session.new or session.dirty or session.deleted:
        session.flush()  # so that the revision reflects pending changes
    key = (schedule.id, schedule.revision)
    compiled = _cache.get(key)
    if compiled is not None:
        return compiled
    tz = ZoneInfo(schedule.time_zone)
    layers = session.scalars(
        select(ScheduleLayer)
        .where(ScheduleLayer.schedule_id == schedule.id)
        .order_by(ScheduleLayer.position, ScheduleLayer.id)
        .options(selectinload(ScheduleLayer.participants), selectinload(ScheduleLayer.events))
    ).all()
    overrides = session.execute(
        select(ScheduleOverride.start, ScheduleOverride.end, ScheduleOverride.user_id, ScheduleOverride.id)
        .where(ScheduleOverride.schedule_id == schedule.id, ScheduleOverride.end > ScheduleOverride.start)
        .order_by(ScheduleOverride.id)
    ).all()
    compiled = CompiledSchedule(schedule.id, schedule.name, tz)
    for layer in layers:
        if layer.kind == "ical":
            compiled.layers.append(CompiledEvents(layer))
        elif layer.start is not None and layer.participants and layer.shift_length > 0:
            compiled.layers.append(CompiledRotation(layer, tz))
    compiled.overrides = [OverrideSpan(*row) for row in overrides]
    with _cache_lock:
        if len(_cache) >= _CACHE_SIZE:
            _cache.clear()
        _cache[key] = compiled
    return compiled
