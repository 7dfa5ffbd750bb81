"""Schedules pages: the list, a schedule's page (calendar and side panels), its settings, and the
calendar-links action; `detail_context` is what every schedule page renders with."""

from dataclasses import replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask import abort, flash, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from openduty import clock, cover_requests, ical, oncall, overrides, reachability, schedules, teams
from openduty.errors import ApiError, ValidationError
from openduty.extensions import db
from openduty.models import LayerEvent, LayerParticipant, Schedule, ScheduleLayer, User
from openduty.models.schedule import SHIFT_UNITS
from openduty.views import confirm_page, done, is_htmx, render, safe_next, times
from openduty.views.schedules import bp
from openduty.views.schedules.grid import calendar_view, colour, parse_day


def detail_context(schedule: Schedule, errors: dict | None = None, values: dict | None = None) -> dict:
    """Everything schedules/detail.html (and its blocks) shows, computed here, not while rendering."""
    now = clock.now()
    # Everyone who can be picked in the forms, first: the calendar, the overlap notes and the layers
    # panel then find most people already loaded.
    users = db.session.scalars(select(User).where(User.active.is_(True)).order_by(User.name)).all()
    known = {user.id: user for user in users}
    # Loaded here with what the layers panel shows, so that rendering it queries nothing.
    layers = db.session.scalars(
        select(ScheduleLayer)
        .where(ScheduleLayer.schedule_id == schedule.id)
        .order_by(ScheduleLayer.position, ScheduleLayer.id)
        .options(selectinload(ScheduleLayer.participants).selectinload(LayerParticipant.user))
    ).all()
    event_counts = dict(
        db.session.execute(
            select(LayerEvent.layer_id, func.count())
            .join(ScheduleLayer)
            .where(ScheduleLayer.schedule_id == schedule.id)
            .group_by(LayerEvent.layer_id)
        ).all()
    )
    return {
        "schedule": schedule,
        **calendar_context(schedule, known),
        **override_list_context(schedule, known),
        "layers": layers,
        "rrules": {layer.id: oncall.layer_rrules(layer, schedule) for layer in layers},
        "event_counts": event_counts,
        "users": users,
        **on_call_context(schedule, now),
        "gaps": [oncall.gap_warnings(schedule)],
        "reach": reachability.schedule_warnings(schedule),
        "policies": schedules.policies_using(schedule),
        "team_options": teams.choices_for(current_user),
        "errors": errors or {},
        "values": values or {},
        # A layer edit or move that failed: which layer's form to reopen, its errors and input.
        "editing": None,
        "layer_errors": {},
        "layer_values": {},
        "notice": None,
        "units": SHIFT_UNITS,
        "restrictions_text": schedules.restrictions_text,
        "feed": ical.schedule_ical_url(schedule, current_user),
        # iCal source URLs (often with a private token) in full for admins, masked for members.
        "source_url": lambda layer: layer.shown_ical_url(current_user),
        "source_error": lambda layer: layer.shown_ical_error(current_user),
        "webcal": ical.webcal,
        "cover": cover_requests.listing(schedule, current_user),
        "cover_errors": {},
        "cover_values": {},
        "override_errors": {},
        "override_values": {},
    }


def on_call_context(schedule: Schedule, now: datetime) -> dict:
    """The header's "On call now ... until" (refreshed in place when the schedule changes)."""
    return {
        "schedule": schedule,
        "on_call_users": oncall.who_is_on_call(schedule, now),
        "on_call_until": oncall.on_call_until(schedule, now),
        "colour": colour,
        "local": lambda dt: dt.astimezone(ZoneInfo(schedule.time_zone)),
    }


def calendar_context(schedule: Schedule, known: dict | None = None) -> dict:
    """What the calendar block shows (all that htmx navigation between months and weeks needs)."""
    return {
        "schedule": schedule,
        "cal": calendar_view(schedule, *_shown(schedule), times.viewer_zone(), known),
        "colour": colour,
    }


def _shown(schedule: Schedule) -> tuple[str, date]:
    """The calendar asked for: `view` (month or week, month unless it says week) and `date`."""
    view = request.args.get("view", "month")
    return view if view in ("month", "week") else "month", parse_day(request.args.get("date"), times.viewer_zone())


def override_list_context(schedule: Schedule, known: dict | None = None) -> dict:
    """The override list's page (query `overrides=upcoming|past`, `after=<cursor>`), what it says
    about overlaps, and where "Show more" leads (the same calendar, the next page of the list)."""
    listing = request.args.get("overrides") or "upcoming"
    if listing not in ("upcoming", "past"):
        abort(400, "overrides must be upcoming or past.")
    try:
        page = overrides.override_page(schedule, clock.now(), past=listing == "past", after=request.args.get("after"))
    except ValidationError as exc:
        abort(400, exc.fields["after"])
    view, day = _shown(schedule)
    here = {"schedule_id": schedule.id, "view": view, "date": day.isoformat()}
    return {
        "schedule": schedule,
        "override_page": page,
        "overlaps": overrides.overlap_notes(schedule, page.items, known),
        "more_url": url_for("schedules.detail", **here, overrides=listing, after=page.next) if page.next else None,
        "list_urls": {name: url_for("schedules.detail", **here, overrides=name) for name in ("upcoming", "past")},
    }


# --- Pages -------------------------------------------------------------------------------------


@bp.get("")
def index():
    return render("schedules/index.html", rows=_index_rows())


def _index_rows() -> list[tuple]:
    now = clock.now()
    return [
        # "Until": the end of the people's unbroken run, not of the shift (an override may carry on).
        (
            s,
            replace(oncall.current_shift(s, now), end=oncall.on_call_until(s, now)),
            oncall.who_is_on_call(s, now),
            oncall.gap_warnings(s),
        )
        for s in db.session.scalars(select(Schedule).order_by(Schedule.name))
    ]


def _common_zones() -> list[str]:
    return ["UTC", "Europe/London", "Europe/Berlin", "Europe/Budapest", "America/New_York", "America/Chicago",
            "America/Los_Angeles", "Asia/Tokyo", "Australia/Sydney"]  # fmt: skip


def _new_page(values: dict, errors: dict, status: int = 200):
    """The new-schedule form (its own page, as for every other kind of object)."""
    return render(
        "schedules/new.html", values=values, errors=errors, zones=_common_zones(),
        team_options=teams.choices_for(current_user), status=status,
    )  # fmt: skip


@bp.get("/new")
def new():
    return _new_page({}, {})


@bp.post("")
def create():
    values = request.form.to_dict()
    try:
        clean = schedules.clean_schedule(values, actor=current_user)
    except ValidationError as exc:
        return _new_page(values, exc.fields, 422)
    schedule = Schedule(**clean)
    db.session.add(schedule)
    db.session.commit()
    flash(f"Schedule {schedule.name} created. Add a layer to put people on call.")
    return redirect(url_for("schedules.detail", schedule_id=schedule.id))


@bp.get("/<int:schedule_id>")
def detail(schedule_id: int):
    """A schedule's page. htmx asks for the calendar (navigation), the override list (`overrides=`)
    or its next page (`after=`); each is a block of the page, computed alone."""
    schedule = db.get_or_404(Schedule, schedule_id)
    if is_htmx() and request.args.get("after"):
        return render("schedules/detail.html", block="override_items", **override_list_context(schedule))
    if is_htmx() and request.args.get("part") == "on-call":
        return render("schedules/detail.html", block="on_call", **on_call_context(schedule, clock.now()))
    if is_htmx() and request.args.get("overrides"):
        return render("schedules/detail.html", block="overrides", **override_list_context(schedule))
    if is_htmx():
        return render("schedules/detail.html", block="calendar", **calendar_context(schedule))
    return render("schedules/detail.html", **detail_context(schedule))


def detail_error(schedule: Schedule, exc: ValidationError, values: dict, form: str = ""):
    """A form that did not validate: 422, the page with the errors flashed and the input kept, nothing saved.
    `form` names the form whose fields show them ("override": `override_errors`; "": the schedule's
    and the new layer's `errors`), so that one form's errors never appear under another's fields."""
    db.session.rollback()
    schedule = db.get_or_404(Schedule, schedule.id)
    for field, message in exc.fields.items():
        name = f"{form} {field}" if form else field
        flash(f"{name.replace('_', ' ').capitalize()}: {message}", "error")
    if not form:
        return render("schedules/detail.html", status=422, **detail_context(schedule, exc.fields, values))
    context = {**detail_context(schedule), f"{form}_errors": exc.fields, f"{form}_values": values}
    return render("schedules/detail.html", status=422, **context)


@bp.post("/<int:schedule_id>/edit")
def edit(schedule_id: int):
    schedule = db.get_or_404(Schedule, schedule_id)
    values = request.form.to_dict()
    try:
        clean = schedules.clean_schedule(values, schedule, actor=current_user)
    except ValidationError as exc:
        return detail_error(schedule, exc, values)
    for key, value in clean.items():
        setattr(schedule, key, value)
    db.session.commit()
    flash("Schedule saved.")
    return redirect(url_for("schedules.detail", schedule_id=schedule.id))


@bp.route("/<int:schedule_id>/delete", methods=["GET", "POST"])
def delete(schedule_id: int):
    """Delete a schedule: GET asks, POST deletes."""
    schedule = db.get_or_404(Schedule, schedule_id)
    if request.method == "GET":
        return confirm_page(
            f"Delete the schedule {schedule.name}?",
            "Delete schedule",
            url_for("schedules.detail", schedule_id=schedule.id),
            "Its layers, overrides and cover requests are deleted with it, and its calendar feed stops working. "
            "This cannot be undone.",
        )
    try:
        schedules.delete_schedule(schedule)
    except ApiError as exc:
        flash(exc.message, "error")
        return done(url_for("schedules.detail", schedule_id=schedule.id))
    db.session.commit()
    flash(f"Schedule {schedule.name} deleted.")
    return done(url_for("schedules.index"))


# --- Calendar token (the profile's feed links) ------------------------------------------------


@bp.route("/calendar-token", methods=["GET", "POST"])
def regenerate_calendar_token():
    """Revoke the current calendar token and issue a new one (old feed links stop working): GET
    asks, POST does it."""
    back = safe_next(url_for("schedules.index"))
    if request.method == "GET":
        return confirm_page(
            "Revoke your calendar links and issue new ones?",
            "Revoke and issue new links",
            back,
            "Every calendar app subscribed with your current links stops getting your shifts until it is "
            "subscribed again with the new link.",
        )
    current_user.regenerate_calendar_token()
    db.session.commit()
    flash("New calendar links issued; the old ones no longer work. Re-subscribe with the new link.")
    return done(back)
