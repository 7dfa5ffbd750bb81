"""Forgotten passwords: a signed, expiring, one-use link emailed to a local account.

Who can use it: an active local account that has a password (directory users change theirs in the
directory; an account without a password is someone an admin added to be paged, perhaps a shared
mailbox, so its first password comes from an admin). The form answers the same whatever the address,
so it never tells whether an account exists; at most PASSWORD_RESET_LIMIT links per address are sent
per PASSWORD_RESET_WINDOW_SECONDS.

One use: the token carries a fingerprint of the password hash and session generation, so it stops
working once the password changes (by this link or any other way) or the user logs out everywhere.
It expires after PASSWORD_RESET_MAX_AGE_SECONDS. The email is sent by a job (`send_link`), so the
request costs the same whether or not a link goes out.
"""

import hashlib
import logging

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from openduty import timers
from openduty.extensions import db, queue, redis
from openduty.models import User
from openduty.notifiers import notifier_for
from openduty.notifiers.base import Message

_SALT = "openduty.password-reset"
log = logging.getLogger(__name__)


class LinkError(Exception):
    """The link cannot be used; `status` and the message say why, for the page shown."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def _fingerprint(user: User) -> str:
    """Changes whenever the password or the session generation does: what makes a link one-use."""
    return hashlib.sha256(f"{user.password_hash}\0{user.session_generation or 0}".encode()).hexdigest()[:24]


def can_reset(user: User | None) -> bool:
    return user is not None and user.active and user.auth_source == "local" and bool(user.password_hash)


def reset_url(user: User) -> str:
    token = _serializer().dumps({"u": user.id, "f": _fingerprint(user)})
    return f"{current_app.config['BASE_URL'].rstrip('/')}/password/reset/{token}"


def user_for_token(token: str) -> User:
    """The user a link is for, or LinkError saying why it cannot be used."""
    try:
        data = _serializer().loads(token, max_age=current_app.config["PASSWORD_RESET_MAX_AGE_SECONDS"])
    except SignatureExpired as exc:
        raise LinkError(410, "This link has expired. Ask for a new one.") from exc
    except BadSignature as exc:
        raise LinkError(400, "This link is not valid: it is incomplete or was altered. Ask for a new one.") from exc
    user = db.session.get(User, data.get("u")) if isinstance(data, dict) else None
    if not can_reset(user) or data.get("f") != _fingerprint(user):
        raise LinkError(410, "This link was already used or no longer applies. Ask for a new one.")
    return user


def _digest(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def request_reset(email: str) -> None:
    """Send a link to `email` if it is an account that can use one and its limit allows; else nothing."""
    config = current_app.config
    key = "openduty:password-reset:" + _digest(email)
    conn = redis.get()
    with conn.pipeline() as pipe:
        pipe.set(key, 0, ex=config["PASSWORD_RESET_WINDOW_SECONDS"], nx=True)
        pipe.incr(key)
        sent = pipe.execute()[1]
    user = User.by_email(email)
    if not can_reset(user):
        return
    if sent > config["PASSWORD_RESET_LIMIT"]:
        log.warning("Password reset for user %s not sent: %s links in the window already", user.id, sent - 1)
        return
    queue(timers.NOTICE_QUEUE).enqueue("openduty.jobs.send_password_reset", user.id, job_timeout=60)


def send_link(user_id: int) -> str:
    """The job: email the link (made now, so it carries the password's current fingerprint)."""
    user = db.session.get(User, user_id)
    if not can_reset(user):
        return "not sent: the account can no longer reset its password"
    url = reset_url(user)
    minutes = current_app.config["PASSWORD_RESET_MAX_AGE_SECONDS"] // 60
    body = (
        f"Someone (hopefully you) asked to reset the Openduty password of {user.email}.\n\n"
        f"Choose a new password here (the link works once, for {minutes} minutes):\n{url}\n\n"
        "If you did not ask for this, ignore this email: your password stays as it is."
    )
    message = Message(subject="Reset your Openduty password", body=body, action_url=url, purpose="password-reset")
    notifier_for("email").send(user.email, message)
    return "sent"


def set_new_password(user: User, password: str) -> None:
    """Set the password chosen through a link; every session ends and the link is used up."""
    user.set_password(password)
    db.session.flush()
