"""Rotations -> recurrence rules -> shifts; who is on call at a moment; iCal export and import.

How a schedule decides who is on call (docs/schedules.md has the long version):

- A rotation layer is one recurrence rule for its handoffs, `FREQ=DAILY|WEEKLY|HOURLY;INTERVAL=n`
  from its start; handoff k goes to participant k mod len(participants). Equivalently, participant
  position i has its own rule `INTERVAL=n*len(participants)` from handoff i (`layer_rrules()`).
- Day and week rotations hand off at the same *local wall-clock time* in the schedule's zone, so a
  daily shift across a DST change lasts 23 or 25 hours. A handoff at a local time that does not
  exist (spring forward) happens at the same offset as before the change (02:30 -> 03:30); one that
  exists twice (fall back) happens at the first occurrence. Hour rotations count elapsed hours.
- Restrictions keep a layer to local windows (e.g. weekdays 09:00-17:00); outside them the layer
  has nobody and the layers below decide.
- Later layers win over earlier ones wherever they have someone; overrides win over every layer,
  and among overlapping overrides the one created later wins.

Compiled schedules are cached per `Schedule.revision`, which changes with every edit.
"""

import bisect
import heapq
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from openduty import clock, outbound, validation
from openduty.extensions import db
from openduty.models import (
    EscalationLevel,
    EscalationPolicy,
    EscalationTarget,
    LayerEvent,
    Schedule,
    ScheduleLayer,
    ScheduleOverride,
    User,
)

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


def parse_restrictions(value) -> list[dict]:
    """Validate restrictions: a list of {"days": [...], "start": "HH:MM", "end": "HH:MM"}.

    `end` at or before `start` crosses midnight ("22:00"-"06:00"); "00:00"-"24:00" is the whole
    day. Returns the normalised list; raises ValueError with a message saying what to fix.
    """
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return parse_restrictions_text(value)
    if not isinstance(value, list):
        raise ValueError('Restrictions must be a list like [{"days": ["mon"], "start": "09:00", "end": "17:00"}].')
    clean = []
    for i, item in enumerate(value, 1):
        if not isinstance(item, dict):
            raise ValueError(f"Restriction {i} must be an object with days, start and end.")
        days = item.get("days", list(WEEKDAYS))
        if isinstance(days, str):
            days = [days]
        if not isinstance(days, list) or not days:
            raise ValueError(f"Restriction {i}: days must be a non-empty list of mon..sun.")
        norm_days = []
        for day in days:
            key = str(day).strip().lower()[:3]
            if key not in WEEKDAYS:
                raise ValueError(f"Restriction {i}: unknown day {day!r}; use mon, tue, wed, thu, fri, sat, sun.")
            if key not in norm_days:
                norm_days.append(key)
        start = _hhmm(item.get("start", "00:00"), f"Restriction {i}: start")
        end = _hhmm(item.get("end", "24:00"), f"Restriction {i}: end")
        if start == 1440:
            raise ValueError(f"Restriction {i}: start must be before 24:00.")
        norm_days.sort(key=WEEKDAYS.index)
        clean.append({"days": norm_days, "start": _fmt_minutes(start), "end": _fmt_minutes(end)})
    return clean


_TEXT_LINE = re.compile(r"^\s*(?P<days>[a-z,\- ]+?)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$", re.I)


def parse_restrictions_text(text: str) -> list[dict]:
    """The form's format: one window per line, e.g. `mon-fri 09:00-17:00` or `sat,sun 00:00-24:00`."""
    items = []
    for n, line in enumerate(text.replace(";", "\n").splitlines(), 1):
        if not line.strip():
            continue
        match = _TEXT_LINE.match(line)
        if not match:
            raise ValueError(f"Line {n} ({line.strip()!r}): write days then times, e.g. 'mon-fri 09:00-17:00'.")
        days: list[str] = []
        for part in match["days"].replace(" ", "").lower().split(","):
            if "-" in part:
                first, _, last = part.partition("-")
                if first[:3] not in WEEKDAYS or last[:3] not in WEEKDAYS:
                    raise ValueError(f"Line {n}: unknown day range {part!r}; use e.g. mon-fri.")
                a, b = WEEKDAYS.index(first[:3]), WEEKDAYS.index(last[:3])
                days.extend(WEEKDAYS[(a + i) % 7] for i in range((b - a) % 7 + 1))
            else:
                days.append(part)
        items.append({"days": days, "start": match["start"], "end": match["end"]})
    return parse_restrictions(items) if items else []


def restrictions_text(restrictions: list[dict]) -> str:
    return "\n".join(f"{','.join(r['days'])} {r['start']}-{r['end']}" for r in restrictions or [])


def _hhmm(value, label: str) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"\d{1,2}:\d{2}", value.strip()):
        raise ValueError(f"{label} must be a time like 09:00.")
    hours, minutes = (int(x) for x in value.strip().split(":"))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise ValueError(f"{label} must be a time between 00:00 and 24:00.")
    return hours * 60 + minutes


def _fmt_minutes(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _windows(restrictions: list[dict]) -> tuple[Window, ...]:
    windows = []
    for r in restrictions or []:
        start, end = _hhmm(r["start"], "start"), _hhmm(r["end"], "end")
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


@dataclass
class CompiledSchedule:
    schedule_id: int
    name: str
    tz: ZoneInfo
    layers: list = field(default_factory=list)
    # (start, end, user_id, override_id), in creation order: later ones win.
    overrides: list[tuple[datetime, datetime, int, int]] = field(default_factory=list)

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
        for rank, (s, e, user_id, override_id) in enumerate(self.overrides):
            if e > start and s < end:
                items.append((max(s, start), min(e, end), base + rank, (user_id,), "override", override_id))
        return _sweep(items, start, end)


def _sweep(items, start: datetime, end: datetime) -> list[Shift]:
    """Flatten prioritised intervals: at every moment the highest priority wins; uncovered is a gap."""
    items.sort(key=lambda it: it[0])
    points = sorted({start, end, *(it[0] for it in items), *(it[1] for it in items)})
    heap: list[tuple[int, datetime, int]] = []
    out: list[Shift] = []
    i = 0
    for a, b in zip(points, points[1:], strict=False):
        while i < len(items) and items[i][0] <= a:
            heapq.heappush(heap, (-items[i][2], items[i][1], i))
            i += 1
        while heap and heap[0][1] <= a:
            heapq.heappop(heap)
        if heap:
            _, _, idx = heap[0]
            _, _, _, users, source, ref = items[idx]
        else:
            users, source, ref = (), "gap", None
        last = out[-1] if out else None
        if last and last.end == a and last.user_ids == users and last.source == source:
            out[-1] = Shift(last.start, b, users, source, last.layer_id, last.override_id)
            continue
        out.append(
            Shift(
                a,
                b,
                users,
                source,
                layer_id=ref if source == "layer" else None,
                override_id=ref if source == "override" else None,
            )
        )
    return out


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
    compiled.overrides = [tuple(row) for row in overrides]
    with _cache_lock:
        if len(_cache) >= _CACHE_SIZE:
            _cache.clear()
        _cache[key] = compiled
    return compiled


# --- Queries -----------------------------------------------------------------------------------


def users_by_id(ids: Iterable[int]) -> dict[int, User]:
    """Load users by id in one query."""
    wanted = set(ids)
    if not wanted:
        return {}
    return {user.id: user for user in db.session.scalars(select(User).where(User.id.in_(wanted)))}


def who_is_on_call(schedule: Schedule, at: datetime) -> list[User]:
    """The users on call in `schedule` at `at` (aware datetime), after layers and overrides."""
    ids = compile_schedule(schedule).user_ids_at(at)
    users = [db.session.get(User, user_id) for user_id in ids]
    return [u for u in users if u is not None]


def timeline(schedule: Schedule, start: datetime, end: datetime, *, whole: bool = True) -> list[Shift]:
    """The final schedule (shifts and gaps) overlapping [start, end).

    With `whole`, shifts crossing the edges keep their real start and end (computed over a padded
    window), so a shift's extent and UID do not depend on the window asked for.
    """
    compiled = compile_schedule(schedule)
    if not whole:
        return compiled.timeline(start, end)
    pad = compiled.pad
    return [s for s in compiled.timeline(start - pad, end + pad) if s.end > start and s.start < end]


def shifts(schedule: Schedule, start: datetime, end: datetime) -> list[Shift]:
    """The final shifts overlapping [start, end): layers, then overrides; gaps left out."""
    return [s for s in timeline(schedule, start, end) if not s.is_gap]


def on_call_throughout(schedule: Schedule, user_id: int, start: datetime, end: datetime) -> bool:
    """Whether `user_id` is on call in the final schedule for the whole of [start, end)."""
    covered_until = start
    own = sorted((s for s in shifts(schedule, start, end) if user_id in s.user_ids), key=lambda s: s.start)
    for s in own:
        if s.start > covered_until:
            return False  # a stretch in between belongs to someone else, or to nobody
        covered_until = max(covered_until, s.end)
        if covered_until >= end:
            return True
    return covered_until >= end


def gaps(schedule: Schedule, start: datetime, end: datetime) -> list[Shift]:
    """The stretches of [start, end) when nobody is on call, cut to the window."""
    return [s for s in timeline(schedule, start, end, whole=False) if s.is_gap]


def current_shift(schedule: Schedule, at: datetime) -> Shift:
    """The final shift (or gap) running at `at`."""
    for s in timeline(schedule, at, at + timedelta(microseconds=1)):
        if s.start <= at < s.end:
            return s
    return Shift(at, at, (), "gap")


DEFAULT_GAP_HORIZON = timedelta(days=14)


@dataclass(frozen=True)
class GapWarning:
    schedule: Schedule
    gaps: list[Shift]

    @property
    def first(self) -> Shift:
        return self.gaps[0]

    @property
    def message(self) -> str:
        first = self.first
        tz = ZoneInfo(self.schedule.time_zone)
        when = "now" if first.start <= clock.now() else first.start.astimezone(tz).strftime("%a %d %b %H:%M %Z")
        more = f" and {len(self.gaps) - 1} more gap(s)" if len(self.gaps) > 1 else ""
        return f"Nobody is on call in {self.schedule.name} from {when}{more}."


def gap_warnings(schedule: Schedule, horizon: timedelta = DEFAULT_GAP_HORIZON) -> GapWarning | None:
    """A warning if the schedule has gaps (nobody on call) between now and now + horizon."""
    now = clock.now()
    found = gaps(schedule, now, now + horizon)
    return GapWarning(schedule, found) if found else None


def policy_gap_warnings(policy: EscalationPolicy | None, horizon: timedelta = DEFAULT_GAP_HORIZON) -> list[GapWarning]:
    """Gap warnings for every schedule a policy targets (each schedule once)."""
    if policy is None:
        return []
    seen, warnings = set(), []
    for level in policy.levels:
        for target in level.targets:
            if target.target_type == "schedule" and target.schedule is not None and target.schedule_id not in seen:
                seen.add(target.schedule_id)
                warning = gap_warnings(target.schedule, horizon)
                if warning:
                    warnings.append(warning)
    return warnings


def user_shifts(user: User, start: datetime, end: datetime) -> list[tuple[Schedule, Shift]]:
    """One person's final shifts across every schedule, in time order."""
    out = []
    for schedule in schedules_with_user(user):
        out.extend((schedule, s) for s in shifts(schedule, start, end) if user.id in s.user_ids)
    out.sort(key=lambda pair: (pair[1].start, pair[0].name))
    return out


def schedules_with_user(user: User) -> list[Schedule]:
    """Schedules where the user takes part (a rotation, an iCal source or an override)."""
    from openduty.models import LayerParticipant

    ids = set(db.session.scalars(select(ScheduleOverride.schedule_id).where(ScheduleOverride.user_id == user.id)))
    ids |= set(
        db.session.scalars(
            select(ScheduleLayer.schedule_id).join(LayerParticipant).where(LayerParticipant.user_id == user.id)
        )
    )
    ids |= set(
        db.session.scalars(select(ScheduleLayer.schedule_id).join(LayerEvent).where(LayerEvent.user_id == user.id))
    )
    if not ids:
        return []
    return list(db.session.scalars(select(Schedule).where(Schedule.id.in_(ids)).order_by(Schedule.name)))


def layer_rrules(layer: ScheduleLayer, schedule: Schedule | None = None) -> list[str]:
    """The recurrence rules a rotation layer compiles to, one per participant position."""
    if layer.kind != "rotation" or not layer.participants or layer.start is None:
        return []
    tz = ZoneInfo((schedule or layer.schedule).time_zone)
    return CompiledRotation(layer, tz).rrules()


# --- Who is on call for policies -----------------------------------------------------------------


def policy_oncalls(at: datetime | None = None, policy_ids: Sequence[int] | None = None) -> list[dict]:
    """For every escalation policy and level, who is on call at `at` and through which target.

    Returns [{"policy", "level" (1-based), "level_obj", "entries": [{"user", "schedule", "start",
    "end"}]}]; a schedule target with nobody on call gives an entry with user None.
    """
    at = at or clock.now()
    query = (
        select(EscalationPolicy)
        .order_by(EscalationPolicy.name)
        .options(
            selectinload(EscalationPolicy.levels)
            .selectinload(EscalationLevel.targets)
            .options(selectinload(EscalationTarget.user), selectinload(EscalationTarget.schedule))
        )
    )
    if policy_ids is not None:
        query = query.where(EscalationPolicy.id.in_(policy_ids))
    policies = db.session.scalars(query).all()
    rows = []
    per_schedule: dict[int, Shift] = {}
    for policy in policies:
        for number, level in enumerate(policy.levels, 1):
            entries = []
            for target in level.targets:
                if target.target_type == "user" and target.user is not None:
                    entries.append({"user": target.user, "schedule": None, "start": None, "end": None})
                elif target.target_type == "schedule" and target.schedule is not None:
                    shift = per_schedule.get(target.schedule_id)
                    if shift is None:
                        shift = per_schedule[target.schedule_id] = current_shift(target.schedule, at)
                    if shift.is_gap:
                        entries.append({"user": None, "schedule": target.schedule, "start": None, "end": None})
                    for user_id in shift.user_ids:
                        user = db.session.get(User, user_id)
                        if user is not None:
                            entries.append(
                                {"user": user, "schedule": target.schedule, "start": shift.start, "end": shift.end}
                            )
            rows.append({"policy": policy, "level": number, "level_obj": level, "entries": entries})
    return rows


# --- iCal feeds --------------------------------------------------------------------------------


def feed_window(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The span a feed covers: CALENDAR_FEED_DAYS_BACK before now to CALENDAR_FEED_DAYS_AHEAD after."""
    now = now or clock.now()
    config = current_app.config
    return (
        now - timedelta(days=config["CALENDAR_FEED_DAYS_BACK"]),
        now + timedelta(days=config["CALENDAR_FEED_DAYS_AHEAD"]),
    )


# RFC 5545 3.3.11: TEXT holds no control characters except HTAB (line breaks are escaped as \n).
_TEXT_CONTROLS = dict.fromkeys([*range(0x20), 0x7F])
del _TEXT_CONTROLS[0x09]


def _escape(text: str) -> str:
    """A TEXT value: backslash, semicolon and comma escaped; CRLF, lone CR and LF as \\n; other controls dropped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")
    return text.translate(_TEXT_CONTROLS)


def _fold(line: str) -> str:
    """RFC 5545 3.1: lines longer than 75 octets continue on lines starting with a space."""
    raw = line.encode()
    if len(raw) <= 75:
        return line
    parts, current, size, limit = [], [], 0, 75
    for char in line:
        n = len(char.encode())
        if size + n > limit:
            parts.append("".join(current))
            current, size, limit = [], 0, 74
        current.append(char)
        size += n
    parts.append("".join(current))
    return "\r\n ".join(parts)


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def render_feed(name: str, events: Iterable[tuple[str, datetime, datetime, str, str]]) -> str:
    """An RFC 5545 VCALENDAR of (uid, start, end, summary, description) events in UTC."""
    stamp = _utc(clock.now())
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Openduty//On-call schedules//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        _fold("X-WR-CALNAME:" + _escape(name)),
        "X-PUBLISHED-TTL:PT1H",
    ]
    for uid, start, end, summary, description in events:
        lines += [
            "BEGIN:VEVENT",
            _fold("UID:" + uid),
            "DTSTAMP:" + stamp,
            "DTSTART:" + _utc(start),
            "DTEND:" + _utc(end),
            _fold("SUMMARY:" + _escape(summary)),
            _fold("DESCRIPTION:" + _escape(description)),
            "TRANSP:TRANSPARENT",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines) + "\r\n"


def _summary(schedule_name: str, user: User) -> str:
    return f"On call: {user.name} ({schedule_name})"


def schedule_feed(schedule: Schedule, start: datetime | None = None, end: datetime | None = None) -> str:
    """Everyone's final shifts in the schedule as an iCal feed (one event per person per shift)."""
    if start is None or end is None:
        start, end = feed_window()
    found = shifts(schedule, start, end)
    users = users_by_id(u for s in found for u in s.user_ids)
    events = []
    for s in found:
        for user_id in s.user_ids:
            user = users.get(user_id)
            if user is not None:
                how = "override" if s.source == "override" else "rotation"
                events.append(
                    (
                        s.uid(schedule.id, user_id),
                        s.start,
                        s.end,
                        _summary(schedule.name, user),
                        f"{user.email} ({how})",
                    )
                )
    return render_feed(f"On call: {schedule.name}", events)


def user_feed(user: User, start: datetime | None = None, end: datetime | None = None) -> str:
    """One person's final shifts across every schedule as an iCal feed."""
    if start is None or end is None:
        start, end = feed_window()
    events = [
        (s.uid(schedule.id, user.id), s.start, s.end, _summary(schedule.name, user), f"{user.email}")
        for schedule, s in user_shifts(user, start, end)
    ]
    return render_feed(f"{user.name}: on-call shifts", events)


def calendar_token(user: User) -> str:
    """The user's calendar feed token, created on first use (revocable from the profile)."""
    if not user.calendar_token:
        user.regenerate_calendar_token()
        db.session.commit()
    return user.calendar_token


def _base_url() -> str:
    return current_app.config["BASE_URL"].rstrip("/")


def schedule_ical_url(schedule: Schedule, for_user: User) -> str:
    """The https feed URL of a schedule, carrying `for_user`'s calendar token (works outside requests)."""
    return f"{_base_url()}/calendar/schedules/{schedule.id}.ics?token={calendar_token(for_user)}"


def user_ical_url(user: User) -> str:
    """The https feed URL of `user`'s own shifts, with their token (a token opens only its owner's feed)."""
    return f"{_base_url()}/calendar/users/{user.id}.ics?token={calendar_token(user)}"


def webcal(url: str) -> str:
    """The same feed as a webcal:// link, which calendar apps open as a subscription."""
    return "webcal://" + url.split("://", 1)[1]


def user_for_token(token: str | None) -> User | None:
    """The active user owning a calendar token, or None."""
    if not token or len(token) > 64:
        return None
    user = db.session.scalar(select(User).where(User.calendar_token == token))
    return user if user is not None and user.active else None


# --- iCal import (source layers) ---------------------------------------------------------------


class ICalImportError(ValueError):
    """An iCal source that cannot be used; the message says what (and which event) to fix."""


@dataclass
class ImportedEvent:
    user_id: int
    start: datetime
    end: datetime
    summary: str


@dataclass
class ImportResult:
    events: list[ImportedEvent]
    unmatched: list[str]
    total: int


MAX_ICAL_BYTES = 5 * 1024 * 1024  # an on-call calendar is small; refuse anything absurd
ICAL_FETCH_SECONDS = 30  # the whole download of an iCal source


def _event_label(event) -> str:
    summary = str(event.get("SUMMARY", "")).strip()
    uid = str(event.get("UID", "")).strip()
    if summary and uid:
        return f"'{summary}' (UID {uid})"
    return f"'{summary}'" if summary else (f"UID {uid}" if uid else "without summary or UID")


def _as_utc(value, tz: ZoneInfo) -> datetime:
    """An iCal date, floating or zoned time as aware UTC (dates and floating times in the schedule's zone)."""
    if isinstance(value, datetime):
        return localize(value, tz) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return localize(datetime.combine(value, time()), tz)
    raise ValueError(f"not a date or time: {value!r}")


def expand_ical(data: str | bytes, tz: ZoneInfo, start: datetime, end: datetime) -> list[tuple]:
    """Parse an iCalendar file and expand its events over [start, end).

    Returns [(summary, attendee emails, start, end)]. Raises ICalImportError naming the event
    that cannot be read or whose recurrence rule cannot be expanded.
    """
    import icalendar
    import recurring_ical_events

    if isinstance(data, str):
        if validation.unstorable(data):
            raise ICalImportError(f"The calendar {validation.unstorable(data)}; it is not a valid text calendar.")
        data = data.encode()
    if b"\x00" in data:
        raise ICalImportError("The calendar contains a NUL character; it is not a valid text calendar.")
    if len(data) > MAX_ICAL_BYTES:
        raise ICalImportError(f"The calendar is too large ({len(data)} bytes; at most {MAX_ICAL_BYTES}).")
    try:
        calendar = icalendar.Calendar.from_ical(data)
    except Exception as exc:
        raise ICalImportError(f"This is not a valid iCalendar (.ics) file: {exc}") from exc
    if getattr(calendar, "name", None) != "VCALENDAR":
        raise ICalImportError("This is not a valid iCalendar (.ics) file: it has no VCALENDAR.")
    timezones = calendar.walk("VTIMEZONE")
    groups: dict[str, list] = {}
    for n, event in enumerate(calendar.walk("VEVENT")):
        if event.get("DTSTART") is None:
            raise ICalImportError(f"Event {_event_label(event)} has no start (DTSTART).")
        groups.setdefault(str(event.get("UID") or f"#{n}"), []).append(event)
    out = []
    for events in groups.values():
        # Expand each event (with its RECURRENCE-ID exceptions) alone, so an error names it.
        single = icalendar.Calendar()
        for component in (*timezones, *events):
            single.add_component(component)
        try:
            occurrences = recurring_ical_events.of(single).between(start, end)
        except Exception as exc:
            raise ICalImportError(
                f"Event {_event_label(events[0])} has a recurrence rule that cannot be expanded: {exc}"
            ) from exc
        for occurrence in occurrences:
            try:
                s = _as_utc(occurrence["DTSTART"].dt, tz)
                e = _as_utc(occurrence["DTEND"].dt, tz) if occurrence.get("DTEND") else s
            except Exception as exc:
                raise ICalImportError(f"Event {_event_label(occurrence)} has an unreadable time: {exc}") from exc
            if e <= s:
                continue
            attendees = occurrence.get("ATTENDEE", [])
            if not isinstance(attendees, list):
                attendees = [attendees]
            emails = [str(a).split(":", 1)[-1].strip().lower() for a in attendees if str(a).strip()]
            out.append((str(occurrence.get("SUMMARY", "")).strip(), emails, s, e))
    return out


def match_users(raw: list[tuple], users: Iterable[User]) -> ImportResult:
    """Match expanded events to users: attendee emails first, then the summary (a name or email)."""
    by_email, by_name = {}, {}
    for user in users:
        by_email[user.email.lower()] = user
        by_name.setdefault(user.name.strip().lower(), user)
    name_patterns = [
        (re.compile(r"(?<!\w)" + re.escape(name) + r"(?!\w)"), user) for name, user in by_name.items() if len(name) >= 3
    ]
    events, unmatched = [], set()
    for summary, emails, s, e in raw:
        matched = [by_email[m] for m in emails if m in by_email]
        if not matched:
            key = summary.lower()
            user = by_email.get(key) or by_name.get(key)
            if user is None:
                hits = {u.id: u for pattern, u in name_patterns if pattern.search(key)}
                user = next(iter(hits.values())) if len(hits) == 1 else None
            matched = [user] if user else []
        if not matched:
            unmatched.add(summary or ", ".join(emails) or "(no summary)")
        for user in dict.fromkeys(matched):
            events.append(ImportedEvent(user.id, s, e, summary[:500]))
    return ImportResult(events, sorted(unmatched), len(raw))


def import_ical(layer: ScheduleLayer, data: str | bytes, tz: ZoneInfo | None = None) -> ImportResult:
    """Replace an iCal layer's events with those of `data`; on any error raise and change nothing."""
    now = clock.now()
    config = current_app.config
    tz = tz or ZoneInfo(layer.schedule.time_zone)
    raw = expand_ical(
        data,
        tz,
        now - timedelta(days=config["ICAL_IMPORT_DAYS_BACK"]),
        now + timedelta(days=config["ICAL_IMPORT_DAYS_AHEAD"]),
    )
    result = match_users(raw, db.session.scalars(select(User).where(User.active.is_(True))))
    layer.events = [LayerEvent(user_id=e.user_id, start=e.start, end=e.end, summary=e.summary) for e in result.events]
    layer.ical_data = data.decode() if isinstance(data, bytes) else data
    layer.ical_unmatched = result.unmatched
    layer.ical_refreshed_at = now
    layer.ical_error = None
    return result


def fetch_ical(url: str) -> bytes:
    """Download an iCal source under the outbound policy (webcal:// is fetched over https).

    Redirects are followed (each hop is checked like the first). Errors name the HTTP status or a
    short reason, never the URL (it may hold a token) nor what the server answered.
    """
    if url.startswith("webcal://"):
        url = "https://" + url[len("webcal://") :]
    try:
        reply = outbound.request(
            "GET", url, outbound.policy_for(current_app.config), follow_redirects=True, max_bytes=MAX_ICAL_BYTES,
            deadline=ICAL_FETCH_SECONDS, headers={"Accept": "text/calendar"},
        )  # fmt: skip
    except outbound.OutboundError as exc:
        raise ICalImportError(f"Could not fetch the calendar: {exc}.") from exc
    if reply.status != 200:
        raise ICalImportError(f"Could not fetch the calendar: HTTP {reply.status}.")
    if reply.truncated:
        raise ICalImportError(f"The calendar is too large (more than {MAX_ICAL_BYTES} bytes).")
    if not reply.body.lstrip(b"\xef\xbb\xbf \t\r\n").upper().startswith(b"BEGIN:VCALENDAR"):
        raise ICalImportError("The URL did not return an iCalendar (.ics) file (it must start with BEGIN:VCALENDAR).")
    return reply.body
