"""Timers: one durable "do this at that time" per (kind, object), for the jobs that are not pages.

A row says when the timer of `kind` for the object `ref_id` is due (a heartbeat's deadline, the start
or end of a maintenance window, ...). The RQ job that fires it is only its alarm clock, armed after
commit and re-armed by reconcile (openduty.timers), like escalations and pages.
"""

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from openduty.extensions import db
from openduty.models.types import UTCDateTime


class Timer(db.Model):
    __tablename__ = "timers"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    ref_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
