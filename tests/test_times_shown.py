"""Every time a page shows is in the viewer's own zone (their profile's setting), with the zone
named, relative times carry the exact time on hover, and timelines go to the second (issue 15,
finding 2). The same moments are read by a user in New York and one in Berlin, around New York's
switch to daylight saving time (Sunday 8 March 2026, 02:00 EST = 07:00 UTC)."""

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest

from openduty import ack_links
from openduty.extensions import db
from openduty.models import MaintenanceWindow
from openduty.views import times
from tests import factories, factories_escalation, factories_schedules

OPENED = datetime(2026, 3, 8, 6, 30, tzinfo=UTC)  # 01:30 EST in New York, 07:30 CET in Berlin
NOW = datetime(2026, 3, 8, 7, 3, tzinfo=UTC)  # 03:03 EDT: New York has sprung forward

VIEWERS = {
    "America/New_York": {
        "opened": "Sun 08 Mar 2026 01:30 EST",
        "opened_seconds": "Sun 08 Mar 2026 01:30:00 EST",
        "next_escalation": "Sun 08 Mar 2026 03:30:15 EDT",
        "until": "Mon 09 Mar 2026 22:00 EDT",
        "override": "Sat 07 Mar 2026 07:00 EST – Mon 09 Mar 2026 08:00 EDT",
        "late_segment": "22:00–23:00",
        "late_day": "2026-03-09",
        "add_start": "2026-03-09T04:00",
    },
    "Europe/Berlin": {
        "opened": "Sun 08 Mar 2026 07:30 CET",
        "opened_seconds": "Sun 08 Mar 2026 07:30:00 CET",
        "next_escalation": "Sun 08 Mar 2026 08:30:15 CET",
        "until": "Tue 10 Mar 2026 03:00 CET",
        "override": "Sat 07 Mar 2026 13:00 – Mon 09 Mar 2026 13:00 CET",
        "late_segment": "03:00–04:00",
        "late_day": "2026-03-10",
        "add_start": "2026-03-09T23:00",
    },
}


def _text(html: str) -> str:
    """The page's words, tags dropped, spaces folded (as a reader sees them)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.fixture
def world(app, clock):
    clock.set(OPENED)
    olga = factories.make_user(email="olga@example.com", name="Olga Oncall")
    policy = factories_escalation.make_policy([(60, [olga])], name="Primary")
    service = factories_escalation.make_service(policy, name="Web")
    incident = factories_escalation.open_incident(service, summary="Disk full on db1")
    incident.next_escalation_at = datetime(2026, 3, 8, 7, 30, 15, tzinfo=UTC)
    # Exactly then (the test clock ticks).
    incident.created_at = incident.last_event_at = OPENED
    for entry in incident.log_entries:
        entry.at = OPENED
    schedule = factories_schedules.make_schedule(name="Primary rota", time_zone="UTC")
    factories_schedules.make_layer(schedule, [olga], start=datetime(2026, 3, 1, 9, 0))
    pete = factories.make_user(email="pete@example.com", name="Pete Standby")
    factories_schedules.make_override(  # Olga hands over to Pete for an hour: her "until"
        schedule, pete, datetime(2026, 3, 10, 2, 0, tzinfo=UTC), datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
    )
    db.session.commit()
    clock.set(NOW)
    return {"incident": incident, "schedule": schedule, "olga": olga, "service": service}


@pytest.fixture(params=sorted(VIEWERS))
def viewer(request, app, client, auth):
    zone = request.param
    user = factories.make_user(email=f"viewer-{zone.split('/')[1].lower()}@example.com", time_zone=zone, is_admin=True)
    auth.login(user.email)
    return {"zone": zone, "user": user, **VIEWERS[zone]}


def test_incident_list_opened_is_relative_with_the_exact_local_time_on_hover(client, world, viewer):
    html = client.get("/incidents").get_data(as_text=True)
    tag = re.search(r'<time datetime="2026-03-08T06:30:00\+00:00" title="([^"]+)">([^<]+)</time>', html)
    assert tag, html
    assert tag.group(1) == f"{viewer['opened_seconds']} ({viewer['zone']})"
    assert tag.group(2) == "33 min ago"
    assert "UTC" not in _text(html)


def test_incident_page_next_escalation_and_timeline_in_the_viewers_zone(client, world, viewer):
    html = client.get(f"/incidents/{world['incident'].id}").get_data(as_text=True)
    text = _text(html)
    assert f"next escalation at {viewer['next_escalation']} ( in 27 min )" in text
    assert f"Opened {viewer['opened']} ( 33 min ago )" in text
    # The timeline, to the second.
    assert re.search(r'<li class="entry entry-trigger">\s*<time [^>]*>' + re.escape(viewer["opened_seconds"]), html)
    assert "UTC" not in text


def test_home_and_schedules_list_say_until_in_the_viewers_zone(client, world, viewer):
    home = _text(client.get("/").get_data(as_text=True))
    assert f"until {viewer['until']}" in home
    listing = client.get("/schedules").get_data(as_text=True)
    assert re.search(r"<td><time [^>]*>" + re.escape(viewer["until"]) + "</time></td>", listing)


def test_calendar_days_and_override_ranges_in_the_viewers_zone(client, world, viewer):
    """The override 02:00–03:00 UTC on 10 March falls on 9 March in New York; the override form
    still takes times in the schedule's zone (UTC), so a day's "+" names that day's edges in it."""
    schedule = world["schedule"]
    olga = world["olga"]
    factories_schedules.make_override(
        schedule, olga, datetime(2026, 3, 7, 12, 0, tzinfo=UTC), datetime(2026, 3, 9, 12, 0, tzinfo=UTC)
    )
    html = client.get(f"/schedules/{schedule.id}?view=week&date=2026-03-09").get_data(as_text=True)
    days = re.split(r'<div class="week-day[^"]*" data-date="', html)[1:]
    late = [d[:10] for d in days if f"{viewer['late_segment']} Pete Standby" in d]
    assert late == [viewer["late_day"]]
    assert f"start={viewer['add_start']}" in html
    assert f"Times in {viewer['zone']}" in _text(html)
    assert viewer["override"] in _text(html)


def test_audit_log_in_the_viewers_zone(client, world, viewer, clock):
    factories_escalation.make_service(name="Audited")  # an audited change, at NOW
    html = client.get("/audit").get_data(as_text=True)
    local = NOW.astimezone(ZoneInfo(viewer["zone"]))
    assert f"{local:%a %d %b %Y %H:%M}" in html
    assert f"Times are in {viewer['zone']}." in _text(html)


def test_maintenance_windows_in_the_viewers_zone(client, world, viewer):
    window = MaintenanceWindow(
        start=datetime(2026, 3, 8, 6, 30, tzinfo=UTC), end=datetime(2026, 3, 9, 6, 30, tzinfo=UTC), description="db"
    )
    window.services.append(world["service"])
    db.session.add(window)
    db.session.commit()
    text = _text(client.get("/maintenance").get_data(as_text=True))
    assert viewer["opened"] in text
    assert "UTC" not in text


def test_acknowledge_link_page_shows_the_paged_users_zone(app, client, world):
    world["olga"].time_zone = "America/New_York"
    db.session.commit()
    path = urlsplit(ack_links.ack_url([world["incident"].id], world["olga"].id)).path
    text = _text(client.get(path).get_data(as_text=True))
    assert f"opened {VIEWERS['America/New_York']['opened']}" in text


@pytest.mark.parametrize(
    ("delta", "said"),
    [
        (timedelta(seconds=10), "just now"),
        (timedelta(minutes=3), "3 min ago"),
        (timedelta(minutes=59), "59 min ago"),
        (timedelta(hours=5), "5 h ago"),
        (timedelta(days=3), "3 days ago"),
        (-timedelta(minutes=4), "in 4 min"),
        (-timedelta(hours=3), "in 3 h"),
    ],
)
def test_relative_times_read_as_people_say_them(delta, said):
    assert times.relative(NOW - delta, NOW) == said
