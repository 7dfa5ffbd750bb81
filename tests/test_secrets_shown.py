"""Secrets are shown only to whom they belong (issue 8, finding 4).

Timelines (page and API) are read by everyone: they hold contact addresses masked. Integration
keys and iCal source URLs are shown in full to admins only; members see them masked. Each is
checked as the member who owns the thing, another member and an admin, on the page and the API.
"""

from datetime import UTC, datetime

import pytest
from flask_migrate import upgrade

from config import TestConfig
from openduty import create_app, masking
from openduty.extensions import db
from openduty.models import LogEntry, ScheduleLayer
from tests import factories
from tests.factories_escalation import make_policy, make_service, open_incident
from tests.factories_events import make_integration
from tests.factories_schedules import make_schedule
from tests.test_migrations import _fresh_database_uri

SLACK_TOKEN = "XoXoSeCrEtToKeN42"
PUSHOVER_KEY = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG"
ICAL_TOKEN = "private-0123456789abcdef"


@pytest.mark.parametrize(
    "kind, address, shown",
    [
        ("email", "bob@example.com", "bob@example.com"),
        ("xmpp", "bob@jabber.example.org", "bob@jabber.example.org"),
        ("sms", "+14155550123", "…0123"),
        ("voice", "+442071838750", "…8750"),
        ("slack", "https://hooks.slack.com/services/T0001/B0SECRET1/XoXoToken", "hooks.slack.com/…/B0SE…"),
        ("webhook", "https://user:pw@hooks.example.com:8443/p/tok?sig=abc", "https://hooks.example.com/…"),
        ("webhook", "http://[2001:db8::1]/hook/tok", "http://[2001:db8::1]/…"),
        ("apprise", "tgram://123456789:abcdefg_hijklmnop/12315544", "tgram://…"),
        ("pushover", PUSHOVER_KEY, "…" + PUSHOVER_KEY[-4:]),
    ],
)
def test_contact_addresses_are_masked_for_timelines(kind, address, shown):
    assert masking.contact_address(kind, address) == shown


@pytest.fixture
def people(app):
    owner = factories.make_user(email="owner@example.com", name="Olive Owner")
    other = factories.make_user(email="other@example.com", name="Oscar Other")
    admin = factories.make_user(email="admin@example.com", name="Ada Admin", is_admin=True)
    return {"owner": owner, "other": other, "admin": admin}


VIEWERS = ["owner", "other", "admin"]


@pytest.fixture
def paged(people, pager):
    """An incident whose timeline paged the owner by Slack (with a token) and Pushover (a key)."""
    slack_path = f"/slack/services/T0001/B0SECRET1/{SLACK_TOKEN}"
    pager.httpserver.expect_request(slack_path, method="POST").respond_with_data("ok")
    owner = people["owner"]
    for kind, address in (
        ("slack", pager.httpserver.url_for(slack_path)),
        ("pushover", PUSHOVER_KEY),
    ):
        factories.make_notification_rule(owner, factories.make_contact_method(owner, kind=kind, address=address))
    incident = open_incident(make_service(make_policy([(5, [owner])])))
    pager.run()
    assert len(pager.pages()) == 2
    return incident


@pytest.mark.parametrize("viewer", VIEWERS)
def test_timeline_page_never_shows_contact_secrets(client, auth, people, paged, viewer):
    auth.login(people[viewer].email)
    page = client.get(f"/incidents/{paged.id}").get_data(as_text=True)
    assert "Paged Olive Owner by Slack webhook (localhost/…/B0SE…)" in page
    assert f"(…{PUSHOVER_KEY[-4:]})" in page
    assert SLACK_TOKEN not in page and PUSHOVER_KEY not in page


@pytest.mark.parametrize("viewer", VIEWERS)
def test_timeline_api_masks_the_same_way(api, people, paged, viewer):
    api.as_user(people[viewer])
    response = api.get(f"/api/v1/incidents/{paged.id}/log")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert SLACK_TOKEN not in text and PUSHOVER_KEY not in text
    messages = [e["message"] for e in response.json["log_entries"]]
    assert "Paged Olive Owner by Slack webhook (localhost/…/B0SE…)." in messages


@pytest.fixture
def keyed(people):
    service = make_service(make_policy([(5, [people["owner"]])]), name="Payments")
    kinds = ("events_v2", "alertmanager", "generic", "events_v1")
    return {kind: make_integration(service, kind=kind) for kind in kinds}


@pytest.mark.parametrize("viewer", VIEWERS)
def test_integration_keys_only_for_admins_on_the_page(client, auth, people, keyed, viewer):
    auth.login(people[viewer].email)
    service_id = keyed["events_v2"].service_id
    page = client.get(f"/services/{service_id}").get_data(as_text=True)
    for integration in keyed.values():
        assert (integration.key in page) == (viewer == "admin"), integration.kind
        assert f"…{integration.key[-4:]}" in page or viewer == "admin"


@pytest.mark.parametrize("viewer", VIEWERS)
def test_integration_keys_only_for_admins_in_the_api(api, people, keyed, viewer):
    api.as_user(people[viewer])
    service_id = keyed["events_v2"].service_id
    for path in (f"/api/v1/services/{service_id}", f"/api/v1/services/{service_id}/integrations", "/api/v1/services"):
        text = api.get(path).get_data(as_text=True)
        for integration in keyed.values():
            assert (integration.key in text) == (viewer == "admin"), (path, integration.kind)
    integration = api.get(f"/api/v1/services/{service_id}").json["integrations"][1]
    if viewer != "admin":
        assert integration["key"] == "…" + keyed["alertmanager"].key[-4:]
        assert integration["url"].endswith("/integrations/alertmanager/…" + keyed["alertmanager"].key[-4:])


@pytest.fixture
def ical_layer(people):
    schedule = make_schedule(name="Ops")
    layer = ScheduleLayer(
        schedule=schedule, position=0, kind="ical", name="Imported",
        ical_url=f"https://calendar.example.com/cal/{ICAL_TOKEN}/basic.ics", ical_data="",
    )  # fmt: skip
    db.session.add(layer)
    db.session.commit()
    return layer


@pytest.mark.parametrize("viewer", VIEWERS)
def test_ical_source_urls_only_for_admins(client, auth, api, people, ical_layer, viewer):
    auth.login(people[viewer].email)
    page = client.get(f"/schedules/{ical_layer.schedule_id}").get_data(as_text=True)
    assert (ICAL_TOKEN in page) == (viewer == "admin")
    assert "https://calendar.example.com/…" in page or viewer == "admin"
    api.as_user(people[viewer])
    for path in (f"/api/v1/schedules/{ical_layer.schedule_id}", f"/api/v1/schedules/{ical_layer.schedule_id}/layers"):
        text = api.get(path).get_data(as_text=True)
        assert (ICAL_TOKEN in text) == (viewer == "admin"), path


def test_earlier_timeline_entries_are_masked_by_the_migration(tmp_path):
    """Entries written before masking (full address, the webhook's reply) are rewritten."""

    config = type("Before", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": _fresh_database_uri(tmp_path)})
    app = create_app(config)
    slack = f"https://hooks.slack.com/services/T0001/B0SECRET1/{SLACK_TOKEN}"
    hook = "https://hooks.example.com/p/hooktoken"
    with app.app_context():
        upgrade(revision="c5e8a1f2d3b4")
        # The users table as it was at that revision (the model has grown columns since).
        user_id = db.session.execute(
            db.text(
                "INSERT INTO users (email, name, time_zone, is_admin, active, auth_source, session_generation,"
                " created_at) VALUES ('olive@example.com', 'Olive', 'UTC', false, true, 'local', 0, :now)"
                " RETURNING id"
            ),
            {"now": datetime.now(UTC)},
        ).scalar_one()
        service_id = db.session.execute(
            db.text(
                "INSERT INTO services (name, description, disabled, created_at) VALUES ('S', '', false, :now)"
                " RETURNING id"
            ),
            {"now": datetime.now(UTC)},
        ).scalar_one()
        # The incidents and notifications tables as they were then, too.
        now = {"now": datetime.now(UTC)}
        incident_id = db.session.execute(
            db.text(
                "INSERT INTO incidents (number, service_id, dedup_key, status, summary, severity, source, details,"
                " alert_count, created_at, last_event_at, epoch, escalation_level, escalation_loop)"
                " VALUES (1, :service_id, 'k', 'triggered', 'Disk', 'critical', '', '{}', 1, :now, :now, 0, 0, 0)"
                " RETURNING id"
            ),
            {"service_id": service_id, **now},
        ).scalar_one()
        rows = [
            ("slack", slack, "notify", f"Paged Olive by Slack webhook ({slack})."),
            (
                "webhook",
                hook,
                "notify_failed",
                f"Could not page Olive by Webhook ({hook}): Webhook: HTTP 500 root:x:0:0",
            ),
            ("email", "olive@example.com", "notify", "Paged Olive by Email (olive@example.com)."),
        ]
        for kind, address, entry_kind, text in rows:
            notification_id = db.session.execute(
                db.text(
                    "INSERT INTO notifications (incident_id, user_id, kind, address, purpose, send_at, status,"
                    " attempts, created_at) VALUES (:incident_id, :user_id, :kind, :address, 'page', :now,"
                    " 'pending', 0, :now) RETURNING id"
                ),
                {"incident_id": incident_id, "user_id": user_id, "kind": kind, "address": address, **now},
            ).scalar_one()
            db.session.add(
                LogEntry(
                    incident_id=incident_id, kind=entry_kind, message=text, data={"notification_id": notification_id}
                )
            )
        db.session.commit()
        db.session.remove()
        upgrade()
        messages = db.session.scalars(db.select(LogEntry.message).order_by(LogEntry.id)).all()
        db.session.remove()
        db.engine.dispose()
    assert messages == [
        "Paged Olive by Slack webhook (hooks.slack.com/…/B0SE…).",
        "Could not page Olive by Webhook (https://hooks.example.com/…): Webhook: HTTP 500",
        "Paged Olive by Email (olive@example.com).",
    ]
