"""Ingest under database trouble: a 503 means "not stored" (and says so, with Retry-After, in each
endpoint's own shape); a 202 means stored. Down (nothing listens), locked (another transaction
holds the lock ingest needs) and frozen (a PostgreSQL cluster of the test's own, SIGSTOPped)."""

import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import select, text

from openduty import create_app
from openduty.extensions import db
from openduty.models import Incident, Integration, Service
from tests.conftest import _ci_requires, _test_config
from tests.processes import OwnPostgres, ServedApp, free_port

KEY = "k" * 32

ENDPOINTS = {
    "v2": ("/v2/enqueue", lambda k, d: {"routing_key": k, "event_action": "trigger", "dedup_key": d,
                                         "payload": {"summary": "s", "source": "h", "severity": "error"}}),
    "v1": ("/generic/2010-04-15/create_event.json",
           lambda k, d: {"service_key": k, "event_type": "trigger", "incident_key": d, "description": "s"}),
    "legacy": ("/api/create_event",
               lambda k, d: {"service_key": k, "event_type": "trigger", "incident_key": d, "description": "s"}),
    "alertmanager": ("/integrations/alertmanager/{key}",
                     lambda k, d: {"version": "4", "alerts": [{"status": "firing", "fingerprint": d,
                                                                "labels": {"alertname": "Disk"}}]}),
    "generic": ("/integrations/generic/{key}", lambda k, d: {"summary": "s", "dedup_key": d}),
}  # fmt: skip


def _post(http, base, endpoint, key, dedup_key, timeout=60):
    path, body = ENDPOINTS[endpoint]
    return http.post(base + path.format(key=key), json=body(key, dedup_key), timeout=timeout)


def _assert_not_stored_answer(response):
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["message"] == "Service temporarily unavailable"
    assert body["errors"][0].startswith("The event was not stored")


@pytest.fixture
def serve(_redis_url):
    """`serve(database_uri, **config)`: an app of the test's own (its own database URL) served over HTTP."""
    served = []

    def start(database_uri, redis_url=None, **config):
        app = create_app(_test_config(database_uri, redis_url or _redis_url))
        app.config.update(config)
        served.append(ServedApp(app))
        return served[-1]

    yield start
    for s in served:
        s.close()
        with s.app.app_context():
            db.engine.dispose()


# --- Down -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("group_commit", [True, False], ids=["group-commit", "inline"])
@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_database_down_answers_503_with_retry_after_in_each_endpoints_shape(serve, endpoint, database, group_commit):
    if database == "postgresql":  # nothing listens on that port
        uri = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/openduty?connect_timeout=2"
    else:  # a file that cannot be opened
        uri = "sqlite:////nonexistent-openduty-dir/openduty.db"
    live = serve(uri, EVENTS_GROUP_COMMIT=group_commit)
    with requests.Session() as http:
        response = _post(http, live.url, endpoint, KEY, "d1")
    _assert_not_stored_answer(response)


# --- Locked: a transaction of someone else's holds what ingest needs --------------------------------


def _lock_holder(app):
    """A raw connection that holds the lock ingest needs until released (SQLite: the write lock;
    PostgreSQL: the incidents table)."""
    with app.app_context():
        url = db.engine.url
    if url.get_backend_name() == "sqlite":
        import sqlite3  # noqa: PLC0415 (only this helper needs the raw driver)

        connection = sqlite3.connect(url.database, isolation_level=None, check_same_thread=False)
        connection.execute("BEGIN IMMEDIATE")
    else:
        import psycopg  # noqa: PLC0415 (only this helper needs the raw driver)

        connection = psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
        connection.execute("LOCK TABLE incidents IN ACCESS EXCLUSIVE MODE")
    return connection


def _stored_keys(app):
    with app.app_context():
        db.session.remove()
        keys = set(db.session.scalars(select(Incident.dedup_key)))
        db.session.remove()
        return keys


def _race(app, url, key, seconds, trouble, senders=4, gap=0.05):
    """Senders post unique triggers for `seconds` while `trouble()` runs; then one last event (the
    batcher is first-in first-out, so its 202 means everything sent before was settled)."""
    statuses = {}
    stop = threading.Event()

    def send(n):
        with requests.Session() as http:
            i = 0
            while not stop.is_set():
                dedup_key = f"s{n}-{i}"
                statuses[dedup_key] = _post(http, url, "v2", key, dedup_key).status_code
                i += 1
                time.sleep(gap)

    with ThreadPoolExecutor(senders) as pool:
        futures = [pool.submit(send, n) for n in range(senders)]
        trouble()
        time.sleep(seconds)
        stop.set()
        for f in futures:
            f.result()
    with requests.Session() as http:
        assert _post(http, url, "v2", key, "last").status_code == 202
    return statuses


def _check_invariant(app, statuses):
    stored = _stored_keys(app) - {"last"}
    accepted = {k for k, s in statuses.items() if s == 202}
    refused = {k for k, s in statuses.items() if s == 503}
    assert set(statuses.values()) <= {202, 503}, statuses
    assert accepted == stored, (sorted(accepted - stored), sorted(stored - accepted))
    assert not refused & stored
    return accepted, refused


def test_a_held_lock_gives_503_only_for_events_never_stored(app, live_server, integration):
    app.config["EVENTS_COMMIT_TIMEOUT_SECONDS"] = 0.5
    key = integration.key
    holder = _lock_holder(app)

    def trouble():
        # Held for 2 s from a moment when senders are already waiting, then released.
        def release():
            time.sleep(2)
            holder.rollback()
            holder.close()

        threading.Thread(target=release, daemon=True).start()

    statuses = _race(app, live_server.url, key, 3.5, trouble)
    accepted, refused = _check_invariant(app, statuses)
    assert refused, "the lock was held for 2 s, longer than the 0.5 s a request waits"
    assert accepted, "after the lock was released, events were stored again"


# --- Frozen and stopped: a PostgreSQL cluster of the test's own --------------------------------------


@pytest.fixture(scope="module")
def own_postgres():
    if not (shutil.which("initdb") and shutil.which("pg_ctl")):
        _ci_requires("PostgreSQL's initdb and pg_ctl")
    cluster = OwnPostgres()
    yield cluster
    cluster.remove()


@pytest.fixture
def on_own_postgres(own_postgres, serve):
    live = serve(own_postgres.url, EVENTS_COMMIT_TIMEOUT_SECONDS=0.5)
    with live.app.app_context():
        db.drop_all()
        db.create_all()
        service = Service(name="Web")
        db.session.add_all([service, Integration(service=service, kind="events_v2", name="v2", key=KEY)])
        db.session.commit()
        db.session.remove()
    return live


def test_frozen_postgresql_gives_503_only_for_events_never_stored(own_postgres, on_own_postgres):
    live = on_own_postgres

    def trouble():
        def freeze_twice():
            for _ in range(2):
                time.sleep(0.7)
                own_postgres.signal(signal.SIGSTOP)
                time.sleep(1.5)
                own_postgres.signal(signal.SIGCONT)

        threading.Thread(target=freeze_twice, daemon=True).start()

    statuses = _race(live.app, live.url, KEY, 5, trouble)
    accepted, refused = _check_invariant(live.app, statuses)
    assert refused, "frozen for 1.5 s, longer than the 0.5 s a request waits"
    assert accepted


def test_stopped_and_restarted_postgresql(own_postgres, on_own_postgres):
    live = on_own_postgres
    with requests.Session() as http:
        assert _post(http, live.url, "v2", KEY, "before").status_code == 202
        own_postgres.stop()
        try:
            for endpoint in ENDPOINTS:
                _assert_not_stored_answer(_post(http, live.url, endpoint, KEY, "during"))
        finally:
            own_postgres.start()
        assert _post(http, live.url, "v2", KEY, "after").status_code == 202
    assert _stored_keys(live.app) == {"before", "after"}
    with live.app.app_context():
        assert db.session.execute(text("SELECT count(*) FROM incidents")).scalar() == 2


# --- A COMMIT whose answer is lost -------------------------------------------------------------------


@pytest.fixture
def commits_lose_connection(app):
    """Kill the database session of the next `count[0]` COMMITs just before they are sent, as a
    network cut or a server crash would (PostgreSQL: pg_terminate_backend from another connection)."""
    with app.app_context():
        engine = db.engine
    if engine.dialect.name != "postgresql":
        pytest.skip("needs PostgreSQL (a server whose connection can be cut)")
    remaining = [0]

    def cut(connection):
        if remaining[0] <= 0:
            return
        remaining[0] -= 1
        pid = connection.connection.dbapi_connection.info.backend_pid
        with engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            for _ in range(200):  # until the session is really gone
                if not other.execute(text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}).first():
                    break
                time.sleep(0.01)

    from sqlalchemy import event  # noqa: PLC0415 (only this fixture hooks the engine)

    event.listen(engine, "commit", cut)
    yield remaining
    event.remove(engine, "commit", cut)


def test_a_lost_commit_is_retried_and_then_stored_once(client, integration, commits_lose_connection):
    commits_lose_connection[0] = 1
    response = client.post("/v2/enqueue", json=ENDPOINTS["v2"][1](integration.key, "cut"))
    assert response.status_code == 202, response.json
    db.session.remove()
    [incident] = db.session.scalars(select(Incident)).all()
    assert (incident.dedup_key, incident.alert_count, incident.number) == ("cut", 1, 1)


def test_a_commit_lost_every_time_answers_outcome_unknown_not_503(client, integration, commits_lose_connection):
    commits_lose_connection[0] = 10
    response = client.post("/v2/enqueue", json=ENDPOINTS["v2"][1](integration.key, "cut"))
    assert response.status_code == 500, response.json
    assert response.json["message"] == "Event outcome unknown"
    assert "may or may not be stored" in response.json["errors"][0]


# --- Redis trouble never blocks ingestion (the rate limit is skipped) --------------------------------


@pytest.fixture
def garbage_redis():
    """A TCP server that answers every command with a reply no Redis client can parse."""
    import socket  # noqa: PLC0415 (only this fixture serves raw TCP)

    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def answer(connection):
        with connection:
            while not stop.is_set() and connection.recv(65536):
                connection.sendall(b":notanumber\r\n" * 4)

    def accept():
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    stop.set()
    listener.close()


@pytest.mark.parametrize("redis_state", ["down", "garbage"])
def test_redis_down_or_broken_never_blocks_ingestion(app, serve, _database_uri, garbage_redis, redis_state):
    redis_url = f"redis://127.0.0.1:{free_port()}/0" if redis_state == "down" else garbage_redis
    live = serve(_database_uri, redis_url)
    with live.app.app_context():
        service = Service(name="Web")
        db.session.add_all([service, Integration(service=service, kind="events_v2", name="v2", key=KEY)])
        db.session.commit()
    with requests.Session() as http:
        for endpoint in ENDPOINTS:
            response = _post(http, live.url, endpoint, KEY, f"r-{endpoint}")
            assert response.status_code < 300, response.text
    assert _stored_keys(live.app) == {f"r-{e}" for e in ENDPOINTS}
