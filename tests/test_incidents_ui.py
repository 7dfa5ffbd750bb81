"""The incident console and incident page, without JavaScript (plain forms) and with htmx."""

from openduty.extensions import db
from openduty.models import EscalationPolicy, Incident
from tests import factories, factories_events


def _login(auth, **fields):
    user = factories.make_user(**fields)
    auth.login(user.email)
    return user


def test_console_lists_open_incidents_newest_first_with_nav_count(client, auth):
    _login(auth)
    first = factories_events.make_incident(summary="Old problem")
    factories_events.make_incident(summary="New problem")
    factories_events.make_incident(summary="Gone", status="resolved")
    page = client.get("/incidents").get_data(as_text=True)
    assert page.index("New problem") < page.index("Old problem")
    assert "Gone" not in page
    assert 'id="open-count"' in page and ">2</span>" in page
    assert "Gone" in client.get("/incidents?status=resolved").get_data(as_text=True)
    assert client.get("/incidents/count").get_data(as_text=True).count(">2<") == 1
    assert f'href="/incidents/{first.id}"' in page


def test_console_filters_search_and_htmx_fragment(client, auth):
    _login(auth)
    web = factories_events.make_integration(factories_events.make_service(name="Web"))
    factories_events.make_incident(web, summary="Checkout slow")
    factories_events.make_incident(summary="Disk full")
    page = client.get(f"/incidents?service_id={web.service_id}").get_data(as_text=True)
    assert "Checkout slow" in page and "Disk full" not in page
    fragment = client.get("/incidents?q=disk", headers={"HX-Request": "true"})
    html = fragment.get_data(as_text=True)
    assert "Disk full" in html and "Checkout slow" not in html
    assert "<nav" not in html  # only the results block
    assert 'hx-get="/incidents?status=open&amp;q=disk"' in html  # the poll keeps the filters
    assert "HX-Request" in fragment.headers["Vary"]
    assert client.get("/incidents?status=bogus").status_code == 400


def test_console_paginates(client, auth):
    _login(auth)
    integration = factories_events.make_integration()
    for n in range(27):
        factories_events.make_incident(integration, summary=f"Problem {n}")
    page2 = client.get("/incidents?page=2").get_data(as_text=True)
    assert "Problem 0<" in page2 and "Problem 26<" not in page2
    assert "page 2 of 2" in page2


def test_assigned_to_me_tab(client, auth):
    me = _login(auth)
    factories_events.make_incident(summary="Mine", assigned_to_id=me.id)
    factories_events.make_incident(summary="Theirs")
    page = client.get("/incidents?mine=1").get_data(as_text=True)
    assert "Mine" in page and "Theirs" not in page


def test_bulk_acknowledge_and_resolve_without_js(client, auth):
    user = _login(auth, name="Bulk Bob")
    a = factories_events.make_incident(summary="A")
    b = factories_events.make_incident(summary="B")
    c = factories_events.make_incident(summary="C")
    token = auth.csrf_token()
    response = client.post(
        "/incidents/bulk",
        data={"csrf_token": token, "action": "acknowledge", "incident_ids": [a.id, b.id], "next": "/incidents?q=x"},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/incidents?q=x"
    db.session.expire_all()
    assert (a.status, b.status, c.status) == ("acknowledged", "acknowledged", "triggered")
    assert a.acknowledged_by_id == user.id
    assert a.log_entries[-1].channel == "web" if a.log_entries[-1].kind == "acknowledge" else True
    client.post("/incidents/bulk", data={"csrf_token": token, "action": "resolve", "incident_ids": [a.id, c.id]})
    db.session.expire_all()
    assert (a.status, c.status) == ("resolved", "resolved")
    page = client.get("/incidents?status=all").get_data(as_text=True)
    assert "Resolved 2 incidents." in page
    assert client.post("/incidents/bulk", data={"csrf_token": token, "action": "explode"}).status_code == 400
    # Without a CSRF token nothing happens.
    assert client.post("/incidents/bulk", data={"action": "resolve", "incident_ids": [b.id]}).status_code == 400
    db.session.expire_all()
    assert b.status == "acknowledged"


def test_incident_page_actions_and_notes(client, auth):
    _login(auth, name="Nora")
    incident = factories_events.make_incident(
        summary="API errors",
        details={
            "custom_details": {"error_rate": "12%"},
            "links": [{"href": "https://grafana.example.com/x", "text": "Graph"}, {"href": "javascript:alert(1)"}],
            "images": [{"src": "https://img.example.com/a.png", "alt": "chart"}],
        },
    )
    page = client.get(f"/incidents/{incident.id}").get_data(as_text=True)
    assert "API errors" in page and "error_rate" in page and "12%" in page
    assert 'href="https://grafana.example.com/x"' in page
    assert "javascript:alert" not in page.split("<details>")[0]  # never rendered as a link
    assert 'src="https://img.example.com/a.png"' in page
    assert "nobody is paged" in page  # no escalation policy
    token = auth.csrf_token()
    assert client.post(f"/incidents/{incident.id}/acknowledge", data={"csrf_token": token}).status_code == 302
    response = client.post(f"/incidents/{incident.id}/notes", data={"csrf_token": token, "note": ""})
    assert response.status_code == 422
    assert "Note is required" in response.get_data(as_text=True)
    client.post(f"/incidents/{incident.id}/notes", data={"csrf_token": token, "note": "Restarted the pods"})
    client.post(f"/incidents/{incident.id}/resolve", data={"csrf_token": token})
    page = client.get(f"/incidents/{incident.id}").get_data(as_text=True)
    assert "Restarted the pods" in page and "Nora via web" in page
    db.session.expire_all()
    assert [e.kind for e in incident.log_entries if e.kind in ("acknowledge", "note", "resolve")] == [
        "acknowledge",
        "note",
        "resolve",
    ]
    timeline = client.get(f"/incidents/{incident.id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert timeline.lstrip().startswith('<ol class="timeline"')
    assert client.get("/incidents/999").status_code == 404


def test_console_needs_login(client):
    response = client.get("/incidents")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_policy_warning_disappears_with_a_policy(client, auth, app):
    _login(auth)
    policy = EscalationPolicy(name="Ops")
    db.session.add(policy)
    service = factories_events.make_service(name="Paged", escalation_policy=policy)
    incident = factories_events.make_incident(factories_events.make_integration(service))
    assert "nobody is paged" not in client.get(f"/incidents/{incident.id}").get_data(as_text=True)
    assert db.session.get(Incident, incident.id).number == 1
