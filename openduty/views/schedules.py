"""Schedules pages: the list, a schedule's calendar (month / week, htmx), layers, overrides, shifts.

Every action is a plain form POST + redirect; htmx swaps the calendar, the side panels and the
layers panel (editing, reordering and removing layers) in place. The
partials other areas include (gap warnings, calendar links, my shifts) get their data from the
template globals registered at the bottom.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select

from openduty import clock, oncall, schedule_edit
from openduty import validation as v
from openduty.errors import ApiError, ValidationError
from openduty.extensions import db
from openduty.limits import allow_body_bytes
from openduty.models import Schedule, ScheduleLayer, ScheduleOverride, User
from openduty.models.schedule import SHIFT_UNITS
from openduty.views import is_htmx, local_url, render

bp = Blueprint("schedules", __name__, url_prefix="/schedules")

# One colour per person, picked by user id; dark enough for white text.
PALETTE = (
    "#2f5bd3",
    "#2e7d32",
    "#8e24aa",
    "#ef6c00",
    "#00838f",
    "#6d4c41",
    "#ad1457",
    "#3949ab",
    "#558b2f",
    "#5d4037",
    "#00695c",
    "#7b1fa2",
)


def colour(user_id: int) -> str:
    return PALETTE[user_id % len(PALETTE)]


class CsrfForm(FlaskForm):
    """Fields are validated by openduty.schedule_edit; this only checks the CSRF token."""


def _schedule_or_404(schedule_id: int) -> Schedule:
    schedule = db.session.get(Schedule, schedule_id)
    if schedule is None:
        abort(404)
    return schedule


def _check_csrf() -> None:
    form = CsrfForm()
    if not form.validate_on_submit():
        abort(400, "The form expired; reload the page and try again.")


# --- Calendar ----------------------------------------------------------------------------------


@dataclass
class Segment:
    start: datetime  # local, clipped to the day
    end: datetime
    shift: oncall.Shift
    users: list[User]
    now: bool
    continues_before: bool
    continues_after: bool

    @property
    def is_gap(self) -> bool:
        return self.shift.is_gap

    @property
    def top(self) -> float:
        return round((self.start.hour * 60 + self.start.minute) / 14.4, 2)

    @property
    def height(self) -> float:
        minutes = (self.end - self.start).total_seconds() / 60
        return max(round(minutes / 14.4, 2), 1.5)

    @property
    def colour(self) -> str:
        return "#c62828" if self.is_gap else colour(self.users[0].id) if self.users else "#667085"

    @property
    def label(self) -> str:
        return "Nobody on call" if self.is_gap else ", ".join(u.name for u in self.users)


@dataclass
class Day:
    day: date
    in_range: bool
    today: bool
    segments: list[Segment]


def _parse_day(value: str | None, tz: ZoneInfo) -> date:
    try:
        day = date.fromisoformat(value) if value else oncall.wall_clock(clock.now(), tz).date()
        v.in_year_range(day)
        return day
    except ValueError:  # also FieldError: a day far away shows today, as a day that is not a date does
        return oncall.wall_clock(clock.now(), tz).date()


def calendar_view(schedule: Schedule, view: str, anchor: date) -> dict:
    """Days (with their final-schedule segments, in local time) for a month or week around `anchor`."""
    tz = ZoneInfo(schedule.time_zone)
    if view == "week":
        first = anchor - timedelta(days=anchor.weekday())
        last = first + timedelta(days=6)
        prev, nxt = first - timedelta(days=7), first + timedelta(days=7)
        in_range = (first, last)
        title = f"Week of {first:%d %b %Y}"
    else:
        month_first = anchor.replace(day=1)
        month_last = (month_first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        first = month_first - timedelta(days=month_first.weekday())
        last = month_last + timedelta(days=6 - month_last.weekday())
        prev = (month_first - timedelta(days=1)).replace(day=1)
        nxt = month_last + timedelta(days=1)
        in_range = (month_first, month_last)
        title = f"{month_first:%B %Y}"
    start = oncall.localize(datetime.combine(first, time()), tz)
    end = oncall.localize(datetime.combine(last + timedelta(days=1), time()), tz)
    now = clock.now()
    timeline = oncall.timeline(schedule, start, end)
    users = oncall.users_by_id(u for s in timeline for u in s.user_ids)
    today = oncall.wall_clock(now, tz).date()
    days = []
    day = first
    while day <= last:
        day_start = oncall.localize(datetime.combine(day, time()), tz)
        day_end = oncall.localize(datetime.combine(day + timedelta(days=1), time()), tz)
        segments = [
            Segment(
                start=max(s.start, day_start).astimezone(tz),
                end=min(s.end, day_end).astimezone(tz),
                shift=s,
                users=[users[u] for u in s.user_ids if u in users],
                now=s.start <= now < s.end,
                continues_before=s.start < day_start,
                continues_after=s.end > day_end,
            )
            for s in timeline
            if s.start < day_end and s.end > day_start
        ]
        days.append(Day(day, in_range[0] <= day <= in_range[1], day == today, segments))
        day += timedelta(days=1)
    people = sorted({u.id: u for u in users.values()}.values(), key=lambda u: u.name)
    return {
        "view": view,
        "anchor": anchor,
        "title": title,
        "weeks": [days[i : i + 7] for i in range(0, len(days), 7)],
        "days": days,
        "prev": prev,
        "next": nxt,
        "today": today,
        "people": people,
        "tz": tz,
    }


def _detail_context(schedule: Schedule, errors: dict | None = None, values: dict | None = None) -> dict:
    tz = ZoneInfo(schedule.time_zone)
    view = request.args.get("view", "month")
    view = view if view in ("month", "week") else "month"
    now = clock.now()
    overrides = db.session.scalars(
        select(ScheduleOverride)
        .where(ScheduleOverride.schedule_id == schedule.id, ScheduleOverride.end > now - timedelta(days=7))
        .order_by(ScheduleOverride.start, ScheduleOverride.id)
    ).all()
    overlaps = {}
    for o in overrides:
        others = [x for x in overrides if x.id != o.id and x.start < o.end and x.end > o.start]
        overlaps[o.id] = schedule_edit.overlap_message(o, others)
    return {
        "schedule": schedule,
        "cal": calendar_view(schedule, view, _parse_day(request.args.get("date"), tz)),
        "overrides": overrides,
        "overlaps": overlaps,
        "users": db.session.scalars(select(User).where(User.active.is_(True)).order_by(User.name)).all(),
        "on_call": oncall.current_shift(schedule, now),
        "on_call_users": oncall.who_is_on_call(schedule, now),
        "warning": oncall.gap_warnings(schedule),
        "policies": schedule_edit.policies_using(schedule),
        "errors": errors or {},
        "values": values or {},
        # A layer edit or move that failed: which layer's form to reopen, its errors and input.
        "editing": None,
        "layer_errors": {},
        "layer_values": {},
        "notice": None,
        "units": SHIFT_UNITS,
        "form": CsrfForm(),
        "restrictions_text": oncall.restrictions_text,
        "layer_rrules": oncall.layer_rrules,
        "colour": colour,
        "local": lambda dt: dt.astimezone(tz),
        "timedelta_day": timedelta(days=1),
        "ical_url": lambda s: oncall.schedule_ical_url(s, current_user),
        # iCal source URLs (often with a private token) in full for admins, masked for members.
        "source_url": lambda layer: layer.shown_ical_url(current_user),
        "source_error": lambda layer: layer.shown_ical_error(current_user),
        "webcal": oncall.webcal,
    }


# --- Pages -------------------------------------------------------------------------------------


@bp.get("")
def index():
    rows = _index_rows()
    return render("schedules/index.html", rows=rows, form=CsrfForm(), errors={}, values={}, zones=_common_zones())


def _index_rows() -> list[tuple]:
    now = clock.now()
    return [
        (s, oncall.current_shift(s, now), oncall.who_is_on_call(s, now), oncall.gap_warnings(s))
        for s in db.session.scalars(select(Schedule).order_by(Schedule.name))
    ]


def _common_zones() -> list[str]:
    return ["UTC", "Europe/London", "Europe/Berlin", "Europe/Budapest", "America/New_York", "America/Chicago",
            "America/Los_Angeles", "Asia/Tokyo", "Australia/Sydney"]  # fmt: skip


@bp.post("")
def create():
    _check_csrf()
    values = request.form.to_dict()
    try:
        clean = schedule_edit.clean_schedule(values)
    except ValidationError as exc:
        return render(
            "schedules/index.html", rows=_index_rows(), form=CsrfForm(), errors=exc.fields, values=values,
            zones=_common_zones(), status=422,
        )  # fmt: skip
    schedule = Schedule(**clean)
    db.session.add(schedule)
    db.session.commit()
    flash(f"Schedule {schedule.name} created. Add a layer to put people on call.")
    return redirect(url_for("schedules.detail", schedule_id=schedule.id))


@bp.get("/<int:schedule_id>")
def detail(schedule_id: int):
    schedule = _schedule_or_404(schedule_id)
    return render("schedules/detail.html", block="calendar", **_detail_context(schedule))


def _detail_error(schedule: Schedule, exc: ValidationError, values: dict):
    db.session.rollback()
    schedule = _schedule_or_404(schedule.id)
    for field, message in exc.fields.items():
        flash(f"{field.replace('_', ' ').capitalize()}: {message}", "error")
    return render("schedules/detail.html", status=422, **_detail_context(schedule, exc.fields, values))


@bp.post("/<int:schedule_id>/edit")
def edit(schedule_id: int):
    _check_csrf()
    schedule = _schedule_or_404(schedule_id)
    values = request.form.to_dict()
    try:
        clean = schedule_edit.clean_schedule(values, schedule)
    except ValidationError as exc:
        return _detail_error(schedule, exc, values)
    for key, value in clean.items():
        setattr(schedule, key, value)
    db.session.commit()
    flash("Schedule saved.")
    return redirect(url_for("schedules.detail", schedule_id=schedule.id))


@bp.post("/<int:schedule_id>/delete")
def delete(schedule_id: int):
    _check_csrf()
    schedule = _schedule_or_404(schedule_id)
    try:
        schedule_edit.delete_schedule(schedule)
    except ApiError as exc:
        flash(exc.message, "error")
        return redirect(url_for("schedules.detail", schedule_id=schedule.id))
    db.session.commit()
    flash(f"Schedule {schedule.name} deleted.")
    return redirect(url_for("schedules.index"))


def _layer_body(values: dict, kind: str, editing: bool = False) -> dict:
    """A layer form as the body `schedule_edit.clean_layer` takes (the same one the API sends)."""
    body: dict = {"name": values.get("name", "")}
    upload = request.files.get("ical_file")
    if kind == "ical":
        if upload and upload.filename:
            body["ical_data"] = upload.read(oncall.MAX_ICAL_BYTES + 1).decode("utf-8", "replace")
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
@allow_body_bytes(schedule_edit.layer_body_limit)
def add_layer(schedule_id: int):
    _check_csrf()
    schedule = _schedule_or_404(schedule_id)
    values = request.form.to_dict()
    body = _layer_body(values, "ical" if values.get("kind") == "ical" else "rotation")
    try:
        clean = schedule_edit.clean_layer(body, schedule.time_zone, default_name=f"Layer {len(schedule.layers) + 1}")
        layer = ScheduleLayer(position=len(schedule.layers))
        result = schedule_edit.apply_layer(layer, clean, schedule.time_zone)
    except ValidationError as exc:
        return _detail_error(schedule, exc, values)
    schedule.layers.append(layer)
    db.session.commit()
    message = f"Layer {layer.name} added on top."
    if result is not None:
        message += f" Imported {len(result.events)} shift(s)."
        if result.unmatched:
            flash("These events matched nobody: " + ", ".join(result.unmatched), "warning")
    flash(message)
    return redirect(url_for("schedules.detail", schedule_id=schedule.id))


def _layer_or_404(schedule: Schedule, layer_id: int) -> ScheduleLayer:
    layer = db.session.get(ScheduleLayer, layer_id)
    if layer is None or layer.schedule_id != schedule.id:
        abort(404)
    return layer


def _layers_done(schedule: Schedule, message: str, category: str = "message"):
    """After a layer change: for htmx the layers panel with a notice, and a `schedule-changed`
    event that refreshes the calendar in place; without JS a flash and a redirect."""
    if is_htmx():
        ctx = _detail_context(_schedule_or_404(schedule.id))
        ctx["notice"] = (category, message)
        response = render("schedules/detail.html", block="layers", **ctx)
        response.headers["HX-Trigger"] = "schedule-changed"
        return response
    flash(message, category)
    return redirect(url_for("schedules.detail", schedule_id=schedule.id) + "#layers")


def _layer_error(schedule: Schedule, layer_id: int, exc: ValidationError, values: dict):
    """A layer edit or move that did not validate: 422, its form open with the errors, nothing saved."""
    db.session.rollback()
    schedule = _schedule_or_404(schedule.id)
    ctx = _detail_context(schedule)
    ctx.update(editing=layer_id, layer_errors=exc.fields, layer_values=values)
    if is_htmx():
        ctx["notice"] = ("error", "Nothing was saved: fix the fields marked below.")
        return render("schedules/detail.html", block="layers", status=422, **ctx)
    for field, message in exc.fields.items():
        flash(f"{field.replace('_', ' ').capitalize()}: {message}", "error")
    return render("schedules/detail.html", status=422, **ctx)


@bp.post("/<int:schedule_id>/layers/<int:layer_id>/edit")
@allow_body_bytes(schedule_edit.layer_body_limit)
def edit_layer(schedule_id: int, layer_id: int):
    """Change a layer's name, rotation (start, shift, participants in order) or restrictions."""
    _check_csrf()
    schedule = _schedule_or_404(schedule_id)
    layer = _layer_or_404(schedule, layer_id)
    values = request.form.to_dict()
    body = _layer_body(values, layer.kind, editing=True)
    try:
        clean = schedule_edit.clean_layer(body, schedule.time_zone, default_name=layer.name, layer=layer)
        result = schedule_edit.apply_layer(layer, clean, schedule.time_zone)
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
    _check_csrf()
    schedule = _schedule_or_404(schedule_id)
    layer = _layer_or_404(schedule, layer_id)
    values = request.form.to_dict()
    try:
        position = schedule_edit.clean_position(values.get("position"), schedule)
    except ValidationError as exc:
        return _layer_error(schedule, layer_id, exc, values)
    schedule_edit.move_layer(schedule, layer, position)
    db.session.commit()
    return _layers_done(schedule, f"Layer {layer.name} is now number {position + 1} of {len(schedule.layers)}.")


@bp.post("/<int:schedule_id>/layers/<int:layer_id>/delete")
def delete_layer(schedule_id: int, layer_id: int):
    _check_csrf()
    schedule = _schedule_or_404(schedule_id)
    schedule_edit.remove_layer(schedule, _layer_or_404(schedule, layer_id))
    db.session.commit()
    return _layers_done(schedule, "Layer removed.")


@bp.post("/<int:schedule_id>/layers/<int:layer_id>/refresh")
def refresh_layer(schedule_id: int, layer_id: int):
    _check_csrf()
    from openduty.schedule_jobs import refresh_ical_layer

    schedule = _schedule_or_404(schedule_id)
    layer = _layer_or_404(schedule, layer_id)
    outcome = refresh_ical_layer(layer.id)
    layer = _layer_or_404(schedule, layer_id)
    if outcome == "error":
        flash(f"Could not refresh {layer.name}: {layer.ical_error} The previous shifts stay.", "error")
    else:
        flash(f"Layer {layer.name} refreshed ({len(layer.events)} shifts).")
    return redirect(url_for("schedules.detail", schedule_id=schedule.id))


@bp.get("/<int:schedule_id>/overrides/new")
def new_override(schedule_id: int):
    """The override form, with start and end pre-filled from the day (or range) clicked."""
    schedule = _schedule_or_404(schedule_id)
    ctx = _detail_context(schedule)
    ctx["values"] = {
        "start": request.args.get("start", ""),
        "end": request.args.get("end", ""),
        "user_id": request.args.get("user_id", str(current_user.id)),
    }
    return render("schedules/override_form.html", block="override_form", **ctx)


@bp.post("/<int:schedule_id>/overrides")
def add_override(schedule_id: int):
    _check_csrf()
    schedule = _schedule_or_404(schedule_id)
    values = request.form.to_dict()
    try:
        clean = schedule_edit.clean_override(values, schedule, local_input=True)
    except ValidationError as exc:
        return _detail_error(schedule, exc, values)
    if not schedule_edit.can_add_override(current_user, schedule, clean["user_id"], clean["start"], clean["end"]):
        abort(403, schedule_edit.OVERRIDE_FORBIDDEN)
    override = schedule_edit.add_override(schedule, clean, current_user)
    overlap = schedule_edit.overlap_message(override, schedule_edit.overlapping_overrides(override))
    db.session.commit()
    tz = ZoneInfo(schedule.time_zone)
    start = override.start.astimezone(tz)
    end = override.end.astimezone(tz)
    flash(f"{override.user.name} is on call from {start:%a %d %b %H:%M} to {end:%a %d %b %H:%M}.")
    if overlap:
        flash(overlap, "warning")
    return redirect(url_for("schedules.detail", schedule_id=schedule.id, date=start.date().isoformat()))


@bp.post("/<int:schedule_id>/overrides/<int:override_id>/delete")
def delete_override(schedule_id: int, override_id: int):
    _check_csrf()
    schedule = _schedule_or_404(schedule_id)
    override = db.session.get(ScheduleOverride, override_id)
    if override is None or override.schedule_id != schedule.id:
        abort(404)
    if not schedule_edit.can_delete_override(current_user, override):
        abort(403)
    db.session.delete(override)
    db.session.commit()
    flash("Override removed.")
    return redirect(url_for("schedules.detail", schedule_id=schedule.id))


@bp.get("/<int:schedule_id>/shift")
def shift(schedule_id: int):
    """One final shift, with "take this shift" or "cover for me"."""
    schedule = _schedule_or_404(schedule_id)
    try:
        at = v.aware_datetime(request.args.get("at", ""), label="at")
    except v.FieldError:
        abort(400, "Pick a shift on the calendar.")
    found = oncall.current_shift(schedule, at)
    ctx = _detail_context(schedule)
    ctx.update(
        shift=found,
        shift_users=list(oncall.users_by_id(found.user_ids).values()),
        mine=current_user.id in found.user_ids,
    )
    return render("schedules/shift.html", block="shift_panel", **ctx)


# --- Calendar token (the profile's feed links) ------------------------------------------------


@bp.post("/calendar-token")
def regenerate_calendar_token():
    """Revoke the current calendar token and issue a new one (old feed links stop working)."""
    _check_csrf()
    current_user.regenerate_calendar_token()
    db.session.commit()
    flash("New calendar links issued; the old ones no longer work. Re-subscribe with the new link.")
    return redirect(local_url(request.form.get("next"), url_for("schedules.index")))


# --- Template globals for the partials other pages include ------------------------------------


@bp.app_template_global("schedule_gap_warning")
def schedule_gap_warning(schedule: Schedule):
    return oncall.gap_warnings(schedule)


@bp.app_template_global("policy_gap_warnings")
def policy_gap_warnings(policy):
    return oncall.policy_gap_warnings(policy)


@bp.app_template_global("my_shifts")
def my_shifts(user: User, days: int = 30) -> list[dict]:
    """The user's final shifts from now for `days` days, for the profile's "my shifts" list."""
    now = clock.now()
    out = []
    for schedule, s in oncall.user_shifts(user, now, now + timedelta(days=days)):
        tz = ZoneInfo(user.time_zone or "UTC")
        out.append(
            {
                "schedule": schedule,
                "start": s.start.astimezone(tz),
                "end": s.end.astimezone(tz),
                "now": s.start <= now < s.end,
                "source": s.source,
            }
        )
    return out


@bp.app_template_global("calendar_links")
def calendar_links(user: User) -> dict:
    """The user's own shifts feed as https:// and webcal:// links (creates the token on first use)."""
    url = oncall.user_ical_url(user)
    return {"https": url, "webcal": oncall.webcal(url)}


@bp.app_template_global("on_call_now")
def on_call_now() -> dict:
    """The home page panel: each schedule and each policy level, with whom to contact."""
    now = clock.now()
    schedules = []
    for schedule in db.session.scalars(select(Schedule).order_by(Schedule.name)):
        found = oncall.current_shift(schedule, now)
        users = list(oncall.users_by_id(found.user_ids).values())
        schedules.append({"schedule": schedule, "shift": found, "users": users})
    return {"schedules": schedules, "policies": oncall.policy_oncalls(now), "now": now}


@bp.app_template_global("contact_line")
def contact_line(user: User) -> str:
    """Email plus the first phone number, for "who to call"."""
    phones = [m.address for m in user.contact_methods if m.kind in ("sms", "voice")]
    return " · ".join([user.email, *phones[:1]])
