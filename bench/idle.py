"""Idle cost: memory and CPU of `run-all` and of the production worker while nothing happens.

Two set-ups, each started fresh, left to settle (SETTLE seconds after it is ready: start-up
imports, the first reconcile), then watched for WINDOW seconds:
- run-all: `flask openduty run-all` on the embedded defaults (SQLite and the embedded Redis, a
  fresh instance folder), and again on PostgreSQL + Redis (BENCH_DATABASE_URL, BENCH_REDIS_URL).
- worker: `flask openduty worker` as production runs it (OPENDUTY_CONFIG=production, PostgreSQL +
  Redis), with its scheduler (a thread of the worker, or a forked process if there is one).
Reported per set-up: resident memory summed over the process tree (RSS, and PSS, which splits
shared pages between the processes that share them, so it adds up honestly), and the CPU time
(user + system) the tree used per second of the window.

Targets (issue 11): run-all under 150 MB and under 5 ms CPU/s; the worker and its scheduler
under 150 MB together.
Run: `.venv/bin/python -m bench idle` (RUNS=3 SETTLE=10 WINDOW=20; SETUPS=run-all,run-all-pg,worker).
"""

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import psutil
from sqlalchemy import create_engine, text

from bench.startup import _env, _healthy, _tree, prepare
from config import database_url

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/openduty_bench2")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/2")
RUNS = int(os.environ.get("RUNS", "3"))
SETTLE = float(os.environ.get("SETTLE", "10"))
WINDOW = float(os.environ.get("WINDOW", "20"))
SETUPS = os.environ.get("SETUPS", "run-all,run-all-pg,worker").split(",")
TARGET_MB = 150.0
TARGET_CPU_MS = 5.0
FLASK = [sys.executable, "-m", "flask", "--app", "app"]


def _cpu_seconds(members: list[psutil.Process]) -> float:
    total = 0.0
    for p in members:
        try:
            times = p.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _memory_mb(members: list[psutil.Process]) -> dict[str, tuple[float, float]]:
    """Per process ("pid name"): (RSS, PSS) in MB."""
    out = {}
    for p in members:
        try:
            info = p.memory_full_info()
            name = " ".join(p.cmdline()[4:6]) if p.name().startswith("python") else p.name()
        except psutil.Error:
            continue
        out[f"{p.pid} {name}"] = (info.rss / 2**20, info.pss / 2**20)
    return out


def _ready(process: subprocess.Popen, check, what: str) -> None:
    start = time.monotonic()
    while not check():
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode} before it was ready")
        if time.monotonic() - start > 60:
            raise SystemExit(f"{what} was not ready within 60 s")
        time.sleep(0.1)


def _measure(process: subprocess.Popen) -> dict:
    time.sleep(SETTLE)
    tree = _tree(psutil.Process(process.pid))
    before, began = {p.pid: _cpu_seconds([p]) for p in tree}, time.monotonic()
    time.sleep(WINDOW)
    elapsed = time.monotonic() - began
    cpu = {p.pid: 1000 * (_cpu_seconds([p]) - before[p.pid]) / elapsed for p in tree}
    memory = _memory_mb(tree)
    each = ", ".join(f"{name} {rss:.0f}/{pss:.0f} MB {cpu[int(name.split()[0])]:.1f} ms/s"
                     for name, (rss, pss) in memory.items())  # fmt: skip
    return {
        "rss": sum(rss for rss, _ in memory.values()),
        "pss": sum(pss for _, pss in memory.values()),
        "cpu_ms_per_s": sum(cpu.values()),
        "each": each,
    }


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _empty_postgres() -> None:
    """An empty database for `flask db upgrade` (the ingest bench leaves tables without migrations)."""
    engine = create_engine(database_url(DATABASE_URL))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def _run_all(postgres: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="openduty-bench-") as instance:
        env = _env(instance)
        if postgres:
            env.update(DATABASE_URL=DATABASE_URL, REDIS_URL=REDIS_URL)
            _empty_postgres()
        prepare(env)
        process = subprocess.Popen(
            [*FLASK, "openduty", "run-all"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            _ready(process, lambda: _healthy(env["PORT"]), "run-all")
            return _measure(process)
        finally:
            _stop(process)


def _worker() -> dict:
    with tempfile.TemporaryDirectory(prefix="openduty-bench-") as instance:
        env = _env(instance)
        env.update(DATABASE_URL=DATABASE_URL, REDIS_URL=REDIS_URL, OPENDUTY_CONFIG="production", SECRET_KEY="bench")
        _empty_postgres()
        prepare(env)
        log = os.path.join(instance, "worker.log")
        with open(log, "wb") as out:
            process = subprocess.Popen([*FLASK, "openduty", "worker"], env=env, cwd=ROOT, stdout=out, stderr=out)
        try:
            # Ready once RQ logs that it listens.
            _ready(process, lambda: "Listening on" in open(log, errors="replace").read(), "the worker")
            return _measure(process)
        finally:
            _stop(process)


def main() -> None:
    runners = {"run-all": lambda: _run_all(False), "run-all-pg": lambda: _run_all(True), "worker": _worker}
    results: dict[str, list[dict]] = {name: [] for name in SETUPS}
    print(f"settle {SETTLE:.0f} s, then watch {WINDOW:.0f} s; runs: {RUNS}", flush=True)
    for run in range(RUNS):
        for name in SETUPS:
            r = runners[name]()
            results[name].append(r)
            print(f"run {run + 1} {name}: RSS {r['rss']:.0f} MB, PSS {r['pss']:.0f} MB, "
                  f"CPU {r['cpu_ms_per_s']:.1f} ms/s ({r['each']})", flush=True)  # fmt: skip
    print("== medians ==")
    for name, rs in results.items():
        rss = statistics.median(r["rss"] for r in rs)
        pss = statistics.median(r["pss"] for r in rs)
        cpu = statistics.median(r["cpu_ms_per_s"] for r in rs)
        target = f"target < {TARGET_MB:.0f} MB" + (f", < {TARGET_CPU_MS:.0f} ms/s" if name != "worker" else "")
        print(f"{name}: RSS {rss:.0f} MB, PSS {pss:.0f} MB, CPU {cpu:.1f} ms/s idle ({target})")


if __name__ == "__main__":
    main()
