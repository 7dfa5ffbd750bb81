"""Structured logs: LOG_FORMAT=json makes every line one JSON object; each request has an id (the
caller's X-Request-ID when sane), echoed in the answer and carried into the jobs it enqueues, which
the worker runs under it: in this process (run_jobs) and in a worker subprocess."""

import json

import pytest
from rq import Queue

from openduty.extensions import redis
from tests.factories_escalation import make_pager, make_policy, make_service
from tests.factories_events import make_integration
from tests.processes import hits, wait_for


def _event(key: str) -> dict:
    payload = {"summary": "Disk full", "source": "db-1", "severity": "critical"}
    return {"routing_key": key, "event_action": "trigger", "dedup_key": "disk", "payload": payload}


def _json_lines(text: str) -> list[dict]:
    """Every non-empty line, parsed: a line that is not JSON fails the test."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_request_id_is_echoed_and_carried_into_the_job_and_its_log_lines(app_with, pager, capsys):
    client = app_with(LOG_FORMAT="json").test_client()
    alice = make_pager("Alice", {"email": ("alice@example.com", 0)})
    key = make_integration(make_service(make_policy([(5, [alice])]))).key
    capsys.readouterr()

    response = client.post("/v2/enqueue", json=_event(key), headers={"X-Request-ID": "trace-42"})
    assert response.status_code == 202
    assert response.headers["X-Request-ID"] == "trace-42"
    [job] = Queue("high", connection=redis.get()).get_jobs()
    assert job.meta["request_id"] == "trace-42"

    pager.run()
    assert [p.to for p in pager.pages()] == ["alice@example.com"]
    lines = _json_lines(capsys.readouterr().err)
    assert lines, "the worker logged nothing"
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    in_job = [line for line in lines if line.get("request_id") == "trace-42"]
    assert any(line.get("job_id") == job.id and job.id in line["message"] for line in in_job), lines


def test_a_request_id_that_is_not_sane_is_replaced(client):
    for given in ("has spaces", "x" * 129, "<script>", ""):
        answered = client.get("/healthz", headers={"X-Request-ID": given}).headers["X-Request-ID"]
        assert answered != given and len(answered) == 32
    assert client.get("/healthz", headers={"X-Request-ID": "lb-7f3a:01"}).headers["X-Request-ID"] == "lb-7f3a:01"
    assert len({client.get("/healthz").headers["X-Request-ID"] for _ in range(3)}) == 3


def test_text_lines_name_their_request(app_with, capsys):
    text_app = app_with(LOG_FORMAT="text")
    text_app.add_url_rule("/ruleless", "ruleless", lambda: "secret")  # refused, and logged as an error
    capsys.readouterr()
    assert text_app.test_client().get("/ruleless", headers={"X-Request-ID": "trace-9"}).status_code == 403
    [line] = [line for line in capsys.readouterr().err.splitlines() if "No access rule" in line]
    assert " ERROR openduty [request trace-9]: No access rule for ruleless" in line


def test_an_unknown_log_format_or_level_stops_the_start(app_with):
    with pytest.raises(RuntimeError, match="LOG_FORMAT must be text or json"):
        app_with(LOG_FORMAT="xml")
    with pytest.raises(RuntimeError, match="LOG_LEVEL must be"):
        app_with(LOG_FORMAT="json", LOG_LEVEL="LOUD")


def test_a_worker_process_logs_json_under_the_request_id(client, processes, paged_service, hook):
    processes.env["LOG_FORMAT"] = "json"
    key = make_integration(paged_service).key
    assert client.post("/v2/enqueue", json=_event(key), headers={"X-Request-ID": "trace-w1"}).status_code == 202
    processes.worker("json-w1", redis.get())
    wait_for(lambda: hits(hook).get("/hook/alice") == 1, "the worker to send the page", timeout=30)
    wait_for(lambda: "trace-w1" in processes.log("json-w1"), "the worker's line for the request")

    lines = _json_lines(processes.log("json-w1"))
    mine = [line for line in lines if line.get("request_id") == "trace-w1"]
    assert any(line.get("job_id", "").startswith("escalate-") for line in mine), lines
