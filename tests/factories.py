"""Small model factories: a test states only what it cares about. Call inside an app context."""

import itertools

from openduty.extensions import db
from openduty.models import ContactMethod, NotificationRule, User

_seq = itertools.count(1)

PASSWORD = "correct horse battery"


def make_user(**fields) -> User:
    n = next(_seq)
    fields.setdefault("email", f"user{n}@example.com")
    fields.setdefault("name", f"User {n}")
    password = fields.pop("password", PASSWORD)
    user = User(**fields)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user


def make_contact_method(user: User, kind: str = "email", address: str | None = None, **fields) -> ContactMethod:
    method = ContactMethod(user=user, kind=kind, address=address or user.email, **fields)
    db.session.add(method)
    db.session.commit()
    return method


def make_notification_rule(
    user: User, contact_method: ContactMethod, delay_minutes: int = 0, urgency: str = "high"
) -> NotificationRule:
    rule = NotificationRule(user=user, contact_method=contact_method, delay_minutes=delay_minutes, urgency=urgency)
    db.session.add(rule)
    db.session.commit()
    return rule
