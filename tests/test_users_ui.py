"""Users pages: admin list and CRUD, access control, profile, contact methods, rules, API tokens."""

import hashlib
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from openduty.extensions import db
from openduty.models import ApiToken, ContactMethod, NotificationRule, User
from tests import factories

# Methods of every channel are added here: the server has every channel configured.
pytestmark = pytest.mark.usefixtures("channels_configured")


def _invalid(body: str, field: str) -> bool:
    """Is the input or select named `field` marked invalid?"""
    return re.search(rf'<(input|select)[^>]*aria-invalid="true"[^>]*id="{field}"', body) is not None


def _count(model) -> int:
    return len(db.session.scalars(select(model)).all())


# --- Access control -------------------------------------------------------------------------------

ADMIN_PAGES = [
    ("get", "/users/"),
    ("get", "/users/new"),
    ("post", "/users/new"),
    ("get", "/users/{other}/edit"),
    ("post", "/users/{other}/edit"),
    ("post", "/users/{other}/deactivate"),
    ("post", "/users/{other}/reactivate"),
]
OTHER_PROFILE_PAGES = [
    ("get", "/users/{other}"),
    ("get", "/users/{other}/contact-methods"),
    ("post", "/users/{other}/contact-methods"),
    ("post", "/users/{other}/contact-methods/{method}/delete"),
    ("get", "/users/{other}/notification-rules"),
    ("get", "/users/{other}/notification-rules/form"),
    ("post", "/users/{other}/notification-rules"),
    ("post", "/users/{other}/notification-rules/{rule}/delete"),
    ("get", "/users/{other}/tokens"),
    ("post", "/users/{other}/tokens/{token}/revoke"),
]


@pytest.fixture
def other(app):
    user = factories.make_user(email="carol@example.com", name="Carol")
    method = factories.make_contact_method(user)
    rule = factories.make_notification_rule(user, method)
    token, _ = ApiToken.issue(user, "carol's")
    db.session.commit()
    return {"other": user.id, "method": method.id, "rule": rule.id, "token": token.id}


@pytest.mark.parametrize(("method", "path"), ADMIN_PAGES + OTHER_PROFILE_PAGES + [("get", "/profile")])
def test_pages_need_login(client, other, method, path):
    response = getattr(client, method)(path.format(**other))
    assert response.status_code in (302, 400)  # a POST without a session has no CSRF token either
    if response.status_code == 302:
        assert "/login" in response.headers["Location"]


@pytest.mark.parametrize(("method", "path"), ADMIN_PAGES + OTHER_PROFILE_PAGES)
def test_members_cannot_manage_other_users(client, auth, member, other, post_form, method, path):
    auth.login(member.email)
    url = path.format(**other)
    response = client.get(url) if method == "get" else post_form(url, {"name": "x", "kind": "email"})
    assert response.status_code == 403
    carol = db.session.get(User, other["other"])
    assert carol.active and carol.name == "Carol" and len(carol.contact_methods) == 1 and len(carol.api_tokens) == 1


def test_members_do_not_see_the_users_link(client, auth, member, admin):
    auth.login(member.email)
    assert 'href="/users/"' not in client.get("/profile").get_data(as_text=True)
    auth.logout()
    auth.login(admin.email)
    assert 'href="/users/"' in client.get("/profile").get_data(as_text=True)


@pytest.mark.parametrize("path", ["/users/999", "/users/999/edit", "/users/999/contact-methods"])
def test_unknown_user_is_404(client, auth, admin, path):
    auth.login(admin.email)
    assert client.get(path).status_code == 404


# --- Admin pages ----------------------------------------------------------------------------------


def test_admin_lists_users(client, auth, admin, member):
    auth.login(admin.email)
    page = client.get("/users/").get_data(as_text=True)
    assert "Bob Member" in page and "bob@example.com" in page and "Europe/Budapest" in page


def test_admin_creates_a_user_without_password(client, auth, admin, post_form):
    auth.login(admin.email)
    response = post_form("/users/new", {"name": "Dan", "email": "Dan@Example.com", "time_zone": "America/New_York"})
    dan = User.by_email("dan@example.com")
    assert response.status_code == 302 and response.headers["Location"] == f"/users/{dan.id}"
    assert dan.name == "Dan" and dan.time_zone == "America/New_York" and not dan.is_admin
    assert dan.password_hash is None
    assert "no password" in client.get("/users/").get_data(as_text=True)
    auth.logout()
    assert auth.login("dan@example.com", "").status_code in (400, 401)


def test_admin_creates_an_admin_with_password(client, auth, admin, post_form):
    auth.login(admin.email)
    form = {"name": "Eve", "email": "eve@example.com", "time_zone": "UTC", "is_admin": "y", "password": "s3cret-pass"}
    assert post_form("/users/new", form).status_code == 302
    auth.logout()
    assert auth.login("eve@example.com", "s3cret-pass").status_code == 302
    assert client.get("/users/").status_code == 200


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"email": "bob@example.com"}, "email", "already exists"),
        ({"email": "BOB@example.com"}, "email", "already exists"),
        ({"email": "not-an-email"}, "email", "Not a valid email"),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "Unknown time zone"),
        ({"name": ""}, "name", "Name is required"),
        ({"password": "short"}, "password", "at least 8"),
    ],
)
def test_admin_create_bad_input_names_the_field_and_keeps_values(
    client, auth, admin, member, post_form, form, field, message
):
    auth.login(admin.email)
    before = _count(User)
    data = {"name": "Frank", "email": "frank@example.com", "time_zone": "Asia/Tokyo", **form}
    response = post_form("/users/new", data)
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message in page
    assert _invalid(page, field)
    for name, value in data.items():
        if name not in (field, "password"):
            assert f'value="{value}"' in page  # the other values are kept
    assert _count(User) == before


def test_admin_edits_a_user(client, auth, admin, member, post_form):
    auth.login(admin.email)
    form = client.get(f"/users/{member.id}/edit").get_data(as_text=True)
    assert 'value="Bob Member"' in form
    data = {"name": "Robert", "email": "robert@example.com", "time_zone": "Europe/Paris", "is_admin": "y"}
    response = post_form(f"/users/{member.id}/edit", {**data, "password": "new-password-1"})
    assert response.status_code == 302
    db.session.refresh(member)
    assert (member.name, member.email, member.time_zone, member.is_admin) == (
        "Robert",
        "robert@example.com",
        "Europe/Paris",
        True,
    )
    assert member.check_password("new-password-1")


def test_admin_edit_with_empty_password_keeps_it(client, auth, admin, member, post_form):
    auth.login(admin.email)
    data = {"name": "Bob", "email": member.email, "time_zone": "UTC", "password": ""}
    assert post_form(f"/users/{member.id}/edit", data).status_code == 302
    db.session.refresh(member)
    assert member.check_password(factories.PASSWORD)


def test_admin_edit_duplicate_email_changes_nothing(client, auth, admin, member, post_form):
    auth.login(admin.email)
    data = {"name": "Renamed", "email": "admin@example.com", "time_zone": "UTC"}
    response = post_form(f"/users/{member.id}/edit", data)
    assert response.status_code == 422
    assert "already exists" in response.get_data(as_text=True)
    db.session.refresh(member)
    assert member.name == "Bob Member" and member.email == "bob@example.com"


def test_admin_cannot_remove_own_admin_rights_on_the_edit_page(client, auth, admin, post_form):
    auth.login(admin.email)
    page = client.get(f"/users/{admin.id}/edit").get_data(as_text=True)
    assert 'name="is_admin"' not in page and 'name="password"' not in page
    assert post_form(f"/users/{admin.id}/edit", {"name": "Ada", "email": admin.email, "time_zone": "UTC"}).status_code
    db.session.refresh(admin)
    assert admin.is_admin and admin.name == "Ada"


def test_deactivate_and_reactivate(client, auth, admin, member, post_form):
    auth.login(admin.email)
    response = post_form(f"/users/{member.id}/deactivate")
    assert response.status_code == 302
    assert "never paged" in client.get("/users/").get_data(as_text=True)
    db.session.refresh(member)
    assert not member.active
    auth.logout()
    assert auth.login(member.email).status_code == 401
    auth.login(admin.email)
    post_form(f"/users/{member.id}/reactivate")
    db.session.refresh(member)
    assert member.active
    auth.logout()
    assert auth.login(member.email).status_code == 302


def test_a_deactivated_users_session_ends(app, member, admin):
    from tests.conftest import AuthActions

    bob_client, admin_client = app.test_client(), app.test_client()
    AuthActions(bob_client).login(member.email)
    admin_auth = AuthActions(admin_client)
    admin_auth.login(admin.email)
    admin_client.post(f"/users/{member.id}/deactivate", data={"csrf_token": admin_auth.csrf_token()})
    assert bob_client.get("/profile").status_code == 302


def test_admin_cannot_deactivate_themselves(client, auth, admin, post_form):
    auth.login(admin.email)
    response = post_form(f"/users/{admin.id}/deactivate")
    assert "cannot deactivate yourself" in client.get(response.headers["Location"]).get_data(as_text=True)
    db.session.refresh(admin)
    assert admin.active


# --- Profile --------------------------------------------------------------------------------------


def test_profile_shows_the_account(client, auth, member):
    auth.login(member.email)
    page = client.get("/profile").get_data(as_text=True)
    assert 'value="Bob Member"' in page and 'value="Europe/Budapest"' in page
    assert '<option value="America/New_York">' in page  # the time zone picker


def test_profile_saves_details(client, auth, member, post_form):
    auth.login(member.email)
    response = post_form("/profile", {"name": "Bobby", "email": "bobby@example.com", "time_zone": "Asia/Kolkata"})
    assert response.status_code == 302
    db.session.refresh(member)
    assert (member.name, member.email, member.time_zone) == ("Bobby", "bobby@example.com", "Asia/Kolkata")


def test_profile_details_over_htmx_answer_the_block(client, auth, member, post_form):
    auth.login(member.email)
    response = post_form("/profile", {"name": "Bobby", "email": member.email, "time_zone": "UTC"}, htmx=True)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "Saved." in body
    assert "<html" not in body and body.strip().startswith("<section") or "<section" in body
    assert "HX-Request" in response.headers["Vary"]


@pytest.mark.parametrize("htmx", [False, True])
def test_profile_bad_time_zone_names_it_and_changes_nothing(client, auth, member, post_form, htmx):
    auth.login(member.email)
    response = post_form(
        "/profile", {"name": "Changed", "email": member.email, "time_zone": "Europe/Nowhere"}, htmx=htmx
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Unknown time zone" in body and 'value="Changed"' in body and 'value="Europe/Nowhere"' in body
    assert ("<html" in body) is not htmx
    db.session.refresh(member)
    assert member.name == "Bob Member" and member.time_zone == "Europe/Budapest"


def test_profile_duplicate_email(client, auth, member, admin, post_form):
    auth.login(member.email)
    response = post_form("/profile", {"name": "Bob", "email": "admin@example.com", "time_zone": "UTC"})
    assert response.status_code == 422 and "already exists" in response.get_data(as_text=True)
    db.session.refresh(member)
    assert member.email == "bob@example.com"


def test_change_password(client, auth, member, post_form):
    auth.login(member.email)
    form = {"current_password": factories.PASSWORD, "password": "brand-new-pass", "confirm": "brand-new-pass"}
    assert post_form("/profile/password", form).status_code == 302
    auth.logout()
    assert auth.login(member.email, "brand-new-pass").status_code == 302


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"current_password": "wrong"}, "current_password", "not your current password"),
        ({"current_password": ""}, "current_password", "Enter your current password"),
        ({"password": "short", "confirm": "short"}, "password", "at least 8"),
        ({"confirm": "something-else"}, "confirm", "differ"),
    ],
)
def test_change_password_bad_input(client, auth, member, post_form, form, field, message):
    auth.login(member.email)
    data = {"current_password": factories.PASSWORD, "password": "brand-new-pass", "confirm": "brand-new-pass", **form}
    response = post_form("/profile/password", data, htmx=True)
    body = response.get_data(as_text=True)
    assert response.status_code == 422 and message in body and _invalid(body, field)
    db.session.refresh(member)
    assert member.check_password(factories.PASSWORD)


def test_user_without_password_sets_one_without_current(app, client, auth, admin, post_form):
    # An admin-created user without password can be given one by an admin, then set their own.
    user = factories.make_user(email="nopw@example.com", password=None)
    auth.login(admin.email)
    post_form(
        f"/users/{user.id}/edit", {"name": "N", "email": user.email, "time_zone": "UTC", "password": "first-pass"}
    )
    auth.logout()
    assert auth.login(user.email, "first-pass").status_code == 302


# --- Contact methods ------------------------------------------------------------------------------


def test_add_contact_method_without_js(client, auth, member, post_form):
    auth.login(member.email)
    response = post_form(
        f"/users/{member.id}/contact-methods", {"kind": "sms", "address": "+36 30 123 4567", "label": "mobile"}
    )
    assert response.status_code == 302 and response.headers["Location"] == "/profile"
    page = client.get("/profile").get_data(as_text=True)
    assert "+36301234567" in page and "Added SMS: +36301234567" in page


def test_add_contact_method_with_htmx(client, auth, member, post_form, htmx_get):
    auth.login(member.email)
    response = post_form(
        f"/users/{member.id}/contact-methods", {"kind": "webhook", "address": "https://hooks.example/x"}, htmx=True
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.headers["HX-Trigger"] == "contact-methods-changed"
    assert 'id="contact-method-form"' in body and "<html" not in body and 'value="https://hooks.example/x"' not in body
    listing = htmx_get(f"/users/{member.id}/contact-methods").get_data(as_text=True)
    assert 'id="contact-method-list"' in listing and "https://hooks.example/x" in listing and "<html" not in listing
    rule_form = htmx_get(f"/users/{member.id}/notification-rules/form").get_data(as_text=True)
    assert "Webhook: https://hooks.example/x" in rule_form


@pytest.mark.parametrize(
    ("kind", "address", "field", "message"),
    [
        ("sms", "06301234567", "address", "E.164"),
        ("voice", "+1 555", "address", "phone number"),
        ("email", "nobody@", "address", "Not a valid email"),
        ("slack", "hooks.slack.com/x", "address", "Not a valid URL"),
        ("webhook", "ftp://example.com/", "address", "Not a valid URL"),
        ("pushover", "abc", "address", "30 letters"),
        ("xmpp", "not a jid", "address", "Not a valid email"),
        ("apprise", "nonsense", "address", "Apprise"),
        ("fax", "+14155550100", "kind", "Unknown kind"),
        ("email", "", "address", "Enter an email"),
    ],
)
@pytest.mark.parametrize("htmx", [False, True])
def test_bad_contact_address_names_the_field(client, auth, member, post_form, kind, address, field, message, htmx):
    auth.login(member.email)
    data = {"kind": kind, "address": address, "label": "keep me"}
    response = post_form(f"/users/{member.id}/contact-methods", data, htmx=htmx)
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message in body and _invalid(body, field)
    assert 'value="keep me"' in body
    assert ("<html" in body) is not htmx
    assert _count(ContactMethod) == 0


def test_duplicate_contact_method(client, auth, member, post_form):
    factories.make_contact_method(member, "email", "bob@example.com")
    auth.login(member.email)
    response = post_form(f"/users/{member.id}/contact-methods", {"kind": "email", "address": "BOB@example.com"})
    assert response.status_code == 422 and "already has this contact method" in response.get_data(as_text=True)


def test_valid_addresses_of_every_kind(client, auth, member, post_form):
    auth.login(member.email)
    addresses = {
        "email": "bob@example.com",
        "sms": "+14155550100",
        "voice": "+442071838750",
        "slack": "https://hooks.slack.com/services/T000/B000/XXXX",
        "webhook": "http://127.0.0.1:8080/hook",
        "pushover": "u" * 30,
        "xmpp": "bob@jabber.example.org",
        "apprise": "tgram://123456789:abcdefg_hijklmnop/12315544",  # json:// is admin-only
    }
    for kind, address in addresses.items():
        response = post_form(f"/users/{member.id}/contact-methods", {"kind": kind, "address": address})
        assert response.status_code == 302, (kind, response.get_data(as_text=True))
    assert {m.kind for m in db.session.scalars(select(ContactMethod))} == set(addresses)


@pytest.mark.parametrize("htmx", [False, True])
def test_delete_contact_method_removes_its_rules(client, auth, member, post_form, htmx):
    method = factories.make_contact_method(member, "sms", "+14155550100")
    factories.make_notification_rule(member, method, 5)
    auth.login(member.email)
    response = post_form(f"/users/{member.id}/contact-methods/{method.id}/delete", htmx=htmx)
    if htmx:
        assert response.status_code == 200
        assert response.headers["HX-Trigger"] == "contact-methods-changed, notification-rules-changed"
    else:
        assert response.status_code == 302
    assert _count(ContactMethod) == 0 and _count(NotificationRule) == 0


def test_cannot_delete_someone_elses_contact_method_through_own_url(client, auth, member, post_form):
    carol = factories.make_user(email="carol@example.com")
    method = factories.make_contact_method(carol)
    auth.login(member.email)
    assert post_form(f"/users/{member.id}/contact-methods/{method.id}/delete").status_code == 404
    assert _count(ContactMethod) == 1


def test_admin_edits_other_users_contact_methods_and_rules(client, auth, admin, member, post_form):
    auth.login(admin.email)
    page = client.get(f"/users/{member.id}").get_data(as_text=True)
    assert "Bob Member" in page and "Create token" not in page
    response = post_form(f"/users/{member.id}/contact-methods", {"kind": "sms", "address": "+14155550100"})
    assert response.headers["Location"] == f"/users/{member.id}"
    method = member.contact_methods[0]
    response = post_form(
        f"/users/{member.id}/notification-rules", {"contact_method_id": method.id, "delay_minutes": "3"}
    )
    assert response.status_code == 302
    db.session.refresh(member)
    assert [(r.contact_method_id, r.delay_minutes) for r in member.notification_rules] == [(method.id, 3)]


# --- Notification rules ---------------------------------------------------------------------------


def test_rule_form_asks_for_a_contact_method_first(client, auth, member):
    auth.login(member.email)
    page = client.get("/profile").get_data(as_text=True)
    assert "Add a contact method first" in page and "paged by email (bob@example.com) immediately" in page


@pytest.mark.parametrize("htmx", [False, True])
def test_add_and_delete_rule(client, auth, member, post_form, htmx_get, htmx):
    method = factories.make_contact_method(member, "sms", "+14155550100")
    auth.login(member.email)
    response = post_form(
        f"/users/{member.id}/notification-rules",
        {"contact_method_id": str(method.id), "delay_minutes": "10"},
        htmx=htmx,
    )
    if htmx:
        assert response.status_code == 200 and response.headers["HX-Trigger"] == "notification-rules-changed"
        assert 'id="rule-form"' in response.get_data(as_text=True)
        listing = htmx_get(f"/users/{member.id}/notification-rules").get_data(as_text=True)
        assert "After 10 min" in listing and "SMS: +14155550100" in listing and "<html" not in listing
    else:
        assert response.status_code == 302
        assert "After 10 min" in client.get("/profile").get_data(as_text=True)
    rule = member.notification_rules[0]
    response = post_form(f"/users/{member.id}/notification-rules/{rule.id}/delete", htmx=htmx)
    assert response.status_code == (200 if htmx else 302)
    assert _count(NotificationRule) == 0


@pytest.mark.parametrize(
    ("delay", "message"),
    [("-1", "at least 0"), ("1441", "at most 1440"), ("soon", "whole number")],
)
def test_bad_rule_delay(client, auth, member, post_form, delay, message):
    method = factories.make_contact_method(member)
    auth.login(member.email)
    response = post_form(
        f"/users/{member.id}/notification-rules", {"contact_method_id": method.id, "delay_minutes": delay}, htmx=True
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 422 and message in body and _invalid(body, "delay_minutes")
    assert f'value="{delay}"' in body
    assert _count(NotificationRule) == 0


def test_rule_on_someone_elses_contact_method(client, auth, member, post_form):
    factories.make_contact_method(member)
    carol = factories.make_user(email="carol@example.com")
    theirs = factories.make_contact_method(carol)
    auth.login(member.email)
    response = post_form(f"/users/{member.id}/notification-rules", {"contact_method_id": theirs.id, "delay_minutes": 0})
    assert response.status_code == 422 and "Choose one of this user" in response.get_data(as_text=True)
    assert _count(NotificationRule) == 0


def test_duplicate_rule(client, auth, member, post_form):
    method = factories.make_contact_method(member)
    factories.make_notification_rule(member, method, 0)
    auth.login(member.email)
    response = post_form(f"/users/{member.id}/notification-rules", {"contact_method_id": method.id, "delay_minutes": 0})
    assert response.status_code == 422 and "exists already" in response.get_data(as_text=True)


# --- API tokens -----------------------------------------------------------------------------------


@pytest.mark.parametrize("htmx", [False, True])
def test_token_is_shown_once_and_stored_hashed(client, auth, member, post_form, htmx):
    auth.login(member.email)
    response = post_form("/profile/tokens", {"token-name": "monitoring"}, htmx=htmx)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert ("<html" in body) is not htmx
    if htmx:
        assert response.headers["HX-Trigger"] == "api-tokens-changed"
    secret = body.split('id="new-token">')[1].split("<")[0]
    assert secret.startswith("od_") and len(secret) > 30
    token = db.session.scalars(select(ApiToken)).one()
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert token.name == "monitoring" and secret.startswith(token.prefix) and secret not in token.prefix
    again = client.get("/profile").get_data(as_text=True)
    assert secret not in again and f"{token.prefix}…" in again and "monitoring" in again and "never" in again


def test_token_needs_a_unique_name(client, auth, member, post_form):
    auth.login(member.email)
    response = post_form("/profile/tokens", {"token-name": ""})
    assert response.status_code == 422 and "Name is required" in response.get_data(as_text=True)
    post_form("/profile/tokens", {"token-name": "ci"})
    response = post_form("/profile/tokens", {"token-name": "ci"}, htmx=True)
    assert response.status_code == 422 and "already have a token" in response.get_data(as_text=True)
    assert _count(ApiToken) == 1


def test_token_last_used_time_is_shown(client, auth, member, post_form, clock):
    auth.login(member.email)
    body = post_form("/profile/tokens", {"token-name": "script"}).get_data(as_text=True)
    secret = body.split('id="new-token">')[1].split("<")[0]
    clock.advance(hours=2)
    used_at = clock.now()
    assert client.get("/api/v1/users", headers={"Authorization": f"Token {secret}"}).status_code == 200
    token = db.session.scalars(select(ApiToken)).one()
    db.session.refresh(token)
    assert abs(token.last_used_at - used_at) < timedelta(seconds=5)
    # "just now", with the exact time in the member's zone on hover.
    local = used_at.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Budapest")).strftime("%a %d %b %Y %H:%M")
    profile = client.get("/profile").get_data(as_text=True)
    assert re.search(f'title="{local}:[0-9]{{2}} CET [(]Europe/Budapest[)]">just now<', profile)


@pytest.mark.parametrize("htmx", [False, True])
def test_revoke_token(client, auth, member, post_form, htmx):
    token, secret = ApiToken.issue(member, "old")
    db.session.commit()
    auth.login(member.email)
    response = post_form(f"/users/{member.id}/tokens/{token.id}/revoke", htmx=htmx)
    assert response.status_code == (200 if htmx else 302)
    assert _count(ApiToken) == 0
    assert client.get("/api/v1/users", headers={"Authorization": f"Token {secret}"}).status_code == 401


def test_admin_revokes_another_users_token(client, auth, admin, member, post_form):
    token, _ = ApiToken.issue(member, "leaked")
    db.session.commit()
    auth.login(admin.email)
    assert "leaked" in client.get(f"/users/{member.id}").get_data(as_text=True)
    assert post_form(f"/users/{member.id}/tokens/{token.id}/revoke").status_code == 302
    assert _count(ApiToken) == 0
