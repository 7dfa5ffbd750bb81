"""Redis with Sentinel: the settings are checked at start, and the app's one Redis connection (the
web app's, the workers' and the scheduler's) follows a failover by itself."""

import pytest
from rq import Queue, SimpleWorker

from config import TestConfig
from openduty import create_app
from openduty.extensions import db, redis, sentinel_addresses
from openduty.scheduler import SchedulerThread
from tests.conftest import _ci_requires
from tests.processes import AppProcesses, base_env, children, embedded_redis_servers, free_port
from tests.redis_sentinel import MASTER_NAME, RedisWithSentinels, sentinel_binary


def _app(tmp_path, **settings):
    settings.setdefault("SQLALCHEMY_DATABASE_URI", f"sqlite:///{tmp_path / 's.db'}")
    return create_app(type("SentinelConfig", (TestConfig,), settings))


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"REDIS_SENTINELS": "10.0.0.1:26379"}, "REDIS_SENTINEL_MASTER must be set with REDIS_SENTINELS"),
        ({"REDIS_SENTINEL_MASTER": "openduty"}, "REDIS_SENTINELS is empty"),
        ({"REDIS_SENTINELS": "10.0.0.1", "REDIS_SENTINEL_MASTER": "m"}, "'10.0.0.1' is not host:port"),
        ({"REDIS_SENTINELS": "a:1,b:port", "REDIS_SENTINEL_MASTER": "m"}, "'b:port' is not host:port"),
        ({"REDIS_SENTINELS": "a:70000", "REDIS_SENTINEL_MASTER": "m"}, "'a:70000' is not host:port"),
        ({"REDIS_SENTINELS": "a:1", "REDIS_SENTINEL_MASTER": "m", "REDIS_URL": "redis://x"}, "not both"),
    ],
)
def test_sentinel_settings_that_cannot_work_stop_the_app_at_start(tmp_path, settings, message):
    with pytest.raises(RuntimeError, match=message):
        _app(tmp_path, **settings)


def test_sentinel_addresses_take_hosts_ipv6_and_spaces():
    given = " 10.0.0.1:26379, [::1]:26380 ,redis-3.internal:26381,"
    assert sentinel_addresses(given) == [("10.0.0.1", 26379), ("::1", 26380), ("redis-3.internal", 26381)]


@pytest.fixture
def sentinels(tmp_path):
    if not sentinel_binary():
        _ci_requires("Debian's redis-sentinel")
    group = RedisWithSentinels(tmp_path / "redis").start()
    yield group
    group.stop()


def _double(n: int) -> int:
    return 2 * n


def test_the_app_follows_a_failover_of_the_redis_primary(tmp_path, sentinels):
    app = _app(tmp_path, **sentinels.settings())
    with app.app_context():
        conn = redis.get()
        assert conn.connection_pool.service_name == MASTER_NAME
        conn.set("before", "1")
        conn.wait(1, 5000)  # replicated, so the failover keeps it
        scheduler = SchedulerThread(app)  # the worker's scheduler thread: on the same connection
        assert scheduler.scheduler.connection is conn
        old = sentinels.kill_primary()
        sentinels.wait_failover(old)
        # The same client object, with no reconfiguration: it asks the sentinels again.
        assert conn.get("before") == b"1"
        assert sentinels.master_port() != old
        job = Queue("default", connection=conn).enqueue(_double, 21)
        SimpleWorker([Queue("default", connection=conn)], connection=conn).work(burst=True)
        assert job.return_value(refresh=True) == 42
        scheduler.scheduler.acquire_locks()
        assert scheduler.scheduler.acquired_locks
        # The killed primary comes back as a replica of the new master.
        sentinels.restart(old)
        assert conn.set("after", "1")
        conn.connection_pool.disconnect()


def test_run_all_on_sentinels_hands_them_to_its_worker_and_starts_no_embedded_redis(tmp_path, sentinels):
    database = f"sqlite:///{tmp_path / 'o.db'}"
    app = _app(tmp_path, SQLALCHEMY_DATABASE_URI=database)
    with app.app_context():
        db.create_all()
        db.engine.dispose()
    instance = tmp_path / "instance"
    env = base_env(OPENDUTY_INSTANCE=str(instance), DATABASE_URL=database, SECRET_KEY="s", **sentinels.settings())
    processes = AppProcesses(tmp_path / "processes", env)
    try:
        run_all = processes.run_all(free_port())  # healthy: its Redis (the master, via the sentinels) answers
        assert embedded_redis_servers(instance) == []
        (worker,) = children(run_all, "worker")
        handed = worker.environ()
        assert "REDIS_URL" not in handed
        assert handed["REDIS_SENTINELS"] == sentinels.settings()["REDIS_SENTINELS"]
        processes.kill_group(run_all)  # its worker dies with it
    finally:
        processes.stop_all()
