"""Is the process behind an RQ registration still alive? Reconcile asks it of the worker that
started a job, the scheduler asks it of the holder of a scheduler lock, and a starting worker asks
it of a registration under its own name.

A registration carries the pid, the hostname and (for Openduty's processes) `host_id`: the host
and PID namespace in which that pid means something. Only there can a dead pid be seen at once;
elsewhere the registration's heartbeat (or its expiry) has to tell.
"""

import os
import socket
from datetime import UTC, datetime
from functools import cache

from redis import Redis
from rq.utils import utcparse

WORKER_KEY_PREFIX = "rq:worker:"
# An Openduty worker refreshes its heartbeat every WORKER_HEARTBEAT_SECONDS, also while a job runs
# (its scheduler thread does it); one silent for WORKER_STALE_SECONDS is dead or frozen, wherever
# it runs. (A plain RQ SimpleWorker beats only between jobs, up to 75 s apart.)
WORKER_HEARTBEAT_SECONDS = 1
WORKER_STALE_SECONDS = 10


@cache
def host_id() -> str:
    """This host (boot) and PID namespace: containers sharing a hostname still differ here."""
    parts = [socket.gethostname()]
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            parts.append(f.read().strip())
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        pass
    return "/".join(parts)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def dead_here(info: dict[str, str]) -> bool:
    """Whether a registration was made on this host and its process no longer exists."""
    pid = int(info.get("pid") or 0)
    return info.get("host_id") == host_id() and pid > 0 and not pid_alive(pid)


def decoded(raw: dict) -> dict[str, str]:
    """A Redis hash as text."""
    return {_text(k): _text(v) for k, v in raw.items()}


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def worker_alive(conn: Redis, name: str | None) -> bool:
    """Whether the RQ worker `name` is registered, not dead, running (if on this host), and (if an
    Openduty worker) heard from within WORKER_STALE_SECONDS."""
    if not name:
        return False
    info = decoded(conn.hgetall(WORKER_KEY_PREFIX + name))
    if not info or "death" in info or dead_here(info):
        return False
    if "host_id" in info:
        age = heartbeat_age(info)
        return age is not None and age <= WORKER_STALE_SECONDS
    return True


def heartbeat_age(info: dict[str, str]) -> float | None:
    """Seconds since the registration's last heartbeat (None if it has none)."""
    if not info.get("last_heartbeat"):
        return None
    return (datetime.now(UTC) - utcparse(info["last_heartbeat"]).replace(tzinfo=UTC)).total_seconds()
