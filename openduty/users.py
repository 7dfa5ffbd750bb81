"""Account rules shared by the pages and the API, so that both accept and refuse the same things.

Each action validates its input with openduty.validation, raises `ValidationError` (naming the
fields) or `ApiError` (409 for a change the current state forbids) before changing anything, and
leaves the commit to the caller (the view owns the transaction).
"""

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from openduty import notifiers, validation
from openduty.errors import ApiError, ValidationError
from openduty.extensions import db
from openduty.models import ApiToken, ContactMethod, NotificationRule, TeamMember, User
from openduty.models.incident import URGENCIES

# A rule fires this many minutes after the user is paged; a day covers every sane escalation.
MAX_RULE_DELAY_MINUTES = 24 * 60

USER_FIELDS = ("email", "name", "time_zone", "is_admin", "observer", "password")


def _email_check(value: Any, user: User | None):
    def check() -> str:
        address = validation.email(value)
        other = User.by_email(address)
        if other is not None and other is not user:
            raise validation.FieldError("A user with this email already exists.")
        return address

    return check


def _optional_password(value: Any):
    def check() -> str | None:
        return None if value in (None, "") else validation.password(value)

    return check


def _user_checks(data: Mapping[str, Any], user: User | None) -> dict:
    """Checks for the user fields present in `data` (all of them when creating)."""
    creating = user is None
    checks = {}
    if creating or "email" in data:
        checks["email"] = _email_check(data.get("email"), user)
    if creating or "name" in data:
        checks["name"] = lambda: validation.text(data.get("name"), max_length=200, label="Name")
    if "time_zone" in data or creating:
        checks["time_zone"] = lambda: validation.time_zone(data.get("time_zone") or "UTC")
    if "is_admin" in data or creating:
        checks["is_admin"] = lambda: validation.boolean(
            data.get("is_admin") if data.get("is_admin") is not None else False, "is_admin"
        )
    if "observer" in data or creating:
        checks["observer"] = lambda: validation.boolean(
            data.get("observer") if data.get("observer") is not None else False, "observer"
        )
    if "password" in data:
        checks["password"] = _optional_password(data.get("password"))
    if "active" in data:
        checks["active"] = lambda: validation.boolean(data.get("active"), "active")
    return checks


def create_user(data: Mapping[str, Any]) -> User:
    """A new local user. Without a password the user can be paged but cannot log in until one is set."""
    clean = validation.collect(_user_checks(data, None))
    user = User(
        email=clean["email"],
        name=clean["name"],
        time_zone=clean["time_zone"],
        is_admin=clean["is_admin"],
        observer=clean["observer"],
    )
    user.set_password(clean.get("password"))
    db.session.add(user)
    db.session.flush()
    return user


def update_user(user: User, data: Mapping[str, Any], *, actor: User) -> None:
    """Change the fields present in `data`; `actor` is who asks (admin rights, own account).

    Only admins change `is_admin` and `active`, and nobody removes their own admin rights or
    deactivates themselves, so that an instance always keeps an admin who can log in.
    A new password for one's own account needs `current_password` (when one is set).
    """
    clean = validation.collect(_user_checks(data, user))
    if "is_admin" in clean and clean["is_admin"] != user.is_admin:
        if not actor.is_admin:
            raise ApiError(403, "Only admins can grant or remove admin rights.", fields={"is_admin": "Admins only."})
        if actor.id == user.id:
            raise ApiError(409, "You cannot remove your own admin rights; ask another admin.")
    if "observer" in clean and clean["observer"] != user.observer and not actor.is_admin:
        raise ApiError(403, "Only admins can make someone an observer or not.", fields={"observer": "Admins only."})
    if "active" in clean and clean["active"] != user.active:
        if not actor.is_admin:
            raise ApiError(403, "Only admins can deactivate or reactivate users.", fields={"active": "Admins only."})
        if actor.id == user.id:
            raise ApiError(409, "You cannot deactivate yourself; ask another admin.")
    if clean.get("password") and actor.id == user.id and user.password_hash:
        _check_current_password(user, data.get("current_password"))
    if clean.get("active") is False and user.active:
        user.end_sessions()  # a deactivated user is logged out everywhere at once
    for field in ("email", "name", "time_zone", "is_admin", "observer", "active"):
        if field in clean:
            setattr(user, field, clean[field])
    if clean.get("password"):
        user.set_password(clean["password"])


def _check_current_password(user: User, current: Any) -> None:
    if not isinstance(current, str) or not current:
        raise ValidationError({"current_password": "Enter your current password."})
    if not user.check_password(current):
        raise ValidationError({"current_password": "This is not your current password."})


def change_password(user: User, current: Any, new: Any, confirm: Any = None) -> None:
    """The profile's password change: the current password (if any), then the new one twice."""
    errors = {}
    try:
        new = validation.password(new)
    except validation.FieldError as exc:
        errors["password"] = str(exc)
    if confirm is not None and new != confirm and "password" not in errors:
        errors["confirm"] = "The two new passwords differ."
    if user.password_hash:
        try:
            _check_current_password(user, current)
        except ValidationError as exc:
            errors.update(exc.fields)
    if errors:
        raise ValidationError(errors)
    user.set_password(new)


def set_active(user: User, active: bool, *, actor: User) -> None:
    """Deactivate (history is kept; the user cannot log in and is never paged) or reactivate."""
    update_user(user, {"active": active}, actor=actor)


def add_contact_method(user: User, data: Mapping[str, Any]) -> ContactMethod:
    """A contact method whose address is validated for its kind (E.164 phones, URLs, ...)."""
    kind = data.get("kind") if isinstance(data.get("kind"), str) else None  # a list cannot be a dict key
    checks = {
        "kind": lambda: _sendable_kind(kind),
        "label": lambda: validation.text(data.get("label"), max_length=100, required=False, label="Label"),
    }
    if kind in validation.CONTACT_ADDRESS_VALIDATORS:
        checks["address"] = lambda: validation.contact_address(kind, data.get("address"), privileged=user.is_admin)
    clean = validation.collect(checks)
    if any(m.kind == clean["kind"] and m.address == clean["address"] for m in user.contact_methods):
        raise ValidationError({"address": "This user already has this contact method."})
    method = ContactMethod(user=user, kind=clean["kind"], address=clean["address"], label=clean["label"])
    db.session.add(method)
    db.session.flush()
    return method


def _sendable_kind(kind: str | None) -> str:
    """A contact kind this server can send on (an SMS method without Twilio would fail at page time)."""
    kind = validation.contact_kind(kind)
    problem = notifiers.not_configured(kind)
    if problem:
        raise validation.FieldError(problem)
    return kind


def delete_contact_method(method: ContactMethod) -> None:
    """Remove a contact method and the notification rules that use it."""
    db.session.delete(method)
    db.session.flush()


def add_notification_rule(user: User, data: Mapping[str, Any]) -> NotificationRule:
    """Notify `user` on one of their contact methods, `delay_minutes` after they are paged, for
    incidents of `urgency` (high, the default, or low: the user's two rule lists)."""

    def method_check() -> ContactMethod:
        method_id = validation.object_id(data.get("contact_method_id"), label="Contact method")
        method = db.session.get(ContactMethod, method_id)
        if method is None or method.user_id != user.id:
            raise validation.FieldError("Choose one of this user's contact methods.")
        return method

    clean = validation.collect(
        {
            "contact_method_id": method_check,
            "delay_minutes": lambda: validation.integer(
                data.get("delay_minutes", 0) if data.get("delay_minutes") not in (None, "") else 0,
                minimum=0,
                maximum=MAX_RULE_DELAY_MINUTES,
                label="Delay",
            ),
            "urgency": lambda: _rule_urgency(data.get("urgency")),
        }
    )
    method, delay, urgency = clean["contact_method_id"], clean["delay_minutes"], clean["urgency"]
    if any(
        (r.contact_method_id, r.delay_minutes, r.urgency) == (method.id, delay, urgency)
        for r in user.notification_rules
    ):
        raise ValidationError({"delay_minutes": "This rule exists already."})
    rule = NotificationRule(user=user, contact_method=method, delay_minutes=delay, urgency=urgency)
    db.session.add(rule)
    db.session.flush()
    return rule


def _rule_urgency(value: Any) -> str:
    if value in (None, ""):
        return "high"
    if value not in URGENCIES:
        raise validation.FieldError("Use high or low: which incidents the rule pages for.")
    return value


def delete_notification_rule(rule: NotificationRule) -> None:
    db.session.delete(rule)
    db.session.flush()


def issue_token(user: User, data: Mapping[str, Any]) -> tuple[ApiToken, str]:
    """A named API token; returns the row and the secret, which is shown once and never stored."""
    clean = validation.collect(
        {
            "name": lambda: validation.text(data.get("name"), max_length=100, label="Name"),
            "read_only": lambda: validation.boolean(data.get("read_only") or False, label="Read-only"),
        }
    )
    if any(t.name == clean["name"] for t in user.api_tokens):
        raise ValidationError({"name": "You already have a token with this name."})
    token, secret = ApiToken.issue(user, clean["name"], read_only=clean["read_only"])
    db.session.flush()
    return token, secret


def revoke_token(token: ApiToken) -> None:
    db.session.delete(token)
    db.session.flush()


def active_users() -> list[User]:
    """Active users by name: who may be paged, chosen as a target or assigned an incident."""
    return list(db.session.scalars(select(User).where(User.active).order_by(func.lower(User.name))))


def with_profile(user: User) -> User:
    """`user` (re)loaded with contact methods, notification rules and API tokens in a few queries,
    so that the profile page runs no query while it renders."""
    query = (
        select(User)
        .where(User.id == user.id)
        .options(
            selectinload(User.contact_methods),
            selectinload(User.notification_rules).joinedload(NotificationRule.contact_method),
            selectinload(User.api_tokens),
            selectinload(User.memberships).joinedload(TeamMember.team),
        )
        .execution_options(populate_existing=True)
    )
    return db.session.scalars(query).one()
