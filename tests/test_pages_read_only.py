"""Showing a page never writes: views compute the schedule panels, templates only render them, and
calendar tokens are made with the user or by the explicit POST, never while a GET renders."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import event

from openduty.extensions import db
from tests.factories import make_user
from tests.factories_escalation import make_policy, make_service
from tests.factories_schedules import make_layer, make_override, make_schedule

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
def writes(app):
    """Every INSERT, UPDATE or DELETE sent to the database, and every COMMIT, while it is watched."""
    seen: list[str] = []

    def on_statement(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            seen.append(statement)

    def on_commit(conn):
        seen.append("COMMIT")

    event.listen(db.engine, "before_cursor_execute", on_statement)
    event.listen(db.engine, "commit", on_commit)
    yield seen
    event.remove(db.engine, "before_cursor_execute", on_statement)
    event.remove(db.engine, "commit", on_commit)


@pytest.fixture
def world(app, team, clock):
    clock.set(NOW)
    ops = make_schedule(name="Ops", time_zone="Europe/Budapest")
    make_layer(ops, team[:2], datetime(2026, 3, 2, 9), 1, "weeks")
    make_override(ops, team[2], datetime(2026, 3, 5, tzinfo=UTC), datetime(2026, 3, 6, tzinfo=UTC))
    empty = make_schedule(name="Empty")
    policy = make_policy([(0, [ops]), (5, [empty, team[3]])], name="Primary")
    service = make_service(policy, name="Web")
    # A user from before tokens were made with the user (the migration fills these; be safe anyway).
    legacy = make_user(email="legacy@example.com", name="Lee Legacy", is_admin=True)
    legacy.calendar_token = None
    db.session.commit()
    return {"ops": ops, "policy": policy, "service": service, "legacy": legacy, "team": team}


def test_rendering_pages_issues_no_insert_update_or_commit(client, auth, world, writes, admin):
    ops, team = world["ops"], world["team"]
    pages = [
        "/",
        "/profile",
        f"/users/{team[1].id}",
        "/schedules",
        f"/schedules/{ops.id}",
        f"/schedules/{ops.id}?view=week&date=2026-03-05",
        f"/schedules/{ops.id}/shift?at=2026-03-04T12:00:00%2B00:00",
        f"/schedules/{ops.id}/overrides/new",
        f"/services/{world['service'].id}",
        f"/policies/{world['policy'].id}",
    ]
    for email in (admin.email, world["legacy"].email):
        auth.login(email)
        del writes[:]
        for path in pages:
            response = client.get(path)
            assert response.status_code == 200, path
            assert writes == [], f"GET {path} wrote: {writes}"
        auth.logout()
    db.session.refresh(world["legacy"])
    assert world["legacy"].calendar_token is None  # only the explicit POST issues one


def test_the_panels_show_what_the_views_computed(client, auth, world):
    alice = world["team"][0]
    auth.login(alice.email)
    home = client.get("/").get_data(as_text=True)
    assert "On call now" in home and "Nobody on call in Empty" in home and "alice@example.com" in home
    profile = client.get("/profile").get_data(as_text=True)
    assert f"/calendar/users/{alice.id}.ics?token={alice.calendar_token}" in profile
    assert "Shifts in the next 30 days" in profile and "on call now" in profile
    policy = client.get(f"/policies/{world['policy'].id}").get_data(as_text=True)
    assert "Nobody is on call in Empty from now" in policy


def test_users_get_a_calendar_token_when_made_and_a_new_one_only_by_post(client, auth, world, csrf_from):
    legacy = world["legacy"]
    auth.login(legacy.email)
    assert "Issue calendar links" in client.get("/profile").get_data(as_text=True)
    response = client.post("/schedules/calendar-token", data={"csrf_token": auth.csrf_token(), "next": "/profile"})
    assert response.status_code == 302
    db.session.refresh(legacy)
    assert legacy.calendar_token
    assert make_user(email="new@example.com").calendar_token  # made with the user


def test_schedule_pages_and_panels_query_nothing_while_rendering(client, auth, world, admin, queries_while_rendering):
    """The views load what the schedule pages and panels show; the templates only read it."""
    auth.login(admin.email)
    ops = world["ops"]
    for path in (
        "/",
        "/profile",
        "/schedules",
        f"/schedules/{ops.id}",
        f"/schedules/{ops.id}/shift?at=2026-03-04T12:00:00%2B00:00",
        f"/schedules/{ops.id}/overrides/new",
        f"/services/{world['service'].id}",
        f"/policies/{world['policy'].id}",
    ):
        db.session.expire_all()  # as in a fresh request: nothing left loaded by an earlier one
        del queries_while_rendering[:]
        assert client.get(path).status_code == 200, path
        assert queries_while_rendering == [], f"rendering GET {path} queried: {queries_while_rendering}"
