"""Destructive actions ask first (issue 15, finding 3): with JavaScript the button's hx-confirm asks
and htmx posts; without, the button opens a confirmation page (GET, changes nothing) whose form
POSTs. One shared template (templates/confirm.html) and one macro (templates/_confirm.html)."""

import re
from datetime import datetime, timedelta
from html import unescape

import pytest
from sqlalchemy import select

from openduty import clock, maintenance
from openduty.extensions import db
from openduty.models import (
    ApiToken,
    ContactMethod,
    EscalationLevel,
    EscalationPolicy,
    EventRule,
    Integration,
    MaintenanceWindow,
    NotificationRule,
    Schedule,
    ScheduleLayer,
    ScheduleOverride,
    Service,
    Team,
    User,
)
from tests import factories, factories_escalation, factories_events, factories_schedules


@pytest.fixture
def world(app, admin):
    """One of each thing a destructive button removes, and the ids of each."""
    bob = factories.make_user(email="bob@example.com", name="Bob")
    method = factories.make_contact_method(bob, kind="email")
    rule = factories.make_notification_rule(bob, method)
    token, _ = ApiToken.issue(bob, "ci")
    policy = factories_escalation.make_policy([(5, [bob]), (10, [admin])], name="Spare policy")
    service = factories_events.make_service(name="Web")
    integration = factories_events.make_integration(service, name="Nagios")
    factories_events.make_incident(integration)
    schedule = factories_schedules.make_schedule(name="Ops")
    layer = factories_schedules.make_layer(schedule, [bob], datetime(2026, 1, 1))
    start = clock.now() + timedelta(days=1)
    override = factories_schedules.make_override(schedule, bob, start, start + timedelta(days=1))
    team = Team(name="Platform")
    db.session.add(team)
    event_rule = factories_events.make_rule(service, conditions=[("summary", "contains", "noise")])
    window = maintenance.save_window(
        None, {"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat(), "service_ids": [service.id]}
    )
    db.session.commit()
    return {
        "bob": bob.id, "cm": method.id, "rule": rule.id, "token": token.id, "policy": policy.id,
        "level": policy.levels[0].id, "service": service.id, "integration": integration.id,
        "schedule": schedule.id, "layer": layer.id, "override": override.id, "team": team.id,
        "eventrule": event_rule.id, "window": window.id, "key": integration.key,
        "calendar": admin.calendar_token,
    }  # fmt: skip


def _gone(model, name):
    return lambda w: db.session.get(model, w[name]) is None


def _deactivated(w):
    return not db.session.get(User, w["bob"]).active


def _new_key(w):
    return db.session.get(Integration, w["integration"]).key != w["key"]


def _new_calendar(w):
    return db.session.scalar(select(User.calendar_token).where(User.email == "admin@example.com")) != w["calendar"]


# (action path, the page that shows its button, whether the action happened)
CASES = {
    "service": ("/services/{service}/delete", "/services/{service}", _gone(Service, "service")),
    "regenerate key": (
        "/services/{service}/integrations/{integration}/regenerate",
        "/services/{service}",
        _new_key,
    ),
    "integration": (
        "/services/{service}/integrations/{integration}/delete",
        "/services/{service}",
        _gone(Integration, "integration"),
    ),
    "policy": ("/policies/{policy}/delete", "/policies/{policy}", _gone(EscalationPolicy, "policy")),
    "level": ("/policies/{policy}/levels/{level}/delete", "/policies/{policy}", _gone(EscalationLevel, "level")),
    "schedule": ("/schedules/{schedule}/delete", "/schedules/{schedule}", _gone(Schedule, "schedule")),
    "layer": ("/schedules/{schedule}/layers/{layer}/delete", "/schedules/{schedule}", _gone(ScheduleLayer, "layer")),
    "override": (
        "/schedules/{schedule}/overrides/{override}/delete",
        "/schedules/{schedule}",
        _gone(ScheduleOverride, "override"),
    ),
    "calendar links": ("/schedules/calendar-token", "/profile", _new_calendar),
    "deactivate user": ("/users/{bob}/deactivate", "/users/", _deactivated),
    "contact method": ("/users/{bob}/contact-methods/{cm}/delete", "/users/{bob}", _gone(ContactMethod, "cm")),
    "notification rule": (
        "/users/{bob}/notification-rules/{rule}/delete",
        "/users/{bob}",
        _gone(NotificationRule, "rule"),
    ),
    "api token": ("/users/{bob}/tokens/{token}/revoke", "/users/{bob}", _gone(ApiToken, "token")),
    "team": ("/teams/{team}/delete", "/teams/{team}", _gone(Team, "team")),
    "event rule": (
        "/services/{service}/event-rules/{eventrule}/delete",
        "/services/{service}/event-rules",
        _gone(EventRule, "eventrule"),
    ),
    "maintenance window": ("/maintenance/{window}/delete", "/maintenance", _gone(MaintenanceWindow, "window")),
}


def _form_to(html: str, method: str, path: str) -> str | None:
    """The <form> element of `html` that sends `method` to `path`, or None."""
    for form in re.findall(r"<form\b[^>]*>", html):
        if f'action="{path}"' in unescape(form) and f'method="{method}"' in form:
            return form
    return None


@pytest.mark.parametrize("case", CASES)
def test_a_destructive_button_asks_first(client, auth, admin, world, case):
    path, page, happened = (part.format(**world) if isinstance(part, str) else part for part in CASES[case])
    auth.login(admin.email)

    button = _form_to(client.get(page).get_data(as_text=True), "get", path)
    assert button is not None, f"no button for {path} on {page}"
    assert f'hx-post="{path}"' in button and "hx-confirm=" in button

    confirm = client.get(path)
    html = confirm.get_data(as_text=True)
    assert confirm.status_code == 200 and 'id="confirm"' in html
    assert _form_to(html, "post", path) is not None
    assert not happened(world), "a GET changed something"

    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    assert client.post(path, data={"csrf_token": token}).status_code in (302, 303)
    db.session.expire_all()
    assert happened(world)


def test_htmx_posts_are_sent_to_the_next_page(client, auth, admin, world):
    """htmx would follow a redirect itself and put the next page into the button: it gets HX-Redirect."""
    auth.login(admin.email)
    headers = {"HX-Request": "true", "X-CSRFToken": auth.csrf_token()}
    response = client.post(f"/services/{world['service']}/delete", headers=headers)
    assert response.status_code == 204 and response.headers["HX-Redirect"] == "/services"
    assert "deleted" in client.get("/services").get_data(as_text=True)


def test_members_get_no_confirmation_page_for_what_they_cannot_do(client, auth, world):
    auth.login("bob@example.com")
    assert client.get(f"/services/{world['service']}/delete").status_code == 403
    assert client.get(f"/users/{world['bob']}/deactivate").status_code == 403
    assert db.session.get(Service, world["service"]) is not None
