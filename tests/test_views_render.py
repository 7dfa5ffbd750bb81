"""Templates of the services, policies and users pages only render what their view passed: no
query runs while they render (issue 10), and the web and API views share one set of rules."""

import pytest

from openduty import users
from openduty.extensions import db
from tests.factories import make_contact_method, make_notification_rule, make_user
from tests.factories_escalation import make_policy, make_service, open_incident


@pytest.fixture
def world(app, admin):
    bob = make_user(email="bob@example.com", name="Bob")
    method = make_contact_method(bob, kind="email", address="bob@example.com")
    make_notification_rule(bob, method, delay_minutes=2)
    users.issue_token(bob, {"name": "ci"})
    policy = make_policy([(0, [bob]), (5, [admin])], name="Primary")
    service = make_service(policy, name="Web")
    db.session.commit()
    incident = open_incident(service)
    return {"bob": bob, "policy": policy, "service": service, "incident": incident}


def test_services_policies_and_users_pages_query_nothing_while_rendering(
    client, auth, world, admin, queries_while_rendering
):
    bob, policy, service = world["bob"], world["policy"], world["service"]
    auth.login(admin.email)
    pages = [
        "/services",
        f"/services/{service.id}",
        "/services/new",
        f"/services/{service.id}/edit",
        "/policies",
        f"/policies/{policy.id}",
        f"/policies/{policy.id}/preview",
        "/users/",
        "/users/new",
        f"/users/{bob.id}/edit",
        f"/users/{bob.id}",
        f"/users/{bob.id}/contact-methods",
        f"/users/{bob.id}/notification-rules",
        f"/users/{bob.id}/tokens",
    ]
    for path in pages:
        for htmx in (False, True):
            db.session.expire_all()  # as in a fresh request: nothing left loaded by an earlier one
            del queries_while_rendering[:]
            response = client.get(path, headers={"HX-Request": "true"} if htmx else {})
            assert response.status_code == 200, path
            assert queries_while_rendering == [], f"rendering GET {path} (htmx: {htmx}) queried"
    # A change answered with the levels block renders from what the view loaded, too.
    level = policy.levels[0]
    del queries_while_rendering[:]
    response = client.post(
        f"/policies/{policy.id}/levels/{level.id}",
        data={"csrf_token": auth.csrf_token(), "delay_minutes": "3"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert queries_while_rendering == []


def test_the_navigation_count_and_escalation_data_come_from_the_views(client, auth, world, admin):
    auth.login(admin.email)
    page = client.get(f"/services/{world['service'].id}").get_data(as_text=True)
    assert 'id="open-count"' in page and ">1</span>" in page  # the badge, counted by views.render
    assert "If an incident opened now:" in page and "Bob by email" in page  # the preview, from the view
    fragment = client.get(f"/users/{world['bob'].id}/tokens", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "open-count" not in fragment  # fragments carry no navigation
    missing = client.get("/services/999999")  # an error page, rendered by no view: the badge loads itself
    assert missing.status_code == 404 and "No service with id 999999." in missing.get_data(as_text=True)
    assert 'id="open-count"' in missing.get_data(as_text=True) and 'hx-trigger="load"' in missing.get_data(as_text=True)
    incident = client.get(f"/incidents/{world['incident'].id}").get_data(as_text=True)
    assert f'<option value="{world["bob"].id}">Bob</option>' in incident  # reassign choices, from the view


def test_pages_and_api_refuse_a_duplicate_policy_name_the_same_way(client, auth, api, world, admin):
    """One name check (openduty.policies) behind the page and the API."""
    auth.login(admin.email)
    page = client.post("/policies", data={"csrf_token": auth.csrf_token(), "name": "primary"})
    assert page.status_code == 422
    message = "An escalation policy with this name already exists."
    assert message in page.get_data(as_text=True)
    response = api.as_user(admin).post("/api/v1/escalation-policies", json={"name": "PRIMARY"})
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"]["name"] == message


def test_api_404s_stay_json_with_their_messages(api, world, admin):
    api.as_user(admin)
    service = world["service"]
    missing = api.get("/api/v1/services/999999")
    assert missing.status_code == 404
    assert missing.get_json() == {"error": {"code": "not_found", "message": "No service with id 999999."}}
    other = make_service(None, name="Other")
    integration = api.post(f"/api/v1/services/{other.id}/integrations", json={"kind": "generic"}).get_json()
    foreign = api.get(f"/api/v1/services/{service.id}/integrations/{integration['id']}")
    assert foreign.status_code == 404
    assert foreign.get_json()["error"]["message"].endswith(f"has no integration with id {integration['id']}.")


def test_list_pages_answer_with_or_without_a_trailing_slash(client, auth, admin):
    """Issue 15, finding 9: /users/ needed its slash while /schedules/ answered 404."""
    auth.login(admin.email)
    for path in ("/users", "/schedules", "/services", "/policies", "/incidents", "/teams"):
        assert client.get(path).status_code == 200, path
        assert client.get(path + "/").status_code == 200, path + "/"
