"""Maintenance windows API: everyone with a token reads; admins and the managers of every service in
a window change it (openduty.access; openduty.maintenance checks the services a body names)."""

from typing import Any

from flask import request, url_for
from sqlalchemy.orm import selectinload

from openduty import clock, validation
from openduty import maintenance as domain
from openduty.errors import ValidationError
from openduty.extensions import db
from openduty.models import MaintenanceWindow
from openduty.views.api import api_user, bp, created, get_or_404, iso, json_body

STATES = ("current", "upcoming", "past")


def window_json(window: MaintenanceWindow) -> dict[str, Any]:
    return {
        "id": window.id,
        "start": iso(window.start),
        "end": iso(window.end),
        "state": window.state(clock.now()),
        "description": window.description,
        "service_ids": window.service_ids,
        "created_by_id": window.created_by_id,
        "created_at": iso(window.created_at),
    }


def _window(window_id: int) -> MaintenanceWindow:
    options = [selectinload(MaintenanceWindow.links)]
    return get_or_404(MaintenanceWindow, window_id, "maintenance window", options=options)


@bp.get("/maintenance-windows")
def list_maintenance_windows():
    """Current and upcoming windows (soonest first), then the latest past ones; `?state=` and
    `?service_id=` narrow the list."""
    args = request.args
    fields = {}
    state = args.get("state") or None
    if state is not None and state not in STATES:
        fields["state"] = f"Use one of {', '.join(STATES)}."
    service_id = None
    if args.get("service_id"):
        try:
            service_id = validation.object_id(args["service_id"], label="The service id")
        except validation.FieldError as exc:
            fields["service_id"] = str(exc)
    if fields:
        raise ValidationError(fields)
    lists = domain.windows_by_state(clock.now(), service_id=service_id)
    shown = [w for name in STATES if state in (None, name) for w in lists[name]]
    return {"maintenance_windows": [window_json(w) for w in shown]}


@bp.post("/maintenance-windows")
def create_maintenance_window():
    window = domain.save_window(None, json_body(domain.WINDOW_FIELDS), actor=api_user())
    db.session.commit()
    return created(window_json(window), url_for("api.get_maintenance_window", window_id=window.id))


@bp.get("/maintenance-windows/<int:window_id>")
def get_maintenance_window(window_id: int):
    return window_json(_window(window_id))


@bp.patch("/maintenance-windows/<int:window_id>")
def update_maintenance_window(window_id: int):
    window = _window(window_id)
    domain.save_window(window, json_body(domain.WINDOW_FIELDS), actor=api_user())
    db.session.commit()
    return window_json(window)


@bp.post("/maintenance-windows/<int:window_id>/end")
def end_maintenance_window(window_id: int):
    """End a current window now (no fields)."""
    window = _window(window_id)
    json_body((), optional=True)
    domain.end_now(window)
    db.session.commit()
    return window_json(window)


@bp.delete("/maintenance-windows/<int:window_id>")
def delete_maintenance_window(window_id: int):
    domain.delete_window(_window(window_id))
    db.session.commit()
    return "", 204
