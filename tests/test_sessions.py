"""Sessions end for real (issue 8, finding 7): logout, a password change, deactivation and "log out
everywhere" end every session of the user, checked with two browsers (two test clients)."""

import pytest

from openduty.extensions import db
from tests import factories
from tests.conftest import AuthActions


@pytest.fixture
def alice(app):
    return factories.make_user(email="alice@example.com", name="Alice")


@pytest.fixture
def two_browsers(app, alice):
    """Two clients logged in as Alice; each is (client, auth)."""
    browsers = []
    for _ in range(2):
        client = app.test_client()
        auth = AuthActions(client)
        assert auth.login("alice@example.com").status_code == 302
        assert client.get("/").status_code == 200
        browsers.append((client, auth))
    return browsers


def _logged_in(client) -> bool:
    return client.get("/").status_code == 200


def test_an_old_cookie_is_dead_after_logout(app, alice):
    client = app.test_client()
    auth = AuthActions(client)
    auth.login("alice@example.com")
    with client.session_transaction() as session:
        stolen = dict(session)  # what an attacker copied before the logout
    auth.logout()
    thief = app.test_client()
    with thief.session_transaction() as session:
        session.update(stolen)
    assert not _logged_in(thief)


def test_logout_ends_every_session(two_browsers):
    (first, first_auth), (second, _) = two_browsers
    first_auth.logout()
    assert not _logged_in(first) and not _logged_in(second)


def test_a_password_change_ends_the_other_sessions_and_keeps_this_one(two_browsers):
    (first, first_auth), (second, _) = two_browsers
    response = first.post(
        "/profile/password",
        data={
            "csrf_token": first_auth.csrf_token(),
            "current_password": factories.PASSWORD,
            "password": "a brand new password",
            "confirm": "a brand new password",
        },
    )
    assert response.status_code == 302
    assert _logged_in(first)
    assert not _logged_in(second)


def test_a_password_set_by_the_api_ends_every_session(two_browsers, alice, api):
    (first, _), (second, _) = two_browsers
    api.as_user(alice)
    response = api.patch(
        f"/api/v1/users/{alice.id}", json={"password": "another new one", "current_password": factories.PASSWORD}
    )
    assert response.status_code == 200
    assert not _logged_in(first) and not _logged_in(second)


def test_deactivation_ends_every_session(app, two_browsers, alice):
    (first, _), (second, _) = two_browsers
    admin = factories.make_user(email="root@example.com", is_admin=True)
    admin_client = app.test_client()
    admin_auth = AuthActions(admin_client)
    admin_auth.login(admin.email)
    response = admin_client.post(f"/users/{alice.id}/deactivate", data={"csrf_token": admin_auth.csrf_token()})
    assert response.status_code == 302
    assert not _logged_in(first) and not _logged_in(second)
    assert _logged_in(admin_client)


def test_a_deactivated_user_is_out_even_if_the_generation_did_not_move(two_browsers, alice):
    """Deactivating directly in the database (or any other path) still ends the sessions."""
    (first, _), _ = two_browsers
    alice.active = False
    db.session.commit()
    assert not _logged_in(first)


def test_log_out_everywhere(two_browsers):
    (first, first_auth), (second, _) = two_browsers
    assert b"Log out everywhere" in first.get("/profile").data
    response = first.post("/profile/sessions/end", data={"csrf_token": first_auth.csrf_token()})
    assert response.status_code == 302 and response.location.endswith("/login")
    assert not _logged_in(first) and not _logged_in(second)


def test_log_out_everywhere_needs_csrf(two_browsers):
    (first, _), (second, _) = two_browsers
    assert first.post("/profile/sessions/end").status_code == 400
    assert _logged_in(first) and _logged_in(second)


@pytest.mark.parametrize("value", ["1", "abc", "1:x", "1:0:0", "9" * 50 + ":0"])
def test_malformed_session_ids_load_nobody(app, alice, value):
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = value
    assert not _logged_in(client)
