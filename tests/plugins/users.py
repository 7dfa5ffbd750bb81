"""Fixtures for the users tests: a non-admin member, and a form poster that sends the CSRF token."""

import pytest

from tests import factories


@pytest.fixture
def member(app):
    """A non-admin user."""
    return factories.make_user(email="bob@example.com", name="Bob Member", time_zone="Europe/Budapest")


class FormPoster:
    """Posts forms the way a browser does (with the page's CSRF token), with or without htmx."""

    def __init__(self, client, auth):
        self._client = client
        self._auth = auth

    def __call__(self, path: str, data: dict | None = None, *, htmx: bool = False):
        headers = {"HX-Request": "true"} if htmx else {}
        form = {"csrf_token": self._auth.csrf_token(), **(data or {})}
        return self._client.post(path, data=form, headers=headers)


@pytest.fixture
def post_form(client, auth):
    return FormPoster(client, auth)


@pytest.fixture
def htmx_get(client):
    def get(path: str):
        return client.get(path, headers={"HX-Request": "true"})

    return get


@pytest.fixture
def channels_configured(app):
    """Every channel's settings (dummy credentials, a closed loopback port as the APIs' base URL), so
    that SMS, voice, Pushover and XMPP methods can be added; nothing here reaches a real service."""
    app.config.update(
        TWILIO_ACCOUNT_SID="AC" + "0" * 32,
        TWILIO_AUTH_TOKEN="test-token",
        TWILIO_FROM_NUMBER="+15005550006",
        TWILIO_BASE_URL="http://127.0.0.1:9",
        PUSHOVER_TOKEN="a" * 30,
        PUSHOVER_BASE_URL="http://127.0.0.1:9",
        XMPP_JID="openduty@localhost",
        XMPP_PASSWORD="test-password",
    )
