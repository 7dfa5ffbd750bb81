"""Services and their integrations: the rules shared by the services pages and the JSON API.

Each change validates its input with openduty.validation and raises `ValidationError` (naming the
fields) before changing anything; the commit is the caller's (the view owns the transaction).
"""

from typing import Any

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload, selectinload

from openduty import heartbeats, inbound_email, teams, urgency, validation
from openduty.errors import ValidationError
from openduty.extensions import db
from openduty.models import EscalationPolicy, Incident, Integration, Service, User
from openduty.models.service import INTEGRATION_KINDS

SERVICE_FIELDS = (
    "name",
    "description",
    "team_id",
    "escalation_policy_id",
    "ack_timeout_minutes",
    "disabled",
    "auto_resolve_hours",
    "group_window_minutes",
    "urgency",
    "support_hours",
)
# What the API still answers about maintenance (read-only; windows are openduty.maintenance).
READ_ONLY_FIELDS = {"maintenance_until": "Read-only: schedule maintenance with POST /api/v1/maintenance-windows."}
INTEGRATION_FIELDS = ("kind", "name", "email", *heartbeats.SETTINGS)
# An unacknowledged incident re-triggers after at most a week.
MAX_ACK_TIMEOUT_MINUTES = 7 * 24 * 60
# Auto-resolve after at most 30 days without an alert; group alerts within at most a day.
MAX_AUTO_RESOLVE_HOURS = 30 * 24
MAX_GROUP_WINDOW_MINUTES = 24 * 60


def _optional(value: Any, check):
    return None if value in (None, "") else check(value)


def _policy_id(value: Any) -> int:
    policy_id = validation.object_id(value, label="The escalation policy id")
    if db.session.get(EscalationPolicy, policy_id) is None:
        raise validation.FieldError(f"No escalation policy with id {policy_id}.")
    return policy_id


def default_policy_id() -> int | None:
    """The escalation policy a new service's form starts with (a new service should page someone):
    the one most services use, then the first by name; None only when there is no policy."""
    used = func.count(Service.id)
    query = (
        select(EscalationPolicy.id)
        .outerjoin(Service, Service.escalation_policy_id == EscalationPolicy.id)
        .group_by(EscalationPolicy.id, EscalationPolicy.name)
        .order_by(used.desc(), func.lower(EscalationPolicy.name), EscalationPolicy.id)
        .limit(1)
    )
    return db.session.scalar(query)


def clean_service(data: dict[str, Any], service: Service | None = None, actor: User | None = None) -> dict:
    """Validate the service fields present in `data` (all required ones when creating).

    Returns the clean values; raises ValidationError naming every bad field.
    """
    validation.refuse_unknown(data, SERVICE_FIELDS + tuple(READ_ONLY_FIELDS))
    checks = {
        "name": lambda: validation.unique_name(
            data.get("name"), Service, service, "Another service already has this name."
        ),
        "description": lambda: validation.text(data.get("description"), max_length=2000, required=False),
        "escalation_policy_id": lambda: _optional(data.get("escalation_policy_id"), _policy_id),
        "ack_timeout_minutes": lambda: _optional(
            data.get("ack_timeout_minutes"),
            lambda v: validation.integer(v, minimum=1, maximum=MAX_ACK_TIMEOUT_MINUTES, label="Ack timeout"),
        ),
        "disabled": lambda: validation.boolean(data.get("disabled", False), "Disabled"),
        **_intake_checks(data),
        "urgency": lambda: urgency.clean_setting(data.get("urgency", "by_severity")),
        "support_hours": lambda: urgency.clean_support_hours(data.get("support_hours")),
    }
    if service is not None:  # an update changes only what it names
        checks = {name: check for name, check in checks.items() if name in data}
    read_only = {name: _refuse(message) for name, message in READ_ONLY_FIELDS.items() if name in data}
    clean = validation.collect({**checks, **teams.owner_check(data, actor, service), **read_only})
    _needs_support_hours(clean, service)
    return clean


def _needs_support_hours(clean: dict, service: Service | None) -> None:
    """Paging by support hours needs them set (in this change or before it)."""
    setting = clean.get("urgency", service.urgency if service is not None else None)
    hours = clean["support_hours"] if "support_hours" in clean else service and service.support_hours
    if setting == "support_hours" and not hours:
        raise ValidationError({"support_hours": "Set the support hours (days, start, end, time zone) to page by them."})


def _intake_checks(data: dict[str, Any]) -> dict:
    """Auto-resolve and time-window grouping (openduty.event_intake): empty turns them off."""
    return {
        "auto_resolve_hours": lambda: _optional(
            data.get("auto_resolve_hours"),
            lambda v: validation.integer(v, minimum=1, maximum=MAX_AUTO_RESOLVE_HOURS, label="Auto-resolve"),
        ),
        "group_window_minutes": lambda: _optional(
            data.get("group_window_minutes"),
            lambda v: validation.integer(v, minimum=1, maximum=MAX_GROUP_WINDOW_MINUTES, label="Grouping window"),
        ),
    }


def _refuse(message: str):
    def check():
        raise validation.FieldError(message)

    return check


def save_service(service: Service | None, data: dict[str, Any], actor: User | None = None) -> Service:
    """Create a service (`service` None) or change the fields `data` names; ValidationError if any is bad.
    `actor` (the caller) decides which teams it may go to (openduty.teams.team_choice)."""
    clean = clean_service(data, service, actor=actor)
    before = (service.urgency, service.support_hours) if service is not None else None
    if service is None:
        service = Service(**clean)
        db.session.add(service)
    else:
        for name, value in clean.items():
            setattr(service, name, value)
    after = (service.urgency, service.support_hours)
    if "support_hours" in (after[0], before and before[0]) and before != after:
        db.session.flush()
        urgency.arm_support_hours(service)  # a new setting: its next start, or no timer
    return service


def _name(data: dict[str, Any]) -> str:
    return validation.text(data.get("name"), max_length=200, required=False, label="Name")


def _email_settings(kind: str | None, value: Any, current: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """An email integration's settings (inbound_email.clean_settings) with each bad field named
    `email.<field>`; None for other kinds, which may not have any."""
    if kind != "email":
        if value is not None:
            raise ValidationError({"email": "Only email integrations have email settings."})
        return None
    try:
        return inbound_email.clean_settings({} if value is None else value, current)
    except ValidationError as exc:
        raise ValidationError({f"email.{name}": message for name, message in exc.fields.items()}) from exc


def clean_integration(data: dict[str, Any]) -> dict:
    """Validate an integration's `kind`, `name` (defaults to the kind's title) and, for an email
    integration, its `email` settings; ValidationError names every bad field."""
    validation.refuse_unknown(data, INTEGRATION_FIELDS)

    def kind():
        if data.get("kind") not in INTEGRATION_KINDS:
            raise validation.FieldError(f"Use one of {', '.join(INTEGRATION_KINDS)}.")
        return data["kind"]

    errors: dict[str, str] = {}
    try:
        clean = validation.collect({"kind": kind, "name": lambda: _name(data)})
    except ValidationError as exc:
        errors, clean = exc.fields, {}
    try:
        clean["email"] = _email_settings(data.get("kind"), data.get("email"))
    except ValidationError as exc:
        errors.update(exc.fields)
    if errors:
        raise ValidationError(errors)
    clean["name"] = clean["name"] or clean["kind"].replace("_", " ").title()
    return clean


def add_integration(service: Service, data: dict[str, Any]) -> Integration:
    """A new integration (with a fresh key) on `service`; ValidationError if `data` is bad. A
    heartbeat's interval and grace go to its own row (openduty.heartbeats), as do an email
    integration's settings (openduty.inbound_email)."""
    clean = clean_integration(data)
    email_settings = clean.pop("email")
    heartbeat = heartbeats.clean_settings(data) if clean["kind"] == "heartbeat" else heartbeats.refuse_settings(data)
    integration = Integration(service=service, **clean)  # checked first: this adds it to the session
    if email_settings is not None:
        inbound_email.save_settings(integration, email_settings)
    db.session.add(integration)
    if heartbeat is not None:
        heartbeats.add(integration, heartbeat)
    return integration


def update_integration(integration: Integration, data: dict[str, Any]) -> Integration:
    """Change an integration's `name` and (email integrations) `email` settings that `data` names."""
    validation.refuse_unknown(data, ("name", "email"))
    checks: dict[str, Any] = {}
    if "name" in data:
        checks["name"] = lambda: _name(data) or integration.name
    errors: dict[str, str] = {}
    try:
        clean = validation.collect(checks)
    except ValidationError as exc:
        errors, clean = exc.fields, {}
    if "email" in data:
        try:
            current = inbound_email.settings_of(integration) if integration.kind == "email" else None
            clean["email"] = _email_settings(integration.kind, data["email"], current)
        except ValidationError as exc:
            errors.update(exc.fields)
    if errors:
        raise ValidationError(errors)
    email_settings = clean.pop("email", None)
    if email_settings is not None:
        inbound_email.save_settings(integration, email_settings)
    for name, value in clean.items():
        setattr(integration, name, value)
    return integration


def integration_url(integration: Integration, viewer) -> str:
    """Where the integration's events go, with the key in it as `viewer` may see it (a mailto: URL
    for an email integration)."""
    if integration.kind == "email":
        return "mailto:" + inbound_email.address(integration, viewer)
    return current_app.config["BASE_URL"].rstrip("/") + integration.shown_path(viewer)


def all_services() -> list[Service]:
    """Every service by name, with its policy and integrations (the list shows both)."""
    query = select(Service).options(
        joinedload(Service.escalation_policy),
        selectinload(Service.integrations).selectinload(Integration.email_settings),
    )
    return list(db.session.scalars(query.order_by(Service.name)))


def open_counts() -> dict[int, int]:
    """Open (unresolved) incidents per service id, for the services list."""
    query = select(Incident.service_id, func.count()).where(Incident.status != "resolved").group_by(Incident.service_id)
    return dict(db.session.execute(query).all())
