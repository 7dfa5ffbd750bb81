"""Faults, the long version: the production shape on this machine, each fault for longer.

    .venv/bin/python -m bench faults
    FAULTS_DURATION=20 FAULTS_SELECT=redis .venv/bin/python -m bench faults

Starts its own PostgreSQL cluster (initdb/pg_ctl, own port), its own redis-server, gunicorn (or
`run-all`), one `flask openduty worker` and a webhook receiver (tests/faults.py), and for each fault
triggers 3 incidents a second through the events API from 2 s before the fault until 5 s after it
ends; each fault lasts FAULTS_DURATION seconds (default 20). FAULTS_SELECT picks faults whose
name contains it. Prints one row per fault and the Markdown table for docs/reliability.md.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    sys.path.insert(0, ROOT)
    from tests.faults import FAULTS, Stack, run_fault, table
    from tests.processes import OwnPostgres

    duration = float(os.environ.get("FAULTS_DURATION", 20))
    selected = [f for f in FAULTS if os.environ.get("FAULTS_SELECT", "").lower() in f.name.lower()]
    folder = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    postgres = OwnPostgres()
    stacks: dict[str, Stack] = {}
    results = []
    try:
        for fault in selected:
            if fault.shape not in stacks:
                stacks[fault.shape] = Stack(folder / fault.shape, postgres, shape=fault.shape)
            result = run_fault(stacks[fault.shape], fault, duration, after=5, settle=90)
            results.append(result)
            late = "lost" if result.lost else f"{max(result.late_s, 0):.1f} s"
            print(f"{fault.name}: owed {result.owed}, sent {result.sent}, duplicated {result.duplicated}, "
                  f"lost {result.lost}, latest {late} {' '.join(result.notes)}", flush=True)  # fmt: skip
    finally:
        for stack in stacks.values():
            stack.close()
        postgres.remove()
    print()
    print(table(results, time.strftime("%Y-%m-%d", time.gmtime()) + f", {duration:g} s faults"))
