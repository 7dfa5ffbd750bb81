"""Login throttling (issue 8, findings 6 and 9): per (account, client) pair with growing waits,
bounded Redis keys, forwarded addresses only from trusted proxies, the same time for every failure."""

import time

import pytest

from openduty.extensions import redis
from openduty.views import auth as auth_views
from tests import factories
from tests.conftest import AuthActions


@pytest.fixture
def alice(app):
    return factories.make_user(email="alice@example.com", name="Alice")


def _from(app, address: str, **environ) -> AuthActions:
    """A browser at `address`."""
    client = app.test_client()
    client.environ_base.update({"REMOTE_ADDR": address, **environ})
    return AuthActions(client)


def test_failures_from_one_client_do_not_lock_the_account_for_others(app, alice):
    attacker, owner = _from(app, "203.0.113.9"), _from(app, "198.51.100.7")
    for _ in range(20):
        assert attacker.login("alice@example.com", "guess").status_code in (401, 429)
    assert attacker.login("alice@example.com").status_code == 429  # the guesser waits, even with the password
    assert owner.login("alice@example.com").status_code == 302  # the owner elsewhere logs in


def test_failures_for_random_emails_do_not_lock_the_address(app, alice):
    office = _from(app, "192.0.2.44")
    for n in range(30):
        assert office.login(f"nobody{n}@example.com", "x").status_code == 401
    assert office.login("alice@example.com").status_code == 302  # a colleague behind the same address


def test_waits_grow_after_the_free_failures(app, alice):
    app.config.update(LOGIN_MAX_FAILURES=1, LOGIN_DELAY_SECONDS=1, LOGIN_MAX_DELAY_SECONDS=60)
    browser = _from(app, "192.0.2.1")
    assert browser.login("alice@example.com", "wrong").status_code == 401  # free
    assert browser.login("alice@example.com", "wrong").status_code == 401  # now waits 1 s
    locked = browser.login("alice@example.com")
    assert locked.status_code == 429 and locked.headers["Retry-After"] == "1"
    assert "Too many failed logins" in locked.get_data(as_text=True)
    time.sleep(1.1)
    assert browser.login("alice@example.com", "wrong").status_code == 401  # now waits 2 s
    assert browser.login("alice@example.com").headers["Retry-After"] == "2"
    time.sleep(2.1)
    assert browser.login("alice@example.com").status_code == 302


def test_redis_keys_are_bounded_and_long_input_is_refused_first(app, alice):
    conn = redis.get()
    browser = _from(app, "192.0.2.2")
    before = conn.dbsize()
    huge = "a" * 400_000 + "@example.com"
    response = browser.login(huge, "x")
    assert response.status_code == 400 and "at most 254" in response.get_data(as_text=True)
    assert browser.login("alice@example.com", "p" * 201).status_code == 400
    assert conn.dbsize() == before  # nothing stored for refused input
    browser.login("x" * 240 + "@example.com", "wrong")
    keys = [k for k in conn.keys("openduty:login*")]
    assert keys and all(len(k) <= 100 for k in keys)


@pytest.mark.parametrize(("hops", "separate"), [(0, False), (1, True)])
def test_forwarded_addresses_count_only_from_trusted_proxies(app_with, alice, hops, separate):
    """Behind one proxy every client has the proxy's address; X-Forwarded-For tells them apart only
    when TRUSTED_PROXIES says a proxy is there (else any client could pick its own address)."""
    proxied = app_with(TRUSTED_PROXIES=hops, LOGIN_MAX_FAILURES=2)  # each request pushes its own app context
    guesser = _from(proxied, "10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")
    owner = _from(proxied, "10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7")
    for _ in range(4):
        guesser.login("alice@example.com", "guess")
    assert (owner.login("alice@example.com").status_code == 302) is separate


def test_failed_logins_take_the_same_time_whatever_the_account(app, alice, monkeypatch):
    """Unknown, deactivated, password-less and wrong-password failures all verify exactly one hash
    (the slow part of a login), so their timing tells nothing. Counted, not timed: a timing test
    only measures how loaded the machine is."""
    app.config["LOGIN_MAX_FAILURES"] = 1000
    factories.make_user(email="gone@example.com", active=False)
    factories.make_user(email="paged@example.com", password=None)
    browser = _from(app, "192.0.2.3")
    verified: list[str] = []
    real = auth_views.check_password_hash

    def counting(pwhash: str, password: str) -> bool:
        verified.append(pwhash.split("$", 1)[0])
        return real(pwhash, password)

    monkeypatch.setattr(auth_views, "check_password_hash", counting)
    for email in ("alice@example.com", "nobody@example.com", "gone@example.com", "paged@example.com"):
        del verified[:]
        assert browser.login(email, "wrong password").status_code == 401
        assert len(verified) == 1, email
        assert verified[0] == auth_views._DUMMY_HASH.split("$", 1)[0]  # the same kind of hash, same cost
