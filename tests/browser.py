"""What the browser tests share: logging in through the real login form."""

from tests.factories import PASSWORD


def log_in(page, base_url: str, email: str, password: str = PASSWORD, *, landed: str = "text=Log out") -> None:
    """Log in at `base_url`/login as `email` and wait for `landed` to be in the page (every page behind
    the login has "Log out", shown or in the phone's folded menu), then for the page's load event,
    so that htmx (deferred) has bound its forms."""
    page.goto(base_url + "/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_selector(landed, state="attached")
    page.wait_for_load_state("load")
