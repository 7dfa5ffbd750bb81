"""Delivery under races and slow receivers, with a real worker and real local receivers.

- A page in flight when its incident is resolved still earns its recipient the resolve notice, once.
- One slow receiver does not hold up anyone else's page (sends run on the worker's sender threads).
- A receiver that takes the request but does not answer in time may have got it: it is sent at
  most twice, never retried until it answers (docs/reliability.md lists every at-most-twice case).
"""

import subprocess
import sys
import threading
import time

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from openduty import clock, incidents, timers
from openduty.extensions import db
from openduty.models import Incident, LogEntry, Notification
from openduty.models.notification import this_process
from tests.factories_escalation import make_pager, make_policy, make_service, open_incident


def _notifications(**where) -> list[Notification]:
    db.session.rollback()
    query = db.select(Notification).order_by(Notification.id)
    for key, value in where.items():
        query = query.where(getattr(Notification, key) == value)
    return list(db.session.scalars(query))


def _hits(httpserver, path: str) -> list[dict]:
    import json

    return [json.loads(r.get_data()) for r, _ in httpserver.log if r.path == path]


def test_page_in_flight_at_resolve_gets_the_resolve_notice_once(app, pager):
    """The resolve commits while Alice's page is being sent: she must still hear it was resolved."""
    hook = pager.httpserver
    incident_ids: list[int] = []

    def resolve_while_sending(request):
        import json

        if json.loads(request.get_data())["event"] == "page":
            with app.app_context():
                incident = db.session.get(Incident, incident_ids[0])
                incidents.resolve(incident, channel="api")
                db.session.commit()
                db.session.remove()
        return Response("", status=204)

    hook.expect_request("/hook/inflight", method="POST").respond_with_handler(resolve_while_sending)
    alice = make_pager("Alice", {"webhook": (hook.url_for("/hook/inflight"), 0)})
    bob = make_pager("Bob", {"webhook": (hook.url_for("/hook/ok"), 0)})
    incident = open_incident(make_service(make_policy([(5, [bob, alice])])))
    incident_ids.append(incident.id)

    pager.run()
    pager.advance(seconds=5)
    events = [body["event"] for body in _hits(hook, "/hook/inflight")]
    assert events == ["page", "resolve"], events
    assert [b["event"] for b in _hits(hook, "/hook/ok")] == ["page", "resolve"]
    notices = _notifications(purpose="resolve")
    assert sorted(n.user_id for n in notices) == sorted([alice.id, bob.id])
    assert all(n.status == "sent" for n in notices)


def test_page_in_flight_that_fails_gets_no_resolve_notice(app, pager):
    hook = pager.httpserver
    incident_ids: list[int] = []

    def resolve_then_refuse(request):
        with app.app_context():
            incidents.resolve(db.session.get(Incident, incident_ids[0]), channel="api")
            db.session.commit()
            db.session.remove()
        return Response("gone", status=410)

    hook.expect_request("/hook/refuses", method="POST").respond_with_handler(resolve_then_refuse)
    alice = make_pager("Alice", {"webhook": (hook.url_for("/hook/refuses"), 0)})
    incident = open_incident(make_service(make_policy([(5, [alice])])))
    incident_ids.append(incident.id)
    pager.run()
    pager.advance(minutes=10)
    assert len(hook.log) == 1
    assert _notifications(purpose="resolve") == []


@pytest.fixture
def threaded_receiver():
    """A receiver that answers requests concurrently (the suite's `httpserver` answers one at a time)."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


def test_one_slow_receiver_does_not_delay_other_pages(app, pager, threaded_receiver):
    """Bob's webhook takes 3 s; Alice's page, queued after his, must not wait for it."""
    hook = threaded_receiver
    arrived: dict[str, float] = {}
    lock = threading.Lock()

    def record(name: str, delay: float):
        def handler(request):
            time.sleep(delay)
            with lock:
                arrived[name] = time.monotonic()
            return Response("", status=204)

        return handler

    hook.expect_request("/hook/slow", method="POST").respond_with_handler(record("bob", 3))
    hook.expect_request("/hook/fast", method="POST").respond_with_handler(record("alice", 0))
    bob = make_pager("Bob", {"webhook": (hook.url_for("/hook/slow"), 0)})
    alice = make_pager("Alice", {"webhook": (hook.url_for("/hook/fast"), 0)})
    open_incident(make_service(make_policy([(5, [bob])])))
    open_incident(make_service(make_policy([(5, [alice])])))
    started = time.monotonic()
    pager.run()
    assert arrived["alice"] - started < 1.5, f"Alice's page took {arrived['alice'] - started:.1f} s"
    assert arrived["bob"] - started >= 3
    assert {n.status for n in _notifications()} == {"sent"}


def test_unanswered_request_is_sent_at_most_twice(app, pager):
    """A receiver that takes the page but answers after the read timeout is never paged a third time."""
    app.config.update(NOTIFY_READ_TIMEOUT_SECONDS=0.5)
    hook = pager.httpserver

    def too_slow(request):
        time.sleep(1)
        return Response("", status=204)

    hook.expect_request("/hook/mute", method="POST").respond_with_handler(too_slow)
    alice = make_pager("Alice", {"webhook": (hook.url_for("/hook/mute"), 0)})
    incident = open_incident(make_service(make_policy([(60, [alice])])))
    pager.run()
    for _ in range(4):
        pager.advance(seconds=300)
    time.sleep(1)  # the receiver logs a request once it has answered
    (page,) = _notifications(purpose="page")
    assert len(_hits(hook, "/hook/mute")) == 2, (page.status, page.attempts, page.last_error)
    assert page.status == "sent" and page.unconfirmed == 2
    assert "unconfirmed" in page.receipt
    log = [e.message for e in db.session.scalars(db.select(LogEntry).where(LogEntry.incident_id == incident.id))]
    assert any("may have arrived" in m for m in log), log


def test_receiver_back_within_seconds_gets_the_page_within_seconds(app, pager):
    """Refused (nothing reached it): retried 2 s, then every 5 s, so a receiver back up is paged soon."""
    hook = pager.httpserver
    state = {"up": False}

    def flaky(request):
        return Response("", status=204 if state["up"] else 503)

    hook.expect_request("/hook/flaky", method="POST").respond_with_handler(flaky)
    alice = make_pager("Alice", {"webhook": (hook.url_for("/hook/flaky"), 0)})
    open_incident(make_service(make_policy([(60, [alice])])))
    pager.run()
    for _ in range(8):  # down for 40 s
        pager.advance(seconds=5)
    state["up"] = True
    pager.advance(seconds=5)
    (page,) = _notifications(purpose="page")
    assert page.status == "sent" and page.unconfirmed == 0 and page.attempts >= 8


def _dead_claim() -> str:
    """A claim by a process of this host that has exited (what a worker killed mid-send leaves)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return f"{this_process().rpartition(':')[0]}:{process.pid}"


def _claimed_page(incident, user, address: str, claimed_by: str, unconfirmed: int = 0) -> Notification:
    """A page claimed for sending by `claimed_by` (as the deliver job leaves it while sending)."""
    row = Notification(
        incident=incident, user=user, kind="webhook", address=address, purpose="page", send_at=clock.now(),
        status="sending", claimed_at=clock.now(), claimed_by=claimed_by, attempts=1, unconfirmed=unconfirmed,
    )  # fmt: skip
    db.session.add(row)
    db.session.commit()
    return row


def test_a_send_cut_short_by_a_dead_worker_is_sent_again_at_once_then_never_a_third_time(app, pager):
    """Reconcile (worker start-up, every 60 s) takes back a claim whose process is gone, without
    waiting out the lease, and sends it again; a page that may already have arrived twice is not."""
    hook = pager.httpserver
    alice, bob = make_pager("Alice"), make_pager("Bob")
    incident = open_incident(make_service(None))
    _claimed_page(incident, alice, hook.url_for("/hook/ok"), _dead_claim())
    _claimed_page(incident, bob, hook.url_for("/hook/ok"), _dead_claim(), unconfirmed=1)

    assert timers.reconcile()["recovered"] == 2
    db.session.commit()
    pager.run()
    assert len(_hits(hook, "/hook/ok")) == 1  # Alice's, sent again; Bob's may have arrived twice
    by_user = {n.user_id: n for n in _notifications(purpose="page")}
    assert (by_user[alice.id].status, by_user[alice.id].unconfirmed) == ("sent", 1)
    assert (by_user[bob.id].status, by_user[bob.id].unconfirmed) == ("sent", 2)
    assert by_user[bob.id].receipt.startswith("unconfirmed")
    log = [e.message for e in db.session.scalars(db.select(LogEntry).where(LogEntry.incident_id == incident.id))]
    assert any("interrupted" in m and "sending again" in m for m in log), log
    assert any("not sending it again" in m for m in log), log


def test_a_live_workers_claim_is_left_alone(app, pager):
    incident = open_incident(make_service(None))
    _claimed_page(incident, make_pager("Alice"), pager.httpserver.url_for("/hook/ok"), this_process())
    assert timers.reconcile()["recovered"] == 0
    db.session.commit()
    pager.run()
    assert _notifications()[0].status == "sending" and len(pager.httpserver.log) == 0
