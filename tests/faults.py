"""Fault runs: the production shape on this machine, one fault at a time, every page counted.

A `Stack` is a PostgreSQL cluster of its own (initdb/pg_ctl, own port), a redis-server of its own,
the web app under gunicorn (or `run-all`), `flask openduty worker` processes and a webhook
receiver (tests/receiver.py). `run_fault` triggers incidents through the events API at a steady
rate, injects a fault in the middle and ends it, then counts for every incident accepted (each
owes exactly one page): pages received, duplicated and lost, and how late each page arrived after
the fault ended. Monitoring tools retry refused events, and so does the load here: an event is
owed once it is accepted, and must then be in the database (an answer of 202 that was not stored
is counted as an event lost).

Nothing here needs pytest: tests/test_faults.py runs short faults and asserts the promise,
bench/faults.py runs longer ones and prints the table for docs/reliability.md.
"""

import contextlib
import os
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil
import requests
from sqlalchemy import select

from config import Config
from openduty import create_app
from openduty.extensions import db
from openduty.models import Incident, Service
from tests.factories_escalation import make_pager, make_policy, make_service
from tests.factories_events import make_integration
from tests.processes import AppProcesses, OwnPostgres, RedisServer, base_env, children, free_port, wait_for
from tests.receiver import Receiver

# The promise (docs/reliability.md): every owed page is sent, once (twice at most where a send may
# have been cut short), within this many seconds of the fault ending.
PROMISE_SECONDS = 10
# The suite's read timeout, so that "slower than the timeout" takes seconds, not half a minute.
READ_TIMEOUT_SECONDS = 8


@dataclass
class Result:
    """One row of the table."""

    fault: str
    owed: int = 0
    sent: int = 0
    duplicated: int = 0
    lost: int = 0
    late_s: float = 0.0  # the latest page, counted from the end of the fault (or from its trigger if later)
    most_copies: int = 0  # the most times one page arrived
    latest_incident: int | None = None  # the number of the incident whose page came latest
    notes: list[str] = field(default_factory=list)
    answers: Counter = field(default_factory=Counter)  # what the events API answered (or the error)
    events_lost: int = 0  # events answered 202 that were never stored

    def holds(self, duplicates_allowed: bool) -> bool:
        """Whether the promise held: no page and no accepted event lost, nothing late, no page
        more than twice (and none twice unless the fault is a documented "at most twice" case)."""
        most = 2 if duplicates_allowed else 1
        return self.lost == 0 and self.events_lost == 0 and self.late_s <= PROMISE_SECONDS and self.most_copies <= most


class Stack:
    """The production shape: own PostgreSQL and Redis, gunicorn (or run-all), workers, a receiver.

    `users` users each have a webhook on the receiver (/hook/<i>) and a service that pages them;
    incident n goes to service n % users, so each incident owes exactly one page.
    """

    def __init__(self, folder: Path, postgres: OwnPostgres, shape: str = "workers", workers: int = 1, users: int = 4):
        self.folder = Path(folder)
        self.postgres = postgres
        self.shape = shape
        self.worker_count = workers
        self.users = users
        self.port = free_port()
        self.receiver = Receiver()
        self.redis = RedisServer(self.folder / "redis").start()
        self.database_url = postgres.create_database(f"faults_{shape.replace('-', '_')}")
        self.processes = AppProcesses(
            self.folder / "processes",
            base_env(
                OPENDUTY_INSTANCE=str(self.folder / "instance"),
                DATABASE_URL=self.database_url,
                REDIS_URL=self.redis.url,
                SECRET_KEY="faults",
                BASE_URL=f"http://127.0.0.1:{self.port}",
                NOTIFY_READ_TIMEOUT_SECONDS=str(READ_TIMEOUT_SECONDS),
            ),
        )
        upgrade = self.processes.cli("db", "upgrade")
        assert upgrade.returncode == 0, upgrade.stderr
        self.keys = self._make_services()
        self.workers: list = []
        self._orphans: list = []
        self.generation = 0
        self.web = None
        self.http = requests.Session()
        self.start()

    def _app(self):
        settings = {"SQLALCHEMY_DATABASE_URI": self.database_url, "REDIS_URL": self.redis.url, "SECRET_KEY": "faults"}
        return create_app(type("FaultsConfig", (Config,), settings))

    def _make_services(self) -> list[str]:
        app = self._app()
        with app.app_context():
            keys = []
            for i in range(self.users):
                user = make_pager(f"User {i}", {"webhook": (self.receiver.url(f"/hook/{i}"), 0)})
                keys.append(make_integration(make_service(make_policy([(30, [user])]), name=f"Service {i}")).key)
            db.session.remove()
            db.engine.dispose()
        return keys

    # --- processes ---

    def start(self) -> None:
        if self.shape == "run-all":
            self.web = self.processes.run_all(self.port)
            self._orphans = psutil.Process(self.web.pid).children(recursive=True)
            return
        self.web = self.processes.gunicorn(self.port)
        self.workers = [self.start_worker(i) for i in range(self.worker_count)]

    def start_worker(self, index: int, wait: bool = True):
        """Start worker `index`, named anew each time (as a supervisor running `worker` without
        --name does; restarting under the same name is tests/test_worker_faults.py's)."""
        self.generation += 1
        name = f"w{index + 1}-{self.generation}"
        return self.processes.worker(name, self.redis.client() if wait else None, wait=wait)

    def restart_worker(self, index: int = 0) -> None:
        """What a supervisor does; the fault ends once the new worker has registered."""
        self.workers[index] = self.start_worker(index)

    def run_all_child(self) -> psutil.Process:
        workers = children(self.web, "worker")
        assert workers, "run-all has no worker child"
        return workers[0]

    def fresh(self) -> None:
        """Bring back what a fault left down, and start fresh workers (or run-all): each fault is
        measured on its own, not on what the one before left behind."""
        if self.redis.process is None or self.redis.process.poll() is not None:
            self.redis.start()
        self.postgres.signal(signal.SIGCONT)
        if self.receiver.server is None:
            self.receiver.up()
        self.receiver.failing = False
        self.receiver.slow.clear()
        if self.shape == "run-all":
            self.processes.stop(self.web)
            for orphan in self._orphans:  # a worker child that outlived a killed run-all
                with contextlib.suppress(psutil.Error):
                    orphan.kill()
            self.web = self.processes.run_all(self.port)
            self._orphans = psutil.Process(self.web.pid).children(recursive=True)
            return
        for i, worker in enumerate(self.workers):
            self.processes.stop(worker)
            self.workers[i] = self.start_worker(i)

    def close(self) -> None:
        self.processes.stop_all()
        self.redis.stop()
        self.receiver.down()

    # --- load ---

    def trigger(self, dedup_key: str, service: int, deadline: float, answers: list | None = None) -> bool:
        """Send one trigger event, retrying (as monitoring tools do) until it is accepted; each
        answer (a status, or the error's name) is added to `answers`."""
        answers = [] if answers is None else answers
        body = {
            "routing_key": self.keys[service],
            "event_action": "trigger",
            "dedup_key": dedup_key,
            "payload": {"summary": f"Fault run {dedup_key}", "source": "faults", "severity": "critical"},
        }
        while time.monotonic() < deadline:
            try:
                response = self.http.post(f"http://127.0.0.1:{self.port}/v2/enqueue", json=body, timeout=10)
                answers.append(response.status_code)
                if response.status_code == 202:
                    return True
            except requests.RequestException as exc:
                answers.append(type(exc).__name__)
            time.sleep(0.5)
        return False

    def stored_keys(self, prefix: str) -> set[str]:
        """The dedup keys of this run's incidents in the database."""
        app = self._app()
        with app.app_context():
            keys = set(db.session.scalars(select(Incident.dedup_key).where(Incident.dedup_key.like(f"{prefix}-%"))))
            db.session.remove()
            db.engine.dispose()
        return keys

    def incidents(self, prefix: str) -> dict[int, tuple[datetime, str]]:
        """number -> (when accepted, the hook path it pages) for this run's incidents."""
        app = self._app()
        with app.app_context():
            rows = db.session.execute(
                select(Incident.number, Incident.created_at, Service.name)
                .join(Service, Incident.service_id == Service.id)
                .where(Incident.dedup_key.like(f"{prefix}-%"))
            ).all()
            db.session.remove()
            db.engine.dispose()
        return {number: (created, f"/hook/{name.split()[-1]}") for number, created, name in rows}


@dataclass
class Fault:
    """A fault: `begin(stack)` injects it, `end(stack)` ends it (None: it ends as it begins, e.g. a
    flush, or a kill that the system must recover from by itself)."""

    name: str
    begin: object
    end: object = None
    shape: str = "workers"
    # Documented "at most twice" cases: a process died (maybe mid-send) or a request went unanswered.
    duplicates_allowed: bool = False
    # Applied for the whole run (before the load starts), e.g. a slow receiver.
    setup: object = None


def _kill_worker_main(stack: Stack) -> None:
    stack.processes.kill(stack.workers[0])


def _kill_worker_group(stack: Stack) -> None:
    stack.processes.kill_group(stack.workers[0])


def _kill_worker_mid_send(stack: Stack) -> None:
    for i in range(stack.users):
        stack.receiver.slow[f"/hook/{i}"] = 2
    wait_for(lambda: stack.receiver.in_flight > 0, "a page in flight", timeout=20, interval=0.01)
    stack.processes.kill_group(stack.workers[0])
    stack.receiver.slow.clear()


def _kill_run_all_child(stack: Stack) -> None:
    stack.run_all_child().kill()


def _kill_run_all(stack: Stack) -> None:
    stack.processes.kill(stack.web)


def _restart_run_all(stack: Stack) -> None:
    """What a supervisor does; the fault ends once the new run-all answers /healthz."""
    stack.web = stack.processes.run_all(stack.port)


def _redis_kill_persistent(stack: Stack) -> None:
    client = stack.redis.client()
    client.config_set("appendonly", "yes")
    wait_for(lambda: client.info("persistence").get("aof_rewrite_in_progress") == 0, "the AOF rewrite", timeout=20)
    time.sleep(0.2)
    stack.redis.persist = True
    stack.redis.kill()


def _redis_start(stack: Stack) -> None:
    stack.redis.start()
    stack.redis.persist = False


def _set_slow(seconds: float):
    def setup(stack: Stack) -> None:
        stack.receiver.slow["/hook/0"] = seconds

    return setup


def _set(attribute: str, value):
    return lambda stack: setattr(stack.receiver, attribute, value)


FAULTS = [
    Fault("kill -9 of the worker's main PID", _kill_worker_main, lambda s: s.restart_worker(), duplicates_allowed=True),
    Fault("kill -9 of the worker's process group", _kill_worker_group, lambda s: s.restart_worker(),
          duplicates_allowed=True),
    Fault("kill -9 of a worker mid-send", _kill_worker_mid_send, lambda s: s.restart_worker(), duplicates_allowed=True),
    Fault("kill -9 of run-all's worker child", _kill_run_all_child, shape="run-all", duplicates_allowed=True),
    Fault("kill -9 of run-all itself", _kill_run_all, _restart_run_all, shape="run-all", duplicates_allowed=True),
    Fault("Redis flushed (FLUSHALL)", lambda s: s.redis.client().flushall()),
    Fault("Redis killed, restarted empty", lambda s: s.redis.kill(), lambda s: s.redis.start()),
    Fault("Redis killed, restarted with its data (AOF)", _redis_kill_persistent, _redis_start),
    Fault("PostgreSQL stopped", lambda s: s.postgres.stop("fast"), lambda s: s.postgres.start()),
    Fault("PostgreSQL frozen (SIGSTOP)", lambda s: s.postgres.signal(signal.SIGSTOP),
          lambda s: s.postgres.signal(signal.SIGCONT)),
    Fault("receiver down (refused)", lambda s: s.receiver.down(), lambda s: s.receiver.up()),
    Fault("receiver answers 500", _set("failing", True), _set("failing", False)),
    Fault("one receiver slow (5 s per page)", lambda s: None, setup=_set_slow(5)),
    Fault(f"one receiver slower than the read timeout ({READ_TIMEOUT_SECONDS + 4} s > {READ_TIMEOUT_SECONDS} s)",
          lambda s: None, setup=_set_slow(READ_TIMEOUT_SECONDS + 4), duplicates_allowed=True),
]  # fmt: skip


def run_fault(stack: Stack, fault: Fault, duration: float, rate: float = 3, before: float = 2, after: float = 3,
              settle: float = 40) -> Result:  # fmt: skip
    """Trigger `rate` incidents a second from `before` seconds ahead of the fault until `after`
    seconds past its end; the fault lasts `duration` seconds. Then wait up to `settle` seconds for
    every owed page, and count."""
    stack.fresh()
    if fault.setup:
        fault.setup(stack)
    prefix = f"run{time.time_ns()}"
    started = time.time()
    stop = threading.Event()
    sent_events: list = []
    answers: list[list] = []  # per event, every answer it met
    pool = ThreadPoolExecutor(max_workers=16)

    def load():
        i = 0
        while not stop.is_set():
            answers.append([])
            sent_events.append(
                pool.submit(stack.trigger, f"{prefix}-{i}", i % stack.users, time.monotonic() + 90, answers[-1])
            )
            i += 1
            stop.wait(1 / rate)

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    time.sleep(before)
    fault.begin(stack)
    if fault.end is not None:
        time.sleep(duration)
        fault.end(stack)
    fault_end = time.time()
    time.sleep(after)
    stop.set()
    loader.join()
    accepted = [f.result() for f in sent_events]
    pool.shutdown()
    result = Result(fault.name)
    if not all(accepted):
        result.notes.append(f"{accepted.count(False)} event(s) never accepted")
    result.answers = Counter(answer for event in answers for answer in event)
    stored = stack.stored_keys(prefix)
    result.events_lost = sum(1 for i, ok in enumerate(accepted) if ok and f"{prefix}-{i}" not in stored)

    def counted() -> tuple[dict[int, tuple[datetime, str]], dict[int, list[float]]]:
        owed = stack.incidents(prefix)
        arrivals: dict[int, list[float]] = {}
        for at, _path, event, number in stack.receiver.pages(started):
            if event == "page" and number in owed:
                arrivals.setdefault(number, []).append(at)
        return owed, arrivals

    deadline = time.monotonic() + settle
    owed, arrivals = counted()
    while time.monotonic() < deadline and len(arrivals) < len(owed):
        time.sleep(0.5)
        owed, arrivals = counted()
    time.sleep(2)  # late duplicates
    owed, arrivals = counted()
    stack.receiver.slow.clear()
    result.owed = len(owed)
    result.sent = len(arrivals)
    result.lost = result.owed - result.sent
    result.duplicated = sum(len(a) - 1 for a in arrivals.values())
    result.most_copies = max((len(a) for a in arrivals.values()), default=0)
    for number, times in arrivals.items():
        created = owed[number][0].replace(tzinfo=UTC).timestamp()
        late = min(times) - max(created, fault_end)
        if late > result.late_s:
            result.late_s, result.latest_incident = late, number
    if result.lost:
        result.late_s = float("inf")
    return result


def table(results: list[Result], when: str) -> str:
    """The results as the Markdown table in docs/reliability.md."""
    lines = [
        "| fault | owed | sent | duplicated | lost | latest page after the fault ended | measured |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        late = "never (lost)" if r.late_s == float("inf") else f"{max(r.late_s, 0):.1f} s"
        notes = f" ({'; '.join(r.notes)})" if r.notes else ""
        lines.append(f"| {r.fault}{notes} | {r.owed} | {r.sent} | {r.duplicated} | {r.lost} | {late} | {when} |")
    return "\n".join(lines)


def environment_note() -> str:
    return f"{os.cpu_count()} cores"
