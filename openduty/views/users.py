"""Users pages: the admin list (create, edit, deactivate) and every user's profile.

The profile's contact methods, notification rules and API tokens are edited inline with htmx:
a form answers its own block (errors or a fresh form) and announces the change with an
HX-Trigger event that refreshes the matching list. Without JavaScript the same forms post,
then redirect (or re-render the page with the errors, status 422). The rules themselves live in
openduty.users, shared with the JSON API.
"""

from zoneinfo import available_timezones

from flask import Blueprint, abort, flash, make_response, redirect, request, url_for
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import SelectChoice

from openduty import ical, oncall, shift_notices, users
from openduty.access import may_manage
from openduty.errors import ApiError, ValidationError
from openduty.extensions import db
from openduty.models import ApiToken, ContactMethod, NotificationRule, Team, TeamMember, User
from openduty.views import confirm_page, done, get_or_404, is_htmx, render
from openduty.views.user_forms import (
    ContactMethodForm,
    PasswordForm,
    ProfileForm,
    RuleForm,
    ShiftNoticeForm,
    TokenForm,
    UserForm,
)

bp = Blueprint("users", __name__)

# Events that refresh the profile's lists (hx-trigger="<event> from:body").
CONTACT_METHODS_CHANGED = "contact-methods-changed"
NOTIFICATION_RULES_CHANGED = "notification-rules-changed"
API_TOKENS_CHANGED = "api-tokens-changed"

_time_zones: list[str] = []


def time_zones() -> list[str]:
    """Every IANA zone name, sorted, for the time zone picker."""
    if not _time_zones:
        _time_zones.extend(sorted(available_timezones() | {"UTC"}))
    return _time_zones


def _show_errors(form: FlaskForm, exc: ApiError) -> None:
    """Put each field's message next to the field; the rest goes above the form."""
    for name, message in exc.fields.items():
        if name in form:
            form[name].errors = [message]
        else:
            form.form_errors.append(message)
    if not exc.fields:
        form.form_errors.append(exc.message)


# --- Access (who may reach each page: openduty.access.RULES) ------------------------------------


def _manageable_user(user_id: int) -> User:
    """The user whose profile the current user may change: their own, or anyone's for admins."""
    user = get_or_404(User, user_id)
    if not may_manage(current_user, user.id):
        abort(403, "Only admins can change other users' profiles.")
    return user


def _profile_url(user: User) -> str:
    return url_for("users.profile") if user.id == current_user.id else url_for("users.show", user_id=user.id)


# --- Admin pages ----------------------------------------------------------------------------------


@bp.get("/users/")
def index():
    counts = select(ContactMethod.user_id, func.count(ContactMethod.id)).group_by(ContactMethod.user_id)
    method_counts = {user_id: count for user_id, count in db.session.execute(counts)}
    all_users = db.session.scalars(select(User).order_by(User.active.desc(), func.lower(User.name))).all()
    # The Role column: what each may do beyond their teams, then their teams (one query).
    teams = select(TeamMember.user_id, TeamMember.role, Team.name).join(Team).order_by(func.lower(Team.name))
    team_roles: dict[int, list[tuple[str, str]]] = {}
    for user_id, role, team in db.session.execute(teams):
        team_roles.setdefault(user_id, []).append((role, team))
    return render("users/index.html", users=all_users, method_counts=method_counts, team_roles=team_roles)


@bp.route("/users/new", methods=["GET", "POST"])
def create():
    form = UserForm(time_zone="UTC")
    if form.is_submitted():
        try:
            user = users.create_user(form.data)
        except ValidationError as exc:
            _show_errors(form, exc)
        else:
            db.session.commit()
            flash(f"Created {user.name}. Add their contact methods and notification rules below.")
            return redirect(url_for("users.show", user_id=user.id))
    return render("users/form.html", form=form, user=None, time_zones=time_zones(), status=422 if form.errors else 200)


@bp.route("/users/<int:user_id>/edit", methods=["GET", "POST"])
def edit(user_id: int):
    user = get_or_404(User, user_id)
    form = UserForm(obj=user)
    if form.is_submitted():
        data = dict(form.data)
        if user.id == current_user.id:
            # Your own password changes on your profile (with the current one); your own admin
            # rights stay, so that there is always an admin who can log in.
            data.pop("password")
            data.pop("is_admin")
            data.pop("observer")
        try:
            users.update_user(user, data, actor=current_user)
        except ApiError as exc:
            db.session.rollback()
            db.session.refresh(user)  # what the rollback expired, loaded before the page shows it
            _show_errors(form, exc)
        else:
            db.session.commit()
            flash(f"Saved {user.name}.")
            return redirect(url_for("users.index"))
    status = 422 if form.errors or form.form_errors else 200
    return render("users/form.html", form=form, user=user, time_zones=time_zones(), status=status)


def _set_active(user_id: int, active: bool):
    user = get_or_404(User, user_id)
    try:
        users.set_active(user, active, actor=current_user)
    except ApiError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        db.session.commit()
        if active:
            flash(f"Reactivated {user.name}.")
        else:
            flash(f"Deactivated {user.name}: they cannot log in and are never paged. Their history stays.")
    return done(url_for("users.index"))


@bp.route("/users/<int:user_id>/deactivate", methods=["GET", "POST"])
def deactivate(user_id: int):
    """Deactivate a user: GET asks, POST deactivates."""
    if request.method == "GET":
        user = get_or_404(User, user_id)
        return confirm_page(
            f"Deactivate {user.name}?",
            "Deactivate",
            url_for("users.index"),
            f"{user.name} can no longer log in, their sessions and API tokens stop working, and they are never "
            "paged: their time on schedules becomes a gap. Their history stays; you can reactivate them.",
        )
    return _set_active(user_id, False)


@bp.post("/users/<int:user_id>/reactivate")
def reactivate(user_id: int):
    return _set_active(user_id, True)


# --- Profile --------------------------------------------------------------------------------------


def _rule_form(user: User, formdata=None) -> RuleForm:
    form = RuleForm(formdata=formdata)
    form.contact_method_id.choices = [SelectChoice(str(m.id), str(m)) for m in user.contact_methods]
    return form


def _profile_page(user: User, block: str | None = None, status: int = 200, **forms):
    """The profile page of `user`, or one block of it for htmx; `forms` replaces the fresh forms."""
    user = users.with_profile(user)
    context = {
        "user": user,
        "own": user.id == current_user.id,
        "profile_form": ProfileForm(formdata=None, obj=user),
        "password_form": PasswordForm(formdata=None),
        "contact_form": ContactMethodForm(formdata=None),
        "rule_form": _rule_form(user),
        "token_form": TokenForm(formdata=None, prefix="token"),
        "notice_form": ShiftNoticeForm(user, None),
        "new_token": None,
        "time_zones": time_zones(),
    }
    if block is None or not is_htmx():  # the schedule panels at the bottom of the full page
        context["feed_links"] = ical.calendar_links(user) if context["own"] else None
        context["upcoming_shifts"] = oncall.upcoming_shifts(user)
    context.update(forms)
    return render("users/profile.html", block=block, status=status, **context)


def _changed(response, *events: str):
    response.headers["HX-Trigger"] = ", ".join(events)
    return response


def _owned_or_404(model, object_id: int, user: User, description: str):
    """One of `user`'s contact methods, rules or tokens; another user's is as unknown as none."""
    return db.one_or_404(select(model).filter_by(id=object_id, user_id=user.id), description=description)


def _add(user: User, form: FlaskForm, action, form_block: str, form_name: str, event: str, done):
    """Submit an add form: errors go next to its fields (422, the form's block re-rendered); once
    added, htmx gets a fresh form and `event`, a plain POST a redirect flashing `done(added)`."""
    try:
        added = action(user, form.data)
    except ValidationError as exc:
        db.session.rollback()
        _show_errors(form, exc)
        return _profile_page(user, block=form_block, status=422, **{form_name: form})
    db.session.commit()
    if is_htmx():
        return _changed(_profile_page(user, block=form_block), event)
    flash(done(added))
    return redirect(_profile_url(user))


def _removed(user: User, message: str, *events: str):
    """After a delete: commit; htmx gets an empty answer and `events`, a plain POST a redirect."""
    db.session.commit()
    if is_htmx():
        return _changed(make_response("", 200), *events)
    flash(message)
    return redirect(_profile_url(user))


@bp.route("/profile", methods=["GET", "POST"])
def profile():
    """The current user's profile; POST saves name, email and time zone."""
    user = current_user._get_current_object()
    if request.method == "GET":
        return _profile_page(user)
    form = ProfileForm()
    try:
        users.update_user(user, form.data, actor=user)
    except ValidationError as exc:
        db.session.rollback()
        _show_errors(form, exc)
        return _profile_page(user, block="details", status=422, profile_form=form)
    db.session.commit()
    if is_htmx():
        return _profile_page(user, block="details", saved="details")
    flash("Saved your profile.")
    return redirect(url_for("users.profile"))


@bp.post("/profile/password")
def change_password():
    user = current_user._get_current_object()
    form = PasswordForm()
    try:
        users.change_password(user, form.current_password.data, form.password.data, form.confirm.data)
    except ValidationError as exc:
        db.session.rollback()
        _show_errors(form, exc)
        return _profile_page(user, block="password", status=422, password_form=form)
    db.session.commit()
    # The new password ended every session, this one too; this browser stays logged in.
    login_user(user)
    if is_htmx():
        return _profile_page(user, block="password", saved="password")
    flash("Changed your password. Every other session is logged out.")
    return redirect(url_for("users.profile"))


@bp.post("/profile/shift-notices")
def save_shift_notices():
    user = current_user._get_current_object()
    form = ShiftNoticeForm(user, request.form)
    try:
        shift_notices.save_settings(user, form.data)
    except ValidationError as exc:
        db.session.rollback()
        _show_errors(form, exc)
        return _profile_page(user, block="shift_notices", status=422, notice_form=form)
    db.session.commit()
    if not is_htmx():
        return redirect(url_for("users.profile"))
    return _profile_page(user, block="shift_notices", saved="shift_notices")


@bp.post("/profile/sessions/end")
def end_sessions():
    """Log out everywhere: every session of the current user ends, this one included."""
    current_user.end_sessions()
    db.session.commit()
    logout_user()
    flash("You are logged out everywhere. Log in again to continue.")
    return redirect(url_for("auth.login"))


@bp.get("/users/<int:user_id>")
def show(user_id: int):
    user = _manageable_user(user_id)
    if user.id == current_user.id:
        return redirect(url_for("users.profile"))
    return _profile_page(user)


# --- Contact methods ------------------------------------------------------------------------------


@bp.get("/users/<int:user_id>/contact-methods")
def contact_methods(user_id: int):
    return _profile_page(_manageable_user(user_id), block="contact_method_list")


@bp.post("/users/<int:user_id>/contact-methods")
def add_contact_method(user_id: int):
    return _add(
        _manageable_user(user_id),
        ContactMethodForm(),
        users.add_contact_method,
        "contact_method_form",
        "contact_form",
        CONTACT_METHODS_CHANGED,
        lambda method: f"Added {method}.",
    )


@bp.route("/users/<int:user_id>/contact-methods/<int:method_id>/delete", methods=["GET", "POST"])
def delete_contact_method(user_id: int, method_id: int):
    """Remove a contact method and its rules: GET asks (without JavaScript), POST removes."""
    user = _manageable_user(user_id)
    method = _owned_or_404(ContactMethod, method_id, user, "No such contact method.")
    label = str(method)
    if request.method == "GET":
        return confirm_page(
            f"Remove {label}?",
            "Remove contact method",
            _profile_url(user),
            "The notification rules that use it are removed with it: pages stop going there.",
        )
    users.delete_contact_method(method)
    message = f"Removed {label} and its notification rules."
    return _removed(user, message, CONTACT_METHODS_CHANGED, NOTIFICATION_RULES_CHANGED)


# --- Notification rules ---------------------------------------------------------------------------


@bp.get("/users/<int:user_id>/notification-rules")
def notification_rules(user_id: int):
    return _profile_page(_manageable_user(user_id), block="rule_list")


@bp.get("/users/<int:user_id>/notification-rules/form")
def notification_rule_form(user_id: int):
    return _profile_page(_manageable_user(user_id), block="rule_form")


@bp.post("/users/<int:user_id>/notification-rules")
def add_notification_rule(user_id: int):
    user = _manageable_user(user_id)
    return _add(
        user,
        _rule_form(user, request.form),
        users.add_notification_rule,
        "rule_form",
        "rule_form",
        NOTIFICATION_RULES_CHANGED,
        lambda rule: f"Added a {rule.urgency}-urgency rule: {rule.contact_method} after {rule.delay_minutes} min.",
    )


@bp.route("/users/<int:user_id>/notification-rules/<int:rule_id>/delete", methods=["GET", "POST"])
def delete_notification_rule(user_id: int, rule_id: int):
    """Remove a notification rule: GET asks (without JavaScript), POST removes."""
    user = _manageable_user(user_id)
    rule = _owned_or_404(NotificationRule, rule_id, user, "No such notification rule.")
    if request.method == "GET":
        return confirm_page(
            "Remove this notification rule?",
            "Remove rule",
            _profile_url(user),
            f"{rule.urgency.capitalize()} urgency: {rule.contact_method} after {rule.delay_minutes} min. "
            "With no rule left, pages go by email at once.",
        )
    users.delete_notification_rule(rule)
    return _removed(user, "Removed the notification rule.", NOTIFICATION_RULES_CHANGED)


# --- API tokens -----------------------------------------------------------------------------------


@bp.get("/users/<int:user_id>/tokens")
def tokens(user_id: int):
    return _profile_page(_manageable_user(user_id), block="token_list")


@bp.post("/profile/tokens")
def create_token():
    """Create a token for yourself. The secret is in this one response only (never redirected to)."""
    user = current_user._get_current_object()
    form = TokenForm(prefix="token")
    try:
        _, secret = users.issue_token(user, form.data)
    except ValidationError as exc:
        db.session.rollback()
        _show_errors(form, exc)
        return _profile_page(user, block="token_form", status=422, token_form=form)
    db.session.commit()
    response = _profile_page(user, block="token_form", new_token=secret)
    response.headers["Cache-Control"] = "no-store"
    return _changed(response, API_TOKENS_CHANGED) if is_htmx() else response


@bp.route("/users/<int:user_id>/tokens/<int:token_id>/revoke", methods=["GET", "POST"])
def revoke_token(user_id: int, token_id: int):
    """Revoke an API token: GET asks (without JavaScript), POST revokes."""
    user = _manageable_user(user_id)
    token = _owned_or_404(ApiToken, token_id, user, "No such API token.")
    if request.method == "GET":
        return confirm_page(
            f"Revoke the API token “{token.name}”?",
            "Revoke token",
            _profile_url(user),
            "Every script or tool using it is refused from now on. This cannot be undone.",
        )
    message = f"Revoked the token “{token.name}”."
    users.revoke_token(token)
    return _removed(user, message, API_TOKENS_CHANGED)
