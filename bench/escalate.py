"""Escalation throughput: a burst of 1,000 triggered incidents, escalated and paged by real workers.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/openduty_bench REDIS_URL=redis://127.0.0.1:6379/4 \\
        .venv/bin/python -m bench escalate

Without DATABASE_URL / REDIS_URL it uses a temporary SQLite file and an embedded Redis. The
database and the Redis db are EMPTIED first. Real `flask openduty worker` processes page a local
webhook receiver (bench/notify.py's).

1. Trigger accepted (the ingest transaction committed) -> the first page received: p50/p99 over
   200 incidents triggered one after another (1 worker).
2. A burst: BURST_INCIDENTS (1,000) triggers committed through ingest in batches of 100, each
   incident's level 1 paging BURST_TARGETS (1) users by webhook at once; pages/s from the first
   commit to the last page received, with 1 worker and then with 2. Each run checks every page:
   received before its trigger was submitted (early), never received (lost), received twice
   (duplicate); all three must be 0. Also the workers' CPU time per page (less noisy than pages/s
   on a shared machine).

BURST_RUNS (1) repeats each burst and prints every run and the median.
"""

import os
import statistics
import subprocess
import time

import psutil

from bench.notify import Receiver, _latency, _setup, _start_worker, _stop, bench_app

BATCH = 100


def main() -> None:
    app, env = bench_app("bench-escalate-")
    incidents = int(os.environ.get("BURST_INCIDENTS", "1000"))
    targets = int(os.environ.get("BURST_TARGETS", "1"))
    runs = int(os.environ.get("BURST_RUNS", "1"))
    from openduty.extensions import stop_embedded_redis

    with app.app_context():
        receiver = Receiver()
        processes: list[subprocess.Popen] = []
        try:
            processes.append(_start_worker(env, "bench-1"))
            _latency(app, receiver, "latency")
            rates = {}
            for workers in (1, 2):
                if workers == 2:
                    processes.append(_start_worker(env, "bench-2"))
                rates[workers] = [
                    _burst(receiver, f"burst{workers}-{run}", incidents, targets, processes) for run in range(runs)
                ]
            one, two = statistics.median(rates[1]), statistics.median(rates[2])
            print(f"median pages/s: 1 worker {one:.0f}, 2 workers {two:.0f} ({two / one:.2f}x)", flush=True)
        finally:
            for process in processes:
                _stop(process)
            stop_embedded_redis()  # a no-op with REDIS_URL


def _cpu(processes: list[subprocess.Popen]) -> float:
    return sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in processes)


def _burst(receiver: Receiver, name: str, count: int, targets: int, processes: list[subprocess.Popen]) -> float:
    from sqlalchemy import func, select

    from openduty.event_commit import apply_and_commit
    from openduty.events import Event
    from openduty.extensions import db
    from openduty.models import EscalationTarget, Incident, Notification

    users = [_setup(receiver, f"{name}-u{i}")[0] for i in range(targets)]
    _, service, integration = _setup(receiver, name)
    level = service.escalation_policy.levels[0]
    level.targets = [EscalationTarget(target_type="user", user=user) for user in users]
    db.session.commit()
    begin = receiver.count()
    cpu = _cpu(processes)
    submitted: dict[str, float] = {}  # when each trigger was handed to ingest (no page may come before)
    started = time.time()
    for first in range(0, count, BATCH):
        keys = [f"{name}-{i}" for i in range(first, min(count, first + BATCH))]
        submitted.update(dict.fromkeys(keys, time.time()))
        apply_and_commit([Event(integration.key, "trigger", k, f"Burst {k}", "critical", "bench", {}) for k in keys])
    owed = count * targets
    deadline = time.monotonic() + 600
    while receiver.count() - begin < owed and time.monotonic() < deadline:
        time.sleep(0.01)
    with receiver.lock:
        arrivals = receiver.arrivals[begin:]
    elapsed = max(at for at, _, _ in arrivals) - started if arrivals else float("inf")
    cpu = _cpu(processes) - cpu
    time.sleep(1)  # late duplicates
    with receiver.lock:
        arrivals = receiver.arrivals[begin:]
    db.session.expire_all()
    key_of = dict(
        db.session.execute(select(Incident.id, Incident.dedup_key).where(Incident.service_id == service.id))
        .tuples()
        .all()
    )
    seen: dict[tuple[int, str], int] = {}
    early = 0
    for at, path, body in arrivals:
        incident_id = body["incidents"][0]["id"]
        seen[(incident_id, path)] = seen.get((incident_id, path), 0) + 1
        early += at < submitted[key_of[incident_id]]
    duplicates = sum(n - 1 for n in seen.values())
    lost = owed - len(seen)
    unsent = db.session.scalar(
        select(func.count(Notification.id)).where(
            Notification.incident_id.in_(key_of), Notification.purpose == "page", Notification.status != "sent"
        )
    )
    rate = len(seen) / elapsed
    print(
        f"2. burst of {count} incidents x {targets} target(s), {len(processes)} worker(s): {rate:.0f} pages/s "
        f"({len(seen)} pages in {elapsed:.1f} s, workers' CPU {cpu / max(len(seen), 1) * 1000:.1f} ms/page); "
        f"early {early}, lost {lost}, duplicate {duplicates}, rows not sent {unsent}",
        flush=True,
    )
    return rate
