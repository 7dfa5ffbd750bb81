"""Idle cost (issue 11). The scheduler thread sleeps until the first job is due or a scheduled
job changes, yet releases a job scheduled meanwhile on time, never early; run-all checks its
embedded Redis with a signal, reading its pid file only when that fails."""

import os
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from openduty import cli, timers
from openduty.extensions import queue, redis
from openduty.key_watch import KeyWatch
from openduty.scheduler import SchedulerThread
from tests.processes import wait_for

PREFIX = "openduty-test-watch:"


# Each test has a Redis server of its own (own_redis): key tracking is server-wide, so a shared
# server's other databases (other test runs flushing theirs) would wake the watch too.


def test_key_watch_wakes_on_a_change_under_its_prefix_only(own_redis):
    conn = redis.get()
    watch = KeyWatch(conn, [PREFIX])
    try:
        assert watch.supported
        started = time.monotonic()
        assert watch.wait(0.2) is False  # nothing changed: it waited the whole time
        assert time.monotonic() - started >= 0.19
        conn.set("another-key", 1)
        assert watch.wait(0.2) is False
        threading.Timer(0.1, lambda: conn.zadd(PREFIX + "queue", {"job": 1})).start()
        started = time.monotonic()
        assert watch.wait(5) is True
        assert time.monotonic() - started < 2
        threading.Timer(0.1, conn.flushdb).start()  # a flush wakes it too: the jobs are gone
        assert watch.wait(5) is True
        assert watch.wait(0) is False  # every change was consumed
    finally:
        watch.close()
        conn.delete("another-key", PREFIX + "queue")


def _scheduler(app) -> tuple[SchedulerThread, list[float]]:
    thread = SchedulerThread(app)
    looks: list[float] = []
    look = thread.look

    def counted():
        looks.append(time.monotonic())
        return look()

    thread.look = counted
    thread.recovery_owed = False  # no reconcile: only the polls are counted here
    return thread, looks


def test_idle_scheduler_looks_about_once_a_second(app, own_redis):
    thread, looks = _scheduler(app)
    thread.start()
    try:
        wait_for(lambda: thread.scheduler.acquired_locks, "the scheduler locks")
        time.sleep(0.5)
        first = len(looks)
        time.sleep(2.5)
        assert len(looks) - first <= 5  # polling every 0.1 s would be 25
        assert len(looks) - first >= 2  # and its heartbeat still goes every second
    finally:
        thread.stop()


def test_a_job_scheduled_while_it_sleeps_is_released_on_time(app, own_redis):
    thread, looks = _scheduler(app)
    thread.start()
    try:
        wait_for(lambda: thread.scheduler.acquired_locks, "the scheduler locks")
        time.sleep(0.3)  # asleep until its next heartbeat, up to a second away
        due = datetime.now(UTC) + timedelta(milliseconds=400)
        timers.enqueue_escalation(42, 7, due)
        q = queue(timers.ESCALATION_QUEUE)
        job_id = timers.escalation_job_id(42, 7)
        wait_for(lambda: job_id in q.job_ids, "the job on its queue", interval=0.005)
        released = datetime.now(UTC)
        assert released >= due  # never early
        assert released - due < timedelta(milliseconds=150)  # and not held until the heartbeat
    finally:
        thread.stop()


def test_run_all_reads_the_embedded_redis_pid_only_when_the_server_is_gone(monkeypatch):
    full_checks = []
    monkeypatch.setattr(cli, "restart_dead_embedded_redis", lambda: full_checks.append(1) or [])
    server = SimpleNamespace(pid=os.getpid())  # alive
    monkeypatch.setattr(cli, "embedded_redis", lambda path: server)
    check = cli._EmbeddedRedisCheck("unused")
    for _ in range(5):
        check()
    assert len(full_checks) == 1  # the first call; then a signal 0 to a live pid each time
    gone = subprocess.Popen(["true"])
    gone.wait()
    check.pid = gone.pid  # the server died
    check()
    assert len(full_checks) == 2
    assert check.pid == os.getpid()  # the (re)started server's pid, read after the full check
