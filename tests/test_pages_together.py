"""The areas' pages show each other's parts: escalation actions on incidents, the escalation
preview and schedule gap warnings on services and policies."""

from datetime import datetime

from tests import factories, factories_escalation, factories_schedules


def test_incident_page_offers_escalation_actions(client, auth, app):
    alice = factories_escalation.make_pager("Alice", is_admin=True, email="alice@example.com")
    service = factories_escalation.make_service(factories_escalation.make_policy([(5, [alice])]))
    incident = factories_escalation.open_incident(service)
    auth.login("alice@example.com")
    html = client.get(f"/incidents/{incident.id}").get_data(as_text=True)
    for label in ("Escalate to next level", "Snooze", "Reassign"):
        assert label in html


def test_service_and_policy_pages_show_the_preview_and_schedule_gaps(client, auth, app, clock):
    alice = factories_escalation.make_pager("Alice", {"sms": ("+14155550100", 0)}, email="alice@example.com")
    factories.make_user(email="admin2@example.com", is_admin=True)
    empty = factories_schedules.make_schedule("Nights")  # no layers: nobody is ever on call
    policy = factories_escalation.make_policy([(0, [alice]), (5, [empty])], name="Ops")
    service = factories_escalation.make_service(policy, name="Web")
    auth.login("admin2@example.com")
    service_page = client.get(f"/services/{service.id}").get_data(as_text=True)
    assert "If an incident opened now" in service_page
    assert "Alice" in service_page
    assert "gap-warning" in service_page and "Nights" in service_page
    policy_page = client.get(f"/policies/{policy.id}").get_data(as_text=True)
    assert "gap-warning" in policy_page


def test_no_gap_warning_when_the_schedule_is_covered(client, auth, app, clock):
    alice = factories_escalation.make_pager("Alice", email="alice@example.com", is_admin=True)
    covered = factories_schedules.make_schedule("Days")
    factories_schedules.make_layer(covered, [alice], start=datetime(2026, 1, 1, 9))
    service = factories_escalation.make_service(factories_escalation.make_policy([(0, [covered])]))
    auth.login("alice@example.com")
    assert "gap-warning" not in client.get(f"/services/{service.id}").get_data(as_text=True)
