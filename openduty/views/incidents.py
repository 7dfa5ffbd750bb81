"""The incident console: the live list (tabs, filters, bulk actions) and the incident page.

Every action is a plain POST + redirect; htmx only refreshes the list and the timeline in place.
"""

from urllib.parse import urlencode

from flask import Blueprint, abort, current_app, flash, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from openduty import change_events, urgency, users, validation
from openduty import incident_lists as lists
from openduty import incidents as domain
from openduty.extensions import db
from openduty.models import Incident, Service, Team
from openduty.views import get_or_404, is_htmx, render, safe_next

bp = Blueprint("incidents", __name__, url_prefix="/incidents")

TABS = [
    ("open", "Open"),
    ("triggered", "Triggered"),
    ("acknowledged", "Acknowledged"),
    ("resolved", "Resolved"),
    ("all", "All"),
]


# The console list polls every INCIDENTS_POLL_SECONDS (config.py); the navigation badge, which
# every page carries, polls this many times less often.
COUNT_POLL_FACTOR = 3


def poll_ms() -> int:
    """The console's refresh interval in milliseconds (never below 100 ms)."""
    seconds = float(current_app.config["INCIDENTS_POLL_SECONDS"])
    return max(100, int(seconds * 1000))


@bp.app_context_processor
def count_poll_interval():
    # How often the navigation's badge polls (no query: views.render passes the count itself).
    return {"incidents_count_poll_ms": lambda: poll_ms() * COUNT_POLL_FACTOR}


@bp.app_template_filter("shown_count")
def shown_count(n: int) -> str:
    """A capped count as people read it: "37", "1,000+"."""
    return lists.shown_count(n)


def _default_team() -> str:
    """People in a team see their teams' incidents unless they choose otherwise."""
    return "mine" if current_user.team_ids() else "all"


def _filters():
    try:
        filters = lists.parse_filters(request.args, default_team=_default_team())
    except lists.BadCursor as exc:
        abort(400, f"Bad link: {str(exc).partition(': ')[2]}")
    except validation.FieldError as exc:
        abort(400, f"Bad filter: {exc}")
    if request.args.get("mine") == "1":
        filters.assigned_to_id = current_user.id
    return lists.for_viewer(filters, current_user)


def _query_string(filters, **override) -> str:
    params = {
        "status": filters.status,
        "service_id": filters.service_id or "",
        "q": filters.q,
        "mine": "1" if filters.assigned_to_id else "",
        "urgency": filters.urgency or "",
        "team_id": filters.team if filters.team != _default_team() else "",
        "page": filters.page if filters.page > 1 else "",
        "cursor": filters.cursor.encode() if filters.cursor else "",
    }
    params.update(override)
    return urlencode({k: v for k, v in params.items() if v not in ("", None)})


@bp.get("")
def index():
    """The console, a page at a time (newest first; "Older" pages by cursor). Its count stops at
    lists.COUNT_CAP, so the poll never counts every incident. For htmx (filters, polling) only the
    results block is rendered."""
    filters = _filters()
    page = lists.page_of(filters)
    services = db.session.scalars(select(Service).order_by(Service.name)).all()
    all_teams = db.session.scalars(select(Team).order_by(Team.name)).all()
    query = _query_string(filters)
    return render(
        "incidents/index.html",
        block="results",
        incidents=page.incidents,
        total=lists.count(filters, cap=lists.COUNT_CAP),
        filters=filters,
        services=services,
        teams=all_teams,
        tabs=TABS,
        list_url=url_for("incidents.index") + ("?" + query if query else ""),
        query_for=lambda **override: _query_string(filters, **override),
        older=_query_string(filters, page="", cursor=page.next_cursor.encode()) if page.next_cursor else None,
        newest=_query_string(filters, page="", cursor="") if filters.cursor or filters.page > 1 else None,
        poll_ms=poll_ms(),
        checked=_checked_ids(),
    )


def _checked_ids() -> set[int]:
    """The incidents the polling list had checked, so they come back checked."""
    return {n for n in map(validation.id_in_text, request.args.getlist("incident_ids")) if n is not None}


@bp.get("/count")
def count():
    """The open-incident badge in the navigation (polled)."""
    return render("incidents/_count.html", count=lists.open_count())


@bp.post("/bulk")
def bulk():
    """Acknowledge or resolve every checked incident."""
    action = request.form.get("action")
    if action not in domain.ACTIONS:
        abort(400, "Choose acknowledge or resolve.")
    try:
        ids = sorted({validation.object_id(i, label="Each incident id") for i in request.form.getlist("incident_ids")})
    except validation.FieldError as exc:
        abort(400, str(exc))
    back = safe_next(url_for("incidents.index"))
    if not ids:
        return _done(back, "Select at least one incident first.", "warning", changed=False)
    changed, unchanged = domain.bulk_act(ids, action, current_user, channel="web")
    db.session.commit()
    verb = "Acknowledged" if action == "acknowledge" else "Resolved"
    message = f"{verb} {changed} incident{'s' if changed != 1 else ''}."
    if unchanged:
        message += f" {unchanged} {'was' if unchanged == 1 else 'were'} already {verb.lower()} or resolved."
    return _done(back, message)


def _done(back: str, message: str, category: str = "message", changed: bool = True):
    """Answer an action: without JS flash and redirect; for htmx the notice alone, and an
    `incidents-changed` event that makes the list and the navigation count refresh in place
    (a redirect would hide that header from htmx, which only sees the followed response)."""
    if is_htmx():
        response = render("incidents/_notice.html", message=message, category=category)
    else:
        flash(message, category)
        response = redirect(back)
    if changed:
        response.headers["HX-Trigger"] = "incidents-changed"
    return response


# What the incident page shows, loaded by the view so that rendering reads only memory.
SHOWN = [
    joinedload(Incident.service),
    joinedload(Incident.acknowledged_by),
    joinedload(Incident.resolved_by),
    joinedload(Incident.assigned_to),
]


@bp.get("/<int:incident_id>")
def show(incident_id: int):
    """The incident page. Its timeline shows the newest entries; htmx asks for older ones
    (`before=<entry id>`) and polls for new ones (`after=<entry id>`: 204 when there are none)."""
    incident = get_or_404(Incident, incident_id, options=SHOWN)
    before, after = _entry_id("before"), _entry_id("after")
    if is_htmx() and after is not None:
        entries, _ = domain.timeline(incident.id, after=after)
        if not entries:
            return "", 204
        block = "new_entries"
        newest = entries[0].id
        return render(
            "incidents/_timeline.html", block=block, incident=incident, entries=entries, newest=newest, **_poll()
        )
    if is_htmx() and before is not None:
        entries, older = domain.timeline(incident.id, before=before)
        block = "older_entries"
        return render("incidents/_timeline.html", block=block, incident=incident, entries=entries, older=older)
    return _page(incident, before=before)


def _page(incident: Incident, status: int = 200, before: int | None = None, **context):
    """The whole incident page with the newest page of its timeline, or (without JavaScript, "Show
    older entries") the page older than entry `before`, which does not poll."""
    entries, older = domain.timeline(incident.id, before=before)
    newest = None if before is not None else (entries[0].id if entries else 0)
    return render(
        "incidents/show.html",
        block="timeline",
        incident=incident,
        entries=entries,
        older=older,
        newest=newest,
        earlier_page=before is not None,
        **_poll(),
        reassign_choices=users.active_users(),
        recent_changes=change_events.recent_for_incident(incident),
        status=status,
        **context,
    )


def _poll() -> dict[str, int]:
    """The incident page's timeline polls half as often as the console."""
    return {"timeline_poll_ms": 2 * poll_ms()}


def _entry_id(name: str) -> int | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    try:
        return validation.integer(raw, minimum=0, label=name)
    except validation.FieldError as exc:
        abort(400, f"Bad {name}: {exc}")


def _act(incident_id: int, action: str):
    incident = get_or_404(Incident, incident_id)
    changed = domain.act(incident, action, current_user, channel="web")  # on the locked row
    db.session.commit()
    label = f"#{incident.number}"
    back = safe_next(url_for("incidents.show", incident_id=incident_id))
    if changed:
        return _done(back, f"Incident {label} {'acknowledged' if action == 'acknowledge' else 'resolved'}.")
    # Someone else got there first: the list is stale, so it refreshes all the same.
    return _done(back, f"Incident {label} was already {incident.status}.", "warning")


@bp.post("/<int:incident_id>/acknowledge")
def acknowledge(incident_id: int):
    return _act(incident_id, "acknowledge")


@bp.post("/<int:incident_id>/resolve")
def resolve(incident_id: int):
    return _act(incident_id, "resolve")


@bp.post("/<int:incident_id>/notes")
def add_note(incident_id: int):
    incident = get_or_404(Incident, incident_id)
    try:
        note = validation.text(request.form.get("note"), max_length=5000, label="Note")
    except validation.FieldError as exc:
        return _page(incident, status=422, note_error=str(exc))
    domain.add_note(incident, note, by=current_user, channel="web")
    db.session.commit()
    flash("Note added.")
    return redirect(url_for("incidents.show", incident_id=incident_id) + "#timeline")


@bp.post("/<int:incident_id>/urgency")
def set_urgency(incident_id: int):
    """Raise (pages the current level by the high-urgency rules at once) or lower the urgency."""
    incident = get_or_404(Incident, incident_id, options=SHOWN)
    try:
        value = urgency.clean_urgency(request.form.get("urgency"))
        changed = urgency.change_urgency(incident, value, by=current_user, channel="web")
    except (validation.FieldError, domain.ActionError) as exc:  # nothing was changed
        return _page(incident, status=422, urgency_error=str(exc))
    db.session.commit()
    back = safe_next(url_for("incidents.show", incident_id=incident_id))
    if not changed:
        return _done(back, f"Incident #{incident.number} is already {value} urgency.", "warning", changed=False)
    return _done(back, f"Incident #{incident.number} is now {value} urgency.")
