"""Escalation policies: ordered levels of targets (users, schedules)."""

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from openduty.extensions import db


class EscalationPolicy(db.Model):
    __tablename__ = "escalation_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(String(2000), default="")
    # How many more times the whole policy runs after its last level.
    repeat_count: Mapped[int] = mapped_column(default=0)
    # The team that owns it: its managers may change it (admins may change everything).
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"), index=True)

    levels: Mapped[list["EscalationLevel"]] = relationship(
        back_populates="policy", cascade="all, delete-orphan", order_by="EscalationLevel.position"
    )


class EscalationLevel(db.Model):
    __tablename__ = "escalation_levels"

    id: Mapped[int] = mapped_column(primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("escalation_policies.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    # Minutes to wait on this level before escalating to the next.
    delay_minutes: Mapped[int] = mapped_column(default=5)

    policy: Mapped[EscalationPolicy] = relationship(back_populates="levels")
    targets: Mapped[list["EscalationTarget"]] = relationship(
        back_populates="level", cascade="all, delete-orphan", order_by="EscalationTarget.id"
    )


class EscalationTarget(db.Model):
    __tablename__ = "escalation_targets"

    id: Mapped[int] = mapped_column(primary_key=True)
    level_id: Mapped[int] = mapped_column(ForeignKey("escalation_levels.id", ondelete="CASCADE"), index=True)
    target_type: Mapped[str] = mapped_column(String(16))  # user | schedule
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    schedule_id: Mapped[int | None] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"))

    level: Mapped[EscalationLevel] = relationship(back_populates="targets")
    user: Mapped["User | None"] = relationship()  # noqa: F821
    schedule: Mapped["Schedule | None"] = relationship()  # noqa: F821
