"""The domain models, one module per aggregate. Importing this package registers every table."""

from openduty.models.incident import Incident, LogEntry
from openduty.models.notification import Notification
from openduty.models.policy import EscalationLevel, EscalationPolicy, EscalationTarget
from openduty.models.schedule import Schedule
from openduty.models.service import Integration, Service
from openduty.models.user import ApiToken, ContactMethod, NotificationRule, User

__all__ = [
    "ApiToken",
    "ContactMethod",
    "EscalationLevel",
    "EscalationPolicy",
    "EscalationTarget",
    "Incident",
    "Integration",
    "LogEntry",
    "Notification",
    "NotificationRule",
    "Schedule",
    "Service",
    "User",
]
