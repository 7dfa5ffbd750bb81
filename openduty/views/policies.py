"""Escalation policy pages: list, create, edit levels (reorder with htmx, no reload), preview; and
the escalation actions on an incident page (escalate now, snooze, reassign).

Everyone can read policies; only admins change them. Every change works as a plain POST +
redirect; with htmx the levels block is swapped in place and `policy-changed` refreshes the preview.
"""

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from openduty import clock, escalation, oncall, validation
from openduty.extensions import db
from openduty.models import EscalationLevel, EscalationPolicy, EscalationTarget, Incident, Schedule, Service, User
from openduty.views import is_htmx, render
from openduty.views.api.policies import MAX_DELAY_MINUTES, MAX_LEVELS, MAX_REPEAT

bp = Blueprint("policies", __name__)


@bp.app_template_global()
def escalation_preview(policy: EscalationPolicy) -> escalation.Preview:
    """The preview for templates (policy page, service page): computed by the engine's planner."""
    return escalation.preview(policy, clock.now())


def _policy_or_404(policy_id: int) -> EscalationPolicy:
    policy = db.session.get(EscalationPolicy, policy_id)
    if policy is None:
        abort(404, f"No escalation policy with id {policy_id}.")
    return policy


def _level_or_404(policy: EscalationPolicy, level_id: int) -> EscalationLevel:
    level = db.session.get(EscalationLevel, level_id)
    if level is None or level.policy_id != policy.id:
        abort(404, "No such level in this policy.")
    return level


def _choices() -> dict:
    users = db.session.scalars(select(User).where(User.active).order_by(func.lower(User.name))).all()
    schedules = db.session.scalars(select(Schedule).order_by(func.lower(Schedule.name))).all()
    return {"users": users, "schedules": schedules}


def _show(policy: EscalationPolicy, status: int = 200, errors: dict | None = None, block: str | None = None):
    services = db.session.scalars(select(Service).where(Service.escalation_policy_id == policy.id)).all()
    response = render(
        "policies/show.html",
        block=block,
        status=status,
        policy=policy,
        services=services,
        gaps=oncall.policy_gap_warnings(policy),
        errors=errors or {},
        form=request.form,
        **_choices(),
    )
    return response


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
        return _index(status=422, errors=errors)
    return _show(policy, status=422, errors=errors, block="levels" if is_htmx() else None)


def _index(status: int = 200, errors: dict | None = None):
    policies = db.session.scalars(select(EscalationPolicy).order_by(func.lower(EscalationPolicy.name))).all()
    return render("policies/index.html", status=status, policies=policies, errors=errors or {}, form=request.form)


@bp.get("/policies")
def index():
    return _index()


def _name(value, policy: EscalationPolicy | None) -> str:
    name = validation.text(value, max_length=200, label="Name")
    clash = db.session.scalar(select(EscalationPolicy.id).where(func.lower(EscalationPolicy.name) == func.lower(name)))
    if clash is not None and (policy is None or clash != policy.id):
        raise validation.FieldError("An escalation policy with this name already exists.")
    return name


def _fields(policy: EscalationPolicy | None) -> dict:
    form = request.form
    return validation.collect(
        {
            "name": lambda: _name(form.get("name"), policy),
            "description": lambda: validation.text(
                form.get("description"), max_length=2000, required=False, label="Description"
            ),
            "repeat_count": lambda: validation.integer(
                form.get("repeat_count") or "0", minimum=0, maximum=MAX_REPEAT, label="Repeat count"
            ),
        }
    )


@bp.post("/policies")
def create():
    try:
        clean = _fields(None)
    except validation.ValidationError as exc:
        return _invalid(None, exc.fields)
    policy = EscalationPolicy(**clean)
    db.session.add(policy)
    db.session.commit()
    flash(f"Created {policy.name}. Add its first level below.")
    return redirect(url_for("policies.show", policy_id=policy.id), code=303)


@bp.get("/policies/<int:policy_id>")
def show(policy_id: int):
    return _show(_policy_or_404(policy_id))


@bp.get("/policies/<int:policy_id>/preview")
def preview(policy_id: int):
    policy = _policy_or_404(policy_id)
    return render("policies/_preview.html", policy=policy)


@bp.post("/policies/<int:policy_id>")
def update(policy_id: int):
    policy = _policy_or_404(policy_id)
    try:
        clean = _fields(policy)
    except validation.ValidationError as exc:
        return _invalid(policy, exc.fields)
    for key, value in clean.items():
        setattr(policy, key, value)
    db.session.commit()
    flash("Saved.")
    return redirect(url_for("policies.show", policy_id=policy.id), code=303)


@bp.post("/policies/<int:policy_id>/delete")
def delete(policy_id: int):
    policy = _policy_or_404(policy_id)
    used = db.session.scalars(select(Service.name).where(Service.escalation_policy_id == policy.id)).all()
    if used:
        flash(f"Services use this policy ({', '.join(used)}); give them another policy first.", "error")
        return redirect(url_for("policies.show", policy_id=policy.id), code=303)
    db.session.delete(policy)
    db.session.commit()
    flash(f"Deleted {policy.name}.")
    return redirect(url_for("policies.index"), code=303)


def _delay(value) -> int:
    return validation.integer(value, minimum=0, maximum=MAX_DELAY_MINUTES, label="Delay")


def _target(value) -> EscalationTarget:
    """A target from a form value 'user:3' or 'schedule:2'."""
    kind, _, raw_id = (value or "").partition(":")
    target_id = validation.id_in_text(raw_id)
    if kind not in ("user", "schedule") or target_id is None:
        raise validation.FieldError("Choose a user or a schedule.")
    if kind == "user":
        user = db.session.get(User, target_id)
        if user is None or not user.active:
            raise validation.FieldError("That user does not exist or is deactivated.")
        return EscalationTarget(target_type="user", user=user)
    schedule = db.session.get(Schedule, target_id)
    if schedule is None:
        raise validation.FieldError("That schedule does not exist.")
    return EscalationTarget(target_type="schedule", schedule=schedule)


def _renumber(policy: EscalationPolicy) -> None:
    for position, level in enumerate(policy.levels):
        level.position = position


@bp.post("/policies/<int:policy_id>/levels")
def add_level(policy_id: int):
    policy = _policy_or_404(policy_id)
    if len(policy.levels) >= MAX_LEVELS:
        return _invalid(policy, {"new_level": f"A policy has at most {MAX_LEVELS} levels."})
    try:
        clean = validation.collect(
            {
                "delay_minutes": lambda: _delay(request.form.get("delay_minutes")),
                "target": lambda: _target(request.form.get("target")),
            }
        )
    except validation.ValidationError as exc:
        return _invalid(policy, {f"new_level.{k}": v for k, v in exc.fields.items()})
    level = EscalationLevel(
        position=len(policy.levels), delay_minutes=clean["delay_minutes"], targets=[clean["target"]]
    )
    policy.levels.append(level)
    return _changed(policy, f"Added level {len(policy.levels)}.")


@bp.post("/policies/<int:policy_id>/levels/<int:level_id>")
def update_level(policy_id: int, level_id: int):
    policy = _policy_or_404(policy_id)
    level = _level_or_404(policy, level_id)
    try:
        level.delay_minutes = _delay(request.form.get("delay_minutes"))
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
    levels = list(policy.levels)
    index = levels.index(level)
    other = index - 1 if direction == "up" else index + 1
    if 0 <= other < len(levels):
        levels[index], levels[other] = levels[other], levels[index]
        for position, item in enumerate(levels):
            item.position = position
    db.session.flush()
    db.session.expire(policy, ["levels"])
    return _changed(policy, f"Moved level {index + 1} {direction}.")


@bp.post("/policies/<int:policy_id>/levels/<int:level_id>/delete")
def delete_level(policy_id: int, level_id: int):
    policy = _policy_or_404(policy_id)
    level = _level_or_404(policy, level_id)
    policy.levels.remove(level)
    _renumber(policy)
    return _changed(policy, "Deleted the level.")


@bp.post("/policies/<int:policy_id>/levels/<int:level_id>/targets")
def add_target(policy_id: int, level_id: int):
    policy = _policy_or_404(policy_id)
    level = _level_or_404(policy, level_id)
    try:
        target = _target(request.form.get("target"))
    except validation.FieldError as exc:
        return _invalid(policy, {f"level-{level.id}.target": str(exc)})
    key = (target.target_type, target.user.id if target.user else None, target.schedule.id if target.schedule else None)
    if any((t.target_type, t.user_id, t.schedule_id) == key for t in level.targets):
        return _invalid(policy, {f"level-{level.id}.target": "Already on this level."})
    level.targets.append(target)
    return _changed(policy, "Added the target.")


@bp.post("/policies/<int:policy_id>/targets/<int:target_id>/delete")
def delete_target(policy_id: int, target_id: int):
    policy = _policy_or_404(policy_id)
    target = db.session.get(EscalationTarget, target_id)
    if target is None or target.level.policy_id != policy.id:
        abort(404)
    level = target.level
    if len(level.targets) == 1:
        return _invalid(policy, {f"level-{level.id}.target": "A level needs a target; delete the level instead."})
    level.targets.remove(target)
    return _changed(policy, "Removed the target.")


# --- Escalation actions on an incident (buttons in templates/policies/_incident_actions.html) ---


def _incident_page(incident: Incident):
    return redirect(url_for("incidents.show", incident_id=incident.id), code=303)


def _incident_or_404(incident_id: int) -> Incident:
    incident = db.session.get(Incident, incident_id)
    if incident is None:
        abort(404, f"No incident with id {incident_id}.")
    return incident


def _incident_action(incident: Incident, action, done: str):
    try:
        action()
    except escalation.EscalationActionError as exc:
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
    incident = _incident_or_404(incident_id)
    return _incident_action(
        incident,
        lambda: escalation.escalate_now(incident, by=current_user, channel="web"),
        f"Incident #{incident.number} escalated to the next level.",
    )


@bp.post("/incidents/<int:incident_id>/snooze")
def snooze_incident(incident_id: int):
    incident = _incident_or_404(incident_id)
    try:
        minutes = validation.integer(
            request.form.get("minutes"), minimum=1, maximum=escalation.SNOOZE_MAX_MINUTES, label="Snooze minutes"
        )
    except validation.FieldError as exc:
        flash(str(exc), "error")
        return _incident_page(incident)
    return _incident_action(
        incident,
        lambda: escalation.snooze(incident, minutes, by=current_user, channel="web"),
        f"Incident #{incident.number} snoozed for {minutes} min.",
    )


@bp.post("/incidents/<int:incident_id>/reassign")
def reassign_incident(incident_id: int):
    incident = _incident_or_404(incident_id)
    raw = request.form.get("user_id", "")
    user_id = validation.id_in_text(raw)
    user = db.session.get(User, user_id) if user_id is not None else None
    if user is None or not user.active:
        flash("Choose an active user to reassign the incident to.", "error")
        return _incident_page(incident)
    return _incident_action(
        incident,
        lambda: escalation.reassign(incident, user, by=current_user, channel="web"),
        f"Incident #{incident.number} reassigned to {user.name}.",
    )


@bp.app_template_global()
def reassign_choices() -> list[User]:
    """Active users, for the reassign menu on the incident page."""
    return db.session.scalars(select(User).where(User.active).order_by(func.lower(User.name))).all()
