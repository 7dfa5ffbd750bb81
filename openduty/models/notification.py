"""Notifications: one page (or resolve notice) to one user on one contact method.

A Notification row is the durable record of a page: the RQ `deliver` job is only its timer. The
row's status moves pending -> sending (claimed by exactly one job) -> sent | failed, or pending ->
cancelled when the incident is acknowledged or resolved first.
"""

import hashlib
import os
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from openduty import clock
from openduty.extensions import db
from openduty.liveness import host_id, pid_alive
from openduty.models.types import UTCDateTime

NOTIFICATION_STATUSES = ("pending", "sending", "sent", "failed", "cancelled")
NOTIFICATION_PURPOSES = ("page", "resolve", "test", "reminder", "handoff", "summary", "cover")
# A page that may have reached its receiver this many times (unanswered requests, a worker that
# died mid-send) is not sent again: "at most twice", see docs/reliability.md.
MAX_UNCONFIRMED = 2
# Channels throttled per number (at most one message a minute; more pages fold into the next).
THROTTLED_KINDS = ("sms", "voice")
# The reports' partial indexes (openduty.reports), as literal SQL so that queries match them: pages
# sent, by time; and the pages that went beyond level 1 (an escalation), by incident.
SENT_PAGE_SQL = "purpose = 'page' AND status = 'sent'"
ESCALATED_PAGE_SQL = "purpose = 'page' AND (level > 1 OR loop > 0)"


@cache
def _this_host() -> str:
    """This host and PID namespace (liveness.host_id), as a short digest that fits the column."""
    return hashlib.sha256(host_id().encode()).hexdigest()[:32]


def this_process() -> str:
    """Who claims a row for sending ("<host digest>:<pid>"), so reconcile can tell when it is gone."""
    return f"{_this_host()}:{os.getpid()}"


def _process_gone(claimer: str | None) -> bool:
    """Whether the claiming process is known dead (only a process of this host can be seen)."""
    where, _, pid = (claimer or "").rpartition(":")
    return where == _this_host() and pid.isdigit() and not pid_alive(int(pid))


class Notification(db.Model):
    __tablename__ = "notifications"
    __table_args__ = (
        # The throttle folds pending pages to the same number into one message.
        Index("ix_notifications_kind_address_status", "kind", "address", "status"),
        Index(
            "ix_notifications_sent_pages",
            "sent_at",
            "user_id",
            "incident_id",
            sqlite_where=text(SENT_PAGE_SQL),
            postgresql_where=text(SENT_PAGE_SQL),
        ),
        Index(
            "ix_notifications_escalated_pages",
            "incident_id",
            sqlite_where=text(ESCALATED_PAGE_SQL),
            postgresql_where=text(ESCALATED_PAGE_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    contact_method_id: Mapped[int | None] = mapped_column(ForeignKey("contact_methods.id", ondelete="SET NULL"))
    # The channel and address at the time of the page (a user without rules is emailed at their
    # login address, with no contact method), so a later edit cannot redirect a page in flight.
    kind: Mapped[str] = mapped_column(String(16), default="email")
    address: Mapped[str] = mapped_column(String(1000), default="")
    purpose: Mapped[str] = mapped_column(String(16), default="page")  # NOTIFICATION_PURPOSES
    # Where in the policy the page came from (None for reassign, resolve notices and tests).
    level: Mapped[int | None] = mapped_column()
    loop: Mapped[int | None] = mapped_column()
    # The incident urgency a page was planned for (None for notices and tests): delivery does not
    # send a page whose incident's urgency has changed since.
    urgency: Mapped[str | None] = mapped_column(String(8))
    send_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    # When and by which process (this_process()) the row was claimed for sending. A claim whose
    # process is gone (same host), or older than the sending lease, is a dead worker's.
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(255))
    # Attempts that may have reached the receiver without it saying so: a request sent but not
    # answered in time, or a worker that died mid-send. At two the page is not sent again.
    unconfirmed: Mapped[int] = mapped_column(default=0, server_default="0")
    # After a transient failure: when the next attempt is due.
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    receipt: Mapped[str | None] = mapped_column(String(255))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Throttled pages to one number ride along in another notification's message.
    folded_into_id: Mapped[int | None] = mapped_column(ForeignKey("notifications.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    incident: Mapped["Incident | None"] = relationship()  # noqa: F821
    user: Mapped["User"] = relationship()  # noqa: F821
    contact_method: Mapped["ContactMethod | None"] = relationship()  # noqa: F821

    def claim_abandoned(self, now: datetime, lease: timedelta) -> bool:
        """Whether this `sending` claim belongs to a worker that is gone (or is older than `lease`)."""
        if self.status != "sending":
            return False
        return self.claimed_at is None or self.claimed_at < now - lease or _process_gone(self.claimed_by)

    @property
    def due_at(self) -> datetime:
        """When the next attempt is due: the send time, or the retry time after a failure."""
        return max(self.send_at, self.retry_at) if self.retry_at else self.send_at


class ContactThrottle(db.Model):
    """The last time an SMS or call went to one number: at most one per THROTTLE_SECONDS.

    Taking the slot is one conditional UPDATE, so two workers never both send inside a minute.
    """

    __tablename__ = "contact_throttles"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    address: Mapped[str] = mapped_column(String(255), primary_key=True)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
