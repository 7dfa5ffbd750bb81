"""Maintenance pages: current, upcoming and past windows; create, edit, end now and delete.

Everyone logged in reads; admins and the managers of every service in a window change it
(openduty.access, and openduty.maintenance for the services a form names). Ending and deleting
ask first: GET shows what will happen, POST does it (so it works without JavaScript).
"""

from flask import Blueprint, flash, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from openduty import clock
from openduty import maintenance as domain
from openduty.errors import ValidationError
from openduty.extensions import db
from openduty.models import MaintenanceWindow, Service
from openduty.views import confirm_page, done, get_or_404, render, times

bp = Blueprint("maintenance", __name__, url_prefix="/maintenance")


def _zone() -> str:
    """Forms take times in the viewer's zone."""
    return times.zone_name()


def _local(value) -> str:
    return times.datetime_input(times.local(value))


def _window_or_404(window_id: int) -> MaintenanceWindow:
    options = [selectinload(MaintenanceWindow.links), selectinload(MaintenanceWindow.services)]
    return get_or_404(MaintenanceWindow, window_id, label="maintenance window", options=options)


@bp.get("")
def index():
    now = clock.now()
    return render(
        "maintenance/index.html",
        windows=domain.windows_by_state(now),
        now=now,
        may_change=lambda window: domain.may_manage(current_user, window),
        may_create=current_user.is_admin or bool(current_user.managed_team_ids()),
    )


def _choices() -> list[Service]:
    """The services the caller may put in a window (admins: all; managers: their teams')."""
    query = select(Service).order_by(Service.name)
    if not current_user.is_admin:
        query = query.where(Service.team_id.in_(current_user.managed_team_ids() or {-1}))
    return list(db.session.scalars(query))


def _render_form(window: MaintenanceWindow | None, values: dict, errors: dict | None = None, status: int = 200):
    return render(
        "maintenance/form.html",
        window=window,
        values=values,
        errors=errors or {},
        services=_choices(),
        zone=_zone(),
        started=window is not None and window.start <= clock.now(),
        status=status,
    )


def _submitted(window: MaintenanceWindow | None) -> dict:
    form = request.form
    data = {
        "start": form.get("start", ""),
        "end": form.get("end", ""),
        "description": form.get("description", ""),
        "service_ids": form.getlist("service_ids"),
    }
    if window is not None and window.start <= clock.now():
        del data["start"]  # a started window keeps its start (the field is shown disabled)
    return data


def _save(window: MaintenanceWindow | None):
    data = _submitted(window)
    try:
        window = domain.save_window(window, data, actor=current_user, local_zone=_zone())
    except ValidationError as exc:
        db.session.rollback()
        values = {**data, "service_ids": [str(i) for i in data["service_ids"]]}
        if window is not None and "start" not in values:
            values["start"] = _local(window.start)
        return _render_form(window, values, exc.fields, status=422)
    db.session.commit()
    flash(f"Maintenance window saved: {times.exact(window.start)} – {times.exact(window.end)}.")
    return redirect(url_for("maintenance.index"))


@bp.route("/new", methods=["GET", "POST"])
def create():
    if request.method == "POST":
        return _save(None)
    now = clock.now()
    values = {
        "start": _local(now),
        "end": _local(now.replace(second=0, microsecond=0) + domain.DEFAULT_LENGTH),
        "service_ids": request.args.getlist("service_id"),
    }
    return _render_form(None, values)


@bp.route("/<int:window_id>/edit", methods=["GET", "POST"])
def edit(window_id: int):
    window = _window_or_404(window_id)
    if request.method == "POST":
        return _save(window)
    values = {
        "start": _local(window.start),
        "end": _local(window.end),
        "description": window.description,
        "service_ids": [str(i) for i in window.service_ids],
    }
    return _render_form(window, values)


def _confirm(window: MaintenanceWindow, action: str):
    verb = "End" if action == "end" else "Delete"
    when = times.span(window.start, window.end)
    details = [
        when + (f": {window.description}" if window.description else ""),  # Markup: the description is escaped
        "Services: " + ", ".join(service.name for service in window.services),
    ]
    if window.state(clock.now()) == "current":
        details.append(
            "Incidents still open and unacknowledged on these services start escalating (paging people) now, "
            "unless another window covers their service."
        )
    button = "End it now" if action == "end" else "Delete it"
    return confirm_page(f"{verb} this maintenance window?", button, url_for("maintenance.index"), *details)


@bp.route("/<int:window_id>/end", methods=["GET", "POST"])
def end(window_id: int):
    """End a current window now: GET asks, POST ends it."""
    window = _window_or_404(window_id)
    if request.method == "GET":
        return _confirm(window, "end")
    try:
        domain.end_now(window)
    except ValidationError as exc:
        db.session.rollback()
        flash(" ".join(exc.fields.values()), "error")
        return done(url_for("maintenance.index"))
    db.session.commit()
    flash("Maintenance window ended: incidents still open on its services start escalating now.")
    return done(url_for("maintenance.index"))


@bp.route("/<int:window_id>/delete", methods=["GET", "POST"])
def delete(window_id: int):
    """Delete a window: GET asks, POST deletes it."""
    window = _window_or_404(window_id)
    if request.method == "GET":
        return _confirm(window, "delete")
    domain.delete_window(window)
    db.session.commit()
    flash("Maintenance window deleted.")
    return done(url_for("maintenance.index"))
