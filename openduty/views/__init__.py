"""Blueprints, one per area, and the rendering helper they share."""

from flask import Flask, make_response, render_template, request
from jinja2_fragments.flask import render_block


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


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
