"""Forgotten passwords (a one-use, expiring link emailed through a real SMTP server), the admin's
`reset-password` command, and read-only API tokens."""

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from openduty import password_reset
from openduty.extensions import db
from openduty.models import ApiToken, AuditEntry, User
from tests import factories


@pytest.fixture
def ann(app):
    return factories.make_user(email="ann@example.com", name="Ann")


def _ask(client, csrf_from, email: str):
    token = csrf_from(client.get("/password/forgot").get_data(as_text=True))
    return client.post("/password/forgot", data={"csrf_token": token, "email": email})


def _link(smtp_server) -> str:
    [message] = smtp_server.messages
    assert message["To"] == "ann@example.com" and message["Subject"] == "Reset your Openduty password"
    return re.search(r"http://\S+/password/reset/\S+", message.get_content()).group(0)


def _choose(client, csrf_from, path: str, password: str, confirm: str | None = None):
    page = client.get(path)
    token = csrf_from(page.get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, "password": password, "confirm": confirm or password})


def test_a_forgotten_password_is_reset_by_the_emailed_link_once(client, auth, csrf_from, ann, smtp_server, run_jobs):
    other = client.application.test_client()
    type(auth)(other).login(ann.email)  # a session elsewhere, which the reset ends
    assert "Forgot your password?" in client.get("/login").get_data(as_text=True)
    answer = _ask(client, csrf_from, "Ann@Example.com")
    assert answer.status_code == 200 and "a link to choose a new one is on its way" in answer.get_data(as_text=True)
    run_jobs()
    path = "/password/reset/" + _link(smtp_server).rsplit("/password/reset/", 1)[1]
    assert "For ann@example.com" in client.get(path).get_data(as_text=True)
    done = _choose(client, csrf_from, path, "a-brand-new-one")
    assert done.status_code == 302 and done.headers["Location"].endswith("/login")
    assert auth.login(ann.email, "a-brand-new-one").status_code == 302
    assert other.get("/").status_code == 302  # the other session ended
    used = client.get(path)
    assert used.status_code == 410 and "already used" in used.get_data(as_text=True)
    [entry] = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "changed")).all()
    assert entry.actor == "ann@example.com (password reset link)" and entry.changes["password_hash"][1].startswith(
        "set ("
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: None,  # no such account
        lambda: factories.make_user(email="ann@example.com", name="Ann", active=False),
        lambda: factories.make_user(email="ann@example.com", name="Ann", password=None),  # paged only
        lambda: factories.make_user(email="ann@example.com", name="Ann", auth_source="ldap"),
    ],
    ids=["unknown", "deactivated", "no-password", "directory"],
)
def test_accounts_that_cannot_reset_get_the_same_answer_and_no_email(client, csrf_from, smtp_server, run_jobs, make):
    make()
    answer = _ask(client, csrf_from, "ann@example.com")
    assert answer.status_code == 200 and "a link to choose a new one is on its way" in answer.get_data(as_text=True)
    run_jobs()
    assert smtp_server.messages == []


def test_links_are_limited_per_address(app, client, csrf_from, ann, smtp_server, run_jobs):
    app.config["PASSWORD_RESET_LIMIT"] = 2
    for _ in range(4):
        assert _ask(client, csrf_from, ann.email).status_code == 200
    run_jobs()
    assert len(smtp_server.messages) == 2


def test_expired_altered_and_stale_links_say_what_to_do(app, client, csrf_from, ann, clock):
    url = password_reset.reset_url(ann)
    path = "/password/reset/" + url.rsplit("/password/reset/", 1)[1]
    altered = client.get(path[:-3] + "abc")
    assert altered.status_code == 400 and "Ask for a new one" in altered.get_data(as_text=True)
    ann.end_sessions()  # "log out everywhere" also ends reset links sent before
    db.session.commit()
    assert client.get(path).status_code == 410
    fresh = "/password/reset/" + password_reset.reset_url(ann).rsplit("/password/reset/", 1)[1]
    assert client.get(fresh).status_code == 200
    clock.advance(seconds=app.config["PASSWORD_RESET_MAX_AGE_SECONDS"] + 5)
    expired = client.get(fresh)
    assert expired.status_code == 410 and "expired" in expired.get_data(as_text=True)


@pytest.mark.parametrize(
    ("password", "confirm", "message"),
    [("short", "short", "at least 8"), ("long-enough-1", "different-one", "differ"), ("", "", "Enter a password")],
)
def test_bad_new_passwords_change_nothing(client, csrf_from, ann, password, confirm, message):
    before = ann.password_hash
    path = "/password/reset/" + password_reset.reset_url(ann).rsplit("/password/reset/", 1)[1]
    answer = _choose(client, csrf_from, path, password, confirm)
    assert answer.status_code == 422 and message in answer.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, ann.id).password_hash == before


def test_bad_forgot_input_is_refused(client, csrf_from):
    assert _ask(client, csrf_from, "x" * 300 + "@example.com").status_code == 400
    assert _ask(client, csrf_from, "").status_code == 400


def test_reset_password_command(runner, ann, auth):
    result = runner.invoke(args=["openduty", "reset-password", "ann@example.com"])
    assert result.exit_code == 0 and "Password (shown once):" in result.output
    password = result.output.rsplit(": ", 1)[1].strip()
    assert auth.login(ann.email, password).status_code == 302
    chosen = runner.invoke(args=["openduty", "reset-password", "ann@example.com", "--password", "chosen-pass-1"])
    assert chosen.exit_code == 0 and "shown once" not in chosen.output
    entries = db.session.scalars(select(AuditEntry).where(AuditEntry.actor == "cli")).all()
    assert len(entries) == 2


def test_a_locked_out_admin_finds_the_command_where_they_look(client, csrf_from, runner, auth, admin):
    """Issue 15, finding 11: with SMTP not set up, the only admin had no way back in that the pages or
    the README told them about. The login page points at the forgot page, which names the command."""
    assert "admins locked out" in client.get("/login").get_data(as_text=True)
    pages = [
        client.get("/password/forgot").get_data(as_text=True),
        _ask(client, csrf_from, admin.email).get_data(as_text=True),
    ]
    for page in pages:
        command = re.search(r"<code>flask --app app openduty (reset-password) EMAIL</code>", page)
        assert command, "the forgot page names the command"
    result = runner.invoke(args=["openduty", command.group(1), admin.email])
    password = result.output.rsplit(": ", 1)[1].strip()
    assert auth.login(admin.email, password).status_code == 302
    root = Path(__file__).resolve().parent.parent
    for doc in ("README.md", "docs/users.md"):
        text = (root / doc).read_text()
        assert "Locked out" in text and "openduty reset-password admin@example.com" in text, doc


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody@example.com"], "No user with email"),
        (["ann@example.com", "--password", "short"], "at least 8"),
    ],
)
def test_reset_password_command_refuses_bad_input(runner, ann, args, message):
    before = ann.password_hash
    result = runner.invoke(args=["openduty", "reset-password", *args])
    assert result.exit_code != 0 and message in result.output
    db.session.expire_all()
    assert db.session.get(User, ann.id).password_hash == before


def test_reset_password_command_refuses_directory_users(runner, app):
    factories.make_user(email="dir@example.com", name="Dir", auth_source="ldap", password=None)
    result = runner.invoke(args=["openduty", "reset-password", "dir@example.com"])
    assert result.exit_code != 0 and "through the directory" in result.output


# --- Read-only API tokens -------------------------------------------------------------------------


def test_read_only_tokens_read_but_never_change(client, auth, post_form, admin):
    auth.login(admin.email)
    page = post_form("/profile/tokens", {"token-name": "dashboard", "token-read_only": "y"})
    secret = re.search(r'id="new-token">([^<]+)<', page.get_data(as_text=True)).group(1)
    assert db.session.scalar(select(ApiToken.read_only).where(ApiToken.name == "dashboard")) is True
    headers = {"Authorization": f"Token {secret}"}
    assert client.get("/api/v1/services", headers=headers).status_code == 200
    refused = client.post("/api/v1/services", json={"name": "Nope"}, headers=headers)
    assert refused.status_code == 403 and "read-only" in refused.get_json()["error"]["message"]
    assert client.delete(f"/api/v1/users/{admin.id}", headers=headers).status_code == 403
    assert db.session.get(User, admin.id).active
    assert "read-only" in client.get("/profile").get_data(as_text=True)


def test_cli_makes_read_only_tokens(runner, admin, client):
    result = runner.invoke(args=["openduty", "create-token", admin.email, "--read-only"])
    headers = {"Authorization": f"Token {result.output.strip()}"}
    assert client.get("/api/v1/services", headers=headers).status_code == 200
    assert client.post("/api/v1/services", json={"name": "Nope"}, headers=headers).status_code == 403
