"""Soak: the production topology on this machine, 2,000 incidents, parts of it killed.

    make bench BENCH_ARGS=soak
    SOAK_INCIDENTS=500 SOAK_RATE=10 .venv/bin/python -m bench soak

Starts its own PostgreSQL cluster (initdb/pg_ctl), Redis as a primary, a replica and three
sentinels (Debian's redis-sentinel) on loopback ports, gunicorn with deploy/gunicorn.conf.py (2 web
processes), 3 `flask openduty worker` processes and a webhook receiver (tests/soak.py). Opens
SOAK_INCIDENTS (2,000) incidents at SOAK_RATE (20) a second through the events API, each escalating
over 3 levels a minute apart; meanwhile kills a worker (-9), a web process (-9) and the Redis
primary (-9; the sentinels fail over). Prints every owed page delivered exactly once or not, early
ones, lateness after the due time (p50/p99/max), and events answered 202 but lost.
"""

import os
import sys
import tempfile
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    sys.path.insert(0, ROOT)
    from tests.processes import OwnPostgres  # bench/ runs without the tests on its path until here
    from tests.soak import SoakStack, run_soak  # (as above)

    incidents = int(os.environ.get("SOAK_INCIDENTS", 2000))
    rate = float(os.environ.get("SOAK_RATE", 20))
    load = incidents / rate
    # The faults fall while incidents are still being opened, and earlier ones escalate.
    faults = [(load * 0.25, "kill_worker"), (load * 0.5, "kill_web_process"), (load * 0.75, "kill_redis_primary")]
    print(f"{incidents} incidents at {rate:g}/s, 3 levels 1 minute apart; 2 web processes, 3 workers; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    folder = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    print(f"processes' logs (kept): {folder}/processes", flush=True)
    postgres = OwnPostgres()
    stack = None
    try:
        stack = SoakStack(folder, postgres, [1, 1, 1])
        result = run_soak(stack, incidents, rate, faults, settle=90)
    finally:
        if stack is not None:
            stack.close()
        postgres.remove()
    print(result.report())
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
