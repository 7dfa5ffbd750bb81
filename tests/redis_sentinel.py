"""Redis as production runs it with Sentinel, on this machine: a primary, a replica and three
sentinels (Debian's `redis-sentinel`), each a process of its own on a loopback TCP port, to kill
the primary and watch the sentinels fail over.

Nothing here needs pytest: tests/test_sentinel.py and the soak (tests/soak.py, bench/soak.py)
use it.
"""

import shutil
import subprocess
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError
from redis.sentinel import Sentinel

from tests.processes import free_port, redis_server_binary, wait_for

MASTER_NAME = "openduty"
# A sentinel calls the master down after this long without an answer; quorum 2 of 3 then elects
# a leader that promotes the replica.
DOWN_AFTER_MS = 1000


def sentinel_binary() -> str | None:
    """Debian's redis-sentinel (package `redis-sentinel`), or None."""
    return shutil.which("redis-sentinel")


class RedisWithSentinels:
    """A primary and `replicas` replicas (redis-server) and `sentinels` sentinels on loopback, in `folder`.

    `settings()` is the app's environment for it (REDIS_SENTINELS, REDIS_SENTINEL_MASTER);
    `kill_primary()` SIGKILLs whichever server is the master now; `wait_failover(old)` waits until
    the sentinels name another; `restart(port)` starts a killed server again as a replica.
    """

    def __init__(self, folder: Path, replicas: int = 1, sentinels: int = 3):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.server_ports = [free_port() for _ in range(1 + replicas)]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.servers: dict[int, subprocess.Popen] = {}
        self.sentinels: dict[int, subprocess.Popen] = {}

    def settings(self) -> dict[str, str]:
        return {
            "REDIS_SENTINELS": ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports),
            "REDIS_SENTINEL_MASTER": MASTER_NAME,
        }

    def _spawn(self, label: str, args: list[str]) -> subprocess.Popen:
        log = open(self.folder / f"{label}.log", "ab")  # noqa: SIM115 (the server keeps writing to it)
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return process

    def _start_server(self, port: int, replica_of: int | None) -> None:
        folder = self.folder / f"redis-{port}"
        folder.mkdir(exist_ok=True)
        args = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)]
        args += ["--save", "", "--appendonly", "no", "--loglevel", "warning"]
        if replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        self.servers[port] = self._spawn(f"redis-{port}", args)
        wait_for(lambda: _answers(port), f"redis-server on {port} to answer", timeout=10)

    def start(self) -> "RedisWithSentinels":
        primary, *replicas = self.server_ports
        self._start_server(primary, None)
        for port in replicas:
            self._start_server(port, primary)
        for port in self.sentinel_ports:
            config = self.folder / f"sentinel-{port}.conf"  # a sentinel rewrites its own config file
            config.write_text(
                f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {self.folder}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {primary} 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER_NAME} 10000\n"
                f"sentinel parallel-syncs {MASTER_NAME} 1\n"
            )
            self.sentinels[port] = self._spawn(f"sentinel-{port}", [sentinel_binary(), str(config)])
        wait_for(self._ready, "the sentinels to see each other and the replicas", timeout=30, interval=0.2)
        return self

    def _ready(self) -> bool:
        try:
            for port in self.sentinel_ports:
                with Redis(port=port, socket_timeout=2) as sentinel:
                    master = sentinel.sentinel_master(MASTER_NAME)
                    if master["num-other-sentinels"] < len(self.sentinel_ports) - 1:
                        return False
                    if master["num-slaves"] < len(self.server_ports) - 1:
                        return False
            return True
        except RedisError:
            return False

    def master_port(self) -> int:
        """The master's port as the sentinels say now."""
        sentinel = Sentinel([("127.0.0.1", port) for port in self.sentinel_ports], socket_timeout=2)
        return sentinel.discover_master(MASTER_NAME)[1]

    def client(self) -> Redis:
        """A client of the master, found through the sentinels (as the app's)."""
        sentinel = Sentinel([("127.0.0.1", port) for port in self.sentinel_ports], socket_timeout=2)
        return sentinel.master_for(MASTER_NAME, socket_timeout=5)

    def kill_primary(self) -> int:
        """SIGKILL the server that is the master now; its port."""
        port = self.master_port()
        process = self.servers[port]
        process.kill()
        process.wait(10)
        return port

    def wait_failover(self, old_port: int, timeout: float = 30) -> float:
        """Wait until the sentinels name a master other than `old_port` and it takes writes; seconds."""

        def promoted() -> bool:
            try:
                port = self.master_port()
                with Redis(port=port, socket_timeout=2) as client:
                    return port != old_port and client.info("replication")["role"] == "master"
            except RedisError:
                return False

        return wait_for(promoted, "the sentinels to fail over", timeout=timeout, interval=0.1)

    def restart(self, port: int) -> None:
        """Start a killed server again as a replica of the master now (as its supervisor would;
        the sentinels would demote it anyway)."""
        self._start_server(port, self.master_port())

    def stop(self) -> None:
        for process in [*self.sentinels.values(), *self.servers.values()]:
            if process.poll() is None:
                process.kill()
                process.wait(10)


def _answers(port: int) -> bool:
    try:
        with Redis(port=port, socket_timeout=2) as client:
            return bool(client.ping())
    except RedisError:
        return False
