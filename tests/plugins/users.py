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
