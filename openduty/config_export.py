"""Configuration as code, out: the whole configuration as one JSON document (`openduty export`).

Configuration is what people set up and would want back after a disaster or on a second install:
users (with contact methods, both notification rule lists, shift notice settings), teams and their
members, schedules (layers, participants, overrides), escalation policies (levels, targets),
services (integrations with their email and heartbeat settings, event rules), the global event
rules and the maintenance windows that have not ended. Everything else is operational data and is
left out: incidents and their timelines, notifications, audit entries, timers, counters, contact
throttles, suppressed alerts, change events, shift notices sent, cover requests, the events an
iCal layer expanded to (rebuilt from its calendar on import), heartbeat states and rule hit counts.

Objects refer to each other by stable names, never database ids: users by email, teams, schedules,
policies and services by name; a notification rule names its contact method by its index in the
user's list. Secrets (password hashes, calendar tokens, API tokens, integration keys, the addresses
of contact methods that are secrets themselves, iCal source URLs) are written only `with_secrets`.
openduty.config_check validates a document and openduty.config_import applies it.
"""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from openduty import clock, event_rule_edit, inbound_email, shift_notices
from openduty.extensions import db
from openduty.models import (
    EscalationLevel,
    EscalationPolicy,
    EventRule,
    Integration,
    MaintenanceWindow,
    Schedule,
    ScheduleLayer,
    Service,
    ShiftNoticeSettings,
    Team,
    User,
)

FORMAT = "openduty-config"
# Bumped when a document of the previous version would no longer mean the same thing on import.
VERSION = 1
# Contact kinds whose address is itself a secret (a webhook URL with a token in it, a user key).
SECRET_CONTACT_KINDS = ("slack", "webhook", "pushover", "apprise")
SECTIONS = ("users", "teams", "schedules", "escalation_policies", "services", "event_rules", "maintenance_windows")


def iso(value) -> str | None:
    """A UTC timestamp as ISO 8601 with a Z (a naive wall-clock time as it is)."""
    if value is None:
        return None
    text = value.isoformat()
    return text.replace("+00:00", "Z")


def export_config(with_secrets: bool = False) -> dict[str, Any]:
    """The whole configuration as one JSON-ready document (see the module's docstring)."""
    document: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": iso(clock.now()),
        "with_secrets": with_secrets,
    }
    # Each table read once and held while the document is written: references between objects are
    # then found in the session's identity map (weakly held: a dropped list would mean a query each).
    users, teams, schedules, policies, services = _users(), _teams(), _schedules(), _policies(), _services()
    notices = shift_notices.all_settings()
    document.update(
        {
            "users": [_user(user, notices.get(user.id), with_secrets) for user in users],
            "teams": [_team(team) for team in teams],
            "schedules": [_schedule(schedule, with_secrets) for schedule in schedules],
            "escalation_policies": [_policy(policy) for policy in policies],
            "services": [_service(service, with_secrets) for service in services],
            "event_rules": [_rule(rule) for rule in event_rule_edit.rules_of(None)],
            "maintenance_windows": [_window(window) for window in _windows()],
        }
    )
    return document


# --- Users and teams -------------------------------------------------------------------------------


def _users() -> list[User]:
    query = select(User).options(
        selectinload(User.contact_methods), selectinload(User.notification_rules), selectinload(User.api_tokens)
    )
    return list(db.session.scalars(query.order_by(User.email)))


def _user(user: User, settings: ShiftNoticeSettings | None, with_secrets: bool) -> dict[str, Any]:
    methods = list(user.contact_methods)
    index = {method.id: n for n, method in enumerate(methods)}
    data: dict[str, Any] = {
        "email": user.email,
        "name": user.name,
        "time_zone": user.time_zone,
        "is_admin": user.is_admin,
        "observer": user.observer,
        "active": user.active,
        "auth_source": user.auth_source,
        "directory_dn": user.directory_dn,
    }
    if with_secrets:
        data["password_hash"] = user.password_hash
        data["calendar_token"] = user.calendar_token
        data["api_tokens"] = [
            {"name": t.name, "prefix": t.prefix, "token_hash": t.token_hash, "read_only": t.read_only}
            for t in user.api_tokens
        ]
    data["contact_methods"] = [_contact_method(method, with_secrets) for method in methods]
    data["notification_rules"] = {
        urgency: [
            {"contact_method": index[rule.contact_method_id], "delay_minutes": rule.delay_minutes}
            for rule in user.notification_rules
            if rule.urgency == urgency
        ]
        for urgency in ("high", "low")
    }
    data["shift_notices"] = (
        None
        if settings is None
        else {
            "reminder_hours": settings.reminder_hours,
            "weekly_summary": settings.weekly_summary,
            "contact_method": index.get(settings.contact_method_id),
        }
    )
    return data


def _contact_method(method, with_secrets: bool) -> dict[str, Any]:
    data = {"kind": method.kind, "label": method.label}
    if with_secrets or method.kind not in SECRET_CONTACT_KINDS:
        data["address"] = method.address
    return data


def _teams() -> list[Team]:
    return list(db.session.scalars(select(Team).options(selectinload(Team.members)).order_by(Team.name)))


def _team(team: Team) -> dict[str, Any]:
    return {
        "name": team.name,
        "description": team.description,
        "directory_dn": team.directory_dn,
        "members": [{"user": member.user.email, "role": member.role} for member in team.members],
    }


def _team_name(team_id: int | None) -> str | None:
    return db.session.get(Team, team_id).name if team_id is not None else None


# --- Schedules and policies ------------------------------------------------------------------------


def _schedules() -> list[Schedule]:
    query = select(Schedule).options(
        selectinload(Schedule.layers).selectinload(ScheduleLayer.participants), selectinload(Schedule.overrides)
    )
    return list(db.session.scalars(query.order_by(Schedule.name)))


def _schedule(schedule: Schedule, with_secrets: bool) -> dict[str, Any]:
    return {
        "name": schedule.name,
        "time_zone": schedule.time_zone,
        "description": schedule.description,
        "team": _team_name(schedule.team_id),
        "layers": [_layer(layer, with_secrets) for layer in schedule.layers],
        "overrides": [
            {
                "user": o.user.email,
                "start": iso(o.start),
                "end": iso(o.end),
                "note": o.note,
                "created_by": o.created_by.email if o.created_by else None,
            }
            for o in schedule.overrides
        ],
    }


def _layer(layer: ScheduleLayer, with_secrets: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"name": layer.name, "kind": layer.kind}
    if layer.kind == "ical":
        if with_secrets or layer.ical_url is None:
            data["ical_url"] = layer.ical_url
        data["ical_data"] = layer.ical_data
        return data
    data.update(
        {
            "start": iso(layer.start),
            "shift_length": layer.shift_length,
            "shift_unit": layer.shift_unit,
            "restrictions": layer.restrictions or [],
            "participants": [p.user.email for p in layer.participants],
        }
    )
    return data


def _policies() -> list[EscalationPolicy]:
    query = select(EscalationPolicy).options(
        selectinload(EscalationPolicy.levels).selectinload(EscalationLevel.targets)
    )
    return list(db.session.scalars(query.order_by(EscalationPolicy.name)))


def _policy(policy: EscalationPolicy) -> dict[str, Any]:
    return {
        "name": policy.name,
        "description": policy.description,
        "repeat_count": policy.repeat_count,
        "team": _team_name(policy.team_id),
        "levels": [
            {
                "delay_minutes": level.delay_minutes,
                "targets": [
                    {"user": t.user.email} if t.target_type == "user" else {"schedule": t.schedule.name}
                    for t in level.targets
                ],
            }
            for level in policy.levels
        ],
    }


# --- Services, event rules, maintenance ------------------------------------------------------------


def _services() -> list[Service]:
    query = select(Service).options(selectinload(Service.integrations))
    return list(db.session.scalars(query.order_by(Service.name)))


def _service(service: Service, with_secrets: bool) -> dict[str, Any]:
    return {
        "name": service.name,
        "description": service.description,
        "escalation_policy": service.escalation_policy.name if service.escalation_policy else None,
        "ack_timeout_minutes": service.ack_timeout_minutes,
        "disabled": service.disabled,
        "auto_resolve_hours": service.auto_resolve_hours,
        "group_window_minutes": service.group_window_minutes,
        "team": _team_name(service.team_id),
        "urgency": service.urgency,
        "support_hours": service.support_hours,
        "integrations": [_integration(i, with_secrets) for i in service.integrations],
        "event_rules": [_rule(rule) for rule in event_rule_edit.rules_of(service.id)],
    }


def _integration(integration: Integration, with_secrets: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": integration.kind, "name": integration.name}
    if with_secrets:
        data["key"] = integration.key
    if integration.kind == "email":
        data["email"] = inbound_email.settings_of(integration)
    heartbeat = integration.heartbeat
    if heartbeat is not None:
        data["heartbeat"] = {
            "interval_seconds": heartbeat.interval_seconds,
            "grace_seconds": heartbeat.grace_seconds,
            "paused": heartbeat.paused,
        }
    return data


def _rule(rule: EventRule) -> dict[str, Any]:
    values = event_rule_edit.values_of(rule)
    route_id = values.pop("route_to_service_id")
    route = db.session.get(Service, route_id) if route_id else None
    return {**values, "route_to": route.name if route else None}


def _windows() -> list[MaintenanceWindow]:
    """The windows that have not ended (ended ones are history, not configuration)."""
    query = select(MaintenanceWindow).where(MaintenanceWindow.end > clock.now())
    query = query.options(selectinload(MaintenanceWindow.services), selectinload(MaintenanceWindow.created_by))
    return list(db.session.scalars(query.order_by(MaintenanceWindow.start, MaintenanceWindow.id)))


def _window(window: MaintenanceWindow) -> dict[str, Any]:
    return {
        "start": iso(window.start),
        "end": iso(window.end),
        "description": window.description,
        "services": [service.name for service in window.services],
        "created_by": window.created_by.email if window.created_by else None,
    }
