"""Escalation actions on incidents: POST /incidents/<id>/escalate | snooze | reassign (each answers
the incident, flat, like GET /incidents/<id>); and POST /contact-methods/<id>/test (202: queued)."""

from typing import Any

from flask import jsonify

from openduty import escalation, validation
from openduty import incidents as domain
from openduty.access import may_manage
from openduty.errors import ApiError
from openduty.extensions import db
from openduty.models import ContactMethod, Incident, User
from openduty.views.api import api_user, bp, get_or_404, json_body
from openduty.views.api.incidents import incident_detail


def _act(incident: Incident, action) -> Any:
    try:
        action()
    except domain.ActionError as exc:
        raise ApiError(409, str(exc)) from exc
    db.session.commit()
    return jsonify(incident_detail(incident))


@bp.post("/incidents/<int:incident_id>/escalate")
def escalate_incident(incident_id: int):
    incident = get_or_404(Incident, incident_id, "incident")
    json_body((), optional=True)
    return _act(incident, lambda: domain.escalate_now(incident, by=api_user(), channel="api"))


@bp.post("/incidents/<int:incident_id>/snooze")
def snooze_incident(incident_id: int):
    incident = get_or_404(Incident, incident_id, "incident")
    body = json_body(("minutes",))
    clean = validation.collect(
        {
            "minutes": lambda: validation.integer(
                body.get("minutes"), minimum=1, maximum=domain.SNOOZE_MAX_MINUTES, label="minutes"
            )
        }
    )
    return _act(incident, lambda: domain.snooze(incident, clean["minutes"], by=api_user(), channel="api"))


def _active_user(value: Any) -> User:
    user_id = validation.object_id(value, label="user_id")
    user = db.session.get(User, user_id)
    if user is None:
        raise validation.FieldError(f"No user with id {user_id}.")
    if not user.active:
        raise validation.FieldError(f"{user.name} is deactivated and cannot be paged.")
    return user


@bp.post("/incidents/<int:incident_id>/reassign")
def reassign_incident(incident_id: int):
    incident = get_or_404(Incident, incident_id, "incident")
    body = json_body(("user_id",))
    clean = validation.collect({"user_id": lambda: _active_user(body.get("user_id"))})
    return _act(incident, lambda: domain.reassign(incident, clean["user_id"], by=api_user(), channel="api"))


@bp.post("/contact-methods/<int:method_id>/test")
def test_contact_method(method_id: int):
    method = get_or_404(ContactMethod, method_id, "contact method")
    json_body((), optional=True)
    user = api_user()
    if not may_manage(user, method.user_id):
        raise ApiError(403, "You can test only your own contact methods.")
    try:
        notification = escalation.send_test(method, by=user)
    except escalation.TestLimitReached as exc:
        raise ApiError(429, str(exc), retry_after=exc.retry_after) from exc
    db.session.commit()
    return jsonify({"notification_id": notification.id, "status": "queued"}), 202
