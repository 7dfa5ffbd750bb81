"""Maintenance windows: a time range during which the services in it page nobody.

A service is in maintenance at t while any window of it covers t (start <= t < end); overlapping
windows simply add up. `maintenance_ends` is the one query that answers "which of these services
are in maintenance at t" (and until when), read through the association table's primary key
(service_id first) and the windows' primary key.
"""

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, func, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from openduty import clock
from openduty.extensions import db
from openduty.models.service import Service
from openduty.models.types import UTCDateTime


class MaintenanceWindow(db.Model):
    __tablename__ = "maintenance_windows"
    # The lists (current, upcoming, past) read windows by their end.
    __table_args__ = (Index("ix_maintenance_windows_end_start", "end", "start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    description: Mapped[str] = mapped_column(String(1000), default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    links: Mapped[list["MaintenanceWindowService"]] = relationship(
        back_populates="window", cascade="all, delete-orphan", order_by="MaintenanceWindowService.service_id"
    )
    services: Mapped[list["Service"]] = relationship(  # noqa: F821
        secondary="maintenance_window_services", viewonly=True, order_by="Service.name"
    )
    created_by: Mapped["User | None"] = relationship()  # noqa: F821

    def state(self, at: datetime) -> str:
        """upcoming, current or past at `at`."""
        if at < self.start:
            return "upcoming"
        return "current" if at < self.end else "past"

    @property
    def service_ids(self) -> list[int]:
        return [link.service_id for link in self.links]


class MaintenanceWindowService(db.Model):
    """One service in one window."""

    __tablename__ = "maintenance_window_services"

    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), primary_key=True)
    window_id: Mapped[int] = mapped_column(
        ForeignKey("maintenance_windows.id", ondelete="CASCADE"), primary_key=True, index=True
    )

    window: Mapped[MaintenanceWindow] = relationship(back_populates="links")


def _covering(at) -> tuple:
    """Conditions on a window (joined through its services): it covers `at` (start <= at < end)."""
    return MaintenanceWindow.start <= at, MaintenanceWindow.end > at


def maintenance_ends(service_ids: Iterable[int], at: datetime) -> dict[int, datetime]:
    """Which of these services are in maintenance at `at`, each with the latest end of the windows
    covering it then: one query, however many services."""
    ids = sorted(set(service_ids))
    if not ids:
        return {}
    link = MaintenanceWindowService
    query = (
        select(link.service_id, func.max(MaintenanceWindow.end))
        .join(MaintenanceWindow, MaintenanceWindow.id == link.window_id)
        .where(link.service_id.in_(ids), *_covering(at))
        .group_by(link.service_id)
    )
    return dict(db.session.execute(query).all())


def maintenance_end(service_id, at):
    """`maintenance_ends` of one service as a scalar subquery, for a statement about other rows (ingest
    asks it of the incidents it writes): the latest end of the windows covering `at`, else NULL.
    `service_id` and `at` may be columns of the enclosing statement's table."""
    link = MaintenanceWindowService
    return (
        select(func.max(MaintenanceWindow.end))
        .select_from(link)
        .join(MaintenanceWindow, MaintenanceWindow.id == link.window_id)
        .where(link.service_id == service_id, *_covering(at))
        .scalar_subquery()
    )


def window_team_ids(window_id: int) -> list[int | None]:
    """The teams owning the services of a window (None for a service of no team): changing the window
    needs manage rights on all of them (openduty.access.OWNED_BY)."""
    query = (
        select(Service.team_id)
        .join(MaintenanceWindowService, MaintenanceWindowService.service_id == Service.id)
        .where(MaintenanceWindowService.window_id == window_id)
    )
    return list(db.session.scalars(query))
