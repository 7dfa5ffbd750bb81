"""Incidents API routes, registered on the api blueprint.

`POST .../escalate|snooze|reassign` live with the escalation engine (views/api/escalation.py) and
answer the same `incident_detail` as every other single-incident endpoint.
"""

from typing import Any
from urllib.parse import urlencode

from flask import request, url_for

from openduty import incident_lists as lists
from openduty import incidents as domain
from openduty import urgency, validation
from openduty.errors import ApiError, ValidationError
from openduty.extensions import db
from openduty.models import Incident, LogEntry
from openduty.views.api import api_user, bp, created, get_or_404, iso, json_body
from openduty.views.api.users import user_ref


def incident_summary(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "number": incident.number,
        "status": incident.status,
        "summary": incident.summary,
        "severity": incident.severity,
        "urgency": incident.urgency,
        "service_id": incident.service_id,
        "dedup_key": incident.dedup_key,
        "alert_count": incident.alert_count,
        "created_at": iso(incident.created_at),
        "acknowledged_at": iso(incident.acknowledged_at),
        "resolved_at": iso(incident.resolved_at),
    }


def incident_detail(incident: Incident) -> dict[str, Any]:
    return {
        **incident_summary(incident),
        "service": {"id": incident.service.id, "name": incident.service.name},
        "source": incident.source,
        "details": incident.details,
        "last_event_at": iso(incident.last_event_at),
        "acknowledged_by": user_ref(incident.acknowledged_by),
        "resolved_by": user_ref(incident.resolved_by),
        "assigned_to": user_ref(incident.assigned_to),
        "escalation_level": incident.escalation_level,
        "escalation_loop": incident.escalation_loop,
        "next_escalation_at": iso(incident.next_escalation_at),
        "snoozed_until": iso(incident.snoozed_until),
    }


def log_entry_json(entry: LogEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": iso(entry.at),
        "kind": entry.kind,
        "message": entry.message,
        "actor": user_ref(entry.actor),
        "channel": entry.channel,
        "data": entry.data,
    }


# What a `next` link keeps of the request (beside the new cursor).
LIST_ARGS = ("status", "service_id", "team_id", "urgency", "q", "assigned_to", "per_page", "total")


@bp.get("/incidents")
def list_incidents():
    """Newest first. `status` is open (default: triggered + acknowledged), triggered, acknowledged,
    resolved or all; `service_id`, `team_id` (a team's id, `mine` for the caller's teams, or `all`, the
    default), `urgency` (high or low), `q` (text or #number), `per_page` (<= 100); `cursor` (from the
    `next` link) or `page` for later pages; `total=true` to count every match."""
    try:
        filters = lists.parse_filters(request.args)
    except lists.BadCursor as exc:
        raise ApiError(400, str(exc).partition(": ")[2], fields={"cursor": "start again without it"}) from exc
    except validation.FieldError as exc:
        name, _, message = str(exc).partition(": ")
        raise ValidationError({name: message}) from exc
    try:
        with_total = validation.boolean(request.args.get("total", ""))
    except validation.FieldError as exc:
        raise ValidationError({"total": "use true or false."}) from exc
    if request.args.get("assigned_to") == "me":
        filters.assigned_to_id = api_user().id
    lists.for_viewer(filters, api_user())
    page = lists.page_of(filters)
    next_url = None
    if page.next_cursor is not None:
        kept = [(name, request.args[name]) for name in LIST_ARGS if request.args.get(name)]
        next_url = url_for("api.list_incidents") + "?" + urlencode([*kept, ("cursor", page.next_cursor.encode())])
    body = {
        "incidents": [incident_summary(i) for i in page.incidents],
        "page": None if filters.cursor else filters.page,
        "per_page": filters.per_page,
        "total": lists.count(filters, cap=None) if with_total else None,
        "more": next_url is not None,
        "next": next_url,
    }
    return body, 200, {"Link": f'<{next_url}>; rel="next"'} if next_url else {}


@bp.get("/incidents/<int:incident_id>")
def get_incident(incident_id: int):
    return incident_detail(get_or_404(Incident, incident_id))


@bp.get("/incidents/<int:incident_id>/log")
def incident_log(incident_id: int):
    incident = get_or_404(Incident, incident_id)
    return {"log_entries": [log_entry_json(e) for e in incident.log_entries]}


@bp.get("/incidents/<int:incident_id>/log/<int:entry_id>")
def get_log_entry(incident_id: int, entry_id: int):
    incident = get_or_404(Incident, incident_id)
    entry = db.session.get(LogEntry, entry_id)
    if entry is None or entry.incident_id != incident.id:
        raise ApiError(404, f"Incident {incident_id} has no log entry with id {entry_id}.")
    return log_entry_json(entry)


def _act(incident_id: int, action: str):
    get_or_404(Incident, incident_id)
    json_body((), optional=True)
    [incident] = domain.lock([incident_id])
    if action == "acknowledge" and incident.status == "resolved":
        raise ApiError(409, f"Incident #{incident.number} is already resolved; there is nothing to acknowledge.")
    changed = domain.act(incident, action, api_user(), channel="api")
    db.session.commit()
    return {**incident_detail(incident), "changed": changed}


@bp.post("/incidents/<int:incident_id>/acknowledge")
def acknowledge_incident(incident_id: int):
    """Acknowledge (200 with `changed: false` if it was already acknowledged; 409 if resolved)."""
    return _act(incident_id, "acknowledge")


@bp.post("/incidents/<int:incident_id>/resolve")
def resolve_incident(incident_id: int):
    """Resolve (200 with `changed: false` if it was already resolved)."""
    return _act(incident_id, "resolve")


@bp.post("/incidents/<int:incident_id>/urgency")
def set_incident_urgency(incident_id: int):
    """`{"urgency": "high"|"low"}`: raising pages the current level by the high-urgency rules at once,
    lowering re-plans it by the low-urgency rules; 200 with `changed: false` if it had it already,
    409 if the incident is resolved."""
    incident = get_or_404(Incident, incident_id)
    body = json_body(("urgency",))
    clean = validation.collect({"urgency": lambda: urgency.clean_urgency(body.get("urgency"))})
    try:
        changed = urgency.change_urgency(incident, clean["urgency"], by=api_user(), channel="api")
    except domain.ActionError as exc:
        raise ApiError(409, str(exc)) from exc
    db.session.commit()
    return {**incident_detail(incident), "changed": changed}


@bp.post("/incidents/<int:incident_id>/notes")
def add_note(incident_id: int):
    """Add `{"note": "..."}` (<= 5000 characters) to the timeline; 201 with the new log entry."""
    incident = get_or_404(Incident, incident_id)
    body = json_body(("note",))
    clean = validation.collect({"note": lambda: validation.text(body.get("note"), max_length=5000, label="Note")})
    entry = domain.add_note(incident, clean["note"], by=api_user(), channel="api")
    db.session.commit()
    return created(log_entry_json(entry), url_for("api.get_log_entry", incident_id=incident.id, entry_id=entry.id))
