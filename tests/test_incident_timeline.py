"""The incident page shows the newest timeline entries and pages the rest; its poll sends only what is
new, and nothing (204) when nothing is (issue 11: a long timeline is not re-sent every 10 s)."""

import re

import pytest

from openduty.extensions import db
from openduty.incidents import TIMELINE_PAGE
from openduty.models import LogEntry
from tests.factories_escalation import make_policy, make_service, open_incident

HTMX = {"HX-Request": "true"}


@pytest.fixture
def incident(app, admin):
    incident = open_incident(make_service(make_policy([(0, [admin])])), summary="Disk full on db1")
    for n in range(1, 120):
        incident.log("note", f"Entry {n}.", by=admin)
    db.session.commit()
    return incident


def _entries(html: str) -> list[str]:
    return re.findall(r"(Entry \d+)\.", html)


def _newest_id(incident_id: int) -> int:
    return db.session.scalar(db.select(db.func.max(LogEntry.id)).where(LogEntry.incident_id == incident_id))


def test_the_page_shows_the_newest_entries_and_a_way_to_older_ones(client, auth, admin, incident):
    auth.login(admin.email)
    html = client.get(f"/incidents/{incident.id}").get_data(as_text=True)
    shown = _entries(html)
    assert len(shown) == TIMELINE_PAGE and shown[0] == "Entry 119" and shown[-1] == "Entry 70"
    assert "Show older entries" in html
    assert f'after={_newest_id(incident.id)}"' in html  # the poller asks only for what is newer


def test_older_entries_come_a_page_at_a_time_until_the_first(client, auth, admin, incident):
    auth.login(admin.email)
    html = client.get(f"/incidents/{incident.id}").get_data(as_text=True)
    seen = _entries(html)
    while (link := re.search(r'hx-get="([^"]*before=\d+)"', html)) is not None:
        html = client.get(link.group(1).replace("&amp;", "&"), headers=HTMX).get_data(as_text=True)
        assert "<html" not in html  # a block, not a page
        seen += _entries(html)
    assert seen == [f"Entry {n}" for n in range(119, 0, -1)]
    assert "Triggered" in html  # the first entry of all, on the last page


def test_older_entries_work_without_javascript(client, auth, admin, incident):
    auth.login(admin.email)
    html = client.get(f"/incidents/{incident.id}").get_data(as_text=True)
    href = re.search(r'<a href="([^"]*before=\d+)#timeline"', html).group(1).replace("&amp;", "&")
    older = client.get(href).get_data(as_text=True)
    assert "<html" in older and "Back to the newest entries" in older
    assert _entries(older)[0] == "Entry 69"
    assert "timeline-poll" not in older  # an older page does not poll


def test_the_poll_sends_nothing_when_nothing_changed_and_only_what_is_new(client, auth, admin, incident):
    auth.login(admin.email)
    newest = _newest_id(incident.id)
    quiet = client.get(f"/incidents/{incident.id}?after={newest}", headers=HTMX)
    assert quiet.status_code == 204 and quiet.get_data() == b""
    incident.log("note", "Entry 120.", by=admin)
    db.session.commit()
    fresh = client.get(f"/incidents/{incident.id}?after={newest}", headers=HTMX)
    body = fresh.get_data(as_text=True)
    assert fresh.status_code == 200 and _entries(body) == ["Entry 120"]
    assert f"after={_newest_id(incident.id)}" in body  # the next poll starts after it


@pytest.mark.parametrize("query", ["after=x", "before=-1", "after=99999999999"])
def test_bad_positions_are_refused(client, auth, admin, incident, query):
    auth.login(admin.email)
    answer = client.get(f"/incidents/{incident.id}?{query}", headers=HTMX)
    assert answer.status_code == 400
