"""Inbound email: real mail sent with smtplib to the SMTP listener (aiosmtpd) becomes incidents."""

import smtplib
import socket
import time

import pytest
from sqlalchemy import select

from openduty import create_app
from openduty.extensions import db
from openduty.models import Incident, LogEntry
from tests.conftest import _test_config
from tests.factories_events import make_email_integration, make_integration, make_service
from tests.plugins.events import InboundMail
from tests.processes import free_port, wait_for
from tests.test_events_db_faults import _lock_holder


def _address(integration) -> str:
    return f"{integration.key}@localhost"


def _incidents() -> list[Incident]:
    db.session.rollback()
    db.session.expire_all()
    return list(db.session.scalars(select(Incident).order_by(Incident.id)))


def test_a_message_opens_an_incident_from_its_subject_and_body(inbound_mail):
    integration = make_email_integration()
    refused = inbound_mail.send(_address(integration), "Disk full on web-1", "Only 1% left on /var.\n")
    assert refused == {}
    [incident] = _incidents()
    assert (incident.service_id, incident.status, incident.summary) == (
        integration.service_id,
        "triggered",
        "Disk full on web-1",
    )
    assert incident.dedup_key == "Disk full on web-1"
    assert incident.source == "nagios@example.com"
    details = incident.details["custom_details"]
    assert details["body"] == "Only 1% left on /var."
    assert details["from"] == "nagios@example.com" and details["to"] == _address(integration)
    assert details["message_id"] == "<m1@example.com>"
    entry = db.session.scalar(select(LogEntry).where(LogEntry.incident_id == incident.id))
    assert entry.message == "Triggered via email: Disk full on web-1"


def test_the_same_subject_folds_and_a_resolve_subject_resolves(inbound_mail):
    integration = make_email_integration()
    to = _address(integration).upper()  # addresses are read in any case
    inbound_mail.send(to, "Disk full on web-1")
    inbound_mail.send(to, "Disk   full on web-1 ")  # the same subject, spaced differently
    [incident] = _incidents()
    assert (incident.alert_count, incident.status) == (2, "triggered")
    inbound_mail.send(to, "RESOLVED: Disk full on web-1")
    [incident] = _incidents()
    assert incident.status == "resolved"
    inbound_mail.send(to, "Disk full on web-1")
    inbound_mail.send(to, "[OK] Disk full on web-1")
    assert [i.status for i in _incidents()] == ["resolved", "resolved"]


def test_a_custom_resolve_pattern_and_none(inbound_mail):
    custom = make_email_integration(resolve_regex=r"^Cleared\b")
    never = make_email_integration(resolve_regex="")
    inbound_mail.send(_address(custom), "Queue backlog")
    inbound_mail.send(_address(custom), "Cleared Queue backlog")
    inbound_mail.send(_address(never), "RESOLVED: Queue backlog")
    [cleared, opened] = _incidents()
    assert (cleared.status, cleared.dedup_key) == ("resolved", "Queue backlog")
    assert (opened.status, opened.summary) == ("triggered", "RESOLVED: Queue backlog")


def test_dedup_by_a_capture_on_the_subject_or_the_body(inbound_mail):
    by_subject = make_email_integration(dedup_source="subject_regex", dedup_regex=r"host (\S+)")
    by_body = make_email_integration(dedup_source="body_regex", dedup_regex=r"Ticket #(\d+)")
    inbound_mail.send(_address(by_subject), "PROBLEM: host web-1 is down")
    inbound_mail.send(_address(by_subject), "PROBLEM: host web-1 still down")
    inbound_mail.send(_address(by_body), "New ticket", "Customer wrote. Ticket #4711 opened.")
    inbound_mail.send(_address(by_body), "Ticket updated", "Ticket #4711: another reply")
    inbound_mail.send(_address(by_body), "Unrelated", "No number here")
    subject_incident, body_incident, fallback = _incidents()
    assert (subject_incident.dedup_key, subject_incident.alert_count) == ("web-1", 2)
    assert (body_incident.dedup_key, body_incident.alert_count) == ("4711", 2)
    assert fallback.dedup_key == "Unrelated"
    assert "found nothing" in fallback.details["custom_details"]["dedup_note"]
    inbound_mail.send(_address(by_subject), "RECOVERY: host web-1 is up")
    assert _incidents()[0].status == "resolved"


def test_an_html_body_is_converted_to_text(inbound_mail):
    integration = make_email_integration()
    html = (
        "<html><head><style>p {color: red}</style><script>alert('x')</script></head>"
        "<body><h1>Backup failed</h1><p>Job <b>nightly</b> on db-2 &amp; db-3</p></body></html>"
    )
    inbound_mail.send(_address(integration), "Backup failed", html=html)
    [incident] = _incidents()
    body = incident.details["custom_details"]["body"]
    assert "Backup failed" in body and "Job nightly on db-2 & db-3" in body
    assert "<" not in body and "alert(" not in body and "color" not in body


def test_a_plain_part_is_preferred_and_a_long_body_is_cut(inbound_mail, app):
    integration = make_email_integration()
    inbound_mail.send(_address(integration), "Both", "the plain text", html="<p>the html</p>")
    inbound_mail.send(_address(integration), "Long", "x" * 70_000)
    both, long = _incidents()
    assert both.details["custom_details"]["body"] == "the plain text"
    body = long.details["custom_details"]["body"]
    assert body.startswith("x" * 1000) and body.endswith("more characters not kept]") and len(body) < 70_000


def test_unknown_addresses_are_refused_at_rcpt(inbound_mail):
    other_kind = make_integration(kind="events_v2")
    for address in ["0" * 32 + "@localhost", other_kind.key + "@localhost", "someone@example.com", "x@localhost"]:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            inbound_mail.send(address, "Disk full")
        code, text = refused.value.recipients[address]
        assert code == 550 and b"No email integration has this address" in text
    assert _incidents() == []


def test_a_disabled_service_is_refused_with_a_clear_reason(inbound_mail):
    integration = make_email_integration(service=make_service(disabled=True))
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        inbound_mail.send(_address(integration), "Disk full")
    code, text = refused.value.recipients[_address(integration)]
    assert code == 550 and b"disabled" in text
    assert _incidents() == []


def test_each_known_recipient_of_one_message_gets_the_event(inbound_mail):
    web, db_ = make_email_integration(), make_email_integration()
    unknown = "1" * 32 + "@localhost"
    refused = inbound_mail.send([_address(web), unknown, _address(db_)], "Power failure in rack 4")
    assert list(refused) == [unknown]
    assert sorted(i.service_id for i in _incidents()) == sorted([web.service_id, db_.service_id])


def test_an_oversized_message_is_refused_with_552(app, inbound_mail):
    app.config["INBOUND_EMAIL_MAX_BYTES"] = 4000
    small = InboundMail(app)  # the limit is read when a listener starts
    try:
        integration = make_email_integration()
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:  # SIZE= said so at MAIL FROM
            small.send(_address(integration), "Huge", ("x" * 70 + "\n") * 150)
        assert refused.value.smtp_code == 552
        with smtplib.SMTP("127.0.0.1", small.port, timeout=30) as smtp:  # without SIZE=: at the end of DATA
            smtp.ehlo()
            assert smtp.mail("nagios@example.com")[0] == 250
            assert smtp.rcpt(_address(integration))[0] == 250
            code, _ = smtp.data(small.message(_address(integration), "Huge", ("x" * 70 + "\n") * 150).as_string())
            assert code == 552
    finally:
        small.stop()
    assert _incidents() == []


def test_a_locked_database_answers_451_and_stores_nothing_until_the_retry(app, inbound_mail):
    app.config["EVENTS_COMMIT_TIMEOUT_SECONDS"] = 0.5
    integration = make_email_integration()
    holder = _lock_holder(app)
    try:
        with pytest.raises(smtplib.SMTPDataError) as failed:
            inbound_mail.send(_address(integration), "Disk full")
        assert failed.value.smtp_code == 451 and b"not stored" in failed.value.smtp_error
    finally:
        holder.rollback()
        holder.close()
    time.sleep(0.5)  # whatever the batcher still held was rolled back, never committed
    assert _incidents() == []
    for attempt in range(20):  # the sender retries, as a mail server does after a 451
        try:
            inbound_mail.send(_address(integration), "Disk full")
            break
        except smtplib.SMTPDataError as again:  # a loaded machine may still be freeing the lock
            assert again.smtp_code == 451 and attempt < 19
            time.sleep(0.5)
    [incident] = _incidents()
    assert incident.alert_count == 1


def test_a_database_that_is_down_answers_451_at_rcpt(_redis_url):
    down = create_app(_test_config("sqlite:////nonexistent-openduty-dir/openduty.db", _redis_url))
    mail = InboundMail(down)
    try:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            mail.send("a" * 32 + "@localhost", "Disk full")
        code, text = refused.value.recipients["a" * 32 + "@localhost"]
        assert code == 451 and b"try again later" in text
    finally:
        mail.stop()


def test_a_key_over_its_rate_limit_answers_451(app, inbound_mail):
    app.config.update(EVENTS_RATE_LIMIT=1)
    integration = make_email_integration()
    inbound_mail.send(_address(integration), "First")
    with pytest.raises(smtplib.SMTPDataError) as failed:
        inbound_mail.send(_address(integration), "Second")
    assert failed.value.smtp_code == 451 and b"Too many events" in failed.value.smtp_error
    assert [i.summary for i in _incidents()] == ["First"]


def _answers_smtp(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            return connection.recv(100).startswith(b"220")
    except OSError:
        return False


@pytest.mark.parametrize("command", ["run-all", "smtp"])
def test_run_all_and_the_smtp_command_receive_mail(processes, app, command):
    integration = make_email_integration()
    smtp_port = free_port()
    env = {"INBOUND_SMTP_PORT": str(smtp_port), "INBOUND_EMAIL_DOMAIN": "alerts.example.com"}
    if command == "run-all":
        processes.env.update(env)
        process = processes.run_all(free_port())
    else:
        process = processes.start("smtp", "openduty", "smtp", env=env)
    wait_for(lambda: _answers_smtp(smtp_port) or process.poll() is not None, "the SMTP listener", timeout=30)
    assert process.poll() is None, processes.log(command)
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as smtp:
        smtp.send_message(InboundMail.message(f"{integration.key}@Alerts.Example.com", "Disk full"))
    [incident] = _incidents()
    assert incident.summary == "Disk full"
