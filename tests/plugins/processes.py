"""Fixtures for tests that run real Openduty processes (see tests/processes.py): `processes`
starts workers and run-all on the suite's database and the app's Redis, `own_redis` gives the
test (and those processes) a redis-server of its own to kill and restart."""

import pytest

from openduty.extensions import redis
from tests.factories_escalation import make_pager, make_policy, make_service
from tests.processes import AppProcesses, RedisServer, base_env, embedded_redis_servers


@pytest.fixture
def processes(app, _database_uri, tmp_path):
    """Start `flask openduty worker` / `run-all` subprocesses; all are stopped after the test."""
    env = base_env(
        OPENDUTY_INSTANCE=str(tmp_path / "instance"),
        DATABASE_URL=_database_uri,
        REDIS_URL=redis.url(app),
        SECRET_KEY=app.config["SECRET_KEY"],
        BASE_URL="http://localhost",
    )
    started = AppProcesses(tmp_path / "processes", env)
    yield started
    started.stop_all()
    # A killed run-all's embedded Redis daemonized itself out of every process group.
    for server in embedded_redis_servers(tmp_path / "instance"):
        server.terminate()
        server.wait(10)


@pytest.fixture
def own_redis(app, processes, tmp_path):
    """A redis-server of this test's own, used by the app and by the processes it starts."""
    server = RedisServer(tmp_path / "redis").start()
    previous = app.config["REDIS_URL"], app.extensions["openduty_redis"]
    app.config["REDIS_URL"] = server.url
    app.extensions["openduty_redis"] = None
    processes.env["REDIS_URL"] = server.url
    yield server
    processes.stop_all()
    redis.get(app).connection_pool.disconnect()
    app.config["REDIS_URL"], app.extensions["openduty_redis"] = previous
    server.stop()


@pytest.fixture
def hook(httpserver):
    """Alice's webhook receiver: the tests count what reaches /hook/alice."""
    httpserver.expect_request("/hook/alice", method="POST").respond_with_data("", status=204)
    return httpserver


@pytest.fixture
def paged_service(app, hook):
    """A service whose policy pages Alice by webhook at once (and escalates after 5 minutes)."""
    alice = make_pager("Alice", {"webhook": (hook.url_for("/hook/alice"), 0)})
    return make_service(make_policy([(5, [alice])]))
