"""Users, their contact methods and notification rules.

Anyone with a token may read users and manage themselves; only admins manage other users.
DELETE on a user deactivates it: its history stays, it cannot log in and is never paged.
"""

from typing import Any

from flask import jsonify, request, url_for
from sqlalchemy import select

from openduty import ical, shift_notices, users, validation
from openduty.access import may_manage
from openduty.errors import ApiError, ValidationError
from openduty.extensions import db
from openduty.models import ContactMethod, NotificationRule, User
from openduty.views.api import api_user, bp, created, get_or_404, iso, json_body


def user_ref(user: User | None) -> dict[str, Any] | None:
    """A user as other objects embed it (an incident's acknowledger, a shift's people)."""
    return {"id": user.id, "name": user.name, "email": user.email} if user is not None else None


def user_json(user: User, notices: dict | None = None) -> dict[str, Any]:
    """A user; `notices` (shift_notices.all_settings()) saves a query per user in lists."""
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "time_zone": user.time_zone,
        "is_admin": user.is_admin,
        "observer": user.observer,
        "role": user.role,
        "active": user.active,
        "has_password": user.password_hash is not None,
        "auth_source": user.auth_source,
        "created_at": iso(user.created_at),
        **shift_notices.settings_json(user, notices),
    }


def contact_method_json(method: ContactMethod) -> dict[str, Any]:
    return {
        "id": method.id,
        "user_id": method.user_id,
        "kind": method.kind,
        "address": method.address,
        "label": method.label,
        "created_at": iso(method.created_at),
    }


def notification_rule_json(rule: NotificationRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "user_id": rule.user_id,
        "contact_method_id": rule.contact_method_id,
        "delay_minutes": rule.delay_minutes,
        "urgency": rule.urgency,
    }


def _manageable_user(user_id: int) -> User:
    """The user with `user_id` if the caller may change it: themselves, or anyone for admins."""
    user = get_or_404(User, user_id, "user")
    if not may_manage(api_user(), user.id):
        raise ApiError(403, "Only admins can manage other users.")
    return user


@bp.get("/users")
def list_users():
    query = db.select(User).order_by(User.id)
    if "active" in request.args:
        try:
            active = validation.boolean(request.args["active"], "active")
        except validation.FieldError as exc:
            raise ValidationError({"active": str(exc)}) from exc
        query = query.where(User.active == active)
    notices = shift_notices.all_settings()
    return jsonify({"users": [user_json(u, notices) for u in db.session.scalars(query)]})


@bp.post("/users")
def create_user():
    user = users.create_user(json_body(users.USER_FIELDS))
    db.session.commit()
    return created(user_json(user), url_for("api.get_user", user_id=user.id))


@bp.get("/users/<int:user_id>")
def get_user(user_id: int):
    user = get_or_404(User, user_id, "user")
    # Your own shifts feed; other people's feeds open only with their own token.
    own = user.id == api_user().id
    return jsonify({**user_json(user), "ical_url": ical.user_ical_url(user) if own else None})


@bp.patch("/users/<int:user_id>")
def update_user(user_id: int):
    user = _manageable_user(user_id)
    data = json_body((*users.USER_FIELDS, "active", "current_password", *shift_notices.SETTINGS_FIELDS))
    notices = {key: data.pop(key) for key in shift_notices.SETTINGS_FIELDS if key in data}
    shift_notices.clean_settings(user, notices)  # every field checked before anything changes
    users.update_user(user, data, actor=api_user())
    if notices:
        shift_notices.save_settings(user, notices)
    db.session.commit()
    return jsonify(user_json(user))


@bp.delete("/users/<int:user_id>")
def deactivate_user(user_id: int):
    user = get_or_404(User, user_id, "user")
    users.set_active(user, False, actor=api_user())
    db.session.commit()
    return jsonify(user_json(user))


@bp.get("/users/<int:user_id>/contact-methods")
def list_contact_methods(user_id: int):
    user = _manageable_user(user_id)
    return jsonify({"contact_methods": [contact_method_json(m) for m in user.contact_methods]})


@bp.post("/users/<int:user_id>/contact-methods")
def create_contact_method(user_id: int):
    user = _manageable_user(user_id)
    method = users.add_contact_method(user, json_body(("kind", "address", "label")))
    db.session.commit()
    location = url_for("api.get_contact_method", user_id=user.id, method_id=method.id)
    return created(contact_method_json(method), location)


def _owned_or_404(model, object_id: int, user: User, label: str):
    """One of `user`'s contact methods or rules; another user's is as unknown as none."""
    query = select(model).filter_by(id=object_id, user_id=user.id)
    return db.one_or_404(query, description=f"User {user.id} has no {label} with id {object_id}.")


def _contact_method(user: User, method_id: int) -> ContactMethod:
    return _owned_or_404(ContactMethod, method_id, user, "contact method")


@bp.get("/users/<int:user_id>/contact-methods/<int:method_id>")
def get_contact_method(user_id: int, method_id: int):
    return jsonify(contact_method_json(_contact_method(_manageable_user(user_id), method_id)))


@bp.delete("/users/<int:user_id>/contact-methods/<int:method_id>")
def delete_contact_method(user_id: int, method_id: int):
    users.delete_contact_method(_contact_method(_manageable_user(user_id), method_id))
    db.session.commit()
    return "", 204


@bp.get("/users/<int:user_id>/notification-rules")
def list_notification_rules(user_id: int):
    user = _manageable_user(user_id)
    return jsonify({"notification_rules": [notification_rule_json(r) for r in user.notification_rules]})


@bp.post("/users/<int:user_id>/notification-rules")
def create_notification_rule(user_id: int):
    user = _manageable_user(user_id)
    rule = users.add_notification_rule(user, json_body(("contact_method_id", "delay_minutes", "urgency")))
    db.session.commit()
    location = url_for("api.get_notification_rule", user_id=user.id, rule_id=rule.id)
    return created(notification_rule_json(rule), location)


def _notification_rule(user: User, rule_id: int) -> NotificationRule:
    return _owned_or_404(NotificationRule, rule_id, user, "notification rule")


@bp.get("/users/<int:user_id>/notification-rules/<int:rule_id>")
def get_notification_rule(user_id: int, rule_id: int):
    return jsonify(notification_rule_json(_notification_rule(_manageable_user(user_id), rule_id)))


@bp.delete("/users/<int:user_id>/notification-rules/<int:rule_id>")
def delete_notification_rule(user_id: int, rule_id: int):
    users.delete_notification_rule(_notification_rule(_manageable_user(user_id), rule_id))
    db.session.commit()
    return "", 204
