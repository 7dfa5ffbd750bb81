"""End-to-end in Debian's Chromium: the flows a new user takes first."""

from tests import factories


def test_log_in_and_out(page, live_server, app):
    factories.make_user(email="alice@example.com", name="Alice")
    page.goto(live_server.url + "/")
    page.fill("input[name=email]", "alice@example.com")
    page.fill("input[name=password]", factories.PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Welcome, Alice")
    page.click("text=Log out")
    page.wait_for_selector("text=You are logged out.")
