"""Overrides on a schedule's page: the form, add, remove, and one shift's panel ("take this shift")."""

from zoneinfo import ZoneInfo

from flask import abort, flash, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select

from openduty import oncall, overrides
from openduty import validation as v
from openduty.errors import ValidationError
from openduty.extensions import db
from openduty.models import Schedule, ScheduleOverride
from openduty.views import confirm_page, done, render, times
from openduty.views.schedules import bp
from openduty.views.schedules.pages import detail_context, detail_error


@bp.get("/<int:schedule_id>/overrides/new")
def new_override(schedule_id: int):
    """The override form, with start and end pre-filled from the day (or range) clicked."""
    schedule = db.get_or_404(Schedule, schedule_id)
    ctx = detail_context(schedule)
    ctx["override_values"] = {
        "start": request.args.get("start", ""),
        "end": request.args.get("end", ""),
        "user_id": request.args.get("user_id", str(current_user.id)),
    }
    return render("schedules/override_form.html", block="override_form", **ctx)


@bp.post("/<int:schedule_id>/overrides")
def add_override(schedule_id: int):
    schedule = db.get_or_404(Schedule, schedule_id)
    values = request.form.to_dict()
    try:
        clean = overrides.clean_override(values, schedule, local_input=True)
    except ValidationError as exc:
        return detail_error(schedule, exc, values, form="override")
    if not overrides.can_add_override(current_user, schedule, clean["user_id"], clean["start"], clean["end"]):
        abort(403, overrides.OVERRIDE_FORBIDDEN)
    override = overrides.add_override(schedule, clean, current_user)
    overlap = overrides.overlap_note(override)
    db.session.commit()
    flash(f"{override.user.name} is on call from {times.exact(override.start)} to {times.exact(override.end)}.")
    if overlap:
        flash(overlap, "warning")
    day = times.local(override.start).date().isoformat()
    return redirect(url_for("schedules.detail", schedule_id=schedule.id, date=day))


@bp.route("/<int:schedule_id>/overrides/<int:override_id>/delete", methods=["GET", "POST"])
def delete_override(schedule_id: int, override_id: int):
    """Remove an override: GET asks, POST removes."""
    schedule = db.get_or_404(Schedule, schedule_id)
    override = db.first_or_404(select(ScheduleOverride).filter_by(id=override_id, schedule_id=schedule.id))
    if not overrides.can_delete_override(current_user, override):
        abort(403)
    if request.method == "GET":
        tz = ZoneInfo(schedule.time_zone)
        when = f"{override.start.astimezone(tz):%a %d %b %Y %H:%M} – {override.end.astimezone(tz):%a %d %b %Y %H:%M %Z}"
        return confirm_page(
            f"Remove the override #{override.id} of {override.user.name}?",
            "Remove override",
            url_for("schedules.detail", schedule_id=schedule.id),
            f"{override.user.name} stops being on call on {schedule.name} from {when}; "
            "the layers decide that time again.",
        )
    db.session.delete(override)
    db.session.commit()
    flash("Override removed.")
    return done(url_for("schedules.detail", schedule_id=schedule.id))


@bp.get("/<int:schedule_id>/shift")
def shift(schedule_id: int):
    """One final shift, with "take this shift" or "cover for me"."""
    schedule = db.get_or_404(Schedule, schedule_id)
    try:
        at = v.aware_datetime(request.args.get("at", ""), label="at")
    except v.FieldError:
        abort(400, "Pick a shift on the calendar.")
    found = oncall.current_shift(schedule, at)
    tz = ZoneInfo(schedule.time_zone)
    ctx = detail_context(schedule)
    ctx.update(
        shift=found,
        shift_users=list(oncall.users_by_id(found.user_ids).values()),
        mine=current_user.id in found.user_ids,
        # "Override part of it": the form takes wall-clock times in the schedule's zone.
        override_href=url_for(
            "schedules.new_override",
            schedule_id=schedule.id,
            start=times.datetime_input(found.start.astimezone(tz)),
            end=times.datetime_input(found.end.astimezone(tz)),
        ),
    )
    return render("schedules/shift.html", block="shift_panel", **ctx)
