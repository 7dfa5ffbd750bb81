"""One event's failure never touches another's: a failed batch is rolled back whole before any retry,
and text no database can store is refused at parse time, naming the field."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select

from openduty import event_batcher
from openduty.event_commit import apply_and_commit
from openduty.events import Event
from openduty.extensions import db
from openduty.models import Incident, LogEntry
from tests import factories_events

BAD_TEXTS = {"lone surrogate": "bad \ud800 text", "NUL": "bad \x00 text"}


def _stored():
    """Every incident with its timeline kinds, as committed."""
    db.session.rollback()
    db.session.expire_all()
    rows = db.session.scalars(select(Incident).order_by(Incident.id)).all()
    return {i.dedup_key: (i.number, i.alert_count, sorted(e.kind for e in i.log_entries)) for i in rows}


def _complete(stored, dedup_keys):
    """Each key opened exactly one numbered incident with one alert and one trigger entry."""
    for key in dedup_keys:
        number, alert_count, kinds = stored[key]
        assert number is not None, key
        assert alert_count == 1, key
        assert kinds.count("trigger") == 1 and "duplicate" not in kinds, (key, kinds)


def test_a_failed_apply_leaves_nothing_behind_for_the_next_transaction(app, integration):
    """The driver's encoding error is not a DBAPIError; the transaction must still be rolled back."""
    bad = BAD_TEXTS["lone surrogate"]  # (SQLite would store a NUL; PostgreSQL would refuse it too)
    key = integration.key
    good = [Event(key, "trigger", f"good-{n}", "fine", "critical", source="s") for n in range(3)]
    with pytest.raises(Exception):  # noqa: B017, PT011 (whatever the driver raises)
        apply_and_commit([*good, Event(key, "trigger", "zzz-bad", bad, "critical", source="s")])
    # The same session goes on: the half-done work must not ride along with the next commit.
    assert [o.result for o in apply_and_commit(good)] == ["opened"] * 3
    stored = _stored()
    assert set(stored) == {"good-0", "good-1", "good-2"}
    _complete(stored, stored)
    assert [stored[k][0] for k in sorted(stored)] == [1, 2, 3]


def test_a_bad_request_in_a_group_commit_batch_fails_alone(app, integration):
    """The Batcher directly: 12 concurrent requests in one batch, a third of them unstorable."""
    app.config["EVENTS_BATCH_LINGER_MS"] = 200  # everything submitted below shares one batch
    key = integration.key
    barrier = threading.Barrier(12)

    def send(n):
        bad = n % 3 == 0
        summary = "bad \ud800" if bad else f"fine {n}"
        with app.app_context():
            # The bad keys sort last: the good rows are written before the driver fails.
            batch = [
                Event(key, "trigger", f"{'z' if bad else 'r'}{n}-{i}", summary, "critical", source="s")
                for i in range(5)
            ]
            barrier.wait()
            try:
                return n, [o.result for o in event_batcher.submit(batch)]
            except Exception as exc:  # noqa: BLE001 (the bad requests' own failure)
                return n, type(exc).__name__

    with ThreadPoolExecutor(12) as pool:
        results = dict(pool.map(send, range(12)))
    good = [n for n in range(12) if n % 3]
    assert all(results[n] == ["opened"] * 5 for n in good), results
    assert all(isinstance(results[n], str) for n in range(12) if n % 3 == 0), results
    stored = _stored()
    assert set(stored) == {f"r{n}-{i}" for n in good for i in range(5)}
    _complete(stored, stored)
    assert sorted(n for n, _, _ in stored.values()) == list(range(1, 41))


@pytest.mark.parametrize("bad", list(BAD_TEXTS.values()), ids=list(BAD_TEXTS))
def test_12_clients_mixing_good_and_unstorable_events_over_http(app, live_server, integration, bad):
    """The reproduction: 60 normal triggers and 60 unstorable ones from 12 clients at once."""
    url, key = live_server.url + "/v2/enqueue", integration.key

    def body(n):
        summary = f"CPU high {n}" if n % 2 else bad
        return {
            "routing_key": key,
            "event_action": "trigger",
            "dedup_key": f"k{n}",
            "payload": {"summary": summary, "source": "web-1", "severity": "error"},
        }

    barrier = threading.Barrier(12)

    def client(c):
        with requests.Session() as http:
            barrier.wait()
            return [(n, http.post(url, json=body(n), timeout=30)) for n in range(c, 120, 12)]

    with ThreadPoolExecutor(12) as pool:
        answers = [a for chunk in pool.map(client, range(12)) for a in chunk]
    for n, response in answers:
        if n % 2:
            assert response.status_code == 202, response.text
        else:
            assert response.status_code == 400, response.text
            assert response.json()["errors"][0].startswith("'payload.summary' contains a ")
    stored = _stored()
    assert set(stored) == {f"k{n}" for n in range(1, 120, 2)}
    _complete(stored, stored)
    assert sorted(n for n, _, _ in stored.values()) == list(range(1, 61))
    # ... and each was escalated (here: the service has no policy, which the timeline says).
    assert db.session.scalar(select(func.count()).where(LogEntry.kind == "nobody_to_page")) == 60


def _v2(key, **payload):
    return {
        "routing_key": key,
        "event_action": "trigger",
        "payload": {"summary": "s", "source": "h", "severity": "error", **payload},
    }


def _alert(**fields):
    alert = {"status": "firing", "labels": {"alertname": "Disk"}, "annotations": {"summary": "Disk full"}}
    for name, value in fields.items():
        alert[name] = {**alert.get(name, {}), **value} if isinstance(value, dict) else value
    return {"version": "4", "status": "firing", "alerts": [alert]}


# (endpoint, body builder(key, bad text), the field the error must name)
UNSTORABLE = {
    "v2 summary": ("/v2/enqueue", lambda k, t: _v2(k, summary=t), "payload.summary"),
    "v2 source": ("/v2/enqueue", lambda k, t: _v2(k, source=t), "payload.source"),
    "v2 dedup_key": ("/v2/enqueue", lambda k, t: {**_v2(k), "dedup_key": t}, "dedup_key"),
    "v2 routing_key": ("/v2/enqueue", lambda k, t: _v2(k[:-1] + t[4]), "routing_key"),
    "v2 component": ("/v2/enqueue", lambda k, t: _v2(k, component=t), "payload.component"),
    "v2 custom_details value": (
        "/v2/enqueue",
        lambda k, t: _v2(k, custom_details={"disk": ["ok", {"note": t}]}),
        "payload.custom_details.disk[1].note",
    ),
    "v2 custom_details key": (
        "/v2/enqueue",
        lambda k, t: _v2(k, custom_details={"a": {t: 1}}),
        "payload.custom_details.a.bad ",
    ),
    "v2 link text": (
        "/v2/enqueue",
        lambda k, t: {**_v2(k), "links": [{"href": "https://x.example", "text": t}]},
        "links[0].text",
    ),
    "v2 client": ("/v2/enqueue", lambda k, t: {**_v2(k), "client": t}, "client"),
    "v1 description": (
        "/generic/2010-04-15/create_event.json",
        lambda k, t: {"service_key": k, "event_type": "trigger", "description": t},
        "description",
    ),
    "v1 details": (
        "/generic/2010-04-15/create_event.json",
        lambda k, t: {"service_key": k, "event_type": "trigger", "description": "d", "details": {"x": t}},
        "details.x",
    ),
    "legacy details": (
        "/api/create_event",
        lambda k, t: {"service_key": k, "event_type": "trigger", "description": "d", "details": t},
        "details",
    ),
    "alertmanager label": (
        "/integrations/alertmanager/{key}",
        lambda k, t: _alert(labels={"instance": t}),
        "alerts[0].labels.instance",
    ),
    "alertmanager annotation": (
        "/integrations/alertmanager/{key}",
        lambda k, t: _alert(annotations={"summary": t}),
        "alerts[0].annotations.summary",
    ),
    "alertmanager label name": (
        "/integrations/alertmanager/{key}",
        lambda k, t: _alert(labels={t: "x"}),
        "alerts[0].labels.bad ",
    ),
    "alertmanager receiver": (
        "/integrations/alertmanager/{key}",
        lambda k, t: {**_alert(), "receiver": t},
        "receiver",
    ),
    "generic summary": ("/integrations/generic/{key}", lambda k, t: {"summary": t}, "summary"),
    "generic details": (
        "/integrations/generic/{key}",
        lambda k, t: {"summary": "s", "details": {"list": [t]}},
        "details.list[0]",
    ),
}


@pytest.mark.parametrize("bad", list(BAD_TEXTS.values()), ids=list(BAD_TEXTS))
@pytest.mark.parametrize("case", list(UNSTORABLE), ids=list(UNSTORABLE))
def test_unstorable_text_anywhere_is_refused_with_400_naming_the_field(client, case, bad):
    path, build, field = UNSTORABLE[case]
    kind = {"alertmanager": "alertmanager", "generic/{": "generic"}
    kind = next((v for k, v in kind.items() if k in path), "events_v2")
    integration = factories_events.make_integration(kind=kind)
    response = client.post(path.format(key=integration.key), json=build(integration.key, bad))
    assert response.status_code == 400, response.json
    [error] = response.json["errors"]
    assert error.startswith(f"'{field}"), error
    assert ("NUL" if "\x00" in bad else "lone surrogate") in error
    assert _stored() == {}


def test_a_nul_in_a_legacy_form_field_is_refused(client, integration):
    form = {"service_key": integration.key, "event_type": "trigger", "description": "Disk\x00full"}
    response = client.post("/api/create_event", data=form)
    assert response.status_code == 400
    assert response.json["status"] == "failure"
    assert response.json["errors"][0].startswith("'description' contains a NUL")
    assert _stored() == {}


# --- Keys from input are bounded before they reach Redis or the database ---------------------------


def _v1(key):
    return {"service_key": key, "event_type": "trigger", "description": "d"}


@pytest.mark.parametrize(
    "path, body",
    [
        ("/v2/enqueue", lambda key: _v2(key)),
        ("/generic/2010-04-15/create_event.json", lambda key: _v1(key)),
        ("/api/create_event", lambda key: _v1(key)),
        ("/integrations/alertmanager/{key}", lambda key: _alert()),
        ("/integrations/generic/{key}", lambda key: {"summary": "s"}),
    ],
    ids=["v2", "v1", "legacy", "alertmanager", "generic"],
)
def test_over_long_integration_keys_are_refused_before_redis_or_the_database(app, client, path, body):
    """A 250 KB key once grew Redis by 250 KB per request; keys we issue are 32 characters."""
    from openduty.extensions import redis  # noqa: PLC0415 (only this test looks at Redis)

    key = "k" * (250 * 1024) if "{key}" not in path else "k" * 4000  # (URLs: under the line limit)
    before = redis.get().info("memory")["used_memory"]
    for _ in range(20):
        response = client.post(path.format(key=key), json=body(key))
        assert response.status_code == 400, response.json
        assert "too long" in response.json["errors"][0]
        assert "32" in response.json["errors"][0]
    assert redis.get().keys("openduty:events:*") == []
    assert redis.get().info("memory")["used_memory"] - before < 200_000
    assert _stored() == {}


def test_the_rate_limit_key_in_redis_is_a_digest_of_the_integration_key(app, client, integration):
    from openduty.extensions import redis  # noqa: PLC0415 (only this test looks at Redis)

    assert client.post("/v2/enqueue", json=_v2(integration.key)).status_code == 202
    [name] = redis.get().keys("openduty:events:rate:*")
    assert integration.key.encode() not in name
    assert len(name) < 80
