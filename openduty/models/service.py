"""Services and their integrations (the keys that monitoring tools send events with)."""

import secrets
import string
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from openduty import clock, masking
from openduty.extensions import db
from openduty.models.types import UTCDateTime

INTEGRATION_KINDS = ("events_v2", "events_v1", "alertmanager", "generic", "heartbeat", "email")
INTEGRATION_KIND_LABELS = {
    "events_v2": "PagerDuty Events API v2",
    "events_v1": "PagerDuty Events API v1 (generic)",
    "alertmanager": "Prometheus Alertmanager",
    "generic": "Generic JSON webhook",
    "heartbeat": "Heartbeat (a ping expected every interval)",
    "email": "Inbound email",
}
_KEY_ALPHABET = string.ascii_lowercase + string.digits
# Every integration key is this long (a PagerDuty integration key's shape); ingest refuses longer.
INTEGRATION_KEY_LENGTH = 32


# A service's urgency setting: what urgency its new incidents get (openduty.urgency, docs/escalation.md).
SERVICE_URGENCIES = ("high", "low", "by_severity", "support_hours")
SERVICE_URGENCY_LABELS = {
    "high": "High: page by the high-urgency rules",
    "low": "Low: notify by the low-urgency rules",
    "by_severity": "By severity: critical and error high, warning and info low",
    "support_hours": "By support hours: high within them, low outside",
}


def new_integration_key() -> str:
    """A 32-character secret, the same shape as a PagerDuty integration key."""
    return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(INTEGRATION_KEY_LENGTH))


class Service(db.Model):
    __tablename__ = "services"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(String(2000), default="")
    escalation_policy_id: Mapped[int | None] = mapped_column(
        ForeignKey("escalation_policies.id", ondelete="SET NULL"), index=True
    )
    # Minutes after an acknowledge at which the incident re-triggers; None: never.
    ack_timeout_minutes: Mapped[int | None] = mapped_column()
    disabled: Mapped[bool] = mapped_column(default=False)
    # Intake (openduty.event_intake): resolve an open incident after this many hours without a new
    # alert; alerts sent without a dedup key join the incident opened in the last this-many minutes.
    auto_resolve_hours: Mapped[int | None] = mapped_column()
    group_window_minutes: Mapped[int | None] = mapped_column()
    # The team that owns it: its managers may change it (admins may change everything).
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    # One of SERVICE_URGENCIES; existing services were set to "high" by the migration.
    urgency: Mapped[str] = mapped_column(String(16), default="by_severity", server_default="by_severity")
    # {"time_zone": "Europe/Budapest", "days": ["mon", ...], "start": "09:00", "end": "17:00"} or None.
    support_hours: Mapped[dict | None] = mapped_column(JSON)

    escalation_policy: Mapped["EscalationPolicy | None"] = relationship()  # noqa: F821
    integrations: Mapped[list["Integration"]] = relationship(
        back_populates="service", cascade="all, delete-orphan", order_by="Integration.id"
    )

    def state(self, in_maintenance: bool) -> str:
        """disabled, maintenance or active, for badges (the view knows which services are in
        maintenance: openduty.models.maintenance.maintenance_ends)."""
        if self.disabled:
            return "disabled"
        return "maintenance" if in_maintenance else "active"


class Integration(db.Model):
    __tablename__ = "integrations"

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(INTEGRATION_KEY_LENGTH), unique=True, default=new_integration_key)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    service: Mapped[Service] = relationship(back_populates="integrations")

    @property
    def kind_label(self) -> str:
        return INTEGRATION_KIND_LABELS.get(self.kind, self.kind)

    def regenerate_key(self) -> str:
        """A new secret; the old one stops working at commit."""
        self.key = new_integration_key()
        return self.key

    def shown_key(self, viewer) -> str:
        """The key as `viewer` may see it: in full for admins and the owning team's managers, else masked."""
        return self.key if viewer is not None and viewer.manages(self.service.team_id) else masking.secret(self.key)

    def shown_path(self, viewer) -> str:
        """path(), with the key in it (Alertmanager, generic) as `viewer` may see it."""
        return self.path().replace(self.key, self.shown_key(viewer))

    def path(self) -> str:
        """Where this integration's events go (relative to the base URL)."""
        if self.kind == "alertmanager":
            return f"/integrations/alertmanager/{self.key}"
        if self.kind == "generic":
            return f"/integrations/generic/{self.key}"
        if self.kind == "heartbeat":
            return f"/heartbeat/{self.key}"
        if self.kind == "events_v1":
            return "/generic/2010-04-15/create_event.json"
        return "/v2/enqueue"
