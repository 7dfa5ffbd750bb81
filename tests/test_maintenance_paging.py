"""What maintenance windows do to paging, with the clock moved and a real worker running the timers:
nobody is paged during a window; its start cancels queued pages and holds escalations; its end
escalates from level 1 whatever is still open and unacknowledged (issue 13 part 3, issue 15 item 8)."""

from datetime import timedelta

from sqlalchemy import event

from openduty import clock, incidents, maintenance
from openduty.event_commit import apply_and_commit
from openduty.events import Event
from openduty.extensions import db
from openduty.models import Incident, MaintenanceWindow, Notification
from tests import factories_events
from tests.factories_escalation import make_pager, make_policy, make_service, open_incident, trigger_event


def window(services, start: timedelta, end: timedelta, description: str = "") -> MaintenanceWindow:
    """A window from now + `start` to now + `end`, made as the pages and the API make one."""
    now = clock.now()
    data = {"start": (now + start).isoformat(), "end": (now + end).isoformat(), "description": description,
            "service_ids": [s.id for s in services]}  # fmt: skip
    made = maintenance.save_window(None, data)
    db.session.commit()
    return made


def _incident(incident_id: int) -> Incident:
    return db.session.get(Incident, incident_id)


def _kinds(incident_id: int) -> list[str]:
    return [e.kind for e in _incident(incident_id).log_entries]


def test_an_incident_opened_during_a_window_escalates_when_it_ends(pager):
    alice = make_pager("Alice", {"sms": ("+14155550101", 0)})
    service = make_service(make_policy([(5, [alice])]))
    window([service], timedelta(0), timedelta(minutes=30))
    incident = trigger_event(service, summary="Disk full", dedup_key="disk")
    trigger_event(service, summary="Disk still full", dedup_key="disk")  # deduplicated as usual
    pager.run()
    held = _incident(incident.id)
    assert held.in_maintenance and held.alert_count == 2 and held.next_escalation_at is None
    pager.advance(minutes=29, seconds=50)
    assert pager.pages() == []
    pager.advance(seconds=11)
    assert pager.who() == [("sms", "+14155550101")]
    resumed = _incident(incident.id)
    assert not resumed.in_maintenance and resumed.escalation_level == 1
    kinds = _kinds(incident.id)
    assert kinds.index("maintenance") < kinds.index("maintenance_end") < kinds.index("escalate")


def test_a_window_start_cancels_queued_pages_and_holds_the_escalation(pager):
    alice = make_pager("Alice", {"sms": ("+14155550101", 0), "email": ("alice@example.com", 3)})
    bob = make_pager("Bob", {"sms": ("+14155550102", 0)})
    service = make_service(make_policy([(5, [alice]), (5, [bob])]))
    incident = open_incident(service)
    pager.run()
    assert pager.who() == [("sms", "+14155550101")]
    window([service], timedelta(minutes=1), timedelta(minutes=30), description="Database upgrade")
    pager.advance(minutes=1, seconds=1)  # the start timer fires
    emails = db.session.scalars(db.select(Notification).where(Notification.kind == "email")).all()
    assert [n.status for n in emails] == ["cancelled"]
    held = _incident(incident.id)
    assert held.in_maintenance and held.next_escalation_at is None
    [entry] = [e for e in held.log_entries if e.kind == "maintenance"]
    assert "Database upgrade" in entry.message and "pending pages cancelled" in entry.message
    pager.advance(minutes=20)
    assert pager.who() == [("sms", "+14155550101")], "neither the queued email nor level 2 went out"
    pager.advance(minutes=9)  # the window ends at 31 min from the start: level 1 again
    assert pager.who() == [("sms", "+14155550101"), ("sms", "+14155550101")]
    pager.advance(minutes=5, seconds=1)
    assert ("sms", "+14155550102") in pager.who()


def test_an_incident_acknowledged_during_the_window_is_not_escalated_at_its_end(pager):
    alice = make_pager("Alice", {"sms": ("+14155550101", 0)})
    service = make_service(make_policy([(5, [alice])]))
    window([service], timedelta(0), timedelta(minutes=10))
    incident = trigger_event(service)
    incidents.acknowledge(_incident(incident.id), by=alice, channel="web")
    db.session.commit()
    pager.advance(minutes=11)
    assert pager.pages() == []
    assert not _incident(incident.id).in_maintenance


def test_overlapping_windows_resume_only_at_the_end_of_the_last(pager):
    alice = make_pager("Alice", {"sms": ("+14155550101", 0)})
    service = make_service(make_policy([(5, [alice])]))
    other = make_service(make_policy([(5, [alice])]))
    window([service, other], timedelta(0), timedelta(minutes=30))
    window([service], timedelta(minutes=20), timedelta(minutes=60))
    on_service, on_other = trigger_event(service, dedup_key="a"), trigger_event(other, dedup_key="b")
    pager.advance(minutes=30, seconds=1)
    assert len(pager.pages()) == 1, "the other service resumed at 30 min"
    assert _incident(on_service.id).in_maintenance and not _incident(on_other.id).in_maintenance
    pager.advance(minutes=29)
    assert len(pager.pages()) == 1
    pager.advance(minutes=1)
    assert len(pager.pages()) == 2 and not _incident(on_service.id).in_maintenance


def test_ending_or_deleting_a_current_window_resumes_at_once(pager):
    alice = make_pager("Alice", {"sms": ("+14155550101", 0)})
    bob = make_pager("Bob", {"sms": ("+14155550102", 0)})
    first, second = make_service(make_policy([(5, [alice])])), make_service(make_policy([(5, [bob])]))
    ending = window([first], timedelta(0), timedelta(hours=2))
    deleted = window([second], timedelta(0), timedelta(hours=2))
    trigger_event(first, dedup_key="a")
    trigger_event(second, dedup_key="b")
    pager.advance(minutes=5)
    assert pager.pages() == []
    maintenance.end_now(db.session.get(MaintenanceWindow, ending.id))
    db.session.commit()
    pager.run()
    assert len(pager.pages()) == 1
    maintenance.delete_window(db.session.get(MaintenanceWindow, deleted.id))
    db.session.commit()
    pager.run()
    assert len(pager.pages()) == 2
    pager.advance(hours=3)  # the cancelled timers never fire: nobody is paged again
    assert len(pager.pages()) == 2


def test_ingest_looks_up_maintenance_in_its_upsert_not_in_a_query_of_its_own(app, clock):
    services = [make_service(None) for _ in range(3)]
    keys = [factories_events.make_integration(s).key for s in services]
    window([services[0]], timedelta(0), timedelta(hours=1))
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        outcomes = apply_and_commit([Event(key, "trigger", f"k{n}", "Down") for n, key in enumerate(keys * 2)])
        opened = [o.incident_id for o in outcomes if o.result == "opened"]
        first_batch = list(statements)
        del statements[:]
        apply_and_commit([Event(key, "trigger", f"k{n}", "Again") for n, key in enumerate(keys)])
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert len(opened) == 6
    for batch in (first_batch, statements):  # new incidents, then duplicates
        lookups = [s for s in batch if "maintenance_window_services" in s]
        assert lookups and all(s.startswith("INSERT INTO incidents") for s in lookups), "read by the upsert itself"
    held = {i.id for i in db.session.scalars(db.select(Incident).where(Incident.in_maintenance.is_(True)))}
    assert held == {o for o in opened if _incident(o).service_id == services[0].id} and len(held) == 2
