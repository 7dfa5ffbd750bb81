"""Escalation policies API: GET/POST /escalation-policies, GET/PATCH/DELETE /escalation-policies/<id>.

Shape: {"name", "description", "repeat_count", "levels": [{"delay_minutes": 5, "targets":
[{"type": "user", "id": 1}, {"type": "schedule", "id": 2}]}]}. PATCH replaces `levels` when given.
"""

from typing import Any

from flask import jsonify, url_for
from sqlalchemy import func, select

from openduty import clock, escalation, validation
from openduty.errors import ApiError, ValidationError
from openduty.extensions import db
from openduty.models import EscalationLevel, EscalationPolicy, EscalationTarget, Schedule, Service, User
from openduty.views.api import bp, created, get_or_404, json_body

MAX_LEVELS = 20
MAX_TARGETS = 50
MAX_REPEAT = 20
MAX_DELAY_MINUTES = 24 * 60
POLICY_FIELDS = ("name", "description", "repeat_count", "levels")


def policy_json(policy: EscalationPolicy, with_preview: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": policy.id,
        "name": policy.name,
        "description": policy.description,
        "repeat_count": policy.repeat_count,
        "levels": [
            {
                "id": level.id,
                "position": index + 1,
                "delay_minutes": level.delay_minutes,
                "targets": [_target_json(t) for t in level.targets],
            }
            for index, level in enumerate(policy.levels)
        ],
    }
    if with_preview:
        plan = escalation.preview(policy, clock.now())
        body["preview"] = [
            {
                "minute": step.minute,
                "level": step.level,
                "pages": [{"user_id": u.id, "name": u.name, "channels": channels} for u, channels in step.pages],
            }
            for step in plan.steps
        ]
    return body


def _target_json(target: EscalationTarget) -> dict[str, Any]:
    if target.target_type == "user":
        return {"type": "user", "id": target.user_id, "name": target.user.name if target.user else None}
    return {"type": "schedule", "id": target.schedule_id, "name": target.schedule.name if target.schedule else None}


def _name(value: Any, policy: EscalationPolicy | None) -> str:
    name = validation.text(value, max_length=200, label="Name")
    clash = db.session.scalar(select(EscalationPolicy.id).where(func.lower(EscalationPolicy.name) == func.lower(name)))
    if clash is not None and (policy is None or clash != policy.id):
        raise validation.FieldError("An escalation policy with this name already exists.")
    return name


def parse_target(raw: Any) -> EscalationTarget:
    """One target from {"type": "user"|"schedule", "id": N}; FieldError says what is wrong."""
    if not isinstance(raw, dict):
        raise validation.FieldError('Each target is an object: {"type": "user" or "schedule", "id": ...}.')
    kind = raw.get("type")
    if kind not in ("user", "schedule"):
        raise validation.FieldError('A target\'s type is "user" or "schedule".')
    target_id = validation.object_id(raw.get("id"), label="A target's id")
    if kind == "user":
        user = db.session.get(User, target_id)
        if user is None:
            raise validation.FieldError(f"No user with id {target_id}.")
        if not user.active:
            raise validation.FieldError(f"{user.name} is deactivated and cannot be paged.")
        return EscalationTarget(target_type="user", user=user)
    schedule = db.session.get(Schedule, target_id)
    if schedule is None:
        raise validation.FieldError(f"No schedule with id {target_id}.")
    return EscalationTarget(target_type="schedule", schedule=schedule)


def parse_levels(value: Any) -> list[EscalationLevel]:
    """Levels in order; raises ValidationError naming the field, e.g. levels[1].targets[0]."""
    if not isinstance(value, list):
        raise ValidationError({"levels": 'A list of levels: [{"delay_minutes": 5, "targets": [...]}].'})
    if len(value) > MAX_LEVELS:
        raise ValidationError({"levels": f"At most {MAX_LEVELS} levels."})
    errors: dict[str, str] = {}
    levels = []
    for index, raw in enumerate(value):
        where = f"levels[{index}]"
        if not isinstance(raw, dict):
            errors[where] = 'Each level is an object: {"delay_minutes": 5, "targets": [...]}.'
            continue
        try:
            delay = validation.integer(
                raw.get("delay_minutes", 5), minimum=0, maximum=MAX_DELAY_MINUTES, label="delay_minutes"
            )
        except validation.FieldError as exc:
            errors[f"{where}.delay_minutes"] = str(exc)
            delay = 0
        raw_targets = raw.get("targets", [])
        targets = []
        if not isinstance(raw_targets, list) or not raw_targets:
            errors[f"{where}.targets"] = "Each level needs at least one target (a user or a schedule)."
        elif len(raw_targets) > MAX_TARGETS:
            errors[f"{where}.targets"] = f"At most {MAX_TARGETS} targets per level."
        else:
            for t_index, raw_target in enumerate(raw_targets):
                try:
                    targets.append(parse_target(raw_target))
                except validation.FieldError as exc:
                    errors[f"{where}.targets[{t_index}]"] = str(exc)
        levels.append(EscalationLevel(position=index, delay_minutes=delay, targets=targets))
    if errors:
        raise ValidationError(errors)
    return levels


def _apply(policy: EscalationPolicy, body: dict[str, Any], creating: bool) -> None:
    checks = {}
    if creating or "name" in body:
        checks["name"] = lambda: _name(body.get("name"), None if creating else policy)
    if "description" in body:
        checks["description"] = lambda: validation.text(
            body.get("description"), max_length=2000, required=False, label="Description"
        )
    if "repeat_count" in body:
        checks["repeat_count"] = lambda: validation.integer(
            body.get("repeat_count"), minimum=0, maximum=MAX_REPEAT, label="repeat_count"
        )
    clean = validation.collect(checks)
    levels = parse_levels(body["levels"]) if "levels" in body else None
    for key, value in clean.items():
        setattr(policy, key, value)
    if levels is not None:
        policy.levels.clear()
        db.session.flush()
        policy.levels.extend(levels)


@bp.get("/escalation-policies")
def list_policies():
    policies = db.session.scalars(select(EscalationPolicy).order_by(func.lower(EscalationPolicy.name))).all()
    return jsonify({"escalation_policies": [policy_json(p, with_preview=False) for p in policies]})


@bp.post("/escalation-policies")
def create_policy():
    body = json_body(POLICY_FIELDS)
    policy = EscalationPolicy(description="", repeat_count=0)
    _apply(policy, body, creating=True)
    db.session.add(policy)
    db.session.commit()
    return created(policy_json(policy), url_for("api.get_policy", policy_id=policy.id))


@bp.get("/escalation-policies/<int:policy_id>")
def get_policy(policy_id: int):
    return jsonify(policy_json(get_or_404(EscalationPolicy, policy_id, "escalation policy")))


@bp.patch("/escalation-policies/<int:policy_id>")
def update_policy(policy_id: int):
    policy = get_or_404(EscalationPolicy, policy_id, "escalation policy")
    body = json_body(POLICY_FIELDS)
    _apply(policy, body, creating=False)
    db.session.commit()
    return jsonify(policy_json(policy))


@bp.delete("/escalation-policies/<int:policy_id>")
def delete_policy(policy_id: int):
    policy = get_or_404(EscalationPolicy, policy_id, "escalation policy")
    used = db.session.scalars(select(Service.name).where(Service.escalation_policy_id == policy.id)).all()
    if used:
        raise ApiError(409, f"Services use this policy ({', '.join(used)}); give them another policy first.")
    db.session.delete(policy)
    db.session.commit()
    return "", 204
