"""GET /metrics: Prometheus's text format, parsed with prometheus_client's own parser, moving when
events arrive (the Events API), pages go out (a real SMTP server and webhook receiver), reconcile
re-arms; what a worker subprocess counts shows up in the web process's scrape (multiprocess mode);
and who may scrape (METRICS_TOKEN, else this machine only).

The suite's processes count in one folder (tests/__init__.py), so each test compares before and after.
"""

import os
import smtplib

import pytest
from prometheus_client.parser import text_string_to_metric_families

from openduty import timers
from openduty.extensions import redis
from tests.factories_escalation import make_pager, make_policy, make_service
from tests.factories_events import make_email_integration, make_heartbeat, make_integration
from tests.processes import hits, wait_for

TOKEN = "scrape-me-0123456789"


def scrape(client, **kwargs) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before, after, name: str, **labels) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def v2(key: str, action: str = "trigger", dedup_key: str = "disk") -> dict:
    payload = {"summary": "Disk full", "source": "db-1", "severity": "critical"}
    return {"routing_key": key, "event_action": action, "dedup_key": dedup_key, "payload": payload}


def test_events_accepted_and_rejected_by_kind_and_reason(client, app):
    service = make_service(name="Checkout")
    key = make_integration(service).key
    before = scrape(client)

    assert client.post("/v2/enqueue", json=v2(key)).status_code == 202
    assert client.post("/v2/enqueue", json=v2(key)).status_code == 202
    assert client.post("/v2/enqueue", json={"routing_key": key}).status_code == 400
    assert client.post("/v2/enqueue", json=v2("x" * 32)).status_code == 400
    am = {"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": "A"}}] * 2}
    assert client.post("/integrations/alertmanager/" + "y" * 32, json=am).status_code == 404

    after = scrape(client)
    assert moved(before, after, "openduty_events_accepted_total", kind="events_v2", result="opened") == 1
    assert moved(before, after, "openduty_events_accepted_total", kind="events_v2", result="deduplicated") == 1
    assert moved(before, after, "openduty_events_rejected_total", kind="events_v2", reason="invalid") == 1
    assert moved(before, after, "openduty_events_rejected_total", kind="events_v2", reason="unknown_key") == 1
    # Both alerts of the refused webhook count.
    assert moved(before, after, "openduty_events_rejected_total", kind="alertmanager", reason="unknown_key") == 2
    assert moved(before, after, "openduty_ingest_seconds_count", kind="events_v2") == 4
    assert moved(before, after, "openduty_ingest_seconds_count", kind="alertmanager") == 1
    assert value(after, "openduty_open_incidents", service="Checkout", status="triggered") == 1

    assert client.post("/v2/enqueue", json=v2(key, "acknowledge")).status_code == 202
    later = scrape(client)
    assert value(later, "openduty_open_incidents", service="Checkout", status="triggered") == 0
    assert value(later, "openduty_open_incidents", service="Checkout", status="acknowledged") == 1
    assert moved(after, later, "openduty_events_accepted_total", kind="events_v2", result="acknowledged") == 1


def test_inbound_email_counts_as_kind_email(client, inbound_mail):
    """The SMTP listener counts where it answers: DATA stored, or RCPT refused."""
    before = scrape(client)
    inbound_mail.send(f"{make_email_integration().key}@localhost", "Disk full on web-1")
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        inbound_mail.send("1" * 32 + "@localhost", "Disk full on web-2")
    after = scrape(client)
    assert moved(before, after, "openduty_events_accepted_total", kind="email", result="opened") == 1
    assert moved(before, after, "openduty_events_rejected_total", kind="email", reason="unknown_key") == 1
    assert moved(before, after, "openduty_ingest_seconds_count", kind="email") == 1


def test_pages_sent_failed_retried_and_their_lateness(client, app, pager):
    hook = pager.httpserver
    alice = make_pager("Alice", {"email": ("alice@example.com", 0), "webhook": (hook.url_for("/hook/gone"), 0)})
    bob = make_pager("Bob", {"webhook": (hook.url_for("/hook/down"), 0)})
    key = make_integration(make_service(make_policy([(5, [alice, bob])]))).key
    before = scrape(client)

    assert client.post("/v2/enqueue", json=v2(key)).status_code == 202
    pager.run()

    assert [p.to for p in pager.pages() if p.kind == "email"] == ["alice@example.com"]
    after = scrape(client)
    assert moved(before, after, "openduty_notifications_total", channel="email", purpose="page", outcome="sent") == 1
    assert moved(before, after, "openduty_page_lateness_seconds_count", channel="email") == 1
    # The page was due at once: in the 10 s bucket (a generous margin for a loaded machine), not a slower one.
    assert moved(before, after, "openduty_page_lateness_seconds_bucket", channel="email", le="10.0") == 1
    # 410: given up at once; 503: tried again later.
    webhook = {"channel": "webhook", "purpose": "page"}
    assert moved(before, after, "openduty_notifications_total", outcome="failed", **webhook) == 1
    assert moved(before, after, "openduty_notifications_total", outcome="retried", **webhook) >= 1


def test_reconcile_re_arms_and_heartbeats_and_queues(client, app):
    service = make_service(make_policy([(5, [make_pager("Alice", {"email": ("a@example.com", 0)})])]), name="Batch")
    make_heartbeat(service)
    assert client.post("/v2/enqueue", json=v2(make_integration(service).key)).status_code == 202
    before = scrape(client)
    assert value(before, "openduty_heartbeats", service="Batch", state="waiting") == 1
    assert value(before, "openduty_queue_jobs", queue="high") >= 1  # the escalation, due now
    assert value(before, "openduty_scrape_ok", part="database") == 1
    assert value(before, "openduty_scrape_ok", part="redis") == 1

    redis.get().flushdb()  # Redis lost its jobs: reconcile arms them again from the database
    timers.reconcile()
    after = scrape(client)
    assert moved(before, after, "openduty_reconcile_rearmed_total", what="escalations") == 1


def test_a_worker_process_counts_show_up_in_the_web_scrape(client, app, processes, paged_service, hook):
    """Multiprocess mode: the page is sent by a worker subprocess, and this process's /metrics counts it."""
    key = make_integration(paged_service).key
    before = scrape(client)
    assert client.post("/v2/enqueue", json=v2(key)).status_code == 202
    worker = processes.worker("metrics-w1", redis.get())
    wait_for(lambda: hits(hook).get("/hook/alice") == 1, "the worker to send the page", timeout=30)

    labels = {"channel": "webhook", "purpose": "page", "outcome": "sent"}
    wait_for(lambda: moved(before, scrape(client), "openduty_notifications_total", **labels) == 1, "the count")
    assert os.path.exists(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], f"counter_{worker.pid}.db"))


def test_without_a_token_only_this_machine_may_scrape(client):
    assert client.get("/metrics").status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    far = client.get("/metrics", environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert far.status_code == 403
    assert "METRICS_TOKEN" in far.get_data(as_text=True)
    assert "openduty_" not in far.get_data(as_text=True)
    # A proxy on this machine makes everyone look local: its header gives it away.
    proxied = client.get("/metrics", headers={"X-Forwarded-For": "192.0.2.7"})
    assert proxied.status_code == 403


def test_behind_a_trusted_proxy_the_client_address_decides(app_with):
    client = app_with(TRUSTED_PROXIES=1).test_client()
    assert client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 200
    assert client.get("/metrics", headers={"X-Forwarded-For": "192.0.2.7"}).status_code == 403


def test_with_a_token_anyone_who_sends_it_may_scrape(app_with):
    client = app_with(METRICS_TOKEN=TOKEN).test_client()
    far = {"REMOTE_ADDR": "192.0.2.7"}
    missing = client.get("/metrics", environ_base=far)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in missing.get_data(as_text=True)
    # Even from this machine: the token is then the only way in.
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", environ_base=far, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403 and "openduty_" not in wrong.get_data(as_text=True)
    assert client.get("/metrics", environ_base=far, headers={"Authorization": "Token " + TOKEN}).status_code == 401
    assert client.get("/metrics", environ_base=far, headers={"Authorization": "Bearer é"}).status_code == 403
    samples = scrape(client, environ_base=far, headers={"Authorization": "Bearer " + TOKEN})
    assert value(samples, "openduty_scrape_ok", part="database") == 1
