"""Fixtures for the events, incidents and services tests."""

import pytest

from openduty.extensions import db
from tests import factories_events


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
