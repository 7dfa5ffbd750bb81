"""Fixtures for the escalation tests: real local servers for every channel, and a time-travel
harness (`pager`) that moves the clock, runs due jobs with a real worker and lists the pages."""

import asyncio
import email
import email.policy
import json
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import pytest
from werkzeug import Response

from openduty.extensions import db
from tests.processes import free_port

TWILIO_SID = "AC0123456789abcdef0123456789abcdef"
TWILIO_TOKEN = "twilio-auth-token"
PUSHOVER_TOKEN = "a" * 30


class SmtpSink:
    """A real SMTP server (aiosmtpd) that keeps what it receives."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse: set[str] = set()
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server(app):
    from aiosmtpd.controller import Controller

    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_SECURITY="none", SMTP_FROM="openduty@example.com")
    sink.port = port
    yield sink
    controller.stop()
    asyncio.set_event_loop(None)


@pytest.fixture
def channels(app, httpserver):
    """pytest-httpserver answering as Twilio, Pushover, Slack and webhooks; the app points at it."""
    httpserver.expect_request(
        f"/twilio/2010-04-01/Accounts/{TWILIO_SID}/Messages.json", method="POST"
    ).respond_with_json({"sid": "SM1"}, status=201)
    httpserver.expect_request(f"/twilio/2010-04-01/Accounts/{TWILIO_SID}/Calls.json", method="POST").respond_with_json(
        {"sid": "CA1"}, status=201
    )
    httpserver.expect_request("/pushover/1/messages.json", method="POST").respond_with_json(
        {"status": 1, "request": "r1"}
    )
    httpserver.expect_request("/slack/ok", method="POST").respond_with_data("ok")
    httpserver.expect_request("/hook/ok", method="POST").respond_with_data("", status=204)
    httpserver.expect_request("/hook/down", method="POST").respond_with_data("down", status=503)
    httpserver.expect_request("/hook/gone", method="POST").respond_with_data("gone", status=410)
    app.config.update(
        TWILIO_BASE_URL=httpserver.url_for("/twilio"),
        TWILIO_ACCOUNT_SID=TWILIO_SID,
        TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        TWILIO_FROM_NUMBER="+14155550000",
        PUSHOVER_BASE_URL=httpserver.url_for("/pushover"),
        PUSHOVER_TOKEN=PUSHOVER_TOKEN,
        WEBHOOK_SECRET="webhook-secret",
    )
    return httpserver


@dataclass
class Page:
    """One page received by a local server: channel, recipient, text, incident numbers."""

    kind: str
    to: str
    text: str
    purpose: str = "page"
    raw: dict = field(default_factory=dict)


def _http_pages(httpserver) -> list[Page]:
    pages = []
    for request, _response in httpserver.log:
        path = request.path
        if path.endswith("/Messages.json"):
            form = parse_qs(request.get_data(as_text=True))
            body = form["Body"][0]
            pages.append(Page("sms", form["To"][0], body, "resolve" if body.startswith("Resolved") else "page", form))
        elif path.endswith("/Calls.json"):
            form = parse_qs(request.get_data(as_text=True))
            twiml = form["Twiml"][0]
            pages.append(Page("voice", form["To"][0], twiml, "page" if "<Gather" in twiml else "resolve", form))
        elif path.startswith("/pushover/"):
            form = parse_qs(request.get_data(as_text=True))
            pages.append(Page("pushover", form["user"][0], form["title"][0], "page", form))
        elif path.startswith("/slack/"):
            body = json.loads(request.get_data())
            pages.append(Page("slack", path, body["text"], "resolve" if "RESOLVED" in body["text"] else "page", body))
        elif path.startswith("/hook/"):
            body = json.loads(request.get_data())
            pages.append(Page("webhook", path, body["subject"], body["event"], body))
    return pages


class Pager:
    """The time-travel harness: `advance(minutes=5)` moves the clock and runs what is due."""

    def __init__(self, clock, run_jobs, smtp, httpserver):
        self.clock, self.run_jobs, self.smtp, self.httpserver = clock, run_jobs, smtp, httpserver

    def run(self) -> int:
        db.session.commit()
        ran = self.run_jobs()
        db.session.rollback()
        db.session.expire_all()
        return ran

    def advance(self, **delta) -> int:
        self.clock.advance(**delta)
        return self.run()

    def walk(self, minutes: float, step_seconds: int = 10) -> None:
        """Move the clock `minutes` forward in small steps, running what is due at each step."""
        for _ in range(int(minutes * 60 // step_seconds)):
            self.advance(seconds=step_seconds)

    def pages(self, purpose: str | None = "page") -> list[Page]:
        pages = []
        for m in list(self.smtp.messages):
            kind = "resolve" if "RESOLVED" in m["Subject"] else "page"
            pages.append(Page("email", ",".join(m.get_all("To")), str(m["Subject"]), kind, {"message": m}))
        pages += _http_pages(self.httpserver)
        return [p for p in pages if purpose is None or p.purpose == purpose]

    def who(self, purpose: str | None = "page") -> list[tuple[str, str]]:
        """(channel, recipient) for each page, in arrival order per channel."""
        return [(p.kind, p.to) for p in self.pages(purpose)]

    def clear(self) -> None:
        self.smtp.messages.clear()
        self.httpserver.clear_log()


@pytest.fixture
def pager(app, clock, run_jobs, smtp_server, channels):
    return Pager(clock, run_jobs, smtp_server, channels)


@pytest.fixture
def slow_response():
    """A handler for httpserver that answers after `seconds`."""

    def make(seconds: float, status: int = 200):
        import time

        def handler(request):
            time.sleep(seconds)
            return Response("", status=status)

        return handler

    return make
