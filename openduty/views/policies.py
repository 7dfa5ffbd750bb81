"""Escalation policy pages: list, create, edit levels (reorder with htmx, no reload), preview; and
the escalation actions on an incident page (escalate now, snooze, reassign).

Everyone can read policies; only admins change them. Every change works as a plain POST +
redirect; with htmx the levels block is swapped in place and `policy-changed` refreshes the preview.
"""

from flask import Blueprint, flash, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from openduty import clock, escalation, incidents, oncall, reachability, teams, users, validation
from openduty import policies as domain
from openduty.errors import ApiError
from openduty.extensions import db
from openduty.models import EscalationLevel, EscalationPolicy, EscalationTarget, Incident, Schedule, User
from openduty.views import confirm_page, done, get_or_404, is_htmx, render

bp = Blueprint("policies", __name__)


def _policy_or_404(policy_id: int) -> EscalationPolicy:
    return get_or_404(EscalationPolicy, policy_id, "escalation policy")


def _level_or_404(policy: EscalationPolicy, level_id: int) -> EscalationLevel:
    query = select(EscalationLevel).filter_by(id=level_id, policy_id=policy.id)
    return db.one_or_404(query, description="No such level in this policy.")


def _show(policy: EscalationPolicy, status: int = 200, errors: dict | None = None, block: str | None = None):
    """The policy page (or its levels block for htmx), with the data its template shows."""
    policy = domain.with_levels(policy)
    context = {
        "policy": policy,
        "errors": errors or {},
        "form": request.form,
        "users": users.active_users(),
        "schedules": db.session.scalars(select(Schedule).order_by(func.lower(Schedule.name))).all(),
        "team_options": teams.choices_for(current_user),
    }
    if not (block and is_htmx()):  # the rest of the page (the preview refreshes on its own)
        context.update(
            services=domain.services_using(policy),
            plan=escalation.preview(policy, clock.now()),
            gaps=oncall.policy_gap_warnings(policy),
            reach=reachability.policy_warnings(policy),
        )
    return render("policies/show.html", block=block, status=status, **context)


def _changed(policy: EscalationPolicy, message: str):
    """After a change: the levels block for htmx (and a refresh of the preview), else a redirect."""
    db.session.commit()
    if is_htmx():
        response = _show(policy, block="levels")
        response.headers["HX-Trigger"] = "policy-changed"
        return response
    flash(message)
    return redirect(url_for("policies.show", policy_id=policy.id), code=303)


def _invalid(policy: EscalationPolicy | None, errors: dict):
    db.session.rollback()
    if policy is None:
        return _new_page(status=422, errors=errors)
    return _show(policy, status=422, errors=errors, block="levels" if is_htmx() else None)


@bp.get("/policies")
def index():
    return render("policies/index.html", policies=domain.all_policies())


def _new_page(status: int = 200, errors: dict | None = None):
    """The new-policy form (its own page, as for every other kind of object); levels come after."""
    context = {"errors": errors or {}, "form": request.form, "team_options": teams.choices_for(current_user)}
    return render("policies/new.html", status=status, **context)


@bp.get("/policies/new")
def new():
    return _new_page()


def _save(policy: EscalationPolicy | None) -> EscalationPolicy:
    """Create or change a policy from the settings form; ValidationError names the bad fields."""
    form = request.form
    data = {
        "name": form.get("name"),
        "description": form.get("description"),
        "repeat_count": form.get("repeat_count") or "0",
        "team_id": form.get("team_id", ""),
    }
    return domain.save_policy(policy, data, repeat_label="Repeat count", actor=current_user)


@bp.post("/policies")
def create():
    try:
        policy = _save(None)
    except validation.ValidationError as exc:
        return _invalid(None, exc.fields)
    db.session.commit()
    flash(f"Created {policy.name}. Add its first level below.")
    return redirect(url_for("policies.show", policy_id=policy.id), code=303)


@bp.get("/policies/<int:policy_id>")
def show(policy_id: int):
    return _show(_policy_or_404(policy_id))


@bp.get("/policies/<int:policy_id>/preview")
def preview(policy_id: int):
    policy = _policy_or_404(policy_id)
    plan, reach = escalation.preview(policy, clock.now()), reachability.policy_warnings(policy)
    return render("policies/_preview.html", policy=policy, plan=plan, reach=reach)


@bp.post("/policies/<int:policy_id>")
def update(policy_id: int):
    policy = _policy_or_404(policy_id)
    try:
        _save(policy)
    except validation.ValidationError as exc:
        return _invalid(policy, exc.fields)
    db.session.commit()
    flash("Saved.")
    return redirect(url_for("policies.show", policy_id=policy.id), code=303)


@bp.route("/policies/<int:policy_id>/delete", methods=["GET", "POST"])
def delete(policy_id: int):
    """Delete a policy no service uses: GET asks, POST deletes."""
    policy = _policy_or_404(policy_id)
    if request.method == "GET":
        used = [service.name for service in domain.services_using(policy)]
        return confirm_page(
            f"Delete the escalation policy {policy.name}?",
            "Delete policy",
            url_for("policies.show", policy_id=policy.id),
            "Its levels and targets are deleted with it. This cannot be undone.",
            warning=f"Services use this policy ({', '.join(used)}): give them another policy first." if used else None,
        )
    try:
        domain.delete_policy(policy)
    except ApiError as exc:
        flash(exc.message, "error")
        return done(url_for("policies.show", policy_id=policy.id), code=303)
    db.session.commit()
    flash(f"Deleted {policy.name}.")
    return done(url_for("policies.index"), code=303)


@bp.post("/policies/<int:policy_id>/levels")
def add_level(policy_id: int):
    policy = _policy_or_404(policy_id)
    try:
        domain.add_level(policy, request.form.get("delay_minutes"), request.form.get("target"))
    except validation.ValidationError as exc:
        return _invalid(policy, exc.fields)
    return _changed(policy, f"Added level {len(policy.levels)}.")


@bp.post("/policies/<int:policy_id>/levels/<int:level_id>")
def update_level(policy_id: int, level_id: int):
    policy = _policy_or_404(policy_id)
    level = _level_or_404(policy, level_id)
    try:
        level.delay_minutes = domain.delay(request.form.get("delay_minutes"))
    except validation.FieldError as exc:
        return _invalid(policy, {f"level-{level.id}.delay_minutes": str(exc)})
    return _changed(policy, "Saved the delay.")


@bp.post("/policies/<int:policy_id>/levels/<int:level_id>/move")
def move_level(policy_id: int, level_id: int):
    policy = _policy_or_404(policy_id)
    level = _level_or_404(policy, level_id)
    direction = request.form.get("direction")
    if direction not in ("up", "down"):
        return _invalid(policy, {f"level-{level.id}": "Move a level up or down."})
    index = domain.move_level(policy, level, direction)
    return _changed(policy, f"Moved level {index + 1} {direction}.")


@bp.route("/policies/<int:policy_id>/levels/<int:level_id>/delete", methods=["GET", "POST"])
def delete_level(policy_id: int, level_id: int):
    """Delete a level: GET asks (without JavaScript), POST deletes."""
    policy = _policy_or_404(policy_id)
    level = _level_or_404(policy, level_id)
    if request.method == "GET":
        number = [each.id for each in policy.levels].index(level.id) + 1
        return confirm_page(
            f"Delete level {number} of {policy.name}?",
            "Delete level",
            url_for("policies.show", policy_id=policy.id),
            "Its targets are no longer paged; the levels after it move up.",
        )
    domain.delete_level(policy, level)
    return _changed(policy, "Deleted the level.")


@bp.post("/policies/<int:policy_id>/levels/<int:level_id>/targets")
def add_target(policy_id: int, level_id: int):
    policy = _policy_or_404(policy_id)
    level = _level_or_404(policy, level_id)
    try:
        domain.add_target(level, domain.target_from_choice(request.form.get("target")))
    except validation.FieldError as exc:
        return _invalid(policy, {f"level-{level.id}.target": str(exc)})
    return _changed(policy, "Added the target.")


@bp.post("/policies/<int:policy_id>/targets/<int:target_id>/delete")
def delete_target(policy_id: int, target_id: int):
    policy = _policy_or_404(policy_id)
    query = (
        select(EscalationTarget)
        .join(EscalationLevel)
        .where(EscalationTarget.id == target_id, EscalationLevel.policy_id == policy.id)
    )
    target = db.one_or_404(query)
    try:
        domain.remove_target(target)
    except validation.FieldError as exc:
        return _invalid(policy, {f"level-{target.level.id}.target": str(exc)})
    return _changed(policy, "Removed the target.")


# --- Escalation actions on an incident (buttons in templates/policies/_incident_actions.html) ---


def _incident_page(incident: Incident):
    return redirect(url_for("incidents.show", incident_id=incident.id), code=303)


def _incident_action(incident: Incident, action, done: str):
    try:
        action()
    except incidents.ActionError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return _incident_page(incident)
    db.session.commit()
    flash(done)
    response = _incident_page(incident)
    response.headers["HX-Trigger"] = "incidents-changed"
    return response


@bp.post("/incidents/<int:incident_id>/escalate")
def escalate_incident(incident_id: int):
    incident = get_or_404(Incident, incident_id)
    return _incident_action(
        incident,
        lambda: incidents.escalate_now(incident, by=current_user, channel="web"),
        f"Incident #{incident.number} escalated to the next level.",
    )


@bp.post("/incidents/<int:incident_id>/snooze")
def snooze_incident(incident_id: int):
    incident = get_or_404(Incident, incident_id)
    try:
        minutes = validation.integer(
            request.form.get("minutes"), minimum=1, maximum=incidents.SNOOZE_MAX_MINUTES, label="Snooze minutes"
        )
    except validation.FieldError as exc:
        flash(str(exc), "error")
        return _incident_page(incident)
    return _incident_action(
        incident,
        lambda: incidents.snooze(incident, minutes, by=current_user, channel="web"),
        f"Incident #{incident.number} snoozed for {minutes} min.",
    )


@bp.post("/incidents/<int:incident_id>/reassign")
def reassign_incident(incident_id: int):
    incident = get_or_404(Incident, incident_id)
    raw = request.form.get("user_id", "")
    user_id = validation.id_in_text(raw)
    user = db.session.get(User, user_id) if user_id is not None else None
    if user is None or not user.active:
        flash("Choose an active user to reassign the incident to.", "error")
        return _incident_page(incident)
    return _incident_action(
        incident,
        lambda: incidents.reassign(incident, user, by=current_user, channel="web"),
        f"Incident #{incident.number} reassigned to {user.name}.",
    )
