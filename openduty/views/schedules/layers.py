"""Layer actions on a schedule's page: add, edit, reorder, remove, refresh an iCal source."""

from flask import flash, redirect, request, url_for
from sqlalchemy import select

from openduty import ical, schedules
from openduty.errors import ValidationError
from openduty.extensions import db
from openduty.limits import allow_body_bytes
from openduty.models import Schedule, ScheduleLayer
from openduty.views import confirm_page, is_htmx, render
from openduty.views.schedules import bp
from openduty.views.schedules.pages import detail_context, detail_error


def _layer_body(values: dict, kind: str, editing: bool = False) -> dict:
    """A layer form as the body `schedules.clean_layer` takes (the same one the API sends)."""
    body: dict = {"name": values.get("name", "")}
    upload = request.files.get("ical_file")
    if kind == "ical":
        if upload and upload.filename:
            body["ical_data"] = upload.read(ical.MAX_ICAL_BYTES + 1).decode("utf-8", "replace")
        elif values.get("ical_url"):
            body["ical_url"] = values["ical_url"]
        elif not editing:  # editing without a new source keeps the current one
            body["ical_url"] = ""
            body["kind"] = "ical"
    else:
        participants = [line.strip() for line in values.get("participants", "").replace(",", "\n").splitlines()]
        body.update(
            start=values.get("start", ""),
            shift_length=values.get("shift_length", ""),
            shift_unit=values.get("shift_unit", ""),
            participants=[p for p in participants if p],
            restrictions=values.get("restrictions", ""),
        )
    return body


@bp.post("/<int:schedule_id>/layers")
@allow_body_bytes(schedules.layer_body_limit)
def add_layer(schedule_id: int):
    schedule = db.get_or_404(Schedule, schedule_id)
    values = request.form.to_dict()
    body = _layer_body(values, "ical" if values.get("kind") == "ical" else "rotation")
    try:
        clean = schedules.clean_layer(body, schedule.time_zone, default_name=f"Layer {len(schedule.layers) + 1}")
        layer = ScheduleLayer(position=len(schedule.layers))
        result = schedules.apply_layer(layer, clean, schedule.time_zone)
    except ValidationError as exc:
        return detail_error(schedule, exc, values)
    schedule.layers.append(layer)
    db.session.commit()
    message = f"Layer {layer.name} added on top."
    if result is not None:
        message += f" Imported {len(result.events)} shift(s)."
        if result.unmatched:
            flash("These events matched nobody: " + ", ".join(result.unmatched), "warning")
    flash(message)
    return redirect(url_for("schedules.detail", schedule_id=schedule.id))


def _layers_done(schedule: Schedule, message: str, category: str = "message"):
    """After a layer change: for htmx the layers panel with a notice, and a `schedule-changed`
    event that refreshes the calendar in place; without JS a flash and a redirect."""
    if is_htmx():
        ctx = detail_context(db.get_or_404(Schedule, schedule.id))
        ctx["notice"] = (category, message)
        response = render("schedules/detail.html", block="layers", **ctx)
        response.headers["HX-Trigger"] = "schedule-changed"
        return response
    flash(message, category)
    return redirect(url_for("schedules.detail", schedule_id=schedule.id) + "#layers")


def _layer_error(schedule: Schedule, layer_id: int, exc: ValidationError, values: dict):
    """A layer edit or move that did not validate: 422, its form open with the errors, nothing saved."""
    db.session.rollback()
    schedule = db.get_or_404(Schedule, schedule.id)
    ctx = detail_context(schedule)
    ctx.update(editing=layer_id, layer_errors=exc.fields, layer_values=values)
    if is_htmx():
        ctx["notice"] = ("error", "Nothing was saved: fix the fields marked below.")
        return render("schedules/detail.html", block="layers", status=422, **ctx)
    for field, message in exc.fields.items():
        flash(f"{field.replace('_', ' ').capitalize()}: {message}", "error")
    return render("schedules/detail.html", status=422, **ctx)


@bp.post("/<int:schedule_id>/layers/<int:layer_id>/edit")
@allow_body_bytes(schedules.layer_body_limit)
def edit_layer(schedule_id: int, layer_id: int):
    """Change a layer's name, rotation (start, shift, participants in order) or restrictions."""
    schedule = db.get_or_404(Schedule, schedule_id)
    layer = _layer_or_404(schedule.id, layer_id)
    values = request.form.to_dict()
    body = _layer_body(values, layer.kind, editing=True)
    try:
        clean = schedules.clean_layer(body, schedule.time_zone, default_name=layer.name, layer=layer)
        result = schedules.apply_layer(layer, clean, schedule.time_zone)
    except ValidationError as exc:
        return _layer_error(schedule, layer_id, exc, values)
    db.session.commit()
    message = f"Layer {layer.name} saved."
    if result is not None:
        message += f" Imported {len(result.events)} shift(s)."
        if result.unmatched:
            message += " These events matched nobody: " + ", ".join(result.unmatched) + "."
    return _layers_done(schedule, message)


@bp.post("/<int:schedule_id>/layers/<int:layer_id>/move")
def move_layer(schedule_id: int, layer_id: int):
    """Put a layer at `position` (0 is the bottom; higher layers win)."""
    schedule = db.get_or_404(Schedule, schedule_id)
    layer = _layer_or_404(schedule.id, layer_id)
    values = request.form.to_dict()
    try:
        position = schedules.clean_position(values.get("position"), schedule)
    except ValidationError as exc:
        return _layer_error(schedule, layer_id, exc, values)
    schedules.move_layer(schedule, layer, position)
    db.session.commit()
    return _layers_done(schedule, f"Layer {layer.name} is now number {position + 1} of {len(schedule.layers)}.")


@bp.route("/<int:schedule_id>/layers/<int:layer_id>/delete", methods=["GET", "POST"])
def delete_layer(schedule_id: int, layer_id: int):
    """Remove a layer: GET asks (without JavaScript), POST removes."""
    schedule = db.get_or_404(Schedule, schedule_id)
    layer = _layer_or_404(schedule.id, layer_id)
    if request.method == "GET":
        return confirm_page(
            f"Remove the layer {layer.name} from {schedule.name}?",
            "Remove layer",
            url_for("schedules.detail", schedule_id=schedule.id) + "#layers",
            "Its rotation and participants are deleted; the time it covered falls to the layers below it "
            "(or becomes a gap).",
        )
    schedules.remove_layer(schedule, layer)
    db.session.commit()
    return _layers_done(schedule, "Layer removed.")


@bp.post("/<int:schedule_id>/layers/<int:layer_id>/refresh")
def refresh_layer(schedule_id: int, layer_id: int):
    schedule = db.get_or_404(Schedule, schedule_id)
    layer = _layer_or_404(schedule.id, layer_id)
    outcome = ical.refresh_ical_layer(layer.id)
    layer = _layer_or_404(schedule.id, layer_id)
    if outcome == "error":
        flash(f"Could not refresh {layer.name}: {layer.ical_error} The previous shifts stay.", "error")
    else:
        flash(f"Layer {layer.name} refreshed ({len(layer.events)} shifts).")
    return redirect(url_for("schedules.detail", schedule_id=schedule.id))


def _layer_or_404(schedule_id: int, layer_id: int) -> ScheduleLayer:
    """The layer, if it belongs to this schedule (else 404, as for a layer that does not exist)."""
    return db.first_or_404(select(ScheduleLayer).filter_by(id=layer_id, schedule_id=schedule_id))
