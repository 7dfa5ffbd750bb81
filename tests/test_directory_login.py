"""Logging in with a directory account: the login page, the browser, and the bad cases."""

import pytest
from sqlalchemy import func, select

from openduty.extensions import db
from openduty.models import AuditEntry, User
from tests import factories, ldap_server


@pytest.fixture
def log_in(client, csrf_from):
    def post(login: str, password: str):
        token = csrf_from(client.get("/login").get_data(as_text=True))
        return client.post("/login", data={"email": login, "password": password, "csrf_token": token})

    return post


def _users() -> int:
    return db.session.scalar(select(func.count()).select_from(User))


def test_the_login_page_asks_for_a_username_when_a_directory_is_set(client, ldap_on):
    html = client.get("/login").get_data(as_text=True)
    assert "Username or email" in html and 'type="text"' in html


@pytest.mark.parametrize("login", ["alice", "alice@example.org"])
def test_a_directory_user_logs_in_and_is_created_once(client, ldap_on, log_in, login):
    answer = log_in(login, "alice-pass")
    assert answer.status_code == 302, answer.get_data(as_text=True)
    assert "Welcome, Alice Liddell" in client.get("/").get_data(as_text=True)
    user = User.by_email("alice@example.org")
    assert (user.auth_source, user.is_admin, user.password_hash) == ("ldap", True, None)
    assert _users() == 1
    entries = db.session.scalars(select(AuditEntry).where(AuditEntry.object_type == "user")).all()
    assert [(e.actor, e.action) for e in entries] == [("directory login", "created"), (user.email, "login")]


@pytest.mark.parametrize(
    "login, password, status, message",
    [
        ("alice", "wrong", 401, "Wrong username or password."),
        ("nobody", "x", 401, "Wrong username or password."),
        ("*)(uid=*", "alice-pass", 401, "Wrong username or password."),
        ("carol", "carol-pass", 401, "no email address"),
    ],
)
def test_bad_directory_logins_say_why_and_write_nothing(client, ldap_on, log_in, login, password, status, message):
    answer = log_in(login, password)
    assert answer.status_code == status
    assert message in answer.get_data(as_text=True)
    assert _users() == 0


def test_with_the_directory_down_local_admins_still_log_in(client, app, ldap_on, slapd, log_in, auth):
    factories.make_user(email="admin@example.com", name="Ada Admin", is_admin=True)
    slapd.stop()
    answer = log_in("alice", "alice-pass")
    assert answer.status_code == 503
    assert "The directory (LDAP) is not answering" in answer.get_data(as_text=True)
    assert _users() == 1
    assert log_in("admin@example.com", factories.PASSWORD).status_code == 302


def test_a_local_password_is_never_checked_against_the_directory(client, ldap_on, log_in):
    factories.make_user(email="bob@example.org", name="Local Bob")
    assert log_in("bob@example.org", "bob-pass").status_code == 401  # bob's directory password
    assert log_in("bob@example.org", factories.PASSWORD).status_code == 302


def test_a_deactivated_directory_user_cannot_log_in(client, ldap_on, log_in):
    assert log_in("bob", "bob-pass").status_code == 302
    user = User.by_email("bob@example.org")
    user.active = False
    user.end_sessions()
    db.session.commit()
    answer = log_in("bob", "bob-pass")
    assert answer.status_code == 403
    assert "deactivated" in answer.get_data(as_text=True)


def test_a_directory_user_logs_in_through_the_browser(page, app, live_server, ldap_on):
    app.config.update(LDAP_GROUP_BASE=ldap_server.GROUPS, LDAP_TEAM_GROUPS="(cn=team-*)")
    page.goto(live_server.url + "/login")
    page.fill("input[name=email]", "alice")
    page.fill("input[name=password]", "alice-pass")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Welcome, Alice Liddell")
    assert page.locator("nav a", has_text="Users").count() == 1  # an admin, from the directory's group
    page.goto(live_server.url + "/profile")
    assert "team-databases" in page.locator("#details").inner_text()  # a team, from the directory's groups
