"""Event rules, grouping and auto-resolve through ingest: what the sender is answered and what is
stored (incidents, suppressed alerts, rule counts), on real endpoints."""

from datetime import timedelta

from sqlalchemy import select

from openduty import event_intake, jobs, timers
from openduty.event_commit import apply_and_commit
from openduty.events import Event
from openduty.extensions import db
from openduty.models import EventRule, Incident, SuppressedAlert
from tests import factories_events
from tests.test_events import v2


def incidents():
    db.session.expire_all()
    return db.session.scalars(select(Incident).order_by(Incident.id)).all()


def send(client, key, summary="CPU high on web-1", severity="critical", **extra):
    body = v2(key, **extra)
    body["payload"].update(summary=summary, severity=severity)
    body["payload"].update(extra.pop("payload", {}))
    return client.post("/v2/enqueue", json=body)


def test_set_severity_and_urgency_shape_the_incident(client, integration):
    service = integration.service
    factories_events.make_rule(
        service, "set_severity", [("custom_details.env", "equals", "staging")], severity="info", **{"continue": True}
    )
    factories_events.make_rule(service, "set_urgency", [("severity", "equals", "info")], urgency="low")
    body = v2(integration.key, dedup_key="a")
    body["payload"]["custom_details"] = {"env": "staging"}
    assert client.post("/v2/enqueue", json=body).status_code == 202
    [incident] = incidents()
    assert incident.severity == "info"
    rules = db.session.scalars(select(EventRule).order_by(EventRule.position)).all()
    assert [r.match_count for r in rules] == [1, 1]
    assert rules[0].last_matched_at is not None


def test_suppressed_alerts_are_stored_and_shown_without_an_incident(client, auth, admin, integration):
    rule = factories_events.make_rule(integration.service, "suppress", [("summary", "contains", "noisy")])
    response = send(client, integration.key, "A noisy disk", dedup_key="n1")
    assert response.status_code == 202 and response.json["dedup_key"] == "n1"
    assert send(client, integration.key, "Real trouble").status_code == 202
    assert [i.summary for i in incidents()] == ["Real trouble"]
    [alert] = db.session.scalars(select(SuppressedAlert)).all()
    assert (alert.service_id, alert.rule_id, alert.summary, alert.severity) == (
        integration.service_id,
        rule.id,
        "A noisy disk",
        "critical",
    )
    assert alert.event["dedup_key"] == "n1" and alert.event["source"] == "web-1"
    auth.login("admin@example.com")
    page = client.get(f"/services/{integration.service_id}").get_data(as_text=True)
    assert "A noisy disk" in page and "Suppressed alerts</dt><dd>1<" in page


def test_dropped_events_are_only_counted(client, integration, clock):
    factories_events.make_rule(integration.service, "drop", [("source", "matches", "^test-")])
    for _ in range(3):
        response = send(client, integration.key, payload={"source": "test-box"})
        assert response.status_code == 202
    assert incidents() == [] and db.session.scalars(select(SuppressedAlert)).all() == []
    db.session.expire_all()
    rule = db.session.scalars(select(EventRule)).one()
    assert rule.match_count == 3
    assert clock.now() - rule.last_matched_at < timedelta(seconds=5)


def test_route_opens_on_the_other_service_and_resolve_follows(client, integration):
    database = factories_events.make_service(name="Database")
    factories_events.make_rule(
        integration.service, "route", [("custom_details.team", "equals", "dba")], route_to_service_id=database.id
    )
    body = v2(integration.key, dedup_key="db-1")
    body["payload"]["custom_details"] = {"team": "dba"}
    assert client.post("/v2/enqueue", json=body).status_code == 202
    [incident] = incidents()
    assert incident.service_id == database.id
    # A resolve (no payload) carries no custom details: it matches no rule and finds nothing here...
    assert client.post("/v2/enqueue", json=v2(integration.key, "resolve", dedup_key="db-1")).status_code == 202
    assert incidents()[0].status == "triggered"
    # ... while an Alertmanager resolve carries its labels, matches the route and resolves it.
    am = factories_events.make_integration(integration.service, kind="alertmanager")
    factories_events.make_rule(
        integration.service, "route", [("details.labels.team", "equals", "dba")], route_to_service_id=database.id
    )
    alert = {"status": "firing", "labels": {"alertname": "DiskFull", "team": "dba"}, "fingerprint": "fp1"}
    assert client.post(f"/integrations/alertmanager/{am.key}", json={"alerts": [alert]}).status_code == 200
    alert["status"] = "resolved"
    assert client.post(f"/integrations/alertmanager/{am.key}", json={"alerts": [alert]}).status_code == 200
    fp = [i for i in incidents() if i.dedup_key == "fp1"][0]
    assert (fp.service_id, fp.status) == (database.id, "resolved")


def test_routing_to_a_disabled_service_is_refused_as_sending_there_would_be(client, integration):
    disabled = factories_events.make_service(name="Old", disabled=True)
    factories_events.make_rule(integration.service, "route", route_to_service_id=disabled.id)
    assert send(client, integration.key).status_code == 400
    assert incidents() == []


def test_global_rules_apply_before_the_service_rules(client, integration):
    factories_events.make_rule(None, "set_severity", severity="warning", **{"continue": True})
    factories_events.make_rule(integration.service, "suppress", [("severity", "equals", "warning")])
    assert send(client, integration.key).status_code == 202
    assert incidents() == []
    assert db.session.scalars(select(SuppressedAlert.severity)).all() == ["warning"]


def test_a_rule_change_takes_effect_at_once(client, integration):
    assert send(client, integration.key, dedup_key="1").status_code == 202
    rule = factories_events.make_rule(integration.service, "drop")
    assert send(client, integration.key, dedup_key="2").status_code == 202
    db.session.delete(db.session.get(EventRule, rule.id))
    db.session.commit()
    assert send(client, integration.key, dedup_key="3").status_code == 202
    assert [i.dedup_key for i in incidents()] == ["1", "3"]


def test_grouping_joins_keyless_alerts_within_the_window(client, integration, clock):
    integration.service.group_window_minutes = 10
    db.session.commit()
    first = send(client, integration.key, "First")
    second = send(client, integration.key, "Second")
    keyed = send(client, integration.key, "Keyed", dedup_key="mine")
    assert first.json["dedup_key"] == second.json["dedup_key"]
    assert [(i.summary, i.alert_count) for i in incidents()] == [("First", 2), ("Keyed", 1)]
    clock.advance(minutes=11)
    late = send(client, integration.key, "Later")
    assert late.json["dedup_key"] != first.json["dedup_key"]
    assert [i.summary for i in incidents()] == ["First", "Keyed", "Later"]
    assert keyed.json["dedup_key"] == "mine"


def test_without_a_window_keyless_alerts_each_open_an_incident(client, integration):
    send(client, integration.key)
    send(client, integration.key)
    assert len(incidents()) == 2


def test_grouping_within_one_batch(app, integration):
    integration.service.group_window_minutes = 5
    db.session.commit()
    events = [Event(integration.key, "trigger", f"gen-{n}", f"A{n}", dedup_key_given=False) for n in range(3)]
    outcomes = apply_and_commit(events)
    assert [o.result for o in outcomes] == ["opened", "deduplicated", "deduplicated"]
    assert len({o.dedup_key for o in outcomes}) == 1


def test_auto_resolve_after_hours_without_a_new_alert(app, client, integration, clock, run_jobs):
    integration.service.auto_resolve_hours = 2
    db.session.commit()
    send(client, integration.key, dedup_key="quiet")
    send(client, integration.key, dedup_key="busy")
    other = factories_events.make_incident(factories_events.make_integration(), dedup_key="elsewhere")
    timers.ensure_periodic()
    clock.advance(hours=1, minutes=30)
    send(client, integration.key, dedup_key="busy")  # a new alert: its two hours start again
    clock.advance(minutes=31)
    run_jobs()
    status = {i.dedup_key: i.status for i in incidents()}
    assert status == {"quiet": "resolved", "busy": "triggered", "elsewhere": "triggered"}
    quiet = [i for i in incidents() if i.dedup_key == "quiet"][0]
    assert quiet.log_entries[-1].message == "Resolved automatically: no new alert for 2 hours."
    clock.advance(hours=2)
    run_jobs()
    assert {i.dedup_key: i.status for i in incidents()}["busy"] == "resolved"
    assert db.session.get(Incident, other.id).status == "triggered"


def test_the_sweep_is_a_periodic_job(app):
    assert ("openduty.jobs.auto_resolve_incidents", timers.AUTO_RESOLVE_INTERVAL) in timers.PERIODIC_JOBS
    assert event_intake.auto_resolve() == 0


def test_rule_book_is_loaded_once_per_batch_not_per_event(app, integration, monkeypatch):
    factories_events.make_rule(integration.service, "set_urgency", urgency="low")
    app.config["EVENTS_KEY_CACHE_SECONDS"] = 0  # no cache: one load per batch
    loads = []
    original = event_intake.RuleBook.of
    monkeypatch.setattr(event_intake.RuleBook, "of", lambda *a: loads.append(1) or original(*a))
    events = [Event(integration.key, "trigger", f"k{n}", "x") for n in range(20)]
    outcomes = apply_and_commit(events)
    assert {o.result for o in outcomes} == {"opened"} and len(loads) == 1


def test_suppressed_alerts_are_purged_after_their_retention(app, client, clock, integration):
    factories_events.make_rule(integration.service, "suppress", [("summary", "contains", "noisy")])
    send(client, integration.key, "A noisy disk")
    clock.advance(days=app.config["SUPPRESSED_ALERT_RETENTION_DAYS"] - 1)
    send(client, integration.key, "A noisy fan")
    assert jobs.purge_suppressed_alerts() == 0
    clock.advance(days=2)
    assert jobs.purge_suppressed_alerts() == 1
    assert [a.summary for a in db.session.scalars(select(SuppressedAlert))] == ["A noisy fan"]
    app.config["SUPPRESSED_ALERT_RETENTION_DAYS"] = 0  # kept for ever
    clock.advance(days=400)
    assert jobs.purge_suppressed_alerts() == 0
