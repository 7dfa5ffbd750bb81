"""What `GET /metrics` answers: every process's counters (openduty.metrics) and what is read at
scrape time, each in one round trip: open incidents and heartbeats (one grouped query each), and
the RQ queues, registries and workers (one Redis pipeline).

A part that cannot be read (the database or Redis is down) is left out and said so by
`openduty_scrape_ok{part}` = 0; the counters are still answered.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from rq import worker_registration
from sqlalchemy import case, func, select

from openduty import metrics
from openduty.events import OPEN_PREDICATE
from openduty.extensions import db, queues, redis
from openduty.models import Heartbeat, Incident, Integration, Service

log = logging.getLogger(__name__)


def exposition() -> bytes:
    """The Prometheus text format of everything above."""
    state = CollectorRegistry(auto_describe=False)
    state.register(_State())
    counted = metrics.registry() if metrics.multiprocess_mode() else REGISTRY
    return generate_latest(counted) + generate_latest(state)


class _State(Collector):
    """Read at scrape time, in the scraping request's app context."""

    def collect(self) -> Iterator[Metric]:
        ok = GaugeMetricFamily(
            "openduty_scrape_ok", "Whether this scrape could read the part (1) or not (0).", labels=["part"]
        )
        for part, read in (("database", _database), ("redis", _redis)):
            try:
                families = list(read())
            except Exception as exc:  # a part that is down must not cost the counters
                log.warning("/metrics: could not read the %s: %s", part, exc)
                if part == "database":
                    db.session.rollback()
                ok.add_metric([part], 0)
                continue
            ok.add_metric([part], 1)
            yield from families
        yield ok


def _database() -> Iterator[Metric]:
    incidents = GaugeMetricFamily(
        "openduty_open_incidents", "Incidents not resolved, by service and status.", labels=["service", "status"]
    )
    rows = db.session.execute(
        select(Service.name, Incident.status, func.count())
        .join(Service, Service.id == Incident.service_id)
        .where(OPEN_PREDICATE)
        .group_by(Service.name, Incident.status)
    )
    for service, status, count in rows:
        incidents.add_metric([service, status], count)
    yield incidents
    heartbeats = GaugeMetricFamily(
        "openduty_heartbeats",
        "Heartbeat integrations by service and state (waiting, up, missed, paused).",
        labels=["service", "state"],
    )
    state = case((Heartbeat.paused, "paused"), else_=Heartbeat.state)
    rows = db.session.execute(
        select(Service.name, state, func.count())
        .select_from(Heartbeat)
        .join(Integration, Integration.id == Heartbeat.integration_id)
        .join(Service, Service.id == Integration.service_id)
        .group_by(Service.name, state)
    )
    for service, name, count in rows:
        heartbeats.add_metric([service, name], count)
    yield heartbeats
    db.session.rollback()  # end the read transaction


# Per queue: the Redis key of each count, and the metric it goes to.
_QUEUE_PARTS = (
    ("openduty_queue_jobs", "Jobs waiting on the queue, ready to run.", lambda q: q.key, "llen"),
    (
        "openduty_queue_scheduled_jobs",
        "Jobs scheduled for later (escalations, pages, timers, periodic jobs).",
        lambda q: q.scheduled_job_registry.key,
        "zcard",
    ),
    ("openduty_queue_started_jobs", "Jobs running now.", lambda q: q.started_job_registry.key, "zcard"),
    (
        "openduty_queue_failed_jobs",
        "Failed jobs kept in RQ's failed registry (a week), by queue: each one is a job that raised.",
        lambda q: q.failed_job_registry.key,
        "zcard",
    ),
)


def _redis() -> Iterator[Metric]:
    connection = redis.get()
    watched = queues()
    with connection.pipeline(transaction=False) as pipe:
        for q in watched:
            for _, _, key, command in _QUEUE_PARTS:
                getattr(pipe, command)(key(q))
        pipe.scard(worker_registration.REDIS_WORKER_KEYS)
        answers = pipe.execute()
    for index, (name, help_text, _, _) in enumerate(_QUEUE_PARTS):
        family = GaugeMetricFamily(name, help_text, labels=["queue"])
        for position, q in enumerate(watched):
            family.add_metric([q.name], answers[position * len(_QUEUE_PARTS) + index])
        yield family
    yield GaugeMetricFamily("openduty_workers", "RQ workers registered (every machine).", value=answers[-1])
