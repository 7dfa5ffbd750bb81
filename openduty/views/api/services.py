"""Services API routes (and their integrations), registered on the api blueprint.

The rules (validation, changes) are openduty.services, shared with the services pages.
"""

from datetime import datetime
from typing import Any

from flask import jsonify, request, url_for
from sqlalchemy import select

from openduty import change_events, clock, heartbeats, inbound_email
from openduty import services as domain
from openduty.errors import ApiError
from openduty.extensions import db
from openduty.models import ChangeEvent, Heartbeat, Integration, Service
from openduty.models.maintenance import maintenance_ends
from openduty.views.api import api_user, bp, created, get_or_404, iso, json_body


def integration_json(integration: Integration) -> dict[str, Any]:
    """The integration; its key (and the URL holding it) in full for admins, masked for members."""
    viewer = api_user()
    email = integration.kind == "email"
    return {
        "id": integration.id,
        "kind": integration.kind,
        "name": integration.name,
        "key": integration.shown_key(viewer),
        "url": domain.integration_url(integration, viewer),
        "created_at": iso(integration.created_at),
        "heartbeat": heartbeat_json(heartbeats.of_integration(integration)),
        "address": inbound_email.address(integration, viewer) if email else None,
        "email": inbound_email.settings_of(integration) if email else None,
    }


def heartbeat_json(heartbeat: Heartbeat | None) -> dict[str, Any] | None:
    """A heartbeat integration's settings and state (`paused` is apart from `state`); None for other kinds."""
    if heartbeat is None:
        return None
    return {
        "interval_seconds": heartbeat.interval_seconds,
        "grace_seconds": heartbeat.grace_seconds,
        "paused": heartbeat.paused,
        "state": heartbeat.state,
        "last_ping_at": iso(heartbeat.last_ping_at),
        "due_at": iso(heartbeat.due_at),
    }


def change_event_json(change: ChangeEvent) -> dict[str, Any]:
    return {
        "id": change.id,
        "service_id": change.service_id,
        "summary": change.summary,
        "source": change.source,
        "timestamp": iso(change.timestamp),
        "custom_details": change.custom_details,
        "links": change.links,
        "received_at": iso(change.received_at),
    }


def service_json(service: Service, maintenance_until: datetime | None) -> dict[str, Any]:
    """The service; `maintenance_until` (read-only) is the latest end of the maintenance windows
    covering it now (openduty.models.maintenance.maintenance_ends), null when none does."""
    return {
        "id": service.id,
        "name": service.name,
        "description": service.description,
        "team_id": service.team_id,
        "escalation_policy_id": service.escalation_policy_id,
        "ack_timeout_minutes": service.ack_timeout_minutes,
        "maintenance_until": iso(maintenance_until),
        "disabled": service.disabled,
        "auto_resolve_hours": service.auto_resolve_hours,
        "group_window_minutes": service.group_window_minutes,
        "urgency": service.urgency,
        "support_hours": service.support_hours,
        "created_at": iso(service.created_at),
        "integrations": [integration_json(i) for i in service.integrations],
    }


@bp.get("/services")
def list_services():
    services = db.session.scalars(select(Service).order_by(Service.name)).all()
    ends = maintenance_ends([s.id for s in services], clock.now())
    return jsonify({"services": [service_json(s, ends.get(s.id)) for s in services]})


def _one(service: Service):
    return jsonify(service_json(service, maintenance_ends([service.id], clock.now()).get(service.id)))


# Read-only fields are named so that a client still sending one is told why (not "unknown field").
_ACCEPTED = domain.SERVICE_FIELDS + tuple(domain.READ_ONLY_FIELDS)


@bp.post("/services")
def create_service():
    service = domain.save_service(None, json_body(_ACCEPTED), actor=api_user())
    db.session.commit()
    return created(service_json(service, None), url_for("api.get_service", service_id=service.id))


@bp.get("/services/<int:service_id>")
def get_service(service_id: int):
    return _one(get_or_404(Service, service_id, "service"))


@bp.patch("/services/<int:service_id>")
def update_service(service_id: int):
    service = get_or_404(Service, service_id, "service")
    domain.save_service(service, json_body(_ACCEPTED), actor=api_user())
    db.session.commit()
    return _one(service)


@bp.delete("/services/<int:service_id>")
def delete_service(service_id: int):
    """Delete a service with its integrations and incidents."""
    db.session.delete(get_or_404(Service, service_id, "service"))
    db.session.commit()
    return "", 204


@bp.get("/services/<int:service_id>/integrations")
def list_integrations(service_id: int):
    service = get_or_404(Service, service_id, "service")
    return jsonify({"integrations": [integration_json(i) for i in service.integrations]})


@bp.post("/services/<int:service_id>/integrations")
def create_integration(service_id: int):
    """`{"kind", "name", "email"}` -> 201 `{"id", "kind", "name", "key", "url", ...}`; the key is a
    32-character secret; `email` (settings) only for email integrations."""
    service = get_or_404(Service, service_id, "service")
    integration = domain.add_integration(service, json_body(domain.INTEGRATION_FIELDS))
    db.session.commit()
    location = url_for("api.get_integration", service_id=service.id, integration_id=integration.id)
    return created(integration_json(integration), location)


def _integration(service_id: int, integration_id: int) -> Integration:
    """The integration if it belongs to the service in the URL; another service's is as unknown."""
    query = select(Integration).filter_by(id=integration_id, service_id=service_id)
    service = get_or_404(Service, service_id, "service")
    return db.one_or_404(query, description=f"{service.name} has no integration with id {integration_id}.")


@bp.get("/services/<int:service_id>/integrations/<int:integration_id>")
def get_integration(service_id: int, integration_id: int):
    return jsonify(integration_json(_integration(service_id, integration_id)))


@bp.patch("/services/<int:service_id>/integrations/<int:integration_id>")
def update_integration(service_id: int, integration_id: int):
    """`{"name", "email"}`: change the name or (email integrations) the email settings it names."""
    integration = _integration(service_id, integration_id)
    domain.update_integration(integration, json_body(("name", "email")))
    db.session.commit()
    return jsonify(integration_json(integration))


@bp.post("/services/<int:service_id>/integrations/<int:integration_id>/regenerate")
def regenerate_integration_key(service_id: int, integration_id: int):
    """A new key; the old one stops working immediately."""
    integration = _integration(service_id, integration_id)
    json_body((), optional=True)
    integration.regenerate_key()
    db.session.commit()
    return jsonify(integration_json(integration))


@bp.delete("/services/<int:service_id>/integrations/<int:integration_id>")
def delete_integration(service_id: int, integration_id: int):
    db.session.delete(_integration(service_id, integration_id))
    db.session.commit()
    return "", 204


@bp.patch("/services/<int:service_id>/integrations/<int:integration_id>/heartbeat")
def update_heartbeat(service_id: int, integration_id: int):
    """`{"interval_seconds", "grace_seconds", "paused"}` (any of them) -> the integration."""
    integration = _integration(service_id, integration_id)
    body = json_body(heartbeats.FIELDS)
    heartbeat = heartbeats.of_integration(integration)
    if heartbeat is None:
        raise ApiError(404, f"Integration {integration_id} is not a heartbeat.")
    heartbeats.update(heartbeat, body)
    db.session.commit()
    return jsonify(integration_json(integration))


@bp.get("/services/<int:service_id>/change-events")
def list_change_events(service_id: int):
    """The service's change events, newest first: `since`, `until`, `per_page` (docs/api.md)."""
    service = get_or_404(Service, service_id, "service")
    changes = change_events.for_service(service.id, **change_events.query(request.args))
    return jsonify({"change_events": [change_event_json(change) for change in changes]})
