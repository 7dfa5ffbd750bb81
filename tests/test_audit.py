"""The audit log: every configuration change through the pages and the API leaves its entry, in the
same transaction (a refused or rolled-back change leaves none), with secrets masked; logins and failed
logins are recorded; the page and the API filter and page it; old entries are purged."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from openduty import audit, audit_log, maintenance
from openduty.extensions import db
from openduty.models import ApiToken, AuditEntry, Integration, Schedule, User
from tests import factories, factories_escalation, factories_events, factories_schedules

# Methods of every channel are added here: the server has every channel configured.
pytestmark = pytest.mark.usefixtures("channels_configured")

START, END = "2036-03-10T10:00", "2036-03-10T11:00"  # ahead: the override form refuses a range already over
LAYER_FORM = {
    "kind": "rotation",
    "name": "Primary",
    "start": "2026-03-02T09:00",
    "shift_length": "1",
    "shift_unit": "weeks",
    "participants": "bob@example.com",
}
WINDOW_FORM = {"start": "2030-01-01T10:00", "end": "2030-01-01T11:00", "service_ids": "{service}"}
WINDOW_JSON = {"start": "2030-01-01T10:00:00Z", "end": "2030-01-01T11:00:00Z", "service_ids": ["{service}"]}
LAYER_JSON = {"kind": "rotation", "name": "API layer", "start": "2026-03-02T09:00", "shift_length": 1,
              "shift_unit": "weeks", "participants": ["bob@example.com"]}  # fmt: skip

# Models that are not configuration: what happens (incidents, pages, their timelines), derived data
# (an iCal layer's parsed events, recorded as the layer's calendar data), and the log itself.
OPERATIONAL = {
    "Incident",
    "LogEntry",
    "Notification",
    "ContactThrottle",
    "Counter",
    "LayerEvent",
    "AuditEntry",
    "Timer",
    "ChangeEvent",
    "SuppressedAlert",
    # Reminders/summaries sent, and a person's own reminder preferences (not shared configuration).
    "ShiftNotice",
    "ShiftNoticeSettings",
}


@pytest.fixture
def world(app, admin):
    """One of everything, owned by Bob (a member), for the admin to change."""
    bob = factories.make_user(email="bob@example.com", name="Bob")
    method = factories.make_contact_method(bob, address="bob@example.com")
    rule = factories.make_notification_rule(bob, method)
    token, _ = ApiToken.issue(bob, "bob's")
    policy = factories_escalation.make_policy([(5, [bob, admin])], name="Primary")
    spare = factories_escalation.make_policy([], name="Spare")
    service = factories_escalation.make_service(policy, name="Checkout")
    integration = factories_events.make_integration(service, kind="generic")
    schedule = factories_schedules.make_schedule(name="Ops")
    layer = factories_schedules.make_layer(schedule, [bob], datetime(2026, 3, 2, 9))
    override = factories_schedules.make_override(
        schedule, bob, datetime(2026, 3, 12, tzinfo=UTC), datetime(2026, 3, 13, tzinfo=UTC)
    )
    now = datetime.now(UTC)
    windows = [
        maintenance.save_window(
            None,
            {"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat(), "service_ids": [service.id]},
        )  # fmt: skip
        for start in (now + timedelta(days=1), now)
    ]
    db.session.commit()
    level = policy.levels[0]
    return {
        "window": windows[0].id,
        "current_window": windows[1].id,
        "admin": admin.id,
        "bob": bob.id,
        "cm": method.id,
        "rule": rule.id,
        "token": token.id,
        "policy": policy.id,
        "spare": spare.id,
        "level": level.id,
        "target": level.targets[0].id,
        "service": service.id,
        "integration": integration.id,
        "schedule": schedule.id,
        "layer": layer.id,
        "override": override.id,
    }


def case(method: str, path: str, object_type: str, action: str, **body):
    return pytest.param(method, path, body, object_type, action, id=f"{method} {path} {body.get('id', '')}")


FORM_CHANGES = [
    case("POST", "/users/new", "user", "created", data={"name": "Dan", "email": "dan@example.com", "time_zone": "UTC"}),
    case("POST", "/users/{bob}/edit", "user", "changed",
         data={"name": "Bobby", "email": "bob@example.com", "time_zone": "UTC"}),
    case("POST", "/users/{bob}/deactivate", "user", "changed"),
    case("POST", "/profile", "user", "changed", data={"name": "Ada", "email": "admin@example.com", "time_zone": "UTC"}),
    case("POST", "/profile/password", "user", "changed",
         data={"current_password": factories.PASSWORD, "password": "brand-new-pass", "confirm": "brand-new-pass"}),
    case("POST", "/profile/sessions/end", "user", "changed"),
    case("POST", "/profile/tokens", "api token", "created", data={"token-name": "ci"}),
    case("POST", "/users/{bob}/tokens/{token}/revoke", "api token", "deleted"),
    case("POST", "/users/{bob}/contact-methods", "contact method", "created",
         data={"kind": "sms", "address": "+14155550100"}),
    case("POST", "/users/{bob}/contact-methods/{cm}/delete", "contact method", "deleted"),
    case("POST", "/users/{bob}/notification-rules", "notification rule", "created",
         data={"contact_method_id": "{cm}", "delay_minutes": "5"}),
    case("POST", "/users/{bob}/notification-rules/{rule}/delete", "notification rule", "deleted"),
    case("POST", "/services/new", "service", "created", data={"name": "Search"}),
    case("POST", "/services/{service}/edit", "service", "changed", data={"name": "Checkout 2"}),
    case("POST", "/services/{service}/maintenance", "maintenance window", "created", data={"minutes": "60"}),
    case("POST", "/maintenance/new", "maintenance window", "created", data=WINDOW_FORM),
    case("POST", "/maintenance/{window}/edit", "maintenance window", "changed",
         data={**WINDOW_FORM, "end": "2030-01-01T12:00"}),
    case("POST", "/maintenance/{current_window}/end", "maintenance window", "changed"),
    case("POST", "/maintenance/{window}/delete", "maintenance window", "deleted"),
    case("POST", "/services/{service}/delete", "service", "deleted"),
    case("POST", "/services/{service}/integrations", "integration", "created", data={"kind": "generic", "name": ""}),
    case("POST", "/services/{service}/integrations/{integration}/regenerate", "integration", "changed"),
    case("POST", "/services/{service}/integrations/{integration}/delete", "integration", "deleted"),
    case("POST", "/policies", "escalation policy", "created", data={"name": "Secondary"}),
    case("POST", "/policies/{policy}", "escalation policy", "changed", data={"name": "Renamed", "repeat_count": "2"}),
    case("POST", "/policies/{spare}/delete", "escalation policy", "deleted"),
    case("POST", "/policies/{policy}/levels", "escalation level", "created",
         data={"delay_minutes": "5", "target": "user:{admin}"}),
    case("POST", "/policies/{policy}/levels/{level}", "escalation level", "changed", data={"delay_minutes": "7"}),
    case("POST", "/policies/{policy}/levels/{level}/delete", "escalation level", "deleted"),
    case("POST", "/policies/{policy}/levels/{level}/targets", "escalation target", "created",
         data={"target": "schedule:{schedule}"}),
    case("POST", "/policies/{policy}/targets/{target}/delete", "escalation target", "deleted"),
    case("POST", "/schedules", "schedule", "created", data={"name": "Nights", "time_zone": "UTC"}),
    case("POST", "/schedules/{schedule}/edit", "schedule", "changed", data={"name": "Ops 2", "time_zone": "UTC"}),
    case("POST", "/schedules/{schedule}/delete", "schedule", "deleted"),
    case("POST", "/schedules/{schedule}/layers", "schedule layer", "created", data=LAYER_FORM),
    case("POST", "/schedules/{schedule}/layers/{layer}/edit", "schedule layer", "changed",
         data={**LAYER_FORM, "name": "Renamed"}),
    case("POST", "/schedules/{schedule}/layers/{layer}/delete", "schedule layer", "deleted"),
    case("POST", "/schedules/{schedule}/overrides", "override", "created",
         data={"user_id": "{bob}", "start": START, "end": END}),
    case("POST", "/schedules/{schedule}/overrides/{override}/delete", "override", "deleted"),
    case("POST", "/schedules/calendar-token", "user", "changed"),
]  # fmt: skip

API_CHANGES = [
    case("POST", "/api/v1/users", "user", "created", json={"email": "eve@example.com", "name": "Eve"}),
    case("PATCH", "/api/v1/users/{bob}", "user", "changed", json={"name": "Bobby"}),
    case("DELETE", "/api/v1/users/{bob}", "user", "changed"),
    case("POST", "/api/v1/users/{bob}/contact-methods", "contact method", "created",
         json={"kind": "email", "address": "bob2@example.com"}),
    case("DELETE", "/api/v1/users/{bob}/contact-methods/{cm}", "contact method", "deleted"),
    case("POST", "/api/v1/users/{bob}/notification-rules", "notification rule", "created",
         json={"contact_method_id": "{cm}", "delay_minutes": 5}),
    case("DELETE", "/api/v1/users/{bob}/notification-rules/{rule}", "notification rule", "deleted"),
    case("POST", "/api/v1/services", "service", "created", json={"name": "Search"}),
    case("PATCH", "/api/v1/services/{service}", "service", "changed", json={"description": "The shop"}),
    case("DELETE", "/api/v1/services/{service}", "service", "deleted"),
    case("POST", "/api/v1/maintenance-windows", "maintenance window", "created", json=WINDOW_JSON),
    case("PATCH", "/api/v1/maintenance-windows/{window}", "maintenance window", "changed", json={"description": "DB"}),
    case("POST", "/api/v1/maintenance-windows/{current_window}/end", "maintenance window", "changed"),
    case("DELETE", "/api/v1/maintenance-windows/{window}", "maintenance window", "deleted"),
    case("POST", "/api/v1/services/{service}/integrations", "integration", "created",
         json={"kind": "generic", "name": "hook"}),
    case("POST", "/api/v1/services/{service}/integrations/{integration}/regenerate", "integration", "changed"),
    case("DELETE", "/api/v1/services/{service}/integrations/{integration}", "integration", "deleted"),
    case("POST", "/api/v1/escalation-policies", "escalation policy", "created", json={"name": "Secondary"}),
    case("PATCH", "/api/v1/escalation-policies/{policy}", "escalation policy", "changed", json={"name": "P2"}),
    case("DELETE", "/api/v1/escalation-policies/{spare}", "escalation policy", "deleted"),
    case("POST", "/api/v1/schedules", "schedule", "created", json={"name": "Nights", "time_zone": "UTC"}),
    case("PATCH", "/api/v1/schedules/{schedule}", "schedule", "changed", json={"description": "Nights"}),
    case("DELETE", "/api/v1/schedules/{schedule}", "schedule", "deleted"),
    case("POST", "/api/v1/schedules/{schedule}/layers", "schedule layer", "created", json=LAYER_JSON),
    case("PATCH", "/api/v1/schedules/{schedule}/layers/{layer}", "schedule layer", "changed", json={"name": "L2"}),
    case("DELETE", "/api/v1/schedules/{schedule}/layers/{layer}", "schedule layer", "deleted"),
    case("POST", "/api/v1/schedules/{schedule}/overrides", "override", "created",
         json={"user_id": "{bob}", "start": START + ":00Z", "end": END + ":00Z"}),
    case("DELETE", "/api/v1/schedules/{schedule}/overrides/{override}", "override", "deleted"),
]  # fmt: skip


def _fill(value, ids: dict):
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


def _entries() -> list[AuditEntry]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def _assert_recorded(before: int, object_type: str, action: str, actor: str) -> AuditEntry:
    new = [e for e in _entries() if e.id > before]
    matching = [e for e in new if (e.object_type, e.action) == (object_type, action)]
    assert len(matching) == 1, [(e.object_type, e.action, e.object_label) for e in new]
    entry = matching[0]
    assert actor in entry.actor
    assert entry.object_id is not None
    assert entry.changes, "an entry says what changed"
    return entry


def _last_id() -> int:
    return db.session.scalar(select(db.func.max(AuditEntry.id))) or 0


@pytest.mark.parametrize(("method", "path", "body", "object_type", "action"), FORM_CHANGES)
def test_every_change_in_the_pages_leaves_one_entry(client, auth, world, method, path, body, object_type, action):
    auth.login("admin@example.com")
    data = {"csrf_token": auth.csrf_token(), **_fill(body.get("data", {}), world)}
    before = _last_id()
    response = client.open(_fill(path, world), method=method, data=data)
    assert response.status_code in (200, 204, 302, 303), response.get_data(as_text=True)[:2000]
    _assert_recorded(before, object_type, action, actor="admin@example.com")


@pytest.mark.parametrize(("method", "path", "body", "object_type", "action"), API_CHANGES)
def test_every_change_in_the_api_leaves_one_entry(api, world, method, path, body, object_type, action):
    api.as_user(db.session.get(User, world["admin"]))
    before = _last_id()
    response = api.open(method, _fill(path, world), json=_fill(body.get("json"), world))
    assert response.status_code in (200, 201, 204), response.get_json()
    entry = _assert_recorded(before, object_type, action, actor="admin@example.com (API token od_")
    assert entry.actor_id == world["admin"]


def test_every_model_is_either_audited_or_operational(app):
    """A new model is configuration (add it to openduty.audit.AUDITED) or says why it is not (here)."""
    models = {mapper.class_.__name__ for mapper in db.Model.registry.mappers}
    audited = {model.__name__ for model in audit.AUDITED}
    assert models - audited == OPERATIONAL


def test_refused_changes_leave_no_entry(client, auth, api, world):
    auth.login("admin@example.com")
    api.as_user(db.session.get(User, world["admin"]))
    before = _last_id()
    bad = client.post("/services/new", data={"csrf_token": auth.csrf_token(), "name": ""})
    assert bad.status_code == 422
    assert api.post("/api/v1/services", json={"name": "Checkout"}).status_code in (409, 422)
    assert [e.action for e in _entries() if e.id > before] == []


def test_a_rolled_back_change_leaves_no_entry_and_a_committed_one_exactly_one(world):
    integration = db.session.get(Integration, world["integration"])
    before = _last_id()
    integration.name = "first"
    db.session.flush()
    db.session.rollback()
    assert _last_id() == before
    integration = db.session.get(Integration, world["integration"])
    integration.name = "second"
    db.session.flush()
    integration.name = "third"  # a second flush in the same transaction: still one entry
    db.session.commit()
    [entry] = [e for e in _entries() if e.id > before]
    assert (entry.action, entry.changes["name"][1], entry.actor) == ("changed", "third", "system")
    assert entry.changes["name"][0] != "second"  # the first flush's before value is kept


def test_secrets_are_masked(client, auth, world):
    auth.login("admin@example.com")
    integration = db.session.get(Integration, world["integration"])
    old_key = integration.key
    before = _last_id()
    client.post(
        f"/services/{world['service']}/integrations/{world['integration']}/regenerate",
        data={"csrf_token": auth.csrf_token()},
    )
    client.post(
        "/profile/password",
        data={
            "csrf_token": auth.csrf_token(),
            "current_password": factories.PASSWORD,
            "password": "brand-new-pass",
            "confirm": "brand-new-pass",
        },
    )
    db.session.expire_all()
    new_key = db.session.get(Integration, world["integration"]).key
    text = repr([(e.object_label, e.changes) for e in _entries() if e.id > before])
    assert old_key not in text and new_key not in text and "…" + new_key[-4:] in text
    assert "pbkdf2" not in text and "scrypt" not in text and "brand-new-pass" not in text
    page = client.get("/audit").get_data(as_text=True)
    assert new_key not in page and "…" + new_key[-4:] in page


def test_logins_and_failed_logins_are_recorded(client, auth, world):
    auth.login("bob@example.com", "wrong password")
    auth.login("nobody@example.com", "whatever")
    auth.login("bob@example.com")
    logins = [(e.action, e.object_label, e.object_id, e.actor) for e in _entries() if e.object_type == "user"]
    assert ("login failed", "bob@example.com", world["bob"], "anonymous") in logins
    assert ("login failed", "nobody@example.com", None, "anonymous") in logins
    assert ("login", "bob@example.com", world["bob"], "bob@example.com") in logins
    failed = next(e for e in _entries() if e.action == "login failed")
    assert failed.changes["reason"] == "Wrong email or password." and failed.changes["client"]


def test_cli_changes_name_the_cli(runner, app):
    result = runner.invoke(args=["openduty", "create-user", "cli@example.com", "--password", "a-good-password"])
    assert result.exit_code == 0, result.output
    [entry] = [e for e in _entries() if e.object_type == "user"]
    assert (entry.actor, entry.action, entry.object_label) == ("cli", "created", "cli@example.com")
    assert entry.changes["password_hash"][0] is None and entry.changes["password_hash"][1].startswith("set (")


def test_deleting_a_service_records_what_went_with_it(client, auth, world):
    auth.login("admin@example.com")
    before = _last_id()
    client.post(f"/services/{world['service']}/delete", data={"csrf_token": auth.csrf_token()})
    gone = {(e.object_type, e.action) for e in _entries() if e.id > before}
    assert {("service", "deleted"), ("integration", "deleted")} <= gone


def test_the_page_filters_and_pages_in_place(client, auth, world):
    auth.login("admin@example.com")
    for n in range(audit_log.PAGE_SIZE + 5):
        db.session.get(Integration, world["integration"]).name = f"hook {n}"
        db.session.commit()
    page = client.get("/audit?object_type=integration")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and html.count("<tr>") == audit_log.PAGE_SIZE + 1  # + the header row
    assert "hook 104" not in html and f"hook {audit_log.PAGE_SIZE + 4}" in html and "Show older entries" in html
    cursor = _entries()[-audit_log.PAGE_SIZE].id
    older = client.get(f"/audit?object_type=integration&before={cursor}", headers={"HX-Request": "true"})
    fragment = older.get_data(as_text=True)
    assert "<html" not in fragment and "hook 0" in fragment and "Show older entries" not in fragment
    none = client.get("/audit?actor=nobody-like-this").get_data(as_text=True)
    assert "No entries match these filters" in none


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("object_type=planet", "object_type"),
        ("object_id=0", "object_id"),
        ("since=yesterday", "since"),
        ("until=2026-13-01", "until"),
        ("before=-1", "before"),
        ("per_page=500", "per_page"),
    ],
)
def test_bad_filters_are_refused_with_what_to_fix(client, auth, api, world, query, field):
    api.as_user(db.session.get(User, world["admin"]))
    response = api.get(f"/api/v1/audit?{query}")
    assert response.status_code == 422 and field in response.get_json()["error"]["fields"]
    if field != "per_page":
        auth.login("admin@example.com")
        page = client.get(f"/audit?{query}")
        assert page.status_code == 400 and field in page.get_data(as_text=True)


def test_api_lists_with_filters_and_next_links(api, world):
    api.as_user(db.session.get(User, world["admin"]))
    api.delete(f"/api/v1/services/{world['service']}/integrations/{world['integration']}")
    api.patch(f"/api/v1/users/{world['bob']}", json={"name": "Bobby"})
    body = api.get("/api/v1/audit?object_type=user&per_page=1").get_json()
    [entry] = body["entries"]
    assert entry["object_type"] == "user" and entry["changes"]["name"] == ["Bob", "Bobby"]
    assert body["next"] is not None and "object_type=user" in body["next"]
    seen, url = [], "/api/v1/audit?per_page=2"
    while url:
        page = api.get(url).get_json()
        seen += [e["id"] for e in page["entries"]]
        url = page["next"]
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) == len(_entries())
    since = api.get("/api/v1/audit?since=2200-01-01").get_json()
    assert since == {"entries": [], "next": None}


def test_purge_keeps_the_retention_period(app, world):
    old = AuditEntry(actor="system", action="changed", object_type="service", object_label="old", changes={})
    old.at = datetime.now(UTC) - timedelta(days=400)
    db.session.add(old)
    db.session.commit()
    kept = len(_entries()) - 1
    assert audit_log.purge() == 1
    db.session.commit()
    assert len(_entries()) == kept
    app.config["AUDIT_RETENTION_DAYS"] = 0
    assert audit_log.purge() == 0


def test_members_cannot_read_the_log(client, auth, world):
    auth.login("bob@example.com")
    assert client.get("/audit").status_code == 403
    assert "Audit log" not in client.get("/").get_data(as_text=True)


def test_operational_fields_change_without_an_entry(world):
    """A token's last use, a schedule's revision: no configuration changed, so no entry."""
    before = _last_id()
    db.session.get(ApiToken, world["token"]).last_used_at = datetime.now(UTC)
    db.session.get(Schedule, world["schedule"]).revision = "x" * 32
    db.session.commit()
    assert _last_id() == before


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "block"])
def test_the_page_queries_nothing_while_rendering(client, auth, world, queries_while_rendering, htmx):
    auth.login("admin@example.com")
    client.post(f"/services/{world['service']}/edit", data={"csrf_token": auth.csrf_token(), "name": "Shop"})
    url = f"/audit?before={_last_id() + 1}" if htmx else "/audit"
    db.session.expunge_all()
    del queries_while_rendering[:]
    response = client.get(url, headers={"HX-Request": "true"} if htmx else {})
    assert response.status_code == 200 and "Shop" in response.get_data(as_text=True)
    assert queries_while_rendering == []
