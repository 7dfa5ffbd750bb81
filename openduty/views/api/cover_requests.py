"""Cover requests API: list a schedule's, ask for cover, accept, cancel (the same rules as the
pages: openduty.cover_requests)."""

from flask import url_for
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from openduty import cover_requests
from openduty.errors import ApiError
from openduty.extensions import db
from openduty.models import CoverRequest, Schedule
from openduty.views.api import api_user, bp, created, get_or_404, json_body

# The list holds the open requests and this many of the others (newest first).
LISTED = 100


def _cover(schedule_id: int, request_id: int) -> CoverRequest:
    schedule = get_or_404(Schedule, schedule_id)
    found = db.session.get(CoverRequest, request_id)
    if found is None or found.schedule_id != schedule.id:
        raise ApiError(404, f"Schedule {schedule.id} has no cover request with id {request_id}.")
    return found


@bp.get("/schedules/<int:schedule_id>/cover-requests")
def list_cover_requests(schedule_id: int):
    """Open requests (soonest first), then the latest LISTED others."""
    schedule = get_or_404(Schedule, schedule_id)
    query = select(CoverRequest).where(CoverRequest.schedule_id == schedule.id)
    query = query.options(joinedload(CoverRequest.requester), joinedload(CoverRequest.accepted_by))
    opened = db.session.scalars(query.where(CoverRequest.status == "open").order_by(CoverRequest.start)).all()
    others = db.session.scalars(
        query.where(CoverRequest.status != "open").order_by(CoverRequest.created_at.desc()).limit(LISTED)
    ).all()
    return {"cover_requests": [cover_requests.request_json(r) for r in [*opened, *others]]}


@bp.post("/schedules/<int:schedule_id>/cover-requests")
def create_cover_request(schedule_id: int):
    """Ask the other people of the schedule's rotations to cover part of the caller's own shift."""
    schedule = get_or_404(Schedule, schedule_id)
    clean = cover_requests.clean_request(json_body(cover_requests.FIELDS), schedule, api_user())
    cover, notified = cover_requests.ask(schedule, api_user(), clean)
    db.session.commit()
    location = url_for("api.list_cover_requests", schedule_id=schedule.id)
    return created({**cover_requests.request_json(cover), "notified": notified}, location)


@bp.post("/schedules/<int:schedule_id>/cover-requests/<int:request_id>/accept")
def accept_cover_request(schedule_id: int, request_id: int):
    """The first to accept gets the override (409 once someone has)."""
    cover = _cover(schedule_id, request_id)
    json_body((), optional=True)
    cover_requests.accept(cover, api_user())
    db.session.commit()
    return cover_requests.request_json(cover)


@bp.post("/schedules/<int:schedule_id>/cover-requests/<int:request_id>/cancel")
def cancel_cover_request(schedule_id: int, request_id: int):
    cover = _cover(schedule_id, request_id)
    json_body((), optional=True)
    cover_requests.cancel(cover, api_user())
    db.session.commit()
    return cover_requests.request_json(cover)
