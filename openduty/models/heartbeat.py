"""Heartbeats: the state of each `heartbeat` integration, 1:1 with it (openduty.heartbeats acts on it)."""

from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, backref, mapped_column, relationship

from openduty.extensions import db
from openduty.models.service import Integration
from openduty.models.types import UTCDateTime

# waiting: no ping since it was added or resumed (nothing armed); up: pinged, due at `due_at`;
# missed: no ping in time, its incident is open until the next ping.
HEARTBEAT_STATES = ("waiting", "up", "missed")
# Shorter than this, a cron job or a network blip would page people for nothing.
MIN_INTERVAL_SECONDS = 10
# A heartbeat expected less often than monthly is no heartbeat; the same bound for the grace.
MAX_INTERVAL_SECONDS = 31 * 24 * 3600


class Heartbeat(db.Model):
    __tablename__ = "heartbeats"

    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True)
    interval_seconds: Mapped[int] = mapped_column()
    grace_seconds: Mapped[int] = mapped_column(default=0)
    # A paused heartbeat never fires: its timer is cancelled, and resuming waits for the next ping.
    paused: Mapped[bool] = mapped_column(default=False)
    state: Mapped[str] = mapped_column(String(10), default="waiting")
    last_ping_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When it is missed unless pinged first (set while up; the timer may be armed earlier, see heartbeats).
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    integration: Mapped[Integration] = relationship(
        backref=backref("heartbeat", uselist=False, cascade="all, delete-orphan", passive_deletes=True)
    )

    @property
    def window(self) -> timedelta:
        """How long after a ping the next one must come: the interval plus the grace."""
        return timedelta(seconds=self.interval_seconds + self.grace_seconds)

    @property
    def shown_state(self) -> str:
        """paused, or the state, for badges."""
        return "paused" if self.paused else self.state
