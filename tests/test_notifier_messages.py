"""Any text an event can carry becomes a valid message on every channel (issue 8, finding 2).

Property tests feed arbitrary summaries, service names and details (newlines, control characters,
RTL marks, emoji, very long strings) through the message building and each channel's wire format,
and check each is valid the way its receiver checks it: the email package renders and re-parses
the email with header validation, Twilio's form fields and TwiML parse, Slack's JSON has no
control sequences, the webhook body is strict JSON, XMPP's stanza is well-formed XML.
"""

import email
import email.policy
import json
import re
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openduty.event_formats import MAX_SUMMARY
from openduty.extensions import db
from openduty.messages import build_message
from openduty.models import ContactMethod, Incident, Notification, Service, User
from openduty.notifiers import apprise as apprise_channel
from openduty.notifiers import notifier_for, pushover, slack, twilio, webhook, xmpp
from openduty.notifiers.base import Message
from tests.factories_escalation import make_pager, make_policy, make_service, open_incident
from tests.factories_events import make_integration

# Text no database stores (NUL, lone surrogates) is refused at ingest; everything else can arrive.
EVENT_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=300
) | st.sampled_from(
    [
        "Disk almost full on db1\nFree: 2%",
        "a\r\nSubject: injected\r\n\r\nbody",
        "<!channel> <@U123> <https://evil.example|click> & friends",
        "\u202egnp.exe \u200f\u200e שלום مرحبا",
        "🔥" * 400,
        "x" * 5000,
        "\x1b[31mred\x07\x0b\x0c\x85\u2028\u2029\ufeff\ufffe\uffff",
        " ",
    ]
)
SLACK_LINK = re.compile(r"<https?://[^\s<>|]+\|[^<>]*>", re.IGNORECASE)
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ufffe\uffff]")
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _xml_ok(text: str) -> None:
    ET.fromstring(text)  # raises on anything XML 1.0 does not allow


def _one_line(value: str) -> None:
    assert not CONTROL.search(value), repr(value)


def _slack_texts(blocks: list[dict]) -> list[dict]:
    """Every text object in Slack blocks (sections, fields, context elements)."""
    found = []
    for block in blocks:
        found += [block["text"]] if "text" in block else []
        found += block.get("fields", []) + [e for e in block.get("elements", []) if "type" in e and "text" in e]
    return [t if "type" in t else t["text"] for t in found]


def check_wire_formats(message: Message, config: dict) -> None:
    """Build what each channel sends for `message`, and validate it like its receiver would."""
    # Email: rendered with the SMTP policy (header validation, folding), then parsed back.
    built = notifier_for("email", config).build("alice@example.com", message)
    raw = built.as_bytes(policy=email.policy.SMTP)
    assert all(len(line) <= 998 for line in raw.split(b"\r\n")), "a line longer than RFC 5322 allows"
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    subject = str(parsed["Subject"])
    _one_line(subject)
    assert subject and len(subject) <= 250
    assert not parsed.defects and not any(parsed[h].defects for h in parsed.keys())
    assert parsed.get_body(("plain",)).get_content()

    # Twilio: form params survive encoding; the SMS is one line; the TwiML is valid XML.
    sms = twilio.sms_params("+14155550101", message)
    assert parse_qs(urlencode(sms))["Body"][0] == sms["Body"]
    _one_line(sms["Body"])
    assert 0 < len(sms["Body"]) <= twilio.SMS_MAX_LENGTH
    if message.action_url:
        assert message.action_url in sms["Body"], "the acknowledge link was cut off"
    twiml = twilio.voice_twiml(message, "http://localhost/twilio/voice/tok")
    _xml_ok(twiml)
    assert len(twiml) <= twilio.TWIML_MAX_LENGTH

    # Slack: JSON, every text within Slack's limits, no <...> control sequences from events (the
    # only ones are the event's links, <https://...|text>, whose address has no space, <, > or |).
    payload = json.loads(json.dumps(slack.payload(message)))
    assert len(payload["blocks"]) <= 50
    header = payload["blocks"][0]["text"]["text"]
    assert header.strip() and len(header) <= 150
    _one_line(header)
    mrkdwn = [payload["text"]] + [t["text"] for t in _slack_texts(payload["blocks"]) if t["type"] == "mrkdwn"]
    assert all(t.strip() for t in mrkdwn), "Slack refuses empty text"
    for text in mrkdwn:
        assert len(text) <= 3000
        bare = SLACK_LINK.sub("", text)
        assert "<" not in bare and ">" not in bare, text
        assert not re.search(r"&(?!amp;|lt;|gt;)", bare), "a bare & or a cut-off entity"
    for block in payload["blocks"]:
        assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))
        for button in block.get("elements", []) if block["type"] == "actions" else []:
            assert re.fullmatch(r"https?://\S+", button["url"]) and 0 < len(button["text"]["text"]) <= 75

    # Pushover: form params within its limits.
    push = pushover.params("u" * 30, message, "token")
    assert 0 < len(push["title"]) <= 250 and 0 < len(push["message"]) <= 1024
    _one_line(push["title"])

    # Webhook: strict JSON (no NaN, valid UTF-8), the subject one line.
    body = webhook.body(message)
    decoded = json.loads(body.decode("utf-8"), parse_constant=lambda c: pytest.fail(f"JSON constant {c}"))
    _one_line(decoded["subject"])

    # XMPP: the stanza slixmpp would send is well-formed XML.
    _xml_ok(xmpp.stanza(message, "bob@example.com"))

    # Apprise: a one-line title and a body.
    title, text = apprise_channel.title_and_body(message)
    _one_line(title)
    assert title and text


@given(subject=EVENT_TEXT, body=EVENT_TEXT, short=EVENT_TEXT)
@PROPERTY
def test_any_message_fields_make_valid_wire_formats(app, subject, body, short):
    message = Message(
        subject=subject, body=body, short=short, action_url="http://localhost/ack/" + "t" * 120,
        incident_id=7, incident_number=7, ack_token="tok", incidents=[{"id": 7, "summary": subject}],
    )  # fmt: skip
    check_wire_formats(message, app.config)


def _event_details(text: str) -> dict:
    """Details as the ingest stores them, every key, value, link and name made of event text."""
    return {
        "custom_details": {text: text, f"{text}2": [text, {text: 1.5}], "n": None, "x" * 300: text * 3},
        "links": [{"href": "https://example.com/" + text, "text": text}, {"href": text, "text": text}, {"href": 5}],
        "client": text,
        "client_url": "http://" + text,
    }


@given(summary=EVENT_TEXT, service=EVENT_TEXT, details=EVENT_TEXT, name=EVENT_TEXT, folded=st.integers(1, 12))
@PROPERTY
def test_any_event_text_makes_valid_messages_on_every_channel(app, summary, service, details, name, folded):
    """Event text -> incidents -> build_message (one page, or several folded) -> every channel:
    summaries, service names, custom_details keys and values, links and the names of the others
    paged."""
    user = User(email="alice@example.com", name="Alice")
    other = User(email="bob@example.com", name=name[:200])
    method = ContactMethod(user=user, kind="sms", address="+14155550101")
    svc = Service(name=service[:200])
    summary = summary[:MAX_SUMMARY]  # what the ingest stores at most
    batch = []
    for n in range(folded):
        incident = Incident(service=svc, dedup_key=f"k{n}", summary=summary, number=n + 1, status="triggered",
                            source=details[:255], details=_event_details(details))  # fmt: skip
        batch.append(Notification(incident=incident, user=user, contact_method=method, kind="sms",
                                  address=method.address, purpose="page"))  # fmt: skip
        db.session.add(Notification(incident=incident, user=other, kind="email", address=other.email, status="sent"))
    try:
        db.session.add_all(batch)
        db.session.flush()
        for kind, purpose in (("sms", "page"), ("email", "page"), ("voice", "page"), ("email", "resolve"),
                              ("sms", "resolve"), ("pushover", "page")):  # fmt: skip
            for row in batch:
                row.kind, row.purpose = kind, purpose
            check_wire_formats(build_message(batch), app.config)
    finally:
        db.session.rollback()


def test_alertmanager_summary_with_a_newline_is_delivered_by_email(client, pager):
    """The reproduction: `summary: "Disk almost full on db1\\nFree: 2%"` reaches a real SMTP server."""
    alice = make_pager("Alice", {"email": ("alice@example.com", 0)})
    service = make_service(make_policy([(5, [alice])]))
    integration = make_integration(service, kind="alertmanager")
    alert = {
        "status": "firing",
        "labels": {"alertname": "DiskFull", "instance": "db1"},
        "annotations": {"summary": "Disk almost full on db1\nFree: 2%"},
        "startsAt": "2026-03-02T09:00:00Z",
        "fingerprint": "abc",
    }
    response = client.post(
        f"/integrations/alertmanager/{integration.key}",
        json={"version": "4", "status": "firing", "receiver": "openduty", "groupKey": "g", "alerts": [alert]},
    )
    assert response.status_code in (200, 202), response.get_data(as_text=True)
    pager.run()
    [message] = pager.smtp.messages
    assert str(message["Subject"]).endswith("TRIGGERED: Disk almost full on db1 Free: 2%")
    assert "Disk almost full on db1\nFree: 2%" in message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    notification = db.session.scalar(db.select(Notification))
    assert notification.status == "sent" and notification.attempts == 1


def test_slack_event_text_cannot_mention_the_channel(app, channels):
    incident_text = "<!channel> disk full <@U0123>"
    message = Message(subject=f"[Openduty] #1 TRIGGERED: {incident_text}", body=incident_text, short=incident_text)
    channels.expect_request("/slack/mention", method="POST").respond_with_data("ok")
    notifier_for("slack").send(channels.url_for("/slack/mention"), message)
    sent = json.loads(channels.log[-1][0].get_data())
    # Slack parses mentions in `text` and mrkdwn; plain_text (the header) is shown as written.
    markup = [sent["text"]] + [b["text"]["text"] for b in sent["blocks"] if b.get("text", {}).get("type") == "mrkdwn"]
    assert len(markup) == 2 and all("<" not in t and "&lt;!channel&gt;" in t for t in markup)


def test_a_long_summary_is_cut_with_an_ellipsis_and_the_sms_keeps_its_link(pager):
    alice = make_pager("Alice", {"sms": ("+14155550101", 0), "email": ("alice@example.com", 0)})
    open_incident(make_service(make_policy([(5, [alice])])), summary="y" * 1000)
    pager.run()
    [sms] = [p for p in pager.pages() if p.kind == "sms"]
    assert "/ack/" in sms.text
    [mail] = pager.smtp.messages
    assert str(mail["Subject"]).endswith("…")
