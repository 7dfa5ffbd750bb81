"""Login and logout, with throttling of failed attempts per account and per address."""

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, request, url_for
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired

from openduty.extensions import db, login_manager, redis
from openduty.models import User
from openduty.views import render

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
    user = db.session.get(User, int(user_id))
    if user is None or not user.active or (user.session_generation or 0) != int(generation):
        return None
    return user


_DUMMY_HASH = generate_password_hash("not a real password")


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


def _throttle_keys(email: str) -> list[str]:
    return [
        f"openduty:login-failures:account:{email.strip().lower()}",
        f"openduty:login-failures:addr:{request.remote_addr}",
    ]


def _seconds_locked_out(email: str) -> int:
    """Seconds until another attempt is allowed; 0 if the account and address are not throttled."""
    conn = redis.get()
    limit = current_app.config["LOGIN_MAX_FAILURES"]
    wait = 0
    for key in _throttle_keys(email):
        count = conn.get(key)
        if count is not None and int(count) >= limit:
            wait = max(wait, conn.ttl(key))
    return max(wait, 0)


def _record_failure(email: str) -> None:
    window = current_app.config["LOGIN_FAILURE_WINDOW_SECONDS"]
    with redis.get().pipeline() as pipe:
        for key in _throttle_keys(email):
            # SET NX EX starts the window on the first failure; INCR keeps its TTL.
            pipe.set(key, 0, ex=window, nx=True)
            pipe.incr(key)
        pipe.execute()


def safe_next(target: str | None) -> str:
    """Only follow relative redirects, so a crafted link cannot send a user elsewhere."""
    if target and not urlsplit(target).netloc and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("home.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    form = LoginForm()
    if form.validate_on_submit():
        email = form.email.data
        wait = _seconds_locked_out(email)
        if wait:
            minutes = max(1, (wait + 59) // 60)
            message = f"Too many failed logins. Try again in {minutes} minute{'s' if minutes > 1 else ''}."
            response = render("auth/login.html", form=form, error=message, status=429)
            response.headers["Retry-After"] = str(wait)
            return response
        user = User.by_email(email)
        if user is None:
            check_password_hash(_DUMMY_HASH, form.password.data)  # same time as a known user
        if user is None or not user.active or not user.check_password(form.password.data):
            _record_failure(email)
            return render("auth/login.html", form=form, error="Wrong email or password.", status=401)
        login_user(user)
        return redirect(safe_next(request.args.get("next")))
    return render("auth/login.html", form=form, status=400 if form.errors else 200)


@bp.post("/logout")
def logout():
    """Log out, ending every session of this user (other browsers and devices too)."""
    if current_user.is_authenticated:
        current_user.end_sessions()
        db.session.commit()
    logout_user()
    flash("You are logged out.")
    return redirect(url_for("auth.login"))
