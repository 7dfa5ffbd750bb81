"""An `email` integration's own settings (one row per such integration): how a message's dedup key
is found and which subjects resolve. The rules are openduty.inbound_email."""

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, backref, mapped_column, relationship

from openduty.extensions import db
from openduty.models.service import Integration

# Where the dedup key comes from: the subject itself, or dedup_regex's capture group on the
# subject or on the body.
DEDUP_SOURCES = ("subject", "subject_regex", "body_regex")
# Case-insensitive: a subject starting (after any "**", "[" or spaces) with RESOLVED, RECOVERY,
# RECOVERED or OK resolves, e.g. "RESOLVED: Disk full", "[OK] backup", "** RECOVERY Service Alert".
DEFAULT_RESOLVE_REGEX = r"(?i)^\W*(?:RESOLVED|RECOVERY|RECOVERED|OK)\b"
MAX_REGEX_LENGTH = 500


class EmailSettings(db.Model):
    __tablename__ = "email_integrations"

    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True)
    dedup_source: Mapped[str] = mapped_column(String(20), default="subject")
    # A regex with one capture group (the dedup key), for the *_regex dedup sources.
    dedup_regex: Mapped[str | None] = mapped_column(String(MAX_REGEX_LENGTH))
    # A regex on the subject: a message whose subject matches resolves; None: mail never resolves.
    resolve_regex: Mapped[str | None] = mapped_column(String(MAX_REGEX_LENGTH))

    integration: Mapped[Integration] = relationship(
        backref=backref("email_settings", uselist=False, cascade="all, delete-orphan", passive_deletes=True)
    )
