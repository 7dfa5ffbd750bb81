"""Issue 14, defects 5 and 6: a channel this server cannot send on cannot be added (and the preview
says so for methods that exist), and another service's integration is refused with a clear 404."""

import pytest
from sqlalchemy import select

from openduty import notifiers
from openduty.extensions import db
from openduty.models import ContactMethod, Integration
from tests.factories_escalation import make_pager, make_policy
from tests.factories_events import make_integration, make_service


def test_sms_and_voice_need_twilio(api, member):
    api.as_user(member)
    for kind in ("sms", "voice"):
        response = api.post(
            f"/api/v1/users/{member.id}/contact-methods", json={"kind": kind, "address": "+14155550100"}
        )
        assert response.status_code == 422
        message = response.json["error"]["fields"]["kind"]
        assert "not configured on this server" in message and "TWILIO_ACCOUNT_SID" in message
    assert db.session.scalars(select(ContactMethod)).all() == []


@pytest.mark.parametrize(
    ("kind", "address", "setting"), [("pushover", "u" * 30, "PUSHOVER_TOKEN"), ("xmpp", "a@b.org", "XMPP_JID")]
)
def test_pushover_and_xmpp_need_their_settings(api, member, kind, address, setting):
    api.as_user(member)
    response = api.post(f"/api/v1/users/{member.id}/contact-methods", json={"kind": kind, "address": address})
    assert response.status_code == 422 and setting in response.json["error"]["fields"]["kind"]


def test_the_form_offers_only_channels_this_server_has(client, auth, member, post_form):
    auth.login(member.email)
    page = client.get("/profile").get_data(as_text=True)
    assert '<option disabled="" value="sms">SMS (not configured on this server)</option>' in page
    assert '<option value="email">' in page
    response = post_form(f"/users/{member.id}/contact-methods", {"kind": "sms", "address": "+14155550100"})
    assert response.status_code == 422
    assert "SMS (Twilio) is not configured on this server" in response.get_data(as_text=True)
    assert db.session.scalars(select(ContactMethod)).all() == []


def test_the_preview_marks_pages_this_server_cannot_send(app, client, auth, admin):
    alice = make_pager("Alice", {"sms": ("+14155550101", 0), "email": ("alice@example.com", 0)})
    policy = make_policy([(5, [alice])])
    auth.login(admin.email)
    html = client.get(f"/policies/{policy.id}").get_data(as_text=True)
    assert "SMS (not configured on this server: this page would fail)" in html
    app.config.update(TWILIO_ACCOUNT_SID="AC1", TWILIO_AUTH_TOKEN="t", TWILIO_FROM_NUMBER="+15005550006")
    assert notifiers.not_configured("sms") is None
    assert "not configured" not in client.get(f"/policies/{policy.id}").get_data(as_text=True)


def test_another_services_integration_is_not_found(client, auth, admin, api):
    ours, theirs = make_service(name="Checkout"), make_service(name="Billing")
    integration = make_integration(theirs)
    key = integration.key
    auth.login(admin.email)
    web = client.post(
        f"/services/{ours.id}/integrations/{integration.id}/regenerate", data={"csrf_token": auth.csrf_token()}
    )
    assert web.status_code == 404
    assert f"Checkout has no integration with id {integration.id}" in web.get_data(as_text=True)
    response = api.as_user(admin).post(f"/api/v1/services/{ours.id}/integrations/{integration.id}/regenerate")
    assert response.status_code == 404
    assert response.json["error"]["message"] == f"Checkout has no integration with id {integration.id}."
    db.session.expire_all()
    assert db.session.get(Integration, integration.id).key == key
