"""What one ingest batch costs the web process, by its size: instructions counted by valgrind.

Applies batches of 1, 3, 5, 10 and 30 triggers (new incidents, or deduplicated into 30 open ones)
through `apply_and_commit`, as the batcher does, against PostgreSQL, and prints the instructions
per batch this process executed (valgrind's callgrind, counting only the measured batches): unlike
CPU time on this shared 2-core machine, the same code gives the same count run after run, so two
versions compare to the percent. The database's own work is not counted.

Needs valgrind (Debian package) and PostgreSQL: BENCH_DATABASE_URL (default the local
openduty_bench2 database, EMPTIED first), BENCH_REDIS_URL (default db 2 of the local server).
Run: `.venv/bin/python -m bench ingest_batch` (SIZES="1 3 5 10 30", REPS=10 per size).
"""

import os
import shutil
import subprocess
import sys
import tempfile

SIZES = [int(size) for size in os.environ.get("SIZES", "1 3 5 10 30").split()]
REPS = int(os.environ.get("REPS", "10"))


def main() -> None:
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    print(f"instructions per batch (callgrind), {REPS} batches each after {REPS} to warm up", flush=True)
    for size in SIZES:
        new, dedup = (_count(size, mix) / 1e6 for mix in ("unique", "dedup"))
        print(f"batch of {size:2}: new incidents {new:6.2f} M ({new / size:.2f} M per event), "
              f"deduplicated {dedup:6.2f} M ({dedup / size:.2f} M per event)", flush=True)  # fmt: skip


def _count(size: int, mix: str) -> float:
    """Run this module's `_measure` under callgrind; the instructions per batch it counted."""
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "callgrind.out")
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
             sys.executable, "-c", f"from bench.ingest_batch import _measure; _measure({size}, {mix!r})"],
            check=True, capture_output=True,
        )  # fmt: skip
        with open(out) as f:
            totals = next(line for line in f if line.startswith("totals:"))
    return int(totals.split()[1]) / REPS


def _measure(size: int, mix: str) -> None:
    """In the process valgrind runs: warm up, then count REPS batches (callgrind_control toggles)."""
    from bench.ingest import _app, _reset
    from openduty.event_commit import apply_and_commit  # after _app() has set up the app
    from openduty.events import Event  # after _app() has set up the app
    from openduty.extensions import db  # after _app() has set up the app

    app = _app()
    key = _reset(app)

    def batches(tag: str) -> None:
        for n in range(REPS):
            keys = [f"{tag}-{n}-{i}" if mix == "unique" else f"open-{i}" for i in range(size)]
            events = [Event(key, "trigger", k, "CPU high", source="web-1", details={"load": 12.5}) for k in keys]
            apply_and_commit(events)
            db.session.remove()

    with app.app_context():
        batches("warm-up")
        subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], check=True, capture_output=True)
        batches("measured")
        subprocess.run(["callgrind_control", "-i", "off", str(os.getpid())], check=True, capture_output=True)
