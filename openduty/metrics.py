"""The counters every process keeps for `GET /metrics` (Prometheus), and their files.

Each process counts in memory-mapped files under PROMETHEUS_MULTIPROC_DIR (prometheus_client's
multiprocess mode; create_app() sets a default under instance/ before anything imports
prometheus_client), so one scrape of any web process sums the web processes, the run-all worker
and the RQ workers of that machine. Counting is a few memory writes: no query, no Redis round trip.
Every metric has labels, so no file is written before a process counts something.

Each thing is counted in one place: events where the ingest answers (openduty.views.events, the
SMTP listener), notifications where delivery records their outcome, re-arms where reconcile ends.
What is read at scrape time instead (open incidents, heartbeats, queues) is openduty.monitoring.
"""

from __future__ import annotations

import glob
import os
import re
from collections import Counter as Tally
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess, values

DIRECTORY_SETTING = "PROMETHEUS_MULTIPROC_DIR"

EVENTS_ACCEPTED = Counter(
    "openduty_events_accepted",
    "Events stored, by the endpoint (integration kind) they came through and what they did to an incident.",
    ["kind", "result"],
)
EVENTS_REJECTED = Counter(
    "openduty_events_rejected",
    "Events refused (a refused request whose events could not be read counts once), by kind and reason.",
    ["kind", "reason"],
)
INGEST_SECONDS = Histogram(
    "openduty_ingest_seconds",
    "Time to answer an ingest request (parse, rate limit, commit), by kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
NOTIFICATIONS = Counter(
    "openduty_notifications",
    "Delivery outcomes recorded: sent, failed (given up) or retried (a transient failure, tried again), "
    "by channel and purpose (page, resolve, ...).",
    ["channel", "purpose", "outcome"],
)
PAGE_LATENESS = Histogram(
    "openduty_page_lateness_seconds",
    "How long after its due time a page was recorded as sent (retries included), by channel.",
    ["channel"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
)
RECONCILE_REARMED = Counter(
    "openduty_reconcile_rearmed",
    "Jobs reconcile found missing and armed again (escalations, notifications, timers), and interrupted "
    "sends it recovered.",
    ["what"],
)

# A notification row's status once its outcome is recorded, as the outcome counted.
_OUTCOMES = {"sent": "sent", "failed": "failed", "pending": "retried"}


def multiprocess_mode() -> bool:
    """Whether this process counts in files (PROMETHEUS_MULTIPROC_DIR was set before the import)."""
    return values.ValueClass is not values.MutexValue


def registry() -> CollectorRegistry:
    """A registry of what every process of this machine counted (or this process alone, when not
    in multiprocess mode: then the default registry is the one to read, see openduty.monitoring)."""
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged)
    return merged


# prometheus_client's file names: the metric type (gauges with their mode), the pid.
_FILE_NAME = re.compile(r"(counter|histogram|summary|gauge_[a-z]+)_(\d+)\.db")


def wipe_stale_files(directory: str, keep_pid: int) -> int:
    """Remove every process's files but `keep_pid`'s (at a start: what earlier runs counted); how many."""
    removed = 0
    for path in glob.glob(os.path.join(directory, "*.db")):
        name = _FILE_NAME.fullmatch(os.path.basename(path))
        if name and int(name.group(2)) != keep_pid:
            os.remove(path)
            removed += 1
    return removed


def process_exited(pid: int) -> None:
    """prometheus_client's bookkeeping for a process that ended (its live gauges go)."""
    if multiprocess_mode() and os.environ.get(DIRECTORY_SETTING):
        multiprocess.mark_process_dead(pid)


def events_accepted(kind: str, results: Iterable[str]) -> None:
    for result, count in Tally(results).items():
        EVENTS_ACCEPTED.labels(kind, result).inc(count)


def events_rejected(kind: str, reason: str, count: int = 1) -> None:
    EVENTS_REJECTED.labels(kind, reason).inc(max(count, 1))


def notifications_recorded(rows: Iterable[Any]) -> None:
    """Count notification rows whose outcome was just committed (their `status` says which); a
    sent page's lateness is `sent_at - send_at`."""
    for row in rows:
        outcome = _OUTCOMES.get(row.status)
        if outcome is None:
            continue
        NOTIFICATIONS.labels(row.kind, row.purpose, outcome).inc()
        if outcome == "sent" and row.purpose == "page" and row.sent_at is not None:
            PAGE_LATENESS.labels(row.kind).observe(max(0.0, (row.sent_at - row.send_at).total_seconds()))


def reconciled(counts: dict[str, int]) -> None:
    """Count what one reconcile run re-armed (`timers.reconcile`'s counts; its errors are logged)."""
    for what, count in counts.items():
        if count and what != "errors":
            RECONCILE_REARMED.labels(what).inc(count)
