"""Hostile bodies on every ingest endpoint: each answers a 4xx with a message (or accepts what it can
store), never a 500. Fixed cases for the known shapes, then hypothesis mutating valid bodies."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from openduty.extensions import db
from openduty.models import Incident
from tests import factories_events

ENDPOINTS = ["v2", "v1", "legacy", "alertmanager", "generic"]


def _valid(endpoint, key):
    """A valid body for the endpoint (and its URL)."""
    if endpoint == "v2":
        body = {"routing_key": key, "event_action": "trigger", "dedup_key": "d",
                "payload": {"summary": "s", "source": "h", "severity": "error", "timestamp": "2026-01-01T00:00:00Z",
                            "component": "c", "custom_details": {"a": [1, "x"]}},
                "links": [{"href": "https://x.example", "text": "t"}], "images": [{"src": "https://x.example/i.png"}],
                "client": "c", "client_url": "https://x.example"}  # fmt: skip
        return "/v2/enqueue", body
    if endpoint in ("v1", "legacy"):
        body = {"service_key": key, "event_type": "trigger", "incident_key": "d", "description": "s",
                "details": {"a": 1}, "client": "c", "client_url": "https://x.example",
                "contexts": [{"type": "link", "href": "https://x.example", "text": "t"},
                             {"type": "image", "src": "https://x.example/i.png"}]}  # fmt: skip
        return ("/generic/2010-04-15/create_event.json" if endpoint == "v1" else "/api/create_event"), body
    if endpoint == "alertmanager":
        alert = {"status": "firing", "fingerprint": "f1", "labels": {"alertname": "Disk", "severity": "page"},
                 "annotations": {"summary": "Disk full"}, "startsAt": "2026-01-01T00:00:00Z",
                 "generatorURL": "https://prom.example/g"}  # fmt: skip
        body = {"version": "4", "status": "firing", "receiver": "r", "groupKey": "g", "alerts": [alert]}
        return f"/integrations/alertmanager/{key}", body
    return f"/integrations/generic/{key}", {"summary": "s", "dedup_key": "d", "severity": "error",
                                             "source": "h", "details": {"a": 1}, "action": "trigger"}  # fmt: skip


@pytest.fixture
def keys(app):
    service = factories_events.make_service(name="Hostile")
    kinds = {"v2": "events_v2", "v1": "events_v1", "legacy": "events_v1", "alertmanager": "alertmanager"}
    return {e: factories_events.make_integration(service, kind=kinds.get(e, "generic")).key for e in ENDPOINTS}


def _assert_answered(response):
    """A 4xx with a message saying what to fix, or a success; never a 5xx."""
    assert response.status_code < 500, (response.status_code, response.get_data(as_text=True)[:500])
    if response.status_code >= 400:
        body = response.json
        assert isinstance(body["errors"], list) and body["errors"], body
        assert all(isinstance(e, str) and e for e in body["errors"]), body


def _nested(depth):
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("depth", [65, 500, 989, 5000, 200_000])
def test_deep_nesting_is_a_400_that_says_so(client, keys, endpoint, depth):
    path, body = _valid(endpoint, keys[endpoint])
    raw = json.dumps(body)
    if endpoint == "v2":
        raw = raw.replace('"custom_details": {', '"custom_details": {"deep": ' + _nested(depth) + ", ", 1)
    else:
        raw = raw[:-1] + ', "deep": ' + _nested(depth) + "}"
    response = client.post(path, data=raw, content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert "nested deeper than 64" in response.json["errors"][0]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    "raw, error",
    [
        (b"[]", "must be a JSON object"),
        (b'"event"', "must be a JSON object"),
        (b"12", "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b"true", "must be a JSON object"),
        (b'{"a": NaN}', "not valid JSON"),
        (b'{"a": -Infinity}', "not valid JSON"),
        (b'{"a": 1e400}', "not valid JSON"),
        (b'{"a": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b'{"a": 1} {"b": 2}', "not valid JSON"),
        (b"{" + b'"a": 1, ' * 20000 + b'"b": 2}', None),
    ],
    ids=["list", "string", "number", "null", "bool", "nan", "infinity", "overflow", "huge-int", "not-utf8",
         "two-objects", "many-keys"],
)  # fmt: skip
def test_bodies_that_are_not_an_event_object(client, keys, endpoint, raw, error):
    path, _ = _valid(endpoint, keys[endpoint])
    response = client.post(path, data=raw, content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    _assert_answered(response)
    if error:
        assert error in response.json["errors"][0], response.json


WRONG_TYPES = [None, True, 0, -1, 2**63, 10**30, 1.5, "", " ", "x" * 2000, [], [1, "a"], {}, {"a": {"b": [None]}}]


def _paths(value, prefix=()):
    """Every path to a value inside a body (dict keys and list indexes)."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _replaced(body, path, value):
    body = json.loads(json.dumps(body))
    if not path:
        return value
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return body


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_field_with_every_wrong_type(client, keys, endpoint, admin, auth):
    path, body = _valid(endpoint, keys[endpoint])
    for where in list(_paths(body))[1:]:
        for value in WRONG_TYPES:
            response = client.post(path, json=_replaced(body, where, value))
            _assert_answered(response)
    # Whatever was accepted, its incident page shows it.
    auth.login(admin.email)
    ids = db.session.scalars(select(Incident.id)).all()
    assert ids
    for incident_id in ids:
        assert client.get(f"/incidents/{incident_id}").status_code == 200, incident_id


def test_a_huge_id_shaped_url_key_or_odd_characters_are_4xx(client, keys):
    for key in ("%00", "a%2Fb", "k" * 33, "%ED%A0%80", "ñ" * 32):
        for kind in ("alertmanager", "generic"):
            response = client.post(f"/integrations/{kind}/{key}", json={"summary": "s", "alerts": []})
            assert 400 <= response.status_code < 500, (key, response.status_code)


# --- Hypothesis: valid bodies with random parts replaced by arbitrary JSON ---------------------------

_text = st.one_of(st.text(max_size=20), st.sampled_from(["\x00", "a\ud800", "\udfff", "\u2028", "\ufeff", "'\"\\"]))
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_text, children, max_size=3),
    max_leaves=8,
)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hypothesis_mutated_bodies_never_5xx(client, keys, endpoint, data):
    path, body = _valid(endpoint, keys[endpoint])
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(list(_paths(body))))
        body = _replaced(body, where, data.draw(_json))
    if isinstance(body, dict) and data.draw(st.booleans()):
        body[data.draw(_text)] = data.draw(_json)
    response = client.post(path, data=json.dumps(body), content_type="application/json")
    _assert_answered(response)
    if response.status_code < 300:  # what was accepted is stored and reads back
        db.session.expire_all()
        for incident in db.session.scalars(select(Incident)):
            json.dumps(incident.details)
