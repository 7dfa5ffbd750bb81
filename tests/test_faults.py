"""The fault suite: the production shape on this machine (a PostgreSQL cluster and a redis-server
of its own, gunicorn or run-all, real workers, a webhook receiver), one fault at a time, with every
owed page counted (tests/faults.py). The promise, from docs/reliability.md: every page owed is sent
exactly once (at most twice where a send may have been cut short), within 10 s of the fault ending.

Each fault lasts 4 s under a steady 3 incidents/s; bench/faults.py runs the same faults for longer
and prints the table in docs/reliability.md. The suite brings its own PostgreSQL, so it runs in the
suite's PostgreSQL pass (DATABASE_URL set) only.
"""

import os
import shutil

import pytest

from tests.conftest import _ci_requires
from tests.faults import FAULTS, PROMISE_SECONDS, Stack, run_fault
from tests.processes import OwnPostgres

# Faults whose fix is another change's (issue 9, findings 1, 5 and 7, in worker.py/cli.py/reconcile);
# these rows are expected to fail until it lands. Remove a name here when it passes.
PENDING_WORKER_FIXES = {
    "kill -9 of run-all's worker child",
    "kill -9 of the worker's main PID",
    "Redis killed, restarted empty",
    "Redis killed, restarted with its data (AOF)",
}

pytestmark = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL"), reason="brings its own PostgreSQL; runs in the PostgreSQL pass"
)


@pytest.fixture(scope="module")
def stacks(tmp_path_factory):
    if not (shutil.which("initdb") and shutil.which("pg_ctl")):
        _ci_requires("PostgreSQL's initdb and pg_ctl")
    postgres = OwnPostgres()
    folder = tmp_path_factory.mktemp("faults")
    started: dict[str, Stack] = {}

    def get(shape: str) -> Stack:
        if shape not in started:
            started[shape] = Stack(folder / shape, postgres, shape=shape)
        return started[shape]

    yield get
    for stack in started.values():
        stack.close()
    postgres.remove()


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(f, marks=pytest.mark.xfail(reason="the worker-side fix has not landed", strict=False))
        if f.name in PENDING_WORKER_FIXES
        else f
        for f in FAULTS
    ],
    ids=[f.name for f in FAULTS],
)
def test_every_owed_page_is_sent_once_within_10_s(stacks, fault):
    result = run_fault(stacks(fault.shape), fault, duration=4, before=1.5, after=2, settle=PROMISE_SECONDS + 10)
    assert result.owed >= 10, result
    assert result.holds(fault.duplicates_allowed), result
