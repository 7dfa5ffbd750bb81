"""Durable timers (timers.set_timer): a row per (kind, object), fired once at its time by a real RQ
worker, never early, re-armed by reconcile after Redis lost its job, retried when its handler fails."""

from datetime import timedelta

import pytest

from openduty import jobs, timers
from openduty.extensions import db, redis

KIND = "test"


@pytest.fixture
def fired(monkeypatch):
    """The (ref_id, due) of every call of the test kind's handler."""
    calls = []
    monkeypatch.setitem(jobs.TIMER_HANDLERS, KIND, lambda ref_id, due: calls.append((ref_id, due)))
    return calls


def _arm(ref_id: int, due) -> None:
    timers.set_timer(KIND, ref_id, due)
    db.session.commit()


def test_a_timer_fires_once_at_its_time_and_not_before(app, clock, run_jobs, fired):
    due = clock.now() + timedelta(minutes=5)
    _arm(7, due)
    assert timers.timer_due(KIND, 7) == due
    run_jobs()
    assert fired == []
    clock.set(due - timedelta(seconds=20))  # the clock ticks: room for a slow run_jobs
    run_jobs()
    assert fired == []
    clock.set(due + timedelta(seconds=1))
    run_jobs()
    assert fired == [(7, due)]
    assert timers.timer_due(KIND, 7) is None
    clock.advance(hours=1)
    assert timers.reconcile()["timers"] == 0
    run_jobs()
    assert fired == [(7, due)]


def test_moving_a_timer_fires_it_only_at_the_new_time(app, clock, run_jobs, fired):
    first = clock.now() + timedelta(minutes=1)
    _arm(1, first)
    later = clock.now() + timedelta(minutes=10)
    _arm(1, later)
    clock.advance(minutes=2)
    run_jobs()
    assert fired == []
    clock.advance(minutes=9)
    run_jobs()
    assert fired == [(1, later)]


def test_a_cancelled_timer_never_fires(app, clock, run_jobs, fired):
    _arm(1, clock.now() + timedelta(minutes=1))
    timers.set_timer(KIND, 1, None)
    db.session.commit()
    clock.advance(minutes=2)
    run_jobs()
    assert fired == [] and timers.timer_due(KIND, 1) is None


def test_a_rolled_back_timer_is_not_armed(app, clock, run_jobs, fired):
    timers.set_timer(KIND, 1, clock.now() + timedelta(minutes=1))
    db.session.rollback()
    clock.advance(minutes=2)
    run_jobs()
    assert fired == [] and timers.reconcile()["timers"] == 0


def test_an_early_job_rearms_instead_of_firing(app, clock, run_jobs, fired):
    due = clock.now() + timedelta(minutes=5)
    _arm(3, due)
    assert jobs.fire_timer(KIND, 3, due.isoformat()) == "early"
    assert fired == [] and timers.timer_due(KIND, 3) == due
    clock.advance(minutes=6)
    run_jobs()
    assert fired == [(3, due)]


def test_reconcile_rearms_a_timer_redis_lost_once(app, clock, run_jobs, fired):
    due = clock.now() + timedelta(minutes=5)
    _arm(4, due)
    redis.get().flushdb()
    assert timers.reconcile()["timers"] == 1
    assert timers.reconcile()["timers"] == 0  # armed now: not twice
    clock.advance(minutes=6)
    run_jobs()
    assert fired == [(4, due)]


def test_a_failing_handler_keeps_its_timer_for_reconcile(app, clock, run_jobs, fired, monkeypatch):
    def broken(ref_id, due):
        timers.set_timer("other", ref_id, due)  # written, then rolled back with the failure
        raise RuntimeError("handler failed")

    monkeypatch.setitem(jobs.TIMER_HANDLERS, KIND, broken)
    due = clock.now() + timedelta(minutes=1)
    _arm(5, due)
    clock.advance(minutes=2)
    run_jobs()
    assert timers.timer_due(KIND, 5) == due and timers.timer_due("other", 5) is None
    monkeypatch.setitem(jobs.TIMER_HANDLERS, KIND, lambda ref_id, at: fired.append((ref_id, at)))
    assert timers.reconcile()["timers"] == 1
    run_jobs()
    assert fired == [(5, due)] and timers.timer_due(KIND, 5) is None


def test_a_handler_may_arm_its_timer_again(app, clock, run_jobs, monkeypatch):
    seen = []

    def every_minute(ref_id, due):
        seen.append(due)
        if len(seen) < 3:
            timers.set_timer(KIND, ref_id, due + timedelta(minutes=1))

    monkeypatch.setitem(jobs.TIMER_HANDLERS, KIND, every_minute)
    start = clock.now() + timedelta(minutes=1)
    _arm(9, start)
    for _ in range(4):
        clock.advance(minutes=1, seconds=1)
        run_jobs()
    assert seen == [start, start + timedelta(minutes=1), start + timedelta(minutes=2)]
