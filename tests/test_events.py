"""Ingest endpoints: PagerDuty v2/v1, the original Openduty API, the generic webhook."""

import json

import pytest
from sqlalchemy import func, select

from openduty.extensions import db
from openduty.models import Incident, LogEntry
from tests import factories_events


def v2(key, action="trigger", **extra):
    body = {"routing_key": key, "event_action": action}
    if action == "trigger":
        body["payload"] = {"summary": "CPU high on web-1", "source": "web-1", "severity": "critical"}
    body.update(extra)
    return body


def incidents():
    db.session.expire_all()
    return db.session.scalars(select(Incident).order_by(Incident.id)).all()


def test_v2_trigger_opens_an_incident(client, integration, fresh):
    body = v2(integration.key, dedup_key="cpu/web-1")
    body["payload"].update(component="nginx", group="web", **{"class": "cpu"}, custom_details={"load": 12.5})
    body["links"] = [{"href": "https://grafana.example.com/d/1", "text": "Dashboard"}]
    body["images"] = [{"src": "https://grafana.example.com/render/1.png", "alt": "graph"}]
    response = client.post("/v2/enqueue", json=body)
    assert response.status_code == 202
    assert response.json == {"status": "success", "message": "Event processed", "dedup_key": "cpu/web-1"}
    [incident] = incidents()
    assert incident.number == 1
    assert incident.status == "triggered"
    assert incident.summary == "CPU high on web-1"
    assert incident.service_id == integration.service_id
    assert incident.details["custom_details"] == {"load": 12.5}
    assert incident.details["component"] == "nginx"
    assert incident.details["links"][0]["href"] == "https://grafana.example.com/d/1"
    kinds = [e.kind for e in incident.log_entries]
    assert kinds[0] == "trigger"
    assert "nobody_to_page" in kinds  # the service has no escalation policy


def test_v2_generates_a_dedup_key(client, integration):
    response = client.post("/v2/enqueue", json=v2(integration.key))
    assert response.status_code == 202
    key = response.json["dedup_key"]
    assert len(key) == 32
    assert incidents()[0].dedup_key == key


def test_trigger_on_open_key_deduplicates_and_after_resolve_opens_a_new_one(client, integration):
    for _ in range(3):
        assert client.post("/v2/enqueue", json=v2(integration.key, dedup_key="k")).status_code == 202
    [incident] = incidents()
    assert incident.alert_count == 3
    assert [e.kind for e in incident.log_entries].count("duplicate") == 2

    assert client.post("/v2/enqueue", json=v2(integration.key, "acknowledge", dedup_key="k")).status_code == 202
    assert incidents()[0].status == "acknowledged"
    assert client.post("/v2/enqueue", json=v2(integration.key, "resolve", dedup_key="k")).status_code == 202
    assert incidents()[0].status == "resolved"
    assert incidents()[0].resolved_at is not None

    assert client.post("/v2/enqueue", json=v2(integration.key, dedup_key="k")).status_code == 202
    first, second = incidents()
    assert (first.status, second.status) == ("resolved", "triggered")
    assert (first.number, second.number) == (1, 2)
    assert second.alert_count == 1


def test_acknowledge_or_resolve_without_open_incident_is_accepted_and_dropped(client, integration):
    for action in ("acknowledge", "resolve"):
        response = client.post("/v2/enqueue", json=v2(integration.key, action, dedup_key="nothing"))
        assert response.status_code == 202
        assert response.json["dedup_key"] == "nothing"
    assert incidents() == []


def test_same_dedup_key_on_two_services_opens_two_incidents(client, integration):
    other = factories_events.make_integration(factories_events.make_service(name="Other"))
    client.post("/v2/enqueue", json=v2(integration.key, dedup_key="same"))
    client.post("/v2/enqueue", json=v2(other.key, dedup_key="same"))
    assert len(incidents()) == 2


@pytest.mark.parametrize(
    "change, error",
    [
        (lambda b: b.pop("routing_key"), "'routing_key' is missing or blank."),
        (lambda b: b.update(event_action="explode"), "'event_action' is invalid"),
        (lambda b: b["payload"].pop("summary"), "'payload.summary' is missing or blank."),
        (lambda b: b["payload"].update(summary="x" * 1025), "'payload.summary' is too long (1025 characters"),
        (lambda b: b["payload"].update(source=12), "'payload.source' must be a string."),
        (lambda b: b["payload"].update(severity="catastrophic"), "'payload.severity' is invalid"),
        (lambda b: b["payload"].update(timestamp="yesterday"), "'payload.timestamp' is not an ISO 8601 timestamp"),
        (lambda b: b.update(dedup_key="k" * 256), "'dedup_key' is too long (256 characters"),
        (lambda b: b.update(links="http://x"), "'links' must be a list of objects."),
        (lambda b: b.pop("payload"), "'payload' is missing or not an object."),
    ],
)
def test_v2_invalid_events_name_the_problem_and_change_nothing(client, integration, change, error):
    body = v2(integration.key)
    change(body)
    response = client.post("/v2/enqueue", json=body)
    assert response.status_code == 400
    assert response.json["status"] == "invalid event"
    assert response.json["message"] == "Event object is invalid"
    assert any(e.startswith(error) for e in response.json["errors"]), response.json
    assert incidents() == []


def test_v2_reports_every_problem_at_once(client, integration):
    body = {"routing_key": integration.key, "event_action": "trigger", "payload": {"severity": "bad"}}
    errors = client.post("/v2/enqueue", json=body).json["errors"]
    assert len(errors) == 3  # summary, source, severity


def test_ack_needs_a_dedup_key(client, integration):
    response = client.post("/v2/enqueue", json=v2(integration.key, "acknowledge"))
    assert response.status_code == 400
    assert response.json["errors"] == ["'dedup_key' is missing or blank."]


@pytest.mark.parametrize(
    "data, error",
    [
        (b"{not json", "The body is not valid JSON"),
        (b"", "The body is empty"),
        (b"[1, 2]", "The event must be a JSON object."),
    ],
)
def test_malformed_bodies(client, integration, data, error):
    response = client.post("/v2/enqueue", data=data, content_type="application/json")
    assert response.status_code == 400
    assert response.json["errors"][0].startswith(error)


def test_unknown_and_disabled_keys_are_refused(client, integration):
    response = client.post("/v2/enqueue", json=v2("x" * 32))
    assert response.status_code == 400
    assert response.json["errors"][0].startswith("Invalid routing key")
    integration.service.disabled = True
    db.session.commit()
    response = client.post("/v2/enqueue", json=v2(integration.key))
    assert response.status_code == 400
    assert "disabled" in response.json["errors"][0]
    assert incidents() == []


def test_body_over_512_kb_is_413(client, integration):
    body = v2(integration.key)
    body["payload"]["custom_details"] = {"blob": "x" * (512 * 1024)}
    response = client.post("/v2/enqueue", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 413
    assert response.json["status"] == "invalid event"
    assert "512 KB" in response.json["errors"][0]
    assert incidents() == []


def test_body_just_under_the_limit_is_accepted(client, integration):
    body = v2(integration.key)
    body["payload"]["custom_details"] = {"blob": "x" * (500 * 1024)}
    assert client.post("/v2/enqueue", json=body).status_code == 202


def test_rate_limit_per_key_answers_429_with_retry_after(app, client, integration):
    app.config["EVENTS_RATE_LIMIT"] = 3
    other = factories_events.make_integration(factories_events.make_service(name="Quiet"))
    for _ in range(3):
        assert client.post("/v2/enqueue", json=v2(integration.key, dedup_key="flap")).status_code == 202
    response = client.post("/v2/enqueue", json=v2(integration.key, dedup_key="flap"))
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.json["status"] == "throttle event"
    # Another source is not starved.
    assert client.post("/v2/enqueue", json=v2(other.key)).status_code == 202
    assert incidents()[0].alert_count == 3


def test_rate_limit_window_passes(app, client, integration, clock):
    app.config["EVENTS_RATE_LIMIT"] = 1
    assert client.post("/v2/enqueue", json=v2(integration.key, dedup_key="a")).status_code == 202
    assert client.post("/v2/enqueue", json=v2(integration.key, dedup_key="a")).status_code == 429
    clock.advance(seconds=61)
    assert client.post("/v2/enqueue", json=v2(integration.key, dedup_key="a")).status_code == 202


def test_ingest_needs_no_csrf_token_or_session(client, integration):
    # CSRF is on in the test config; the events endpoints are exempt.
    assert client.post("/v2/enqueue", json=v2(integration.key)).status_code == 202


# --- PagerDuty v1 ----------------------------------------------------------------------------------


def test_v1_trigger_ack_resolve(client, integration):
    url = "/generic/2010-04-15/create_event.json"
    body = {
        "service_key": integration.key,
        "event_type": "trigger",
        "incident_key": "srv01/HTTP",
        "description": "FAILURE for production/HTTP on machine srv01.example.com",
        "details": {"ping time": "1500ms", "load avg": 0.75},
        "client": "Sample Monitoring Service",
        "client_url": "https://monitoring.example.com",
        "contexts": [
            {"type": "link", "href": "http://acme.pagerduty.com", "text": "View the incident"},
            {"type": "image", "src": "https://chart.example.com/1.png"},
        ],
    }
    response = client.post(url, json=body)
    assert response.status_code == 200
    assert response.json == {"status": "success", "message": "Event processed", "incident_key": "srv01/HTTP"}
    [incident] = incidents()
    assert incident.details["custom_details"]["ping time"] == "1500ms"
    assert incident.details["links"][0]["href"] == "http://acme.pagerduty.com"
    assert incident.details["images"][0]["src"] == "https://chart.example.com/1.png"
    ack = {"service_key": integration.key, "event_type": "acknowledge", "incident_key": "srv01/HTTP"}
    assert client.post(url, json=ack).status_code == 200
    assert incidents()[0].status == "acknowledged"
    assert client.post(url, json={**ack, "event_type": "resolve"}).status_code == 200
    assert incidents()[0].status == "resolved"


def test_v1_errors(client, integration):
    url = "/generic/2010-04-15/create_event.json"
    response = client.post(url, json={"service_key": integration.key, "event_type": "trigger"})
    assert response.status_code == 400
    assert response.json["status"] == "invalid event"
    assert response.json["errors"] == ["'description' is missing or blank."]
    response = client.post(url, json={"service_key": "nope", "event_type": "trigger", "description": "x"})
    assert response.status_code == 400
    assert "Invalid routing key" in response.json["errors"][0]


# --- Original Openduty API -------------------------------------------------------------------------


def test_legacy_openduty_form_and_json(client, integration):
    form = {
        "service_key": integration.key,
        "incident_key": "db-down",
        "event_type": "trigger",
        "description": "Database down",
        "details": "replica lag 300s",
    }
    response = client.post("/api/create_event", data=form)
    assert response.status_code == 201
    assert response.json == {"status": "success", "message": "Event processed", "incident_key": "db-down"}
    [incident] = incidents()
    assert incident.details["custom_details"] == {"text": "replica lag 300s"}
    response = client.post(
        "/api/create_event", json={"service_key": integration.key, "incident_key": "db-down", "event_type": "resolve"}
    )
    assert response.status_code == 201
    assert incidents()[0].status == "resolved"


def test_legacy_errors(client, integration):
    response = client.post("/api/create_event", data={"service_key": "unknown", "event_type": "trigger"})
    assert response.status_code == 400
    assert response.json["status"] == "failure"
    assert response.json["errors"] == ["'description' is missing or blank."]
    response = client.post(
        "/api/create_event", data={"service_key": "unknown", "event_type": "trigger", "description": "x"}
    )
    assert response.status_code == 404


# --- Generic webhook -------------------------------------------------------------------------------


def test_generic_webhook(client):
    integration = factories_events.make_integration(kind="generic")
    url = f"/integrations/generic/{integration.key}"
    body = {"summary": "Queue backlog", "dedup_key": "queue", "severity": "warning", "details": {"depth": 9000}}
    response = client.post(url, json=body)
    assert response.status_code == 202
    assert response.json["dedup_key"] == "queue"
    client.post(url, json=body)
    [incident] = incidents()
    assert (incident.severity, incident.alert_count) == ("warning", 2)
    assert client.post(url, json={"action": "resolve", "dedup_key": "queue"}).status_code == 202
    assert incidents()[0].status == "resolved"
    response = client.post(url, json={"summary": "x", "severity": "loud", "details": []})
    assert response.status_code == 400
    assert len(response.json["errors"]) == 2
    assert client.post("/integrations/generic/" + "z" * 32, json=body).status_code == 404


def test_duplicate_log_entries_are_written(client, integration):
    for _ in range(5):
        client.post("/v2/enqueue", json=v2(integration.key, dedup_key="d"))
    assert db.session.scalar(select(func.count()).select_from(LogEntry).where(LogEntry.kind == "duplicate")) == 4
