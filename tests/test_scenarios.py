"""Time-travel scenarios (in the spirit of GoAlert's smoke tests): move the clock, run due jobs
with a real worker, and assert on the pages real local servers received."""

from openduty import incidents
from openduty.delivery import RETRY_WINDOW_SECONDS
from openduty.extensions import db
from openduty.models import Incident, LogEntry, Notification
from tests import factories, factories_events
from tests.factories_escalation import make_pager, make_policy, make_service, open_incident


def _kinds(incident_id):
    return [
        e.kind
        for e in db.session.scalars(
            db.select(LogEntry).where(LogEntry.incident_id == incident_id).order_by(LogEntry.id)
        )
    ]


def test_two_levels_with_a_delay(pager):
    alice = make_pager("Alice", {"sms": ("+14155550101", 0), "email": ("alice@example.com", 1)})
    bob = make_pager("Bob", {"webhook": (pager.httpserver.url_for("/hook/ok"), 0)})
    service = make_service(make_policy([(5, [alice]), (5, [bob])]))
    incident = open_incident(service)

    pager.run()
    assert pager.who() == [("sms", "+14155550101")]
    pager.advance(seconds=50)
    assert pager.who() == [("sms", "+14155550101")]
    pager.advance(seconds=15)
    assert pager.who() == [("email", "alice@example.com"), ("sms", "+14155550101")]
    pager.advance(minutes=3, seconds=50)
    assert len(pager.pages()) == 2  # bob not yet: level 2 is due at 5 min
    pager.advance(minutes=1)
    assert ("webhook", "/hook/ok") in pager.who()
    assert len(pager.pages()) == 3
    assert db.session.get(Incident, incident.id).escalation_level == 2


def test_repeat_loops_then_exhausted(pager):
    alice = make_pager("Alice", {"sms": ("+14155550101", 0)})
    bob = make_pager("Bob", {"pushover": ("b" * 30, 0)})
    service = make_service(make_policy([(2, [alice]), (3, [bob])], repeat_count=1))
    incident = open_incident(service)
    pager.run()
    # 0: Alice, 2: Bob, 5: Alice (pass 2), 7: Bob; the SMS throttle never bites (5 min apart).
    pager.walk(minutes=7.5)
    alice_sms, bob_push = ("sms", "+14155550101"), ("pushover", "b" * 30)
    assert pager.who() == [alice_sms, bob_push, alice_sms, bob_push]
    pager.advance(minutes=10)
    assert len(pager.pages()) == 4
    kinds = _kinds(incident.id)
    assert kinds.count("escalate") == 4 and kinds.count("repeat") == 1
    assert kinds[-1] == "escalation_exhausted"
    assert db.session.get(Incident, incident.id).next_escalation_at is None


def test_acknowledge_stops_everything(pager):
    alice = make_pager("Alice", {"email": ("alice@example.com", 0), "sms": ("+14155550101", 3)})
    bob = make_pager("Bob", {"sms": ("+14155550102", 0)})
    service = make_service(make_policy([(5, [alice]), (5, [bob])], repeat_count=3))
    incident = open_incident(service)
    pager.run()
    assert pager.who() == [("email", "alice@example.com")]
    pager.advance(minutes=1)
    incident = db.session.get(Incident, incident.id)
    assert incidents.acknowledge(incident, by=alice, channel="web")
    db.session.commit()
    pager.advance(minutes=30)
    assert pager.who() == [("email", "alice@example.com")]
    assert db.session.scalar(db.select(Notification.status).where(Notification.kind == "sms")) == "cancelled"


def test_ack_timeout_retriggers_from_level_one(pager):
    alice = make_pager("Alice", {"sms": ("+14155550101", 0)})
    bob = make_pager("Bob", {"sms": ("+14155550102", 0)})
    service = make_service(make_policy([(5, [alice]), (5, [bob])]), ack_timeout_minutes=10)
    incident = open_incident(service)
    pager.run()
    pager.advance(minutes=5, seconds=1)
    assert pager.who() == [("sms", "+14155550101"), ("sms", "+14155550102")]
    incidents.acknowledge(db.session.get(Incident, incident.id), by=bob)
    db.session.commit()
    pager.advance(minutes=9, seconds=50)
    assert len(pager.pages()) == 2
    pager.advance(seconds=15)
    incident = db.session.get(Incident, incident.id)
    assert incident.status == "triggered" and incident.escalation_level == 1
    assert pager.who()[-1] == ("sms", "+14155550101")
    assert "retrigger" in _kinds(incident.id)


def test_snooze_then_retrigger(pager):
    alice = make_pager("Alice", {"webhook": (pager.httpserver.url_for("/hook/ok"), 0)})
    service = make_service(make_policy([(5, [alice])]))
    incident = open_incident(service)
    pager.run()
    incident = db.session.get(Incident, incident.id)
    incidents.snooze(incident, 30, by=alice, channel="web")
    db.session.commit()
    assert incident.status == "acknowledged"
    pager.advance(minutes=29)
    assert len(pager.pages()) == 1
    pager.advance(minutes=1, seconds=2)
    assert len(pager.pages()) == 2
    assert db.session.get(Incident, incident.id).status == "triggered"


def test_resolve_stops_paging_and_sends_resolve_notices(pager):
    alice = make_pager("Alice", {"slack": (pager.httpserver.url_for("/slack/ok"), 0), "email": ("a@example.com", 0)})
    bob = make_pager("Bob", {"sms": ("+14155550102", 0)})
    carol = make_pager("Carol", {"sms": ("+14155550103", 0)})
    service = make_service(make_policy([(5, [alice]), (5, [bob]), (5, [carol])]))
    incident = open_incident(service)
    pager.run()
    pager.advance(minutes=5, seconds=1)
    assert len(pager.pages()) == 3
    incidents.resolve(db.session.get(Incident, incident.id), by=bob, channel="web")
    db.session.commit()
    pager.advance(minutes=20)
    assert len(pager.pages()) == 3, pager.who(None)  # carol never paged
    # Alice gets a notice on both channels that paged her; Bob resolved it himself.
    assert sorted(pager.who("resolve")) == [("email", "a@example.com"), ("slack", "/slack/ok")]


def test_deactivated_user_is_skipped_and_empty_level_skipped_at_once(pager):
    ghost = make_pager("Ghost", {"sms": ("+14155550109", 0)}, active=False)
    bob = make_pager("Bob", {"sms": ("+14155550102", 0)})
    service = make_service(make_policy([(10, [ghost]), (5, [bob])]))
    incident = open_incident(service)
    pager.run()
    assert pager.who() == [("sms", "+14155550102")]
    assert any("nobody to page" in e.message for e in db.session.get(Incident, incident.id).log_entries)


def test_user_without_rules_is_emailed_at_once(pager):
    dora = factories.make_user(name="Dora", email="dora@example.com")
    open_incident(make_service(make_policy([(5, [dora])])), summary="Queue stuck")
    pager.run()
    assert pager.who() == [("email", "dora@example.com")]
    message = pager.pages()[0].raw["message"]
    assert "Queue stuck" in message["Subject"]
    assert message.get_body(("plain",)).get_content().count("/ack/") == 1
    assert message.get_body(("html",)) is not None
    assert message["In-Reply-To"].startswith("<openduty.incident-")


def test_sms_throttle_folds_pages_to_one_number(pager):
    alice = make_pager("Alice", {"sms": ("+14155550101", 0)})
    service = make_service(make_policy([(30, [alice])]))
    first = open_incident(service, summary="DB down")
    pager.run()
    second = open_incident(service, summary="API down")
    third = open_incident(service, summary="Queue down")
    pager.run()
    assert len(pager.pages()) == 1
    pager.advance(seconds=61)
    sms = pager.pages()
    assert len(sms) == 2
    assert f"#{second.number}" in sms[1].text and f"#{third.number}" in sms[1].text
    assert first.number != second.number


def test_transient_failure_retries_until_the_window_ends_and_permanent_fails_at_once(pager):

    alice = make_pager("Alice", {"webhook": (pager.httpserver.url_for("/hook/down"), 0)})
    bob = make_pager("Bob", {"webhook": (pager.httpserver.url_for("/hook/gone"), 0)})
    incident = open_incident(make_service(make_policy([(60, [alice, bob])])))
    pager.run()
    assert len(pager.pages()) == 2
    pager.advance(seconds=2)
    pager.advance(seconds=5)
    attempts = [p.to for p in pager.pages()]
    assert attempts.count("/hook/down") == 3 and attempts.count("/hook/gone") == 1
    for _ in range(RETRY_WINDOW_SECONDS // 30 + 2):  # run-jobs releases every due retry at each step
        pager.advance(seconds=30)
    statuses = dict(db.session.execute(db.select(Notification.address, Notification.status)).all())
    assert statuses == {
        pager.httpserver.url_for("/hook/down"): "failed",
        pager.httpserver.url_for("/hook/gone"): "failed",
    }
    attempts = [p.to for p in pager.pages()]
    assert 20 <= attempts.count("/hook/down") <= 30, attempts.count("/hook/down")  # every 5 s or when due
    failures = [e.message for e in db.session.get(Incident, incident.id).log_entries if e.kind == "notify_failed"]
    assert "Gave up" in failures[-1] and len(failures) < 10, failures


def test_flapping_source_triggering_100_times_pages_once(pager, client):
    alice = make_pager("Alice", {"sms": ("+14155550101", 0)})
    service = make_service(make_policy([(5, [alice])]))

    integration = factories_events.make_integration(service)
    for _ in range(100):
        response = client.post(
            "/v2/enqueue",
            json={"routing_key": integration.key, "event_action": "trigger", "dedup_key": "flap",
                  "payload": {"summary": "CPU flapping", "source": "web-1", "severity": "critical"}},
        )  # fmt: skip
        assert response.status_code == 202, response.get_data(as_text=True)
    pager.run()
    pager.advance(minutes=3)
    assert pager.who() == [("sms", "+14155550101")]
    assert db.session.scalar(db.select(db.func.count()).select_from(Incident)) == 1
