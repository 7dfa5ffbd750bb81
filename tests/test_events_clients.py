"""The real PagerDuty client libraries, pointed at the test server, just work."""

import ssl
import warnings

import pagerduty
import pytest
from sqlalchemy import select

from openduty.extensions import db
from openduty.models import Incident

with warnings.catch_warnings():
    # pdpyras warns at import that it is deprecated in favour of `pagerduty`; we test both.
    warnings.simplefilter("ignore", UserWarning)
    import pdpyras


def _incident(dedup_key):
    db.session.rollback()
    db.session.expire_all()
    return db.session.scalar(select(Incident).where(Incident.dedup_key == dedup_key).order_by(Incident.id.desc()))


def test_pdpyras_trigger_acknowledge_resolve(live_server, integration):
    session = pdpyras.EventsAPISession(integration.key)
    session.url = live_server.url
    dedup_key = session.trigger(
        "Replication lag on db-2",
        "db-2",
        dedup_key="db-2/lag",
        severity="warning",
        custom_details={"lag_seconds": 320},
        links=[{"href": "https://grafana.example.com/db", "text": "Dashboard"}],
    )
    assert dedup_key == "db-2/lag"
    incident = _incident("db-2/lag")
    assert (incident.status, incident.severity, incident.summary) == ("triggered", "warning", "Replication lag on db-2")
    assert incident.details["custom_details"] == {"lag_seconds": 320}
    assert session.trigger("Replication lag on db-2", "db-2", dedup_key="db-2/lag") == "db-2/lag"
    assert _incident("db-2/lag").alert_count == 2
    assert session.acknowledge("db-2/lag") == "db-2/lag"
    assert _incident("db-2/lag").status == "acknowledged"
    assert session.resolve("db-2/lag") == "db-2/lag"
    assert _incident("db-2/lag").status == "resolved"


def test_pdpyras_without_dedup_key_gets_one(live_server, integration):
    session = pdpyras.EventsAPISession(integration.key)
    session.url = live_server.url
    dedup_key = session.trigger("Disk full", "web-3")
    assert _incident(dedup_key).summary == "Disk full"


def test_pdpyras_sees_errors(live_server, integration):
    session = pdpyras.EventsAPISession("0" * 32)
    session.url = live_server.url
    with pytest.raises(pdpyras.PDClientError) as info:
        session.trigger("Disk full", "web-3")
    assert info.value.response.status_code == 400


def test_python_pagerduty_client(https_live_server, integration):
    # This client only accepts https:// base URLs, so it talks to the app over TLS.
    client = pagerduty.EventsApiV2Client(
        integration.key,
        base_url=https_live_server.url,
        verify=ssl.create_default_context(cafile=https_live_server.ca_file),
    )
    dedup_key = client.trigger("Queue backlog", "worker-1", dedup_key="queue", severity="error")
    assert dedup_key == "queue"
    assert _incident("queue").severity == "error"
    client.acknowledge("queue")
    assert _incident("queue").status == "acknowledged"
    client.resolve("queue")
    assert _incident("queue").status == "resolved"
    with pytest.raises(pagerduty.Error):
        client.trigger("x" * 1025, "worker-1")
