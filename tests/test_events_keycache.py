"""The integration-key cache of the ingest path: what takes effect at once, and what within the TTL."""

from sqlalchemy import delete, select, update

from openduty.extensions import db
from openduty.models import Incident, Integration, LogEntry, Service
from tests import factories_events


def v2(key, dedup_key="cpu/web-1"):
    return {
        "routing_key": key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {"summary": "CPU high on web-1", "source": "web-1", "severity": "critical"},
    }


def count(model) -> int:
    db.session.expire_all()
    return len(db.session.scalars(select(model)).all())


def test_orm_changes_in_this_process_apply_at_once(client, integration):
    assert client.post("/v2/enqueue", json=v2(integration.key)).status_code == 202  # now cached
    integration.service.disabled = True
    db.session.commit()
    response = client.post("/v2/enqueue", json=v2(integration.key))
    assert response.status_code == 400
    assert "disabled" in response.json["errors"][0]
    integration.service.disabled = False
    db.session.commit()
    assert client.post("/v2/enqueue", json=v2(integration.key)).status_code == 202
    old_key = integration.key
    integration.key = "n" * 32  # regenerated
    db.session.commit()
    assert client.post("/v2/enqueue", json=v2(old_key)).status_code == 400
    assert client.post("/v2/enqueue", json=v2("n" * 32)).status_code == 202


def test_new_integration_works_at_once(client, integration):
    assert client.post("/v2/enqueue", json=v2("m" * 32)).status_code == 400  # unknown keys are not cached
    factories_events.make_integration(integration.service, key="m" * 32)
    assert client.post("/v2/enqueue", json=v2("m" * 32)).status_code == 202


def test_service_deleted_by_another_process_is_refused_not_a_500(client, integration):
    key, service_id = integration.key, integration.service_id
    assert client.post("/v2/enqueue", json=v2(key)).status_code == 202
    # Another process deletes the service (plain SQL: no ORM event reaches this process's cache).
    db.session.execute(delete(Service.__table__).where(Service.__table__.c.id == service_id))
    db.session.commit()
    response = client.post("/v2/enqueue", json=v2(key, dedup_key="other"))
    assert response.status_code == 400
    assert response.json["errors"][0].startswith("Invalid routing key")
    assert count(Incident) == 0
    assert count(LogEntry) == 0


def test_disabled_by_another_process_applies_within_the_ttl(app, client, integration):
    assert client.post("/v2/enqueue", json=v2(integration.key)).status_code == 202
    db.session.execute(update(Service.__table__).values(disabled=True))
    db.session.commit()
    # Cached: still accepted until the entry expires (EVENTS_KEY_CACHE_SECONDS, 2 s by default).
    assert client.post("/v2/enqueue", json=v2(integration.key)).status_code == 202
    app.config["EVENTS_KEY_CACHE_SECONDS"] = 0  # no cache: every batch reads the key
    response = client.post("/v2/enqueue", json=v2(integration.key))
    assert response.status_code == 400
    assert "disabled" in response.json["errors"][0]
    assert db.session.scalar(select(Integration.key)) == integration.key
