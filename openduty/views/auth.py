"""Login and logout.

Failed logins are throttled per (account, client address) pair: after LOGIN_MAX_FAILURES failures
each further one doubles the wait (LOGIN_DELAY_SECONDS up to LOGIN_MAX_DELAY_SECONDS), so that a
guesser is slowed down without locking the account for everyone else, and failures for random
emails do not lock out an address. Behind a proxy the address is the one the trusted proxies
report (TRUSTED_PROXIES). Redis keys are digests, never the raw input.
"""

import hashlib

from flask import Blueprint, current_app, flash, redirect, request, url_for
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy.orm import selectinload
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired

from openduty import audit, directory, password_reset, validation
from openduty.extensions import db, login_manager, redis
from openduty.models import User
from openduty.views import render, safe_next

bp = Blueprint("auth", __name__)

login_manager.login_view = "auth.login"
login_manager.login_message = "Log in to see that page."


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    """The session's user, if the session is still valid: `<id>:<generation>` of an active user.

    A session ends when the user's session generation moves on (logout, password change,
    deactivation, "log out everywhere"); cookies from before that point load nobody.
    """
    user_id, _, generation = session_id.partition(":")
    if not user_id.isdigit() or not generation.isdigit() or len(session_id) > 40:
        return None
    # With the teams: the navigation and the access rules ask which teams the user manages.
    user = db.session.get(User, int(user_id), options=[selectinload(User.memberships)], populate_existing=True)
    if user is None or not user.active or (user.session_generation or 0) != int(generation):
        return None
    user.remember_teams()
    return user


# Verified instead of a real hash when the account does not exist, is deactivated or has no
# password, so that every failed login costs the same time (no account discovery by timing).
_DUMMY_HASH = generate_password_hash("not a real password")

# Longer input is refused before it touches Redis or the database (RFC 5321: 254 for an address;
# passwords are set with at most validation's 200 characters).
MAX_EMAIL_LENGTH = 254
MAX_PASSWORD_LENGTH = 200

WRONG = "Wrong email or password."
DIRECTORY_DOWN = (
    "The directory (LDAP) is not answering, so directory accounts cannot log in just now. "
    "Try again in a few minutes; local accounts still work."
)


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


class ForgotForm(FlaskForm):
    email = EmailField("Email")


class ResetForm(FlaskForm):
    password = PasswordField("New password")
    confirm = PasswordField("New password again")


def _client() -> str:
    """The client's address: the peer, or what the trusted proxies say (TRUSTED_PROXIES, ProxyFix)."""
    return request.remote_addr or "unknown"


def _throttle_key(email: str) -> str:
    """One key per (account, client) pair: a digest, so that its size never depends on the input."""
    pair = f"{email.strip().lower()}\0{_client()}".encode()
    return "openduty:login-failures:" + hashlib.sha256(pair).hexdigest()


def _seconds_locked_out(email: str) -> int:
    """Seconds until this client may try this account again; 0 if it may now."""
    ttl = redis.get().pttl(_throttle_key(email) + ":wait")
    return max(0, (ttl + 999) // 1000) if ttl and ttl > 0 else 0


def _record_failure(email: str) -> None:
    """Count a failure for the pair; beyond LOGIN_MAX_FAILURES each one doubles the wait."""
    config = current_app.config
    key = _throttle_key(email)
    conn = redis.get()
    with conn.pipeline() as pipe:
        # SET NX EX starts the window on the first failure; INCR keeps its TTL.
        pipe.set(key, 0, ex=config["LOGIN_FAILURE_WINDOW_SECONDS"], nx=True)
        pipe.incr(key)
        failures = pipe.execute()[1]
    excess = failures - config["LOGIN_MAX_FAILURES"]
    if excess > 0:
        delay = min(config["LOGIN_DELAY_SECONDS"] * 2 ** min(excess - 1, 30), config["LOGIN_MAX_DELAY_SECONDS"])
        conn.set(key + ":wait", 1, px=int(delay * 1000))


def _password_matches(user: User | None, password: str) -> bool:
    """Check the password in the same time whether or not the account can log in."""
    usable = user is not None and user.active and bool(user.password_hash)
    matches = check_password_hash(user.password_hash if usable else _DUMMY_HASH, password)
    return usable and matches


def _authenticate(login: str, password: str) -> tuple[User | None, str, int]:
    """The user whose login this is, else why not and the status to answer.

    A local account with a password logs in locally, directory or not (so an admin can always get in);
    with a directory (LDAP_URL) everyone else is asked of the directory, by username or email.
    """
    user = User.by_email(login)
    if user is not None and user.auth_source == "local" and user.password_hash:
        return (user, "", 200) if _password_matches(user, password) else (None, WRONG, 401)
    if not directory.enabled():
        _password_matches(user, password)  # the same time as a wrong password
        return None, WRONG, 401
    audit.set_actor(audit.DIRECTORY_LOGIN)  # a first login creates the user, a later one refreshes it
    try:
        user = directory.mirror(directory.authenticate(login, password))
    except directory.LoginRefused as exc:
        db.session.rollback()
        return None, str(exc), 401
    except directory.DirectoryDown as exc:
        db.session.rollback()
        current_app.logger.warning("Directory login refused: %s", exc)  # the reason, for whoever runs it
        return None, DIRECTORY_DOWN, 503
    if not user.active:
        db.session.rollback()
        return None, "This account is deactivated: ask an admin to reactivate it.", 403
    db.session.commit()
    return user, "", 200


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    form = LoginForm()
    if form.validate_on_submit():
        email, password = form.email.data, form.password.data
        if len(email) > MAX_EMAIL_LENGTH or len(password) > MAX_PASSWORD_LENGTH:
            error = f"Email addresses have at most {MAX_EMAIL_LENGTH} characters, passwords {MAX_PASSWORD_LENGTH}."
            return _page(form, error, 400)
        wait = _seconds_locked_out(email)
        if wait:
            minutes = max(1, (wait + 59) // 60)
            message = f"Too many failed logins. Try again in {minutes} minute{'s' if minutes > 1 else ''}."
            response = _page(form, message, 429)
            response.headers["Retry-After"] = str(wait)
            return response
        user, error, status = _authenticate(email, password)
        if user is None:
            if status == 401:
                _record_failure(email)
            _audit_login(email, None, error)
            return _page(form, error, status)
        _audit_login(email, user, "")
        login_user(user)
        return redirect(safe_next(url_for("home.index")))
    return _page(form, status=400 if form.errors else 200)


def _audit_login(login: str, user: User | None, error: str) -> None:
    """Every login that was checked (not those refused by the throttle), in the audit log."""
    if user is not None:
        audit.set_actor(audit.user_actor(user))
        audit.record("login", "user", user.id, user.email, {"client": _client()})
    else:
        known = User.by_email(login)
        audit.record("login failed", "user", known.id if known else None, login, {"reason": error, "client": _client()})
    db.session.commit()


def _page(form: LoginForm, error: str | None = None, status: int = 200):
    """The login page; with a directory it asks for a username or an email."""
    return render("auth/login.html", form=form, error=error, status=status, directory_logins=directory.enabled())


@bp.post("/logout")
def logout():
    """Log out, ending every session of this user (other browsers and devices too)."""
    if current_user.is_authenticated:
        current_user.end_sessions()
        db.session.commit()
    logout_user()
    flash("You are logged out.")
    return redirect(url_for("auth.login"))


@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot_password():
    """Ask for a reset link. The answer is the same whether or not the account exists."""
    form = ForgotForm()
    minutes = current_app.config["PASSWORD_RESET_MAX_AGE_SECONDS"] // 60
    if not form.validate_on_submit():
        return render("auth/forgot.html", form=form, status=400 if form.errors else 200, minutes=minutes)
    email = (form.email.data or "").strip()
    if not email or len(email) > MAX_EMAIL_LENGTH or validation.unstorable(email):
        error = f"Enter the email of your account (at most {MAX_EMAIL_LENGTH} characters)."
        return render("auth/forgot.html", form=form, error=error, status=400, minutes=minutes)
    password_reset.request_reset(email)
    return render("auth/forgot.html", form=form, sent=email, minutes=minutes)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    """The emailed link: choose a new password (once), then log in with it."""
    form = ResetForm()
    try:
        user = password_reset.user_for_token(token)
    except password_reset.LinkError as exc:
        return render("auth/reset.html", form=form, link_error=str(exc), status=exc.status)
    if not form.validate_on_submit():
        return render("auth/reset.html", form=form, user=user, status=400 if form.errors else 200)
    try:
        password = validation.password(form.password.data)
        if password != form.confirm.data:
            form.confirm.errors = ["The two passwords differ."]
    except validation.FieldError as exc:
        form.password.errors = [str(exc)]
    if form.password.errors or form.confirm.errors:
        return render("auth/reset.html", form=form, user=user, status=422)
    audit.set_actor(audit.Actor(f"{user.email} (password reset link)", user.id))
    password_reset.set_new_password(user, password)
    db.session.commit()
    if current_user.is_authenticated:
        logout_user()
    flash("Your password is changed and every session ended. Log in with the new password.")
    return redirect(url_for("auth.login"))
