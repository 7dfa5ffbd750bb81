"""`GET /api/v1/oncalls`: for every escalation policy and level, who is on call now (or at `at`)."""

from flask import request

from openduty import clock, oncall, schedules, validation
from openduty.errors import ValidationError
from openduty.views.api import bp, iso
from openduty.views.api.users import user_ref


@bp.get("/oncalls")
def list_oncalls():
    """One entry per (policy, level, person); a schedule target with nobody on call has user null.

    Filters: `at` (ISO 8601 with offset, default now), `escalation_policy_ids[]` (repeatable).
    """
    at = schedules.query_time(request.args, "at", clock.now())
    raw_ids = request.args.getlist("escalation_policy_ids[]") or request.args.getlist("escalation_policy_id")
    try:
        policy_ids = [validation.object_id(x, label="Each policy id") for x in raw_ids] if raw_ids else None
    except validation.FieldError as exc:
        raise ValidationError({"escalation_policy_ids": str(exc)}) from exc
    oncalls = []
    for row in oncall.policy_oncalls(at, policy_ids):
        policy = row["policy"]
        for entry in row["entries"]:
            schedule = entry["schedule"]
            oncalls.append(
                {
                    "escalation_policy": {"id": policy.id, "name": policy.name},
                    "escalation_level": row["level"],
                    "user": user_ref(entry["user"]) if entry["user"] is not None else None,
                    "schedule": {"id": schedule.id, "name": schedule.name} if schedule is not None else None,
                    "start": iso(entry["start"]),
                    "end": iso(entry["end"]),
                }
            )
    return {"at": iso(at), "oncalls": oncalls}
