"""The on-call engine: rotations as recurrence rules, DST, layers, restrictions, overrides, gaps."""

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr

from openduty import oncall, schedules
from openduty.extensions import db
from openduty.shifts import localize
from tests.factories_schedules import make_layer, make_override, make_schedule


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def names(users) -> list[str]:
    return [u.name for u in users]


def local(schedule, shift_time: datetime) -> datetime:
    return shift_time.astimezone(ZoneInfo(schedule.time_zone))


def test_weekly_rotation_hands_off_in_order(team):
    alice, bob, carol, _ = team
    schedule = make_schedule(time_zone="UTC")
    make_layer(schedule, [alice, bob, carol], datetime(2026, 1, 5, 9), 1, "weeks")

    assert oncall.who_is_on_call(schedule, utc(2026, 1, 5, 8, 59)) == []
    assert names(oncall.who_is_on_call(schedule, utc(2026, 1, 5, 9))) == ["Alice"]
    assert names(oncall.who_is_on_call(schedule, utc(2026, 1, 12, 8, 59))) == ["Alice"]
    assert names(oncall.who_is_on_call(schedule, utc(2026, 1, 12, 9))) == ["Bob"]
    assert names(oncall.who_is_on_call(schedule, utc(2026, 1, 19, 9))) == ["Carol"]
    assert names(oncall.who_is_on_call(schedule, utc(2026, 1, 26, 9))) == ["Alice"]
    found = oncall.shifts(schedule, utc(2026, 1, 1), utc(2026, 2, 1))
    assert [(s.start, s.end) for s in found][:2] == [
        (utc(2026, 1, 5, 9), utc(2026, 1, 12, 9)),
        (utc(2026, 1, 12, 9), utc(2026, 1, 19, 9)),
    ]


def test_a_user_may_appear_twice_in_a_rotation(team):
    alice, bob, *_ = team
    schedule = make_schedule()
    make_layer(schedule, [alice, alice, bob], datetime(2026, 1, 1), 1, "days")
    who = [names(oncall.who_is_on_call(schedule, utc(2026, 1, d, 12))) for d in range(1, 7)]
    assert who == [["Alice"], ["Alice"], ["Bob"], ["Alice"], ["Alice"], ["Bob"]]
    # Consecutive shifts of the same person read as one shift.
    assert [(s.start, s.end) for s in oncall.shifts(schedule, utc(2026, 1, 1), utc(2026, 1, 3))][0] == (
        utc(2026, 1, 1),
        utc(2026, 1, 3),
    )


# Spring-forward and fall-back days of 2026 in each zone: (zone, spring day, autumn day).
DST_DAYS = [
    ("Europe/Budapest", datetime(2026, 3, 29), datetime(2026, 10, 25)),
    ("America/New_York", datetime(2026, 3, 8), datetime(2026, 11, 1)),
    # Southern hemisphere: clocks go back in April and forward in October.
    ("Australia/Sydney", datetime(2026, 10, 4), datetime(2026, 4, 5)),
]


@pytest.mark.parametrize("zone,spring,autumn", DST_DAYS)
def test_daily_handoff_stays_at_local_nine_across_dst(team, zone, spring, autumn):
    alice, bob, *_ = team
    schedule = make_schedule(time_zone=zone)
    make_layer(schedule, [alice, bob], datetime(2026, 1, 1, 9), 1, "days")
    tz = ZoneInfo(zone)
    for day, hours in ((spring, 23), (autumn, 25)):
        window = (localize(day - timedelta(days=2), tz), localize(day + timedelta(days=3), tz))
        found = oncall.shifts(schedule, *window)
        assert all(local(schedule, s.start).hour == 9 and local(schedule, s.start).minute == 0 for s in found)
        crossing = next(s for s in found if local(schedule, s.start).date() == (day - timedelta(days=1)).date())
        assert crossing.end - crossing.start == timedelta(hours=hours)
        others = [s.end - s.start for s in found if s is not crossing]
        assert set(others) == {timedelta(hours=24)}
        # who_is_on_call agrees with the shift list an instant before and after each handoff.
        for s in found:
            for at in (s.start, s.end - timedelta(seconds=1)):
                assert [u.id for u in oncall.who_is_on_call(schedule, at)] == list(s.user_ids)


def test_handoff_in_the_missing_hour_happens_an_hour_later(team):
    """02:30 does not exist in Budapest on 2026-03-29: the handoff keeps the old offset (03:30 CEST)."""
    alice, bob, *_ = team
    schedule = make_schedule(time_zone="Europe/Budapest")
    make_layer(schedule, [alice, bob], datetime(2026, 3, 27, 2, 30), 1, "days")
    found = oncall.shifts(schedule, utc(2026, 3, 27), utc(2026, 3, 31))
    starts = [s.start for s in found]
    assert starts[:4] == [
        utc(2026, 3, 27, 1, 30),
        utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 29, 1, 30),
        utc(2026, 3, 30, 0, 30),
    ]
    assert local(schedule, starts[2]).strftime("%H:%M %Z") == "03:30 CEST"
    assert [s.end - s.start for s in found[:3]] == [timedelta(hours=24), timedelta(hours=24), timedelta(hours=23)]
    assert names(oncall.who_is_on_call(schedule, utc(2026, 3, 29, 1, 29))) == ["Bob"]
    assert names(oncall.who_is_on_call(schedule, utc(2026, 3, 29, 1, 30))) == ["Alice"]


def test_handoff_in_the_repeated_hour_happens_at_its_first_occurrence(team):
    """02:30 happens twice in Budapest on 2026-10-25 (CEST, then CET): the handoff is at the first."""
    alice, bob, *_ = team
    schedule = make_schedule(time_zone="Europe/Budapest")
    make_layer(schedule, [alice, bob], datetime(2026, 10, 23, 2, 30), 1, "days")
    # First 02:30 (CEST) is 00:30 UTC; the second (CET) is 01:30 UTC.
    assert names(oncall.who_is_on_call(schedule, utc(2026, 10, 25, 0, 29))) == ["Bob"]
    assert names(oncall.who_is_on_call(schedule, utc(2026, 10, 25, 0, 30))) == ["Alice"]
    # 02:15 CET (the second 02:15, after the handoff) is still Alice's: exact instants, not wall time.
    assert names(oncall.who_is_on_call(schedule, utc(2026, 10, 25, 1, 15))) == ["Alice"]
    found = oncall.shifts(schedule, utc(2026, 10, 24), utc(2026, 10, 27))
    crossing = next(s for s in found if s.start == utc(2026, 10, 25, 0, 30))
    assert crossing.end == utc(2026, 10, 26, 1, 30)  # 02:30 CET the next day: 25 hours
    assert crossing.end - crossing.start == timedelta(hours=25)


def test_hour_rotations_count_elapsed_hours(team):
    alice, bob, *_ = team
    schedule = make_schedule(time_zone="America/New_York")
    make_layer(schedule, [alice, bob], datetime(2026, 3, 7, 9), 12, "hours")
    found = oncall.shifts(schedule, utc(2026, 3, 7, 14), utc(2026, 3, 9, 14))
    assert {s.end - s.start for s in found} == {timedelta(hours=12)}
    # 21:00 EST + 12 h = 10:00 EDT: elapsed hours, documented in docs/schedules.md.
    assert [local(schedule, s.start).strftime("%d %H:%M") for s in found[:4]] == [
        "07 09:00",
        "07 21:00",
        "08 10:00",
        "08 22:00",
    ]


@pytest.mark.parametrize("zone,spring,autumn", DST_DAYS)
def test_compiled_rrules_expanded_by_dateutil_match_shifts(team, zone, spring, autumn):
    """Each participant position's RRULE, expanded independently by dateutil, gives that person's shifts."""
    alice, bob, carol, _ = team
    schedule = make_schedule(time_zone=zone)
    layer = make_layer(schedule, [alice, bob, carol], datetime(2026, 1, 2, 9, 0), 2, "days")
    rules = oncall.layer_rrules(layer, schedule)
    assert len(rules) == 3 and all("RRULE:FREQ=DAILY;INTERVAL=6" in r for r in rules)
    tz = ZoneInfo(zone)
    start, end = utc(2026, 1, 2), utc(2026, 12, 31)
    found = oncall.shifts(schedule, start, end)
    for position, (rule, user) in enumerate(zip(rules, [alice, bob, carol], strict=True)):
        naive = rule.replace(f";TZID={zone}", "")  # expand in wall-clock time, localise like the engine
        starts = [
            localize(w, tz) for w in rrulestr(naive).between(datetime(2026, 1, 1), datetime(2026, 12, 31), inc=True)
        ]
        mine = [s.start for s in found if s.user_ids == (user.id,)]
        assert [s for s in starts if s < found[-1].start] == [s for s in mine if s < found[-1].start], position


def test_later_layers_win_and_restricted_layers_leave_the_rest(team):
    alice, bob, carol, dave = team
    schedule = make_schedule(time_zone="Europe/Budapest")
    make_layer(schedule, [alice, bob], datetime(2026, 3, 2, 9), 1, "weeks", name="Base")
    weekday_days = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}
    make_layer(schedule, [carol], datetime(2026, 3, 2, 9), 1, "weeks", restrictions=[weekday_days], name="Office")
    make_layer(
        schedule, [dave], datetime(2026, 3, 2, 0), 1, "weeks", restrictions=[{"days": ["sat", "sun"]}], name="Weekend"
    )
    tz = ZoneInfo("Europe/Budapest")

    def who(y, m, d, h, mi=0):
        return names(oncall.who_is_on_call(schedule, localize(datetime(y, m, d, h, mi), tz)))

    assert who(2026, 3, 3, 10) == ["Carol"]  # Tuesday office hours
    assert who(2026, 3, 3, 17) == ["Alice"]  # after office hours: the base layer
    assert who(2026, 3, 3, 8, 59) == ["Alice"]
    assert who(2026, 3, 7, 10) == ["Dave"]  # Saturday
    assert who(2026, 3, 9, 8) == ["Alice"]  # Monday before 09:00: still Alice's week
    assert who(2026, 3, 9, 9) == ["Carol"]
    assert who(2026, 3, 9, 17) == ["Bob"]
    timeline = oncall.timeline(
        schedule, localize(datetime(2026, 3, 3), tz), localize(datetime(2026, 3, 4), tz), whole=False
    )
    assert [(local(schedule, s.start).hour, names(oncall.users_by_id(s.user_ids).values())) for s in timeline] == [
        (0, ["Alice"]),
        (9, ["Carol"]),
        (17, ["Alice"]),
    ]


def test_restriction_crossing_midnight(team):
    alice, *_ = team
    schedule = make_schedule(time_zone="UTC")
    make_layer(
        schedule,
        [alice],
        datetime(2026, 1, 1),
        1,
        "weeks",
        restrictions=[{"days": ["fri"], "start": "22:00", "end": "06:00"}],
    )
    assert names(oncall.who_is_on_call(schedule, utc(2026, 1, 2, 23))) == ["Alice"]  # Friday night
    assert names(oncall.who_is_on_call(schedule, utc(2026, 1, 3, 5, 59))) == ["Alice"]  # Saturday morning
    assert oncall.who_is_on_call(schedule, utc(2026, 1, 3, 6)) == []
    gaps = oncall.gaps(schedule, utc(2026, 1, 2), utc(2026, 1, 4))
    assert [(g.start, g.end) for g in gaps] == [
        (utc(2026, 1, 2), utc(2026, 1, 2, 22)),
        (utc(2026, 1, 3, 6), utc(2026, 1, 4)),
    ]


def test_overrides_beat_layers_and_the_later_created_wins(team):
    alice, bob, carol, dave = team
    schedule = make_schedule()
    make_layer(schedule, [alice], datetime(2026, 1, 1), 1, "weeks")
    make_override(schedule, bob, utc(2026, 1, 5, 0), utc(2026, 1, 6, 0))
    make_override(schedule, carol, utc(2026, 1, 5, 12), utc(2026, 1, 7, 0))
    # Created earlier than carol's but starting later: still beaten where they overlap.
    make_override(schedule, dave, utc(2026, 1, 4, 0), utc(2026, 1, 5, 6))
    assert names(oncall.who_is_on_call(schedule, utc(2026, 1, 4, 12))) == ["Dave"]
    assert names(oncall.who_is_on_call(schedule, utc(2026, 1, 5, 3))) == ["Dave"]  # dave created after bob
    assert names(oncall.who_is_on_call(schedule, utc(2026, 1, 5, 8))) == ["Bob"]
    assert names(oncall.who_is_on_call(schedule, utc(2026, 1, 5, 13))) == ["Carol"]
    assert names(oncall.who_is_on_call(schedule, utc(2026, 1, 7, 0))) == ["Alice"]
    found = oncall.shifts(schedule, utc(2026, 1, 4), utc(2026, 1, 8))
    assert [(s.start, s.source, names(oncall.users_by_id(s.user_ids).values())) for s in found] == [
        (utc(2026, 1, 4), "override", ["Dave"]),
        (utc(2026, 1, 5, 6), "override", ["Bob"]),
        (utc(2026, 1, 5, 12), "override", ["Carol"]),
        (utc(2026, 1, 7), "layer", ["Alice"]),
    ]


def test_gaps_before_the_rotation_and_with_no_layers(team):
    alice, *_ = team
    schedule = make_schedule()
    assert oncall.who_is_on_call(schedule, utc(2026, 1, 1)) == []
    assert [(g.start, g.end) for g in oncall.gaps(schedule, utc(2026, 1, 1), utc(2026, 1, 2))] == [
        (utc(2026, 1, 1), utc(2026, 1, 2))
    ]
    make_layer(schedule, [alice], datetime(2026, 1, 1, 12), 1, "days")
    assert [(g.start, g.end) for g in oncall.gaps(schedule, utc(2026, 1, 1), utc(2026, 1, 2))] == [
        (utc(2026, 1, 1), utc(2026, 1, 1, 12))
    ]


def test_changes_invalidate_the_compiled_cache(team):
    alice, bob, *_ = team
    schedule = make_schedule()
    layer = make_layer(schedule, [alice], datetime(2026, 1, 1), 1, "days")
    at = utc(2026, 2, 1)
    assert names(oncall.who_is_on_call(schedule, at)) == ["Alice"]
    revision = schedule.revision
    make_override(schedule, bob, at, at + timedelta(hours=1))
    assert schedule.revision != revision
    assert names(oncall.who_is_on_call(schedule, at)) == ["Bob"]
    layer.participants[0].user_id = bob.id
    db.session.commit()
    assert names(oncall.who_is_on_call(schedule, at + timedelta(hours=2))) == ["Bob"]
    db.session.delete(layer)
    db.session.commit()
    assert oncall.who_is_on_call(schedule, at + timedelta(hours=2)) == []


def test_point_queries_agree_with_the_timeline(team):
    """who_is_on_call (a direct lookup) and timeline (a sweep) are two paths; they must agree."""
    rng = random.Random(5)
    schedule = make_schedule(time_zone="America/New_York")
    make_layer(schedule, team, datetime(2026, 1, 3, 7, 30), 2, "days")
    make_layer(
        schedule,
        team[::-1],
        datetime(2026, 2, 1, 9),
        1,
        "weeks",
        restrictions=[
            {"days": ["mon", "wed", "fri"], "start": "09:00", "end": "18:00"},
            {"days": ["sun"], "start": "20:00", "end": "02:00"},
        ],
    )
    make_layer(schedule, team[:2], datetime(2026, 3, 1), 5, "hours", restrictions=[{"days": ["sat"]}])
    for _ in range(30):
        start = utc(2026, 1, 1) + timedelta(minutes=rng.randrange(0, 365 * 24 * 60))
        make_override(schedule, rng.choice(team), start, start + timedelta(minutes=rng.randrange(30, 4000)))
    start, end = utc(2026, 1, 1), utc(2026, 12, 31)
    timeline = oncall.timeline(schedule, start, end, whole=False)
    assert timeline[0].start == start and timeline[-1].end == end
    assert all(a.end == b.start for a, b in zip(timeline, timeline[1:], strict=False))
    for _ in range(400):
        at = start + timedelta(seconds=rng.randrange(0, int((end - start).total_seconds())))
        expected = next(s for s in timeline if s.start <= at < s.end)
        assert tuple(u.id for u in oncall.who_is_on_call(schedule, at)) == expected.user_ids, at
    for s in timeline:  # and exactly at every boundary
        assert tuple(u.id for u in oncall.who_is_on_call(schedule, s.start)) == s.user_ids


def test_shifts_keep_their_real_extent_whatever_the_window(team):
    alice, bob, *_ = team
    schedule = make_schedule()
    make_layer(schedule, [alice, bob], datetime(2026, 1, 5, 9), 1, "weeks")
    a = oncall.shifts(schedule, utc(2026, 1, 7), utc(2026, 1, 8))
    b = oncall.shifts(schedule, utc(2026, 1, 6), utc(2026, 1, 14))
    assert a[0] == b[0] and (a[0].start, a[0].end) == (utc(2026, 1, 5, 9), utc(2026, 1, 12, 9))
    assert a[0].uid(schedule.id, alice.id) == b[0].uid(schedule.id, alice.id)


def test_restrictions_parse_and_reject(team):
    assert schedules.parse_restrictions_text("mon-fri 09:00-17:00\nsat,sun 00:00-24:00") == [
        {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"},
        {"days": ["sat", "sun"], "start": "00:00", "end": "24:00"},
    ]
    assert schedules.parse_restrictions_text("fri-mon 22:00-06:00")[0]["days"] == ["mon", "fri", "sat", "sun"]
    for bad in ("someday 09:00-10:00", "mon 25:00-26:00", "mon 9-17"):
        with pytest.raises(ValueError):
            schedules.parse_restrictions_text(bad)
    with pytest.raises(ValueError, match="unknown day"):
        schedules.parse_restrictions([{"days": ["funday"], "start": "09:00", "end": "10:00"}])
