"""Fixtures for the schedules tests."""

import pytest

from tests.factories import make_user


@pytest.fixture
def team(app):
    """Four users for rotations: alice, bob, carol, dave."""
    return [make_user(name=name.title(), email=f"{name}@example.com") for name in ("alice", "bob", "carol", "dave")]
