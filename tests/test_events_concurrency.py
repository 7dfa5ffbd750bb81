"""Races against the real database: never two open incidents for one (service, dedup key)."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select

from openduty.event_commit import apply_and_commit
from openduty.events import Event
from openduty.extensions import db
from openduty.models import Incident, LogEntry
from tests import factories_events


def _trigger_body(key, dedup_key):
    return {
        "routing_key": key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {"summary": "Storm", "source": "probe", "severity": "error"},
    }


def _open_incidents():
    db.session.rollback()
    db.session.expire_all()
    return db.session.scalars(select(Incident).where(Incident.status != "resolved")).all()


@pytest.mark.parametrize("group_commit", [True, False], ids=["group-commit", "one-transaction-per-request"])
def test_50_concurrent_http_triggers_fold_into_one_incident(app, live_server, integration, group_commit):
    app.config["EVENTS_GROUP_COMMIT"] = group_commit
    barrier = threading.Barrier(50)
    body = _trigger_body(integration.key, "one")

    def send(_):
        with requests.Session() as http:
            barrier.wait()
            return http.post(live_server.url + "/v2/enqueue", json=body, timeout=30)

    with ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(send, range(50)))
    assert [r.status_code for r in responses] == [202] * 50
    [incident] = _open_incidents()
    assert incident.alert_count == 50
    assert incident.number == 1
    kinds = db.session.scalars(select(LogEntry.kind).where(LogEntry.incident_id == incident.id)).all()
    assert kinds.count("trigger") == 1
    assert kinds.count("duplicate") == 49


def test_50_concurrent_transactions_race_on_the_unique_index(app, integration):
    """Each thread has its own session and transaction: the upsert, not a batcher, must hold."""
    key = integration.key
    barrier = threading.Barrier(50)

    def trigger(_):
        with app.app_context():
            try:
                barrier.wait()
                return apply_and_commit([Event(key, "trigger", "race", "Race", "critical", source="probe")])[0].result
            finally:
                db.session.remove()

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(trigger, range(50)))
    assert results.count("opened") == 1
    assert results.count("deduplicated") == 49
    [incident] = _open_incidents()
    assert incident.alert_count == 50


def test_concurrent_keys_get_distinct_gap_free_numbers(app, integration):
    keys = [integration.key, factories_events.make_integration(factories_events.make_service(name="Other")).key]
    barrier = threading.Barrier(20)

    def trigger(n):
        with app.app_context():
            try:
                barrier.wait()
                key = keys[n % 2]
                events = [Event(key, "trigger", f"k{n}-{i}", "x", "critical", source="probe") for i in range(3)]
                return apply_and_commit(events)
            finally:
                db.session.remove()

    with ThreadPoolExecutor(20) as pool:
        list(pool.map(trigger, range(20)))
    db.session.expire_all()
    numbers = sorted(db.session.scalars(select(Incident.number)).all())
    assert numbers == list(range(1, 61))
    assert db.session.scalar(select(func.count()).select_from(Incident)) == 60


def test_a_batch_mixing_keys_and_actions_applies_in_order(app, integration):
    key = integration.key
    events = [
        Event(key, "trigger", "b", "B", "critical", source="s"),
        Event(key, "trigger", "a", "A", "critical", source="s"),
        Event(key, "trigger", "b", "B again", "critical", source="s"),
        Event(key, "resolve", "b", via="events_v2"),
        Event(key, "trigger", "b", "B reopened", "critical", source="s"),
        Event(key, "acknowledge", "a"),
        Event("unknown", "trigger", "c", "C", "critical", source="s"),
    ]
    outcomes = apply_and_commit(events)
    assert [o.result for o in outcomes] == [
        "opened",
        "opened",
        "deduplicated",
        "resolved",
        "opened",
        "acknowledged",
        "unknown_key",
    ]
    db.session.expire_all()
    rows = db.session.execute(select(Incident.dedup_key, Incident.status, Incident.alert_count)).all()
    assert sorted(rows) == [("a", "acknowledged", 1), ("b", "resolved", 2), ("b", "triggered", 1)]


def test_upsert_keeps_working_once_statements_are_prepared(app, integration):
    """psycopg 3 prepares a statement after 5 runs and PostgreSQL may then plan it generically;
    the index predicate is literal SQL so ON CONFLICT still finds the partial index."""
    for n in range(30):
        events = [Event(integration.key, "trigger", key, "x", "critical", source="s") for key in ("same", f"new-{n}")]
        assert [o.result for o in apply_and_commit(events)] == ["opened" if n == 0 else "deduplicated", "opened"]
    [same] = [i for i in _open_incidents() if i.dedup_key == "same"]
    assert same.alert_count == 30
