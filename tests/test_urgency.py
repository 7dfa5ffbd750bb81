"""Urgency: a service's setting gives each incident its urgency, which picks the rule list that pages;
support hours raise low-urgency incidents when they begin; people raise and lower it; a page of
an old urgency is never sent."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from openduty import escalation, incidents, services, timers, urgency
from openduty.event_commit import apply_and_commit
from openduty.events import Event
from openduty.extensions import db
from openduty.models import Incident, LogEntry, Notification, Service
from tests import factories_events
from tests.factories_escalation import make_pager, make_policy, make_service, trigger_event

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
BUDAPEST_OFFICE = {"time_zone": "Europe/Budapest", "days": WEEKDAYS, "start": "09:00", "end": "17:00"}


def _log(incident_id: int, kind: str) -> list[str]:
    query = select(LogEntry.message).where(LogEntry.incident_id == incident_id, LogEntry.kind == kind)
    return list(db.session.scalars(query.order_by(LogEntry.id)))


def _notifications(incident_id: int) -> list[Notification]:
    query = select(Notification).where(Notification.incident_id == incident_id).order_by(Notification.id)
    return list(db.session.scalars(query.execution_options(populate_existing=True)))


# --- A new incident's urgency ----------------------------------------------------------------------


def test_by_severity_is_the_default_and_maps_severities_on_ingest(client, app):
    integration = factories_events.make_integration()
    assert integration.service.urgency == "by_severity"
    for severity in ("critical", "error", "warning", "info"):
        payload = {"summary": f"{severity} on web-1", "source": "web-1", "severity": severity}
        body = {"routing_key": integration.key, "event_action": "trigger", "dedup_key": severity, "payload": payload}
        assert client.post("/v2/enqueue", json=body).status_code == 202
    found = dict(db.session.execute(select(Incident.severity, Incident.urgency)).all())
    assert found == {"critical": "high", "error": "high", "warning": "low", "info": "low"}


@pytest.mark.parametrize(("setting", "severity", "expected"), [("high", "info", "high"), ("low", "critical", "low")])
def test_a_fixed_setting_ignores_severity(app, setting, severity, expected):
    integration = factories_events.make_integration(factories_events.make_service(urgency=setting))
    incident = factories_events.make_incident(integration, severity=severity)
    assert incident.urgency == expected


def test_an_events_own_urgency_wins_without_a_query_per_event(app):
    integration = factories_events.make_integration()
    events = [Event(integration.key, "trigger", f"k{n}", "x", "critical", urgency="low") for n in range(3)]
    events.append(Event(integration.key, "trigger", "info", "x", "info", urgency="high"))
    outcomes = apply_and_commit(events)
    urgencies = [db.session.get(Incident, outcome.incident_id).urgency for outcome in outcomes]
    assert urgencies == ["low", "low", "low", "high"]


def test_support_hours_decide_at_trigger(app, clock):
    service = services.save_service(
        None, {"name": "Desk", "urgency": "support_hours", "support_hours": BUDAPEST_OFFICE}
    )
    db.session.commit()
    integration = factories_events.make_integration(service)
    inside = factories_events.make_incident(integration)  # Monday 10:00 in Budapest
    clock.set(datetime(2026, 3, 2, 16, 30, tzinfo=UTC))  # 17:30 in Budapest
    outside = factories_events.make_incident(integration)
    assert (inside.urgency, outside.urgency) == ("high", "low")


# --- Support hours -------------------------------------------------------------------------------


def test_support_hours_windows():
    hours = urgency.clean_support_hours(BUDAPEST_OFFICE)
    monday_evening = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
    assert urgency.in_support_hours(hours, datetime(2026, 3, 2, 8, 0, tzinfo=UTC))  # 09:00 CET
    assert not urgency.in_support_hours(hours, monday_evening)
    assert urgency.next_support_start(hours, monday_evening) == datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
    friday_evening = datetime(2026, 3, 27, 17, 0, tzinfo=UTC)
    # Summer time starts on Sunday 29 March: Monday's 09:00 is 07:00 UTC.
    assert urgency.next_support_start(hours, friday_evening) == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    night = urgency.clean_support_hours({"time_zone": "UTC", "days": ["sat"], "start": "22:00", "end": "06:00"})
    assert urgency.in_support_hours(night, datetime(2026, 3, 8, 5, 59, tzinfo=UTC))  # Sunday morning
    assert not urgency.in_support_hours(night, datetime(2026, 3, 8, 22, 0, tzinfo=UTC))  # Sunday night
    assert urgency.describe_support_hours(hours) == "Mon–Fri 09:00–17:00 (Europe/Budapest)"
    assert "ending the next day" in urgency.describe_support_hours(night)


def test_support_hours_start_raises_open_low_incidents(pager, clock):
    alice = make_pager("Alice", {"sms": ("+14155550101", 0)}, low={"email": ("alice@example.com", 0)})
    clock.set(datetime(2026, 3, 2, 17, 30, tzinfo=UTC))  # Monday 18:30 in Budapest
    data = {"name": "Desk", "escalation_policy_id": make_policy([(30, [alice])]).id}
    service = services.save_service(None, {**data, "urgency": "support_hours", "support_hours": BUDAPEST_OFFICE})
    db.session.commit()
    tuesday_nine = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
    assert timers.timer_due(urgency.TIMER_KIND, service.id) == tuesday_nine
    waiting = trigger_event(service, "Printer jammed", dedup_key="printer")
    acknowledged = trigger_event(service, "Toner low", dedup_key="toner")
    pager.run()
    assert sorted(pager.who()) == [("email", "alice@example.com")] * 2  # low: by email, nobody woken
    incidents.acknowledge(db.session.get(Incident, acknowledged.id), by=alice)
    db.session.commit()
    pager.clear()

    clock.set(tuesday_nine - timedelta(seconds=20))  # the clock ticks: room for a slow run
    pager.run()
    assert db.session.get(Incident, waiting.id).urgency == "low"
    clock.set(tuesday_nine + timedelta(seconds=1))
    pager.run()
    assert db.session.get(Incident, waiting.id).urgency == "high"
    assert db.session.get(Incident, acknowledged.id).urgency == "low"  # acknowledged: left alone
    assert pager.who() == [("sms", "+14155550101")]
    assert "support hours began" in _log(waiting.id, "urgency")[0]
    assert timers.timer_due(urgency.TIMER_KIND, service.id) == tuesday_nine + timedelta(days=1)


def test_changing_the_setting_rearms_or_cancels_the_timer(app, clock):
    service = services.save_service(
        None, {"name": "Desk", "urgency": "support_hours", "support_hours": BUDAPEST_OFFICE}
    )
    db.session.commit()
    assert timers.timer_due(urgency.TIMER_KIND, service.id) == datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
    services.save_service(service, {"support_hours": {**BUDAPEST_OFFICE, "start": "07:00"}})
    db.session.commit()
    assert timers.timer_due(urgency.TIMER_KIND, service.id) == datetime(2026, 3, 3, 6, 0, tzinfo=UTC)
    services.save_service(service, {"urgency": "high"})
    db.session.commit()
    assert timers.timer_due(urgency.TIMER_KIND, service.id) is None


# --- Paging by the incident's urgency -------------------------------------------------------------


def test_a_low_urgency_incident_pages_by_low_rules_only(pager):
    alice = make_pager("Alice", {"sms": ("+14155550101", 0)}, low={"slack": (pager.httpserver.url_for("/slack/ok"), 0)})
    bob = make_pager("Bob", {"voice": ("+14155550102", 0)}, email="bob@example.com")  # no low rules
    service = make_service(make_policy([(10, [alice, bob])]), urgency="low")
    incident = trigger_event(service)
    pager.run()
    assert sorted(pager.who()) == [("email", "bob@example.com"), ("slack", "/slack/ok")]
    assert {n.urgency for n in _notifications(incident.id)} == {"low"}


def test_raising_pages_by_high_rules_at_once_and_lowering_re_plans(pager, client, auth):
    alice = make_pager(
        "Alice", {"sms": ("+14155550101", 0), "voice": ("+14155550102", 5)}, low={"email": ("alice@example.com", 3)}
    )
    service = make_service(make_policy([(30, [alice])]), urgency="low")
    incident = trigger_event(service)
    pager.run()
    assert pager.who() == []  # the low rule waits 3 minutes
    auth.login(alice.email)
    response = client.post(
        f"/incidents/{incident.id}/urgency", data={"urgency": "high", "csrf_token": auth.csrf_token()}
    )
    assert response.status_code == 302
    pager.run()
    assert pager.who() == [("sms", "+14155550101")]
    statuses = [(n.urgency, n.kind, n.status) for n in _notifications(incident.id)]
    assert statuses == [("low", "email", "cancelled"), ("high", "sms", "sent"), ("high", "voice", "pending")]
    assert "Raised the urgency to high by Alice via web" in _log(incident.id, "urgency")[0]

    pager.clear()
    response = client.post(
        f"/incidents/{incident.id}/urgency", data={"urgency": "low", "csrf_token": auth.csrf_token()}
    )
    pager.advance(minutes=6)
    assert pager.who() == [("email", "alice@example.com")]  # the call was cancelled
    assert [n.status for n in _notifications(incident.id)][2:] == ["cancelled", "sent"]
    assert db.session.get(Incident, incident.id).epoch == 1  # the escalation timer kept its time


def test_change_urgency_through_the_api(app, api, pager):
    alice = make_pager("Alice", {"sms": ("+14155550101", 0)})
    service = make_service(make_policy([(30, [alice])]), urgency="low")
    incident = trigger_event(service)
    pager.run()
    api.as_user(alice)
    url = f"/api/v1/incidents/{incident.id}/urgency"
    answer = api.post(url, json={"urgency": "high"})
    assert answer.status_code == 200 and answer.json["urgency"] == "high" and answer.json["changed"] is True
    pager.run()
    assert ("sms", "+14155550101") in pager.who()
    assert api.post(url, json={"urgency": "high"}).json["changed"] is False
    bad = api.post(url, json={"urgency": "urgent"})
    assert bad.status_code == 422 and "urgency" in bad.json["error"]["fields"]
    api.post(f"/api/v1/incidents/{incident.id}/resolve")
    assert api.post(url, json={"urgency": "low"}).status_code == 409
    assert api.get(f"/api/v1/incidents/{incident.id}").json["urgency"] == "high"


def test_a_page_whose_incident_changed_urgency_is_not_sent(pager):
    alice = make_pager("Alice", {"sms": ("+14155550101", 0)}, low={"email": ("alice@example.com", 2)})
    service = make_service(make_policy([(30, [alice])]), urgency="low")
    incident = trigger_event(service)
    pager.run()
    # A change that did not go through change_urgency (say, a race with the planner): delivery checks.
    db.session.get(Incident, incident.id).urgency = "high"
    db.session.commit()
    pager.advance(minutes=3)
    assert pager.who() == []
    [page] = _notifications(incident.id)
    assert page.status == "cancelled" and "urgency changed to high" in page.last_error
    assert "Not sent: The incident's urgency changed to high" in _log(incident.id, "notify_cancelled")[0]


# --- Lists, preview ------------------------------------------------------------------------------


def test_filter_by_urgency_in_the_console_and_the_api(app, client, auth, api, admin):
    integration = factories_events.make_integration()
    high = factories_events.make_incident(integration, summary="Database down", severity="critical")
    low = factories_events.make_incident(integration, summary="Disk at 80%", severity="warning")
    api.as_user(admin)
    listed = api.get("/api/v1/incidents?urgency=low").json
    assert [i["id"] for i in listed["incidents"]] == [low.id] and listed["incidents"][0]["urgency"] == "low"
    assert api.get("/api/v1/incidents?urgency=loud").status_code == 422
    auth.login(admin.email)
    page = client.get("/incidents?urgency=high").get_data(as_text=True)
    assert "Database down" in page and "Disk at 80%" not in page
    assert client.get("/incidents?urgency=loud").status_code == 400
    assert high.urgency == "high"


def test_the_preview_shows_both_urgencies(app, client, auth, admin):
    alice = make_pager(
        "Alice", {"webhook": ("https://hooks.example.com/a", 0)}, low={"email": ("alice@example.com", 5)}
    )
    policy = make_policy([(10, [alice])])
    plan = escalation.preview(policy, datetime.now(UTC))
    assert [(s.minute, s.pages[0][1]) for s in plan.steps] == [(0, ["webhook"])]
    assert [(s.minute, s.pages[0][1]) for s in plan.low_steps] == [(5, ["email"])]
    auth.login(admin.email)
    page = client.get(f"/policies/{policy.id}").get_data(as_text=True)
    assert "High urgency" in page and "Low urgency" in page and "at 5 min Alice by email" in page


# --- Settings are validated -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"urgency": "sometimes"}, "urgency", "Use one of high, low, by_severity, support_hours"),
        ({"urgency": "support_hours"}, "support_hours", "Set the support hours"),
        ({"support_hours": {**BUDAPEST_OFFICE, "time_zone": "Mars/Olympus"}}, "support_hours", "Unknown time zone"),
        ({"support_hours": {**BUDAPEST_OFFICE, "days": []}}, "support_hours", "at least one day"),
        ({"support_hours": {**BUDAPEST_OFFICE, "days": ["funday"]}}, "support_hours", "unknown day funday"),
        ({"support_hours": {**BUDAPEST_OFFICE, "end": "09:00"}}, "support_hours", "the same time"),
        ({"support_hours": {**BUDAPEST_OFFICE, "start": "25:00"}}, "support_hours", "between 00:00 and 24:00"),
        ({"support_hours": {**BUDAPEST_OFFICE, "lunch": "12:00"}}, "support_hours", "Unknown field lunch"),
        ({"support_hours": "weekdays"}, "support_hours", "Send an object like"),
    ],
)
def test_bad_settings_are_refused_and_change_nothing(app, api, admin, body, field, says):
    api.as_user(admin)
    service = make_service()
    answer = api.patch(f"/api/v1/services/{service.id}", json=body)
    assert answer.status_code == 422
    assert says in answer.json["error"]["fields"][field]
    db.session.expire_all()
    assert (service.urgency, service.support_hours) == ("by_severity", None)


def test_the_service_form_sets_support_hours(app, client, auth, admin, clock):
    auth.login(admin.email)
    form = {"csrf_token": auth.csrf_token(), "name": "Desk", "urgency": "support_hours", "support_start": "09:00"}
    form |= {"support_end": "17:00", "support_time_zone": "Mars/Olympus", "support_days": ["mon", "fri"]}
    refused = client.post("/services/new", data=form)
    assert refused.status_code == 422 and "Unknown time zone" in refused.get_data(as_text=True)
    saved = client.post("/services/new", data={**form, "support_time_zone": "Europe/Budapest"})
    assert saved.status_code == 302
    service = db.session.scalar(select(Service).where(Service.name == "Desk"))
    assert service.support_hours == {**BUDAPEST_OFFICE, "days": ["mon", "fri"]}
    page = client.get(f"/services/{service.id}").get_data(as_text=True)
    assert "By support hours: high Mon, Fri 09:00–17:00 (Europe/Budapest), low outside." in page
    edit = client.get(f"/services/{service.id}/edit").get_data(as_text=True)
    assert 'value="Europe/Budapest"' in edit


# --- The two rule lists ---------------------------------------------------------------------------------


def test_profile_and_api_keep_two_rule_lists(app, client, auth, api):
    alice = make_pager("Alice", {"sms": ("+14155550101", 0)})
    method = alice.contact_methods[0]
    auth.login(alice.email)
    data = {"csrf_token": auth.csrf_token(), "contact_method_id": method.id, "delay_minutes": "5", "urgency": "low"}
    assert client.post(f"/users/{alice.id}/notification-rules", data=data).status_code == 302
    page = client.get("/profile").get_data(as_text=True)
    low_list = page[page.index('id="low-urgency-rules"') :]
    assert "After 5 min" in low_list and "Immediately" not in low_list
    api.as_user(alice)
    rules = api.get(f"/api/v1/users/{alice.id}/notification-rules").json["notification_rules"]
    assert sorted((r["urgency"], r["delay_minutes"]) for r in rules) == [("high", 0), ("low", 5)]
    made = api.post(
        f"/api/v1/users/{alice.id}/notification-rules", json={"contact_method_id": method.id, "urgency": "low"}
    )
    assert made.status_code == 201 and made.json["urgency"] == "low"
    bad = api.post(
        f"/api/v1/users/{alice.id}/notification-rules", json={"contact_method_id": method.id, "urgency": "x"}
    )
    assert bad.status_code == 422 and "urgency" in bad.json["error"]["fields"]
