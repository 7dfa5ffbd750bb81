"""Who may do what, as a record: every route, as anonymous, an observer, a member of the team that owns
the objects, a member of another team, that team's manager and an admin.

`ROWS` has one row per endpoint of `app.url_map` (the test fails when a route has no row, and
openduty.access refuses a route with no rule, so a new route fails closed twice). Each row is one
request and the expected outcome per role:

- "login": redirected to the login page; "401", "403", "404": that status;
- "refused": an ingest with a wrong integration key (400 or 404, each format's own dialect);
- "ok": let through (2xx, 3xx other than to the login page, or a 4xx about the input such as 422).

Team A owns the service, policy and schedule in the paths; "member" is in team A and owns the personal
objects (contact methods, rules, tokens, overrides), "other" is in team B, "manager" manages team A,
"observer" is an observer in no team. Each role's client carries both a session and an API token. The
roles run in turn, refused ones first; the member owns three of each personal object and team A two
sets of objects, so that the manager and the admin each act on their own when an earlier role
removed one.
"""

from datetime import datetime, timedelta
from urllib.parse import urlsplit

import pytest

from openduty import maintenance
from openduty.access import RULES
from openduty.ack_links import ack_token
from openduty.extensions import db
from openduty.models import ApiToken, CoverRequest, LogEntry, Schedule, Team, TeamMember
from openduty.notifiers.twilio import request_signature
from tests import factories, factories_escalation, factories_events, factories_schedules

ROLES = ("anonymous", "observer", "member", "other", "manager", "admin")
ORDER = ("anonymous", "observer", "other", "member", "manager", "admin")  # refused roles first: they change nothing

PUBLIC = ("ok", "ok", "ok", "ok", "ok", "ok")
LOGIN = ("login", "ok", "ok", "ok", "ok", "ok")
RESPOND = ("login", "403", "ok", "ok", "ok", "ok")  # observers only read
OWN = ("login", "403", "ok", "403", "403", "ok")
OWN_OR_MANAGER = ("login", "403", "ok", "403", "ok", "ok")  # an override: its people, or the team's managers
MANAGE = ("login", "403", "403", "403", "ok", "ok")
COVER_ACCEPT = (
    "login",
    "403",
    "403",
    "403",
    "ok",
    "ok",
)  # the rotation's others, or the managers: the member asked  # team A's things: its managers and admins
ADMIN = ("login", "403", "403", "403", "403", "ok")
LOGGED_OUT = ("login",) * 6
API = ("401", "ok", "ok", "ok", "ok", "ok")
API_RESPOND = ("401", "403", "ok", "ok", "ok", "ok")
API_OWN = ("401", "403", "ok", "403", "403", "ok")
API_OWN_OR_MANAGER = ("401", "403", "ok", "403", "ok", "ok")
API_MANAGE = ("401", "403", "403", "403", "ok", "ok")
API_COVER_ACCEPT = ("401", "403", "403", "403", "ok", "ok")
API_ADMIN = ("401", "403", "403", "403", "403", "ok")
BEARER = ("ok",) * 6  # an acknowledge link: whoever holds it, logged in or not
TWILIO = ("403", "ok", "ok", "ok", "ok", "ok")  # anonymous: unsigned; the others: signed as Twilio would
EVENT = ("refused", "ok", "ok", "ok", "ok", "ok")  # anonymous: a wrong integration key
FEED = ("404", "ok", "ok", "ok", "ok", "ok")  # a schedule feed with each role's calendar token
OWN_FEED = ("404", "404", "ok", "404", "404", "404")  # the member's personal feed: only with the member's token

V2 = {"routing_key": "{key}", "event_action": "trigger", "payload": {"summary": "x", "source": "h", "severity": "info"}}
V1 = {"service_key": "{key}", "event_type": "trigger", "description": "x"}
AM = {"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": "A"}}]}
START, END = "2026-03-10T10:00", "2026-03-10T11:00"


def row(method: str, path: str, expect: tuple, **body) -> dict:
    return {"method": method, "path": path, "expect": dict(zip(ROLES, expect, strict=True)), **body}


ROWS = {
    "static": row("GET", "/static/app.css", PUBLIC),
    "health.healthz": row("GET", "/healthz", PUBLIC),
    # Without METRICS_TOKEN, anyone on this machine (the test client is 127.0.0.1); tests/test_metrics.py
    # checks the token and other addresses.
    "metrics.metrics": row("GET", "/metrics", PUBLIC),
    "auth.login": row("GET", "/login", PUBLIC),
    "auth.forgot_password": row("GET", "/password/forgot", PUBLIC),
    "auth.reset_password": row("GET", "/password/reset/not-a-token", PUBLIC),  # 400: not a valid link
    "auth.logout": row("POST", "/logout", LOGGED_OUT),  # to the login page
    "home.index": row("GET", "/", LOGIN),
    "ack.show": row("GET", "/ack/{ack}", BEARER),
    "ack.act": row("POST", "/ack/{ack}", BEARER, data={"action": "acknowledge"}),
    "ack.twilio_sms": row("POST", "/twilio/sms", TWILIO, data={"From": "+14155550100", "Body": "ack 1"}),
    "ack.twilio_voice": row("POST", "/twilio/voice/{ack}", TWILIO, data={"Digits": "1"}),
    "ack.test_contact_method": row("POST", "/contact-methods/{cm}/test", OWN),
    "calendar.schedule_feed": row("GET", "/calendar/schedules/{schedule}.ics?token={caltoken}", FEED),
    "calendar.user_feed": row("GET", "/calendar/users/{member}.ics?token={caltoken}", OWN_FEED),
    "calendar.legacy_oncall": row("GET", "/api/oncall/{schedule}", API),
    "events.enqueue_v2": row("POST", "/v2/enqueue", EVENT, json=V2),
    "events.create_event_v1": row("POST", "/generic/2010-04-15/create_event.json", EVENT, json=V1),
    "events.create_event_legacy": row("POST", "/api/create_event", EVENT, json=V1),
    "events.alertmanager": row("POST", "/integrations/alertmanager/{amkey}", EVENT, json=AM),
    "events.generic": row("POST", "/integrations/generic/{generickey}", EVENT, json={"summary": "x"}),
    "events.enqueue_change": row(
        "POST", "/v2/change/enqueue", EVENT, json={"routing_key": "{key}", "payload": {"summary": "x"}}
    ),
    "events.heartbeat": row("GET", "/heartbeat/{hbkey}", EVENT),
    "incidents.index": row("GET", "/incidents", LOGIN),
    "incidents.count": row("GET", "/incidents/count", LOGIN),
    "incidents.show": row("GET", "/incidents/{incident}", LOGIN),
    "incidents.acknowledge": row("POST", "/incidents/{incident}/acknowledge", RESPOND),
    "incidents.resolve": row("POST", "/incidents/{incident}/resolve", RESPOND),
    "incidents.bulk": row(
        "POST", "/incidents/bulk", RESPOND, data={"action": "acknowledge", "incident_ids": "{incident}"}
    ),
    "incidents.add_note": row("POST", "/incidents/{incident}/notes", RESPOND, data={"note": "looking"}),
    "incidents.set_urgency": row("POST", "/incidents/{incident}/urgency", RESPOND, data={"urgency": "low"}),
    "policies.escalate_incident": row("POST", "/incidents/{incident}/escalate", RESPOND),
    "policies.snooze_incident": row("POST", "/incidents/{incident}/snooze", RESPOND, data={"minutes": "10"}),
    "policies.reassign_incident": row("POST", "/incidents/{incident}/reassign", RESPOND, data={"user_id": "{member}"}),
    "policies.index": row("GET", "/policies", LOGIN),
    "policies.show": row("GET", "/policies/{policy}", LOGIN),
    "policies.preview": row("GET", "/policies/{policy}/preview", LOGIN),
    "policies.new": row("GET", "/policies/new", MANAGE),
    "policies.create": row("POST", "/policies", MANAGE, data={"name": "New"}),
    "policies.update": row("POST", "/policies/{policy}", MANAGE, data={"name": "Renamed"}),
    "policies.delete": row("POST", "/policies/{policy}/delete", MANAGE),
    "policies.add_level": row("POST", "/policies/{policy}/levels", MANAGE, data={"delay_minutes": "5"}),
    "policies.update_level": row("POST", "/policies/{policy}/levels/{level}", MANAGE, data={"delay_minutes": "7"}),
    "policies.move_level": row("POST", "/policies/{policy}/levels/{level}/move", MANAGE, data={"direction": "up"}),
    "policies.delete_level": row("POST", "/policies/{policy}/levels/{level}/delete", MANAGE),
    "policies.add_target": row("POST", "/policies/{policy}/levels/{level}/targets", MANAGE, data={"target": "x"}),
    "policies.delete_target": row("POST", "/policies/{policy}/targets/{target}/delete", MANAGE),
    "schedules.index": row("GET", "/schedules", LOGIN),
    "schedules.detail": row("GET", "/schedules/{schedule}", LOGIN),
    "schedules.shift": row("GET", "/schedules/{schedule}/shift?at=2026-03-02T10:00:00Z", LOGIN),
    "schedules.new_override": row("GET", "/schedules/{schedule}/overrides/new", RESPOND),
    # Taking time for oneself is everyone's right; handing over time is the domain's rule (below).
    "schedules.add_override": row(
        "POST", "/schedules/{schedule}/overrides", RESPOND, data={"user_id": "{self}", "start": START, "end": END}
    ),
    "schedules.delete_override": row("POST", "/schedules/{schedule}/overrides/{override}/delete", OWN_OR_MANAGER),
    # Cover requests: the member (on call in the layer) asks; the others' requests are refused with a 422.
    "schedules.ask_cover": row(
        "POST", "/schedules/{schedule}/cover-requests", RESPOND, data={"start": START, "end": END}
    ),
    "schedules.confirm_cover": row("GET", "/schedules/{schedule}/cover-requests/{cover}/accept", LOGIN),
    "schedules.accept_cover": row("POST", "/schedules/{schedule}/cover-requests/{cover}/accept", COVER_ACCEPT),
    "schedules.cancel_cover": row("POST", "/schedules/{schedule}/cover-requests/{cover}/cancel", OWN_OR_MANAGER),
    "schedules.regenerate_calendar_token": row("POST", "/schedules/calendar-token", LOGIN),
    "schedules.new": row("GET", "/schedules/new", MANAGE),
    "schedules.create": row("POST", "/schedules", MANAGE, data={"name": "New"}),
    "schedules.edit": row("POST", "/schedules/{schedule}/edit", MANAGE, data={"name": "Renamed"}),
    "schedules.delete": row("POST", "/schedules/{schedule}/delete", MANAGE),
    "schedules.add_layer": row("POST", "/schedules/{schedule}/layers", MANAGE),
    "schedules.edit_layer": row("POST", "/schedules/{schedule}/layers/{layer}/edit", MANAGE),
    "schedules.move_layer": row("POST", "/schedules/{schedule}/layers/{layer}/move", MANAGE, data={"position": "0"}),
    "schedules.delete_layer": row("POST", "/schedules/{schedule}/layers/{layer}/delete", MANAGE),
    "schedules.refresh_layer": row("POST", "/schedules/{schedule}/layers/{layer}/refresh", MANAGE),
    "services.index": row("GET", "/services", LOGIN),
    "services.show": row("GET", "/services/{service}", LOGIN),
    "services.create": row("GET", "/services/new", MANAGE),
    "services.edit": row("GET", "/services/{service}/edit", MANAGE),
    "services.maintenance_now": row("POST", "/services/{service}/maintenance", MANAGE, data={"minutes": "60"}),
    "maintenance.index": row("GET", "/maintenance", LOGIN),
    "maintenance.create": row("GET", "/maintenance/new", MANAGE),
    "maintenance.edit": row("GET", "/maintenance/{window}/edit", MANAGE),
    "maintenance.end": row("POST", "/maintenance/{window}/end", MANAGE),  # upcoming: refused with a message
    "maintenance.delete": row("POST", "/maintenance/{window}/delete", MANAGE),
    "services.delete": row("POST", "/services/{service}/delete", MANAGE),
    "services.add_integration": row("POST", "/services/{service}/integrations", MANAGE, data={"kind": "generic"}),
    "services.email_settings": row(
        "POST", "/services/{service}/integrations/{emailintegration}/email", MANAGE, data={"dedup_source": "subject"}
    ),
    "services.regenerate_key": row("POST", "/services/{service}/integrations/{integration}/regenerate", MANAGE),
    "services.delete_integration": row("POST", "/services/{service}/integrations/{integration}/delete", MANAGE),
    "services.update_heartbeat": row(
        "POST", "/services/{service}/integrations/{heartbeat}/heartbeat", MANAGE, data={"paused": "true"}
    ),
    "event_rules.service_rules": row("GET", "/services/{service}/event-rules", LOGIN),
    "event_rules.test_service_rules": row(
        "POST", "/services/{service}/event-rules/test", LOGIN, data={"event": "{{}}"}
    ),
    "event_rules.new_service_rule": row("GET", "/services/{service}/event-rules/new", MANAGE),
    "event_rules.edit_service_rule": row("GET", "/services/{service}/event-rules/{eventrule}/edit", MANAGE),
    "event_rules.move_service_rule": row(
        "POST", "/services/{service}/event-rules/{eventrule}/move", MANAGE, data={"direction": "up"}
    ),
    "event_rules.delete_service_rule": row("POST", "/services/{service}/event-rules/{eventrule}/delete", MANAGE),
    "event_rules.global_rules": row("GET", "/event-rules", ADMIN),
    "event_rules.test_global_rules": row("POST", "/event-rules/test", ADMIN, data={"event": "{{}}"}),
    "event_rules.new_global_rule": row("GET", "/event-rules/new", ADMIN),
    "event_rules.edit_global_rule": row("GET", "/event-rules/{globalrule}/edit", ADMIN),
    "event_rules.move_global_rule": row("POST", "/event-rules/{globalrule}/move", ADMIN, data={"direction": "up"}),
    "event_rules.delete_global_rule": row("POST", "/event-rules/{globalrule}/delete", ADMIN),
    "users.index": row("GET", "/users/", ADMIN),
    "audit.index": row("GET", "/audit", MANAGE),
    "reports.index": row("GET", "/reports", LOGIN),
    "reports.pages": row("GET", "/reports/pages?period=month", LOGIN),
    "reports.oncall": row("GET", "/reports/oncall?service_id={service}", LOGIN),
    "reports.incidents_csv": row("GET", "/reports/incidents.csv", LOGIN),
    "reports.pages_csv": row("GET", "/reports/pages.csv?team_id={team}", LOGIN),
    "reports.oncall_csv": row("GET", "/reports/oncall.csv?service_id={service}", LOGIN),
    "reports.stylesheet": row("GET", "/reports/charts.css", PUBLIC),
    "teams.index": row("GET", "/teams", LOGIN),
    "teams.show": row("GET", "/teams/{team}", LOGIN),
    "teams.new": row("GET", "/teams/new", ADMIN),
    "teams.create": row("POST", "/teams", ADMIN, data={"name": "New team"}),
    "teams.edit": row("POST", "/teams/{team}/edit", MANAGE, data={"name": "Renamed"}),
    "teams.delete": row("POST", "/teams/{team}/delete", ADMIN),
    "teams.add_member": row("POST", "/teams/{team}/members", MANAGE, data={"user_id": "{other}", "role": "member"}),
    "teams.update_member": row("POST", "/teams/{team}/members/{member}", MANAGE, data={"role": "member"}),
    "teams.remove_member": row("POST", "/teams/{team}/members/{removable}/delete", MANAGE),
    "users.create": row("GET", "/users/new", ADMIN),
    "users.edit": row("GET", "/users/{member}/edit", ADMIN),
    "users.deactivate": row("POST", "/users/{member}/deactivate", ADMIN),
    "users.reactivate": row("POST", "/users/{member}/reactivate", ADMIN),
    "users.profile": row("GET", "/profile", LOGIN),
    "users.change_password": row("POST", "/profile/password", LOGIN),
    "users.end_sessions": row("POST", "/profile/sessions/end", LOGGED_OUT),
    "users.save_shift_notices": row("POST", "/profile/shift-notices", LOGIN, data={"reminder_hours": "6"}),
    "users.create_token": row("POST", "/profile/tokens", LOGIN, data={"token-name": "ci"}),
    "users.show": row("GET", "/users/{member}", OWN),
    "users.contact_methods": row("GET", "/users/{member}/contact-methods", OWN),
    "users.add_contact_method": row(
        "POST", "/users/{member}/contact-methods", OWN, data={"kind": "email", "address": "b2@example.com"}
    ),
    "users.delete_contact_method": row("POST", "/users/{member}/contact-methods/{cm}/delete", OWN),
    "users.notification_rules": row("GET", "/users/{member}/notification-rules", OWN),
    "users.notification_rule_form": row("GET", "/users/{member}/notification-rules/form", OWN),
    "users.add_notification_rule": row(
        "POST", "/users/{member}/notification-rules", OWN, data={"contact_method_id": "{cm}", "delay_minutes": "5"}
    ),
    "users.delete_notification_rule": row("POST", "/users/{member}/notification-rules/{rule}/delete", OWN),
    "users.tokens": row("GET", "/users/{member}/tokens", OWN),
    "users.revoke_token": row("POST", "/users/{member}/tokens/{token}/revoke", OWN),
    "api.openapi": row("GET", "/api/v1/openapi.json", PUBLIC),
    "api.list_users": row("GET", "/api/v1/users", API),
    "api.get_user": row("GET", "/api/v1/users/{member}", API),
    "api.create_user": row("POST", "/api/v1/users", API_ADMIN, json={}),
    "api.update_user": row("PATCH", "/api/v1/users/{member}", API_OWN, json={}),
    "api.deactivate_user": row("DELETE", "/api/v1/users/{member}", API_ADMIN),
    "api.list_contact_methods": row("GET", "/api/v1/users/{member}/contact-methods", API_OWN),
    "api.get_contact_method": row("GET", "/api/v1/users/{member}/contact-methods/{cm}", API_OWN),
    "api.create_contact_method": row("POST", "/api/v1/users/{member}/contact-methods", API_OWN, json={}),
    "api.delete_contact_method": row("DELETE", "/api/v1/users/{member}/contact-methods/{cm}", API_OWN),
    "api.list_notification_rules": row("GET", "/api/v1/users/{member}/notification-rules", API_OWN),
    "api.get_notification_rule": row("GET", "/api/v1/users/{member}/notification-rules/{rule}", API_OWN),
    "api.create_notification_rule": row("POST", "/api/v1/users/{member}/notification-rules", API_OWN, json={}),
    "api.delete_notification_rule": row("DELETE", "/api/v1/users/{member}/notification-rules/{rule}", API_OWN),
    "api.test_contact_method": row("POST", "/api/v1/contact-methods/{cm}/test", API_OWN),
    "api.list_services": row("GET", "/api/v1/services", API),
    "api.get_service": row("GET", "/api/v1/services/{service}", API),
    "api.create_service": row("POST", "/api/v1/services", API_MANAGE, json={}),
    "api.update_service": row("PATCH", "/api/v1/services/{service}", API_MANAGE, json={}),
    "api.delete_service": row("DELETE", "/api/v1/services/{service}", API_MANAGE),
    "api.list_integrations": row("GET", "/api/v1/services/{service}/integrations", API),
    "api.update_heartbeat": row(
        "PATCH", "/api/v1/services/{service}/integrations/{heartbeat}/heartbeat", API_MANAGE, json={"paused": True}
    ),
    "api.list_change_events": row("GET", "/api/v1/services/{service}/change-events", API),
    "api.get_integration": row("GET", "/api/v1/services/{service}/integrations/{integration}", API),
    "api.create_integration": row("POST", "/api/v1/services/{service}/integrations", API_MANAGE, json={}),
    "api.regenerate_integration_key": row(
        "POST", "/api/v1/services/{service}/integrations/{integration}/regenerate", API_MANAGE
    ),
    "api.update_integration": row(
        "PATCH", "/api/v1/services/{service}/integrations/{emailintegration}", API_MANAGE, json={"name": "Mail"}
    ),
    "api.delete_integration": row("DELETE", "/api/v1/services/{service}/integrations/{integration}", API_MANAGE),
    "api.list_service_event_rules": row("GET", "/api/v1/services/{service}/event-rules", API),
    "api.get_service_event_rule": row("GET", "/api/v1/services/{service}/event-rules/{eventrule}", API),
    "api.test_service_event_rules": row("POST", "/api/v1/services/{service}/event-rules/test", API, json={}),
    "api.create_service_event_rule": row("POST", "/api/v1/services/{service}/event-rules", API_MANAGE, json={}),
    "api.update_service_event_rule": row(
        "PATCH", "/api/v1/services/{service}/event-rules/{eventrule}", API_MANAGE, json={}
    ),
    "api.delete_service_event_rule": row("DELETE", "/api/v1/services/{service}/event-rules/{eventrule}", API_MANAGE),
    "api.list_event_rules": row("GET", "/api/v1/event-rules", API_ADMIN),
    "api.get_event_rule": row("GET", "/api/v1/event-rules/{globalrule}", API_ADMIN),
    "api.test_event_rules": row("POST", "/api/v1/event-rules/test", API_ADMIN, json={}),
    "api.create_event_rule": row("POST", "/api/v1/event-rules", API_ADMIN, json={}),
    "api.update_event_rule": row("PATCH", "/api/v1/event-rules/{globalrule}", API_ADMIN, json={}),
    "api.delete_event_rule": row("DELETE", "/api/v1/event-rules/{globalrule}", API_ADMIN),
    "api.list_policies": row("GET", "/api/v1/escalation-policies", API),
    "api.get_policy": row("GET", "/api/v1/escalation-policies/{policy}", API),
    "api.create_policy": row("POST", "/api/v1/escalation-policies", API_MANAGE, json={}),
    "api.update_policy": row("PATCH", "/api/v1/escalation-policies/{policy}", API_MANAGE, json={}),
    "api.delete_policy": row("DELETE", "/api/v1/escalation-policies/{policy}", API_MANAGE),
    "api.list_schedules": row("GET", "/api/v1/schedules", API),
    "api.get_schedule": row("GET", "/api/v1/schedules/{schedule}", API),
    "api.create_schedule": row("POST", "/api/v1/schedules", API_MANAGE, json={}),
    "api.update_schedule": row("PATCH", "/api/v1/schedules/{schedule}", API_MANAGE, json={}),
    "api.delete_schedule": row("DELETE", "/api/v1/schedules/{schedule}", API_MANAGE),
    "api.list_layers": row("GET", "/api/v1/schedules/{schedule}/layers", API),
    "api.get_layer": row("GET", "/api/v1/schedules/{schedule}/layers/{layer}", API),
    "api.create_layer": row("POST", "/api/v1/schedules/{schedule}/layers", API_MANAGE, json={}),
    "api.update_layer": row("PATCH", "/api/v1/schedules/{schedule}/layers/{layer}", API_MANAGE, json={}),
    "api.delete_layer": row("DELETE", "/api/v1/schedules/{schedule}/layers/{layer}", API_MANAGE),
    "api.list_overrides": row("GET", "/api/v1/schedules/{schedule}/overrides", API),
    "api.get_override": row("GET", "/api/v1/schedules/{schedule}/overrides/{override}", API),
    "api.create_override": row(
        "POST",
        "/api/v1/schedules/{schedule}/overrides",
        API_RESPOND,
        json={"user_id": "{self}", "start": START + ":00Z", "end": END + ":00Z"},
    ),
    "api.delete_override": row("DELETE", "/api/v1/schedules/{schedule}/overrides/{override}", API_OWN_OR_MANAGER),
    "api.list_cover_requests": row("GET", "/api/v1/schedules/{schedule}/cover-requests", API),
    "api.create_cover_request": row(
        "POST",
        "/api/v1/schedules/{schedule}/cover-requests",
        API_RESPOND,
        json={"start": "2026-03-10T10:00:00+00:00", "end": "2026-03-10T11:00:00+00:00"},
    ),
    "api.accept_cover_request": row(
        "POST", "/api/v1/schedules/{schedule}/cover-requests/{cover}/accept", API_COVER_ACCEPT
    ),
    "api.cancel_cover_request": row(
        "POST", "/api/v1/schedules/{schedule}/cover-requests/{cover}/cancel", API_OWN_OR_MANAGER
    ),
    "api.schedule_oncall": row("GET", "/api/v1/schedules/{schedule}/oncall", API),
    "api.schedule_shifts": row("GET", "/api/v1/schedules/{schedule}/shifts", API),
    "api.list_oncalls": row("GET", "/api/v1/oncalls", API),
    "api.list_incidents": row("GET", "/api/v1/incidents", API),
    "api.list_audit": row("GET", "/api/v1/audit", API_MANAGE),
    "api.report_incidents": row("GET", "/api/v1/reports/incidents?service_id={service}", API),
    "api.report_pages": row("GET", "/api/v1/reports/pages?period=month", API),
    "api.report_oncall": row("GET", "/api/v1/reports/oncall?team_id={team}", API),
    "api.list_maintenance_windows": row("GET", "/api/v1/maintenance-windows", API),
    "api.get_maintenance_window": row("GET", "/api/v1/maintenance-windows/{window}", API),
    "api.create_maintenance_window": row("POST", "/api/v1/maintenance-windows", API_MANAGE, json={}),
    "api.update_maintenance_window": row("PATCH", "/api/v1/maintenance-windows/{window}", API_MANAGE, json={}),
    "api.end_maintenance_window": row("POST", "/api/v1/maintenance-windows/{window}/end", API_MANAGE),
    "api.delete_maintenance_window": row("DELETE", "/api/v1/maintenance-windows/{window}", API_MANAGE),
    "api.list_teams": row("GET", "/api/v1/teams", API),
    "api.get_team": row("GET", "/api/v1/teams/{team}", API),
    "api.create_team": row("POST", "/api/v1/teams", API_ADMIN, json={"name": "New team"}),
    "api.update_team": row("PATCH", "/api/v1/teams/{team}", API_MANAGE, json={}),
    "api.delete_team": row("DELETE", "/api/v1/teams/{team}", API_ADMIN),
    "api.put_team_member": row("POST", "/api/v1/teams/{team}/members", API_MANAGE, json={"user_id": "{other}"}),
    "api.delete_team_member": row("DELETE", "/api/v1/teams/{team}/members/{removable}", API_MANAGE),
    "api.get_incident": row("GET", "/api/v1/incidents/{incident}", API),
    "api.incident_log": row("GET", "/api/v1/incidents/{incident}/log", API),
    "api.get_log_entry": row("GET", "/api/v1/incidents/{incident}/log/{log}", API),
    "api.acknowledge_incident": row("POST", "/api/v1/incidents/{incident}/acknowledge", API_RESPOND),
    "api.resolve_incident": row("POST", "/api/v1/incidents/{incident}/resolve", API_RESPOND),
    "api.escalate_incident": row("POST", "/api/v1/incidents/{incident}/escalate", API_RESPOND),
    "api.snooze_incident": row("POST", "/api/v1/incidents/{incident}/snooze", API_RESPOND, json={"minutes": 10}),
    "api.reassign_incident": row(
        "POST", "/api/v1/incidents/{incident}/reassign", API_RESPOND, json={"user_id": "{member}"}
    ),
    "api.add_note": row("POST", "/api/v1/incidents/{incident}/notes", API_RESPOND, json={"note": "looking"}),
    "api.set_incident_urgency": row(
        "POST", "/api/v1/incidents/{incident}/urgency", API_RESPOND, json={"urgency": "low"}
    ),
}


def test_every_route_has_a_row_and_a_rule(app):
    """A new route needs a rule in openduty.access.RULES and a row here; stale entries go too."""
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert sorted(endpoints - set(ROWS)) == [], "routes without a row in tests/test_access.py"
    assert sorted(endpoints - set(RULES)) == [], "routes without a rule in openduty.access.RULES"
    assert sorted(set(ROWS) - endpoints) == [] and sorted(set(RULES) - endpoints) == []


def test_a_route_without_a_rule_is_refused(app, client):
    """Fail closed: an endpoint nobody gave a rule answers 403, even to an admin."""
    app.add_url_rule("/ruleless", "ruleless", lambda: "secret")
    response = client.get("/ruleless")
    assert response.status_code == 403 and b"secret" not in response.data


def test_anonymous_posts_go_to_login_before_csrf(app, client):
    """The access check runs before CSRF: an anonymous POST is sent to log in, not told its form expired."""
    response = client.post("/services/new", data={})
    assert response.status_code == 302 and urlsplit(response.location).path == "/login"


def _team_objects(team: Team, member, clock) -> dict:
    """A schedule, policy and service of `team`, with a layer, level, integrations and an incident."""
    schedule = factories_schedules.make_schedule()
    layer = factories_schedules.make_layer(schedule, [member], datetime(2026, 3, 1), 1, "weeks")
    policy = factories_escalation.make_policy([(5, [member])])
    service = factories_escalation.make_service(policy)
    schedule.team_id = policy.team_id = service.team_id = team.id
    integration = factories_events.make_integration(service)
    am = factories_events.make_integration(service, kind="alertmanager")
    generic = factories_events.make_integration(service, kind="generic")
    heartbeat = factories_events.make_heartbeat(service)
    email = factories_events.make_email_integration(service)
    incident = factories_events.make_incident(integration)
    log = db.session.scalar(db.select(LogEntry).where(LogEntry.incident_id == incident.id))
    level = policy.levels[0]
    start = clock.now() + timedelta(days=1)
    cover = CoverRequest(schedule=schedule, requester=member, start=start, end=start + timedelta(hours=1))
    db.session.add(cover)
    window = maintenance.save_window(
        None, {"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat(), "service_ids": [service.id]}
    )
    db.session.commit()
    nothing = [("summary", "equals", "no such alert")]  # the other set's incident still opens
    event_rule = factories_events.make_rule(service, "drop", nothing)
    global_rule = factories_events.make_rule(None, "drop", nothing)
    return {
        "schedule": schedule.id,
        "layer": layer.id,
        "policy": policy.id,
        "level": level.id,
        "target": level.targets[0].id,
        "service": service.id,
        "integration": integration.id,
        "heartbeat": heartbeat.id,
        "emailintegration": email.id,
        "incident": incident.id,
        "log": log.id,
        "eventrule": event_rule.id,
        "globalrule": global_rule.id,
        "window": window.id,
        "cover": cover.id,
        "ack": ack_token([incident.id], member.id),
        "keys": {"key": integration.key, "amkey": am.key, "generickey": generic.key, "hbkey": heartbeat.key},
    }


@pytest.fixture
def world(app, clock):
    """Team A's objects (two sets), the member's personal objects (three), and each role's session
    and API token."""
    app.config["WTF_CSRF_ENABLED"] = False  # CSRF has its own tests; this one is about who
    app.config["TWILIO_AUTH_TOKEN"] = "twilio-test-token"
    member = factories.make_user(email="member@example.com", name="Member", password=None)
    other = factories.make_user(email="other@example.com", name="Other", password=None)
    manager = factories.make_user(email="manager@example.com", name="Manager", password=None)
    observer = factories.make_user(email="observer@example.com", name="Observer", password=None, observer=True)
    admin = factories.make_user(email="root@example.com", name="Root", is_admin=True, password=None)
    removable = [factories.make_user(email=f"x{n}@example.com", name=f"X{n}", password=None) for n in range(2)]
    team_a, team_b = Team(name="A", description=""), Team(name="B", description="")
    team_a.members = [TeamMember(user=member), TeamMember(user=manager, role="manager")]
    team_a.members += [TeamMember(user=x) for x in removable]
    team_b.members = [TeamMember(user=other)]
    db.session.add_all([team_a, team_b])
    db.session.commit()
    sets = [_team_objects(team_a, member, clock) for _ in range(2)]
    start = clock.now() + timedelta(days=1)
    personal = []
    for n in range(3):
        cm = factories.make_contact_method(member, address=f"member+{n}@example.com")
        rule = factories.make_notification_rule(member, cm)
        token, _ = ApiToken.issue(member, f"laptop {n}")
        schedule = db.session.get(Schedule, sets[1 if n == 2 else 0]["schedule"])  # the admin's on the admin's set
        override = factories_schedules.make_override(schedule, member, start, start + timedelta(hours=1))
        personal.append({"cm": cm.id, "rule": rule.id, "token": token.id, "override": override.id})
    users = {"observer": observer, "member": member, "other": other, "manager": manager, "admin": admin}
    api_tokens = {name: ApiToken.issue(user, "access test")[1] for name, user in users.items()}
    calendar_tokens = {name: user.calendar_token for name, user in users.items()}
    db.session.commit()
    return {
        "users": users,
        "personal": personal,
        "sets": sets,
        "api_tokens": api_tokens,
        "calendar_tokens": calendar_tokens,
        "ids": {"member": member.id, "other": other.id, "team": team_a.id},
        "removable": [x.id for x in removable],
    }


# Which of the member's personal objects, and which set of team A's objects, each role acts on: the
# ones allowed to remove them (member, manager, admin) each have their own.
PERSONAL = {"manager": 1, "admin": 2}
SETS = {"admin": 1}
REMOVABLE = {"admin": 1}


def _fill(value, values: dict):
    if isinstance(value, str):
        return value.format(**values)
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    return value


def _outcome(response) -> str:
    status = response.status_code
    if status in (301, 302, 303) and urlsplit(response.location).path == "/login":
        return "login"
    if status in (401, 403, 404, 405):
        return str(status)
    assert status < 500, f"{status}: {response.get_data(as_text=True)[:300]}"
    return "ok"


@pytest.mark.parametrize("endpoint", sorted(ROWS))
def test_access(app, world, endpoint):
    spec = ROWS[endpoint]
    wrong = []
    for role in ORDER:
        response, path = _request(app, world, spec, role)
        expected, got = spec["expect"][role], _outcome(response)
        if expected == "refused" and response.status_code in (400, 404):
            got = "refused"
        if got != expected:
            wrong.append(f"{spec['method']} {path} as {role}: expected {expected}, got {response.status_code}")
    assert wrong == []


def _request(app, world, spec: dict, role: str):
    """One role's request for a row: its session and API token, and its own ids in the path."""
    client = app.test_client()
    user = world["users"].get(role)
    objects = world["sets"][SETS.get(role, 0)]
    values = {**world["ids"], **{k: v for k, v in objects.items() if k != "keys"}}
    values.update(world["personal"][PERSONAL.get(role, 0)])
    values["removable"] = world["removable"][REMOVABLE.get(role, 0)]
    values["self"] = user.id if user else 0
    values["caltoken"] = world["calendar_tokens"].get(role, "")
    values.update({name: "w" * 32 if user is None else key for name, key in objects["keys"].items()})
    headers = {}
    if user is not None:
        with client.session_transaction() as session:
            session["_user_id"] = user.get_id()
            session["_fresh"] = True
        headers["Authorization"] = f"Token {world['api_tokens'][role]}"
    path = _fill(spec["path"], values)
    data = _fill(spec.get("data"), values)
    if path.startswith("/twilio/") and user is not None:
        url = app.config["BASE_URL"].rstrip("/") + path
        headers["X-Twilio-Signature"] = request_signature(app.config["TWILIO_AUTH_TOKEN"], url, data or {})
    json = _fill(spec.get("json"), values)
    response = client.open(path, method=spec["method"], headers=headers, data=data, json=json)
    response.close()
    return response, path
