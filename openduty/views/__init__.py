"""Blueprints, one per area, and the rendering helper they share."""

from urllib.parse import urlsplit

from flask import Flask, make_response, render_template, request
from jinja2_fragments.flask import render_block


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def local_url(target: str | None, default: str) -> str:
    """`target` if it is a path on this site, else `default`: redirects never leave the site.

    Browsers read a backslash as a slash ("/\\evil.example" is "//evil.example"), and control
    characters are dropped, so any of those is refused along with "//host" and absolute URLs.
    """
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in target)
        and not urlsplit(target).netloc
    ):
        return target
    return default


def safe_next(default: str) -> str:
    """Where to go after an action: the request's `next` (form, then query string) if it is a
    path on this site, else `default`. The one redirect check of every view."""
    return local_url(request.form.get("next") or request.args.get("next"), default)


def render(template: str, block: str | None = None, status: int = 200, **context):
    """Render the full page, or only `block` of the same template when htmx asks for it."""
    if block and is_htmx():
        body = render_block(template, block, **context)
    else:
        body = render_template(template, **context)
    response = make_response(body, status)
    response.vary.add("HX-Request")
    return response


def register(app: Flask) -> None:
    from openduty.views import (
        ack,
        api,
        auth,
        calendar,
        events,
        health,
        home,
        incidents,
        policies,
        schedules,
        services,
        users,
    )

    for module in (auth, health, home, api, users, services, incidents, policies, schedules, events, calendar, ack):
        app.register_blueprint(module.bp)

    @app.context_processor
    def navigation():
        # The navigation links only to areas that exist.
        return {"nav_endpoints": app.view_functions}
