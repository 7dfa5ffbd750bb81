"""Bundling throttled SMS pages sends only pages already due (issue 14, defect 1), and pages re-check
maintenance at send time: a page of a service in maintenance is cancelled, never sent nor folded into
another page's message (issue 14, defect 2)."""

from datetime import timedelta

from openduty import clock, timers
from openduty.extensions import db
from openduty.models import Incident, MaintenanceWindow, MaintenanceWindowService, Notification
from tests.factories_escalation import make_pager, make_service, open_incident

NUMBER = "+14155550101"


def _page(incident: Incident, user, after: timedelta, armed: bool = True) -> Notification:
    """A pending SMS page of `incident` to `user`, due `after` from now; its deliver job armed or not."""
    page = Notification(
        incident=incident, user=user, kind="sms", address=NUMBER, purpose="page", send_at=clock.now() + after
    )
    db.session.add(page)
    if armed:
        timers.track_notification(page)
    db.session.commit()
    return page


def _window_without_timers(service, start: timedelta, end: timedelta) -> None:
    """A window written as rows only (as if its start timer had not run yet), so that only the send-time
    check can stop a page."""
    now = clock.now()
    window = MaintenanceWindow(start=now + start, end=now + end, description="")
    window.links = [MaintenanceWindowService(service_id=service.id)]
    db.session.add(window)
    db.session.commit()


def _status(page_id: int) -> Notification:
    return db.session.get(Notification, page_id)


def test_a_bundle_takes_only_pages_already_due(pager):
    alice = make_pager("Alice", {"sms": (NUMBER, 0)})
    service = make_service(None)  # no policy: only the pages written here
    incidents = [open_incident(service, summary=f"Down {n}") for n in range(3)]
    _page(incidents[0], alice, timedelta(0))
    pager.run()
    assert len(pager.pages()) == 1  # the number's slot is taken for a minute
    waiting = _page(incidents[1], alice, timedelta(seconds=30))
    later = _page(incidents[2], alice, timedelta(seconds=100))
    pager.advance(seconds=30)  # throttled: waits for the free slot at 60 s
    pager.advance(seconds=31)
    sms = pager.pages()
    assert len(sms) == 2 and f"#{incidents[1].number}" in sms[1].text
    assert f"#{incidents[2].number}" not in sms[1].text, "a page due in 40 s was sent early"
    assert _status(waiting.id).status == "sent" and _status(later.id).status == "pending"
    pager.advance(seconds=40)  # due at 100 s; the slot frees at 121 s
    assert len(pager.pages()) == 2
    pager.advance(seconds=21)
    sent = _status(later.id)
    assert len(pager.pages()) == 3 and sent.status == "sent" and sent.sent_at >= sent.send_at


def test_a_page_of_a_service_that_entered_maintenance_is_not_sent(pager):
    alice = make_pager("Alice", {"sms": (NUMBER, 0)})
    service = make_service(None)
    incident = open_incident(service)
    page = _page(incident, alice, timedelta(minutes=2))
    _window_without_timers(service, timedelta(minutes=1), timedelta(hours=1))
    pager.advance(minutes=2, seconds=1)
    assert pager.pages() == []
    cancelled = _status(page.id)
    assert cancelled.status == "cancelled" and "maintenance" in cancelled.last_error
    incident = db.session.get(Incident, incident.id)
    assert incident.in_maintenance, "held, so that the window's end escalates it"
    [entry] = [e for e in incident.log_entries if e.kind == "maintenance"]
    assert "not sent" in entry.message and "Alice" in entry.message


def test_a_bundle_never_takes_a_page_of_a_service_in_maintenance(pager):
    alice = make_pager("Alice", {"sms": (NUMBER, 0)})
    working, resting = make_service(None, name="Working"), make_service(None, name="Resting")
    first, second = open_incident(working, summary="First"), open_incident(working, summary="Second")
    quiet = open_incident(resting, summary="Quiet")
    _page(first, alice, timedelta(0))
    pager.run()
    primary = _page(second, alice, timedelta(seconds=30))  # throttled until 60 s, then it bundles
    held = _page(quiet, alice, timedelta(seconds=40), armed=False)  # only a bundle could take it
    _window_without_timers(resting, timedelta(seconds=10), timedelta(hours=1))
    pager.advance(seconds=30)
    pager.advance(seconds=31)
    sms = pager.pages()
    assert len(sms) == 2 and f"#{second.number}" in sms[1].text and f"#{quiet.number}" not in sms[1].text
    assert _status(primary.id).status == "sent" and _status(held.id).status == "cancelled"
    assert any(e.kind == "maintenance" for e in db.session.get(Incident, quiet.id).log_entries)
