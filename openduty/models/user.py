"""Users, their API tokens, contact methods and notification rules."""

import hashlib
import secrets
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from openduty import clock
from openduty.extensions import db
from openduty.models.types import UTCDateTime

CONTACT_KINDS = ("email", "sms", "voice", "slack", "webhook", "pushover", "xmpp", "apprise")
CONTACT_KIND_LABELS = {
    "email": "Email",
    "sms": "SMS",
    "voice": "Voice call",
    "slack": "Slack webhook",
    "webhook": "Webhook",
    "pushover": "Pushover",
    "xmpp": "XMPP",
    "apprise": "Apprise URL",
}


def hash_token(token: str) -> str:
    """Tokens are long random strings, so a fast unsalted hash is enough to store them safely."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_calendar_token() -> str:
    """A fresh secret for a user's calendar feed links (calendar apps cannot send headers)."""
    return secrets.token_urlsafe(24)


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    is_admin: Mapped[bool] = mapped_column(default=False)
    # An observer reads everything and changes nothing (no incident actions, no shifts): stakeholders.
    observer: Mapped[bool] = mapped_column(default=False, server_default="0")
    active: Mapped[bool] = mapped_column(default=True)
    # None: the user can be paged but cannot log in until a password is set.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    auth_source: Mapped[str] = mapped_column(String(16), default="local")  # local | ldap
    # A directory user's entry (its DN): how logins and sync find them again when their email changes.
    directory_dn: Mapped[str | None] = mapped_column(String(1000), unique=True)
    # Made with the user (and filled for older users by a migration), so showing a feed link never
    # writes; only the explicit "revoke and issue new links" POST changes it.
    calendar_token: Mapped[str | None] = mapped_column(String(64), unique=True, default=new_calendar_token)
    # Part of every session's id (get_id): bumping it ends every session of this user (logout,
    # password change, deactivation, "log out everywhere"), because old cookies no longer match.
    session_generation: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    contact_methods: Mapped[list["ContactMethod"]] = relationship(
        back_populates="user", cascade="all, delete-orphan", order_by="ContactMethod.id"
    )
    notification_rules: Mapped[list["NotificationRule"]] = relationship(
        back_populates="user",
        cascade="all, delete-orphan",
        order_by="(NotificationRule.delay_minutes, NotificationRule.id)",
    )
    api_tokens: Mapped[list["ApiToken"]] = relationship(
        back_populates="user", cascade="all, delete-orphan", order_by="ApiToken.id"
    )
    memberships: Mapped[list["TeamMember"]] = relationship(  # noqa: F821
        back_populates="user", cascade="all, delete-orphan", order_by="TeamMember.id"
    )

    @property
    def role(self) -> str:
        """admin, observer or member: what the user may do beyond their teams."""
        return "admin" if self.is_admin else "observer" if self.observer else "member"

    def team_roles(self) -> dict[int, str]:
        """Team id -> role. Remembered when the login loads the user (`remember_teams`), so that
        pages and rules ask without a query, even after a rollback expired the memberships."""
        remembered = getattr(self, "_team_roles", None)
        return remembered if remembered is not None else {m.team_id: m.role for m in self.memberships}

    def remember_teams(self) -> None:
        self._team_roles = {m.team_id: m.role for m in self.memberships}

    def team_ids(self) -> set[int]:
        return set(self.team_roles())

    def managed_team_ids(self) -> set[int]:
        return {team_id for team_id, role in self.team_roles().items() if role == "manager"}

    def manages(self, team_id: int | None) -> bool:
        """Whether this user may edit what the team owns: admins always; managers of that team."""
        return self.is_admin or (team_id is not None and team_id in self.managed_team_ids())

    @property
    def is_active(self) -> bool:  # Flask-Login: a deactivated user cannot log in
        return self.active

    def get_id(self) -> str:  # Flask-Login: what the session cookie holds
        return f"{self.id}:{self.session_generation or 0}"

    def end_sessions(self) -> None:
        """Log this user out everywhere: every session cookie issued so far stops working."""
        self.session_generation = (self.session_generation or 0) + 1

    def set_password(self, password: str | None) -> None:
        """Set (or clear) the password; every existing session ends, so a stolen cookie dies with it."""
        self.password_hash = generate_password_hash(password) if password else None
        self.end_sessions()

    def check_password(self, password: str) -> bool:
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)

    def regenerate_calendar_token(self) -> str:
        """Revoke the calendar token and issue a new one (old feed links stop working)."""
        self.calendar_token = new_calendar_token()
        return self.calendar_token

    @classmethod
    def by_email(cls, email: str) -> "User | None":
        return db.session.scalar(select(cls).where(db.func.lower(cls.email) == email.strip().lower()))

    def __repr__(self) -> str:
        return f"<User {self.email}>"


class ApiToken(db.Model):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters, shown in the UI so people can tell their tokens apart.
    prefix: Mapped[str] = mapped_column(String(12))
    # A read-only token may only read (GET): for dashboards and reports that must never change anything.
    read_only: Mapped[bool] = mapped_column(default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(back_populates="api_tokens")

    @classmethod
    def issue(cls, user: User, name: str, read_only: bool = False) -> tuple["ApiToken", str]:
        """Create a token for `user`; returns the row and the secret, which is never stored."""
        secret = "od_" + secrets.token_urlsafe(30)
        token = cls(user=user, name=name, token_hash=hash_token(secret), prefix=secret[:10], read_only=read_only)
        db.session.add(token)
        return token, secret

    @classmethod
    def authenticate(cls, secret: str) -> "ApiToken | None":
        return db.session.scalar(select(cls).where(cls.token_hash == hash_token(secret)))


class ContactMethod(db.Model):
    __tablename__ = "contact_methods"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(1000))
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    user: Mapped[User] = relationship(back_populates="contact_methods")
    rules: Mapped[list["NotificationRule"]] = relationship(
        back_populates="contact_method", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def kind_label(self) -> str:
        return CONTACT_KIND_LABELS.get(self.kind, self.kind)

    def __str__(self) -> str:
        return f"{self.kind_label}: {self.address}"


class NotificationRule(db.Model):
    __tablename__ = "notification_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    contact_method_id: Mapped[int] = mapped_column(ForeignKey("contact_methods.id", ondelete="CASCADE"))
    delay_minutes: Mapped[int] = mapped_column(default=0)
    # Which list the rule is in: "high" rules page for high-urgency incidents, "low" for low ones.
    urgency: Mapped[str] = mapped_column(String(8), default="high", server_default="high")

    user: Mapped[User] = relationship(back_populates="notification_rules")
    contact_method: Mapped[ContactMethod] = relationship(back_populates="rules")
