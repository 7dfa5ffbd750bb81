"""Who may do what: every endpoint's access rule in one table, enforced by one app-wide hook.

`RULES` maps each endpoint name to the credential it needs. `enforce()` runs before every request
(before CSRF, so an anonymous POST is sent to the login page rather than told its form expired)
and refuses any endpoint without a row: a new route that nobody gave a rule fails closed (403) and
tests/test_access.py fails until the route has a row there and here.

Rules say who may reach an endpoint at all. What a caller may do with one object (their own
profile, their own shifts) is decided by the view or the domain with `may_manage()` and the
domain's own rules (e.g. `overrides.can_add_override`). docs/security.md describes the roles.

One module because the table is the point: every endpoint's rule is read and reviewed in one place.
"""

import hmac
import ipaddress
from dataclasses import dataclass

from flask import Flask, Response, abort, current_app, g, request
from flask_login import current_user
from sqlalchemy import select

from openduty import audit, clock, ical
from openduty.errors import ApiError
from openduty.extensions import db, login_manager
from openduty.models import ApiToken, EscalationPolicy, Schedule, Service, Team, User
from openduty.models.maintenance import window_team_ids
from openduty.notifiers.twilio import request_signature


@dataclass(frozen=True)
class Rule:
    """The credential an endpoint needs; `what` completes "Only admins can ..." for admin rules."""

    kind: str
    what: str = "do this"


# Anyone, no credential: the login page, health check, static files.
PUBLIC = Rule("public")
# A logged-in user (session cookie). Anonymous browsers are sent to the login page.
LOGIN = Rule("login")
# A signed, expiring acknowledge token in the URL path. The view verifies it (ack.load_token),
# because an expired or altered link gets its own page that says what to do instead.
ACK_LINK = Rule("ack-link")
# A user's calendar token in `?token=` (calendar apps cannot send headers). Checked here: an
# unknown token answers 404 and reveals nothing; `g.calendar_user` is its active owner, and the
# view decides which feeds that owner may open.
CALENDAR_TOKEN = Rule("calendar-token")
# An integration key, in the body or the URL depending on the format; verified by the ingest
# (openduty.views.events and openduty.integration_keys), which answers in each format's own dialect.
EVENT_KEY = Rule("event-key")
# Twilio's webhooks, signed with TWILIO_AUTH_TOKEN (X-Twilio-Signature). Checked here.
TWILIO = Rule("twilio")
# An API token (`Authorization: Token <token>`) of an active user; `g.api_user` is that user.
API = Rule("api-token")
# Prometheus: `Authorization: Bearer <METRICS_TOKEN>`; without METRICS_TOKEN, this machine only
# (a loopback address, not forwarded by a proxy that TRUSTED_PROXIES does not name). Checked here.
METRICS = Rule("metrics")
# A logged-in user who is not an observer: acting on incidents, taking or handing over shifts.
RESPOND = Rule("respond", "act on incidents or shifts (observers only read)")
API_RESPOND = Rule("api-respond", "act on incidents or shifts (observers only read)")


def admin(what: str) -> Rule:
    """A logged-in admin; members get 403 "Only admins can <what>."."""
    return Rule("admin", what)


def api_admin(what: str) -> Rule:
    """An API token of an active admin."""
    return Rule("api-admin", what)


def manage(what: str) -> Rule:
    """An admin, or a manager of the team that owns the object in the path (`OWNED_BY`); for a path
    without one (creating), a manager of any team: the domain checks the team they choose."""
    return Rule("manage", what)


def api_manage(what: str) -> Rule:
    """As `manage`, with an API token."""
    return Rule("api-manage", what)


_USERS = admin("manage users")
_SERVICES = manage("change services")
_POLICIES = manage("change escalation policies")
_SCHEDULES = manage("change schedules and their layers")
_TEAM = manage("change this team")
_GLOBAL_RULES = admin("manage global event rules")
_WINDOWS = manage("change maintenance windows (of services their teams own)")
_API_WINDOWS = api_manage("change maintenance windows")

RULES: dict[str, Rule] = {
    "static": PUBLIC,
    "health.healthz": PUBLIC,
    "metrics.metrics": METRICS,
    "auth.login": PUBLIC,
    "auth.forgot_password": PUBLIC,
    "auth.reset_password": PUBLIC,  # a signed one-use token in the path, checked by the view
    "auth.logout": LOGIN,
    "home.index": LOGIN,
    # Acknowledge links, Twilio, the test-notification button.
    "ack.show": ACK_LINK,
    "ack.act": ACK_LINK,
    "ack.twilio_sms": TWILIO,
    "ack.twilio_voice": TWILIO,  # and the ack token in the path, checked by the view
    "ack.test_contact_method": LOGIN,  # own contact methods, or an admin (may_manage)
    # Calendar feeds and the original Openduty on-call API.
    "calendar.schedule_feed": CALENDAR_TOKEN,
    "calendar.user_feed": CALENDAR_TOKEN,
    "calendar.legacy_oncall": API,
    # Ingest.
    "events.enqueue_v2": EVENT_KEY,
    "events.create_event_v1": EVENT_KEY,
    "events.create_event_legacy": EVENT_KEY,
    "events.alertmanager": EVENT_KEY,
    "events.generic": EVENT_KEY,
    "events.enqueue_change": EVENT_KEY,
    "events.heartbeat": EVENT_KEY,
    # Incidents: everyone logged in sees every incident (a small team's shared console); all but
    # observers act on them.
    "incidents.index": LOGIN,
    "incidents.count": LOGIN,
    "incidents.show": LOGIN,
    "incidents.acknowledge": RESPOND,
    "incidents.resolve": RESPOND,
    "incidents.bulk": RESPOND,
    "incidents.add_note": RESPOND,
    "incidents.set_urgency": RESPOND,
    "policies.escalate_incident": RESPOND,
    "policies.snooze_incident": RESPOND,
    "policies.reassign_incident": RESPOND,
    # Escalation policies: everyone reads; admins and the owning team's managers change them.
    "policies.index": LOGIN,
    "policies.show": LOGIN,
    "policies.preview": LOGIN,
    "policies.new": _POLICIES,
    "policies.create": _POLICIES,
    "policies.update": _POLICIES,
    "policies.delete": _POLICIES,
    "policies.add_level": _POLICIES,
    "policies.update_level": _POLICIES,
    "policies.move_level": _POLICIES,
    "policies.delete_level": _POLICIES,
    "policies.add_target": _POLICIES,
    "policies.delete_target": _POLICIES,
    # Schedules: everyone reads, responders take or hand over their own shifts; admins and the owning
    # team's managers change the rest.
    "schedules.index": LOGIN,
    "schedules.detail": LOGIN,
    "schedules.shift": LOGIN,
    "schedules.new_override": RESPOND,
    "schedules.add_override": RESPOND,  # overrides.can_add_override decides which
    "schedules.delete_override": RESPOND,  # overrides.can_delete_override decides which
    "schedules.ask_cover": RESPOND,  # cover_requests.clean_request: only for one's own on-call time
    "schedules.confirm_cover": LOGIN,  # the request's page; accepting is its POST
    "schedules.accept_cover": RESPOND,  # cover_requests.may_accept decides who
    "schedules.cancel_cover": RESPOND,  # cover_requests.may_cancel decides who
    "schedules.regenerate_calendar_token": LOGIN,  # always the caller's own token
    "schedules.new": _SCHEDULES,
    "schedules.create": _SCHEDULES,
    "schedules.edit": _SCHEDULES,
    "schedules.delete": _SCHEDULES,
    "schedules.add_layer": _SCHEDULES,
    "schedules.edit_layer": _SCHEDULES,
    "schedules.move_layer": _SCHEDULES,
    "schedules.delete_layer": _SCHEDULES,
    "schedules.refresh_layer": _SCHEDULES,
    # Services: everyone reads; admins and the owning team's managers change them.
    "services.index": LOGIN,
    "services.show": LOGIN,
    "services.create": _SERVICES,
    "services.edit": _SERVICES,
    "services.maintenance_now": _SERVICES,
    "services.delete": _SERVICES,
    "services.add_integration": _SERVICES,
    "services.email_settings": _SERVICES,
    "services.regenerate_key": _SERVICES,
    "services.delete_integration": _SERVICES,
    "services.update_heartbeat": _SERVICES,
    # Event rules: everyone reads (and tests) a service's; its managers change them; global: admins.
    "event_rules.service_rules": LOGIN,
    "event_rules.test_service_rules": LOGIN,  # changes nothing
    **{f"event_rules.{verb}_service_rule": _SERVICES for verb in ("new", "edit", "move", "delete")},
    "event_rules.global_rules": _GLOBAL_RULES,
    "event_rules.test_global_rules": _GLOBAL_RULES,
    **{f"event_rules.{verb}_global_rule": _GLOBAL_RULES for verb in ("new", "edit", "move", "delete")},
    # Maintenance windows: everyone reads; admins and the managers of every service in a window change it.
    "maintenance.index": LOGIN,
    **{f"maintenance.{verb}": _WINDOWS for verb in ("create", "edit", "end", "delete")},
    # Users: the admin pages, and profiles (one's own, or anyone's for admins: may_manage).
    "users.index": _USERS,
    "users.create": _USERS,
    "users.edit": _USERS,
    "users.deactivate": _USERS,
    "users.reactivate": _USERS,
    "users.profile": LOGIN,
    "users.change_password": LOGIN,
    "users.end_sessions": LOGIN,
    "users.save_shift_notices": LOGIN,
    "users.create_token": LOGIN,
    "users.show": LOGIN,
    "users.contact_methods": LOGIN,
    "users.add_contact_method": LOGIN,
    "users.delete_contact_method": LOGIN,
    "users.notification_rules": LOGIN,
    "users.notification_rule_form": LOGIN,
    "users.add_notification_rule": LOGIN,
    "users.delete_notification_rule": LOGIN,
    "users.tokens": LOGIN,
    "users.revoke_token": LOGIN,
    # Teams: everyone reads; admins create and delete; admins and the team's managers change them.
    "teams.index": LOGIN,
    "teams.show": LOGIN,
    "teams.new": admin("create teams"),
    "teams.create": admin("create teams"),
    "teams.edit": _TEAM,
    "teams.delete": admin("delete teams"),
    "teams.add_member": _TEAM,
    "teams.update_member": _TEAM,
    "teams.remove_member": _TEAM,
    # The audit log: admins, and managers for what their teams own.
    "audit.index": manage("read the audit log"),  # managers: their teams' entries (audit.for_viewer)
    # Reports: everyone logged in reads every report (they read every incident and schedule already).
    "reports.index": LOGIN,
    "reports.pages": LOGIN,
    "reports.oncall": LOGIN,
    "reports.incidents_csv": LOGIN,
    "reports.pages_csv": LOGIN,
    "reports.oncall_csv": LOGIN,
    "reports.stylesheet": PUBLIC,  # pygal's chart CSS: no data
    # JSON API: reading needs a token; the same rules as the pages (admin, manage, respond).
    "api.openapi": PUBLIC,  # describes shapes and rules, never data or secrets
    "api.list_users": API,
    "api.get_user": API,
    "api.create_user": api_admin("create users"),
    "api.update_user": API,  # themselves, or anyone for admins (may_manage)
    "api.deactivate_user": api_admin("deactivate users"),
    "api.list_contact_methods": API,
    "api.get_contact_method": API,
    "api.create_contact_method": API,
    "api.delete_contact_method": API,
    "api.list_notification_rules": API,
    "api.get_notification_rule": API,
    "api.create_notification_rule": API,
    "api.delete_notification_rule": API,
    "api.test_contact_method": API,
    "api.list_services": API,
    "api.get_service": API,
    "api.create_service": api_manage("create services"),
    "api.update_service": api_manage("change services"),
    "api.delete_service": api_manage("delete services"),
    "api.list_integrations": API,
    "api.get_integration": API,
    "api.create_integration": api_manage("add integrations"),
    "api.update_integration": api_manage("change integrations"),
    "api.regenerate_integration_key": api_manage("regenerate integration keys"),
    "api.delete_integration": api_manage("delete integrations"),
    "api.update_heartbeat": api_manage("change heartbeats"),
    "api.list_change_events": API,
    "api.list_service_event_rules": API,
    "api.get_service_event_rule": API,
    "api.test_service_event_rules": API,  # changes nothing
    **{f"api.{verb}_service_event_rule": api_manage("change event rules") for verb in ("create", "update", "delete")},
    **{f"api.{name}": api_admin("manage global event rules") for name in ("list_event_rules", "test_event_rules")},
    **{
        f"api.{verb}_event_rule": api_admin("manage global event rules")
        for verb in ("get", "create", "update", "delete")
    },
    "api.list_policies": API,
    "api.get_policy": API,
    "api.create_policy": api_manage("create escalation policies"),
    "api.update_policy": api_manage("change escalation policies"),
    "api.delete_policy": api_manage("delete escalation policies"),
    "api.list_schedules": API,
    "api.get_schedule": API,
    "api.create_schedule": api_manage("create schedules"),
    "api.update_schedule": api_manage("change schedules"),
    "api.delete_schedule": api_manage("delete schedules"),
    "api.list_layers": API,
    "api.get_layer": API,
    "api.create_layer": api_manage("add layers"),
    "api.update_layer": api_manage("change layers"),
    "api.delete_layer": api_manage("delete layers"),
    "api.list_overrides": API,
    "api.get_override": API,
    "api.create_override": API_RESPOND,  # overrides.can_add_override decides which
    "api.delete_override": API_RESPOND,  # overrides.can_delete_override decides which
    "api.list_cover_requests": API,
    "api.create_cover_request": API_RESPOND,  # as the pages (cover_requests decides the rest)
    "api.accept_cover_request": API_RESPOND,
    "api.cancel_cover_request": API_RESPOND,
    "api.schedule_oncall": API,
    "api.schedule_shifts": API,
    "api.list_oncalls": API,
    "api.list_incidents": API,
    "api.get_incident": API,
    "api.incident_log": API,
    "api.get_log_entry": API,
    "api.acknowledge_incident": API_RESPOND,
    "api.resolve_incident": API_RESPOND,
    "api.escalate_incident": API_RESPOND,
    "api.snooze_incident": API_RESPOND,
    "api.reassign_incident": API_RESPOND,
    "api.add_note": API_RESPOND,
    "api.set_incident_urgency": API_RESPOND,
    "api.list_audit": api_manage("read the audit log"),
    "api.report_incidents": API,
    "api.report_pages": API,
    "api.report_oncall": API,
    "api.list_maintenance_windows": API,
    "api.get_maintenance_window": API,
    **{f"api.{verb}_maintenance_window": _API_WINDOWS for verb in ("create", "update", "end", "delete")},
    "api.list_teams": API,
    "api.get_team": API,
    "api.create_team": api_admin("create teams"),
    "api.update_team": api_manage("change this team"),
    "api.delete_team": api_admin("delete teams"),
    "api.put_team_member": api_manage("change this team"),
    "api.delete_team_member": api_manage("change this team"),
}


def may_manage(actor: User, owner_id: int | None) -> bool:
    """The object-level rule for personal things (profile, contact methods, tokens): own, or admin."""
    return actor.is_admin or (owner_id is not None and actor.id == owner_id)


def rule_for(endpoint: str | None) -> Rule | None:
    return RULES.get(endpoint or "")


# --- Enforcement ----------------------------------------------------------------------------------


def enforce():
    """The one before_request hook: look up the endpoint's rule and check its credential."""
    if request.endpoint is None:
        return None  # no route matched: routing answers 404 / 405 itself
    audit.set_actor(audit.ANONYMOUS)
    rule = rule_for(request.endpoint)
    if rule is None:
        current_app.logger.error("No access rule for %s: refused (add it to openduty.access.RULES)", request.endpoint)
        abort(403, "This page has no access rule yet, so nobody may use it.")
    return _CHECKS[rule.kind](rule)


def _nothing(rule: Rule) -> None:
    return None


def _login(rule: Rule):
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    audit.set_actor(audit.user_actor(current_user))
    return None


def _admin(rule: Rule):
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    audit.set_actor(audit.user_actor(current_user))
    if not current_user.is_admin:
        abort(403, f"Only admins can {rule.what}.")
    return None


def _respond(rule: Rule):
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    audit.set_actor(audit.user_actor(current_user))
    if current_user.observer and not current_user.is_admin:
        abort(403, f"Observers cannot {rule.what}.")
    return None


# Path parameters that name an object owned by a team, and how to find that team: the column
# holding it, or a function giving the teams of an object owned by several (all of them needed).
OWNED_BY = (
    ("team_id", Team.id),
    ("service_id", Service.team_id),
    ("policy_id", EscalationPolicy.team_id),
    ("schedule_id", Schedule.team_id),
    ("window_id", window_team_ids),
)


def may_manage_path(user: User, view_args: dict | None) -> bool:
    """Whether `user` may change the object the path names (or, without one, create in a team)."""
    if user.is_admin:
        return True
    for name, owner in OWNED_BY:
        if name in (view_args or {}):
            if callable(owner):
                team_ids = owner(view_args[name])
            else:
                team_ids = [db.session.scalar(select(owner).where(owner.class_.id == view_args[name]))]
            managed = user.managed_team_ids()
            return bool(team_ids) and all(t is not None and t in managed for t in team_ids)
    return bool(user.managed_team_ids())


def _manage(rule: Rule):
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    audit.set_actor(audit.user_actor(current_user))
    if not may_manage_path(current_user, request.view_args):
        abort(403, f"Only admins and the owning team's managers can {rule.what}.")
    return None


def _calendar_token(rule: Rule) -> None:
    user = ical.user_for_token(request.args.get("token"))
    if user is None:
        abort(404)
    g.calendar_user = user


def _twilio(rule: Rule) -> None:
    token = current_app.config.get("TWILIO_AUTH_TOKEN")
    if not token:
        abort(403, "Twilio is not configured (TWILIO_AUTH_TOKEN).")
    # Twilio signs the URL it called: our public BASE_URL plus the path and query.
    url = current_app.config["BASE_URL"].rstrip("/") + request.path
    if request.query_string:
        url += "?" + request.query_string.decode()
    expected = request_signature(token, url, request.form.to_dict())
    if not hmac.compare_digest(expected, request.headers.get("X-Twilio-Signature", "")):
        abort(403, "The X-Twilio-Signature header does not match.")


def _plain(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(message + "\n", status, headers=headers, mimetype="text/plain")


def _from_this_machine() -> bool:
    """Whether the client is on this machine: a loopback address, and no proxy header that
    TRUSTED_PROXIES did not resolve (a proxy here would make every client look local)."""
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:  # a Unix socket, or nothing: unknown, so not local
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    forwarded = "X-Forwarded-For" in request.headers or "Forwarded" in request.headers
    return (mapped or address).is_loopback and not (forwarded and not current_app.config["TRUSTED_PROXIES"])


def _metrics_token(rule: Rule) -> Response | None:
    token = current_app.config.get("METRICS_TOKEN")
    if not token:
        if _from_this_machine():
            return None
        return _plain(403, "Metrics are served to this machine only; to scrape from elsewhere set METRICS_TOKEN "
                           "and send 'Authorization: Bearer <METRICS_TOKEN>'.")  # fmt: skip
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        hint = {"WWW-Authenticate": 'Bearer realm="metrics"'}
        return _plain(401, "Send the metrics token: 'Authorization: Bearer <METRICS_TOKEN>'.", hint)
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return _plain(403, "This bearer token is not the metrics token (METRICS_TOKEN).")
    return None


# What a read-only token may do.
_READING = ("GET", "HEAD", "OPTIONS")
# API tokens are "od_" + 40 characters; anything much longer is not one (and is not hashed).
_MAX_TOKEN_LENGTH = 200


def _api_token(rule: Rule) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme.lower() not in ("token", "bearer") or not secret:
        raise ApiError(401, "Send an API token: 'Authorization: Token <token>'. Create one on your profile.")
    token = ApiToken.authenticate(secret) if len(secret) <= _MAX_TOKEN_LENGTH else None
    if token is None or not token.user.active:
        raise ApiError(401, "This API token is not valid (unknown, revoked, or its user is deactivated).")
    if token.read_only and request.method not in _READING:
        raise ApiError(403, "This API token is read-only: it can read but not change anything. Use another token.")
    audit.set_actor(audit.token_actor(token))
    token.last_used_at = clock.now()
    db.session.commit()
    g.api_user = token.user


def _api_admin(rule: Rule) -> None:
    _api_token(rule)
    if not g.api_user.is_admin:
        raise ApiError(403, f"Only admins can {rule.what}.")


def _api_respond(rule: Rule) -> None:
    _api_token(rule)
    if g.api_user.observer and not g.api_user.is_admin:
        raise ApiError(403, f"Observers cannot {rule.what}.")


def _api_manage(rule: Rule) -> None:
    _api_token(rule)
    if not may_manage_path(g.api_user, request.view_args):
        raise ApiError(403, f"Only admins and the owning team's managers can {rule.what}.")


_CHECKS = {
    "public": _nothing,
    "ack-link": _nothing,
    "event-key": _nothing,
    "login": _login,
    "admin": _admin,
    "respond": _respond,
    "manage": _manage,
    "calendar-token": _calendar_token,
    "twilio": _twilio,
    "metrics": _metrics_token,
    "api-token": _api_token,
    "api-admin": _api_admin,
    "api-respond": _api_respond,
    "api-manage": _api_manage,
}


def init_app(app: Flask) -> None:
    """Install the hook; call before CSRFProtect so that the access check runs first."""
    app.before_request(enforce)
