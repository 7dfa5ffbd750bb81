"""Time-travel scenarios (in the spirit of GoAlert's smoke tests): move the clock, run due jobs
with a real worker, and assert on the pages real local servers received."""

from openduty import escalation
from openduty.extensions import db
from openduty.models import Incident, LogEntry, Notification
from tests import factories
from tests.factories_escalation import make_pager, make_policy, make_service, open_incident, trigger_event


def _kinds(incident_id):
    return [e.kind for e in db.session.scalars(db.select(LogEntry).where(LogEntry.incident_id == incident_id).order_by(LogEntry.id))]


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
