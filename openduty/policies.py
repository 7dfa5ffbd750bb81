"""Escalation policies: the rules shared by the policy pages and the JSON API.

Each change validates its input with openduty.validation and raises `ValidationError` (naming the
fields) or `ApiError` (409 for a change the current state forbids) before changing anything; the
commit is the caller's (the view owns the transaction).
"""

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from openduty import teams, validation
from openduty.errors import ApiError, ValidationError
from openduty.extensions import db
from openduty.models import EscalationLevel, EscalationPolicy, EscalationTarget, Schedule, Service, User

# Limits that keep a policy readable and its preview cheap.
MAX_LEVELS = 20
MAX_TARGETS = 50
MAX_REPEAT = 20
MAX_DELAY_MINUTES = 24 * 60
_NAME_TAKEN = "An escalation policy with this name already exists."
POLICY_FIELDS = ("name", "description", "team_id", "repeat_count", "levels")


def delay(value: Any, label: str = "Delay") -> int:
    """A level's delay in minutes (0 to MAX_DELAY_MINUTES)."""
    return validation.integer(value, minimum=0, maximum=MAX_DELAY_MINUTES, label=label)


def clean_policy(
    data: dict[str, Any], policy: EscalationPolicy | None, repeat_label: str = "repeat_count", actor: User | None = None
) -> dict:
    """Validate the name (always when creating), description and repeat count present in `data`."""
    checks = {}
    if policy is None or "name" in data:
        checks["name"] = lambda: validation.unique_name(data.get("name"), EscalationPolicy, policy, _NAME_TAKEN)
    if "description" in data:
        checks["description"] = lambda: validation.text(
            data.get("description"), max_length=2000, required=False, label="Description"
        )
    if "repeat_count" in data:
        checks["repeat_count"] = lambda: validation.integer(
            data.get("repeat_count"), minimum=0, maximum=MAX_REPEAT, label=repeat_label
        )
    return validation.collect({**checks, **teams.owner_check(data, actor, policy)})


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


def target_from_choice(value: str | None) -> EscalationTarget:
    """A target from a form's choice 'user:3' or 'schedule:2'; FieldError says what is wrong."""
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
            minutes = delay(raw.get("delay_minutes", 5), label="delay_minutes")
        except validation.FieldError as exc:
            errors[f"{where}.delay_minutes"] = str(exc)
            minutes = 0
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
        levels.append(EscalationLevel(position=index, delay_minutes=minutes, targets=targets))
    if errors:
        raise ValidationError(errors)
    return levels


def save_policy(
    policy: EscalationPolicy | None, data: dict[str, Any], repeat_label: str = "repeat_count", actor: User | None = None
):
    """Create a policy (`policy` None) or change what `data` names; `levels`, when given, replace
    the policy's levels. ValidationError names every bad field and changes nothing."""
    clean = clean_policy(data, policy, repeat_label=repeat_label, actor=actor)
    levels = parse_levels(data["levels"]) if "levels" in data else None
    if policy is None:
        policy = EscalationPolicy(description="", repeat_count=0)
        db.session.add(policy)
    for key, value in clean.items():
        setattr(policy, key, value)
    if levels is not None:
        policy.levels.clear()
        db.session.flush()
        policy.levels.extend(levels)
    return policy


def with_levels(policy: EscalationPolicy) -> EscalationPolicy:
    """`policy` (re)loaded with its levels, their targets and the targets' users and schedules in a
    few queries, so that a page showing them all runs no query while it renders."""
    targets = selectinload(EscalationPolicy.levels).selectinload(EscalationLevel.targets)
    query = (
        select(EscalationPolicy)
        .where(EscalationPolicy.id == policy.id)
        .options(targets.joinedload(EscalationTarget.user), targets.joinedload(EscalationTarget.schedule))
        .execution_options(populate_existing=True)
    )
    return db.session.scalars(query).one()


def all_policies() -> list[EscalationPolicy]:
    """Every policy by name, with its levels (the list shows how many)."""
    query = select(EscalationPolicy).options(selectinload(EscalationPolicy.levels))
    return list(db.session.scalars(query.order_by(func.lower(EscalationPolicy.name))))


def services_using(policy: EscalationPolicy) -> list[Service]:
    """The services that page through `policy`."""
    return list(db.session.scalars(select(Service).where(Service.escalation_policy_id == policy.id)))


def delete_policy(policy: EscalationPolicy) -> None:
    """Delete a policy no service uses; ApiError 409 names the services that still do."""
    used = [service.name for service in services_using(policy)]
    if used:
        raise ApiError(409, f"Services use this policy ({', '.join(used)}); give them another policy first.")
    db.session.delete(policy)


# --- Levels and targets, changed one at a time (the policy page) ------------------------------


def add_level(policy: EscalationPolicy, minutes: Any, target_choice: str | None) -> EscalationLevel:
    """Append a level paging a form's target choice ('user:3') `minutes` after the one before.

    ValidationError names `new_level` (the policy is full) or `new_level.delay_minutes` / `.target`.
    """
    if len(policy.levels) >= MAX_LEVELS:
        raise ValidationError({"new_level": f"A policy has at most {MAX_LEVELS} levels."})
    try:
        clean = validation.collect(
            {"delay_minutes": lambda: delay(minutes), "target": lambda: target_from_choice(target_choice)}
        )
    except ValidationError as exc:
        raise ValidationError({f"new_level.{k}": v for k, v in exc.fields.items()}) from exc
    level = EscalationLevel(
        position=len(policy.levels), delay_minutes=clean["delay_minutes"], targets=[clean["target"]]
    )
    policy.levels.append(level)
    return level


def move_level(policy: EscalationPolicy, level: EscalationLevel, direction: str) -> int:
    """Swap `level` with its neighbour "up" or "down" (nothing at either end); its old index."""
    levels = list(policy.levels)
    index = levels.index(level)
    other = index - 1 if direction == "up" else index + 1
    if 0 <= other < len(levels):
        levels[index], levels[other] = levels[other], levels[index]
        for position, item in enumerate(levels):
            item.position = position
    db.session.flush()
    db.session.expire(policy, ["levels"])
    return index


def delete_level(policy: EscalationPolicy, level: EscalationLevel) -> None:
    """Remove a level; the ones after it move up."""
    policy.levels.remove(level)
    for position, item in enumerate(policy.levels):
        item.position = position


def add_target(level: EscalationLevel, target: EscalationTarget) -> None:
    """Add `target` to `level`; FieldError if it is already there."""
    key = (target.target_type, target.user.id if target.user else None, target.schedule.id if target.schedule else None)
    if any((t.target_type, t.user_id, t.schedule_id) == key for t in level.targets):
        raise validation.FieldError("Already on this level.")
    level.targets.append(target)


def remove_target(target: EscalationTarget) -> None:
    """Remove a target; FieldError if it is its level's last one (a level pages someone)."""
    level = target.level
    if len(level.targets) == 1:
        raise validation.FieldError("A level needs a target; delete the level instead.")
    level.targets.remove(target)
