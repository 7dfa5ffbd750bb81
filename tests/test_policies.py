"""Escalation policies: pages (create, levels, htmx reorder, preview) and the JSON API."""

import pytest

from openduty.extensions import db
from openduty.models import EscalationPolicy
from tests import factories
from tests.factories_escalation import make_pager, make_policy, make_service


@pytest.fixture
def admin_client(client, auth, admin):
    auth.login(admin.email)
    return client


@pytest.mark.usefixtures("channels_configured")
def test_preview_uses_the_planner(app, admin_client, auth):
    alice = make_pager("Alice", {"sms": ("+14155550101", 0), "email": ("alice@example.com", 0)})
    bob = make_pager("Bob", {"voice": ("+14155550102", 0)})
    policy = make_policy([(5, [alice]), (10, [bob])], repeat_count=2)
    html = admin_client.get(f"/policies/{policy.id}").get_data(as_text=True)
    assert "at 0 min Alice by SMS and email" in html
    assert "at 5 min Bob by voice call" in html
    assert "repeats 2 more times, every 15 min" in html


def test_create_policy_add_levels_and_reorder_with_htmx(app, admin_client, auth):
    alice, bob = factories.make_user(name="Alice"), factories.make_user(name="Bob")
    csrf = auth.csrf_token()
    response = admin_client.post("/policies", data={"name": "Primary", "repeat_count": "1", "csrf_token": csrf})
    assert response.status_code == 303
    policy = db.session.scalar(db.select(EscalationPolicy))
    for user, delay in ((alice, 5), (bob, 10)):
        response = admin_client.post(
            f"/policies/{policy.id}/levels",
            data={"target": f"user:{user.id}", "delay_minutes": delay, "csrf_token": csrf},
        )
        assert response.status_code == 303
    db.session.expire_all()
    assert [lvl.targets[0].user.name for lvl in policy.levels] == ["Alice", "Bob"]
    bob_level = policy.levels[1]
    response = admin_client.post(
        f"/policies/{policy.id}/levels/{bob_level.id}/move",
        data={"direction": "up", "csrf_token": csrf},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert response.headers["HX-Trigger"] == "policy-changed"
    fragment = response.get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="levels">') and "<html" not in fragment
    db.session.expire_all()
    assert [lvl.targets[0].user.name for lvl in policy.levels] == ["Bob", "Alice"]
    preview = admin_client.get(f"/policies/{policy.id}/preview").get_data(as_text=True)
    assert preview.index("at 0 min Bob") < preview.index("at 10 min Alice")


def test_bad_input_names_the_field_and_changes_nothing(app, admin_client, auth):
    policy = make_policy([(5, [factories.make_user()])], name="Ops")
    csrf = auth.csrf_token()
    response = admin_client.post("/policies", data={"name": "ops", "csrf_token": csrf})
    assert response.status_code == 422
    assert "already exists" in response.get_data(as_text=True)
    response = admin_client.post(
        f"/policies/{policy.id}/levels", data={"target": "user:999", "delay_minutes": "-1", "csrf_token": csrf}
    )
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "Delay must be at least 0" in body and "does not exist" in body
    db.session.expire_all()
    assert len(policy.levels) == 1


def test_only_admins_change_policies(app, client, auth):
    user = factories.make_user()
    policy = make_policy([(5, [user])])
    auth.login(user.email)
    assert client.get(f"/policies/{policy.id}").status_code == 200
    response = client.post(f"/policies/{policy.id}/delete", data={"csrf_token": auth.csrf_token()})
    assert response.status_code == 403


def test_anonymous_is_sent_to_login(client, app):
    assert client.get("/policies").status_code == 302


def test_api_crud_and_validation(app, api, admin):
    api.as_user(admin)
    alice = factories.make_user(name="Alice")
    body = {
        "name": "API",
        "repeat_count": 1,
        "levels": [{"delay_minutes": 5, "targets": [{"type": "user", "id": alice.id}]}],
    }
    response = api.post("/api/v1/escalation-policies", json=body)
    assert response.status_code == 201, response.json
    created = response.json
    assert response.headers["Location"] == f"/api/v1/escalation-policies/{created['id']}"
    assert created["levels"][0]["targets"][0] == {"type": "user", "id": alice.id, "name": "Alice"}
    assert created["preview"][0] == {
        "minute": 0,
        "level": 1,
        "pages": [{"user_id": alice.id, "name": "Alice", "channels": ["email"]}],
    }

    bad = api.post(
        "/api/v1/escalation-policies",
        json={"name": "API", "levels": [{"delay_minutes": "x", "targets": [{"type": "team", "id": 1}]}]},
    )
    assert bad.status_code == 422
    assert set(bad.json["error"]["fields"]) == {"name"}  # fields are checked first, then levels
    bad = api.post(
        "/api/v1/escalation-policies",
        json={"name": "Other", "levels": [{"delay_minutes": "x", "targets": [{"type": "team", "id": 1}]}]},
    )
    assert set(bad.json["error"]["fields"]) == {"levels[0].delay_minutes", "levels[0].targets[0]"}

    policy_id = created["id"]
    response = api.patch(f"/api/v1/escalation-policies/{policy_id}", json={"levels": [], "repeat_count": 0})
    assert response.status_code == 200 and response.json["levels"] == []
    assert api.get(f"/api/v1/escalation-policies/{policy_id}").json["repeat_count"] == 0
    assert api.get("/api/v1/escalation-policies").json["escalation_policies"][0]["name"] == "API"

    make_service(db.session.get(EscalationPolicy, policy_id), name="Web")
    conflict = api.delete(f"/api/v1/escalation-policies/{policy_id}")
    assert conflict.status_code == 409 and "Web" in conflict.json["error"]["message"]


def test_api_writes_need_admin(app, api):
    api.as_user(factories.make_user())
    assert api.post("/api/v1/escalation-policies", json={"name": "X"}).status_code == 403
    assert api.get("/api/v1/escalation-policies/99").status_code == 404
