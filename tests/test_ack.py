"""Acknowledge from the page: signed links (GET shows, POST acts), Twilio SMS replies and keypad."""

import re

from openduty.ack_links import ack_token
from openduty.extensions import db
from openduty.models import Incident
from openduty.notifiers.twilio import request_signature
from tests.factories_escalation import make_pager, make_policy, make_service, open_incident
from tests.plugins.escalation import TWILIO_TOKEN


def _incident(pager_fixture=None):
    alice = make_pager("Alice", {"sms": ("+14155550101", 0)})
    return alice, open_incident(make_service(make_policy([(5, [alice])])), summary="Disk full")


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_link_get_shows_and_only_post_acknowledges(app, client):
    alice, incident = _incident()
    path = f"/ack/{ack_token([incident.id], alice.id)}"
    page = client.get(path)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Disk full" in html and "Acknowledge" in html
    db.session.expire_all()
    assert db.session.get(Incident, incident.id).status == "triggered"  # a scanner's GET changes nothing

    response = client.post(path, data={"action": "acknowledge", "csrf_token": _csrf(html)})
    assert response.status_code == 303
    db.session.expire_all()
    incident = db.session.get(Incident, incident.id)
    assert incident.status == "acknowledged" and incident.acknowledged_by_id == alice.id
    assert incident.log_entries[-1].channel == "link" or any(e.channel == "link" for e in incident.log_entries)

    html = client.get(path).get_data(as_text=True)
    response = client.post(path, data={"action": "resolve", "csrf_token": _csrf(html)})
    db.session.expire_all()
    assert db.session.get(Incident, incident.id).status == "resolved"


def test_tampered_and_expired_links_get_a_clear_page(app, client, clock):
    alice, incident = _incident()
    token = ack_token([incident.id], alice.id)
    tampered = client.get(f"/ack/{token[:-3]}xyz")
    assert tampered.status_code == 400 and "not valid" in tampered.get_data(as_text=True)
    clock.advance(days=8)
    expired = client.get(f"/ack/{token}")
    assert expired.status_code == 410 and "expired" in expired.get_data(as_text=True)
    assert client.post(f"/ack/{token}", data={"action": "acknowledge"}).status_code in (400, 410)
    db.session.expire_all()
    assert db.session.get(Incident, incident.id).status == "triggered"


def _twilio_post(client, path, form, token=TWILIO_TOKEN):
    signature = request_signature(token, "http://localhost" + path, form)
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


def test_sms_reply_acknowledges_and_resolves(app, client, channels):
    alice, incident = _incident()
    response = _twilio_post(client, "/twilio/sms", {"From": "+14155550101", "Body": f"ack {incident.number}"})
    assert response.status_code == 200 and "acknowledged" in response.get_data(as_text=True)
    db.session.expire_all()
    incident = db.session.get(Incident, incident.id)
    assert incident.status == "acknowledged"
    assert any(e.kind == "acknowledge" and e.channel == "sms" for e in incident.log_entries)
    response = _twilio_post(client, "/twilio/sms", {"From": "+14155550101", "Body": f"RES #{incident.number}"})
    assert "resolved" in response.get_data(as_text=True)
    unknown = _twilio_post(client, "/twilio/sms", {"From": "+14155550999", "Body": "ack 1"})
    assert "does not know this number" in unknown.get_data(as_text=True)


def test_twilio_webhooks_reject_bad_signatures(app, client, channels):
    alice, incident = _incident()
    response = _twilio_post(client, "/twilio/sms", {"From": "+14155550101", "Body": "ack 1"}, token="wrong")
    assert response.status_code == 403
    db.session.expire_all()
    assert db.session.get(Incident, incident.id).status == "triggered"


def test_voice_keypad_one_acknowledges(app, client, channels):
    alice, incident = _incident()
    path = f"/twilio/voice/{ack_token([incident.id], alice.id)}"
    assert "Not acknowledged" in _twilio_post(client, path, {"Digits": "2"}).get_data(as_text=True)
    response = _twilio_post(client, path, {"Digits": "1"})
    assert "<Say" in response.get_data(as_text=True) and response.mimetype == "text/xml"
    db.session.expire_all()
    incident = db.session.get(Incident, incident.id)
    assert incident.status == "acknowledged"
    assert any(e.kind == "acknowledge" and e.channel == "voice" for e in incident.log_entries)


def test_paged_link_round_trip(pager, client):
    """The link in a real page (email) acknowledges, and paging stops."""
    alice = make_pager("Alice", {"email": ("alice@example.com", 0)})
    bob = make_pager("Bob", {"email": ("bob@example.com", 0)})
    incident = open_incident(make_service(make_policy([(5, [alice]), (5, [bob])])))
    pager.run()
    body = pager.pages()[0].raw["message"].get_body(("plain",)).get_content()
    path = re.search(r"http://localhost(/ack/\S+)", body).group(1)
    html = client.get(path).get_data(as_text=True)
    client.post(path, data={"action": "acknowledge", "csrf_token": _csrf(html)})
    pager.advance(minutes=10)
    assert pager.who() == [("email", "alice@example.com")]
    assert db.session.get(Incident, incident.id).status == "acknowledged"


def test_send_test_notification_button(pager, client, auth):
    alice = make_pager("Alice", {"webhook": (pager.httpserver.url_for("/hook/ok"), 0)}, password="pw-alice-123")
    auth.login(alice.email, "pw-alice-123")
    method = alice.contact_methods[0]
    profile = client.get("/profile").get_data(as_text=True)
    assert f'action="/contact-methods/{method.id}/test"' in profile  # the button is on the profile
    response = client.post(f"/contact-methods/{method.id}/test", data={"csrf_token": auth.csrf_token()})
    assert response.status_code == 303 and response.headers["Location"] == "/profile"
    pager.run()
    assert [(p.kind, p.purpose) for p in pager.pages(None)] == [("webhook", "test")]
    other = make_pager("Other", {"webhook": (pager.httpserver.url_for("/hook/ok"), 0)})
    forbidden = client.post(
        f"/contact-methods/{other.contact_methods[0].id}/test", data={"csrf_token": auth.csrf_token()}
    )
    assert forbidden.status_code == 403


def test_an_admins_test_without_javascript_returns_to_that_users_page(pager, client, auth, admin):
    """Issue 15, finding 6: the button on /users/<id> led back to the admin's own profile."""
    bob = make_pager("Bob", {"webhook": (pager.httpserver.url_for("/hook/ok"), 0)})
    auth.login(admin.email)
    response = client.post(f"/contact-methods/{bob.contact_methods[0].id}/test", data={"csrf_token": auth.csrf_token()})
    assert response.status_code == 303 and response.headers["Location"] == f"/users/{bob.id}"
    assert "Test notification sent" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_test_notifications_are_rate_limited_per_user(pager, client, auth, app, api):
    """Issue 8, finding 10: the button (page and htmx) and the API share one per-user limit."""
    app.config["TEST_NOTIFICATION_LIMIT"] = 2
    alice = make_pager("Alice", {"webhook": (pager.httpserver.url_for("/hook/ok"), 0)}, password="pw-alice-123")
    bob = make_pager("Bob", {"webhook": (pager.httpserver.url_for("/hook/ok"), 0)})
    auth.login(alice.email, "pw-alice-123")
    url = f"/contact-methods/{alice.contact_methods[0].id}/test"
    assert client.post(url, data={"csrf_token": auth.csrf_token()}).status_code == 303
    assert client.post(url, data={"csrf_token": auth.csrf_token()}).status_code == 303
    limited = client.post(url, data={"csrf_token": auth.csrf_token()})
    assert limited.status_code == 429 and "test notifications recently" in limited.get_data(as_text=True)
    htmx = client.post(url, data={"csrf_token": auth.csrf_token()}, headers={"HX-Request": "true"})
    assert htmx.status_code == 429 and int(htmx.headers["Retry-After"]) > 0
    api.as_user(alice)
    over = api.post(f"/api/v1/contact-methods/{alice.contact_methods[0].id}/test")
    assert over.status_code == 429 and "Try again in" in over.json["error"]["message"]
    assert int(over.headers["Retry-After"]) > 0
    pager.run()
    assert len(pager.pages(None)) == 2  # nothing was queued beyond the limit
    api.as_user(bob)  # another user has their own allowance
    assert api.post(f"/api/v1/contact-methods/{bob.contact_methods[0].id}/test").status_code == 202
