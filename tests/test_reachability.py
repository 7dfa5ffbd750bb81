"""Reachability warnings (issue 14): a schedule, policy or service warns when someone who would be
paged in the next two weeks cannot be reached, and the policy preview marks them."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import event

from openduty import reachability
from openduty.extensions import db
from openduty.models import Notification
from tests import factories
from tests.factories_escalation import make_pager, make_policy, make_service
from tests.factories_schedules import make_layer, make_schedule

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _notify(user, purpose: str, statuses: list[str]) -> None:
    method = user.notification_rules[0].contact_method
    for status in statuses:
        db.session.add(
            Notification(user=user, contact_method=method, kind=method.kind, address=method.address,
                         purpose=purpose, status=status)
        )  # fmt: skip
    db.session.commit()


@pytest.fixture
def people(app, clock):
    clock.set(NOW)
    healthy = make_pager("Hana", {"email": ("hana@example.com", 0)})
    _notify(healthy, "page", ["failed", "failed", "sent"])  # the last one reached her
    return {
        "healthy": healthy,
        "no_rules": factories.make_user(name="Nora", email="nora@example.com"),
        "sms": make_pager("Sam", {"sms": ("+14155550100", 0)}),
        "pages": make_pager("Paula", {"webhook": ("https://hooks.example/p", 0), "email": ("p@example.com", 5)}),
        "test": make_pager("Ted", {"slack": ("https://hooks.slack.com/services/T/B/x", 0)}),
    }


def test_schedule_warns_about_people_on_call_within_two_weeks(people):
    _notify(people["pages"], "page", ["sent", "failed", "failed", "failed"])
    _notify(people["test"], "test", ["sent", "failed"])
    order = ["healthy", "no_rules", "sms", "pages", "test"]
    schedule = make_schedule(name="Ops")
    make_layer(schedule, [people[k] for k in order], datetime(2026, 3, 2), 1, "days")
    found = {u.name: w.reasons for w in reachability.schedule_warnings(schedule) for u in w.users}
    assert set(found) == {"Nora", "Sam", "Paula", "Ted"}
    fallback = "they have no notification rule (only the fallback email to their login address goes out)"
    assert found["Nora"] == (fallback,)
    assert found["Sam"][0].startswith("SMS: +14155550100: SMS (Twilio) is not configured on this server")
    assert found["Sam"][-1] == "no notification rule of theirs can reach them"
    assert found["Paula"] == ("Webhook: https://hooks.example/p: its last 3 pages failed",)  # email still works
    assert found["Ted"][0].endswith("its last test failed")


def test_people_beyond_two_weeks_are_not_warned_about(people):
    schedule = make_schedule()
    make_layer(schedule, [people["healthy"], people["no_rules"]], datetime(2026, 3, 2), 20, "days")
    assert reachability.schedule_warnings(schedule) == []


def test_policy_and_service_pages_show_warnings_and_mark_the_preview(people, client, auth, admin):
    gone = make_pager("Gus", {"email": ("gus@example.com", 0)}, active=False)
    schedule = make_schedule(name="Ops")
    make_layer(schedule, [people["sms"]], datetime(2026, 3, 1), 1, "weeks")
    policy = make_policy([(5, [people["healthy"], gone]), (10, [schedule])], name="Primary")
    service = make_service(policy, name="Checkout")
    found = {u.name: w.reasons for w in reachability.policy_warnings(policy) for u in w.users}
    assert found == {"Gus": ("they are deactivated (never paged)",), "Sam": found["Sam"]}
    auth.login(admin.email)
    for url in (f"/policies/{policy.id}", f"/services/{service.id}", f"/policies/{policy.id}/preview"):
        html = client.get(url).get_data(as_text=True)
        assert "may not be reached</span>" in html, url  # Sam, in the preview at 5 min
        if not url.endswith("preview"):
            assert "Sam may be paged in the next 14 days, but: SMS: +14155550100" in html
    page = client.get(f"/schedules/{schedule.id}").get_data(as_text=True)
    assert "Sam may be paged in the next 14 days" in page and "Gus" not in page


def test_warnings_cost_a_fixed_number_of_queries(people):
    schedule = make_schedule()
    make_layer(schedule, list(people.values()), datetime(2026, 3, 2), 1, "days")
    reachability.schedule_warnings(schedule)  # compiles the schedule (cached per revision)
    db.session.expire_all()
    counted = []
    record = lambda *args: counted.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        reachability.schedule_warnings(schedule)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert len(counted) <= 5, counted  # however many people: users, rules, methods, failures


def test_people_with_the_same_problem_share_one_warning(app, clock):
    clock.set(NOW)
    people = [factories.make_user(name=n, email=f"{n.lower()}@example.com") for n in ("Ann", "Ben", "Cy")]
    schedule = make_schedule()
    make_layer(schedule, people, datetime(2026, 3, 2), 1, "days")
    [warning] = reachability.schedule_warnings(schedule)
    assert warning.message.startswith("Ann, Ben and Cy may be paged in the next 14 days, but: they have no")
    assert warning.user_ids == [p.id for p in people]
