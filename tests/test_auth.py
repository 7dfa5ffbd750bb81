from urllib.parse import unquote

import pytest

from openduty.extensions import db
from tests import factories


def test_login_and_logout(client, auth, app):
    factories.make_user(email="alice@example.com", name="Alice")
    response = auth.login("alice@example.com")
    assert response.status_code == 302
    assert "Alice" in client.get("/").get_data(as_text=True)
    auth.logout()
    assert client.get("/").status_code == 302


def test_login_page_requires_csrf(client, app):
    factories.make_user(email="alice@example.com")
    response = client.post("/login", data={"email": "alice@example.com", "password": factories.PASSWORD})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)


def test_wrong_password_is_generic(client, auth, app):
    factories.make_user(email="alice@example.com")
    wrong = auth.login("alice@example.com", "nope")
    unknown = auth.login("nobody@example.com", "nope")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong email or password." in wrong.get_data(as_text=True)
    assert "Wrong email or password." in unknown.get_data(as_text=True)


def test_deactivated_user_cannot_log_in(client, auth, app):
    user = factories.make_user(email="gone@example.com")
    user.active = False
    db.session.commit()
    assert auth.login("gone@example.com").status_code == 401


def test_user_without_password_cannot_log_in(client, auth, app):
    factories.make_user(email="paged@example.com", password=None)
    assert auth.login("paged@example.com", "").status_code in (400, 401)
    assert auth.login("paged@example.com", "anything").status_code == 401


OFF_SITE = ["https://evil.example/", "//evil.example/x", "/%5Cevil.example/x", "/%09/evil.example", "/\\evil.example"]


@pytest.mark.parametrize("target", OFF_SITE)
def test_login_never_redirects_off_site(client, auth, app, target, csrf_from):
    factories.make_user(email="alice@example.com")
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post(
        f"/login?next={target}",
        data={"email": "alice@example.com", "password": factories.PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"] == "/"


def test_pages_need_login(client, app):
    response = client.get("/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


@pytest.mark.parametrize("target", OFF_SITE)
def test_form_redirects_never_leave_the_site(client, auth, app, target):
    """Every `next` the app follows goes through views.safe_next (login, incident actions, calendar links)."""
    factories.make_user(email="alice@example.com")
    auth.login("alice@example.com")
    token = auth.csrf_token()
    form = {"csrf_token": token, "next": unquote(target)}
    calendar = client.post("/schedules/calendar-token", data=form)
    assert calendar.headers["Location"] == "/schedules"
    bulk = client.post("/incidents/bulk", data={**form, "action": "acknowledge"})
    assert bulk.headers["Location"].startswith("/incidents")
