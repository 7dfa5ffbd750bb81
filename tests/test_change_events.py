"""PagerDuty change events: the contract of POST /v2/change/enqueue, the service page, "Recent changes"
on incidents opened within the hour after a change (and not later), the API, and the retention purge."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from openduty import jobs
from openduty.extensions import db
from openduty.models import ChangeEvent
from tests import factories_events

ACCEPTED = {"status": "success", "message": "Change event processed"}


def change(key: str, summary: str = "Deployed web v42", **payload) -> dict:
    return {"routing_key": key, "payload": {"summary": summary, **payload}}


def _changes() -> list[ChangeEvent]:
    db.session.expire_all()
    return list(db.session.scalars(select(ChangeEvent).order_by(ChangeEvent.id)))


def test_a_change_event_is_stored_and_answered_like_pagerduty(client, clock, integration):
    body = change(
        integration.key,
        source="ci-runner-3",
        timestamp="2026-03-02T08:42:58.315+0000",
        custom_details={"build": 42, "commit": "abc123"},
    )
    body["links"] = [{"href": "https://ci.example.com/builds/42", "text": "Build 42"}, {"href": "https://x.example"}]
    response = client.post("/v2/change/enqueue", json=body)
    assert response.status_code == 202 and response.json == ACCEPTED
    [stored] = _changes()
    assert stored.service_id == integration.service_id and stored.summary == "Deployed web v42"
    assert stored.source == "ci-runner-3"
    assert stored.timestamp == datetime(2026, 3, 2, 8, 42, 58, 315000, tzinfo=UTC)
    assert stored.custom_details == {"build": 42, "commit": "abc123"}
    assert stored.links == [
        {"href": "https://ci.example.com/builds/42", "text": "Build 42"},
        {"href": "https://x.example", "text": "https://x.example"},
    ]
    # Only summary is required; without a timestamp the change happened when it arrived.
    assert client.post("/v2/change/enqueue", json=change(integration.key)).status_code == 202
    assert abs(_changes()[-1].timestamp - clock.now()) < timedelta(seconds=1)


@pytest.mark.parametrize(
    "body, problem",
    [
        ({"payload": {"summary": "x"}}, "'routing_key' is missing"),
        ({"routing_key": "{key}"}, "'payload' is missing"),
        ({"routing_key": "{key}", "payload": {"summary": " "}}, "'payload.summary' is missing"),
        ({"routing_key": "{key}", "payload": {"summary": "x" * 1025}}, "'payload.summary' is too long"),
        ({"routing_key": "{key}", "payload": {"summary": "x", "timestamp": "yesterday"}}, "not an ISO 8601"),
        ({"routing_key": "{key}", "payload": {"summary": "x", "timestamp": "0001-01-01T00:00:00Z"}}, "between"),
        ({"routing_key": "{key}", "payload": {"summary": "x", "source": 7}}, "'payload.source' must be a string"),
        ({"routing_key": "{key}", "payload": {"summary": "x"}, "links": {"href": "y"}}, "'links' must be a list"),
        ({"routing_key": "{key}", "payload": {"summary": "x"}, "links": [{"text": "y"}]}, "'links[0].href'"),
        ({"routing_key": "{key}", "payload": {"summary": "x"}, "links": [{"href": "y", "text": 1}]}, "links[0].text"),
        ({"routing_key": "k" * 33, "payload": {"summary": "x"}}, "'routing_key' is too long"),
        ({"routing_key": "w" * 32, "payload": {"summary": "x"}}, "no Events API v2 integration has this key"),
        ([], "must be a JSON object"),
    ],
)
def test_invalid_change_events_are_refused_with_a_reason(client, integration, body, problem):
    if isinstance(body, dict) and body.get("routing_key") == "{key}":
        body = {**body, "routing_key": integration.key}
    response = client.post("/v2/change/enqueue", json=body)
    assert response.status_code == 400
    assert response.json["status"] == "invalid event" and problem in " ".join(response.json["errors"])
    assert _changes() == []


def test_only_events_v2_keys_of_enabled_services_take_changes(client, integration):
    generic = factories_events.make_integration(integration.service, kind="generic")
    response = client.post("/v2/change/enqueue", json=change(generic.key))
    assert response.status_code == 400 and "Events API v2" in response.json["errors"][0]
    integration.service.disabled = True
    db.session.commit()
    response = client.post("/v2/change/enqueue", json=change(integration.key))
    assert response.status_code == 400 and "disabled" in response.json["errors"][0]
    assert client.post("/v2/change/enqueue", data="{not json").status_code == 400
    assert _changes() == []


def test_changes_are_rate_limited_like_events(app_with, integration):
    client = app_with(EVENTS_RATE_LIMIT=1).test_client()
    statuses = [client.post("/v2/change/enqueue", json=change(integration.key)).status_code for _ in range(2)]
    assert statuses == [202, 429]


def test_the_service_page_lists_the_latest_changes(client, auth, admin, clock, integration, queries_while_rendering):
    for n in range(12):
        client.post("/v2/change/enqueue", json=change(integration.key, f"Deploy {n:02d}"))
        clock.advance(minutes=1)
    auth.login("admin@example.com")
    service_id = integration.service_id
    db.session.expunge_all()  # as in a fresh request
    page = client.get(f"/services/{service_id}").get_data(as_text=True)
    assert "Recent changes" in page and "Deploy 11" in page and "Deploy 02" in page and "Deploy 01" not in page
    assert page.index("Deploy 11") < page.index("Deploy 10")  # newest first
    assert queries_while_rendering == []


def test_an_incident_shows_changes_of_the_hour_before_it_opened(
    client, auth, admin, clock, integration, queries_while_rendering
):
    opened_at = clock.now()
    for minutes, summary in [(-90, "Old deploy"), (-59, "Deploy web v41"), (-5, "Flag rollout"), (5, "Later fix")]:
        at = (opened_at + timedelta(minutes=minutes)).isoformat()
        client.post("/v2/change/enqueue", json=change(integration.key, summary, timestamp=at))
    incident = factories_events.make_incident(integration)
    other = factories_events.make_incident(factories_events.make_integration())  # another service: none
    auth.login("admin@example.com")
    ids = incident.id, other.id
    db.session.expunge_all()  # as in a fresh request: an empty session (the test shares the app context)
    page = client.get(f"/incidents/{ids[0]}").get_data(as_text=True)
    assert "Recent changes" in page and "Deploy web v41" in page and "Flag rollout" in page
    assert "Old deploy" not in page and "Later fix" not in page
    assert page.index("Flag rollout") < page.index("Deploy web v41")
    assert "Recent changes" not in client.get(f"/incidents/{ids[1]}").get_data(as_text=True)
    clock.advance(hours=2)  # an incident opened later than an hour after every change shows none
    late = factories_events.make_incident(db.session.merge(integration), dedup_key="late").id
    db.session.expunge_all()
    assert "Recent changes" not in client.get(f"/incidents/{late}").get_data(as_text=True)
    assert queries_while_rendering == []


def test_the_api_lists_a_services_changes(api, admin, client, clock, integration):
    for n in range(3):
        client.post("/v2/change/enqueue", json=change(integration.key, f"Deploy {n}", source="ci"))
        clock.advance(minutes=10)
    api.as_user(admin)
    path = f"/api/v1/services/{integration.service_id}/change-events"
    listed = api.get(path).json["change_events"]
    assert [c["summary"] for c in listed] == ["Deploy 2", "Deploy 1", "Deploy 0"]
    assert set(listed[0]) == {"id", "service_id", "summary", "source", "timestamp", "custom_details", "links",
                              "received_at"}  # fmt: skip
    middle = listed[1]["timestamp"]
    assert [c["summary"] for c in api.get(path, query_string={"until": middle}).json["change_events"]] == ["Deploy 0"]
    assert [c["summary"] for c in api.get(path, query_string={"since": middle}).json["change_events"]] == [
        "Deploy 2",
        "Deploy 1",
    ]
    assert len(api.get(path, query_string={"per_page": 1}).json["change_events"]) == 1
    bad = api.get(path, query_string={"per_page": 0})
    assert bad.status_code == 422 and "per_page" in bad.json["error"]["fields"]
    assert api.get(path, query_string={"since": "soon"}).status_code == 422
    assert api.get("/api/v1/services/999999/change-events").status_code == 404


def test_old_changes_are_purged_daily(app, client, clock, integration):
    client.post("/v2/change/enqueue", json=change(integration.key, "Ancient"))
    clock.advance(days=app.config["CHANGE_EVENT_RETENTION_DAYS"] + 1)
    client.post("/v2/change/enqueue", json=change(integration.key, "Fresh"))
    assert jobs.purge_change_events() == 1
    assert [c.summary for c in _changes()] == ["Fresh"]
