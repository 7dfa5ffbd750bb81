"""Configuration as code, in: apply a document of openduty.config_export (`openduty import`).

The document is checked whole first (openduty.config_check); then every object is created or
updated in the caller's one transaction, matched by its stable name (users by email; teams,
schedules, policies and services by name). An object's parts follow the document: contact methods,
rules, tokens, members, layers, overrides, levels, integrations and event rules that the document
no longer has are removed. Top-level objects missing from the document are left alone (import
never deletes a user, team, schedule, policy, service or maintenance window). Writing the same value
is no change, so importing a document twice changes nothing the second time. `changes` says what
changed, one line each; the caller commits (or rolls back: a dry run).

Timers follow through the domain's own functions: heartbeats (openduty.heartbeats), email settings
(inbound_email), support hours (services.save_service), maintenance windows (maintenance), shift
notices (shift_notices, and a re-plan of every schedule created or changed). Secrets in the
document are applied only `with_secrets`; otherwise existing secrets stay and new objects get new
ones (integration keys, calendar tokens; no password: the person sets one with "forgot password").
"""

from collections import Counter
from typing import Any

from sqlalchemy import select

from openduty import clock, config_import_parts, maintenance, services, shift_notices, timers, validation
from openduty.config_check import ConfigError, check_document
from openduty.config_import_parts import short
from openduty.extensions import db
from openduty.models import (
    ApiToken,
    ContactMethod,
    MaintenanceWindow,
    NotificationRule,
    Service,
    ShiftNoticeSettings,
    Team,
    TeamMember,
    User,
)
from openduty.notifiers import not_configured


def import_config(document: Any, with_secrets: bool = False) -> list[str]:
    """Check `document` (ConfigError lists every problem) and apply it in the current transaction;
    the changes made, one line each (none: the database already had this configuration)."""
    check_document(document)
    return Importer(document, with_secrets).run()


def warnings(document: dict[str, Any]) -> list[str]:
    """What the (checked) document asks for that this server cannot do, one line each with its path:
    contact methods on a channel whose settings are missing here (their pages would fail until an
    admin sets them). Not refused, so that a backup restores onto a server still being set up."""
    found = []
    for n, user in enumerate(document.get("users") or []):
        for m, method in enumerate(user.get("contact_methods") or []):
            reason = not_configured(method["kind"])
            if reason:
                found.append(f"$.users[{n}].contact_methods[{m}]: {reason} Pages to it fail until then.")
    return found


class Importer(config_import_parts.Parts):
    """One import: the document, whether its secrets apply, and the changes made so far."""

    def __init__(self, document: dict[str, Any], with_secrets: bool):
        super().__init__()
        self.document = document
        self.with_secrets = with_secrets

    def section(self, name: str) -> list[tuple[str, dict]]:
        return [(f"$.{name}[{n}]", item) for n, item in enumerate(self.document.get(name) or [])]

    def run(self) -> list[str]:
        # Flushed where ids are needed, not before every query (a flush per lookup is slow).
        with db.session.no_autoflush:
            return self._run()

    def _run(self) -> list[str]:
        notices = []
        for path, data in self.section("users"):
            user, methods = self.user(path, data)
            notices.append((user, methods, data))
        db.session.flush()
        for path, data in self.section("teams"):
            self.team(path, data)
        db.session.flush()
        self.schedules([item for _, item in self.section("schedules")])
        for _, data in self.section("escalation_policies"):
            self.policy(data)
        db.session.flush()
        for path, data in self.section("services"):
            self.service(path, data)
        db.session.flush()
        for _, data in self.section("services"):
            if "event_rules" in data:
                service = self.named(Service, data["name"])
                self.event_rules(service.id, data["event_rules"], f"service {service.name}")
        if "event_rules" in self.document:
            self.event_rules(None, self.document["event_rules"], "global event rules")
        for _, data in self.section("maintenance_windows"):
            self.window(data)
        db.session.flush()
        for user, methods, data in notices:  # last: the plan reads the schedules
            if "shift_notices" in data:
                self.shift_notices(user, methods, data["shift_notices"])
        self.replan_schedules()
        return self.changes

    # --- Users ---------------------------------------------------------------------------------

    def user(self, path: str, data: dict) -> tuple[User, list[ContactMethod]]:
        user = self.user_named(data["email"])
        label = f"user {data['email']}"
        if user is None:
            user = User(email=validation.email(data["email"]), name=data["name"].strip())
            db.session.add(user)
            self.loaded[User][user.email.lower()] = user
            self.created(label)
        fields = ("name", "time_zone", "is_admin", "observer", "active", "auth_source", "directory_dn")
        self.update(user, label, {name: data[name] for name in fields if name in data})
        if self.with_secrets:
            self.user_secrets(user, label, data)
        methods = self.contact_methods(user, label, path, data.get("contact_methods"))
        if "notification_rules" in data:
            self.notification_rules(user, label, methods, data["notification_rules"] or {})
        return user, methods

    def user_secrets(self, user: User, label: str, data: dict) -> None:
        if "password_hash" in data and user.password_hash != data["password_hash"]:
            if user.id is not None:
                user.end_sessions()  # a new password: the sessions of the old one end
            self.update(user, label, {"password_hash": data["password_hash"]}, secret=True)
        if "calendar_token" in data and data["calendar_token"] is not None:
            self.update(user, label, {"calendar_token": data["calendar_token"]}, secret=True)
        if "api_tokens" not in data:
            return
        wanted = {token["token_hash"]: token for token in data["api_tokens"]}
        for token in list(user.api_tokens):
            if token.token_hash not in wanted:
                user.api_tokens.remove(token)
                self.removed(f"{label}: API token {token.name}")
        have = {token.token_hash: token for token in user.api_tokens}
        for token_hash, token in wanted.items():
            values = {"name": token["name"].strip(), "read_only": token.get("read_only", False)}
            values["prefix"] = token.get("prefix") or ""
            if token_hash in have:
                self.update(have[token_hash], f"{label}: API token {token['name']}", values)
            else:
                user.api_tokens.append(ApiToken(token_hash=token_hash, **values))
                self.created(f"{label}: API token {token['name']}")

    def contact_methods(self, user: User, label: str, path: str, given: list | None) -> list[ContactMethod]:
        """The user's methods in the document's order (matched by kind and address, or by kind and
        label when the document has no address); those not in the document are removed."""
        if given is None:
            return list(user.contact_methods)
        free = list(user.contact_methods)
        methods = []
        for n, data in enumerate(given):
            kind, name = data["kind"], (data.get("label") or "").strip()
            address = data.get("address")
            if address is not None:
                address = validation.contact_address(kind, address, privileged=True)
                match = next((m for m in free if (m.kind, m.address) == (kind, address)), None)
            else:
                match = next((m for m in free if (m.kind, m.label) == (kind, name)), None)
            what = f"{label}: contact method {kind} {name}".rstrip()
            if match is None:
                if address is None:
                    where = f"{path}.contact_methods[{n}].address"
                    raise ConfigError([(where, "No such method to keep the address of: give the address.")])
                match = ContactMethod(kind=kind, address=address, label=name)
                user.contact_methods.append(match)
                self.created(what)
            else:
                free.remove(match)
                self.update(match, what, {"label": name})
            methods.append(match)
        for method in free:
            for rule in list(method.rules):
                if rule in user.notification_rules:
                    user.notification_rules.remove(rule)
            user.contact_methods.remove(method)
            self.removed(f"{label}: contact method {method.kind} {method.label}".rstrip())
        return methods

    def notification_rules(self, user: User, label: str, methods: list[ContactMethod], given: dict) -> None:
        wanted = Counter(
            (urgency, id(methods[rule["contact_method"]]), rule.get("delay_minutes", 0))
            for urgency in ("high", "low")
            for rule in given.get(urgency) or []
        )
        keep = Counter()
        for rule in list(user.notification_rules):
            key = (rule.urgency, id(rule.contact_method), rule.delay_minutes)
            if keep[key] < wanted[key]:
                keep[key] += 1
                continue
            user.notification_rules.remove(rule)
            self.removed(f"{label}: {rule.urgency}-urgency rule after {rule.delay_minutes} min")
        by_id = {id(method): method for method in methods}
        for key, count in (wanted - keep).items():
            urgency, method_key, delay = key
            for _ in range(count):
                rule = NotificationRule(contact_method=by_id[method_key], delay_minutes=delay, urgency=urgency)
                user.notification_rules.append(rule)
                self.created(f"{label}: {urgency}-urgency rule after {delay} min")

    def shift_notices(self, user: User, methods: list[ContactMethod], given: dict | None) -> None:
        row = db.session.get(ShiftNoticeSettings, user.id)
        label = f"user {user.email}: shift notice settings"
        if given is None:
            if row is not None:
                db.session.delete(row)
                db.session.flush()
                shift_notices.plan(user)
                self.removed(label)
            return
        index = given.get("contact_method")
        values = {
            "reminder_hours": given.get("reminder_hours", shift_notices.DEFAULT_REMINDER_HOURS),
            "weekly_summary": given.get("weekly_summary", False),
            "reminder_contact_method_id": methods[index].id if index is not None else None,
        }
        current = shift_notices.settings_json(user) if row is not None else None
        if current != values:
            shift_notices.save_settings(user, values)
            self.changed(label) if row is not None else self.created(label)

    # --- Teams ---------------------------------------------------------------------------------

    def team(self, path: str, data: dict) -> None:
        team, label = self.named_or_new(Team, "team", data, ("description", "directory_dn"))
        if "members" not in data:
            return
        wanted = {self.user_id(m["user"]): m.get("role", "member") for m in data["members"]}
        for member in list(team.members):
            if member.user_id not in wanted:
                team.members.remove(member)
                self.removed(f"{label}: member {member.user.email}")
        have = {member.user_id: member for member in team.members}
        for member_data in data["members"]:
            user_id, role = self.user_id(member_data["user"]), member_data.get("role", "member")
            if user_id in have:
                self.update(have[user_id], f"{label}: member {member_data['user']}", {"role": role})
            else:
                team.members.append(TeamMember(user_id=user_id, role=role))
                self.created(f"{label}: member {member_data['user']}")

    # --- Services ------------------------------------------------------------------------------

    def service(self, path: str, data: dict) -> None:
        service = self.named(Service, data["name"])
        label = f"service {data['name']}"
        values = {name: data[name] for name in services.SERVICE_FIELDS if name in data}
        if "escalation_policy" in data:
            values["escalation_policy_id"] = self.policy_id(data["escalation_policy"])
        clean = services.clean_service(values, service)
        if service is None:
            service = services.save_service(None, clean)
            self.remember(service)
            self.created(label)
        else:
            differing = {name: value for name, value in clean.items() if getattr(service, name) != value}
            for name, value in differing.items():
                self.changed(f"{label}: {name} {short(getattr(service, name))} -> {short(value)}")
            if differing:
                services.save_service(service, differing)
        if "team" in data:  # the owner: set as is (save_service leaves teams to the caller's rights)
            self.update(service, label, {"team_id": self.team_id(data["team"])})
        if "integrations" in data:
            db.session.flush()
            self.integrations(service, label, path, data["integrations"])

    # --- Maintenance windows -------------------------------------------------------------------

    def window(self, data: dict) -> None:
        start = validation.aware_datetime(data["start"])
        end = validation.aware_datetime(data["end"])
        description = (data.get("description") or "").strip()
        service_ids = sorted({self.named(Service, name).id for name in data["services"]})
        label = f"maintenance window {description or ''} {start:%Y-%m-%d %H:%M}–{end:%Y-%m-%d %H:%M} UTC"
        if end <= clock.now():
            self.notes.append(f"skipped {label}: it has ended")
            return
        for window in db.session.scalars(
            select(MaintenanceWindow).where(MaintenanceWindow.start == start, MaintenanceWindow.end == end)
        ):
            if window.description == description and sorted(window.service_ids) == service_ids:
                return
        created_by = self.user_named(data["created_by"]) if data.get("created_by") else None
        maintenance.restore_window(start, end, description, service_ids, created_by)
        self.created(label)

    # --- Timers --------------------------------------------------------------------------------

    def replan_schedules(self) -> None:
        """Shift notices follow schedules: every schedule this import created or changed is re-planned
        (openduty.shift_notices re-plans changed ones itself; a new one is planned here)."""
        for schedule_id in sorted(self.touched_schedules):
            timers.set_timer(shift_notices.PLAN_KIND, schedule_id, clock.now())
