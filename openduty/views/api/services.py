"""Services API routes (and their integrations), registered on the api blueprint.

`clean_service()` is the one validation of a service's fields; the services pages use it too.
"""

from typing import Any

from flask import current_app, jsonify, url_for
from sqlalchemy import func, select

from openduty import validation
from openduty.extensions import db
from openduty.models import EscalationPolicy, Integration, Service
from openduty.models.service import INTEGRATION_KINDS
from openduty.views.api import api_user, bp, created, get_or_404, iso, json_body

SERVICE_FIELDS = ("name", "description", "escalation_policy_id", "ack_timeout_minutes", "maintenance_until", "disabled")
INTEGRATION_FIELDS = ("kind", "name")
MAX_ACK_TIMEOUT_MINUTES = 7 * 24 * 60


def integration_json(integration: Integration) -> dict[str, Any]:
    """The integration; its key (and the URL holding it) in full for admins, masked for members."""
    viewer = api_user()
    return {
        "id": integration.id,
        "kind": integration.kind,
        "name": integration.name,
        "key": integration.shown_key(viewer),
        "url": integration_url(integration, viewer),
        "created_at": iso(integration.created_at),
    }


def integration_url(integration: Integration, viewer) -> str:
    """Where the integration's events go, with the key in it as `viewer` may see it."""
    return current_app.config["BASE_URL"].rstrip("/") + integration.shown_path(viewer)


def service_json(service: Service) -> dict[str, Any]:
    return {
        "id": service.id,
        "name": service.name,
        "description": service.description,
        "escalation_policy_id": service.escalation_policy_id,
        "ack_timeout_minutes": service.ack_timeout_minutes,
        "maintenance_until": iso(service.maintenance_until),
        "disabled": service.disabled,
        "created_at": iso(service.created_at),
        "integrations": [integration_json(i) for i in service.integrations],
    }


def _optional(value: Any, check):
    return None if value in (None, "") else check(value)


def _policy_id(value: Any) -> int:
    policy_id = validation.object_id(value, label="The escalation policy id")
    if db.session.get(EscalationPolicy, policy_id) is None:
        raise validation.FieldError(f"No escalation policy with id {policy_id}.")
    return policy_id


def _unique_name(value: Any, service: Service | None) -> str:
    name = validation.text(value, max_length=200, label="Name")
    clash = db.session.scalar(select(Service.id).where(func.lower(Service.name) == func.lower(name)))
    if clash is not None and (service is None or clash != service.id):
        raise validation.FieldError("Another service already has this name.")
    return name


def clean_service(data: dict[str, Any], service: Service | None = None, local_zone: str | None = None) -> dict:
    """Validate the service fields present in `data` (all required ones when creating).

    Returns the clean values; raises ValidationError naming every bad field. `local_zone` reads a
    maintenance time without an offset (a datetime-local form field) in that zone.
    """
    validation.refuse_unknown(data, SERVICE_FIELDS)
    checks = {
        "name": lambda: _unique_name(data.get("name"), service),
        "description": lambda: validation.text(data.get("description"), max_length=2000, required=False),
        "escalation_policy_id": lambda: _optional(data.get("escalation_policy_id"), _policy_id),
        "ack_timeout_minutes": lambda: _optional(
            data.get("ack_timeout_minutes"),
            lambda v: validation.integer(v, minimum=1, maximum=MAX_ACK_TIMEOUT_MINUTES, label="Ack timeout"),
        ),
        "maintenance_until": lambda: _optional(
            data.get("maintenance_until"),
            lambda v: validation.aware_datetime(v, label="Maintenance end", local_zone=local_zone),
        ),
        "disabled": lambda: validation.boolean(data.get("disabled", False), "Disabled"),
    }
    if service is not None:  # an update changes only what it names
        checks = {name: check for name, check in checks.items() if name in data}
    return validation.collect(checks)


def clean_integration(data: dict[str, Any]) -> dict:
    validation.refuse_unknown(data, INTEGRATION_FIELDS)

    def kind():
        if data.get("kind") not in INTEGRATION_KINDS:
            raise validation.FieldError(f"Use one of {', '.join(INTEGRATION_KINDS)}.")
        return data["kind"]

    clean = validation.collect(
        {"kind": kind, "name": lambda: validation.text(data.get("name"), max_length=200, required=False, label="Name")}
    )
    clean["name"] = clean["name"] or clean["kind"].replace("_", " ").title()
    return clean


@bp.get("/services")
def list_services():
    services = db.session.scalars(select(Service).order_by(Service.name)).all()
    return jsonify({"services": [service_json(s) for s in services]})


@bp.post("/services")
def create_service():
    service = Service(**clean_service(json_body(SERVICE_FIELDS)))
    db.session.add(service)
    db.session.commit()
    return created(service_json(service), url_for("api.get_service", service_id=service.id))


@bp.get("/services/<int:service_id>")
def get_service(service_id: int):
    return jsonify(service_json(get_or_404(Service, service_id, "service")))


@bp.patch("/services/<int:service_id>")
def update_service(service_id: int):
    service = get_or_404(Service, service_id, "service")
    for name, value in clean_service(json_body(SERVICE_FIELDS), service).items():
        setattr(service, name, value)
    db.session.commit()
    return jsonify(service_json(service))


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
    """`{"kind", "name"}` -> 201 `{"id", "kind", "name", "key", "url", ...}`; the key is a 32-character secret."""
    service = get_or_404(Service, service_id, "service")
    integration = Integration(service=service, **clean_integration(json_body(INTEGRATION_FIELDS)))
    db.session.add(integration)
    db.session.commit()
    location = url_for("api.get_integration", service_id=service.id, integration_id=integration.id)
    return created(integration_json(integration), location)


def _integration(service_id: int, integration_id: int) -> Integration:
    integration = get_or_404(Integration, integration_id, "integration")
    if integration.service_id != service_id:
        get_or_404(Integration, -1, "integration")  # same 404 as an unknown id
    return integration


@bp.get("/services/<int:service_id>/integrations/<int:integration_id>")
def get_integration(service_id: int, integration_id: int):
    return jsonify(integration_json(_integration(service_id, integration_id)))


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
