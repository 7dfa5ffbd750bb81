"""Configuration as code: `openduty export` / `import` (docs/backup.md).

The round trip is checked two ways: a second export equals the first, and every configuration row
(foreign keys replaced by the rows they point to, ids and bookkeeping columns left out) is the same
after export -> empty database -> import as before.
"""

import copy
import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from openduty import config_export, ical, maintenance, services, shift_notices
from openduty.extensions import db
from openduty.models import (
    ApiToken,
    AuditEntry,
    Integration,
    Schedule,
    ScheduleLayer,
    Team,
    TeamMember,
    Timer,
    User,
)
from tests import factories, factories_escalation, factories_events, factories_schedules
from tests.conftest import _empty_database

CONFIG_TABLES = (
    *("users", "api_tokens", "contact_methods", "notification_rules", "shift_notice_settings", "teams"),
    *("team_members", "schedules", "schedule_layers", "schedule_layer_participants", "schedule_overrides"),
    *("escalation_policies", "escalation_levels", "escalation_targets", "services", "integrations", "heartbeats"),
    *("email_integrations", "event_rules", "maintenance_windows", "maintenance_window_services"),
)
# Bookkeeping, not configuration: when a row was made, caches, counters, state.
NOT_COMPARED = {
    *("id", "created_at", "revision", "session_generation", "last_used_at", "ical_refreshed_at"),
    *("match_count", "last_matched_at", "state", "last_ping_at", "due_at"),
}
CALENDAR = "\r\n".join(
    [
        *("BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Test//EN", "BEGIN:VEVENT", "UID:a1", "SUMMARY:Bob"),
        *("DTSTART:20260303T090000Z", "DTEND:20260303T170000Z", "RRULE:FREQ=WEEKLY;COUNT=4"),
        *("ATTENDEE:mailto:bob@example.com", "END:VEVENT", "END:VCALENDAR", ""),
    ]
)
WEBHOOK = "https://hooks.example.com/services/T000/B000/secret-token"


@pytest.fixture
def world(app, clock, admin):
    """One of every kind of configuration, made as the pages and the API make them."""
    now = clock.now()
    bob = factories.make_user(email="bob@example.com", name="Bob", time_zone="Europe/Budapest")
    eve = factories.make_user(email="eve@example.com", name="Eve", observer=True)
    mail = factories.make_contact_method(bob)
    hook = factories.make_contact_method(bob, kind="webhook", address=WEBHOOK, label="ops hook")
    factories.make_notification_rule(bob, mail)
    factories.make_notification_rule(bob, hook, delay_minutes=5)
    factories.make_notification_rule(bob, mail, delay_minutes=30, urgency="low")
    ApiToken.issue(bob, "dashboards", read_only=True)
    shift_notices.save_settings(bob, {"reminder_hours": 4, "reminder_contact_method_id": hook.id})
    team = Team(name="Payments", description="Money", members=[TeamMember(user=bob, role="manager")])
    team.members.append(TeamMember(user=eve))
    db.session.add(team)
    db.session.commit()
    schedule = factories_schedules.make_schedule("Primary", time_zone="Europe/Budapest", team_id=team.id)
    factories_schedules.make_layer(
        schedule, [bob, admin], datetime(2026, 3, 2, 9), restrictions=[{"days": ["mon", "tue"], "start": "09:00"}]
    )
    holidays = ScheduleLayer(schedule=schedule, position=1, name="Holidays", kind="ical")
    db.session.add(holidays)
    ical.import_ical(holidays, CALENDAR)
    factories_schedules.make_override(schedule, eve, now + timedelta(hours=1), now + timedelta(hours=5), note="swap")
    policy = factories_escalation.make_policy([(5, [bob]), (10, [schedule, admin])], repeat_count=2, name="Standard")
    policy.team_id = team.id
    checkout = factories_events.make_service(name="Checkout", escalation_policy=policy, team_id=team.id)
    services.save_service(
        checkout,
        {
            "urgency": "support_hours",
            "support_hours": {"time_zone": "UTC", "days": ["mon"], "start": "09:00", "end": "17:00"},
        },
    )
    spare = factories_events.make_service(name="Spare", description="kept warm", ack_timeout_minutes=30)
    factories_events.make_integration(checkout, name="Prometheus")
    factories_events.make_email_integration(checkout, dedup_source="subject_regex", dedup_regex=r"#(\d+)")
    beat = factories_events.make_heartbeat(checkout, interval=300, grace=60)
    factories_events.make_rule(checkout, "set_severity", [("summary", "contains", "disk")], severity="warning")
    factories_events.make_rule(checkout, "route", [("source", "equals", "spare")], route_to_service_id=spare.id)
    factories_events.make_rule(None, "drop", [("summary", "matches", "^test")], name="tests")
    maintenance.save_window(
        None, {"start": now.isoformat(), "end": (now + timedelta(hours=2)).isoformat(), "service_ids": [spare.id]}
    )
    maintenance.save_window(
        None,
        {
            "start": (now + timedelta(days=1)).isoformat(),
            "end": (now + timedelta(days=1, hours=1)).isoformat(),
            "description": "upgrade",
            "service_ids": [checkout.id, spare.id],
        },
        admin,
    )
    db.session.commit()
    return {"beat": beat.id}


def config_rows() -> dict[str, list]:
    """Every configuration row by table, foreign keys replaced by what they point to."""
    tables = {table.name: table for table in db.metadata.sorted_tables}
    seen: dict[tuple[str, object], tuple] = {}

    def row_of(table, row) -> tuple:
        values = []
        for column in table.columns:
            value = row._mapping[column.name]
            if column.foreign_keys and value is not None:
                target = next(iter(column.foreign_keys)).column
                values.append((column.name, pointed(target.table, target, value)))
            elif column.name not in NOT_COMPARED:
                values.append((column.name, value))
        return tuple(values)

    def pointed(table, column, value) -> tuple:
        key = (table.name, value)
        if key not in seen:
            seen[key] = row_of(table, db.session.execute(select(table).where(column == value)).one())
        return seen[key]

    return {
        name: sorted((row_of(tables[name], row) for row in db.session.execute(select(tables[name]))), key=repr)
        for name in CONFIG_TABLES
    }


def timers_owed() -> list[tuple[str, datetime]]:
    """The timers rows other than shift notices' re-plans (due "now": when the change was made)."""
    rows = db.session.scalars(select(Timer).where(Timer.kind != "shift_plan"))
    return sorted((timer.kind, timer.due_at) for timer in rows)


def wipe() -> None:
    db.session.remove()
    _empty_database()


def without_time(document: dict) -> dict:
    return {key: value for key, value in document.items() if key != "exported_at"}


def export(runner, *args) -> dict:
    result = runner.invoke(args=["openduty", "export", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def run_import(runner, tmp_path, document, *args):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document))
    return runner.invoke(args=["openduty", "import", str(path), *args])


def test_export_import_into_an_empty_database_reproduces_the_configuration(world, runner, tmp_path, run_jobs):
    run_jobs()  # the shift notices' re-plans the world's changes asked for
    first = export(runner, "--with-secrets")
    rows, owed = config_rows(), timers_owed()
    assert {"maintenance_start", "maintenance_end", "support_hours"} <= {kind for kind, _ in owed}
    assert {len(rows[name]) > 0 for name in CONFIG_TABLES} == {True}, "the world has every kind of row"
    wipe()
    result = run_import(runner, tmp_path, first, "--with-secrets")
    assert result.exit_code == 0, result.output
    assert "Imported:" in result.output and "create service Checkout" in result.output
    db.session.remove()
    assert config_rows() == rows
    assert without_time(export(runner, "--with-secrets")) == without_time(first)
    # The domain armed the same timers: windows' start and end, support hours, and (once the
    # re-plan of the new schedule's shift notices ran) the reminders.
    assert "shift_plan" in {timer.kind for timer in db.session.scalars(select(Timer))}
    run_jobs()
    assert timers_owed() == owed
    # The import is audited as the CLI's.
    assert {entry.actor for entry in db.session.scalars(select(AuditEntry))} == {"cli"}


def test_reimporting_the_same_document_changes_nothing_and_says_so(world, runner, tmp_path):
    document = export(runner)
    rows, audit = config_rows(), db.session.scalar(select(db.func.count(AuditEntry.id)))
    for args in ((), ("--with-secrets",)):
        result = run_import(runner, tmp_path, document, *args)
        assert result.exit_code == 0, result.output
        assert result.output.strip() == "No changes: the database has this configuration already."
    db.session.remove()
    assert config_rows() == rows
    assert db.session.scalar(select(db.func.count(AuditEntry.id))) == audit


def test_dry_run_prints_the_changes_and_changes_nothing(world, runner, tmp_path):
    document = export(runner)
    rows = config_rows()
    document["users"][1]["name"] = "Robert"
    document["services"].append({"name": "Search", "integrations": [{"kind": "generic", "name": "hook"}]})
    document["escalation_policies"][0]["levels"].pop()
    del document["users"][1]["contact_methods"][1]  # the webhook, and the rule and setting that use it
    document["users"][1]["notification_rules"]["high"].pop()
    document["users"][1]["shift_notices"]["contact_method"] = None
    result = run_import(runner, tmp_path, document, "--dry-run")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "change user bob@example.com: name 'Bob' -> 'Robert'" in lines
    assert "create service Search" in lines and "create service Search: integration hook" in lines
    assert "change escalation policy Standard: levels" in lines
    assert "remove user bob@example.com: contact method webhook ops hook" in lines
    assert lines[-1] == f"Dry run: {len(lines) - 1} change(s) shown, none made."
    db.session.remove()
    assert config_rows() == rows
    assert run_import(runner, tmp_path, document).exit_code == 0
    db.session.remove()
    assert User.by_email("bob@example.com").name == "Robert"
    assert [m.kind for m in User.by_email("bob@example.com").contact_methods] == ["email"]


def test_secrets_only_with_secrets(world, runner, tmp_path):
    bob = User.by_email("bob@example.com")
    keys = set(db.session.scalars(select(Integration.key)))
    secrets = {bob.password_hash, bob.calendar_token, WEBHOOK, bob.api_tokens[0].token_hash, *keys}
    plain = json.dumps(export(runner))
    assert not [secret for secret in secrets if secret in plain]
    full = export(runner, "--with-secrets")
    assert all(secret in json.dumps(full) for secret in secrets)

    # Into an empty database without secrets: new keys and calendar tokens, no passwords, no tokens.
    wipe()
    result = run_import(runner, tmp_path, json.loads(plain))
    assert "address: No such method to keep the address of: give the address." in result.output
    assert result.exit_code != 0 and db.session.scalar(select(db.func.count(User.id))) == 0
    result = run_import(runner, tmp_path, full)  # secrets in the document, not applied
    assert result.exit_code == 0, result.output
    db.session.remove()
    bob = User.by_email("bob@example.com")
    assert bob.password_hash is None and bob.api_tokens == [] and bob.calendar_token not in secrets
    assert bob.contact_methods[1].address == WEBHOOK  # an address is configuration once given
    new_keys = set(db.session.scalars(select(Integration.key)))
    assert len(new_keys) == 3 and not new_keys & keys

    # Without --with-secrets an import keeps the secrets there are; with it, it sets the document's.
    assert run_import(runner, tmp_path, json.loads(plain)).output.startswith("No changes")
    result = run_import(runner, tmp_path, full, "--with-secrets")
    assert result.exit_code == 0 and "password_hash (secret)" in result.output
    db.session.remove()
    assert set(db.session.scalars(select(Integration.key))) == keys
    assert User.by_email("bob@example.com").check_password(factories.PASSWORD)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.update(version=99), "$.version: This Openduty reads version 1 documents"),
        (lambda d: d["users"][0].update(email="not an email"), "$.users[0].email:"),
        (lambda d: d["users"][1]["contact_methods"][0].update(kind="pigeon"), "$.users[1].contact_methods[0].kind"),
        (lambda d: d["users"][1]["notification_rules"]["high"][0].update(contact_method=7), "rules.high[0].contact"),
        (lambda d: d["teams"][0]["members"][0].update(user="nobody@example.com"), "$.teams[0].members[0].user: No"),
        (lambda d: d["schedules"][0]["layers"][0].update(shift_unit="fortnights"), "layers[0].shift_unit: Use"),
        (lambda d: d["schedules"][0]["overrides"][0].update(end="2020-01-01T00:00:00Z"), "overrides[0].end: End"),
        (lambda d: d["escalation_policies"][0]["levels"][0]["targets"].append({"team": "x"}), "targets[1]: A target"),
        (lambda d: d["services"][0].update(urgency="sometimes"), "$.services[0].urgency:"),
        (lambda d: d["services"][0]["integrations"][2]["heartbeat"].update(interval_seconds=1), "heartbeat.interval"),
        (
            lambda d: d["services"][0]["event_rules"][1].update(route_to="Nowhere"),
            "event_rules[1].route_to: No service",
        ),
        (lambda d: d["event_rules"][0]["conditions"][0].update(operator="near"), "$.event_rules[0].conditions.0.op"),
        (lambda d: d["maintenance_windows"][0].update(services=[]), "$.maintenance_windows[0].services: A window"),
        (lambda d: d.update(extra=1), "$.extra: Unknown key"),
        (lambda d: [u.update(directory_dn="uid=x") for u in d["users"]], "$.users[1].directory_dn: Another user"),
        (lambda d: d["services"].append(copy.deepcopy(d["services"][0])), "$.services[2].name: Another service"),
    ],
)
def test_a_bad_document_is_refused_whole_with_the_paths_to_fix(world, runner, tmp_path, change, expected):
    document = export(runner)
    rows = config_rows()
    document["users"][0]["name"] = "Changed too"  # a valid change that must not happen either
    change(document)
    result = run_import(runner, tmp_path, document)
    assert result.exit_code != 0
    assert "The document was not imported" in result.output and expected in result.output, result.output
    db.session.remove()
    assert config_rows() == rows


def test_every_problem_is_listed_at_once_and_bad_json_is_said(world, runner, tmp_path):
    document = export(runner)
    document["users"][0]["time_zone"] = "Mars/Olympus"
    document["services"][1]["ack_timeout_minutes"] = -1
    result = run_import(runner, tmp_path, document)
    assert "$.users[0].time_zone:" in result.output and "$.services[1].ack_timeout_minutes:" in result.output
    (tmp_path / "bad.json").write_text("{not json")
    result = runner.invoke(args=["openduty", "import", str(tmp_path / "bad.json")])
    assert result.exit_code != 0 and "Cannot read" in result.output


def test_a_partial_document_touches_only_what_it_names(world, runner, tmp_path):
    document = {
        "format": config_export.FORMAT,
        "version": config_export.VERSION,
        "schedules": [{"name": "Night", "layers": []}],
        "teams": [{"name": "Payments", "description": "Payments and refunds"}],
    }
    result = run_import(runner, tmp_path, document)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:2] == [
        "change team Payments: description 'Money' -> 'Payments and refunds'",
        "create schedule Night",
    ]
    db.session.remove()
    assert len(db.session.scalar(select(Team)).members) == 2
    assert db.session.scalar(select(db.func.count(Schedule.id))) == 2


def test_a_clash_with_the_database_changes_nothing(world, runner, tmp_path):
    bob = User.by_email("bob@example.com")
    bob.directory_dn = "uid=bob,dc=example"
    db.session.commit()
    document = export(runner)
    document["users"] = [user for user in document["users"] if user["email"] != "bob@example.com"]
    document["users"][0]["directory_dn"] = "uid=bob,dc=example"  # Bob's, and Bob is not in the document
    rows = config_rows()
    result = run_import(runner, tmp_path, document)
    assert result.exit_code != 0 and "nothing changed: a value must be unique" in result.output
    db.session.remove()
    assert config_rows() == rows


def test_import_reads_standard_input(world, runner):
    document = export(runner)
    result = runner.invoke(args=["openduty", "import", "-"], input=json.dumps(document))
    assert result.exit_code == 0 and result.output.startswith("No changes")


def test_a_channel_this_server_lacks_is_imported_with_a_warning(world, runner, tmp_path, app):
    document = export(runner)
    methods = document["users"][0]["contact_methods"]
    methods.append({"kind": "sms", "label": "", "address": "+14155550177"})
    app.config.update(TWILIO_ACCOUNT_SID=None, TWILIO_AUTH_TOKEN=None, TWILIO_FROM_NUMBER=None)
    result = run_import(runner, tmp_path, document)
    assert result.exit_code == 0, result.output
    assert "Imported:" in result.stdout and "Warning" not in result.stdout
    assert (
        f"Warning: $.users[0].contact_methods[{len(methods) - 1}]: SMS (Twilio) is not configured on this server: "
        "an admin must set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER. Pages to it fail until then."
    ) in result.stderr
    app.config.update(TWILIO_ACCOUNT_SID="AC1", TWILIO_AUTH_TOKEN="token", TWILIO_FROM_NUMBER="+14155550100")
    assert "SMS (Twilio)" not in run_import(runner, tmp_path, document).stderr
