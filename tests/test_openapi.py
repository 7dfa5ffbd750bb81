"""The OpenAPI description stays true: it covers every route, and a live app answers as it says.

schemathesis generates requests from /api/v1/openapi.json (valid ones and invalid ones) against the
live server with an admin's token, and checks each answer: no server error, a documented status,
a body that matches the documented schema. Run it on PostgreSQL with DATABASE_URL set.
"""

import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from openduty.extensions import db
from openduty.models import ApiToken
from tests import factories, factories_escalation, factories_events, factories_schedules

INGEST_ENDPOINTS = {
    "events.enqueue_v2",
    "events.create_event_v1",
    "events.create_event_legacy",
    "events.alertmanager",
    "events.generic",
    "events.enqueue_change",
    "events.heartbeat",
}


def _described_routes(app) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") or rule.endpoint in INGEST_ENDPOINTS:
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            routes |= {(method.lower(), path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return routes


def test_every_route_is_described_and_every_described_path_exists(app, client):
    response = client.get("/api/v1/openapi.json")  # public: no token
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.1")
    described = {(method, path) for path, item in document["paths"].items() for method in item}
    assert described == _described_routes(app)


def test_the_description_is_valid_openapi(app, client):
    document = client.get("/api/v1/openapi.json").get_json()
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len({(m, p) for p, item in document["paths"].items() for m in item})
    refs = set(re.findall(r'"#/components/schemas/(\w+)"', client.get("/api/v1/openapi.json").get_data(as_text=True)))
    assert refs <= set(document["components"]["schemas"])


@pytest.fixture
def seeded(app, admin, member):
    """Objects with small ids, so that generated ids often hit something real."""
    method = factories.make_contact_method(admin, kind="email")
    factories.make_notification_rule(admin, method)
    schedule = factories_schedules.make_schedule("Ops")
    factories_schedules.make_layer(schedule, [admin, member], datetime(2026, 1, 1, 9))
    start = datetime.now(UTC).replace(microsecond=0)
    factories_schedules.make_override(schedule, member, start, start + timedelta(hours=2))
    policy = factories_escalation.make_policy([(5, [admin]), (10, [schedule])])
    service = factories_escalation.make_service(policy)
    factories_events.make_integration(service)
    factories_escalation.open_incident(service)
    _, token = ApiToken.issue(admin, "schemathesis")
    db.session.commit()
    return token


# Examples per operation: enough to reach every field's checks, small enough for < ~90 s in all.
EXAMPLES_PER_OPERATION = 12


def test_schemathesis_finds_nothing(app, live_server, seeded):
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/v1/openapi.json")
    schema.config.base_url = live_server.url
    headers = {"Authorization": f"Token {seeded}"}
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]
    statuses: Counter[int] = Counter()
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
        strategy = st.one_of([operation.as_strategy(generation_mode=mode) for mode in modes])

        @given(case=strategy)
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            response = case.call_and_validate(base_url=live_server.url, headers=headers, checks=checks)
            statuses[response.status_code] += 1

        run()
    elapsed = time.monotonic() - started
    print(f"schemathesis: {sum(statuses.values())} requests in {elapsed:.0f} s; statuses {sorted(statuses.items())}")
    assert statuses[200] + statuses[201] + statuses[204] > 50, statuses  # it reached real objects too
    assert elapsed < 120, f"schemathesis took {elapsed:.0f} s; lower EXAMPLES_PER_OPERATION"
