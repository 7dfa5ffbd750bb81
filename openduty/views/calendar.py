"""iCal feeds of schedules and of each person's shifts, and the original Openduty on-call API.

Feeds authenticate with the `token` query parameter (a user's revocable calendar token), because
calendar apps cannot send headers; openduty.access checks it and puts its owner in
`g.calendar_user`. A token opens its owner's own feed and every schedule feed (everyone logged in
sees every schedule), nothing else: anything else answers 404 and reveals nothing.
"""

from flask import Blueprint, Response, abort, g, request

from openduty import ical, oncall, schedules, validation
from openduty.errors import ApiError
from openduty.extensions import csrf, db
from openduty.models import Schedule

bp = Blueprint("calendar", __name__)
csrf.exempt(bp)


def _feed_response(body: str, filename: str) -> Response:
    response = Response(body, mimetype="text/calendar")
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    response.headers["Cache-Control"] = "private, max-age=300"
    return response


@bp.get("/calendar/schedules/<int:schedule_id>.ics")
def schedule_feed(schedule_id: int):
    """Everyone's final shifts in one schedule."""
    schedule = db.get_or_404(Schedule, schedule_id)
    return _feed_response(ical.schedule_feed(schedule), f"schedule-{schedule.id}.ics")


@bp.get("/calendar/users/<int:user_id>.ics")
def user_feed(user_id: int):
    """One person's final shifts across every schedule: only with that person's own token."""
    user = g.calendar_user
    if user.id != user_id:
        abort(404)
    return _feed_response(ical.user_feed(user), f"user-{user.id}-shifts.ics")


@bp.get("/api/oncall/<schedule_ref>")
def legacy_oncall(schedule_ref: str):
    """The original Openduty shape: `[{"person", "email", "start", "end"}]` for `since`..`until`.

    `schedule_ref` is a schedule id or name; authenticated like /api/v1 (`Authorization: Token ...`).
    """
    if validation.unstorable(schedule_ref):
        raise ApiError(404, "No schedule with this id or name.")
    ref_id = validation.id_in_text(schedule_ref)
    schedule = db.session.get(Schedule, ref_id) if ref_id is not None else None
    if schedule is None:
        schedule = db.session.scalar(db.select(Schedule).where(Schedule.name == schedule_ref))
    if schedule is None:
        raise ApiError(404, f"No schedule with id or name {schedule_ref!r}.")
    since, until = schedules.clean_range(request.args)
    found = oncall.shifts(schedule, since, until)
    users = oncall.users_by_id(u for s in found for u in s.user_ids)
    return [
        {"person": users[u].name, "email": users[u].email, "start": s.start.isoformat(), "end": s.end.isoformat()}
        for s in found
        for u in s.user_ids
        if u in users
    ]
