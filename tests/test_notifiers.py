"""Each notifier against a real local server: formats, signatures, transient vs permanent errors."""

import json

import pytest

from openduty.notifiers import notifier_for
from openduty.notifiers.base import Message, PermanentError, TransientError
from openduty.notifiers.webhook import signature
from tests.plugins.escalation import TWILIO_SID


def _message(**fields):
    defaults = dict(
        subject="[Openduty] #7 TRIGGERED: Disk full", body="Disk full on db-1", action_url="http://localhost/ack/t",
        incident_id=7, incident_number=7, short="Openduty: #7 Disk full", ack_token="tok",
        incidents=[{"id": 7, "number": 7, "summary": "Disk full"}],
    )  # fmt: skip
    return Message(**{**defaults, **fields})


def test_webhook_is_json_signed_with_hmac_sha256(app, channels):
    notifier_for("webhook").send(channels.url_for("/hook/ok"), _message())
    request = channels.log[-1][0]
    body = request.get_data()
    timestamp = request.headers["X-Openduty-Timestamp"]
    assert request.headers["X-Openduty-Signature"] == signature("webhook-secret", timestamp, body)
    payload = json.loads(body)
    assert payload["event"] == "page" and payload["acknowledge_url"] == "http://localhost/ack/t"


def test_webhook_errors_are_classified(app, channels):
    with pytest.raises(TransientError):
        notifier_for("webhook").send(channels.url_for("/hook/down"), _message())
    with pytest.raises(PermanentError):
        notifier_for("webhook").send(channels.url_for("/hook/gone"), _message())
    with pytest.raises(TransientError):
        notifier_for("webhook").send("http://127.0.0.1:9/refused", _message())


def test_slack_block_kit_with_acknowledge_button(app, channels):
    notifier_for("slack").send(channels.url_for("/slack/ok"), _message())
    payload = json.loads(channels.log[-1][0].get_data())
    button = payload["blocks"][-1]["elements"][0]
    assert payload["blocks"][0]["type"] == "header"
    assert button["text"]["text"] == "Acknowledge" and button["url"] == "http://localhost/ack/t"


def test_twilio_sms_and_voice(app, channels):
    assert notifier_for("sms").send("+14155550101", _message()) == "SM1"
    request = channels.log[-1][0]
    assert request.path == f"/twilio/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    assert request.authorization.username == TWILIO_SID
    assert request.form["Body"] == "Openduty: #7 Disk full http://localhost/ack/t"
    assert request.form["From"] == "+14155550000"
    notifier_for("voice").send("+14155550101", _message())
    twiml = channels.log[-1][0].form["Twiml"]
    assert 'action="http://localhost/twilio/voice/tok"' in twiml and "Press 1 to acknowledge" in twiml


def test_twilio_unconfigured_is_permanent(app):
    app.config.update(TWILIO_ACCOUNT_SID=None)
    with pytest.raises(PermanentError, match="TWILIO_ACCOUNT_SID"):
        notifier_for("sms").send("+14155550101", _message())


def test_pushover(app, channels):
    assert notifier_for("pushover").send("u" * 30, _message()) == "r1"
    form = channels.log[-1][0].form
    assert form["priority"] == "1" and form["url"] == "http://localhost/ack/t" and form["user"] == "u" * 30


def test_apprise_url_reaches_a_json_endpoint(app, httpserver):
    httpserver.expect_request("/apprise", method="POST").respond_with_data("ok")
    notifier_for("apprise").send(f"json://127.0.0.1:{httpserver.port}/apprise", _message(recipient_is_admin=True))
    payload = json.loads(httpserver.log[-1][0].get_data())
    assert payload["title"] == "[Openduty] #7 TRIGGERED: Disk full" and "http://localhost/ack/t" in payload["message"]


def test_email_threads_per_incident_and_refusals_are_permanent(app, smtp_server):
    notifier = notifier_for("email")
    notifier.send("a@example.com", _message(html="<p>Disk full</p>"))
    notifier.send("a@example.com", _message(subject="[Openduty] #7 RESOLVED: Disk full", purpose="resolve"))
    first, second = smtp_server.messages
    assert first["Message-ID"] != second["Message-ID"]
    assert first["In-Reply-To"] == second["In-Reply-To"] == "<openduty.incident-7@example.com>"
    assert first.get_body(("html",)).get_content().strip() == "<p>Disk full</p>"
    smtp_server.refuse.add("nobody@example.com")
    with pytest.raises(PermanentError, match="refused"):
        notifier.send("nobody@example.com", _message())
    app.config.update(SMTP_PORT=9)
    with pytest.raises(TransientError):
        notifier.send("a@example.com", _message())


def test_xmpp_unconfigured_is_permanent(app):
    with pytest.raises(PermanentError, match="XMPP_JID"):
        notifier_for("xmpp").send("bob@example.com", _message())
