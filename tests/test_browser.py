"""End-to-end in Debian's Chromium: the flows a new user takes first."""

import pytest

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


@pytest.mark.usefixtures("channels_configured")
def test_profile_contact_method_and_rule_inline(page, live_server, app):
    """htmx: add a contact method and a rule on the profile, see both listed without a reload."""
    from playwright.sync_api import expect

    factories.make_user(email="alice@example.com", name="Alice")
    page.goto(live_server.url + "/login")
    page.fill("input[name=email]", "alice@example.com")
    page.fill("input[name=password]", factories.PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Welcome, Alice")
    page.click(".account a")
    page.wait_for_selector("h1:has-text('Your profile')")
    page.evaluate("window.notReloaded = true")

    form = page.locator("#contact-method-form")
    form.locator("select[name=kind]").select_option("sms")
    form.locator("input[name=address]").fill("0612345")
    form.locator("button[type=submit]").click()
    expect(page.locator("#contact-method-form .field-error")).to_contain_text("E.164")

    page.locator("#contact-method-form input[name=address]").fill("+1 415 555 0100")
    page.locator("#contact-method-form input[name=label]").fill("mobile")
    page.locator("#contact-method-form button[type=submit]").click()
    expect(page.locator("#contact-method-list")).to_contain_text("+14155550100")
    expect(page.locator("#contact-method-form input[name=address]")).to_have_value("")

    rule_form = page.locator("#rule-form")
    expect(rule_form.locator("select[name=contact_method_id]")).to_contain_text("SMS: +14155550100")
    rule_form.locator("input[name=delay_minutes]").fill("5")
    rule_form.locator("button[type=submit]").click()
    expect(page.locator("#rule-list")).to_contain_text("After 5 min")

    page.once("dialog", lambda dialog: dialog.accept())  # "Remove ... and the notification rules that use it?"
    page.locator("#contact-method-list button", has_text="Remove").click()
    expect(page.locator("#contact-method-list")).to_contain_text("No contact methods yet.")
    expect(page.locator("#rule-list")).to_contain_text("No high-urgency rules")

    page.locator("#token-form input[name=token-name]").fill("laptop")
    page.locator("#token-form button[type=submit]").click()
    expect(page.locator("#new-token")).to_contain_text("od_")
    expect(page.locator("#token-list")).to_contain_text("laptop")
    assert page.evaluate("window.notReloaded") is True
