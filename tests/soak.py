"""Soak: the production topology on this machine, under load, with parts of it killed.

Two gunicorn web processes (deploy/gunicorn.conf.py), three `flask openduty worker` processes, a
PostgreSQL cluster of its own (tests/processes.py), and Redis as a primary, a replica and three
sentinels on loopback ports (tests/redis_sentinel.py), which every process reaches through
REDIS_SENTINELS. A load opens incidents through `POST /v2/enqueue` at a steady rate (retrying
what is refused, as monitoring tools do); each escalates through a policy of several levels, one
user per level, each paged on a webhook of a receiver here (tests/faults.py's). Meanwhile it kills
a worker (-9; its supervisor starts it again), a web process (-9; gunicorn replaces it) and the
Redis primary (-9; the sentinels promote the replica, and the old primary comes back as a replica).

Then it counts: every page owed (each accepted incident, each level) delivered exactly once,
none before its due time (the trigger plus the levels' delays), how late (p50/p99/max), and every
event answered 202 stored. tests/test_soak.py runs a short one and asserts; bench/soak.py runs
2,000 incidents and prints the numbers.
"""

import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

import psutil
import requests
from redis.exceptions import RedisError
from sqlalchemy import select

from config import Config
from openduty import create_app
from openduty.extensions import db
from openduty.models import Incident, Notification
from tests.factories_escalation import make_pager, make_policy, make_service
from tests.factories_events import make_integration
from tests.processes import AppProcesses, OwnPostgres, base_env, free_port, wait_for
from tests.receiver import Receiver
from tests.redis_sentinel import RedisWithSentinels

WEB_PROCESSES = 2
WORKERS = 3


@dataclass
class SoakResult:
    """What a soak run measured."""

    incidents: int = 0  # triggers sent (one dedup key each)
    accepted: int = 0  # answered 202 in the end
    answers: Counter = field(default_factory=Counter)  # every answer or error the load met
    events_lost: int = 0  # answered 202 but not stored
    owed: int = 0  # pages owed: accepted incidents x levels
    delivered: int = 0  # pages that arrived at least once
    exactly_once: int = 0
    duplicated: int = 0  # pages that arrived more than once
    duplicates_unexplained: int = 0  # of those, the ones whose row does not say "may have arrived"
    most_copies: int = 0
    lost: int = 0  # never arrived: nothing came for `settle` s after the last due time
    early: int = 0
    lateness: list[float] = field(default_factory=list)  # seconds after due, one per delivered page
    faults: list[str] = field(default_factory=list)  # what was done when, as it happened
    by_level: dict[int, str] = field(default_factory=dict)  # level -> "delivered/owed, lateness p50"
    rows: Counter = field(default_factory=Counter)  # the page rows' statuses at the end
    seconds: float = 0.0

    def percentile(self, p: float) -> float:
        if not self.lateness:
            return float("nan")
        ordered = sorted(self.lateness)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def report(self) -> str:
        late = (f"p50 {statistics.median(self.lateness):.2f} s, p99 {self.percentile(99):.2f} s, "
                f"max {max(self.lateness):.2f} s") if self.lateness else "none delivered"  # fmt: skip
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(self.answers.items(), key=str))
        return "\n".join([
            f"incidents: {self.incidents} sent, {self.accepted} accepted (202); events answered 202 but "
            f"not stored: {self.events_lost}",
            f"answers met by the load: {answers}",
            f"pages owed: {self.owed}; delivered: {self.delivered}; exactly once: {self.exactly_once}; "
            f"duplicated: {self.duplicated} (not a documented 'may have arrived' case: "
            f"{self.duplicates_unexplained}); lost: {self.lost}; early: {self.early}",
            f"lateness after due: {late}",
            "by level: " + "; ".join(f"{level}: {text}" for level, text in sorted(self.by_level.items())),
            "page rows at the end: " + ", ".join(f"{k}: {v}" for k, v in sorted(self.rows.items())),
            *[f"  {line}" for line in sorted(self.faults)],
            f"run: {self.seconds:.0f} s",
        ])  # fmt: skip


class SoakStack:
    """The topology; `levels` is [(delay_minutes, ...)] for the policy, one user (hook) per level."""

    def __init__(self, folder: Path, postgres: OwnPostgres, delays: list[int]):
        self.folder = Path(folder)
        self.delays = delays
        self.receiver = Receiver()
        self.redis = RedisWithSentinels(self.folder / "redis").start()
        self.database_url = postgres.create_database("soak")
        self.port = free_port()
        env = base_env(
            OPENDUTY_INSTANCE=str(self.folder / "instance"),
            DATABASE_URL=self.database_url,
            SECRET_KEY="soak",
            BASE_URL=f"http://127.0.0.1:{self.port}",
            EVENTS_RATE_LIMIT="0",
            **self.redis.settings(),
        )
        env.pop("REDIS_URL", None)
        self.processes = AppProcesses(self.folder / "processes", env)
        self.key = self._make_service()
        with ThreadPoolExecutor(1 + WORKERS) as pool:  # their Python start-ups overlap
            web = pool.submit(self.processes.gunicorn, self.port, workers=WEB_PROCESSES)
            self.workers = list(pool.map(self._start_worker, range(WORKERS)))
            self.web = web.result()

    def _app(self):
        settings = {"SQLALCHEMY_DATABASE_URI": self.database_url, "REDIS_URL": None, "SECRET_KEY": "soak",
                    **self.redis.settings()}  # fmt: skip
        return create_app(type("SoakConfig", (Config,), settings))

    def _make_service(self) -> str:
        app = self._app()
        with app.app_context():
            db.create_all()  # the models' schema (tests/test_migrations.py: the migrations build the same)
            users = [make_pager(f"Level {k}", {"webhook": (self.receiver.url(f"/level/{k}"), 0)})
                     for k in range(1, len(self.delays) + 1)]  # fmt: skip
            policy = make_policy([(delay, [user]) for delay, user in zip(self.delays, users, strict=True)])
            key = make_integration(make_service(policy, name="Soak")).key
            db.session.remove()
            db.engine.dispose()
        return key

    def _start_worker(self, index: int):
        """Start worker `index` and wait until it has registered. One name per worker, kept across
        restarts (as deploy/systemd/openduty-worker@.service does)."""
        name = f"soak-{index + 1}"
        process = self.processes.worker(name, wait=False)
        client = self.redis.client()

        def registered() -> bool:
            try:
                pid = client.hget(f"rq:worker:{name}", "pid")
                return process.poll() is not None or pid == str(process.pid).encode()
            except RedisError:  # a failover under way: ask again
                return False

        wait_for(registered, f"worker {name} to start", timeout=60)
        assert process.poll() is None, f"worker {name} exited:\n{self.processes.log(name)}"
        return process

    def web_processes(self) -> list[psutil.Process]:
        return [p for p in psutil.Process(self.web.pid).children() if p.status() != psutil.STATUS_ZOMBIE]

    # --- the faults ---

    def kill_worker(self, index: int = 0) -> str:
        started = time.monotonic()
        self.processes.kill(self.workers[index])
        time.sleep(1)  # RestartSec=1
        self.workers[index] = self._start_worker(index)
        return f"worker soak-{index + 1} killed (-9) and started again; back in {time.monotonic() - started:.1f} s"

    def kill_web_process(self) -> str:
        started = time.monotonic()
        victim = self.web_processes()[0]
        victim.kill()
        replaced = lambda: victim.pid not in [p.pid for p in self.web_processes()] and len(  # noqa: E731
            self.web_processes()) == WEB_PROCESSES  # fmt: skip
        wait_for(replaced, "gunicorn to replace the killed web process", timeout=60)
        return f"web process {victim.pid} killed (-9); gunicorn replaced it in {time.monotonic() - started:.1f} s"

    def kill_redis_primary(self) -> str:
        old = self.redis.kill_primary()
        took = self.redis.wait_failover(old, timeout=60)
        self.redis.restart(old)
        return f"Redis primary :{old} killed (-9); sentinels promoted :{self.redis.master_port()} in {took:.1f} s"

    def close(self) -> None:
        for process, _ in self.processes.started:  # measured already: no need to wait for them
            self.processes.kill_group(process)
        self.processes.stop_all()
        self.redis.stop()
        self.receiver.down()

    # --- the load ---

    def trigger(self, http: requests.Session, dedup_key: str, deadline: float) -> list:
        """Send one trigger, retrying what is refused (503, a broken connection) until it is
        accepted; every answer it met (the last is 202 if it was accepted)."""
        body = {
            "routing_key": self.key,
            "event_action": "trigger",
            "dedup_key": dedup_key,
            "payload": {"summary": f"Soak {dedup_key}", "source": "soak", "severity": "critical"},
        }
        answers = []
        while time.monotonic() < deadline:
            try:
                status = http.post(f"http://127.0.0.1:{self.port}/v2/enqueue", json=body, timeout=30).status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            answers.append(status)
            if status == 202:
                break
            time.sleep(0.3)
        return answers

    def incidents(self, prefix: str) -> dict[str, tuple[int, float]]:
        """dedup key -> (number, created at as a Unix time) for this run's incidents."""
        app = self._app()
        with app.app_context():
            rows = db.session.execute(
                select(Incident.dedup_key, Incident.number, Incident.created_at).where(
                    Incident.dedup_key.like(f"{prefix}-%")
                )
            ).all()
            db.session.remove()
            db.engine.dispose()
        return {key: (number, created.replace(tzinfo=UTC).timestamp()) for key, number, created in rows}

    def page_rows(self, numbers: list[int]) -> Counter:
        """How many page rows of these incidents are in each status (pending, sending, sent, ...)."""
        app = self._app()
        with app.app_context():
            rows = db.session.execute(
                select(Notification.status, db.func.count())
                .join(Incident, Notification.incident_id == Incident.id)
                .where(Incident.number.in_(numbers), Notification.purpose == "page")
                .group_by(Notification.status)
            ).all()
            db.session.remove()
            db.engine.dispose()
        return Counter(dict(rows))

    def unconfirmed_pages(self, numbers: list[int]) -> set[tuple[int, int]]:
        """(incident number, level) of the pages recorded as "may have arrived" (sent again after a
        send that may have been cut short: the documented at-most-twice cases)."""
        app = self._app()
        with app.app_context():
            rows = db.session.execute(
                select(Incident.number, Notification.level, Notification.id, Notification.unconfirmed,
                       Notification.folded_into_id)
                .join(Incident, Notification.incident_id == Incident.id)
                .where(Incident.number.in_(numbers), Notification.purpose == "page")
            ).all()  # fmt: skip
            db.session.remove()
            db.engine.dispose()
        own = {row.id: row.unconfirmed for row in rows}
        return {
            (row.number, row.level)
            for row in rows
            if row.unconfirmed or own.get(row.folded_into_id, 0)  # a folded page went with its primary
        }


def run_soak(stack: SoakStack, incidents: int, rate: float, faults: list[tuple[float, str]],
             settle: float = 60) -> SoakResult:  # fmt: skip
    """Open `incidents` incidents at `rate` a second; at each (seconds after the start, method name)
    of `faults` run that fault; then wait for every owed page (until `settle` s pass, after the last
    page's due time, without a page arriving), and count."""
    result = SoakResult(incidents=incidents)
    prefix = f"soak{time.time_ns()}"
    started_wall, started = time.time(), time.monotonic()
    sessions = threading.local()

    def send(i: int) -> list:
        pause = started + i / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        if not hasattr(sessions, "http"):
            sessions.http = requests.Session()
        return stack.trigger(sessions.http, f"{prefix}-{i}", time.monotonic() + 300)

    def inject(at: float, name: str):
        """Run fault `name` at `at` seconds (each fault on its own thread: a slow recovery does not
        put off the next fault)."""
        pause = started + at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        try:
            outcome = getattr(stack, name)()
        except Exception as exc:  # a fault that did not go as planned is reported, not hidden
            outcome = f"{name} failed: {exc!r}"
        result.faults.append(f"{at:6.1f} s: {outcome}")

    injectors = [threading.Thread(target=inject, args=fault, daemon=True) for fault in faults]
    for injector in injectors:
        injector.start()
    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(send, range(incidents)))
    for injector in injectors:
        injector.join()
    accepted = [bool(a) and a[-1] == 202 for a in answers]
    result.accepted = accepted.count(True)
    result.answers = Counter(status for a in answers for status in a)

    stored = stack.incidents(prefix)
    result.events_lost = sum(1 for i, ok in enumerate(accepted) if ok and f"{prefix}-{i}" not in stored)
    offsets = [sum(stack.delays[:k]) * 60 for k in range(len(stack.delays))]
    due = {(number, k + 1): created + offset for number, created in stored.values() for k, offset in enumerate(offsets)}
    result.owed = len(due)

    def arrivals() -> dict[tuple[int, int], list[float]]:
        found: dict[tuple[int, int], list[float]] = {}
        for at, path, event, number in stack.receiver.pages(started_wall):
            page = (number, int(path.rsplit("/", 1)[-1]))
            if event == "page" and page in due:
                found.setdefault(page, []).append(at)
        return found

    # Wait for every owed page: past the last due time, as long as pages keep coming (a backlog
    # draining on a busy machine is late, not lost), but give up after `settle` s without one.
    last_due, count, last_progress = max(due.values(), default=time.time()), 0, time.time()
    while len(found := arrivals()) < len(due) and time.time() < max(last_due, last_progress) + settle:
        if len(found) > count:
            count, last_progress = len(found), time.time()
        time.sleep(1)
    time.sleep(3)  # late duplicates
    found = arrivals()
    unconfirmed = stack.unconfirmed_pages([number for number, _ in stored.values()])
    for page, times in found.items():
        first = min(times)
        result.lateness.append(first - due[page])
        result.early += first < due[page]
        if len(times) > 1:
            result.duplicated += 1
            result.duplicates_unexplained += page not in unconfirmed
    result.delivered = len(found)
    result.exactly_once = sum(1 for times in found.values() if len(times) == 1)
    result.most_copies = max((len(t) for t in found.values()), default=0)
    result.lost = result.owed - result.delivered
    result.rows = stack.page_rows([number for number, _ in stored.values()])
    for level in range(1, len(stack.delays) + 1):
        late = [min(times) - due[page] for page, times in found.items() if page[1] == level]
        owed = sum(1 for page in due if page[1] == level)
        p50 = f", lateness p50 {statistics.median(late):.2f} s, max {max(late):.2f} s" if late else ""
        result.by_level[level] = f"{len(late)}/{owed}{p50}"
    result.seconds = time.monotonic() - started
    return result
