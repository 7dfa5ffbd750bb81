"""Fixtures for the events, incidents and services tests."""

import asyncio
import shutil
import smtplib
import ssl
from email.message import EmailMessage

import pytest

from openduty import inbound_smtp
from openduty.extensions import db
from tests import factories_events
from tests.conftest import _ci_requires
from tests.processes import ServedApp, free_port, self_signed_certificate


@pytest.fixture
def integration(app):
    """An events_v2 integration on a fresh service."""
    return factories_events.make_integration(factories_events.make_service(name="Web"))


@pytest.fixture
def fresh():
    """Forget what this test's session has loaded, to see what other threads committed."""

    def expire():
        db.session.rollback()
        db.session.expire_all()

    return expire


@pytest.fixture
def https_live_server(app, tmp_path):
    """The app over HTTPS with a throwaway self-signed certificate (for clients that insist)."""
    if not shutil.which("openssl"):
        _ci_requires("openssl")
    cert, key = self_signed_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    served = ServedApp(app, ssl_context=context)
    served.ca_file = str(cert)
    yield served
    served.close()


class InboundMail:
    """The inbound SMTP listener (aiosmtpd) for an app on a free port, and smtplib to send to it."""

    def __init__(self, app):
        self.port = free_port()
        self.listener = inbound_smtp.controller(app, "127.0.0.1", self.port)
        self.listener.start()

    @staticmethod
    def message(to, subject: str, body: str = "", html: str | None = None, sender: str = "nagios@example.com"):
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = (
            sender,
            ", ".join([to] if isinstance(to, str) else to),
            subject,
        )
        message["Message-ID"] = "<m1@example.com>"
        if body or html is None:
            message.set_content(body)
        if html is not None:
            if body:
                message.add_alternative(html, subtype="html")
            else:
                message.set_content(html, subtype="html")
        return message

    def send(self, to, subject: str, body: str = "", html: str | None = None, **kwargs) -> dict:
        """Send one message (to one address or a list); returns smtplib's refused recipients."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as smtp:
            return smtp.send_message(self.message(to, subject, body, html, **kwargs))

    def stop(self) -> None:
        self.listener.stop()
        asyncio.set_event_loop(None)


@pytest.fixture
def inbound_mail(app):
    """The inbound SMTP listener for the test's app: `.send(to, subject, body, html=...)`."""
    mail = InboundMail(app)
    yield mail
    mail.stop()
