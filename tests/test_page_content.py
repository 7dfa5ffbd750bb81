"""What a page says, on every channel, read from what the local servers received (issue 14,
"Pages worth reading"): number and summary, service, severity (and urgency), source, the event's
first details and links, how long the incident has been open, who else was paged, the incident's
URL and the acknowledge link."""

import re

from sqlalchemy import event
from sqlalchemy.orm import joinedload

from openduty.extensions import db
from openduty.messages import DETAIL_FIELDS, build_message, event_links, fit, highlights, open_for
from openduty.models import Incident, Notification
from openduty.notifiers.twilio import SMS_MAX_LENGTH
from tests.factories_escalation import make_pager, make_policy, make_service, open_incident
from tests.factories_events import make_integration

DETAILS = {f"field{n}": f"value {n}" for n in range(1, 8)} | {"field1": {"disk": "97%"}}
LINKS = [
    {"href": "https://grafana.example/d/db?from=now-1h&to=now", "text": "Grafana"},
    {"href": "javascript:alert(1)", "text": "Evil"},
    {"href": "https://runbook.example/disk full", "text": "Runbook"},
]


def _trigger(client, service) -> Incident:
    integration = make_integration(service)
    body = {
        "routing_key": integration.key,
        "event_action": "trigger",
        "dedup_key": "disk-db1",
        "payload": {"summary": "Disk full on db1", "source": "db1.example", "severity": "error",
                    "custom_details": DETAILS},
        "links": LINKS,
    }  # fmt: skip
    assert client.post("/v2/enqueue", json=body).status_code == 202
    return db.session.scalar(db.select(Incident))


def _alice_and_bob(pager):
    hooks = pager.httpserver
    alice = make_pager(
        "Alice",
        {
            kind: (address, 12)
            for kind, address in {
                "email": "alice@example.com",
                "slack": hooks.url_for("/slack/ok"),
                "webhook": hooks.url_for("/hook/ok"),
                "sms": "+14155550101",
                "voice": "+14155550102",
                "pushover": "u" * 30,
            }.items()
        },
    )
    bob = make_pager("Bob", {"email": ("bob@example.com", 0)})
    return alice, bob


def test_every_channel_carries_the_whole_page(client, pager, app):
    alice, bob = _alice_and_bob(pager)
    service = make_service(make_policy([(30, [alice, bob])]), name="Payments")
    incident = _trigger(client, service)
    pager.run()
    pager.clear()
    pager.advance(minutes=12)  # Alice's rules wait 12 minutes; Bob was paged at once
    pages = {p.kind: p for p in pager.pages() if p.kind != "email" or p.to == "alice@example.com"}
    assert set(pages) == {"email", "slack", "webhook", "sms", "voice", "pushover"}
    number, incident_url = incident.number, f"{app.config['BASE_URL'].rstrip('/')}/incidents/{incident.id}"

    mail = pages["email"].raw["message"]
    assert str(mail["Subject"]) == f"[Openduty] #{number} TRIGGERED: Disk full on db1"
    text = mail.get_body(("plain",)).get_content()
    for expected in (f"#{number} Disk full on db1", "Service:    Payments", "Severity:   error", "Urgency:    high",
                     "Source:     db1.example", "Open for:   12 min", "Also paged: Bob", 'field1: {"disk": "97%"}',
                     "field5: value 5", "Grafana: https://grafana.example/d/db?from=now-1h&to=now",
                     "Runbook: https://runbook.example/disk%20full", f"Incident:   {incident_url}",
                     "/ack/"):  # fmt: skip
        assert expected in text, (expected, text)
    assert "field6" not in text and "javascript" not in text
    html = mail.get_body(("html",)).get_content()
    assert re.search(r"<th[^>]*>field2</th><td>value 2</td>", html)
    assert '<a href="https://grafana.example/d/db?from=now-1h&amp;to=now">Grafana</a>' in html
    assert f'href="{incident_url}"' in html and "/ack/" in html and "Bob" in html

    slack = pages["slack"].raw
    assert slack["text"].endswith("Disk full on db1")
    kinds = [b["type"] for b in slack["blocks"]]
    assert kinds == ["header", "section", "section", "section", "context", "actions"]
    facts = [f["text"] for f in slack["blocks"][2]["fields"]]
    expected = {"*Service*\nPayments", "*Severity*\nerror", "*Urgency*\nhigh", "*Source*\ndb1.example"}
    assert expected | {"*Open for*\n12 min"} <= set(facts)
    details = [f["text"] for f in slack["blocks"][3]["fields"]]
    assert len(details) == DETAIL_FIELDS and details[1] == "*field2*\nvalue 2"
    context = " ".join(e["text"] for e in slack["blocks"][4]["elements"])
    assert "Also paged: Bob" in context
    assert "<https://grafana.example/d/db?from=now-1h&amp;to=now|Grafana>" in context
    ack, open_ = slack["blocks"][5]["elements"]
    assert (ack["text"]["text"], open_["text"]["text"]) == ("Acknowledge", "Open incident")
    assert "/ack/" in ack["url"] and open_["url"] == incident_url

    hook = pages["webhook"].raw
    request = next(r for r, _ in pager.httpserver.log if r.path == "/hook/ok")
    assert request.headers["X-Openduty-Webhook-Version"] == "2" and hook["version"] == "2"
    [sent] = hook["incidents"]
    assert {"event", "subject", "message", "acknowledge_url"} <= set(hook)  # version 1's fields stay
    assert {"id", "number", "summary", "service", "severity", "status", "url"} <= set(sent)
    assert sent["details"]["custom_details"] == DETAILS and sent["source"] == "db1.example"
    assert sent["urgency"] == "high"
    assert sent["paged"] == ["Bob"] and 720 <= sent["open_seconds"] < 780 and sent["open_for"] == "12 min"
    assert sent["incident_url"] == incident_url and sent["acknowledge_url"] == sent["url"] == hook["acknowledge_url"]
    assert [link["text"] for link in sent["links"]] == ["Grafana", "Runbook"]
    assert len(sent["highlights"]) == DETAIL_FIELDS and sent["service_id"] == service.id

    sms = pages["sms"].text
    for expected in (f"#{number} Disk full on db1", "Payments, error, high urgency, from db1.example, open 12 min",
                     "Also paged: Bob", incident_url, "field2: value 2", f"Reply 'ack {number}'"):  # fmt: skip
        assert expected in sms, (expected, sms)
    assert re.search(r" http://\S+/ack/\S+$", sms)

    voice = pages["voice"].text
    spoken = f"Incident {number}, service Payments: Disk full on db1. Severity error, high urgency. Open for 12 min"
    assert spoken in voice
    assert "Press 1 to acknowledge" in voice

    push = pages["pushover"].raw
    assert "Payments, error, high urgency, from db1.example, open 12 min" in push["message"][0]
    assert incident_url in push["message"][0] and "/ack/" in push["url"][0]


def test_a_folded_sms_names_every_incident_and_keeps_the_ack_link(pager):
    alice = make_pager("Alice", {"sms": ("+14155550101", 0)})
    service = make_service(make_policy([(30, [alice])]), name="Shop")
    open_incident(service, summary="First")
    pager.run()
    later = [open_incident(service, summary=f"Incident {n} " + "x" * 1000) for n in range(12)]
    pager.advance(seconds=61)
    sms = pager.pages()[-1].text
    assert len(sms) <= SMS_MAX_LENGTH
    numbers = " ".join(str(i.number) for i in later)
    for n, incident in enumerate(later):
        assert f"#{incident.number} Incident {n} " in sms, sms
    assert f"Reply 'ack {numbers}' to acknowledge, 'res {numbers}' to resolve." in sms
    assert re.search(r" http://\S+/ack/[\w.-]+$", sms)


def test_building_a_message_queries_once_however_many_incidents_fold(app, pager):
    alice = make_pager("Alice", {"sms": ("+14155550101", 60)})
    service = make_service(make_policy([(30, [alice])]))
    for n in range(5):
        open_incident(service, summary=f"Down {n}")
    pager.run()
    rows = db.session.scalars(
        db.select(Notification)
        .options(joinedload(Notification.user), joinedload(Notification.incident).joinedload(Incident.service))
        .order_by(Notification.id)
    ).all()
    statements = []

    def count(*args):
        statements.append(args[2])

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        build_message(rows[:1])
        one = len(statements)
        build_message(rows)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert one == 1 and len(statements) == 2, statements  # who else was paged: one query each


def test_details_links_and_durations_as_pages_show_them():
    assert highlights({"custom_details": "just text"}) == [["details", "just text"]]
    alert = {"annotations": {"summary": "s", "runbook": "r"}, "labels": {"alertname": "Disk", "job": "node"}}
    assert highlights(alert) == [["runbook", "r"], ["alertname", "Disk"], ["job", "node"]]
    assert highlights({"custom_details": {"k\nx": "a" * 500}})[0][1].endswith("…")
    links = event_links({"links": [{"href": 'https://a.example/<"x y|z">'}], "client_url": "https://c.example"})
    assert links == [
        {"href": "https://a.example/%3C%22x%20y%7Cz%22%3E", "text": "https://a.example/%3C%22x%20y%7Cz%22%3E"},
        {"href": "https://c.example", "text": "Monitoring client"},
    ]
    assert [open_for(s) for s in (30, 720, 3 * 3600 + 300, 2 * 86400 + 4 * 3600 + 60)] == [
        "under 1 min", "12 min", "3 h 5 min", "2 d 4 h",
    ]  # fmt: skip
    assert open_for(3660, spoken=True) == "1 hour 1 minute"
    cut = fit(["a" * 10, "b" * 500, "c" * 500], 200, "; ")
    assert len(cut) <= 200 and cut.startswith("a" * 10 + "; bbb") and "; ccc" in cut
