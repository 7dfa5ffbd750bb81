"""Ingest: every inbound format is parsed into `Event`s, and one code path applies them.

- One parser per format (`parse_v2`, `parse_v1`, `parse_legacy`, `parse_alertmanager`,
  `parse_generic`) validates the body and returns Events, or raises `InvalidEvent` naming every
  problem.
- `apply_events()` applies a list of Events inside the current transaction: a trigger opens an
  incident or folds into the open one with the same (service, dedup key) through one
  INSERT ... ON CONFLICT DO UPDATE on the partial unique index (so races cannot open two), and
  acknowledge / resolve act on the open incident through the same model actions the web uses.
- `submit()` is what the endpoints call. It hands the events to this process's `Batcher`, which
  applies everything that arrived meanwhile in one transaction (group commit) and wakes each
  request only after that commit; it never answers before the events are durable, and a request
  that gave up waiting (503) is never committed afterwards.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from typing import Any

from flask import Flask, current_app
from sqlalchemy import bindparam, insert, select, text
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, joinedload, object_session

from openduty import clock, escalation
from openduty.extensions import db, redis
from openduty.models import Counter, Incident, Integration, LogEntry, Service
from openduty.models.incident import SEVERITIES
from openduty.models.service import INTEGRATION_KEY_LENGTH
from openduty.transactions import begin_write
from openduty.validation import unstorable, unstorable_path

log = logging.getLogger(__name__)


def setting(name: str) -> Any:
    """An EVENTS_* setting (config.py documents each one)."""
    return current_app.config[name]


ACTIONS = ("trigger", "acknowledge", "resolve")
# PagerDuty's limits, so a client that works there works here.
MAX_BODY_BYTES = 512 * 1024
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255
MAX_SHORT_FIELD = 255
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
    source: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    # Which endpoint it came through, for the timeline (events_v2, events_v1, openduty, ...).
    via: str = "events_v2"


@dataclass(slots=True)
class Outcome:
    """What applying one Event did."""

    # opened | deduplicated | acknowledged | resolved | ignored | unknown_key | disabled
    result: str
    dedup_key: str
    incident_id: int | None = None

    @property
    def accepted(self) -> bool:
        return self.result not in ("unknown_key", "disabled")


class InvalidEvent(Exception):
    """The body is not a valid event; `errors` names each problem."""

    def __init__(self, errors: list[str], status: int = 400):
        super().__init__("; ".join(errors))
        self.errors = errors
        self.status = status


# --- Parsers ------------------------------------------------------------------------------------


class _Fields:
    """Collects every problem of one body, PagerDuty-style ("'payload.summary' is missing")."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def text(self, obj: dict, name: str, *, path: str | None = None, max_length: int, required: bool) -> str:
        label = path or name
        value = obj.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.errors.append(f"'{label}' is missing or blank.")
            return ""
        if not isinstance(value, str):
            self.errors.append(f"'{label}' must be a string.")
            return ""
        if len(value) > max_length:
            self.errors.append(f"'{label}' is too long ({len(value)} characters; at most {max_length}).")
            return ""
        return value.strip()

    def choice(self, obj: dict, name: str, choices: tuple[str, ...], *, path: str | None = None, default=None):
        label = path or name
        value = obj.get(name, default)
        if value is None:
            self.errors.append(f"'{label}' is missing; use one of {', '.join(choices)}.")
            return None
        if value not in choices:
            self.errors.append(f"'{label}' is invalid ({_short(value)}); use one of {', '.join(choices)}.")
            return None
        return value

    def timestamp(self, obj: dict, name: str, *, path: str) -> str | None:
        value = obj.get(name)
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            self.errors.append(f"'{path}' must be an ISO 8601 timestamp string.")
            return None
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            self.errors.append(f"'{path}' is not an ISO 8601 timestamp ({_short(value)}).")
            return None
        return value

    def list_of_objects(self, obj: dict, name: str, required_key: str) -> list | None:
        value = obj.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.errors.append(f"'{name}' must be a list of objects.")
            return None
        for i, item in enumerate(value):
            if not isinstance(item.get(required_key), str) or not item[required_key].strip():
                self.errors.append(f"'{name}[{i}].{required_key}' is missing or not a string.")
                return None
        return value

    def raise_if_any(self) -> None:
        if self.errors:
            raise InvalidEvent(self.errors)


def _short(value: Any) -> str:
    text_ = json.dumps(value, default=str)
    return text_ if len(text_) <= 40 else text_[:37] + "..."


def _require_object(body: Any) -> dict:
    """The body as an object whose every text (values and keys) a database can store.

    Checked up front, for the whole body: a NUL or a lone surrogate reaching the driver fails the
    transaction that other requests' events share, so it is refused here, naming where it is.
    """
    if not isinstance(body, dict):
        raise InvalidEvent(["The event must be a JSON object."])
    found = unstorable_path(body)
    if found:
        where, reason = found
        raise InvalidEvent([f"'{where}' {reason}; remove it."])
    return body


def _url_key(key: str) -> str:
    """An integration key taken from the URL: refused before any lookup if it cannot be one of ours."""
    if len(key) > INTEGRATION_KEY_LENGTH:
        raise InvalidEvent(
            [f"The integration key in the URL is too long ({len(key)} characters; keys have {INTEGRATION_KEY_LENGTH})."]
        )
    reason = unstorable(key)
    if reason:
        raise InvalidEvent([f"The integration key in the URL {reason}."])
    return key


def new_dedup_key() -> str:
    return uuid.uuid4().hex


def parse_v2(body: Any) -> Event:
    """PagerDuty Events API v2 (`POST /v2/enqueue`)."""
    body = _require_object(body)
    f = _Fields()
    routing_key = f.text(body, "routing_key", max_length=INTEGRATION_KEY_LENGTH, required=True)
    action = f.choice(body, "event_action", ACTIONS)
    dedup_key = f.text(body, "dedup_key", max_length=MAX_DEDUP_KEY, required=action in ("acknowledge", "resolve"))
    summary, source, severity, details = "", "", "critical", {}
    if action == "trigger":
        payload = body.get("payload")
        if not isinstance(payload, dict):
            f.errors.append("'payload' is missing or not an object.")
        else:
            summary = f.text(payload, "summary", path="payload.summary", max_length=MAX_SUMMARY, required=True)
            source = f.text(payload, "source", path="payload.source", max_length=MAX_SHORT_FIELD, required=True)
            severity = f.choice(payload, "severity", SEVERITIES, path="payload.severity") or "critical"
            timestamp = f.timestamp(payload, "timestamp", path="payload.timestamp")
            for name in ("component", "group", "class"):
                value = f.text(payload, name, path=f"payload.{name}", max_length=MAX_SHORT_FIELD, required=False)
                if value:
                    details[name] = value
            if timestamp:
                details["timestamp"] = timestamp
            if payload.get("custom_details") is not None:
                details["custom_details"] = payload["custom_details"]
        links = f.list_of_objects(body, "links", "href")
        images = f.list_of_objects(body, "images", "src")
        if links:
            details["links"] = links
        if images:
            details["images"] = images
        for name in ("client", "client_url"):
            value = f.text(body, name, max_length=MAX_SUMMARY, required=False)
            if value:
                details[name] = value
    f.raise_if_any()
    return Event(routing_key, action, dedup_key or new_dedup_key(), summary, severity, source, details, "events_v2")


def parse_v1(body: Any, via: str = "events_v1") -> Event:
    """PagerDuty Events API v1 (`POST /generic/2010-04-15/create_event.json`)."""
    body = _require_object(body)
    f = _Fields()
    routing_key = f.text(body, "service_key", max_length=INTEGRATION_KEY_LENGTH, required=True)
    action = f.choice(body, "event_type", ACTIONS)
    dedup_key = f.text(body, "incident_key", max_length=MAX_DEDUP_KEY, required=action in ("acknowledge", "resolve"))
    description = f.text(body, "description", max_length=MAX_SUMMARY, required=action == "trigger")
    details: dict[str, Any] = {}
    if body.get("details") not in (None, ""):
        details["custom_details"] = body["details"]
    contexts = f.list_of_objects(body, "contexts", "type")
    if contexts:
        details["links"] = [{"href": c["href"], "text": c.get("text", c["href"])} for c in contexts if c.get("href")]
        details["images"] = [
            {"src": c["src"], "href": c.get("href"), "alt": c.get("alt")} for c in contexts if c.get("src")
        ]
    for name in ("client", "client_url"):
        value = f.text(body, name, max_length=MAX_SUMMARY, required=False)
        if value:
            details[name] = value
    f.raise_if_any()
    return Event(routing_key, action, dedup_key or new_dedup_key(), description, "critical", "", details, via)


def parse_legacy(body: Any) -> Event:
    """The original Openduty `POST /api/create_event` (JSON or form fields, as v1)."""
    body = _require_object(body)
    if isinstance(body.get("details"), str):
        # The old form sent details as free text; keep it readable.
        body = {**body, "details": {"text": body["details"]}}
    return parse_v1(body, via="openduty")


_ALERTMANAGER_SEVERITIES = {"page": "critical", "high": "error", "medium": "warning", "low": "info", "none": "info"}


def parse_alertmanager(key: str, body: Any) -> list[Event]:
    """Prometheus Alertmanager webhook (version 4): one Event per alert, keyed by fingerprint."""
    key = _url_key(key)
    body = _require_object(body)
    alerts = body.get("alerts")
    if not isinstance(alerts, list):
        raise InvalidEvent(["'alerts' is missing or not a list (is this an Alertmanager webhook, version 4?)."])
    f = _Fields()
    events = []
    for i, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            f.errors.append(f"'alerts[{i}]' must be an object.")
            continue
        labels = alert.get("labels") or {}
        annotations = alert.get("annotations") or {}
        if not isinstance(labels, dict) or not isinstance(annotations, dict):
            f.errors.append(f"'alerts[{i}].labels' and '.annotations' must be objects.")
            continue
        status = alert.get("status")
        if status not in ("firing", "resolved"):
            f.errors.append(f"'alerts[{i}].status' must be firing or resolved.")
            continue
        fingerprint = alert.get("fingerprint")
        if not isinstance(fingerprint, str) or not fingerprint:
            # Older senders: derive a stable key from the label set, as Alertmanager does.
            fingerprint = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]
        name = str(labels.get("alertname") or "Alert")
        summary = str(annotations.get("summary") or name)[:MAX_SUMMARY]
        severity = str(labels.get("severity", "")).lower()
        severity = severity if severity in SEVERITIES else _ALERTMANAGER_SEVERITIES.get(severity, "critical")
        details: dict[str, Any] = {"labels": labels, "annotations": annotations}
        for name_ in ("startsAt", "endsAt", "generatorURL"):
            if alert.get(name_):
                details[name_] = alert[name_]
        for name_ in ("receiver", "externalURL", "groupKey"):
            if body.get(name_):
                details[name_] = body[name_]
        if alert.get("generatorURL"):
            details["links"] = [{"href": alert["generatorURL"], "text": "Source (Prometheus)"}]
        source = str(labels.get("instance") or labels.get("job") or "")[:MAX_SHORT_FIELD]
        action = "trigger" if status == "firing" else "resolve"
        dedup_key = fingerprint[:MAX_DEDUP_KEY]
        events.append(Event(key, action, dedup_key, summary, severity, source, details, "alertmanager"))
    f.raise_if_any()
    return events


def parse_generic(key: str, body: Any) -> Event:
    """The plain JSON webhook: `{"summary", "dedup_key", "action", "severity", "details", "source"}`."""
    key = _url_key(key)
    body = _require_object(body)
    f = _Fields()
    action = f.choice(body, "action", ACTIONS, default="trigger")
    dedup_key = f.text(body, "dedup_key", max_length=MAX_DEDUP_KEY, required=action in ("acknowledge", "resolve"))
    summary = f.text(body, "summary", max_length=MAX_SUMMARY, required=action == "trigger")
    severity = f.choice(body, "severity", SEVERITIES, default="critical") or "critical"
    source = f.text(body, "source", max_length=MAX_SHORT_FIELD, required=False)
    details: dict[str, Any] = {}
    if body.get("details") is not None:
        if not isinstance(body["details"], dict):
            f.errors.append("'details' must be an object.")
        else:
            details["custom_details"] = body["details"]
    f.raise_if_any()
    return Event(key, action, dedup_key or new_dedup_key(), summary, severity, source, details, "generic")


# --- Applying -----------------------------------------------------------------------------------


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


@functools.cache
def _trigger_upsert(dialect: str):
    """INSERT ... ON CONFLICT (service_id, dedup_key) WHERE open DO UPDATE, built once per dialect."""
    table = Incident.__table__
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.service_id, table.c.dedup_key],
        index_where=OPEN_PREDICATE,
        set_={
            "alert_count": table.c.alert_count + stmt.excluded.alert_count,
            "last_event_at": stmt.excluded.last_event_at,
        },
    ).returning(table.c.id, table.c.service_id, table.c.dedup_key, table.c.alert_count, sort_by_parameter_order=True)


def _upsert_triggers(runs: list[tuple[int, Event, int]], now: datetime) -> dict[tuple[int, str], tuple[int, bool]]:
    """Open or fold into incidents for runs of triggers, in one INSERT ... ON CONFLICT DO UPDATE.

    `runs` holds (service id, first event, how many triggers) with each (service, dedup key) at
    most once (PostgreSQL refuses to update one row twice in one statement). Returns, per key,
    the incident id and whether this statement opened it.
    """
    rows = [
        {
            "service_id": service_id,
            "dedup_key": first.dedup_key,
            "status": "triggered",
            "summary": first.summary,
            "severity": first.severity,
            "source": first.source,
            "details": first.details,
            "alert_count": count,
            "created_at": now,
            "last_event_at": now,
            "epoch": 0,
            "escalation_level": 0,
            "escalation_loop": 0,
        }
        for service_id, first, count in runs
    ]
    # One compiled statement, executed with many parameter sets: SQLAlchemy's "insertmanyvalues"
    # sends them as multi-row VALUES in as few round trips as it can, in this (sorted) order.
    stmt = _trigger_upsert(_dialect())
    counts = {(service_id, first.dedup_key): count for service_id, first, count in runs}
    # A fresh row holds exactly its run's count; an existing one had at least 1 before.
    return {
        (service_id, dedup_key): (incident_id, alert_count == counts[(service_id, dedup_key)])
        for incident_id, service_id, dedup_key, alert_count in db.session.execute(stmt, rows)
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
    services = _services_by_key({e.routing_key for e in events})
    runnable = []
    for i, event in enumerate(events):
        service = services.get(event.routing_key)
        if service is None:
            outcomes[i] = Outcome("unknown_key", event.dedup_key)
        elif service[1]:
            outcomes[i] = Outcome("disabled", event.dedup_key)
        else:
            runnable.append((service[0], event.dedup_key, i))
    runnable.sort(key=lambda item: (item[0], item[1]))  # stable: order within a key is kept

    batch = _Batch(events, outcomes, now)
    pending: list[tuple[int, list[int]]] = []  # trigger-only keys waiting for one bulk upsert
    for (service_id, _key), items in groupby(runnable, key=lambda item: (item[0], item[1])):
        indexes = [item[2] for item in items]
        if all(events[i].action == "trigger" for i in indexes):
            pending.append((service_id, indexes))
            continue
        batch.triggers(pending)  # keep the sorted lock order
        pending = []
        for action, same in groupby(indexes, key=lambda i: events[i].action):
            run = list(same)
            if action == "trigger":
                batch.triggers([(service_id, run)])
            else:
                batch.transition(service_id, action, run)
    batch.triggers(pending)
    batch.finish()
    return outcomes  # type: ignore[return-value]


class _Batch:
    """The state of one apply_events() call: outcomes, loaded incidents, deferred work."""

    def __init__(self, events: list[Event], outcomes: list, now: datetime):
        self.events = events
        self.outcomes = outcomes
        self.now = now
        self.opened: list[Incident] = []
        self.hooks: list[tuple[Any, Incident]] = []
        self.loaded: dict[int, Incident] = {}

    def triggers(self, runs: list[tuple[int, list[int]]]) -> None:
        if not runs:
            return
        db.session.flush()
        events = self.events
        result = _upsert_triggers([(service_id, events[ix[0]], len(ix)) for service_id, ix in runs], self.now)
        new_ids = [incident_id for incident_id, is_new in result.values() if is_new]
        if new_ids:
            # With their services: the escalation hook reads them (no lazy load per incident).
            for incident in db.session.scalars(_new_incidents_query(), {"ids": new_ids}):
                self.loaded[incident.id] = incident
        entries = []  # timeline entries, in order: a new incident's trigger before its duplicates
        for service_id, indexes in runs:
            first = events[indexes[0]]
            incident_id, is_new = result[(service_id, first.dedup_key)]
            start = 0
            if is_new:
                incident = self.loaded[incident_id]
                message = f"Triggered via {_VIA[first.via]}: {first.summary}"
                entries.append(self._entry(incident_id, "trigger", message, first))
                self.opened.append(incident)
                self.hooks.append((escalation.incident_triggered, incident))
                self.outcomes[indexes[0]] = Outcome("opened", first.dedup_key, incident_id)
                start = 1
            elif incident_id in self.loaded:
                db.session.expire(self.loaded[incident_id], ["alert_count", "last_event_at"])
            for i in indexes[start:]:
                event = events[i]
                self.outcomes[i] = Outcome("deduplicated", event.dedup_key, incident_id)
                message = f"Another alert via {_VIA[event.via]}: {event.summary}"
                entries.append(self._entry(incident_id, "duplicate", message, event))
        # One multi-row Core INSERT (no ORM objects), now, so entries written later come after.
        db.session.execute(insert(LogEntry.__table__), entries)

    def _entry(self, incident_id: int, kind: str, message: str, event: Event) -> dict[str, Any]:
        return {
            "incident_id": incident_id,
            "at": self.now,
            "kind": kind,
            "message": message,
            "actor_id": None,
            "channel": "event",
            "data": {"source": event.source, "severity": event.severity},
        }

    def transition(self, service_id: int, action: str, indexes: list[int]) -> None:
        """Acknowledge or resolve the open incident of this key, through the model's actions."""
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
                if action == "acknowledge":
                    done = incident.acknowledge(by=None, channel="event", message=message, notify=False)
                    hook = escalation.incident_acknowledged
                else:
                    done = incident.resolve(by=None, channel="event", message=message, notify=False)
                    hook = escalation.incident_resolved
                if done:
                    self.hooks.append((hook, incident))
            result = ("acknowledged" if action == "acknowledge" else "resolved") if done else "ignored"
            self.outcomes[i] = Outcome(result, event.dedup_key, incident.id if incident is not None else None)

    def finish(self) -> None:
        if self.opened:
            first_number = next_incident_numbers(len(self.opened))
            for offset, incident in enumerate(self.opened):
                incident.number = first_number + offset
        for hook, incident in self.hooks:
            hook(incident)


_VIA = {
    "events_v2": "Events API v2",
    "events_v1": "Events API v1",
    "openduty": "the Openduty event API",
    "alertmanager": "Alertmanager",
    "generic": "the generic webhook",
}


def _services_by_key(keys: set[str]) -> dict[str, tuple[int, bool]]:
    """Integration key -> (service id, service disabled), from the key cache or one query.

    Known keys are cached for EVENTS_KEY_CACHE_SECONDS per process (unknown keys never are, so a
    new integration works at once). A change to a service or integration made through the ORM in
    this process clears the cache at once; one made in another process (disabling or deleting a
    service, regenerating or deleting a key) takes effect here within the TTL.
    """
    ttl = setting("EVENTS_KEY_CACHE_SECONDS")
    found: dict[str, tuple[int, bool]] = {}
    cache = _key_cache() if ttl > 0 else None
    now = time.monotonic()
    missing = keys
    if cache is not None:
        missing = set()
        for key in keys:
            entry = cache.get(key)
            if entry is not None and entry[0] > now:
                found[key] = entry[1]
            else:
                missing.add(key)
    if missing:
        rows = db.session.execute(_services_query(), {"keys": list(missing)})
        for key, service_id, disabled in rows:
            found[key] = (service_id, disabled)
            if cache is not None:
                cache[key] = (now + ttl, (service_id, disabled))
    return found


def key_refusal(routing_key: str) -> str | None:
    """Why events with this key would be refused ("unknown_key", "disabled"), or None if they would not.

    For a request that carries no events (an Alertmanager webhook with no alerts): its key is still
    checked, so a wrong key is never answered with success.
    """
    service = _services_by_key({routing_key}).get(routing_key)
    if service is None:
        return "unknown_key"
    return "disabled" if service[1] else None


@functools.cache
def _new_incidents_query():
    ids = bindparam("ids", expanding=True)
    return select(Incident).options(joinedload(Incident.service)).where(Incident.id.in_(ids))


@functools.cache
def _services_query():
    return (
        select(Integration.key, Service.id, Service.disabled)
        .join(Service, Service.id == Integration.service_id)
        .where(Integration.key.in_(bindparam("keys", expanding=True)))
    )


# Integration key -> (expires at, (service id, disabled)), per app; cleared whenever the ORM
# writes a Service or an Integration in this process (the generation says so).
_key_cache_generation = 0


def _key_cache() -> dict[str, tuple[float, tuple[int, bool]]]:
    holder = current_app.extensions.get("openduty_event_keys")
    if holder is None or holder[0] != _key_cache_generation:
        holder = current_app.extensions["openduty_event_keys"] = (_key_cache_generation, {})
    return holder[1]


def forget_keys() -> None:
    """Drop every cached integration key (in this process)."""
    global _key_cache_generation
    _key_cache_generation += 1


def _forget_keys_on_write(_mapper, _connection, target) -> None:
    session = object_session(target)
    if session is not None:
        session.info["openduty.events.keys_changed"] = True
    forget_keys()


for _model in (Service, Integration):
    for _name in ("after_insert", "after_update", "after_delete"):
        sa_event.listen(_model, _name, _forget_keys_on_write)


@sa_event.listens_for(Session, "after_commit")
def _forget_keys_after_commit(session: Session) -> None:
    # Again after the commit: a lookup between the flush and the commit may have cached old rows.
    if session.info.pop("openduty.events.keys_changed", False):
        forget_keys()


def discard_transaction() -> None:
    """Roll the session's transaction back; if even that fails, drop the session (and its connection)."""
    try:
        db.session.rollback()
    except Exception:
        log.warning("Rollback failed; discarding the session", exc_info=True)
        db.session.remove()


def _retryable(exc: DBAPIError) -> bool:
    """A deadlock, a serialisation failure, a busy SQLite, or a lost connection: worth another try."""
    code = getattr(exc.orig, "sqlstate", None)
    return code in ("40P01", "40001") or "database is locked" in str(exc.orig) or exc.connection_invalidated


def _commit_may_have_landed(exc: BaseException) -> bool:
    """Whether a COMMIT that raised may still have been applied: only if its answer never came back."""
    return not isinstance(exc, DBAPIError) or exc.connection_invalidated or isinstance(exc, InterfaceError)


# What a 503 asks the sender to wait before retrying.
RETRY_AFTER_SECONDS = 5


class NotStored(Exception):
    """The events were not stored and never will be from this attempt: the sender may safely retry."""


class OutcomeUnknown(Exception):
    """The COMMIT was sent but its answer was lost (the connection broke): the events may be stored."""


class GaveUp(Exception):
    """A request of the batch being applied gave up waiting before its COMMIT (see `Batcher`)."""


def unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot take events now (down, frozen, locked, out of
    connections) rather than that something is wrong with them: answered 503, retry later."""
    return isinstance(exc, NotStored | OperationalError | InterfaceError | DisconnectionError | PoolTimeout)


class Claim:
    """The commit gate of one transaction: `claim()` just before COMMIT says whether to go on.

    The Batcher's gate refuses when a request of the batch already gave up (it was answered 503,
    so its events must not be committed); otherwise it marks every request as committing, after
    which none may give up: each waits for the definitive outcome. `release()` undoes the mark when
    the COMMIT definitely failed (so the request may give up again while the retry runs).
    """

    def claim(self) -> bool:
        return True

    def release(self) -> None:
        pass


def apply_and_commit(events: list[Event], attempts: int = 3, gate: Claim | None = None) -> list[Outcome]:
    """Apply `events` in one transaction and commit; retried on a deadlock, serialisation failure,
    busy database or lost connection. Raises `GaveUp` (nothing stored) if `gate` refuses.

    Any failure rolls the whole transaction back before anything else runs in the session. If a
    COMMIT's answer was lost, the retry applies the same events again (their dedup keys are fixed
    at parse time, so a trigger that did land folds into its own incident); if no attempt then
    succeeds, `OutcomeUnknown` says the events may be stored. A foreign-key violation may mean a
    cached key's service was just deleted by another process: the key cache is dropped and the
    events are applied once more (then the key is unknown).
    """
    gate = gate or Claim()
    maybe_landed: BaseException | None = None
    for attempt in range(attempts):
        committing = False
        try:
            begin_write()
            outcomes = apply_events(events)
            if not gate.claim():
                raise GaveUp()
            committing = True
            db.session.commit()
            return outcomes
        except BaseException as exc:
            # Whatever failed (the driver's UnicodeEncodeError is no DBAPIError), nothing of this
            # attempt may stay in the session: a retry, or the next batch, starts clean.
            discard_transaction()
            if committing:
                if _commit_may_have_landed(exc):
                    maybe_landed = exc
                else:
                    gate.release()
            retry = isinstance(exc, DBAPIError) and attempt < attempts - 1
            stale_key = isinstance(exc, IntegrityError) and setting("EVENTS_KEY_CACHE_SECONDS") > 0
            if stale_key:
                forget_keys()
            if not (retry and (stale_key or _retryable(exc))):
                if maybe_landed is not None and isinstance(exc, Exception):
                    raise OutcomeUnknown(str(maybe_landed)) from exc
                raise
            time.sleep(0.005 * (attempt + 1))
    raise AssertionError("unreachable")


# --- Group commit -------------------------------------------------------------------------------

# A request's events, from the queue to their outcome. QUEUED until the batcher is about to commit
# them (COMMITTING) or the request gives up first (GAVE_UP: the batcher skips, or rolls back and
# re-applies the batch without them). Only the batcher's lock moves an item between states.
QUEUED, COMMITTING, GAVE_UP = "queued", "committing", "gave up"


class _Pending:
    __slots__ = ("events", "outcomes", "error", "done", "state")

    def __init__(self, events: list[Event]):
        self.events = events
        self.outcomes: list[Outcome] | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.state = QUEUED


class _BatchClaim(Claim):
    def __init__(self, lock: threading.Lock, items: list[_Pending]):
        self.lock = lock
        self.items = items

    def claim(self) -> bool:
        with self.lock:
            if any(p.state == GAVE_UP for p in self.items):
                return False
            for p in self.items:
                p.state = COMMITTING
            return True

    def release(self) -> None:
        with self.lock:
            for p in self.items:
                p.state = QUEUED


class Batcher:
    """One per process and app: applies the events of many concurrent requests in one transaction.

    Requests put their events on a queue and wait. A single thread takes everything queued (up to
    EVENTS_BATCH_MAX events, after lingering EVENTS_BATCH_LINGER_MS for more), applies it in one
    transaction, commits, and only then wakes the requests. Under load many events share one
    commit (one fsync); alone, an event waits for nothing but its own transaction. If a batch
    fails for something in the events, it was rolled back whole and each request's events are
    applied alone, so one bad event fails only its own request.

    A request waits EVENTS_COMMIT_TIMEOUT_SECONDS for its COMMIT to begin; if it has not (the
    database is frozen, locked or slow), the request gives up and answers 503, and its events are
    never committed: the batcher checks, under one lock, that nobody gave up before it commits,
    and otherwise rolls back and applies the batch again without them. Once the COMMIT has begun a
    request cannot give up; it waits for the outcome. So a 503 always means "not stored".
    The thread exits after a while idle and is restarted on demand (also after a fork).
    """

    def __init__(self, app: Flask):
        self.app = app
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def submit(self, events: list[Event], timeout: float) -> list[Outcome]:
        pending = _Pending(events)
        with self._lock:
            self._queue.put(pending)
            if self._thread is None or not self._thread.is_alive() or self._pid != _getpid():
                self._pid = _getpid()
                self._thread = threading.Thread(target=self._run, name="openduty-event-batcher", daemon=True)
                self._thread.start()
        if not pending.done.wait(timeout):
            with self._lock:
                if pending.state == QUEUED:
                    pending.state = GAVE_UP
                    raise NotStored(f"the database did not take the events within {timeout:g} seconds")
            pending.done.wait()  # its COMMIT has begun: only its outcome may answer
        if pending.error is not None:
            raise pending.error
        assert pending.outcomes is not None
        return pending.outcomes

    def _run(self) -> None:
        with self.app.app_context():
            max_events = setting("EVENTS_BATCH_MAX")
            linger = setting("EVENTS_BATCH_LINGER_MS") / 1000
            idle = setting("EVENTS_BATCHER_IDLE_SECONDS")
        while True:
            try:
                first = self._queue.get(timeout=idle)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            batch, count = [first], len(first.events)
            deadline = time.monotonic() + linger
            while count < max_events:
                try:
                    remaining = deadline - time.monotonic()
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
                count += len(item.events)
            self._apply(batch)

    def _apply(self, batch: list[_Pending]) -> None:
        try:
            with self.app.app_context():
                try:
                    self._apply_together(batch)
                finally:
                    db.session.remove()
        except Exception as exc:  # a bug here must not leave requests waiting forever
            log.exception("Event batcher failed")
            for p in batch:
                if p.outcomes is None and p.error is None:
                    p.error = exc
        finally:
            for p in batch:
                p.done.set()

    def _waiting(self, items: list[_Pending]) -> list[_Pending]:
        with self._lock:
            return [p for p in items if p.state != GAVE_UP]

    def _apply_together(self, batch: list[_Pending]) -> None:
        while live := self._waiting(batch):
            try:
                outcomes = apply_and_commit([e for p in live for e in p.events], gate=_BatchClaim(self._lock, live))
            except GaveUp:
                continue  # someone gave up while the batch was applied: again, without them
            except Exception as exc:
                if len(live) == 1 or unavailable(exc) or isinstance(exc, OutcomeUnknown):
                    for p in live:  # the database, not one event: the same answer for all
                        p.error = exc
                    return
                log.warning("Event batch of %d requests failed (%s); retrying one by one", len(live), exc)
                discard_transaction()  # (apply_and_commit did; a retry must never ride on it)
                for p in live:
                    self._apply_alone(p)
                return
            for p in live:
                p.outcomes, outcomes = outcomes[: len(p.events)], outcomes[len(p.events) :]
            return

    def _apply_alone(self, pending: _Pending) -> None:
        try:
            pending.outcomes = apply_and_commit(pending.events, gate=_BatchClaim(self._lock, [pending]))
        except GaveUp:
            pass  # its request has answered 503 already
        except Exception as exc:
            pending.error = exc


def _getpid() -> int:
    return os.getpid()


_batchers_lock = threading.Lock()


def submit(events: list[Event]) -> list[Outcome]:
    """Apply `events` durably (group commit, or inline when EVENTS_GROUP_COMMIT is off).

    Returns their outcomes once committed. Raises `NotStored` or a database error for which
    `unavailable()` is true when the events were not stored (retry later), `OutcomeUnknown` when
    they may have been, and anything else for a bug (nothing stored).
    """
    app = current_app._get_current_object()
    if not events:
        return []
    if not setting("EVENTS_GROUP_COMMIT"):
        return apply_and_commit(events)
    batcher = app.extensions.get("openduty_event_batcher")
    if batcher is None:
        with _batchers_lock:
            batcher = app.extensions.setdefault("openduty_event_batcher", Batcher(app))
    return batcher.submit(events, timeout=setting("EVENTS_COMMIT_TIMEOUT_SECONDS"))


# --- Rate limit ---------------------------------------------------------------------------------


def seconds_until_allowed(routing_key: str, count: int = 1) -> int:
    """Count `count` events against the key's window; 0 if allowed, else seconds to wait.

    A fixed window per integration key in Redis (INCRBY + EXPIRE in one round trip). Redis being
    down, or failing in any way, never blocks ingestion: the database, not Redis, is what must not
    lose events.
    """
    limit = setting("EVENTS_RATE_LIMIT")
    if not limit:
        return 0
    window = setting("EVENTS_RATE_WINDOW_SECONDS")
    now = clock.now().timestamp()
    slot = int(now // window)
    # A digest, not the key: bounded size whatever was sent, and no secret in Redis key names.
    digest = hashlib.blake2b(routing_key.encode("utf-8", "backslashreplace"), digest_size=16).hexdigest()
    name = f"openduty:events:rate:{digest}:{slot}"
    try:
        with redis.get().pipeline(transaction=False) as pipe:
            pipe.incrby(name, count)
            pipe.expire(name, window + 1)
            used = pipe.execute()[0]
    except Exception as exc:  # not only RedisError: redis-py raises ValueError on a garbled reply
        log.warning("Event rate limit skipped, Redis is unavailable: %r", exc)
        return 0
    if used <= limit:
        return 0
    return max(1, math.ceil((slot + 1) * window - now))
