"""The users JSON API: every endpoint, every error, with real tokens."""

import pytest
from sqlalchemy import select

from openduty.extensions import db
from openduty.models import ApiToken, ContactMethod, NotificationRule, User
from tests import factories

# Methods of every channel are added here: the server has every channel configured.
pytestmark = pytest.mark.usefixtures("channels_configured")


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()["error"]
    assert body["code"] == code and body["message"]
    return body


# --- Authentication -------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Token", "Token nope", "Basic abc", "Token od_unknown"])
def test_requests_need_a_valid_token(client, app, header):
    headers = {"Authorization": header} if header else {}
    body = _error(client.get("/api/v1/users", headers=headers), 401, "unauthorized")
    assert "token" in body["message"].lower()


def test_a_deactivated_users_token_stops_working(api, member):
    api.as_user(member)
    assert api.get("/api/v1/users").status_code == 200
    member.active = False
    db.session.commit()
    _error(api.get("/api/v1/users"), 401, "unauthorized")


# --- Users ----------------------------------------------------------------------------------------


def test_list_users(api, admin, member):
    api.as_user(member)
    users = api.get("/api/v1/users").get_json()["users"]
    assert [u["email"] for u in users] == ["admin@example.com", "bob@example.com"]
    bob = users[1]
    assert bob == {
        "id": member.id,
        "email": "bob@example.com",
        "name": "Bob Member",
        "time_zone": "Europe/Budapest",
        "is_admin": False,
        "observer": False,
        "role": "member",
        "active": True,
        "has_password": True,
        "auth_source": "local",
        "created_at": member.created_at.isoformat(),
        "reminder_hours": 12,
        "reminder_contact_method_id": None,
        "weekly_summary": False,
    }


def test_list_users_filters_by_active(api, admin, member):
    member.active = False
    db.session.commit()
    api.as_user(admin)
    assert [u["id"] for u in api.get("/api/v1/users?active=false").get_json()["users"]] == [member.id]
    assert [u["id"] for u in api.get("/api/v1/users?active=true").get_json()["users"]] == [admin.id]
    assert "active" in _error(api.get("/api/v1/users?active=maybe"), 422, "validation_error")["fields"]


def test_get_user(api, member):
    api.as_user(member)
    assert api.get(f"/api/v1/users/{member.id}").get_json()["email"] == "bob@example.com"
    assert "user with id 999" in _error(api.get("/api/v1/users/999"), 404, "not_found")["message"]


def test_admin_creates_a_user_without_password(api, admin, client, auth):
    api.as_user(admin)
    response = api.post("/api/v1/users", json={"email": "Dan@Example.com", "name": "Dan"})
    assert response.status_code == 201
    user = response.get_json()
    assert response.headers["Location"] == f"/api/v1/users/{user['id']}"
    assert user["email"] == "dan@example.com" and user["time_zone"] == "UTC"
    assert user["is_admin"] is False and user["has_password"] is False
    assert auth.login("dan@example.com", "anything at all").status_code == 401


def test_admin_creates_an_admin_with_password(api, admin, auth):
    api.as_user(admin)
    body = {
        "email": "eve@example.com",
        "name": "Eve",
        "time_zone": "Asia/Tokyo",
        "is_admin": True,
        "password": "pw-12345678",
    }
    user = api.post("/api/v1/users", json=body).get_json()
    assert user["is_admin"] and user["has_password"] and user["time_zone"] == "Asia/Tokyo"
    assert auth.login("eve@example.com", "pw-12345678").status_code == 302


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"email": "bob@example.com", "name": "B"}, {"email"}),
        ({"email": "BOB@EXAMPLE.COM", "name": "B"}, {"email"}),
        ({"email": "nope", "name": "B"}, {"email"}),
        ({"name": "B"}, {"email"}),
        ({"email": "x@example.com"}, {"name"}),
        ({"email": "x@example.com", "name": "B", "time_zone": "Mars/Base"}, {"time_zone"}),
        ({"email": "x@example.com", "name": "B", "is_admin": "perhaps"}, {"is_admin"}),
        ({"email": "x@example.com", "name": "B", "password": "short"}, {"password"}),
        ({"email": "x@example.com", "name": "B", "password": 12345678}, {"password"}),
        ({"email": "x@example.com", "name": 7}, {"name"}),
        ({"email": "x@example.com", "name": "x" * 201}, {"name"}),
        ({"email": "x@example.com", "name": "B", "role": "admin"}, {"role"}),
        ({"email": 1, "name": "", "time_zone": "?"}, {"email", "name", "time_zone"}),
    ],
)
def test_create_user_validation(api, admin, member, body, fields):
    api.as_user(admin)
    error = _error(api.post("/api/v1/users", json=body), 422, "validation_error")
    assert set(error["fields"]) == fields
    assert len(db.session.scalars(select(User)).all()) == 2


def test_create_user_duplicate_email_message(api, admin, member):
    api.as_user(admin)
    error = _error(api.post("/api/v1/users", json={"email": "bob@example.com", "name": "B"}), 422, "validation_error")
    assert error["fields"]["email"] == "A user with this email already exists."


def test_members_cannot_create_users(api, member):
    api.as_user(member)
    _error(api.post("/api/v1/users", json={"email": "x@example.com", "name": "X"}), 403, "forbidden")
    assert User.by_email("x@example.com") is None


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"data": "email=x", "content_type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
        ({"data": "{not json", "content_type": "application/json"}, 400, "bad_request"),
        ({"json": ["a", "list"]}, 400, "bad_request"),
    ],
)
def test_bad_bodies(api, admin, kwargs, status, code):
    api.as_user(admin)
    _error(api.post("/api/v1/users", **kwargs), status, code)


def test_update_yourself(api, member):
    api.as_user(member)
    response = api.patch(f"/api/v1/users/{member.id}", json={"name": "Robert", "time_zone": "America/Chicago"})
    assert response.status_code == 200
    user = response.get_json()
    assert user["name"] == "Robert" and user["time_zone"] == "America/Chicago" and user["email"] == "bob@example.com"


def test_update_validation_changes_nothing(api, member, admin):
    api.as_user(member)
    body = {"name": "Robert", "email": "admin@example.com", "time_zone": "Nowhere"}
    error = _error(api.patch(f"/api/v1/users/{member.id}", json=body), 422, "validation_error")
    assert set(error["fields"]) == {"email", "time_zone"}
    db.session.refresh(member)
    assert member.name == "Bob Member"


def test_members_cannot_make_themselves_admin(api, member):
    api.as_user(member)
    error = _error(api.patch(f"/api/v1/users/{member.id}", json={"is_admin": True}), 403, "forbidden")
    assert "is_admin" in error["fields"]
    assert api.patch(f"/api/v1/users/{member.id}", json={"is_admin": False}).status_code == 200  # no change
    _error(api.patch(f"/api/v1/users/{member.id}", json={"active": False}), 403, "forbidden")
    db.session.refresh(member)
    assert not member.is_admin and member.active


def test_members_cannot_change_other_users(api, member, admin):
    api.as_user(member)
    _error(api.patch(f"/api/v1/users/{admin.id}", json={"name": "Hacked"}), 403, "forbidden")
    _error(api.delete(f"/api/v1/users/{admin.id}"), 403, "forbidden")
    _error(api.patch("/api/v1/users/999", json={"name": "x"}), 404, "not_found")
    db.session.refresh(admin)
    assert admin.name == "Ada Admin" and admin.active


def test_own_password_change_needs_the_current_one(api, member, auth):
    api.as_user(member)
    url = f"/api/v1/users/{member.id}"
    error = _error(api.patch(url, json={"password": "new-pass-123"}), 422, "validation_error")
    assert error["fields"] == {"current_password": "Enter your current password."}
    error = _error(
        api.patch(url, json={"password": "new-pass-123", "current_password": "wrong"}), 422, "validation_error"
    )
    assert "current_password" in error["fields"]
    assert api.patch(url, json={"password": "new-pass-123", "current_password": factories.PASSWORD}).status_code == 200
    assert auth.login(member.email, "new-pass-123").status_code == 302


def test_admin_sets_another_users_password_and_admin_flag(api, admin, member, auth):
    api.as_user(admin)
    user = api.patch(f"/api/v1/users/{member.id}", json={"password": "set-by-admin", "is_admin": True}).get_json()
    assert user["is_admin"] is True
    assert auth.login(member.email, "set-by-admin").status_code == 302


def test_admin_cannot_demote_or_deactivate_themselves(api, admin):
    api.as_user(admin)
    assert (
        "own admin"
        in _error(api.patch(f"/api/v1/users/{admin.id}", json={"is_admin": False}), 409, "conflict")["message"]
    )
    assert "yourself" in _error(api.delete(f"/api/v1/users/{admin.id}"), 409, "conflict")["message"]
    db.session.refresh(admin)
    assert admin.is_admin and admin.active


def test_delete_deactivates_and_keeps_the_user(api, admin, member, auth):
    method = factories.make_contact_method(member)
    api.as_user(admin)
    response = api.delete(f"/api/v1/users/{member.id}")
    assert response.status_code == 200 and response.get_json()["active"] is False
    assert api.get(f"/api/v1/users/{member.id}").get_json()["active"] is False
    assert db.session.get(ContactMethod, method.id) is not None  # history and settings stay
    assert auth.login(member.email).status_code == 401
    assert api.delete(f"/api/v1/users/{member.id}").status_code == 200  # idempotent
    _error(api.delete("/api/v1/users/999"), 404, "not_found")
    reactivated = api.patch(f"/api/v1/users/{member.id}", json={"active": True}).get_json()
    assert reactivated["active"] is True
    assert auth.login(member.email).status_code == 302


# --- Contact methods ------------------------------------------------------------------------------


def test_contact_methods_crud(api, member):
    api.as_user(member)
    url = f"/api/v1/users/{member.id}/contact-methods"
    response = api.post(url, json={"kind": "sms", "address": "+1 (415) 555-0100", "label": "cell"})
    assert response.status_code == 201
    method = response.get_json()
    assert method["address"] == "+14155550100" and method["kind"] == "sms" and method["label"] == "cell"
    assert method["user_id"] == member.id
    assert response.headers["Location"] == f"{url}/{method['id']}"
    assert api.get(response.headers["Location"]).get_json() == method
    assert api.get(url).get_json()["contact_methods"] == [method]
    assert api.delete(f"{url}/{method['id']}").status_code == 204
    _error(api.get(f"{url}/{method['id']}"), 404, "not_found")
    assert api.get(url).get_json()["contact_methods"] == []
    _error(api.delete(f"{url}/{method['id']}"), 404, "not_found")


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"kind": "sms", "address": "5550100"}, {"address"}),
        ({"kind": "voice", "address": "+1 555"}, {"address"}),
        ({"kind": "email", "address": "x@"}, {"address"}),
        ({"kind": "slack", "address": "javascript:alert(1)"}, {"address"}),
        ({"kind": "webhook", "address": 12}, {"address"}),
        ({"kind": "pushover", "address": "too-short"}, {"address"}),
        ({"kind": "xmpp", "address": "nope"}, {"address"}),
        ({"kind": "apprise", "address": "nope://"}, {"address"}),
        ({"kind": "pager", "address": "123"}, {"kind"}),
        ({"address": "x@example.com"}, {"kind"}),
        ({"kind": "email", "address": "x@example.com", "label": "l" * 101}, {"label"}),
        ({"kind": "email", "address": "x@example.com", "priority": 1}, {"priority"}),
    ],
)
def test_contact_method_validation(api, member, body, fields):
    api.as_user(member)
    error = _error(api.post(f"/api/v1/users/{member.id}/contact-methods", json=body), 422, "validation_error")
    assert set(error["fields"]) == fields
    assert db.session.scalars(select(ContactMethod)).all() == []


def test_duplicate_contact_method(api, member):
    factories.make_contact_method(member, "email", "bob@example.com")
    api.as_user(member)
    body = {"kind": "email", "address": "bob@example.com"}
    assert (
        "address"
        in _error(api.post(f"/api/v1/users/{member.id}/contact-methods", json=body), 422, "validation_error")["fields"]
    )


def test_contact_methods_of_other_users(api, member, admin):
    theirs = factories.make_contact_method(admin)
    api.as_user(member)
    url = f"/api/v1/users/{admin.id}/contact-methods"
    _error(api.get(url), 403, "forbidden")
    _error(api.post(url, json={"kind": "email", "address": "x@example.com"}), 403, "forbidden")
    _error(api.get(f"{url}/{theirs.id}"), 403, "forbidden")
    _error(api.delete(f"{url}/{theirs.id}"), 403, "forbidden")
    # Someone else's method through your own URL is not found, not deleted.
    _error(api.get(f"/api/v1/users/{member.id}/contact-methods/{theirs.id}"), 404, "not_found")
    _error(api.delete(f"/api/v1/users/{member.id}/contact-methods/{theirs.id}"), 404, "not_found")
    api.as_user(admin)
    bob_url = f"/api/v1/users/{member.id}/contact-methods"
    assert api.post(bob_url, json={"kind": "email", "address": "bob@example.com"}).status_code == 201
    assert len(api.get(bob_url).get_json()["contact_methods"]) == 1
    _error(api.get("/api/v1/users/999/contact-methods"), 404, "not_found")


def test_deleting_a_contact_method_deletes_its_rules(api, member):
    method = factories.make_contact_method(member)
    factories.make_notification_rule(member, method, 0)
    api.as_user(member)
    assert api.delete(f"/api/v1/users/{member.id}/contact-methods/{method.id}").status_code == 204
    assert db.session.scalars(select(NotificationRule)).all() == []


# --- Notification rules ---------------------------------------------------------------------------


def test_notification_rules_crud(api, member):
    method = factories.make_contact_method(member)
    api.as_user(member)
    url = f"/api/v1/users/{member.id}/notification-rules"
    response = api.post(url, json={"contact_method_id": method.id, "delay_minutes": 5})
    assert response.status_code == 201
    rule = response.get_json()
    assert rule == {
        "id": rule["id"], "user_id": member.id, "contact_method_id": method.id, "delay_minutes": 5, "urgency": "high"
    }  # fmt: skip
    assert response.headers["Location"] == f"{url}/{rule['id']}"
    assert api.get(response.headers["Location"]).get_json() == rule
    immediate = api.post(url, json={"contact_method_id": method.id}).get_json()
    assert immediate["delay_minutes"] == 0
    assert [r["delay_minutes"] for r in api.get(url).get_json()["notification_rules"]] == [0, 5]
    assert api.delete(f"{url}/{rule['id']}").status_code == 204
    _error(api.delete(f"{url}/{rule['id']}"), 404, "not_found")


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"contact_method_id": "{mine}", "delay_minutes": -1}, {"delay_minutes"}),
        ({"contact_method_id": "{mine}", "delay_minutes": 1441}, {"delay_minutes"}),
        ({"contact_method_id": "{mine}", "delay_minutes": 1.5}, {"delay_minutes"}),
        ({"contact_method_id": "{mine}", "delay_minutes": True}, {"delay_minutes"}),
        ({"contact_method_id": "{theirs}", "delay_minutes": 0}, {"contact_method_id"}),
        ({"contact_method_id": 999, "delay_minutes": 0}, {"contact_method_id"}),
        ({"delay_minutes": 0}, {"contact_method_id"}),
        ({"contact_method_id": "{mine}", "delay": 3}, {"delay"}),
    ],
)
def test_notification_rule_validation(api, member, admin, body, fields):
    mine = factories.make_contact_method(member)
    theirs = factories.make_contact_method(admin)
    ids = {"{mine}": mine.id, "{theirs}": theirs.id}
    body = {k: ids.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
    api.as_user(member)
    error = _error(api.post(f"/api/v1/users/{member.id}/notification-rules", json=body), 422, "validation_error")
    assert set(error["fields"]) == fields
    assert db.session.scalars(select(NotificationRule)).all() == []


def test_notification_rules_of_other_users(api, member, admin):
    method = factories.make_contact_method(admin)
    rule = factories.make_notification_rule(admin, method)
    api.as_user(member)
    url = f"/api/v1/users/{admin.id}/notification-rules"
    _error(api.get(url), 403, "forbidden")
    _error(api.post(url, json={"contact_method_id": method.id}), 403, "forbidden")
    _error(api.get(f"{url}/{rule.id}"), 403, "forbidden")
    _error(api.delete(f"{url}/{rule.id}"), 403, "forbidden")
    _error(api.get(f"/api/v1/users/{member.id}/notification-rules/{rule.id}"), 404, "not_found")
    _error(api.delete(f"/api/v1/users/{member.id}/notification-rules/{rule.id}"), 404, "not_found")
    api.as_user(admin)
    assert len(api.get(url).get_json()["notification_rules"]) == 1


def test_token_use_records_last_used(api, member, clock):
    api.as_user(member)
    token = db.session.scalars(select(ApiToken)).one()
    assert token.last_used_at is None
    clock.advance(minutes=30)
    api.get("/api/v1/users")
    db.session.refresh(token)
    assert abs((token.last_used_at - clock.now()).total_seconds()) < 5
