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
   on a shared machine). BURST_COMMIT=1 commits each trigger on its own (each incident its own
   escalate job, as triggers arriving one by one make them).

3. The same burst (BURST_ROUND_TRIPS incidents, 200, committed BURST_COMMIT at a time and queued
   before the worker starts) run by a burst worker inside this process:
   SQL statements and Redis round trips (a pipeline is one) per page, and CPU per page. Unlike
   pages/s these do not depend on how busy the machine is. Run first, before any worker starts.

BURST_RUNS (1) repeats each burst and prints every run and the median.
"""

import os
import statistics
import subprocess
import time

import psutil
from redis.connection import AbstractConnection
from sqlalchemy import event, func, select

from bench.notify import Receiver, _latency, _setup, _start_worker, _stop, bench_app

BATCH = int(os.environ.get("BURST_COMMIT", "100"))  # triggers per ingest commit in a burst


def main() -> None:
    app, env = bench_app("bench-escalate-")
    incidents = int(os.environ.get("BURST_INCIDENTS", "1000"))
    targets = int(os.environ.get("BURST_TARGETS", "1"))
    runs = int(os.environ.get("BURST_RUNS", "1"))
    from openduty.extensions import stop_embedded_redis  # once bench_app has set the environment

    with app.app_context():
        receiver = Receiver()
        processes: list[subprocess.Popen] = []
        try:
            _round_trips(app, receiver, int(os.environ.get("BURST_ROUND_TRIPS", "200")))
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


def _machine() -> dict[str, float]:
    """CPU seconds used so far: the whole machine (every core), and PostgreSQL's and Redis's processes
    and this one (the webhook receiver and the triggers): where a burst's CPU goes besides the workers."""
    times = psutil.cpu_times()
    used = {"machine": times.user + times.nice + times.system + times.irq + times.softirq + times.steal}
    used |= {"postgres": 0.0, "redis": 0.0}
    for process in psutil.process_iter(["name", "cpu_times"]):
        name = process.info["name"] or ""
        kind = "postgres" if name.startswith("postgres") else "redis" if name.startswith("redis-server") else None
        if kind and process.info["cpu_times"]:
            used[kind] += sum(process.info["cpu_times"][:2])
    used["bench"] = sum(psutil.Process().cpu_times()[:2])
    return used


def _share(before: dict[str, float], after: dict[str, float], seconds: float) -> str:
    """How many cores each part kept busy during `seconds`, out of the machine's."""
    cores = {k: (after[k] - before[k]) / seconds for k in before}
    return (
        f"machine busy {cores['machine']:.2f} of {psutil.cpu_count()} cores (PostgreSQL {cores['postgres']:.2f}, "
        f"Redis {cores['redis']:.2f}, receiver and bench {cores['bench']:.2f})"
    )


def _burst(receiver: Receiver, name: str, count: int, targets: int, processes: list[subprocess.Popen]) -> float:

    from openduty.event_commit import apply_and_commit  # once bench_app has set the environment
    from openduty.events import Event  # once bench_app has set the environment
    from openduty.extensions import db  # once bench_app has set the environment
    from openduty.models import EscalationTarget, Incident, Notification  # once bench_app has set the environment

    users = [_setup(receiver, f"{name}-u{i}")[0] for i in range(targets)]
    _, service, integration = _setup(receiver, name)
    level = service.escalation_policy.levels[0]
    level.targets = [EscalationTarget(target_type="user", user=user) for user in users]
    db.session.commit()
    begin = receiver.count()
    cpu = _cpu(processes)
    machine = _machine()
    submitted: dict[str, float] = {}  # when each trigger was handed to ingest (no page may come before)
    started = time.time()
    for first in range(0, count, BATCH):
        keys = [f"{name}-{i}" for i in range(first, min(count, first + BATCH))]
        submitted.update(dict.fromkeys(keys, time.time()))
        apply_and_commit(
            [Event(integration.key, "trigger", k, f"Burst {k}", "critical", source="bench", details={}) for k in keys]
        )
    committed = time.time() - started
    owed = count * targets
    deadline = time.monotonic() + 600
    while receiver.count() - begin < owed and time.monotonic() < deadline:
        time.sleep(0.01)
    with receiver.lock:
        arrivals = receiver.arrivals[begin:]
    elapsed = max(at for at, _, _ in arrivals) - started if arrivals else float("inf")
    cpu = _cpu(processes) - cpu
    busy = _share(machine, _machine(), elapsed)
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
        f"({len(seen)} pages in {elapsed:.1f} s, the triggers committed in the first {committed:.1f} s; "
        f"workers' CPU {cpu / max(len(seen), 1) * 1000:.1f} ms/page); "
        f"early {early}, lost {lost}, duplicate {duplicates}, rows not sent {unsent}; {busy}",
        flush=True,
    )
    return rate


def _round_trips(app, receiver: Receiver, count: int) -> None:
    from openduty.event_commit import apply_and_commit  # once bench_app has set the environment
    from openduty.events import Event  # once bench_app has set the environment
    from openduty.extensions import db  # once bench_app has set the environment
    from openduty.worker import make_worker  # once bench_app has set the environment

    _, _, integration = _setup(receiver, "round-trips")
    begin = receiver.count()
    for first in range(0, count, BATCH):  # queued before the worker starts, as a backlog would be
        apply_and_commit(
            [
                Event(integration.key, "trigger", f"rt-{i}", "Round trips", "critical", source="b", details={})
                for i in range(first, min(count, first + BATCH))
            ]
        )
    counts = {"sql": 0, "redis": 0}
    send = AbstractConnection.send_packed_command

    def count_redis(connection, command, check_health=True):
        counts["redis"] += 1
        return send(connection, command, check_health)

    def count_sql(*args):
        counts["sql"] += 1

    engine = db.engine
    event.listen(engine, "before_cursor_execute", count_sql)
    AbstractConnection.send_packed_command = count_redis
    cpu = time.process_time()
    try:
        make_worker(app).work(burst=True)
    finally:
        cpu = time.process_time() - cpu
        AbstractConnection.send_packed_command = send
        event.remove(engine, "before_cursor_execute", count_sql)
    pages = receiver.count() - begin
    print(
        f"3. in-process burst worker, {count} incidents: {pages} pages; per page {counts['sql'] / pages:.1f} SQL "
        f"statements, {counts['redis'] / pages:.1f} Redis round trips, {cpu / pages * 1000:.1f} ms CPU "
        "(this process, with the receiver)",
        flush=True,
    )
