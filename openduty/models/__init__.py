"""The domain models, one module per aggregate. Importing this package registers every table."""

from openduty.models.audit import AuditEntry
from openduty.models.change_event import ChangeEvent
from openduty.models.cover_request import CoverRequest
from openduty.models.email_integration import EmailSettings
from openduty.models.event_rule import EventRule, SuppressedAlert
from openduty.models.heartbeat import Heartbeat
from openduty.models.incident import Counter, Incident, LogEntry
from openduty.models.maintenance import MaintenanceWindow, MaintenanceWindowService
from openduty.models.notification import Notification
from openduty.models.policy import EscalationLevel, EscalationPolicy, EscalationTarget
from openduty.models.schedule import LayerEvent, LayerParticipant, Schedule, ScheduleLayer, ScheduleOverride
from openduty.models.service import Integration, Service
from openduty.models.shift_notice import ShiftNotice, ShiftNoticeSettings
from openduty.models.team import Team, TeamMember
from openduty.models.timer import Timer
from openduty.models.user import ApiToken, ContactMethod, NotificationRule, User

__all__ = [
    "ApiToken",
    "AuditEntry",
    "ChangeEvent",
    "ContactMethod",
    "Counter",
    "CoverRequest",
    "EmailSettings",
    "EscalationLevel",
    "EscalationPolicy",
    "EscalationTarget",
    "EventRule",
    "Heartbeat",
    "Incident",
    "Integration",
    "LayerEvent",
    "LayerParticipant",
    "LogEntry",
    "MaintenanceWindow",
    "MaintenanceWindowService",
    "Notification",
    "NotificationRule",
    "Schedule",
    "ScheduleLayer",
    "ScheduleOverride",
    "Service",
    "SuppressedAlert",
    "ShiftNotice",
    "ShiftNoticeSettings",
    "Team",
    "TeamMember",
    "Timer",
    "User",
]
