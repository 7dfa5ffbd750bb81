"""Services pages: list, detail with integrations (keys, URLs, config snippets), create / edit.

Anyone logged in can look; only admins change things. The rules are openduty.services, shared
with the API.
"""

from flask import Blueprint, abort, current_app, flash, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from openduty import (
    change_events,
    clock,
    escalation,
    event_intake,
    heartbeats,
    inbound_email,
    maintenance,
    oncall,
    reachability,
    teams,
    urgency,
    validation,
)
from openduty import services as domain
from openduty.errors import ValidationError
from openduty.extensions import db
from openduty.models import EscalationPolicy, Incident, Integration, Service
from openduty.models.maintenance import maintenance_ends
from openduty.models.service import INTEGRATION_KIND_LABELS, SERVICE_URGENCY_LABELS
from openduty.views import confirm_page, done, get_or_404, render, times

INTAKE_FIELDS = ("auto_resolve_hours", "group_window_minutes")  # templates/services/_intake_settings.html

bp = Blueprint("services", __name__, url_prefix="/services")


@bp.get("")
def index():
    services = domain.all_services()
    return render(
        "services/index.html",
        services=services,
        open_counts=domain.open_counts(),
        in_maintenance=maintenance_ends([s.id for s in services], clock.now()),
    )


@bp.get("/<int:service_id>")
def show(service_id: int):
    return _show_page(service_id)


def _show_page(service_id: int, status: int = 200, **context):
    """The service page; a refused form re-renders it (422) with its errors in `context`."""
    # With each integration's email settings: inbound_email.shown reads them (no lazy load per integration).
    integrations = selectinload(Service.integrations).selectinload(Integration.email_settings)
    service = get_or_404(Service, service_id, options=[integrations], populate_existing=True)
    policy = service.escalation_policy
    windows = maintenance.windows_by_state(clock.now(), service_id=service.id)
    return render(
        "services/show.html",
        status=status,
        heartbeats=heartbeats.of_integrations([i.id for i in service.integrations]),
        changes=change_events.for_service(service.id),
        **{"minutes_error": None, **context},
        service=service,
        windows=windows,
        may_change_window=lambda window: maintenance.may_manage(current_user, window),
        gaps=oncall.policy_gap_warnings(service.escalation_policy),
        reach=reachability.policy_warnings(policy),
        kinds=INTEGRATION_KIND_LABELS,
        # Keys (and URLs holding them) in full for admins, masked for members.
        url_of=lambda integration: domain.integration_url(integration, current_user),
        key_of=lambda integration: integration.shown_key(current_user),
        base_url=current_app.config["BASE_URL"].rstrip("/"),
        plan=escalation.preview(policy, clock.now()) if policy else None,
        suppressed=event_intake.suppressed_alerts(service.id),
        email_integrations=inbound_email.shown(service.integrations, current_user),
        email_defaults=inbound_email.DEFAULT_SETTINGS,
        urgency_text=urgency.describe_setting(service),
    )


def _form_data() -> dict:
    form = request.form
    return {
        "name": form.get("name", ""),
        "description": form.get("description", ""),
        "team_id": form.get("team_id", ""),
        "escalation_policy_id": form.get("escalation_policy_id", ""),
        "ack_timeout_minutes": form.get("ack_timeout_minutes", ""),
        "disabled": "disabled" in form,
        **{name: form.get(name, "") for name in INTAKE_FIELDS},
        **_urgency_form(form),
    }


def _urgency_form(form) -> dict:
    """The urgency fields (templates/services/_urgency_fields.html), if the form has them: support
    hours are kept only when the service pages by them."""
    if "urgency" not in form:
        return {}
    setting = form["urgency"]
    hours = {
        "time_zone": form.get("support_time_zone", "").strip(),
        "days": form.getlist("support_days"),
        "start": form.get("support_start", ""),
        "end": form.get("support_end", ""),
    }
    return {"urgency": setting, "support_hours": hours if setting == "support_hours" else None}


def _render_form(service: Service | None, values: dict, errors: dict | None = None, status: int = 200):
    policies = db.session.scalars(select(EscalationPolicy).order_by(EscalationPolicy.name)).all()
    return render(
        "services/form.html",
        service=service,
        values=values,
        errors=errors or {},
        policies=policies,
        team_options=teams.choices_for(current_user),
        status=status,
        urgencies=SERVICE_URGENCY_LABELS,
        time_zones=validation.time_zone_names(),
    )


def _values_of(service: Service) -> dict:
    return {
        "name": service.name,
        "description": service.description,
        "team_id": service.team_id or "",
        "escalation_policy_id": service.escalation_policy_id or "",
        "ack_timeout_minutes": service.ack_timeout_minutes or "",
        "disabled": service.disabled,
        **{name: getattr(service, name) or "" for name in INTAKE_FIELDS},
        "urgency": service.urgency,
        "support_hours": service.support_hours,
    }


def _save(service: Service | None):
    values = _form_data()
    try:
        service = domain.save_service(service, values, actor=current_user)
    except ValidationError as exc:
        return _render_form(service, values, exc.fields, status=422)
    db.session.commit()
    flash(f"Service {service.name} saved.")
    return redirect(url_for("services.show", service_id=service.id))


@bp.route("/new", methods=["GET", "POST"])
def create():
    if request.method == "POST":
        return _save(None)
    values = {"disabled": False, "urgency": "by_severity", "escalation_policy_id": domain.default_policy_id() or ""}
    return _render_form(None, values)


@bp.route("/<int:service_id>/edit", methods=["GET", "POST"])
def edit(service_id: int):
    service = get_or_404(Service, service_id)
    if request.method == "POST":
        return _save(service)
    return _render_form(service, _values_of(service))


@bp.post("/<int:service_id>/maintenance")
def maintenance_now(service_id: int):
    """ "Start now for N minutes": a maintenance window of this service alone (openduty.maintenance)."""
    service = get_or_404(Service, service_id)
    try:
        window = maintenance.start_now(service, request.form.get("minutes", ""), actor=current_user)
    except ValidationError as exc:
        db.session.rollback()
        return _show_page(service_id, 422, minutes_error=exc.fields.get("minutes") or next(iter(exc.fields.values())))
    db.session.commit()
    flash(f"Maintenance started on {service.name} until {times.exact(window.end)}: nobody is paged.")
    return redirect(url_for("services.show", service_id=service_id))


@bp.route("/<int:service_id>/delete", methods=["GET", "POST"])
def delete(service_id: int):
    """Delete a service with its integrations and incidents: GET asks, POST deletes."""
    service = get_or_404(Service, service_id)
    if request.method == "GET":
        incidents = db.session.scalar(select(func.count()).where(Incident.service_id == service.id))
        return confirm_page(
            f"Delete the service {service.name}?",
            "Delete service",
            url_for("services.show", service_id=service.id),
            f"Its integrations and its {incidents} incident{'' if incidents == 1 else 's'} are deleted with it; "
            "monitoring that still sends to its integration keys is refused.",
            "This cannot be undone.",
        )
    db.session.delete(service)
    db.session.commit()
    flash(f"Service {service.name} deleted with its integrations and incidents.")
    return done(url_for("services.index"))


@bp.post("/<int:service_id>/integrations")
def add_integration(service_id: int):
    service = get_or_404(Service, service_id)
    values = {name: request.form.get(name, "") for name in domain.INTEGRATION_FIELDS if name != "email"}
    if values["kind"] == "email":
        values["email"] = inbound_email.form_settings(request.form)
    try:
        integration = domain.add_integration(service, values)
    except ValidationError as exc:  # checked before anything changed
        return _show_page(service_id, 422, integration_errors=exc.fields, integration_values=values)
    db.session.commit()
    flash(f"Integration {integration.name} added; its key and URL are below.")
    return redirect(url_for("services.show", service_id=service_id) + f"#integration-{integration.id}")


def _integration_or_404(service_id: int, integration_id: int) -> Integration:
    """The integration if it belongs to the service in the URL; another service's is as unknown."""
    query = select(Integration).filter_by(id=integration_id, service_id=service_id)
    service = db.get_or_404(Service, service_id)
    return db.one_or_404(query, description=f"{service.name} has no integration with id {integration_id}.")


@bp.route("/<int:service_id>/integrations/<int:integration_id>/email", methods=["GET", "POST"])
def email_settings(service_id: int, integration_id: int):
    """An email integration's settings: dedup source and resolve pattern."""
    integration = _integration_or_404(service_id, integration_id)
    if integration.kind != "email":
        abort(404, description="Only email integrations have email settings.")
    values, errors, status = inbound_email.settings_of(integration), {}, 200
    if request.method == "POST":
        values = inbound_email.form_settings(request.form)
        try:
            domain.update_integration(integration, {"email": values})
        except ValidationError as exc:
            errors = {name.removeprefix("email."): message for name, message in exc.fields.items()}
            status = 422
        else:
            db.session.commit()
            flash(f"Email settings of {integration.name} saved.")
            return redirect(url_for("services.show", service_id=service_id) + f"#integration-{integration.id}")
    address = inbound_email.address(integration, current_user)
    return render(
        "services/email_settings.html",
        integration=integration,
        service=integration.service,
        address=address,
        values=values,
        errors=errors,
        status=status,
    )


def _integration_back(integration: Integration) -> str:
    return url_for("services.show", service_id=integration.service_id) + f"#integration-{integration.id}"


@bp.route("/<int:service_id>/integrations/<int:integration_id>/regenerate", methods=["GET", "POST"])
def regenerate_key(service_id: int, integration_id: int):
    """Give an integration a new key: GET asks, POST regenerates (the old key stops working)."""
    integration = _integration_or_404(service_id, integration_id)
    if request.method == "GET":
        return confirm_page(
            f"Regenerate the key of {integration.name}?",
            "Regenerate key",
            _integration_back(integration),
            "The current key stops working at once: every sender using it is refused until it is given the new key.",
        )
    integration.regenerate_key()
    db.session.commit()
    flash(f"New key for {integration.name}; the old key no longer works. Update the sender.", "warning")
    return done(_integration_back(integration))


@bp.route("/<int:service_id>/integrations/<int:integration_id>/delete", methods=["GET", "POST"])
def delete_integration(service_id: int, integration_id: int):
    """Delete an integration: GET asks, POST deletes (its key stops working)."""
    integration = _integration_or_404(service_id, integration_id)
    if request.method == "GET":
        return confirm_page(
            f"Delete the integration {integration.name}?",
            "Delete integration",
            _integration_back(integration),
            "Its key stops working at once: every sender using it is refused. Incidents it opened stay.",
        )
    db.session.delete(integration)
    db.session.commit()
    flash(f"Integration {integration.name} deleted; its key no longer works.")
    return done(url_for("services.show", service_id=service_id))


@bp.post("/<int:service_id>/integrations/<int:integration_id>/heartbeat")
def update_heartbeat(service_id: int, integration_id: int):
    """A heartbeat's interval and grace, or (a `paused` field) pause / resume it."""
    integration = _integration_or_404(service_id, integration_id)
    heartbeat = heartbeats.of_integration(integration)
    if heartbeat is None:
        abort(404, "This integration is not a heartbeat.")
    names = ("paused",) if "paused" in request.form else heartbeats.SETTINGS
    values = {name: request.form.get(name, "") for name in names}
    try:
        heartbeats.update(heartbeat, values)
    except ValidationError as exc:  # checked before anything changed
        return _show_page(service_id, 422, heartbeat_errors={integration.id: exc.fields}, heartbeat_values=values)
    db.session.commit()
    if "paused" in values:
        done = "paused: it will not fire until resumed" if heartbeat.paused else "resumed: the next ping arms it"
    else:
        done = "saved"
    flash(f"Heartbeat {integration.name} {done}.")
    return redirect(url_for("services.show", service_id=service_id) + f"#integration-{integration.id}")
