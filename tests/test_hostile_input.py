"""Odd and hostile input never gets a 500: huge ids, NUL and lone surrogates, far dates, wrong types.

Every route in the url_map is swept (the JSON API, then the web pages' forms and query strings), so
a new route is covered without anyone listing it. Each request must answer 4xx with a message, a
re-rendered form or a redirect (or succeed), never 500.
"""

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from openduty import maintenance
from openduty.extensions import db
from openduty.models import ApiToken, CoverRequest, EscalationLevel, LogEntry, Team, TeamMember
from tests import factories, factories_escalation, factories_events, factories_schedules
from tests.conftest import AuthActions

HUGE_IDS = (2**31, 2**63, 10**20)

# Values that must be refused (or accepted) cleanly wherever any field takes them.
HOSTILE = (
    10**20,
    -(10**20),
    2**31,
    2**63,
    1e308,
    -1,
    0,
    1.5,
    True,
    None,
    "",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "x" * 20_000,
    ["x"],
    [10**20],
    {"x": 1},
    "0001-01-01T00:00:00+00:00",
    "0001-01-01T00:00:00",
    "9999-12-31T23:59:59+00:00",
    "9999-12-31T23:59:59",
    "9999-12-31T23:59:59-14:00",
    "1970-01-01T00:00:00+14:00",
    "2026-03-02",
    "99999999999999999999",
    "1e20",
)

# Query values that must be refused (or accepted) cleanly by every GET that takes arguments.
HOSTILE_QUERY = (
    "99999999999999999999",
    str(2**62),
    str(2**31),
    "1e20",
    "-1",
    "0",
    "#" + "9" * 30,
    "#" + "9" * 5000,
    "9" * 5000,
    "\x00",
    "%00",
    "a\x00b",
    "\udcff",
    "0001-01-01T00:00:00+00:00",
    "0001-01-01T00:00:00 00:00",
    "9999-12-31T23:59:59+00:00",
    "9999-12-31T23:59:59-14:00",
    "x" * 5000,
)
QUERY_NAMES = (
    "at",
    "since",
    "until",
    "page",
    "per_page",
    "service_id",
    "q",
    "status",
    "active",
    "assigned_to",
    "escalation_policy_ids[]",
    "escalation_policy_id",
)


@pytest.fixture
def world(app, admin, member):
    """One of everything, so that every route reaches its body and argument checks."""
    member_method = factories.make_contact_method(member, kind="email")
    method = factories.make_contact_method(admin, kind="email")
    rule = factories.make_notification_rule(admin, method)
    schedule = factories_schedules.make_schedule("Ops")
    layer = factories_schedules.make_layer(schedule, [admin, member], datetime(2026, 1, 1, 9))
    start = datetime.now(UTC).replace(microsecond=0)
    override = factories_schedules.make_override(schedule, member, start, start + timedelta(hours=2))
    policy = factories_escalation.make_policy([(5, [admin]), (10, [schedule])])
    service = factories_escalation.make_service(policy)
    integration = factories_events.make_integration(service)
    incident = factories_escalation.open_incident(service)
    entry = db.session.scalar(db.select(LogEntry).where(LogEntry.incident_id == incident.id))
    level = db.session.scalar(db.select(EscalationLevel).where(EscalationLevel.policy_id == policy.id))
    token, _ = ApiToken.issue(admin, "other")
    team = Team(name="Web", description="", members=[TeamMember(user=member)])
    db.session.add(team)
    planned = {"start": (start + timedelta(days=2)).isoformat(), "end": (start + timedelta(days=3)).isoformat()}
    window = maintenance.save_window(None, {**planned, "service_ids": [service.id]})
    db.session.commit()
    event_rule = factories_events.make_rule(service, "drop", [("summary", "equals", "x")])
    global_rule = factories_events.make_rule(None, "drop", [("summary", "equals", "x")])
    cover = CoverRequest(schedule_id=schedule.id, requester_id=member.id, start=start + timedelta(minutes=30),
                         end=start + timedelta(hours=1), status="open", created_at=start)  # fmt: skip
    db.session.add(cover)
    db.session.commit()
    return {
        "ids": {
            "user_id": member.id,
            "method_id": method.id,
            "rule_id": rule.id,
            "event_rule_id": event_rule.id,
            "global_rule_id": global_rule.id,
            "schedule_id": schedule.id,
            "layer_id": layer.id,
            "override_id": override.id,
            "policy_id": policy.id,
            "service_id": service.id,
            "integration_id": integration.id,
            "incident_id": incident.id,
            "entry_id": entry.id,
            "level_id": level.id,
            "target_id": level.targets[0].id,
            "token_id": token.id,
            "team_id": team.id,
            "window_id": window.id,
            "request_id": cover.id,
        },
        "admin": admin,
        "member": member,
        "member_method": member_method,
        "method": method,
        "policy": policy,
        "schedule": schedule,
    }


def _rules(app, prefix: str, methods: set[str]):
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.rule.startswith(prefix):
            for method in sorted((rule.methods or set()) & methods):
                yield method, rule


def _path(rule, ids: dict[str, int], **override) -> str:
    values = {arg: override.get(arg, ids.get(arg)) for arg in rule.arguments}
    path = rule.rule
    for arg, value in values.items():
        path = path.replace(f"<int:{arg}>", str(value)).replace(f"<{arg}>", str(value))
    return path


class Sweep:
    """Sends many requests and collects every answer that is a 500 (or an error without a message)."""

    def __init__(self):
        self.failures: list[str] = []
        self.sent = 0

    def check(self, response, what: str) -> None:
        self.sent += 1
        if response.status_code >= 500:
            self.failures.append(f"{what}: {response.status_code} {response.get_data(as_text=True)[:200]}")
        elif response.status_code >= 400 and response.is_json and not response.get_json()["error"]["message"]:
            self.failures.append(f"{what}: {response.status_code} without a message")

    def assert_clean(self) -> None:
        shown = "\n".join(self.failures[:40])
        assert not self.failures, f"{len(self.failures)} of {self.sent} requests failed:\n{shown}"


def test_huge_ids_in_api_paths_are_404(app, api, world):
    api.as_user(world["admin"])
    swept = 0
    for method, rule in _rules(app, "/api/v1/", {"GET", "POST", "PATCH", "DELETE"}):
        for arg in rule.arguments:
            for huge in HUGE_IDS:
                path = _path(rule, world["ids"], **{arg: huge})
                response = api.open(method, path, json={})
                assert response.status_code == 404, f"{method} {path}: {response.status_code}"
                assert response.get_json()["error"]["code"] == "not_found"
                swept += 1
    assert swept > 150


def _api_bodies(world) -> dict[tuple[str, str], dict]:
    """A valid body for every API route that takes one; the sweep spoils one field at a time."""
    admin, member, schedule = world["admin"], world["member"], world["schedule"]
    start = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    override = {"user_id": member.id, "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()}
    window = {**{k: v for k, v in override.items() if k != "user_id"}, "description": "d",
              "service_ids": [world["ids"]["service_id"]]}  # fmt: skip
    layer = {
        "name": "L",
        "start": "2026-01-05T09:00",
        "shift_length": 1,
        "shift_unit": "days",
        "participants": [admin.id],
        "restrictions": [],
    }
    return {
        ("POST", "/api/v1/users"): {"email": "n@example.com", "name": "N", "time_zone": "UTC", "is_admin": False},
        ("PATCH", "/api/v1/users/<int:user_id>"): {"name": "N", "time_zone": "UTC", "active": True, "password": ""},
        ("POST", "/api/v1/users/<int:user_id>/contact-methods"): {
            "kind": "webhook",
            "address": "https://example.com/hook",
            "label": "hook",
        },
        ("POST", "/api/v1/users/<int:user_id>/notification-rules"): {
            "contact_method_id": world["member_method"].id,
            "delay_minutes": 3,
        },
        ("POST", "/api/v1/services"): {"name": "S2", "escalation_policy_id": world["policy"].id},
        ("PATCH", "/api/v1/services/<int:service_id>"): {
            "description": "d",
            "escalation_policy_id": world["policy"].id,
            "ack_timeout_minutes": 30,
            "disabled": False,
        },
        ("POST", "/api/v1/services/<int:service_id>/integrations"): {"kind": "events_v2", "name": "i"},
        ("POST", "/api/v1/services/<int:service_id>/event-rules"): EVENT_RULE,
        ("PATCH", "/api/v1/services/<int:service_id>/event-rules/<int:event_rule_id>"): {**EVENT_RULE, "position": 1},
        ("POST", "/api/v1/services/<int:service_id>/event-rules/test"): {"event": {"summary": "s", "source": "h"}},
        ("POST", "/api/v1/event-rules"): {**EVENT_RULE, "action": "set_urgency", "urgency": "low"},
        ("PATCH", "/api/v1/event-rules/<int:global_rule_id>"): {**EVENT_RULE, "position": 1},
        ("POST", "/api/v1/event-rules/test"): {"event": {"summary": "s", "source": "h"}},
        ("POST", "/api/v1/escalation-policies"): {
            "name": "P2",
            "repeat_count": 1,
            "levels": [{"delay_minutes": 5, "targets": [{"type": "user", "id": admin.id}]}],
        },
        ("PATCH", "/api/v1/escalation-policies/<int:policy_id>"): {
            "description": "d",
            "levels": [{"delay_minutes": 5, "targets": [{"type": "schedule", "id": schedule.id}]}],
        },
        ("POST", "/api/v1/schedules"): {"name": "S3", "time_zone": "UTC", "layers": [layer]},
        ("PATCH", "/api/v1/schedules/<int:schedule_id>"): {"description": "d", "layers": [layer]},
        ("POST", "/api/v1/schedules/<int:schedule_id>/layers"): layer,
        ("PATCH", "/api/v1/schedules/<int:schedule_id>/layers/<int:layer_id>"): {**layer, "position": 1},
        ("POST", "/api/v1/schedules/<int:schedule_id>/overrides"): {**override, "note": "n"},
        ("POST", "/api/v1/maintenance-windows"): window,
        ("PATCH", "/api/v1/maintenance-windows/<int:window_id>"): {**window, "description": "d2"},
        ("POST", "/api/v1/incidents/<int:incident_id>/notes"): {"note": "n"},
        ("POST", "/api/v1/incidents/<int:incident_id>/snooze"): {"minutes": 5},
        ("POST", "/api/v1/incidents/<int:incident_id>/reassign"): {"user_id": member.id},
    }


EVENT_RULE = {
    "name": "n",
    "match": "any",
    "conditions": [{"field": "custom_details.env", "operator": "matches", "value": "^prod"}],
    "action": "set_severity",
    "severity": "info",
    "continue": True,
}


def _spoiled(body: dict):
    """(where, body) pairs: each field (and nested field) of `body` replaced by each hostile value."""
    for key, value in body.items():
        for bad in HOSTILE:
            yield key, {**body, key: bad}
        if isinstance(value, str):  # a valid value with something unstorable inside
            for bad in (value + "\x00", "\x00" + value, value + "\ud800", value[:4] + "\udfff" + value[4:]):
                yield key, {**body, key: bad}
        if isinstance(value, list) and value:
            for bad in HOSTILE:
                yield f"{key}[0]", {**body, key: [bad]}
            if isinstance(value[0], dict):
                for where, inner in _spoiled(value[0]):
                    yield f"{key}[0].{where}", {**body, key: [inner]}


def test_hostile_values_in_every_api_body_never_500(app, api, world):
    api.as_user(world["admin"])
    bodies = _api_bodies(world)
    sweep = Sweep()
    for method, rule in _rules(app, "/api/v1/", {"POST", "PATCH"}):
        path = _path(rule, world["ids"])
        body = bodies.get((method, rule.rule), {})
        for where, spoiled in [("(none)", body), *_spoiled(body)]:
            sweep.check(api.open(method, path, json=spoiled), f"{method} {path} {where}={str(spoiled)[:150]}")
        for extra in ("\x00", "\ud800", "unknown_field"):
            sweep.check(api.open(method, path, json={**body, extra: 1}), f"{method} {path} key {extra!r}")
    sweep.assert_clean()
    assert set(bodies) <= {(m, r.rule) for m, r in _rules(app, "/api/v1/", {"POST", "PATCH"})}


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_unknown_fields_are_refused_by_every_api_body(app, api, world, method):
    """A typo must not pass silently: every POST and PATCH names the unknown field (422), changes nothing."""
    api.as_user(world["admin"])
    bodies = _api_bodies(world)
    for _, rule in _rules(app, "/api/v1/", {method}):
        path = _path(rule, world["ids"])
        body = {**bodies.get((method, rule.rule), {}), "colour": "red"}
        response = api.open(method, path, json=body)
        assert response.status_code == 422, f"{method} {path}: {response.status_code} {response.get_data(as_text=True)}"
        assert response.get_json()["error"]["fields"]["colour"].startswith("Unknown field"), path


def test_hostile_query_arguments_never_500(app, api, world):
    api.as_user(world["admin"])
    sweep = Sweep()
    for _, rule in _rules(app, "/api/v1/", {"GET"}):
        path = _path(rule, world["ids"])
        for name in QUERY_NAMES:
            for value in HOSTILE_QUERY:
                query = f"{quote(name)}={quote(value, safe='', errors='surrogateescape')}"  # \udcff: byte 0xff
                sweep.check(api.get(path, query_string=query), f"GET {path}?{query[:60]}")
    sweep.assert_clean()


@pytest.mark.parametrize(
    "args, field",
    [
        ({"at": "0001-01-01T00:00:00+00:00"}, "at"),
        ({"at": "9999-12-31T23:59:59-14:00"}, "at"),
        ({"since": "0001-01-01T00:00:00+00:00"}, "since"),
        ({"since": "9999-12-31T00:00:00+00:00"}, "since"),
        ({"until": "9999-12-31T23:59:59+00:00"}, "until"),
    ],
)
def test_far_dates_in_queries_name_the_field(app, api, world, args, field):
    api.as_user(world["admin"])
    schedule_id = world["ids"]["schedule_id"]
    paths = {
        "at": (f"/api/v1/schedules/{schedule_id}/oncall", "/api/v1/oncalls"),
        "since": (f"/api/v1/schedules/{schedule_id}/shifts", f"/api/v1/schedules/{schedule_id}/overrides"),
        "until": (f"/api/v1/schedules/{schedule_id}/shifts", f"/api/v1/schedules/{schedule_id}/overrides"),
    }
    for path in paths[field]:
        response = api.get(path, query_string=args)
        assert response.status_code == 422, (path, response.get_data(as_text=True))
        assert "between the years 1970 and 2200" in response.get_json()["error"]["fields"][field]


@pytest.mark.parametrize(
    "summary",
    ["Alice\x00", "Alice\ud800", "Alice"],
)
@pytest.mark.parametrize("year", [2026, 1, 9999])
def test_hostile_calendar_uploads_are_refused_cleanly(app, api, world, summary, year):
    api.as_user(world["admin"])
    calendar = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:1\r\n"
        f"DTSTART:{year:04d}0302T090000Z\r\nDTEND:{year:04d}0302T170000Z\r\nSUMMARY:{summary}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    path = f"/api/v1/schedules/{world['ids']['schedule_id']}/layers"
    response = api.post(path, json={"name": "Imported", "ical_data": calendar})
    if summary == "Alice":
        assert response.status_code == 201, response.get_data(as_text=True)
    else:
        assert response.status_code == 422, response.get_data(as_text=True)
        assert "ical_data" in str(response.get_json()["error"]["fields"]) or response.get_json()["error"]["fields"]


@pytest.mark.parametrize(
    "path, body",
    [
        ("/api/v1/schedules", {"name": "oÏ8,", "time_zone": "UTC"}),
        ("/api/v1/services", {"name": "Ärzte"}),
        ("/api/v1/escalation-policies", {"name": "Ünterwegs"}),
    ],
)
def test_duplicate_non_ascii_names_are_422_not_500(app, api, admin, path, body):
    """SQLite's lower() folds only ASCII, so the check lowers both sides in the database (found by schemathesis)."""
    api.as_user(admin)
    assert api.post(path, json=body).status_code == 201
    response = api.post(path, json=body)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.get_json()["error"]["fields"]["name"]


# --- The web pages: the same hostile values in forms and query strings ---------------------------

FORM_FIELDS = (
    "ack_timeout_minutes",
    "action",
    "address",
    "confirm",
    "contact_method_id",
    "current_password",
    "delay_minutes",
    "description",
    "direction",
    "disabled",
    "email",
    "end",
    "escalation_policy_id",
    "hours",
    "ical_url",
    "incident_ids",
    "is_admin",
    "kind",
    "label",
    "minutes",
    "name",
    "note",
    "participants",
    "password",
    "position",
    "repeat_count",
    "restrictions",
    "service_ids",
    "shift_length",
    "shift_unit",
    "start",
    "target",
    "time_zone",
    "user_id",
)
HOSTILE_FORM = (
    "\x00",
    "a\x00b",
    "\udcff",  # sent as the byte 0xff: not UTF-8
    "99999999999999999999",
    str(2**31),
    "-1",
    "1e20",
    "0001-01-01T00:00",
    "9999-12-31T23:59",
    "9999-12-31",
    "x" * 5000,
    "user:99999999999999999999",
    "schedule:2147483648",
)
PAGE_QUERY = ("99999999999999999999", "\x00", "\udcff", "#" + "9" * 30, "9999-12-31T23:59:59-14:00", "0001-01-01")
QUERY_ARGS = ("at", "date", "start", "end", "user_id", "view", "q", "status", "page", "per_page", "service_id", "next")
# Routes that end the session or act only for machines (ingest, Twilio, acknowledge links: their own tests).
SKIPPED = (
    "/login",
    "/logout",
    "/profile/sessions/end",
    "/api/",
    "/v2/",
    "/generic/",
    "/integrations/",
    "/heartbeat/",
    "/twilio/",
    "/ack/",
)


HTMX = {"HX-Request": "true"}


def _encode(form: dict[str, object]) -> str:
    """A urlencoded body that can carry bytes that are not UTF-8 (a lone surrogate becomes 0xff)."""
    pairs = []
    for name, value in form.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append(f"{quote(name)}={quote(str(item), safe='', errors='surrogateescape')}")
    return "&".join(pairs)


def _post_routes(app):
    routes = [(m, r) for m, r in _rules(app, "/", {"POST"}) if not r.rule.startswith(SKIPPED)]
    # Deleting and deactivating last, so the other routes still find what they act on.
    return sorted(routes, key=lambda mr: any(w in mr[1].rule for w in ("delete", "deactivate", "revoke")))


def test_hostile_form_values_never_500(app, world):
    """Every page form: all fields spoiled at once (as a plain POST and with htmx), then one at a time."""
    sweep = Sweep()
    for _, rule in _post_routes(app):
        client = app.test_client()  # a fresh login per route: a route may have changed the session
        auth = AuthActions(client)
        auth.login(world["admin"].email)
        token = auth.csrf_token()
        path = _path(rule, world["ids"])
        forms = [({field: value for field in FORM_FIELDS}, {}) for value in HOSTILE_FORM]
        forms += [({field: value for field in FORM_FIELDS}, HTMX) for value in HOSTILE_FORM[:4]]
        forms += [({field: ["1", "x\x00"] for field in FORM_FIELDS}, {})]
        forms += [({"action": "acknowledge", "incident_ids": ["1", "99999999999999999999"]}, {})]
        forms += [({field: "99999999999999999999"}, {}) for field in FORM_FIELDS]
        for form, headers in forms:
            body = _encode({"csrf_token": token, **form})
            response = client.post(path, data=body, content_type="application/x-www-form-urlencoded", headers=headers)
            sweep.check(response, f"POST {path} {str(form)[:120]} {headers}")
    sweep.assert_clean()


def test_hostile_query_arguments_on_pages_never_500(app, client, auth, world):
    auth.login(world["admin"].email)
    sweep = Sweep()
    for _, rule in _rules(app, "/", {"GET"}):
        if rule.rule.startswith(("/api/", "/ack/", "/static/", "/calendar/", "/logout", "/heartbeat/")):
            continue
        path = _path(rule, world["ids"])
        for name in QUERY_ARGS:
            for value in PAGE_QUERY:
                query = f"{name}={quote(value, safe='', errors='surrogateescape')}"
                sweep.check(client.get(path, query_string=query), f"GET {path}?{query[:60]}")
    sweep.assert_clean()
