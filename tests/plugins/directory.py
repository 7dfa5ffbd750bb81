"""A real OpenLDAP directory (tests/ldap_server.py) for the whole session, and an app pointed at it."""

import shutil

import pytest

from tests import ldap_server
from tests.conftest import _ci_requires


@pytest.fixture(scope="session")
def slapd():
    if ldap_server.slapd_binary() is None:
        _ci_requires("Debian's slapd")
    if shutil.which("openssl") is None:
        _ci_requires("openssl")
    server = ldap_server.Slapd()
    server.start()
    yield server
    server.close()


@pytest.fixture
def ldap_on(app, slapd):
    """The app with directory logins on, searching as the service account; the server is running."""
    if slapd.process is None:
        slapd.start()
    app.config.update(
        LDAP_URL=slapd.url,
        LDAP_BIND_DN=ldap_server.SERVICE_DN,
        LDAP_BIND_PASSWORD=ldap_server.SERVICE_PASSWORD,
        LDAP_USER_BASE=ldap_server.PEOPLE,
        LDAP_ADMIN_GROUP=ldap_server.ADMINS,
        LDAP_TIMEOUT_SECONDS=2,
    )
    yield slapd
    if slapd.process is None:
        slapd.start()
