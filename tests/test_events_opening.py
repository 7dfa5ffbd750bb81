"""Ingest opens incidents as rows (openduty.events, SQLAlchemy Core): each new incident is written
as the ORM path (escalation.incident_triggered) writes one, with the same escalation fields, the
same timeline and the same escalation timer armed after the commit; numbers follow the batch."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from rq.job import Job
from sqlalchemy import select

from openduty import clock, maintenance, timers
from openduty.event_commit import apply_and_commit
from openduty.events import Event
from openduty.extensions import db, queue, redis
from openduty.models import Incident, Integration
from openduty.timers import ESCALATION_QUEUE, escalation_job_id
from tests import factories_events
from tests.factories_escalation import make_pager, make_policy, make_service, open_incident

ESCALATION_FIELDS = ("status", "epoch", "escalation_level", "escalation_loop", "next_escalation_at", "in_maintenance")


@pytest.fixture
def still():
    """The clock stopped, so that both paths read the same `now`."""
    with time_machine.travel(datetime(2026, 3, 2, 9, 0, tzinfo=UTC), tick=False):
        yield


def _service(setup: str):
    policy = make_policy([(5, [make_pager("Alice", {"sms": ("+14155550101", 0)})])])
    service = make_service(None if setup == "no policy" else policy, name=f"Web ({setup})")
    if setup == "maintenance":
        data = {"start": clock.now().isoformat(), "end": (clock.now() + timedelta(minutes=30)).isoformat(),
                "description": "", "service_ids": [service.id]}  # fmt: skip
        maintenance.save_window(None, data)
        db.session.commit()
    return service


def _ingest(service, *events: tuple[str, str]) -> list:
    """Apply (action, dedup key) events to `service` in one batch, as the batcher does."""
    integration = db.session.scalar(select(Integration).where(Integration.service_id == service.id))
    integration = integration or factories_events.make_integration(service)
    batch = [Event(integration.key, action, key, "Disk full", "critical", source="host-1") for action, key in events]
    return apply_and_commit(batch)


def _armed(incident_id: int) -> tuple | None:
    """The escalation job armed for the incident's first epoch: (its arguments, whether it is queued now)."""
    job_id = escalation_job_id(incident_id, 0)
    if not Job.exists(job_id, connection=redis.get()):
        return None
    return Job.fetch(job_id, connection=redis.get()).args, job_id in queue(ESCALATION_QUEUE).job_ids


def _written(incident_id: int):
    db.session.expire_all()
    incident = db.session.get(Incident, incident_id)
    fields = {name: getattr(incident, name) for name in ESCALATION_FIELDS}
    after_trigger = [(e.kind, e.message, e.channel, e.actor_id, e.data, e.at) for e in incident.log_entries[1:]]
    return incident.number, fields, after_trigger


@pytest.mark.parametrize("setup", ["policy", "no policy", "maintenance"])
def test_a_new_incident_is_written_and_armed_as_the_orm_path_does(app, still, setup):
    service = _service(setup)
    [outcome] = _ingest(service, ("trigger", "by-ingest"))
    by_orm = open_incident(service, summary="Disk full", dedup_key="by-orm")

    number, fields, timeline = _written(outcome.incident_id)
    orm_number, orm_fields, orm_timeline = _written(by_orm.id)
    assert outcome.result == "opened" and (number, orm_number) == (1, 2)
    assert fields == orm_fields
    assert timeline == orm_timeline
    expected = {
        "policy": [],
        "no policy": ["nobody_to_page"],
        "maintenance": ["maintenance"],
    }[setup]
    assert [kind for kind, *_ in timeline] == expected
    assert fields["next_escalation_at"] == (clock.now() if setup == "policy" else None)
    assert fields["in_maintenance"] is (setup == "maintenance")
    armed, orm_armed = _armed(outcome.incident_id), _armed(by_orm.id)
    if setup == "policy":
        assert armed == ((outcome.incident_id, 0), True) and orm_armed == ((by_orm.id, 0), True)
    else:
        assert armed is None and orm_armed is None


def test_a_batch_numbers_its_new_incidents_in_order_and_arms_each(app, still):
    service = _service("policy")
    outcomes = _ingest(service, ("trigger", "b"), ("trigger", "a"), ("trigger", "b"), ("trigger", "c"))
    assert [o.result for o in outcomes] == ["opened", "opened", "deduplicated", "opened"]
    ids = {key: o.incident_id for o, key in zip(outcomes, "bab" + "c", strict=True)}
    # Keys are visited in sorted order (the lock order), and numbered in that order.
    assert [_written(ids[key])[0] for key in "abc"] == [1, 2, 3]
    assert all(_written(ids[key])[1]["next_escalation_at"] == clock.now() for key in "abc")
    assert timers.reconcile()["escalations"] == 0, "each one's escalation was armed at the commit"
    db.session.expire_all()
    b = db.session.get(Incident, ids["b"])
    assert b.alert_count == 2
    assert [e.kind for e in b.log_entries] == ["trigger", "duplicate"]


def test_an_incident_opened_and_resolved_in_one_batch_is_not_armed(app, still):
    service = _service("policy")
    opened, resolved, again = _ingest(service, ("trigger", "k"), ("resolve", "k"), ("trigger", "k"))
    assert (opened.result, resolved.result, again.result) == ("opened", "resolved", "opened")
    assert opened.incident_id == resolved.incident_id != again.incident_id
    number, fields, _ = _written(opened.incident_id)
    assert (number, fields["status"], fields["next_escalation_at"]) == (1, "resolved", None)
    db.session.expire_all()
    assert [e.kind for e in db.session.get(Incident, opened.incident_id).log_entries] == ["trigger", "resolve"]
    assert _armed(opened.incident_id) is None
    assert _written(again.incident_id)[0] == 2
    assert _armed(again.incident_id) == ((again.incident_id, 0), True)


# Strings that mean something in a PostgreSQL array literal or in JSON text: on PostgreSQL a batch's
# rows go to the database as one array per column (transactions.many_rows), and none may be read
# as SQL NULL, split at a comma or a brace, or lose a quote or a backslash on the way.
AWKWARD = ["NULL", "null", "", " ", "a,b", "{x}", "{1,2}", '"', "'", "\\", '\\"', "é ✓ \U0001f600", "tab\tline\nend"]


def test_a_batch_stores_every_string_as_sent(app, still):
    service = _service("no policy")
    integration = factories_events.make_integration(service)
    batch = [
        Event(integration.key, "trigger", f"k-{n}-{text}", f"{text}!", "critical", source=text,
              details={"text": text, "list": [text, {"nested": text}], "none": None})
        for n, text in enumerate(AWKWARD)
    ]  # fmt: skip
    batch.append(Event(integration.key, "trigger", f"k-0-{AWKWARD[0]}", "again", "critical", source="NULL"))
    outcomes = apply_and_commit(batch)
    assert [o.result for o in outcomes] == ["opened"] * len(AWKWARD) + ["deduplicated"]
    db.session.expire_all()
    for n, text in enumerate(AWKWARD):
        incident = db.session.get(Incident, outcomes[n].incident_id)
        assert (incident.dedup_key, incident.summary, incident.source) == (f"k-{n}-{text}", f"{text}!", text)
        assert incident.details == {"text": text, "list": [text, {"nested": text}], "none": None}
        first = incident.log_entries[0]
        assert (first.kind, first.message) == ("trigger", f"Triggered via Events API v2: {text}!")
        assert first.data == {"source": text, "severity": "critical"}
    duplicate = db.session.get(Incident, outcomes[0].incident_id).log_entries[1]
    assert (duplicate.kind, duplicate.data) == ("duplicate", {"source": "NULL", "severity": "critical"})
