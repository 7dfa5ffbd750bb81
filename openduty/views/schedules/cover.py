"""Cover requests on a schedule's page: ask, the request's page (confirm, then accept by POST: a
link scanner opening the notice's link accepts nothing), accept, cancel."""

from flask import abort, flash, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from openduty import cover_requests
from openduty.errors import ApiError, ValidationError
from openduty.extensions import db
from openduty.models import CoverRequest, Schedule
from openduty.views import render, times
from openduty.views.schedules import bp
from openduty.views.schedules.pages import detail_context


def _request(schedule_id: int, request_id: int) -> CoverRequest:
    schedule = db.get_or_404(Schedule, schedule_id)
    # Loaded with what its page shows: rendering queries nothing.
    query = select(CoverRequest).filter_by(id=request_id, schedule_id=schedule.id)
    who = (CoverRequest.schedule, CoverRequest.requester, CoverRequest.accepted_by)
    return db.first_or_404(query.options(*(joinedload(rel) for rel in who)))


def _back(schedule_id: int):
    return redirect(url_for("schedules.detail", schedule_id=schedule_id) + "#cover-requests")


@bp.post("/<int:schedule_id>/cover-requests")
def ask_cover(schedule_id: int):
    schedule = db.get_or_404(Schedule, schedule_id)
    values = request.form.to_dict()
    try:
        clean = cover_requests.clean_request(values, schedule, current_user, local_input=True)
    except ValidationError as exc:
        db.session.rollback()
        for field, message in exc.fields.items():
            flash(f"Cover request, {field.replace('_id', '')}: {message}", "error")
        ctx = detail_context(db.get_or_404(Schedule, schedule_id))
        ctx.update(cover_errors=exc.fields, cover_values=values)
        return render("schedules/detail.html", status=422, **ctx)
    _, notified = cover_requests.ask(schedule, current_user, clean)
    db.session.commit()
    flash(f"Asked for cover: {notified} {'person was' if notified == 1 else 'people were'} notified.")
    return _back(schedule.id)


def _confirm_page(cover: CoverRequest, status: int = 200, problem: str | None = None):
    return render(
        "schedules/cover_accept.html", status=status, cover=cover, schedule=cover.schedule, problem=problem,
        may_accept=cover.status == "open" and cover_requests.may_accept(current_user, cover),
    )  # fmt: skip


@bp.get("/<int:schedule_id>/cover-requests/<int:request_id>/accept")
def confirm_cover(schedule_id: int, request_id: int):
    """The request's page (the notice links here): what is asked, and an Accept button (a POST)."""
    return _confirm_page(_request(schedule_id, request_id))


@bp.post("/<int:schedule_id>/cover-requests/<int:request_id>/accept")
def accept_cover(schedule_id: int, request_id: int):
    cover = _request(schedule_id, request_id)
    try:
        cover_requests.accept(cover, current_user)
    except ApiError as exc:
        db.session.rollback()
        return _confirm_page(_request(schedule_id, request_id), exc.status, exc.message)
    db.session.commit()
    flash(f"You cover for {cover.requester.name}: the override is on the schedule.")
    day = times.local(cover.start).date().isoformat()
    return redirect(url_for("schedules.detail", schedule_id=schedule_id, date=day) + "#cover-requests")


@bp.post("/<int:schedule_id>/cover-requests/<int:request_id>/cancel")
def cancel_cover(schedule_id: int, request_id: int):
    cover = _request(schedule_id, request_id)
    try:
        cover_requests.cancel(cover, current_user)
    except ApiError as exc:
        db.session.rollback()
        if exc.status == 403:
            abort(403, exc.message)
        flash(exc.message, "error")
        return _back(schedule_id)
    db.session.commit()
    flash("Cover request cancelled.")
    return _back(schedule_id)
