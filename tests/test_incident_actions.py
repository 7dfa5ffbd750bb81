"""Every path that acts on an incident goes through openduty.incidents: each locks the row before
it reads it, and each change of state bumps the epoch exactly once (issue 10).

The paths: the console (single and bulk), the JSON API, the signed acknowledge link, the SMS reply,
the voice keypad and events. Run on PostgreSQL with DATABASE_URL set, on SQLite otherwise.
"""

import re
import threading

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session, object_session

from openduty import incidents
from openduty.ack_links import ack_token
from openduty.extensions import db
from openduty.models import ApiToken, Incident, LogEntry
from openduty.notifiers.twilio import request_signature
from tests import factories_events
from tests.conftest import AuthActions
from tests.factories_escalation import make_pager, make_policy, make_service
from tests.plugins.escalation import TWILIO_TOKEN

# Timeline entries written by an action (a snooze of a triggered incident writes two).
ACTION_KINDS = ("acknowledge", "resolve", "escalate", "snooze", "reassign", "note")


class Scene:
    """One incident, open through events, on a two-level policy (Alice, then Bob), and clients
    ready to act on it through each path."""

    def __init__(self, app, admin):
        self.app = app
        self.alice = make_pager("Alice", {"sms": ("+14155550101", 0)})
        self.bob = make_pager("Bob", {"sms": ("+14155550102", 0)})
        service = make_service(make_policy([(5, [self.alice]), (5, [self.bob])]))
        self.integration = factories_events.make_integration(service)
        self.incident = factories_events.make_incident(self.integration, dedup_key="race")
        self.id = self.incident.id
        self.number = self.incident.number
        self.admin = admin
        _, self.api_token = ApiToken.issue(admin, "race")
        db.session.commit()

    def web(self):
        """A logged-in browser: (client, CSRF token)."""
        client = self.app.test_client()
        auth = AuthActions(client)
        auth.login(self.admin.email)
        return client, auth.csrf_token()

    def link(self, action: str):
        client = self.app.test_client()
        path = f"/ack/{ack_token([self.id], self.alice.id)}"
        html = client.get(path).get_data(as_text=True)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        return lambda: client.post(path, data={"action": action, "csrf_token": csrf})

    def twilio(self, path: str, form: dict):
        client = self.app.test_client()
        signature = request_signature(TWILIO_TOKEN, "http://localhost" + path, form)
        return lambda: client.post(path, data=form, headers={"X-Twilio-Signature": signature})

    def api(self, action: str, body: dict | None = None):
        client = self.app.test_client()
        headers = {"Authorization": f"Token {self.api_token}"}
        return lambda: client.post(f"/api/v1/incidents/{self.id}/{action}", json=body or {}, headers=headers)

    def form(self, path: str, data: dict | None = None):
        client, csrf = self.web()
        return lambda: client.post(path, data={"csrf_token": csrf, **(data or {})})

    def event(self, action: str):
        client = self.app.test_client()
        body = {"routing_key": self.integration.key, "event_action": action, "dedup_key": "race"}
        return lambda: client.post("/v2/enqueue", json=body)


# Each path: how to prepare its request (logins, tokens, CSRF) before it is sent.
PATHS = {
    "web-acknowledge": lambda s: s.form(f"/incidents/{s.id}/acknowledge"),
    "web-resolve": lambda s: s.form(f"/incidents/{s.id}/resolve"),
    "web-note": lambda s: s.form(f"/incidents/{s.id}/notes", {"note": "Looking"}),
    "web-escalate": lambda s: s.form(f"/incidents/{s.id}/escalate"),
    "web-snooze": lambda s: s.form(f"/incidents/{s.id}/snooze", {"minutes": "30"}),
    "web-reassign": lambda s: s.form(f"/incidents/{s.id}/reassign", {"user_id": str(s.bob.id)}),
    "web-bulk": lambda s: s.form("/incidents/bulk", {"action": "acknowledge", "incident_ids": str(s.id)}),
    "api-acknowledge": lambda s: s.api("acknowledge"),
    "api-resolve": lambda s: s.api("resolve"),
    "api-note": lambda s: s.api("notes", {"note": "Looking"}),
    "api-escalate": lambda s: s.api("escalate"),
    "api-snooze": lambda s: s.api("snooze", {"minutes": 30}),
    "api-reassign": lambda s: s.api("reassign", {"user_id": s.bob.id}),
    "link-acknowledge": lambda s: s.link("acknowledge"),
    "link-resolve": lambda s: s.link("resolve"),
    "sms-acknowledge": lambda s: s.twilio("/twilio/sms", {"From": "+14155550101", "Body": f"ack {s.number}"}),
    "sms-resolve": lambda s: s.twilio("/twilio/sms", {"From": "+14155550101", "Body": f"res {s.number}"}),
    "voice-acknowledge": lambda s: s.twilio(f"/twilio/voice/{ack_token([s.id], s.alice.id)}", {"Digits": "1"}),
    "event-acknowledge": lambda s: s.event("acknowledge"),
    "event-resolve": lambda s: s.event("resolve"),
}
NO_CHANGE = {"web-note", "api-note"}  # a note changes neither the status nor the escalation


@pytest.fixture
def scene(app, admin, channels):
    return Scene(app, admin)


def _current(incident_id: int) -> Incident:
    db.session.rollback()
    db.session.expire_all()
    return db.session.get(Incident, incident_id)


def _entries(incident_id: int) -> list[LogEntry]:
    query = select(LogEntry).where(LogEntry.incident_id == incident_id).order_by(LogEntry.id)
    return list(db.session.scalars(query))


def _ok(response) -> bool:
    return response.status_code < 400


# --- The epoch moves once per change -------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(PATHS))
def test_each_path_bumps_the_epoch_exactly_once(scene, path):
    before = _current(scene.id).epoch
    response = PATHS[path](scene)()
    assert _ok(response), response.get_data(as_text=True)
    incident = _current(scene.id)
    assert incident.epoch == before + (0 if path in NO_CHANGE else 1), path


@pytest.mark.parametrize("path", ["web-snooze", "api-snooze"])
def test_snoozing_an_acknowledged_incident_bumps_the_epoch_once(scene, path):
    assert _ok(PATHS["api-acknowledge"](scene)())
    before = _current(scene.id).epoch
    assert _ok(PATHS[path](scene)())
    incident = _current(scene.id)
    assert incident.epoch == before + 1 and incident.status == "acknowledged"


def test_snoozing_a_triggered_incident_acknowledges_it_and_bumps_once(scene, admin):
    incident = _current(scene.id)
    before = incident.epoch
    incidents.snooze(incident, 30, by=admin, channel="api")
    db.session.commit()
    incident = _current(scene.id)
    assert incident.epoch == before + 1
    assert incident.status == "acknowledged" and incident.snoozed_until is not None
    assert [e.kind for e in _entries(scene.id)][-2:] == ["acknowledge", "snooze"]


def test_acknowledge_and_resolve_bump_once_and_then_do_nothing(scene, admin):
    incident = _current(scene.id)
    before = incident.epoch
    assert incidents.acknowledge(incident, by=admin) is True
    assert incidents.acknowledge(incident, by=admin) is False
    db.session.commit()
    assert _current(scene.id).epoch == before + 1
    incident = _current(scene.id)
    assert incidents.resolve(incident, by=admin) is True
    assert incidents.resolve(incident, by=admin) is False
    db.session.commit()
    assert _current(scene.id).epoch == before + 2


# --- Every path locks the row before it reads it -------------------------------------------------


def _statements(engine):
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    return seen, lambda: event.remove(engine, "before_cursor_execute", record)


def _is_lock(statement: str, dialect: str) -> bool:
    if dialect == "sqlite":
        return statement.upper() == "BEGIN IMMEDIATE"
    return statement.startswith("SELECT") and "FROM incidents" in statement and statement.endswith("FOR UPDATE")


def _is_change(statement: str) -> bool:
    return statement.startswith("UPDATE incidents") or statement.startswith("INSERT INTO log_entries")


@pytest.mark.parametrize("path", sorted(PATHS))
def test_each_path_locks_the_incident_before_changing_it(scene, path):
    send = PATHS[path](scene)
    dialect = db.engine.dialect.name
    seen, stop = _statements(db.engine)
    try:
        response = send()
    finally:
        stop()
    assert _ok(response)
    changes = [i for i, s in enumerate(seen) if _is_change(s)]
    assert changes, f"{path} changed nothing: {seen}"
    locks = [i for i, s in enumerate(seen[: changes[0]]) if _is_lock(s, dialect)]
    assert locks, f"{path} changed the incident without locking it first: {seen[: changes[0] + 1]}"
    if dialect == "postgresql":
        # The state the action decides on is read under the lock (not before it).
        reads = [i for i, s in enumerate(seen[: changes[0]]) if s.startswith("SELECT") and "FROM incidents" in s]
        assert reads[-1] >= locks[0]


# --- Racing paths: no action lost or applied twice -----------------------------------------------


class Race:
    """Holds each racing transaction at its commit until the other arrives (or RENDEZVOUS seconds
    pass). With the row locked the second transaction cannot get there, so they commit one after
    the other; without the lock both commit what they read before the other's change.

    Counts the epoch increments each committed transaction made, to compare with the database.
    """

    RENDEZVOUS = 1.5

    def __init__(self, main: threading.Thread):
        self.main = main
        self.barrier = threading.Barrier(2)
        self.bumps = 0
        self.lock = threading.Lock()
        self.waited: set[int] = set()

    def _racing(self) -> bool:
        return threading.current_thread() is not self.main

    def on_set_epoch(self, target, value, oldvalue, initiator):
        session = object_session(target)
        if self._racing() and session is not None and isinstance(oldvalue, int):
            session.info["race.bumps"] = session.info.get("race.bumps", 0) + (value - oldvalue)

    def before_commit(self, session):
        if not self._racing() or threading.get_ident() in self.waited:
            return
        touched = [o for o in session.new | session.dirty if isinstance(o, (Incident, LogEntry))]
        if not touched and not session.info.get("race.bumps"):
            return
        self.waited.add(threading.get_ident())
        try:
            self.barrier.wait(self.RENDEZVOUS)
        except threading.BrokenBarrierError:
            pass

    def after_commit(self, session):
        bumps = session.info.pop("race.bumps", 0)
        with self.lock:
            self.bumps += bumps

    def after_rollback(self, session):
        session.info.pop("race.bumps", None)


def _race(first, second):
    """Send two prepared requests at once, each from its own thread; their responses."""
    race = Race(threading.current_thread())
    hooks = [
        (Incident.epoch, "set", race.on_set_epoch),
        (Session, "before_commit", race.before_commit),
        (Session, "after_commit", race.after_commit),
        (Session, "after_rollback", race.after_rollback),
    ]
    for target, name, fn in hooks:
        event.listen(target, name, fn)
    start = threading.Barrier(2)
    responses: list = [None, None]

    def run(index, send):
        start.wait(10)
        responses[index] = send()

    threads = [threading.Thread(target=run, args=(i, send)) for i, send in enumerate((first, second))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for target, name, fn in hooks:
            event.remove(target, name, fn)
    return responses, race.bumps


# Each path races one that changes the incident in any state (escalate now), plus pairs named in
# the issue (ack link against escalate now, SMS reply against web resolve) and same-action pairs.
PAIRS = [(path, "web-escalate") for path in sorted(PATHS)] + [
    ("link-acknowledge", "api-escalate"),
    ("sms-resolve", "web-resolve"),
    ("sms-acknowledge", "link-acknowledge"),
    ("voice-acknowledge", "web-bulk"),
    ("event-resolve", "api-resolve"),
    ("api-snooze", "api-reassign"),
]


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=[f"{a}-vs-{b}" for a, b in PAIRS])
def test_racing_paths_neither_lose_nor_double_an_action(scene, first, second):
    before = _current(scene.id).epoch
    count_before = len(_entries(scene.id))
    responses, bumps = _race(PATHS[first](scene), PATHS[second](scene))
    assert all(r is not None and r.status_code < 500 for r in responses), [r and r.status_code for r in responses]
    incident = _current(scene.id)
    # Every increment a committed transaction made is in the database: none was overwritten.
    assert incident.epoch == before + bumps, (incident.epoch, before, bumps)
    entries = _entries(scene.id)[count_before:]
    kinds = [e.kind for e in entries if e.kind in ACTION_KINDS]
    # The same action twice applies once.
    for kind in ("acknowledge", "resolve"):
        assert kinds.count(kind) <= 1, kinds
    # The final state is the one the last change in the timeline leaves.
    last = next((k for k in reversed(kinds) if k != "note"), None)
    expected = {"acknowledge": "acknowledged", "snooze": "acknowledged", "resolve": "resolved"}
    assert incident.status == expected.get(last, "triggered"), (kinds, incident.status)
