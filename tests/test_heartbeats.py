"""Heartbeats: the first ping arms; no ping within interval + grace opens one incident through the events
path (real RQ worker, moved clock); the next ping resolves it; a paused heartbeat never fires; a Redis
flush loses nothing (reconcile re-arms) and never doubles a miss."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from openduty import heartbeats, timers
from openduty.extensions import db, redis
from openduty.models import Heartbeat, Incident, Notification
from tests import factories, factories_escalation, factories_events

INTERVAL, GRACE = 60, 30
WINDOW = timedelta(seconds=INTERVAL + GRACE)


@pytest.fixture
def beat(app, clock):
    """A heartbeat (every 60 s + 30 s grace) on service Backups, whose policy pages Pat."""
    pat = factories.make_user(email="pat@example.com", name="Pat")
    factories.make_notification_rule(pat, factories.make_contact_method(pat, address="pat@example.com"))
    service = factories_escalation.make_service(factories_escalation.make_policy([(5, [pat])]), name="Backups")
    return factories_events.make_heartbeat(service, INTERVAL, GRACE, name="nightly backup")


def _state(integration) -> Heartbeat:
    db.session.expire_all()
    return db.session.get(Heartbeat, integration.id)


def _incidents() -> list[Incident]:
    db.session.expire_all()
    return list(db.session.scalars(select(Incident).order_by(Incident.id)))


def _due(integration):
    return timers.timer_due(heartbeats.TIMER_KIND, integration.id)


def test_the_first_ping_arms_it(client, clock, run_jobs, beat):
    assert _state(beat).state == "waiting" and _due(beat) is None
    clock.advance(hours=2)  # never pinged: nothing to miss
    run_jobs()
    assert _incidents() == []
    pinged = clock.now()
    response = client.get(f"/heartbeat/{beat.key}")
    assert response.status_code == 200
    assert response.json["status"] == "success" and response.json["state"] == "up"
    state = _state(beat)
    assert state.state == "up" and abs(state.last_ping_at - pinged) < timedelta(seconds=1)
    assert _due(beat) == state.due_at == state.last_ping_at + WINDOW
    assert response.json["due_at"] == state.due_at.isoformat()


def test_a_miss_opens_one_incident_after_interval_and_grace_and_the_next_ping_resolves_it(
    client, clock, run_jobs, beat
):
    client.post(f"/heartbeat/{beat.key}")
    last = _state(beat).last_ping_at
    deadline = last + timedelta(seconds=INTERVAL + GRACE)
    clock.set(deadline - timedelta(seconds=10))  # the clock ticks: leave room for a slow run_jobs
    run_jobs()
    assert _incidents() == []
    clock.set(deadline + timedelta(seconds=1))
    run_jobs()
    [incident] = _incidents()
    assert incident.dedup_key == "heartbeat" and incident.status == "triggered"
    assert incident.summary == f"Heartbeat nightly backup missed: no ping since {last:%Y-%m-%d %H:%M:%S} UTC"
    assert incident.service_id == beat.service_id and _state(beat).state == "missed"
    # Escalation as for any event: the policy's first level was paged.
    assert db.session.scalar(select(Notification).where(Notification.incident_id == incident.id)) is not None
    clock.advance(hours=3)
    run_jobs()
    assert len(_incidents()) == 1  # one per heartbeat, never a second while missed

    response = client.post(f"/heartbeat/{beat.key}", data="ok")
    assert response.status_code == 200 and response.json["state"] == "up"
    [incident] = _incidents()
    assert incident.status == "resolved" and _state(beat).state == "up"
    assert _due(beat) == _state(beat).due_at  # armed again


def test_pings_move_the_deadline_and_the_timer_catches_up(client, clock, run_jobs, beat):
    client.get(f"/heartbeat/{beat.key}")
    first_due = _due(beat)
    clock.advance(seconds=50)
    client.get(f"/heartbeat/{beat.key}")  # up already: the row moves, the timer stays (one UPDATE)
    assert _due(beat) == first_due and _state(beat).due_at > first_due
    clock.advance(seconds=45)  # past the first due time, within the second window
    run_jobs()
    assert _incidents() == [] and _due(beat) == _state(beat).due_at  # re-armed at the later time
    clock.advance(seconds=50)
    run_jobs()
    assert len(_incidents()) == 1


def test_a_paused_heartbeat_never_fires_and_resuming_waits_for_a_ping(client, auth, admin, clock, run_jobs, beat):
    auth.login("admin@example.com")
    client.get(f"/heartbeat/{beat.key}")
    path = f"/services/{beat.service_id}/integrations/{beat.id}/heartbeat"
    response = client.post(path, data={"csrf_token": auth.csrf_token(), "paused": "true"})
    assert response.status_code == 302
    assert _state(beat).paused and _due(beat) is None
    clock.advance(hours=1)
    assert client.get(f"/heartbeat/{beat.key}").json["state"] == "paused"  # recorded, not armed
    assert _due(beat) is None
    clock.advance(hours=1)
    run_jobs()
    assert _incidents() == []
    client.post(path, data={"csrf_token": auth.csrf_token(), "paused": "false"})
    assert _state(beat).state == "waiting" and not _state(beat).paused and _due(beat) is None
    clock.advance(hours=1)
    run_jobs()
    assert _incidents() == []
    client.get(f"/heartbeat/{beat.key}")
    clock.advance(seconds=INTERVAL + GRACE + 1)
    run_jobs()
    assert len(_incidents()) == 1


@pytest.mark.parametrize("pings", [1, 2])
def test_a_redis_flush_neither_misses_nor_doubles(client, clock, run_jobs, beat, pings):
    for n in range(pings):
        client.get(f"/heartbeat/{beat.key}")
        if n < pings - 1:
            clock.advance(seconds=50)
    deadline = _state(beat).due_at
    redis.get().flushdb()  # a restart of Redis without persistence
    assert timers.reconcile()["timers"] == 1
    assert timers.reconcile()["timers"] == 0  # armed once
    clock.set(deadline - timedelta(seconds=20))  # the clock ticks: leave room for a slow run_jobs
    run_jobs()
    assert _incidents() == []
    clock.set(deadline + timedelta(seconds=1))
    run_jobs()
    assert len(_incidents()) == 1
    redis.get().flushdb()
    timers.reconcile()
    clock.advance(hours=1)
    run_jobs()
    assert len(_incidents()) == 1


def test_unknown_keys_and_other_kinds_are_404(client, beat, integration):
    assert client.get("/heartbeat/" + "x" * 32).status_code == 404
    assert client.post("/heartbeat/" + "x" * 40).status_code == 404  # longer than any key
    assert client.get("/heartbeat/bad%00key").status_code == 404
    response = client.get(f"/heartbeat/{integration.key}")  # an events_v2 key
    assert response.status_code == 404 and "No heartbeat has this key" in response.json["errors"][0]
    assert _state(beat).last_ping_at is None


def test_pings_are_rate_limited_like_events(app_with, clock, beat):
    client = app_with(EVENTS_RATE_LIMIT=2).test_client()
    assert [client.get(f"/heartbeat/{beat.key}").status_code for _ in range(3)] == [200, 200, 429]


def test_the_service_page_shows_each_heartbeat(client, auth, admin, clock, beat, queries_while_rendering):
    auth.login("admin@example.com")
    service_id, key = beat.service_id, beat.key
    db.session.expunge_all()  # as in a fresh request: an empty session (the test shares the app context)
    page = client.get(f"/services/{service_id}").get_data(as_text=True)
    assert "waiting for the first ping" in page and "every 1 min + 30 s grace" in page
    assert f"/heartbeat/{key}" in page and 'name="paused" value="true"' in page
    client.get(f"/heartbeat/{key}")
    db.session.expunge_all()
    page = client.get(f"/services/{service_id}").get_data(as_text=True)
    assert "badge-hb-up" in page and "never" not in page
    assert queries_while_rendering == []


def test_settings_are_validated_on_the_page(client, auth, admin, beat):
    auth.login("admin@example.com")
    service_id = beat.service_id
    add = f"/services/{service_id}/integrations"
    cases = [
        ({"kind": "heartbeat"}, "needs an interval"),
        ({"kind": "heartbeat", "interval_seconds": "5"}, "at least 10"),
        ({"kind": "heartbeat", "interval_seconds": "60", "grace_seconds": "-1"}, "at least 0"),
        ({"kind": "heartbeat", "interval_seconds": "soon"}, "whole number"),
        ({"kind": "generic", "interval_seconds": "60"}, "Only heartbeat integrations take this."),
    ]
    for data, message in cases:
        response = client.post(add, data={"csrf_token": auth.csrf_token(), **data})
        assert response.status_code == 422 and message in response.get_data(as_text=True), data
    assert db.session.scalars(select(Heartbeat)).all() == [_state(beat)]
    edit = f"/services/{service_id}/integrations/{beat.id}/heartbeat"
    response = client.post(edit, data={"csrf_token": auth.csrf_token(), "interval_seconds": "9", "grace_seconds": ""})
    assert response.status_code == 422 and "at least 10" in response.get_data(as_text=True)
    assert _state(beat).interval_seconds == INTERVAL
    response = client.post(add, data={"csrf_token": auth.csrf_token(), "kind": "heartbeat", "interval_seconds": "300"})
    assert response.status_code == 302
    [added] = [h for h in db.session.scalars(select(Heartbeat)) if h.integration_id != beat.id]
    assert (added.interval_seconds, added.grace_seconds, added.state) == (300, 0, "waiting")


def test_the_api_creates_changes_and_shows_heartbeats(api, admin, clock, beat):
    api.as_user(admin)
    service_id = beat.service_id
    response = api.post(
        f"/api/v1/services/{service_id}/integrations",
        json={"kind": "heartbeat", "name": "cron", "interval_seconds": 600, "grace_seconds": 60},
    )
    assert response.status_code == 201
    assert response.json["heartbeat"] == {
        "interval_seconds": 600,
        "grace_seconds": 60,
        "paused": False,
        "state": "waiting",
        "last_ping_at": None,
        "due_at": None,
    }
    assert response.json["url"].endswith(f"/heartbeat/{response.json['key']}")
    bad = api.post(f"/api/v1/services/{service_id}/integrations", json={"kind": "heartbeat", "interval_seconds": 1})
    assert bad.status_code == 422 and "interval_seconds" in bad.json["error"]["fields"]
    path = f"/api/v1/services/{service_id}/integrations/{beat.id}/heartbeat"
    assert api.patch(path, json={"grace_seconds": -5}).status_code == 422
    changed = api.patch(path, json={"paused": True, "interval_seconds": 120})
    assert changed.status_code == 200
    assert changed.json["heartbeat"]["paused"] is True and changed.json["heartbeat"]["interval_seconds"] == 120
    other = factories_events.make_integration(db.session.get(type(beat.service), service_id))
    assert api.patch(f"/api/v1/services/{service_id}/integrations/{other.id}/heartbeat", json={}).status_code == 404
    listed = api.get(f"/api/v1/services/{service_id}/integrations").json["integrations"]
    assert [i["heartbeat"] is not None for i in listed] == [True, True, False]


def test_changing_the_window_of_a_running_heartbeat_moves_its_timer(api, admin, client, clock, run_jobs, beat):
    api.as_user(admin)
    client.get(f"/heartbeat/{beat.key}")
    path = f"/api/v1/services/{beat.service_id}/integrations/{beat.id}/heartbeat"
    assert api.patch(path, json={"interval_seconds": 10, "grace_seconds": 0}).status_code == 200
    assert _due(beat) == _state(beat).last_ping_at + timedelta(seconds=10)
    clock.advance(seconds=11)
    run_jobs()
    assert len(_incidents()) == 1
