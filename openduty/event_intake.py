"""Intake: ingest's pre-pass over a batch of events (event rules, time-window grouping), the
suppressed alerts it stores (purged after SUPPRESSED_ALERT_RETENTION_DAYS), and the auto-resolve sweep.

`prepare()` runs before `openduty.events.apply_events()` opens anything: every event goes through
the event rules (openduty.event_rules.evaluate, compiled once into a cached `RuleBook`), then a
trigger sent without a dedup key on a service with a grouping window takes the key of that
service's incident opened within the window. Nothing here queries per event: the rule book is one
cached load (dropped on any change, as the integration-key cache is), grouping one query per
grouped service and batch, and `Prepared.record()` one multi-row insert and one UPDATE per rule.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, delete, func, insert, select, text, update
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, object_session

from openduty import clock, incidents
from openduty.event_rules import RuleBook, ServiceSettings, Verdict, evaluate
from openduty.extensions import db
from openduty.models import EventRule, Incident, Service, SuppressedAlert
from openduty.models.incident import OPEN_SQL

# How many suppressed alerts the service page lists (newest first).
SUPPRESSED_SHOWN = 20
# The auto-resolve sweep resolves at most this many incidents per service and run (a minute apart).
AUTO_RESOLVE_BATCH = 500
OPEN = text(OPEN_SQL)


def event_json(event) -> dict[str, Any]:
    """What a suppressed alert keeps of its event."""
    return {
        "action": event.action,
        "dedup_key": event.dedup_key,
        "summary": event.summary,
        "source": event.source,
        "severity": event.severity,
        "urgency": event.urgency,
        "details": event.details,
        "via": event.via,
    }


@dataclasses.dataclass
class Prepared:
    """The batch after the pre-pass: the events as the rules left them, and what else to do."""

    events: list
    # Event index -> the service it goes to, when a route changed it.
    service_of: dict[int, int] = dataclasses.field(default_factory=dict)
    # Event index -> its outcome when it goes no further: suppressed, dropped, disabled (routed there).
    results: dict[int, str] = dataclasses.field(default_factory=dict)
    matched: dict[int, int] = dataclasses.field(default_factory=dict)  # rule id -> matches in this batch
    suppressed: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def record(self, now: datetime) -> None:
        """Store the suppressed alerts and count the rules' matches (rules in id order: lock order)."""
        if self.suppressed:
            db.session.execute(insert(SuppressedAlert.__table__), [{**row, "at": now} for row in self.suppressed])
        if self.matched:
            rows = [{"rule_id": rule_id, "n": n, "now": now} for rule_id, n in sorted(self.matched.items())]
            db.session.execute(_count_matches(), rows)


@functools.cache
def _count_matches():
    table = EventRule.__table__
    return (
        update(table)
        .where(table.c.id == bindparam("rule_id"))
        .values(match_count=table.c.match_count + bindparam("n"), last_matched_at=bindparam("now"))
    )


def prepare(events: list, candidates: list[tuple[int, int]], now: datetime) -> Prepared:
    """Run the rules and grouping over `candidates` ((event index, service id) of accepted events)."""
    book = rule_book()
    prepared = Prepared(list(events))
    if book.global_rules or book.by_service:
        for i, service_id in candidates:
            if book.global_rules or service_id in book.by_service:
                _apply(prepared, i, evaluate(events[i], service_id, book), service_id, book)
    _group(prepared, candidates, book, now)
    return prepared


def _apply(prepared: Prepared, i: int, verdict: Verdict, service_id: int, book: RuleBook) -> None:
    for step in verdict.steps:
        prepared.matched[step.rule.id] = prepared.matched.get(step.rule.id, 0) + 1
    event = prepared.events[i]
    if verdict.dropped:
        prepared.results[i] = "dropped"
        return
    if verdict.service_id != service_id:
        prepared.service_of[i] = verdict.service_id
        if book.services[verdict.service_id].disabled:
            prepared.results[i] = "disabled"
            return
    if verdict.severity != event.severity or verdict.urgency != event.urgency:
        event = prepared.events[i] = dataclasses.replace(event, severity=verdict.severity, urgency=verdict.urgency)
    if verdict.suppressed:
        prepared.results[i] = "suppressed"
        prepared.suppressed.append(
            {
                "service_id": verdict.service_id,
                "rule_id": verdict.final.id,  # type: ignore[union-attr]
                "summary": event.summary,
                "severity": event.severity,
                "event": event_json(event),
            }
        )


def _group(prepared: Prepared, candidates: list[tuple[int, int]], book: RuleBook, now: datetime) -> None:
    """Keyless triggers on a service with a window join its incident opened within the window (or,
    with none, the first such trigger of the batch)."""
    waiting: dict[int, list[int]] = {}
    for i, service_id in candidates:
        service_id = prepared.service_of.get(i, service_id)
        event = prepared.events[i]
        settings = book.services.get(service_id)
        if event.action != "trigger" or event.dedup_key_given or i in prepared.results or settings is None:
            continue
        if settings.group_window_minutes:
            waiting.setdefault(service_id, []).append(i)
    for service_id, indexes in waiting.items():
        since = now - timedelta(minutes=book.services[service_id].group_window_minutes or 0)
        key = db.session.scalar(_recent_incident_key(), {"service_id": service_id, "since": since})
        key = key or prepared.events[indexes[0]].dedup_key
        for i in indexes:
            prepared.events[i] = dataclasses.replace(prepared.events[i], dedup_key=key)


@functools.cache
def _recent_incident_key():
    return (
        select(Incident.dedup_key)
        .where(Incident.service_id == bindparam("service_id"), OPEN, Incident.created_at >= bindparam("since"))
        .order_by(Incident.created_at.desc(), Incident.id.desc())
        .limit(1)
    )


# --- The rule book cache ----------------------------------------------------------------------------

_generation = 0


def rule_book() -> RuleBook:
    """Every rule compiled, with the services' intake settings: cached per process for
    EVENTS_KEY_CACHE_SECONDS, dropped at once by any ORM write to a rule or a service here (another
    process's change takes effect within that time)."""
    ttl = current_app.config["EVENTS_KEY_CACHE_SECONDS"]
    holder = current_app.extensions.get("openduty_rule_book")
    now = time.monotonic()
    if ttl > 0 and holder is not None and holder[0] == _generation and holder[1] > now:
        return holder[2]
    generation = _generation
    rules = db.session.execute(select(EventRule.__table__)).all()
    services = {
        row.id: ServiceSettings(row.name, row.disabled, row.group_window_minutes)
        for row in db.session.execute(select(Service.id, Service.name, Service.disabled, Service.group_window_minutes))
    }
    book = RuleBook.of(rules, services)
    if ttl > 0:
        current_app.extensions["openduty_rule_book"] = (generation, now + ttl, book)
    return book


def forget_rules() -> None:
    """Drop the cached rule book (in this process)."""
    global _generation
    _generation += 1


def _forget_on_write(_mapper, _connection, target) -> None:
    session = object_session(target)
    if session is not None:
        session.info["openduty.event_intake.changed"] = True
    forget_rules()


for _model in (EventRule, Service):
    for _name in ("after_insert", "after_update", "after_delete"):
        sa_event.listen(_model, _name, _forget_on_write)


@sa_event.listens_for(Session, "after_commit")
def _forget_after_commit(session: Session) -> None:
    # Again after the commit: a batch between the flush and the commit may have cached old rows.
    if session.info.pop("openduty.event_intake.changed", False):
        forget_rules()


# --- The service page, and auto-resolve ---------------------------------------------------------------


def suppressed_alerts(service_id: int, limit: int = SUPPRESSED_SHOWN) -> tuple[list[SuppressedAlert], int]:
    """The service's newest suppressed alerts, and how many it has in all."""
    query = select(SuppressedAlert).where(SuppressedAlert.service_id == service_id)
    latest = list(db.session.scalars(query.order_by(SuppressedAlert.at.desc(), SuppressedAlert.id.desc()).limit(limit)))
    total = db.session.scalar(select(func.count()).where(SuppressedAlert.service_id == service_id)) or 0
    return latest, total


def purge_suppressed(now: datetime | None = None) -> int:
    """Delete suppressed alerts older than SUPPRESSED_ALERT_RETENTION_DAYS (0 keeps them); returns how many."""
    days = current_app.config["SUPPRESSED_ALERT_RETENTION_DAYS"]
    if not days:
        return 0
    cutoff = (now or clock.now()) - timedelta(days=days)
    return db.session.execute(delete(SuppressedAlert).where(SuppressedAlert.at < cutoff)).rowcount or 0


def auto_resolve() -> int:
    """Resolve every open incident whose service auto-resolves and that had no new alert for that
    many hours; the caller commits. One index-backed query per such service (open incidents by
    service and last alert), then the rows are locked and checked again."""
    now = clock.now()
    query = select(Service.id, Service.auto_resolve_hours).where(Service.auto_resolve_hours.is_not(None))
    hours_of: dict[int, int] = {service_id: hours for service_id, hours in db.session.execute(query)}
    ids: list[int] = []
    for service_id, hours in hours_of.items():
        quiet = select(Incident.id).where(
            Incident.service_id == service_id, OPEN, Incident.last_event_at < now - timedelta(hours=hours)
        )
        ids += db.session.scalars(quiet.order_by(Incident.last_event_at).limit(AUTO_RESOLVE_BATCH))
    resolved = 0
    for incident in incidents.lock(ids) if ids else []:
        hours = hours_of[incident.service_id]
        if incident.is_open and incident.last_event_at < now - timedelta(hours=hours):
            message = f"Resolved automatically: no new alert for {hours} hour{'s' if hours != 1 else ''}."
            resolved += incidents.resolve(incident, by=None, channel="system", message=message)
    return resolved
