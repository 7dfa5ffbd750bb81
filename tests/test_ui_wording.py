"""What pages say (issue 15, findings 7 and 9): dates asked for in people's words, feed labels that
match their URLs, contact-method help that matches what is accepted, "Every week", every user's
role, and a profile link that says it is the profile."""

import re
from datetime import datetime

import pytest

from openduty.extensions import db
from openduty.models import Team, TeamMember
from tests import factories, factories_events, factories_schedules


def test_form_dates_are_asked_for_in_words(client, auth, admin):
    service = factories_events.make_service(name="Web")
    schedule = factories_schedules.make_schedule(name="Ops")
    auth.login(admin.email)
    token = auth.csrf_token()
    window = client.post(
        "/maintenance/new", data={"csrf_token": token, "start": "soon", "end": "", "service_ids": service.id}
    )
    override = client.post(
        f"/schedules/{schedule.id}/overrides",
        data={"csrf_token": token, "user_id": admin.id, "start": "soon", "end": "x"},
    )
    layer = client.post(
        f"/schedules/{schedule.id}/layers",
        data={"csrf_token": token, "name": "L", "start": "monday", "shift_length": "1", "shift_unit": "days",
              "participants": admin.email},
    )  # fmt: skip
    for response in (window, override, layer):
        page = response.get_data(as_text=True)
        assert response.status_code == 422 and "ISO 8601" not in page
        assert "is not a date and time" in page and "2026-0" in page
    assert "Start is not a date and time, e.g. 2026-03-01 09:00." in window.get_data(as_text=True)


def test_feed_labels_name_the_scheme_the_url_has(client, auth, admin, app):
    """BASE_URL is http here: the feed is labelled http, not https."""
    schedule = factories_schedules.make_schedule(name="Ops")
    auth.login(admin.email)
    assert app.config["BASE_URL"].startswith("http://")
    profile = client.get("/profile").get_data(as_text=True)
    assert "Feed URL (http)" in profile and "(https)" not in profile
    page = client.get(f"/schedules/{schedule.id}").get_data(as_text=True)
    assert re.search(r"<label>Feed URL \(http\) <input readonly value=\"http://", page)
    assert "<label>https" not in page


def test_webhook_help_says_what_is_accepted(client, auth, admin, post_form):
    auth.login(admin.email)
    page = client.get("/profile").get_data(as_text=True)
    assert "Slack and webhook:\n      an http:// or https:// URL" in page
    assert post_form(
        f"/users/{admin.id}/contact-methods", {"kind": "webhook", "address": "http://8.8.8.8/hook"}
    ).status_code in (200, 302)


def test_every_one_week_is_every_week(client, auth, admin):
    schedule = factories_schedules.make_schedule(name="Ops")
    factories_schedules.make_layer(schedule, [admin], datetime(2026, 1, 5, 9), shift_length=1, shift_unit="weeks")
    factories_schedules.make_layer(schedule, [admin], datetime(2026, 1, 5, 9), shift_length=3, shift_unit="days")
    auth.login(admin.email)
    page = client.get(f"/schedules/{schedule.id}").get_data(as_text=True)
    assert "Every week from" in page and "Every 3 days from" in page and "Every 1 weeks" not in page


def test_every_user_has_a_role_in_the_list(client, auth, admin):
    member = factories.make_user(name="Mia Member")
    factories.make_user(name="Otto Observer", observer=True)
    team = Team(name="Platform")
    db.session.add(team)
    db.session.flush()
    db.session.add(TeamMember(team_id=team.id, user_id=member.id, role="manager"))
    db.session.commit()
    auth.login(admin.email)
    page = client.get("/users/").get_data(as_text=True)
    cells = r'<a href="/users/\d+">([^<]+)</a></td>\s*<td>[^<]*</td>\s*<td>[^<]*</td>\s*<td>(.*?)</td>'
    roles = dict(re.findall(cells, page, re.S))
    assert all(re.search(r"\w", cell) for cell in roles.values()), roles
    assert "member" in roles["Mia Member"] and "manager of Platform" in roles["Mia Member"]
    assert "observer" in roles["Otto Observer"] and "admin" in roles[admin.name]


def test_the_account_link_says_it_is_the_profile(client, auth, admin):
    auth.login(admin.email)
    page = client.get("/").get_data(as_text=True)
    link = re.search(r'<div class="account">\s*<a href="/profile"[^>]*>([^<]+)</a>', page)
    assert link and link.group(1) == f"My profile ({admin.name})"


@pytest.mark.parametrize(
    ("index", "new", "creates"),
    [
        ("/services", "/services/new", "/services/new"),
        ("/users/", "/users/new", "/users/new"),
        ("/schedules", "/schedules/new", "/schedules"),
        ("/policies", "/policies/new", "/policies"),
        ("/teams", "/teams/new", "/teams"),
        ("/maintenance", "/maintenance/new", "/maintenance/new"),
    ],
)
def test_every_kind_is_created_on_its_own_page(client, auth, admin, index, new, creates):
    """Issue 15, finding 9: users and services had their own "new" pages, schedules, policies and teams
    an inline form under their list. Now every list has a "New ..." button at its top, to a form page."""
    auth.login(admin.email)
    listing = client.get(index).get_data(as_text=True)
    assert re.search(
        rf'<div class="row spread">\s*<h1>[^<]+</h1>\s*<a class="button primary" href="{new}">New ',
        listing,
    )
    assert f'action="{creates}"' not in listing, "the list page has no create form of its own"
    form = client.get(new)
    assert form.status_code == 200 and "<h1>New " in form.get_data(as_text=True)
    assert '<form method="post"' in form.get_data(as_text=True)


def test_a_bad_new_schedule_is_shown_again_on_its_page(client, auth, admin):
    auth.login(admin.email)
    response = client.post(
        "/schedules", data={"csrf_token": auth.csrf_token(), "name": "Ops", "time_zone": "Mars/Olympus"}
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "<h1>New schedule</h1>" in page and 'value="Ops"' in page
