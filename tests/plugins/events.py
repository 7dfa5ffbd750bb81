"""Fixtures for the events, incidents and services tests."""

import shutil
import ssl

import pytest

from openduty.extensions import db
from tests import factories_events
from tests.conftest import _ci_requires
from tests.processes import ServedApp, self_signed_certificate


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
