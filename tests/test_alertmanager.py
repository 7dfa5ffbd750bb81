"""A real Prometheus Alertmanager (Debian's binary) opens and resolves incidents via its webhook."""

import os
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import select

from openduty.extensions import db
from openduty.models import Incident
from tests import factories_events
from tests.conftest import _ci_requires
from tests.processes import free_port

ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"

CONFIG = """
global:
  resolve_timeout: 5s
route:
  receiver: openduty
  group_by: ["alertname", "instance"]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: openduty
    webhook_configs:
      - url: "{url}"
        send_resolved: true
"""


@pytest.fixture
def alertmanager(tmp_path, live_server):
    if not os.access(ALERTMANAGER, os.X_OK):
        _ci_requires("Debian's prometheus-alertmanager")

    def start(webhook_url: str) -> str:
        config = tmp_path / "alertmanager.yml"
        config.write_text(CONFIG.format(url=webhook_url))
        port = free_port()
        log = open(tmp_path / "alertmanager.log", "wb")  # noqa: SIM115 (closed at teardown)
        logs.append(log)
        process = subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={config}",
                f"--storage.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if requests.get(url + "/-/ready", timeout=1).status_code == 200:
                    return url
            except requests.ConnectionError:
                pass
            if process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError("Alertmanager did not start:\n" + (tmp_path / "alertmanager.log").read_text())

    processes: list[subprocess.Popen] = []
    logs = []
    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for log in logs:
        log.close()


def _wait_for(check, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.rollback()
        db.session.expire_all()
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def test_alertmanager_opens_then_resolves_an_incident(app, live_server, alertmanager):
    integration = factories_events.make_integration(factories_events.make_service(name="Prometheus"), "alertmanager")
    am = alertmanager(live_server.url + f"/integrations/alertmanager/{integration.key}")
    service_id = integration.service_id
    now = datetime.now(UTC)
    alert = {
        "labels": {"alertname": "DiskFull", "instance": "web-1:9100", "severity": "warning"},
        "annotations": {"summary": "Disk almost full on web-1", "description": "/var is 97% full"},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(hours=1)).isoformat(),
        "generatorURL": "http://prometheus.example.com/graph?g0.expr=disk",
    }
    assert requests.post(am + "/api/v2/alerts", json=[alert], timeout=5).status_code == 200

    def opened():
        return db.session.scalar(select(Incident).where(Incident.service_id == service_id))

    incident = _wait_for(opened)
    assert incident.status == "triggered"
    assert incident.summary == "Disk almost full on web-1"
    assert incident.severity == "warning"
    assert incident.source == "web-1:9100"
    assert incident.details["labels"]["alertname"] == "DiskFull"
    assert incident.details["annotations"]["description"] == "/var is 97% full"
    assert incident.details["links"][0]["href"].startswith("http://prometheus.example.com/")
    fingerprint = incident.dedup_key

    alert["endsAt"] = datetime.now(UTC).isoformat()
    assert requests.post(am + "/api/v2/alerts", json=[alert], timeout=5).status_code == 200
    resolved = _wait_for(lambda: (i := opened()) is not None and i.status == "resolved" and i)
    assert resolved.dedup_key == fingerprint
    assert db.session.scalars(select(Incident)).all() == [resolved]  # no second incident


def test_alertmanager_webhook_payload(client):
    """The webhook format itself (version 4), without the binary: one incident per fingerprint."""
    integration = factories_events.make_integration(kind="alertmanager")
    url = f"/integrations/alertmanager/{integration.key}"
    body = {
        "version": "4",
        "status": "firing",
        "receiver": "openduty",
        "groupKey": '{}:{alertname="Down"}',
        "externalURL": "http://am.example.com",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "Down", "job": "api"}, "annotations": {}, "fingerprint": "a1"},
            {
                "status": "firing",
                "labels": {"alertname": "Down", "job": "db", "severity": "page"},
                "annotations": {"summary": "DB down"},
                "fingerprint": "b2",
            },
        ],
    }
    response = client.post(url, json=body)
    assert response.status_code == 200
    assert response.json["alerts"] == 2
    rows = db.session.execute(select(Incident.dedup_key, Incident.summary, Incident.severity)).all()
    assert sorted(rows) == [("a1", "Down", "critical"), ("b2", "DB down", "critical")]
    body["alerts"][0]["status"] = "resolved"
    client.post(url, json=body)
    db.session.expire_all()
    statuses = dict(db.session.execute(select(Incident.dedup_key, Incident.status)).all())
    assert statuses == {"a1": "resolved", "b2": "triggered"}
    assert client.post(url, json={"alerts": "nope"}).status_code == 400
    assert client.post("/integrations/alertmanager/" + "q" * 32, json=body).status_code == 404
