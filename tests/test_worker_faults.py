"""Faults around the worker process, with real processes: `flask --app app openduty worker`
subprocesses against a redis-server of the test's own, killed with SIGKILL. Each test proves the
owed page reaches a real webhook receiver within 10 s of the fault ending (the promise in
docs/reliability.md), and that it arrives once.
"""

import signal
import time

import pytest

from openduty import timers
from openduty.extensions import redis
from openduty.worker import make_worker
from tests.factories_escalation import make_overdue, make_pager, make_policy, make_service, open_incident
from tests.processes import hits, wait_for

# Seconds from the end of a fault to the page reaching its receiver (the promise).
RECOVERY = 10


def _service(hook):
    alice = make_pager("Alice", {"webhook": (hook.url_for("/hook/alice"), 0)})
    return make_service(make_policy([(5, [alice])]))


def _scheduler_running(conn) -> bool:
    return bool(conn.exists("rq:scheduler-lock:high"))


def test_killing_the_worker_main_pid_alone_loses_no_page(app, hook, own_redis, processes):
    """kill -9 of the worker's main PID only (what the OOM killer does): nothing it leaves behind
    may swallow the next job, and the restarted worker sends the page at once."""
    service = _service(hook)
    conn = redis.get()
    first = processes.worker("w1", conn)
    wait_for(lambda: _scheduler_running(conn), "the scheduler to start")
    time.sleep(0.5)  # the worker is now blocked waiting for jobs
    processes.kill(first)

    open_incident(service)  # accepted while no worker runs: its job is pushed onto the queue
    restarted = time.monotonic()
    processes.worker("w2", conn)  # what a supervisor does
    wait_for(lambda: hits(hook).get("/hook/alice") == 1, "the page after the restart", timeout=RECOVERY)
    print(f"page {time.monotonic() - restarted:.1f} s after the worker restarted")
    time.sleep(1)
    assert hits(hook) == {"/hook/alice": 1}


def test_a_worker_restarted_with_the_name_of_a_killed_one_starts_at_once(app, hook, own_redis, processes):
    """RQ refused the name for ~140 s ("There exists an active worker named 'w1' already")."""
    service = _service(hook)
    conn = redis.get()
    processes.kill(processes.worker("w1", conn))
    open_incident(service)
    restarted = time.monotonic()
    processes.worker("w1", conn)
    wait_for(lambda: hits(hook).get("/hook/alice") == 1, "the page after the restart", timeout=RECOVERY)
    print(f"page {time.monotonic() - restarted:.1f} s after the worker restarted")
    assert "active worker named" not in processes.log("w1")


@pytest.mark.parametrize("persist", [False, True], ids=["empty", "persisted"])
def test_redis_killed_and_restarted_under_a_running_worker(app, hook, own_redis, processes, persist):
    """Redis dies while an incident is accepted (its job cannot be armed) and while an escalation
    falls due; once Redis is back, empty or with its data, the worker pages within seconds."""
    own_redis.persist = persist
    own_redis.restart()
    service = _service(hook)
    al, bob = (make_pager(name, {"webhook": (hook.url_for(f"/hook/{name}"), 0)}) for name in ("al", "bob"))
    for name in ("al", "bob"):
        hook.expect_request(f"/hook/{name}", method="POST").respond_with_data("", status=204)
    escalating = open_incident(make_service(make_policy([(1, [al]), (1, [bob])])))
    conn = redis.get()
    processes.worker("w1", conn)
    wait_for(lambda: hits(hook).get("/hook/al") == 1, "level 1 of the escalating incident")

    own_redis.kill()
    open_incident(service)  # committed, but its timer cannot be armed: only the database knows
    make_overdue(escalating.id)  # level 2 falls due while Redis is down
    time.sleep(2)
    own_redis.start()
    back = time.monotonic()
    wait_for(lambda: hits(hook).get("/hook/alice") == 1 and hits(hook).get("/hook/bob") == 1,
             "the pages after Redis came back", timeout=RECOVERY)  # fmt: skip
    print(f"pages {time.monotonic() - back:.1f} s after Redis came back ({'persisted' if persist else 'empty'})")
    time.sleep(1)
    assert hits(hook) == {"/hook/al": 1, "/hook/alice": 1, "/hook/bob": 1}


def test_a_running_worker_beats_every_second_and_registers_again_after_a_flush(app, own_redis, processes):
    conn = redis.get()
    worker = processes.worker("w1", conn)
    conn.flushdb()
    wait_for(lambda: _pid(conn, "w1") == worker.pid, "the worker to register again", timeout=3)
    assert conn.sismember("rq:workers", "rq:worker:w1")
    beats = set()
    wait_for(lambda: beats.add(conn.hget("rq:worker:w1", "last_heartbeat")) or len(beats) >= 3, "heartbeats", 5)


def _pid(conn, name: str) -> int | None:
    pid = conn.hget(f"rq:worker:{name}", "pid")
    return int(pid) if pid else None


def test_a_stop_asked_for_while_the_periodic_jobs_are_armed_ends_the_worker(app, monkeypatch):
    """A SIGTERM lands wherever the main thread is; during the maintenance that arms the periodic
    jobs it was taken for a failure to arm them, and the worker worked on until killed (what
    run-all's forked worker met when run-all was killed just as it started)."""
    worker = make_worker(app)
    monkeypatch.setattr(timers, "ensure_periodic", lambda: worker.request_stop(signal.SIGTERM, None))
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    started = time.monotonic()
    try:
        worker.work(burst=False, with_scheduler=False)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert time.monotonic() - started < 10
