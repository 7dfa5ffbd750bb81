"""Who is on call: the final shifts and gaps of a schedule, at a moment or over a range, for people and policies.

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
- A shift is one person's whole run: consecutive turns of the same person are one shift, whatever
  window it is asked through, back to the rotation's start; one that runs on past SHIFT_HORIZON
  after the window (a single participant) is shown ending at the first of the month after it.

Compiled schedules are cached per `Schedule.revision`, which changes with every edit.

The compiling (rotations, restrictions, imported events, overrides merged into shifts) lives in
openduty.shifts; iCal feeds and imports in openduty.ical; validating changes in openduty.schedules.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from openduty import clock
from openduty.extensions import db
from openduty.models import (
    EscalationLevel,
    EscalationPolicy,
    EscalationTarget,
    LayerEvent,
    LayerParticipant,
    Schedule,
    ScheduleLayer,
    ScheduleOverride,
    Team,
    User,
)
from openduty.shifts import CompiledEvents, CompiledRotation, CompiledSchedule, Shift, compile_schedule

# A shift still running this long after the window asked for is shown ending at the first of the
# following month (so its end, like its start and UID, does not move with every fetch).
SHIFT_HORIZON = timedelta(days=366)

# --- Queries -----------------------------------------------------------------------------------


def users_by_id(ids: Iterable[int], known: Mapping[int, User] | None = None) -> dict[int, User]:
    """Load users by id in one query; those in `known` (already loaded by the caller) need none."""
    known = known or {}
    wanted = set(ids)
    found = {user_id: known[user_id] for user_id in wanted if user_id in known}
    missing = wanted - found.keys()
    if missing:
        found.update((user.id, user) for user in db.session.scalars(select(User).where(User.id.in_(missing))))
    return found


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
    lo, hi = start - compiled.pad, end + compiled.pad
    found = [s for s in compiled.timeline(lo, hi) if s.end > start and s.start < end]
    if found:  # the first and last may run on past the padding: find their real edges
        found[0] = _whole_back(compiled, found[0], lo)
        found[-1] = _whole_ahead(compiled, found[-1], hi, _first_of_next_month(end + SHIFT_HORIZON))
    return found


def _same_run(a: Shift, b: Shift) -> bool:
    return a.user_ids == b.user_ids and a.source == b.source


def _whole_back(compiled: CompiledSchedule, shift: Shift, lo: datetime) -> Shift:
    """`shift`, cut by the window at `lo`, with its real start: the same run before it joins it."""
    floor = _earliest(compiled)
    step = compiled.pad
    while shift.start == lo and floor is not None and lo > floor:
        step *= 2
        last = compiled.timeline(lo - step, lo)[-1]
        if not _same_run(last, shift):
            break
        shift = replace(shift, start=last.start, layer_id=last.layer_id, override_id=last.override_id)
        lo -= step
    return shift


def _whole_ahead(compiled: CompiledSchedule, shift: Shift, hi: datetime, cap: datetime) -> Shift:
    """`shift`, cut by the window at `hi`, with its real end (at most `cap`)."""
    ceiling = min(cap, _latest(compiled) or cap)
    step = compiled.pad
    while shift.end == hi and hi < ceiling:
        step *= 2
        nxt = min(hi + step, ceiling)
        first = compiled.timeline(hi, nxt)[0]
        if not _same_run(first, shift):
            break
        shift = replace(shift, end=first.end)
        hi = nxt
    return shift


def _earliest(compiled: CompiledSchedule) -> datetime | None:
    """Before this, nobody is on call (no rotation, event or override starts earlier)."""
    starts = [s for s, *_ in compiled.overrides]
    for layer in compiled.layers:
        if isinstance(layer, CompiledRotation):
            starts.append(layer.start_utc)
        elif isinstance(layer, CompiledEvents) and layer.starts:
            starts.append(layer.starts[0])
    return min(starts, default=None)


def _latest(compiled: CompiledSchedule) -> datetime | None:
    """After this, nobody is on call; None while a rotation runs on for ever."""
    if any(isinstance(layer, CompiledRotation) for layer in compiled.layers):
        return None
    ends = [e for _, e, *_ in compiled.overrides]
    ends += [e for layer in compiled.layers for _, e, _ in layer.events]
    return max(ends, default=None)


def _first_of_next_month(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)


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
    """The stretches of [start, end) when nobody who can be paged is on call (nobody at all, or
    only deactivated people, whom escalation skips), cut to the window."""
    found = timeline(schedule, start, end, whole=False)
    inactive = inactive_ids(u for s in found for u in s.user_ids)
    return [s for s in found if all(u in inactive for u in s.user_ids)]


def inactive_ids(ids: Iterable[int]) -> set[int]:
    """Which of these users are deactivated (one query)."""
    wanted = set(ids)
    if not wanted:
        return set()
    return set(db.session.scalars(select(User.id).where(User.id.in_(wanted), User.active.is_(False))))


def current_shift(schedule: Schedule, at: datetime) -> Shift:
    """The final shift (or gap) running at `at`."""
    for s in timeline(schedule, at, at + timedelta(microseconds=1)):
        if s.start <= at < s.end:
            return s
    return Shift(at, at, (), "gap")


# How far "on call until" looks for the same people carrying on (an override, another layer).
UNTIL_HORIZON = timedelta(days=31)


def on_call_until(schedule: Schedule, at: datetime) -> datetime:
    """When the people on call at `at` stop: the end of their unbroken run. The final shifts split
    where an override or another layer carries on with the same people; "until" is not one of those
    joins (at most UNTIL_HORIZON ahead)."""
    shifts = timeline(schedule, at, at + UNTIL_HORIZON)
    running = [n for n, s in enumerate(shifts) if s.start <= at < s.end]
    if not running:
        return at
    current = shifts[running[0]]
    end = current.end
    for following in shifts[running[0] + 1 :]:
        if following.start != end or following.user_ids != current.user_ids:
            break
        end = following.end
    return end


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


# --- What the home page and the profile show -----------------------------------------------------


def upcoming_shifts(user: User, days: int = 30, now: datetime | None = None) -> list[dict]:
    """The user's final shifts from now for `days` days, in their time zone ("my shifts")."""
    now = now or clock.now()
    tz = ZoneInfo(user.time_zone or "UTC")
    return [
        {
            "schedule": schedule,
            "start": s.start.astimezone(tz),
            "end": s.end.astimezone(tz),
            "now": s.start <= now < s.end,
            "source": s.source,
        }
        for schedule, s in user_shifts(user, now, now + timedelta(days=days))
    ]


def on_call_now(now: datetime | None = None, team_ids: Iterable[int] = ()) -> dict:
    """Each schedule's current shift and each policy level's people ("on call now" on the home page).

    The schedules owned by `team_ids` (the viewer's teams) come first, grouped per team under
    "teams"; the rest under "schedules". People are loaded in one query (with their contact
    methods), whatever the number of schedules."""
    now = now or clock.now()
    all_schedules = db.session.scalars(select(Schedule).order_by(Schedule.name))
    found = [(schedule, current_shift(schedule, now)) for schedule in all_schedules]
    users = users_by_id({u for _, shift in found for u in shift.user_ids})
    rows = [
        {"schedule": s, "shift": shift, "users": [users[u] for u in shift.user_ids if u in users]} for s, shift in found
    ]
    wanted = set(team_ids)
    teams = []
    if wanted:
        for team in db.session.scalars(select(Team).where(Team.id.in_(wanted)).order_by(Team.name)):
            teams.append({"team": team, "schedules": [r for r in rows if r["schedule"].team_id == team.id]})
    policies = policy_oncalls(now)
    people = [u for row in rows for u in row["users"]]
    people += [e["user"] for row in policies for e in row["entries"] if e["user"] is not None]
    _load_contact_methods(people)
    contacts = {user.id: contact_line(user) for user in people}
    others = [r for r in rows if r["schedule"].team_id not in wanted]
    return {"teams": teams, "schedules": others, "policies": policies, "contacts": contacts, "now": now}


def _load_contact_methods(people: list[User]) -> None:
    """Everyone's contact methods in one query (not one lazy load per person)."""
    ids = {u.id for u in people if "contact_methods" not in u.__dict__}
    if ids:
        db.session.scalars(select(User).where(User.id.in_(ids)).options(selectinload(User.contact_methods))).all()


def shifts_now_and_next(user: User, now: datetime | None = None, days: int = 30) -> dict:
    """One person's place on call ("am I on call, until when, and when next?" on the home page):
    their final shifts running `now` and the first one starting after it within `days` days,
    each as (schedule, shift) from `user_shifts`."""
    now = now or clock.now()
    found = _runs(user_shifts(user, now, now + timedelta(days=days)))
    current = [(schedule, s) for schedule, s in found if s.start <= now]
    upcoming = [(schedule, s) for schedule, s in found if s.start > now]
    return {"now": current, "next": upcoming[0] if upcoming else None, "days": days}


def _runs(found: list[tuple[Schedule, Shift]]) -> list[tuple[Schedule, Shift]]:
    """The person's shifts joined where they carry on in the same schedule without a break (an
    override of their own, a layer change): "until" is when they stop, as on_call_until says."""
    runs: list[tuple[Schedule, Shift]] = []
    for schedule, shift in found:
        joined = next((n for n, (s, r) in enumerate(runs) if s.id == schedule.id and r.end == shift.start), None)
        if joined is None:
            runs.append((schedule, shift))
        else:
            runs[joined] = (schedule, replace(runs[joined][1], end=shift.end))
    return runs


def contact_line(user: User) -> str:
    """Email plus the first phone number, for "who to call"."""
    phones = [m.address for m in user.contact_methods if m.kind in ("sms", "voice")]
    return " · ".join([user.email, *phones[:1]])
