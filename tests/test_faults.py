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
import time

import pytest

from openduty.extensions import db
from openduty.models import Incident, Notification
from tests.conftest import _ci_requires
from tests.faults import FAULTS, PROMISE_SECONDS, Stack, run_fault
from tests.processes import OwnPostgres, wait_for

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


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_every_owed_page_is_sent_once_within_10_s(stacks, fault):
    def run():
        return run_fault(stacks(fault.shape), fault, duration=4, before=1.5, after=2, settle=PROMISE_SECONDS + 10)

    result = run()
    copies = 2 if fault.duplicates_allowed else 1
    if result.lost == 0 and result.most_copies <= copies and result.late_s > PROMISE_SECONDS:
        # Late but complete: on a 2-core machine shared with other work that is load, not a bug;
        # the row must hold on a second run. Lost pages or copies beyond the allowed fail at once.
        result = run()
    assert result.owed >= 10, result
    assert result.holds(fault.duplicates_allowed), result  # also: every event answered 202 was stored
    if fault.name == "PostgreSQL stopped":
        # While it was down ingest said "not stored" (503, retried), never 202 nor an error page.
        assert result.answers[503] > 0 and set(result.answers) <= {202, 503}, result


def test_database_down_mid_send_costs_no_attempt_and_sends_nothing_twice(stacks):
    """Finding 5: PostgreSQL goes away while a page is being sent. The page is not sent again and
    no attempt is used up: the sender keeps the outcome and records it when the database is back."""
    stack = stacks("workers")
    stack.fresh()
    stack.receiver.slow["/hook/0"] = 2
    prefix = f"midsend{time.time_ns()}"
    assert stack.trigger(f"{prefix}-0", 0, time.monotonic() + 30)
    (number,) = stack.incidents(prefix)
    mine = lambda: [p for p in stack.receiver.received if p[2] == "page" and p[3] == number]  # noqa: E731
    wait_for(lambda: mine() and stack.receiver.in_flight > 0, "the page in flight", timeout=20, interval=0.01)
    stack.postgres.stop("fast")
    time.sleep(3)
    stack.postgres.start()
    wait_for(lambda: _page_row(stack, number)[0] == "sent", "the page recorded", timeout=20)
    assert _page_row(stack, number) == ("sent", 1, 0)
    time.sleep(2)
    assert len(mine()) == 1


def _page_row(stack: Stack, number: int) -> tuple[str, int, int]:
    """(status, attempts, unconfirmed) of the page of incident `number`."""

    app = stack._app()
    with app.app_context():
        row = db.session.execute(
            db.select(Notification.status, Notification.attempts, Notification.unconfirmed)
            .join(Incident, Notification.incident_id == Incident.id)
            .where(Incident.number == number, Notification.purpose == "page")
        ).one()
        db.session.remove()
        db.engine.dispose()
    return tuple(row)
