"""Escalation policies API: GET/POST /escalation-policies, GET/PATCH/DELETE /escalation-policies/<id>.

Shape: {"name", "description", "repeat_count", "levels": [{"delay_minutes": 5, "targets":
[{"type": "user", "id": 1}, {"type": "schedule", "id": 2}]}]}. PATCH replaces `levels` when given.
"""

from typing import Any

from flask import jsonify, url_for
from sqlalchemy import func, select

from openduty import clock, escalation
from openduty import policies as domain
from openduty.extensions import db
from openduty.models import EscalationPolicy, EscalationTarget
from openduty.views.api import api_user, bp, created, get_or_404, json_body


def policy_json(policy: EscalationPolicy, with_preview: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": policy.id,
        "name": policy.name,
        "description": policy.description,
        "team_id": policy.team_id,
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
        body["preview"] = _steps_json(plan.steps)
        body["preview_low_urgency"] = _steps_json(plan.low_steps)
    return body


def _steps_json(steps: list[escalation.PreviewStep]) -> list[dict[str, Any]]:
    return [
        {
            "minute": step.minute,
            "level": step.level,
            "pages": [{"user_id": u.id, "name": u.name, "channels": channels} for u, channels in step.pages],
        }
        for step in steps
    ]


def _target_json(target: EscalationTarget) -> dict[str, Any]:
    if target.target_type == "user":
        return {"type": "user", "id": target.user_id, "name": target.user.name if target.user else None}
    return {"type": "schedule", "id": target.schedule_id, "name": target.schedule.name if target.schedule else None}


@bp.get("/escalation-policies")
def list_policies():
    policies = db.session.scalars(select(EscalationPolicy).order_by(func.lower(EscalationPolicy.name))).all()
    return jsonify({"escalation_policies": [policy_json(p, with_preview=False) for p in policies]})


@bp.post("/escalation-policies")
def create_policy():
    policy = domain.save_policy(None, json_body(domain.POLICY_FIELDS), actor=api_user())
    db.session.commit()
    return created(policy_json(policy), url_for("api.get_policy", policy_id=policy.id))


@bp.get("/escalation-policies/<int:policy_id>")
def get_policy(policy_id: int):
    return jsonify(policy_json(get_or_404(EscalationPolicy, policy_id, "escalation policy")))


@bp.patch("/escalation-policies/<int:policy_id>")
def update_policy(policy_id: int):
    policy = get_or_404(EscalationPolicy, policy_id, "escalation policy")
    domain.save_policy(policy, json_body(domain.POLICY_FIELDS), actor=api_user())
    db.session.commit()
    return jsonify(policy_json(policy))


@bp.delete("/escalation-policies/<int:policy_id>")
def delete_policy(policy_id: int):
    policy = get_or_404(EscalationPolicy, policy_id, "escalation policy")
    domain.delete_policy(policy)
    db.session.commit()
    return "", 204
