"""Helpers every blueprint shares: rendering (page or htmx fragment), safe redirects, 404s.

The blueprints themselves are registered by openduty.views.blueprints.
"""

from urllib.parse import urlsplit

from flask import make_response, redirect, render_template, request
from flask_login import current_user
from jinja2_fragments.flask import render_block

from openduty.extensions import db
from openduty.incident_lists import open_count


def is_htmx() -> bool:
    """Whether htmx made the request (it then wants a fragment, not the whole page)."""
    return request.headers.get("HX-Request") == "true"


def _local_url(target: str | None, default: str) -> str:
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
    return _local_url(request.form.get("next") or request.args.get("next"), default)


def next_page_query(cursor: int | None) -> dict[str, str] | None:
    """The query of a list's next page by keyset: this request's filters, `before` the last row shown."""
    if cursor is None:
        return None
    args = {name: value for name, value in request.args.items() if name != "before" and value}
    return {**args, "before": str(cursor)}


def get_or_404(model, object_id: int, label: str | None = None, **options):
    """The row, or a 404 saying "No <label> with id N." (JSON on API paths: openduty.errors).

    `options` go to `Session.get` (e.g. `options=[selectinload(...)]` for what the page shows)."""
    description = f"No {label or model.__name__.lower()} with id {object_id}."
    return db.get_or_404(model, object_id, description=description, **options)


def _is_page(template: str) -> bool:
    """A full page (extends base.html); partials are named `_*.html`."""
    return not template.rsplit("/", 1)[-1].startswith("_")


def render(template: str, block: str | None = None, status: int = 200, **context):
    """Render the full page, or only `block` of the same template when htmx asks for it.

    A full page for a logged-in user also gets what the navigation shows (the open-incident
    count), so that nothing queries while the template renders.
    """
    if block and is_htmx():
        body = render_block(template, block, **context)
    else:
        if _is_page(template) and current_user.is_authenticated:
            context.setdefault("open_incident_count", open_count())
        body = render_template(template, **context)
    response = make_response(body, status)
    response.vary.add("HX-Request")
    return response


def confirm_page(question: str, button: str, cancel: str, *details: str, warning: str | None = None):
    """The GET of a destructive action (templates/confirm.html): what will happen and a POST form
    to the same URL, for browsers without JavaScript. With JavaScript the button's `hx-confirm`
    asks instead (templates/_confirm.html) and posts directly."""
    context = {"question": question, "button": button, "cancel": cancel, "details": details, "warning": warning}
    return render("confirm.html", action=request.path, **context)


def done(location: str, code: int = 302):
    """After an action: a redirect to `location`; for htmx an `HX-Redirect` to it (htmx would
    follow a 302 itself and swap the next page into the button that asked)."""
    if is_htmx():
        response = make_response("", 204)
        response.headers["HX-Redirect"] = location
        return response
    return redirect(location, code=code)


def for_global_rules(view):
    """An event rules view (pages or API) served for the global rules: `service_id` None, and the
    rule's id from the path's `global_rule_id` (the service paths name it `event_rule_id`)."""

    def serve(**values):
        if "global_rule_id" in values:
            values["event_rule_id"] = values.pop("global_rule_id")
        return view(None, **values)

    return serve
