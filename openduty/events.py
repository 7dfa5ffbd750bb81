"""Ingest's core: the one `Event` every inbound format becomes, and applying Events to incidents.

`apply_events()` applies a list of Events inside the current transaction: a trigger opens an
incident or folds into the open one with the same (service, dedup key) through one
INSERT ... ON CONFLICT DO UPDATE on the partial unique index (so races cannot open two), and
acknowledge / resolve act on the open incident through the same actions (openduty.incidents) the web uses.
First, the intake pre-pass (openduty.event_intake) runs the event rules and time-window grouping.
Incident numbers come from the `counters` table, reserved last in the transaction. New incidents stay
rows (SQLAlchemy Core, no ORM objects): the upsert returns what starting their escalation needs, and
one UPDATE writes their numbers and first escalation (openduty.incident_start) together.

Around it, each in its own module: the parsers of the inbound formats (event_formats), the
integration-key cache (integration_keys), one transaction with retries and the commit gate
(event_commit), the per-process group commit (event_batcher) and the rate limit
(event_rate_limit).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    Integer,
    String,
    Text,
    bindparam,
    insert,
    literal,
    literal_column,
    null,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from openduty import clock, escalation, event_intake, incidents, timers, urgency
from openduty.extensions import db
from openduty.incident_start import first_escalation
from openduty.integration_keys import KeyedService, services_by_key
from openduty.models import Counter, Incident, LogEntry, Service
from openduty.models.maintenance import maintenance_end
from openduty.models.types import UTCDateTime
from openduty.transactions import as_arrays, many_rows, rows_as

# The partial unique index's predicate, as literal SQL: a bound parameter in ON CONFLICT's WHERE
# makes PostgreSQL fail to infer the index once psycopg 3 switches to a generic plan.
OPEN_PREDICATE = text("status <> 'resolved'")


@dataclass(slots=True)
class Event:
    """One normalised inbound event, whatever format it came in."""

    routing_key: str
    action: str
    dedup_key: str
    summary: str = ""
    severity: str = "critical"
    urgency: str | None = None  # "high" | "low"; None: the service's urgency setting decides
    source: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    # Which endpoint it came through, for the timeline (events_v2, events_v1, openduty, ...).
    via: str = "events_v2"
    # False when the sender gave no dedup key and the parser made one up: time-window grouping
    # (openduty.event_intake) may then fold the event into a recent incident.
    dedup_key_given: bool = True


@dataclass(slots=True)
class Outcome:
    """What applying one Event did."""

    # opened | deduplicated | acknowledged | resolved | ignored | suppressed | dropped (event rules:
    # accepted, no incident) | unknown_key | disabled
    result: str
    dedup_key: str
    incident_id: int | None = None

    @property
    def accepted(self) -> bool:
        return self.result not in ("unknown_key", "disabled")


def _dialect() -> str:
    return db.session.get_bind().dialect.name


@functools.cache
def _counter_upsert(dialect: str):
    """The counter's increment statement (built once per dialect: building it costs more than running it)."""
    table = Counter.__table__
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.name], set_={"value": table.c.value + stmt.excluded.value}
    ).returning(table.c.value)


def next_incident_numbers(count: int) -> int:
    """Reserve `count` consecutive incident numbers; returns the first. Locks the counter to commit."""
    stmt = _counter_upsert(_dialect())
    return db.session.execute(stmt, {"name": "incident", "value": count}).scalar_one() - count + 1


# What differs between the rows of one trigger upsert (the rest is the same for all of them).
_TRIGGER_COLUMNS = {
    "service_id": Integer,
    "dedup_key": String,
    "summary": String,
    "severity": String,
    "urgency": String,
    "source": String,
    "details": JSON,
    "alert_count": Integer,
}
_TRIGGER_CONSTANTS = {"status": "triggered", "epoch": 0, "escalation_level": 0, "escalation_loop": 0}


@functools.cache
def _trigger_upsert(dialect: str, arrays: bool):
    """INSERT ... ON CONFLICT (service_id, dedup_key) WHERE open DO UPDATE, once per dialect and form.

    Its rows are executemany parameter sets, or (`arrays`) one array per column with `now` the time
    of both timestamps (`transactions.many_rows`, PostgreSQL, many rows). Each row also returns what
    starting a new incident's escalation reads: its service's name and policy, and the service's
    maintenance when the incident opened (subqueries: a few index lookups in the same round trip,
    where reloading the incident and its service cost two)."""
    table = Incident.__table__
    services = Service.__table__
    if arrays:
        rows = many_rows(**_TRIGGER_COLUMNS)
        now = bindparam("now", type_=UTCDateTime)
        constants = [literal(value) for value in _TRIGGER_CONSTANTS.values()]
        stmt = postgresql.insert(table).from_select(
            [*_TRIGGER_COLUMNS, "created_at", "last_event_at", *_TRIGGER_CONSTANTS],
            select(*rows.c, now, now, *constants),
        )
    else:
        stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    # The returned row's columns, as literal SQL: SQLAlchemy does not correlate subqueries in RETURNING.
    service_id = literal_column(f"{table.name}.service_id", table.c.service_id.type)
    created_at = literal_column(f"{table.name}.created_at", table.c.created_at.type)
    of_service = services.c.id == service_id
    return stmt.on_conflict_do_update(
        index_elements=[table.c.service_id, table.c.dedup_key],
        index_where=OPEN_PREDICATE,
        set_={
            "alert_count": table.c.alert_count + stmt.excluded.alert_count,
            "last_event_at": stmt.excluded.last_event_at,
        },
    ).returning(
        table.c.id,
        table.c.service_id,
        table.c.dedup_key,
        table.c.alert_count,
        select(services.c.name).where(of_service).scalar_subquery(),
        select(services.c.escalation_policy_id).where(of_service).scalar_subquery(),
        maintenance_end(service_id, created_at),
        sort_by_parameter_order=not arrays,
    )


# A timeline entry's columns as ingest writes them (no actor: events have none).
_ENTRY_COLUMNS = {
    "incident_id": Integer,
    "at": UTCDateTime,
    "kind": String,
    "message": Text,
    "channel": String,
    "data": JSON,
}


@functools.cache
def _entries_insert(arrays: bool):
    """Ingest's timeline entries in one INSERT (ids not fetched back): executemany parameter sets,
    or (`arrays`) one array per column (`transactions.many_rows`)."""
    table = LogEntry.__table__
    if not arrays:
        return insert(table).inline()
    rows = many_rows(**_ENTRY_COLUMNS)
    return insert(table).from_select([*_ENTRY_COLUMNS, "actor_id"], select(*rows.c, null()))


class _Upserted(NamedTuple):
    """One row of the trigger upsert: its incident, whether the upsert opened it, and (for a new one)
    what starting its escalation needs."""

    id: int
    service_id: int
    is_new: bool
    service_name: str
    policy_id: int | None
    maintenance_end: datetime | None


def _upsert_triggers(
    runs: list[tuple[int, Event, int]], now: datetime, settings: dict[int, str]
) -> dict[tuple[int, str], _Upserted]:
    """Open or fold into incidents for runs of triggers, in one INSERT ... ON CONFLICT DO UPDATE.

    `runs` holds (service id, first event, how many triggers) with each (service, dedup key) at
    most once (PostgreSQL refuses to update one row twice in one statement); `settings` each
    service's urgency setting at `now` (a new incident's urgency). Returns, per key, the row.
    """
    rows = [
        {
            "service_id": service_id,
            "dedup_key": first.dedup_key,
            "summary": first.summary,
            "severity": first.severity,
            "urgency": urgency.incident_urgency(settings[service_id], first.severity, first.urgency),
            "source": first.source,
            "details": first.details,
            "alert_count": count,
        }
        for service_id, first, count in runs
    ]
    dialect = _dialect()
    arrays = as_arrays(dialect, len(rows), len(_TRIGGER_COLUMNS) + 2 + len(_TRIGGER_CONSTANTS))
    if arrays:
        params = rows_as(arrays, rows, _TRIGGER_COLUMNS, now=now)
    else:  # one compiled statement, many parameter sets: multi-row VALUES in this (sorted) order
        params = rows_as(arrays, rows, _TRIGGER_COLUMNS, created_at=now, last_event_at=now, **_TRIGGER_CONSTANTS)
    stmt = _trigger_upsert(dialect, arrays)
    counts = {(service_id, first.dedup_key): count for service_id, first, count in runs}
    # A fresh row holds exactly its run's count; an existing one had at least 1 before.
    return {
        (service_id, dedup_key): _Upserted(incident_id, service_id, alerts == counts[(service_id, dedup_key)], *start)
        for incident_id, service_id, dedup_key, alerts, *start in db.session.execute(stmt, params)
    }


def apply_events(events: list[Event]) -> list[Outcome]:
    """Apply `events` in the current transaction (the caller commits); one Outcome per event.

    Events are grouped by (service, dedup key), keeping their order within a key, and keys are
    visited in sorted order, so every transaction takes row locks in the same order (no deadlocks
    between concurrent batches). Keys that only see triggers in this batch are folded into one
    multi-row upsert; keys that also see acknowledge / resolve go one action at a time. The
    incident counter is locked last, for the same reason. The escalation hooks run at the end, in
    processing order, once numbers are assigned.
    """
    now = clock.now()
    outcomes: list[Outcome | None] = [None] * len(events)
    services = services_by_key({e.routing_key for e in events})
    candidates = []
    for i, event in enumerate(events):
        service = services.get(event.routing_key)
        if service is None:
            outcomes[i] = Outcome("unknown_key", event.dedup_key)
        elif service.disabled:
            outcomes[i] = Outcome("disabled", event.dedup_key)
        else:
            candidates.append((i, service[0]))
    # Event rules and grouping (a new list: the caller's events stay as sent, for a retry).
    intake = event_intake.prepare(events, candidates, now)
    events = intake.events
    runnable = []
    for i, service_id in candidates:
        if i in intake.results:
            outcomes[i] = Outcome(intake.results[i], events[i].dedup_key)
        else:
            runnable.append((intake.service_of.get(i, service_id), events[i].dedup_key, i))
    runnable.sort(key=lambda item: (item[0], item[1]))  # stable: order within a key is kept

    applying = _Applying(events, outcomes, now, services.values())
    pending: list[tuple[int, list[int]]] = []  # trigger-only keys waiting for one bulk upsert
    for (service_id, _key), items in groupby(runnable, key=lambda item: (item[0], item[1])):
        indexes = [item[2] for item in items]
        if all(events[i].action == "trigger" for i in indexes):
            pending.append((service_id, indexes))
            continue
        applying.triggers(pending)  # keep the sorted lock order
        pending = []
        for action, same in groupby(indexes, key=lambda i: events[i].action):
            run = list(same)
            if action == "trigger":
                applying.triggers([(service_id, run)])
            else:
                applying.transition(service_id, action, run)
    applying.triggers(pending)
    intake.record(now)
    applying.finish()
    return outcomes  # type: ignore[return-value]


class _Applying:
    """The state of one apply_events() call: outcomes, loaded incidents, deferred work."""

    def __init__(self, events: list[Event], outcomes: list, now: datetime, services: Iterable[KeyedService]):
        self.events = events
        self.outcomes = outcomes
        self.now = now
        # Each service's urgency setting now (support hours looked up once per batch, no query).
        self.urgency_settings = {s.id: urgency.setting_at(s.urgency, s.support_hours, now) for s in services}
        self.opened: list[_Upserted] = []  # the incidents this batch opened, in order
        self.hooks: incidents.Deferred = []  # what acknowledge / resolve left for the end
        self.loaded: dict[int, Incident] = {}  # incidents an action of this batch loaded (ORM)
        self.entries: list[dict[str, Any]] = []  # timeline entries not written yet, in order

    def triggers(self, runs: list[tuple[int, list[int]]]) -> None:
        if not runs:
            return
        db.session.flush()
        events = self.events
        first_events = [(service_id, events[ix[0]], len(ix)) for service_id, ix in runs]
        routed = {service_id for service_id, _ in runs} - set(self.urgency_settings)
        if routed:  # an event rule routed events to services no key of the batch named: one query
            query = select(Service.id, Service.urgency, Service.support_hours).where(Service.id.in_(routed))
            for service_id, setting, hours in db.session.execute(query):
                self.urgency_settings[service_id] = urgency.setting_at(setting, hours, self.now)
        result = _upsert_triggers(first_events, self.now, self.urgency_settings)
        entries = self.entries  # in order: a new incident's trigger before its duplicates
        for service_id, indexes in runs:
            first = events[indexes[0]]
            row = result[(service_id, first.dedup_key)]
            start = 0
            if row.is_new:
                message = f"Triggered via {_VIA[first.via]}: {first.summary}"
                entries.append(_entry(row.id, self.now, "trigger", message, first))
                self.opened.append(row)
                self.outcomes[indexes[0]] = Outcome("opened", first.dedup_key, row.id)
                start = 1
            elif row.id in self.loaded:
                db.session.expire(self.loaded[row.id], ["alert_count", "last_event_at"])
            for i in indexes[start:]:
                event = events[i]
                self.outcomes[i] = Outcome("deduplicated", event.dedup_key, row.id)
                message = f"Another alert via {_VIA[event.via]}: {event.summary}"
                entries.append(_entry(row.id, self.now, "duplicate", message, event))

    def write_entries(self) -> None:
        """Write the timeline entries collected so far: one many-row Core INSERT (no ORM objects,
        `_entries_insert`), before anything the ORM adds to a timeline, so that the order of the
        entries is kept. Their ids are not fetched back (measured: a third less CPU for a few rows)."""
        if self.entries:
            arrays = as_arrays(_dialect(), len(self.entries), len(_ENTRY_COLUMNS) + 1)  # + the actor
            db.session.execute(_entries_insert(arrays), rows_as(arrays, self.entries, _ENTRY_COLUMNS))
            self.entries = []

    def transition(self, service_id: int, action: str, indexes: list[int]) -> None:
        """Acknowledge or resolve the open incident of this key, through openduty.incidents."""
        self.write_entries()
        first = self.events[indexes[0]]
        incident = db.session.scalar(
            select(Incident)
            .where(Incident.service_id == service_id, Incident.dedup_key == first.dedup_key, OPEN_PREDICATE)
            .with_for_update()
        )
        for i in indexes:
            event = self.events[i]
            done = False
            if incident is not None:
                self.loaded[incident.id] = incident
                message = f"{action.capitalize()}d via {_VIA[event.via]}."
                act = incidents.acknowledge if action == "acknowledge" else incidents.resolve
                done = act(incident, by=None, channel="event", message=message, defer=self.hooks)
            result = ("acknowledged" if action == "acknowledge" else "resolved") if done else "ignored"
            self.outcomes[i] = Outcome(result, event.dedup_key, incident.id if incident is not None else None)

    def finish(self) -> None:
        """Number the new incidents and start their escalation, write the timeline, then run what
        acknowledge / resolve deferred (after the incidents they act on have started)."""
        if self.opened:
            self._start_opened()
        self.write_entries()
        for hook, incident in self.hooks:
            hook(incident)

    def _start_opened(self) -> None:
        """One UPDATE gives the new rows their numbers and first escalation (openduty.incident_start);
        one an action of this batch loaded as an ORM object starts through the ORM's hook instead."""
        first_number = next_incident_numbers(len(self.opened))
        now = clock.now()
        maintenance = {row.service_id: row.maintenance_end for row in self.opened if row.maintenance_end}
        started = []
        for number, row in enumerate(self.opened, start=first_number):
            incident = self.loaded.get(row.id)
            if incident is not None:
                incident.number = number
                escalation.incident_triggered(incident, maintenance)
                continue
            start = first_escalation(row.service_name, row.policy_id, row.maintenance_end, now)
            started.append(
                {"incident_id": row.id, "number": number, "due": start.next_escalation_at, "held": start.in_maintenance}
            )
            if start.entry is not None:
                kind, message = start.entry
                self.entries.append(
                    {"incident_id": row.id, "at": now, "kind": kind, "message": message, "actor_id": None,
                     "channel": "system", "data": {}}
                )  # fmt: skip
            if start.next_escalation_at is not None:
                timers.track_incident_row(row.id)
        if started:
            db.session.execute(_start_update(), started)


_VIA = {
    "events_v2": "Events API v2",
    "events_v1": "Events API v1",
    "openduty": "the Openduty event API",
    "alertmanager": "Alertmanager",
    "generic": "the generic webhook",
    "heartbeat": "a heartbeat",
    "email": "email",
}


def _entry(incident_id: int, now: datetime, kind: str, message: str, event: Event) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "at": now,
        "kind": kind,
        "message": message,
        "actor_id": None,
        "channel": "event",
        "data": {"source": event.source, "severity": event.severity},
    }


@functools.cache
def _start_update():
    """A new incident's number and first escalation, by id (executed with one parameter set per incident)."""
    table = Incident.__table__
    return (
        update(table)
        .where(table.c.id == bindparam("incident_id"))
        .values(number=bindparam("number"), next_escalation_at=bindparam("due"), in_maintenance=bindparam("held"))
    )
