"""The users pages' forms (openduty.views.users): they render fields and keep what was typed;
openduty.users does the validation."""

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, SelectChoice, SelectField, StringField

from openduty import notifiers, shift_notices
from openduty.models import User
from openduty.models.user import CONTACT_KIND_LABELS, CONTACT_KINDS


class ProfileForm(FlaskForm):
    name = StringField("Name")
    email = EmailField("Email")
    time_zone = StringField("Time zone")


class UserForm(ProfileForm):
    is_admin = BooleanField("Admin (can manage users and everything else)")
    observer = BooleanField("Observer (reads everything, changes nothing: for stakeholders)")
    password = PasswordField("Password")


class PasswordForm(FlaskForm):
    current_password = PasswordField("Current password")
    password = PasswordField("New password")
    confirm = PasswordField("New password again")


class ContactMethodForm(FlaskForm):
    kind = SelectField("Kind", validate_choice=False)
    address = StringField("Address")
    label = StringField("Label (optional)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A channel this server cannot send on is listed but cannot be picked (and says why).
        self.kind.choices = [_kind_choice(k) for k in CONTACT_KINDS]


def _kind_choice(kind: str) -> SelectChoice:
    if not notifiers.missing_settings(kind):
        return SelectChoice(kind, CONTACT_KIND_LABELS[kind])
    label = f"{CONTACT_KIND_LABELS[kind]} (not configured on this server)"
    return SelectChoice(kind, label, render_kw={"disabled": ""})


class RuleForm(FlaskForm):
    contact_method_id = SelectField("Contact method", validate_choice=False)
    delay_minutes = StringField("Minutes after being paged", default="0")
    urgency = SelectField("Urgency", choices=[SelectChoice(u, f"{u.title()} urgency") for u in ("high", "low")])


class ShiftNoticeForm(FlaskForm):  # before and after a shift (openduty.shift_notices)
    reminder_hours = StringField("Remind me this many hours before a shift (0: never)")
    reminder_contact_method_id = SelectField("Send reminders, handoffs and summaries to", validate_choice=False)
    weekly_summary = BooleanField("Weekly summary (Mondays 08:00 in my time zone)")

    def __init__(self, user: User, formdata):
        super().__init__(formdata=formdata, data=shift_notices.settings_json(user))
        methods = [(str(m.id), str(m)) for m in user.contact_methods]
        self.reminder_contact_method_id.choices = [("", "My first email"), *methods]


class TokenForm(FlaskForm):
    name = StringField("Token name")
    read_only = BooleanField("Read-only (can read, never change anything)")
