"""Event ingestion under gunicorn + PostgreSQL + Redis: throughput, latency, alert storm.

1. Sustained: `wrk` (C, keep-alive) posts Events API v2 triggers as fast as the server accepts
   them, for DURATION seconds; reported: accepted events/s (202s only), errors, the CPU per event
   of the web processes and of PostgreSQL, and how the web workers shared their CPU. Two key mixes:
   "dedup" (100 dedup keys: most events fold into open incidents) and "unique" (every event
   opens a new incident, the expensive case).
2. Latency at a fixed offered rate (RATE=200 events/s, open loop: each request is timed from its
   scheduled send time, so a slow server cannot hide queueing): p50 / p99 / max, and the CPU time
   the server (gunicorn master + workers) and the client spent per event. The client is one
   thread on non-blocking keep-alive sockets (CLIENT=threads: the earlier 16-thread http.client
   one, for comparison).
3. Alert storm: 10,000 events over 100 dedup keys from 20 concurrent keep-alive clients; checks
   exactly 100 open incidents whose alert counts sum to 10,000, no 5xx, and reports the time.
4. The ceiling (with "sustained"): a bare Flask endpoint that only parses the JSON and answers
   202 (bench/_ceiling_app.py), under the same gunicorn settings and the same wrk load; the
   sustained figures are also given as a share of it (issue 11 target: at least 50%). Beside it
   the floor app (bench/_floor_app.py): that endpoint plus one INSERT committed per event.
5. Cost at a low rate ("low"): LOW_RATE=25 events/s offered for LOW_SECONDS=20, open loop; the
   CPU time of gunicorn's master and workers per event (target: under 2 ms), beside the same for
   the ceiling app and for the floor app (bench/_floor_app.py: the bare endpoint plus one INSERT
   committed per event, the least storing an event costs with Flask-SQLAlchemy), and ("sql") the SQL
   statements per event, counted in this process (the app served by Flask's test client, one
   event at a time, as at a low rate: each is its own batch), with the connection pool's
   pre-ping checks counted apart.

Needs PostgreSQL (BENCH_DATABASE_URL, default the local openduty_bench2 database, recreated) and
Redis (BENCH_REDIS_URL, default db 2 of the local server), and `wrk` (Debian package wrk).
Run: `.venv/bin/python -m bench ingest` (WORKERS=2 THREADS=32 DURATION=15 RATE=200 RUNS=3;
LOW_RATE=25 LOW_SECONDS=20; PHASES=sustained,latency,storm,low,sql picks phases).
"""

import collections
import http.client
import json
import os
import re
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import psutil
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

from tests.processes import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/openduty_bench2")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/2")
WORKERS = int(os.environ.get("WORKERS", "2"))
THREADS = int(os.environ.get("THREADS", "32"))
DURATION = int(os.environ.get("DURATION", "15"))
RATE = int(os.environ.get("RATE", "200"))
RUNS = int(os.environ.get("RUNS", "3"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "64"))
# The latency generator: "select" (one thread, non-blocking sockets) or "threads" (the old one).
CLIENT = os.environ.get("CLIENT", "select")
MAX_CONNECTIONS = 64
# Which phases to run (comma-separated): sustained, latency, storm.
PHASES = set(os.environ.get("PHASES", "sustained,latency,storm,low,sql").split(","))
LOW_RATE = int(os.environ.get("LOW_RATE", "25"))
LOW_SECONDS = int(os.environ.get("LOW_SECONDS", "20"))
SQL_EVENTS = 200
# Served with the same gunicorn settings: the production app, and the bare Flask ceiling.
PRODUCTION_APP = "app:app"
CEILING_APP = "bench._ceiling_app:app"
FLOOR_APP = "bench._floor_app:create()"

WRK_SCRIPT = """
local n = 0
local keys = %(keys)d
local prefix = "%(prefix)s" .. math.random(1, 1000000000) .. "-"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  local key
  if keys > 0 then key = "k" .. (n %% keys) else key = prefix .. n end
  local body = '{"routing_key":"%(routing_key)s","event_action":"trigger","dedup_key":"' .. key ..
    '","payload":{"summary":"CPU high","source":"web-1","severity":"critical","custom_details":{"load":12.5}}}'
  return wrk.format(nil, "/v2/enqueue", nil, body)
end
"""


def _event(routing_key: str, dedup_key: str) -> bytes:
    return json.dumps(
        {
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": dedup_key,
            "payload": {"summary": "CPU high", "source": "web-1", "severity": "critical"},
        }
    ).encode()


def _app():
    sys.path.insert(0, ROOT)
    from config import Config, database_url
    from openduty import create_app

    settings = {"SQLALCHEMY_DATABASE_URI": database_url(DATABASE_URL), "REDIS_URL": REDIS_URL}
    config = type("BenchConfig", (Config,), settings)
    return create_app(config)


def _reset(app) -> str:
    """Empty schema, one service with one integration; returns its key."""
    from sqlalchemy import text

    from bench._floor_app import metadata as floor_metadata
    from openduty.extensions import db, redis
    from openduty.models import Integration, Service

    with app.app_context():
        floor_metadata.drop_all(db.engine)
        floor_metadata.create_all(db.engine)
        db.drop_all()
        db.session.execute(text("DROP TABLE IF EXISTS alembic_version"))
        db.session.commit()
        db.create_all()
        service = Service(name="Bench")
        integration = Integration(service=service, kind="events_v2", name="bench")
        db.session.add_all([service, integration])
        db.session.commit()
        redis.get().flushdb()
        return integration.key


def _counts(app) -> tuple[int, int, int]:
    from sqlalchemy import func, select

    from openduty.extensions import db
    from openduty.models import Incident, LogEntry

    with app.app_context():
        open_count, alerts = db.session.execute(
            select(func.count(), func.coalesce(func.sum(Incident.alert_count), 0)).where(Incident.status != "resolved")
        ).one()
        entries = db.session.scalar(select(func.count()).select_from(LogEntry))
        db.session.remove()
        return open_count, int(alerts), entries


class Server:
    def __init__(self, port: int, wsgi_app: str = PRODUCTION_APP):
        env = dict(
            os.environ,
            DATABASE_URL=DATABASE_URL,
            REDIS_URL=REDIS_URL,
            SECRET_KEY="bench",
            OPENDUTY_CONFIG="production",
            SESSION_COOKIE_SECURE="0",
            EVENTS_RATE_LIMIT="0",
        )
        self.port = port
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS),
                "--worker-class", "gthread", "--threads", str(THREADS), "--backlog", "2048", wsgi_app,
            ],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise SystemExit("gunicorn did not start")

    def cpu_seconds(self) -> float:
        """CPU time used so far by gunicorn's master and workers (user + system)."""
        return sum(self.cpu_by_process().values())

    def cpu_by_process(self) -> dict[int, float]:
        """CPU time (user + system) used so far by gunicorn's master and each worker, by pid."""
        pids = [self.process.pid]
        try:
            with open(f"/proc/{self.process.pid}/task/{self.process.pid}/children") as f:
                pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
        used = {}
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            used[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
        return used

    def worker_split(self, before: dict[int, float]) -> str:
        """How the workers shared the CPU since `before` (cpu_by_process()), e.g. "51/49%". The
        workers accept from one listening socket; wrk opens its connections at once and keeps them,
        so one worker may take most of them and serve nearly alone, on one core: such a run says
        more about that than about the code (the sustained figures swing by half between runs)."""
        now = self.cpu_by_process()
        used = [now[pid] - before.get(pid, 0.0) for pid in now if pid != self.process.pid]
        total = sum(used) or 1.0
        return "/".join(f"{100 * u / total:.0f}" for u in sorted(used, reverse=True)) + "%"

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _postgres_cpu() -> float:
    """CPU time (user + system) used so far by this machine's PostgreSQL processes: all of them, so
    the figure means something only while nothing else uses the server (and backends that exit
    meanwhile take their time with them)."""
    used = 0.0
    for process in psutil.process_iter(["name", "cpu_times"]):
        if (process.info["name"] or "").startswith("postgres") and process.info["cpu_times"]:
            used += sum(process.info["cpu_times"][:2])
    return used


def _wrk(port: int, routing_key: str, keys: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"keys": keys, "prefix": "u", "routing_key": routing_key})
    try:
        out = subprocess.run(
            ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION}s", "--latency", "-s", script.name,
             f"http://127.0.0.1:{port}/v2/enqueue"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(script.name)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    p50 = re.search(r"50%\s+([\d.]+\w+)", out).group(1)
    p99 = re.search(r"99%\s+([\d.]+\w+)", out).group(1)
    bad = int(non2xx.group(1)) if non2xx else 0
    accepted = (requests - bad) / DURATION
    return {"accepted_per_s": accepted, "non2xx": bad, "socket_errors": errors, "p50": p50, "p99": p99}


def _open_loop(port: int, routing_key: str, rate: int, seconds: int) -> dict:
    """Send `rate` events/s for `seconds` on keep-alive connections; latency from scheduled time.

    One thread multiplexes non-blocking sockets (selectors), so the generator costs a few tens of
    microseconds per request and no client thread waits for the GIL. Open loop: request n is due
    at start + n / rate whatever happened before; it goes out on an idle connection (a new one is
    opened while fewer than MAX_CONNECTIONS exist), else it waits for one, and its latency is
    counted from its due time, so time spent waiting in the client counts too.
    """
    total = rate * seconds
    requests = [_request(routing_key, f"lat-{n % 500}") for n in range(total)]
    sel = selectors.DefaultSelector()
    idle: list[socket.socket] = []
    inflight: dict[socket.socket, list] = {}  # socket -> [request index, buffer]
    waiting: collections.deque[int] = collections.deque()  # due, not sent yet (no free connection)
    opened = 0
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    start = time.monotonic() + 0.2
    n = 0  # next request to become due

    def drop(conn: socket.socket) -> None:
        """The server closed it (gunicorn drops idle keep-alive connections): resend what it held."""
        nonlocal opened
        sel.unregister(conn)
        conn.close()
        opened -= 1
        if conn in idle:
            idle.remove(conn)
        if conn in inflight:
            waiting.appendleft(inflight.pop(conn)[0])

    while len(latencies) < total:
        now = time.monotonic()
        while n < total and start + n / rate <= now:
            waiting.append(n)
            n += 1
        while waiting:
            if not idle and opened < MAX_CONNECTIONS:
                conn = socket.create_connection(("127.0.0.1", port))
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ)
                idle.append(conn)
                opened += 1
            if not idle:
                break  # every connection is busy: sent when one frees up, and the wait counts
            conn = idle.pop()
            index = waiting.popleft()
            inflight[conn] = [index, b""]
            try:
                conn.sendall(requests[index])
            except OSError:
                drop(conn)
        timeout = max(0.0, start + n / rate - time.monotonic()) if n < total else 1.0
        for key, _ in sel.select(timeout):
            conn = key.fileobj
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            if not data:
                drop(conn)
                continue
            state = inflight[conn]
            state[1] += data
            status = _complete_response(state[1])
            if status is None:
                continue
            latencies.append(time.monotonic() - (start + state[0] / rate))
            statuses[status] = statuses.get(status, 0) + 1
            del inflight[conn]
            idle.append(conn)
    for conn in idle:
        sel.unregister(conn)
        conn.close()
    sel.close()
    return _latency_summary(latencies, statuses, opened)


def _request(routing_key: str, dedup_key: str) -> bytes:
    body = _event(routing_key, dedup_key)
    head = (
        f"POST /v2/enqueue HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _complete_response(buffer: bytes) -> int | None:
    """The status of the HTTP response in `buffer` once all of it (per Content-Length) arrived."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buffer[:end].decode("latin-1")
    length = int(re.search(r"(?im)^content-length:\s*(\d+)", head).group(1))
    if len(buffer) < end + 4 + length:
        return None
    return int(head.split(" ", 2)[1])


def _latency_summary(latencies: list[float], statuses: dict[int, int], connections: int) -> dict:
    latencies.sort()
    return {
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "max_ms": 1000 * latencies[-1],
        "statuses": statuses,
        "connections": connections,
    }


def _open_loop_threads(port: int, routing_key: str, rate: int, seconds: int) -> dict:
    """The previous generator (CLIENT=threads): 16 threads with http.client, for comparison."""
    total = rate * seconds
    start = time.monotonic() + 0.2
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    next_index = iter(range(total))

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for n in next_index:
            due = start + n / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            body = _event(routing_key, f"lat-{n % 500}")
            conn.request("POST", "/v2/enqueue", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            elapsed = time.monotonic() - due
            with lock:
                latencies.append(elapsed)
                statuses[response.status] = statuses.get(response.status, 0) + 1
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return _latency_summary(latencies, statuses, 16)


def _storm(port: int, routing_key: str, events: int = 10_000, keys: int = 100, clients: int = 20) -> dict:
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    per_client = events // clients
    bodies = [_event(routing_key, f"storm-{n % keys}") for n in range(keys)]
    barrier = threading.Barrier(clients + 1)

    def client(c: int):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine: dict[int, int] = {}
        barrier.wait()
        for n in range(per_client):
            body = bodies[(c * per_client + n) % keys]
            conn.request("POST", "/v2/enqueue", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            mine[response.status] = mine.get(response.status, 0) + 1
        conn.close()
        with lock:
            for status, count in mine.items():
                statuses[status] = statuses.get(status, 0) + count

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    began = time.monotonic()
    for t in threads:
        t.join()
    return {"seconds": time.monotonic() - began, "statuses": statuses}


def main() -> None:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    app = _app()
    print(f"gunicorn: {WORKERS} workers x {THREADS} threads (gthread); wrk -t2 -c{CONNECTIONS} -d{DURATION}s; "
          f"{os.cpu_count()} CPUs; runs: {RUNS}", flush=True)  # fmt: skip
    phases = ("dedup", "unique", "ceiling", "floor", "latency", "storm", "low", "low_ceiling", "low_floor")
    results: dict[str, list] = {phase: [] for phase in phases}
    for run in range(RUNS):
        mixes = (("ceiling", 100), ("floor", 0), ("dedup", 100), ("unique", 0))
        for mix, keys in mixes if "sustained" in PHASES else ():
            key = _reset(app)
            server = Server(free_port(), {"ceiling": CEILING_APP, "floor": FLOOR_APP}.get(mix, PRODUCTION_APP))
            try:
                before, database = server.cpu_by_process(), _postgres_cpu()
                r = _wrk(server.port, key, keys)
                events = r["accepted_per_s"] * DURATION or 1
                r["web_ms"] = 1000 * (server.cpu_seconds() - sum(before.values())) / events
                r["database_ms"] = max(0.0, 1000 * (_postgres_cpu() - database) / events)
                r["split"] = server.worker_split(before)
            finally:
                server.stop()
            results[mix].append(r)
            print(f"run {run + 1} sustained/{mix}: {r['accepted_per_s']:.0f} events/s accepted, "
                  f"non-2xx {r['non2xx']}, wrk p50 {r['p50']} p99 {r['p99']}; CPU per event: web "
                  f"{r['web_ms']:.2f} ms, PostgreSQL {r['database_ms']:.2f} ms; workers' share of the web CPU "
                  f"{r['split']}", flush=True)  # fmt: skip
        if "low" in PHASES:
            _low_rate_run(app, run, results)

        if "latency" in PHASES:
            _latency_run(app, run, results)
        if "storm" in PHASES:
            _storm_run(app, run, results)

    if "sql" in PHASES:
        results["sql"] = _sql_per_event(app)
    _medians(results)


def _low_rate_run(app, run: int, results: dict) -> None:
    """Server CPU per event at LOW_RATE events/s (what a quiet day costs: no batching to share it),
    beside the same for the bare endpoint (the ceiling app) and for the floor app (the bare endpoint
    plus one INSERT committed per event: bench/_floor_app.py), under the same gunicorn settings."""
    for name, wsgi_app in (("low_ceiling", CEILING_APP), ("low_floor", FLOOR_APP), ("low", PRODUCTION_APP)):
        key = _reset(app)
        server = Server(free_port(), wsgi_app)
        try:
            _open_loop(server.port, key, LOW_RATE, 2)  # warm-up (connections, caches), not counted
            before = server.cpu_seconds()
            lat = _open_loop(server.port, key, LOW_RATE, LOW_SECONDS)
            lat["server_cpu_ms"] = 1000 * (server.cpu_seconds() - before) / (LOW_RATE * LOW_SECONDS)
        finally:
            server.stop()
        results[name].append(lat)
        print(f"run {run + 1} low rate {LOW_RATE}/s, {_LOW_NAMES[name]}: server CPU {lat['server_cpu_ms']:.2f} ms "
              f"per event, p50 {lat['p50_ms']:.1f} ms, statuses {lat['statuses']}", flush=True)  # fmt: skip


_LOW_NAMES = {
    "low_ceiling": "ceiling (bare Flask)",
    "low_floor": "floor (bare Flask + one INSERT committed per event)",
    "low": "Openduty",
}


def _sql_per_event(app) -> dict:
    """SQL statements per event, one event at a time through the real endpoint (in this process):
    deduplicated triggers (50 open incidents) and triggers that each open an incident."""
    key = _reset(app)
    app.config.update(EVENTS_RATE_LIMIT=0)
    client = app.test_client()
    for n in range(50):  # warm-up: opens the 50 incidents, fills the caches
        client.post("/v2/enqueue", data=_event(key, f"sql-{n}"), content_type="application/json")
    result = {}
    for mix, dedup_keys in (("dedup", [f"sql-{n % 50}" for n in range(SQL_EVENTS)]),
                            ("unique", [f"sql-new-{n}" for n in range(SQL_EVENTS)])):  # fmt: skip
        counts = _count_sql(client, [_event(key, k) for k in dedup_keys])
        pre_ping = app.config["SQLALCHEMY_ENGINE_OPTIONS"].get("pool_pre_ping", False)
        result[mix] = (counts["statements"] / SQL_EVENTS, counts["checkouts"] / SQL_EVENTS if pre_ping else 0.0)
        print(f"SQL per event ({mix} triggers, one at a time): {result[mix][0]:.2f} statements "
              f"+ {result[mix][1]:.2f} pool pre-ping checks", flush=True)  # fmt: skip
    return result


def _count_sql(client, bodies: list[bytes]) -> collections.Counter:
    counts = collections.Counter()

    def statement(conn, cursor, sql, parameters, context, executemany):
        counts["statements"] += 1

    def checkout(dbapi_connection, record, proxy):
        counts["checkouts"] += 1

    sa_event.listen(Engine, "before_cursor_execute", statement)
    sa_event.listen(Pool, "checkout", checkout)
    try:
        for body in bodies:
            assert client.post("/v2/enqueue", data=body, content_type="application/json").status_code == 202
    finally:
        sa_event.remove(Engine, "before_cursor_execute", statement)
        sa_event.remove(Pool, "checkout", checkout)
    return counts


def _latency_run(app, run: int, results: dict) -> None:
    key = _reset(app)
    server = Server(free_port())
    try:
        open_loop = _open_loop_threads if CLIENT == "threads" else _open_loop
        open_loop(server.port, key, RATE, 2)  # warm-up (connections, caches), not counted
        server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
        lat = open_loop(server.port, key, RATE, 10)
        lat["server_cpu_ms"] = 1000 * (server.cpu_seconds() - server_cpu) / (RATE * 10)
        lat["client_cpu_ms"] = 1000 * (time.process_time() - client_cpu) / (RATE * 10)
    finally:
        server.stop()
    results["latency"].append(lat)
    print(f"run {run + 1} latency at {RATE}/s: p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms, "
          f"max {lat['max_ms']:.1f} ms, statuses {lat['statuses']}, {lat['connections']} connections; "
          f"CPU per event: server {lat['server_cpu_ms']:.2f} ms, client {lat['client_cpu_ms']:.2f} ms",
          flush=True)  # fmt: skip


def _storm_run(app, run: int, results: dict) -> None:
    key = _reset(app)
    server = Server(free_port())
    try:
        storm = _storm(server.port, key)
    finally:
        server.stop()
    open_count, alerts, entries = _counts(app)
    fivexx = sum(c for s, c in storm["statuses"].items() if s >= 500)
    ok = open_count == 100 and alerts == 10_000 and fivexx == 0 and storm["statuses"] == {202: 10_000}
    storm.update(open=open_count, alerts=alerts, ok=ok)
    results["storm"].append(storm)
    print(f"run {run + 1} storm: {storm['seconds']:.2f} s ({10_000 / storm['seconds']:.0f} events/s), "
          f"{open_count} open incidents, alert counts sum {alerts}, {entries} timeline entries, "
          f"statuses {storm['statuses']} -> {'OK' if ok else 'FAILED'}", flush=True)  # fmt: skip


_SUSTAINED_NAMES = {
    "ceiling": "ceiling (bare Flask endpoint, same gunicorn settings)",
    "floor": "floor (bare Flask + one INSERT committed per event)",
    "dedup": "sustained v2 triggers (dedup keys)",
    "unique": "sustained v2 triggers (unique keys)",
}


def _print_sustained(name: str, runs: list[dict], ceiling: float, target: str = "") -> None:
    rate = statistics.median([r["accepted_per_s"] for r in runs])
    web = statistics.median([r["web_ms"] for r in runs])
    database = statistics.median([r["database_ms"] for r in runs])
    print(f"{name}: {rate:.0f} events/s = {100 * rate / ceiling:.0f}% of the ceiling{target}; CPU per event: "
          f"web {web:.2f} ms, PostgreSQL {database:.2f} ms")  # fmt: skip


def _medians(results: dict) -> None:
    def median(values):
        return statistics.median(values)

    print("== medians ==")
    for mix, name in _SUSTAINED_NAMES.items() if results["ceiling"] else ():
        ceiling = median([r["accepted_per_s"] for r in results["ceiling"]])
        _print_sustained(name, results[mix], ceiling, " (target >= 50%)" if mix in ("dedup", "unique") else "")
        both = [r for r in results[mix] if int(r["split"].split("/")[0]) < 70]
        if both and len(both) < len(results[mix]):
            _print_sustained(f"  the {len(both)} run(s) where both workers served", both, ceiling)
    for name in ("low_ceiling", "low_floor", "low") if results["low"] else ():
        target = " (target < 2 ms)" if name == "low" else ""
        print(f"at {LOW_RATE} events/s, {_LOW_NAMES[name]}: server CPU "
              f"{median([r['server_cpu_ms'] for r in results[name]]):.2f} ms per event{target}")  # fmt: skip
    for mix, (statements, pings) in results.get("sql", {}).items():
        print(f"SQL per event ({mix} triggers, one at a time): {statements:.2f} statements + {pings:.2f} "
              f"pre-ping checks")  # fmt: skip
    if not results["latency"]:
        return _storm_median(results)
    print(f"latency at {RATE} events/s offered: p50 {median([r['p50_ms'] for r in results['latency']]):.1f} ms, "
          f"p99 {median([r['p99_ms'] for r in results['latency']]):.1f} ms (target < 50 ms); CPU per event: "
          f"server {median([r['server_cpu_ms'] for r in results['latency']]):.2f} ms, "
          f"client {median([r['client_cpu_ms'] for r in results['latency']]):.2f} ms")  # fmt: skip
    _storm_median(results)


def _storm_median(results: dict) -> None:
    if not results["storm"]:
        return
    storm_seconds = statistics.median([r["seconds"] for r in results["storm"]])
    print(f"alert storm (10,000 events, 100 keys, 20 clients): {storm_seconds:.2f} s; "
          f"all runs correct: {all(r['ok'] for r in results['storm'])}")  # fmt: skip
