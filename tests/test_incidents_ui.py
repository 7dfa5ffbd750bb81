"""The incident console and incident page, without JavaScript (plain forms) and with htmx."""

import html
import re
from urllib.parse import parse_qs, urlsplit

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
    page1 = client.get("/incidents").get_data(as_text=True)
    assert "27 incidents" in page1 and "Newest" not in page1
    older = html.unescape(re.search(r'href="([^"]+)">Older', page1).group(1))
    assert "cursor=" in older and "page=" not in older
    page2 = client.get(older).get_data(as_text=True)
    assert "Problem 0<" in page2 and "Problem 26<" not in page2
    assert "showing older ones" in page2 and "Older" not in page2 and "← Newest" in page2


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
    assert 'href="https://img.example.com/a.png"' in page and "<img" not in page  # a link, never loaded
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


def test_row_acknowledge_and_resolve_from_the_list_without_js(client, auth):
    """The row buttons post to the incident's action with `next` = the filtered list."""
    _login(auth, name="Rowan")
    web = factories_events.make_integration(factories_events.make_service(name="Web"))
    incident = factories_events.make_incident(web, summary="Checkout slow")
    page = client.get(f"/incidents?service_id={web.service_id}&q=checkout").get_data(as_text=True)
    next_url = f"/incidents?status=open&service_id={web.service_id}&q=checkout"
    [ack_url] = re.findall(rf'formaction="(/incidents/{incident.id}/acknowledge\?next=[^"]+)"', page)
    ack_url = html.unescape(ack_url)
    assert parse_qs(urlsplit(ack_url).query) == {"next": [next_url]}
    assert f'name="next" value="{next_url.replace("&", "&amp;")}"' in page
    token = auth.csrf_token()
    response = client.post(ack_url, data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == next_url
    assert "HX-Trigger" in response.headers  # harmless without JS, used by htmx
    page = client.get(next_url).get_data(as_text=True)
    assert f"Incident #{incident.number} acknowledged." in page
    assert "badge-acknowledged" in page
    # Again: already acknowledged, said so, nothing changes.
    client.post(ack_url, data={"csrf_token": token})
    assert f"Incident #{incident.number} was already acknowledged." in client.get(next_url).get_data(as_text=True)
    response = client.post(f"/incidents/{incident.id}/resolve?next=//evil.example/x", data={"csrf_token": token})
    assert response.headers["Location"] == f"/incidents/{incident.id}"  # never off-site
    db.session.expire_all()
    assert incident.status == "resolved"


def test_actions_answer_htmx_with_a_notice_and_a_refresh_event(client, auth):
    _login(auth)
    a = factories_events.make_incident(summary="A")
    b = factories_events.make_incident(summary="B")
    token = auth.csrf_token()
    htmx = {"HX-Request": "true", "X-CSRFToken": token}
    response = client.post(
        "/incidents/bulk", data={"action": "acknowledge", "incident_ids": [a.id, b.id]}, headers=htmx
    )
    assert response.status_code == 200
    assert response.headers["HX-Trigger"] == "incidents-changed"
    assert response.get_data(as_text=True).strip() == '<p class="flash flash-message">Acknowledged 2 incidents.</p>'
    response = client.post(f"/incidents/{a.id}/resolve", headers=htmx)
    assert response.status_code == 200 and "HX-Trigger" in response.headers
    assert f"Incident #{a.number} resolved." in response.get_data(as_text=True)
    response = client.post("/incidents/bulk", data={"action": "resolve"}, headers=htmx)
    assert "Select at least one incident first." in response.get_data(as_text=True)
    assert "HX-Trigger" not in response.headers
    # Nothing was left in the session for the next full page.
    assert "Acknowledged 2 incidents." not in client.get("/incidents").get_data(as_text=True)
    db.session.expire_all()
    assert (a.status, b.status) == ("resolved", "acknowledged")


def test_poll_keeps_checked_boxes_and_interval_is_configurable(client, auth, app):
    _login(auth)
    a = factories_events.make_incident(summary="A")
    b = factories_events.make_incident(summary="B")
    fragment = client.get(f"/incidents?incident_ids={a.id}&incident_ids=x", headers={"HX-Request": "true"})
    body = fragment.get_data(as_text=True)
    assert f'id="pick-{a.id}" checked' in body and f'id="pick-{b.id}" checked' not in body
    assert 'hx-get="/incidents?status=open"' in body  # the checked ids are sent, never baked into the URL
    assert 'hx-trigger="every 5000ms, incidents-changed from:body, change"' in body
    app.config["INCIDENTS_POLL_SECONDS"] = 0.5
    page = client.get("/incidents").get_data(as_text=True)
    assert "every 500ms, incidents-changed" in page
    assert 'hx-trigger="every 1500ms, incidents-changed from:body"' in page  # the nav count
