"""Sleep until some Redis keys change: a connection of its own with client-side tracking.

The scheduler thread (openduty.worker) sleeps until its next job is due instead of polling
Redis ten times a second. So that a job scheduled meanwhile for sooner is not released late,
Redis tells this connection of every change to a key under the watched prefixes (client-side
tracking, broadcast mode, RESP3 push messages: Redis 6 or later), and also of a flush, which ends
the sleep at once. No publisher has to cooperate: RQ's own writes wake it too. Where Redis
cannot track (before 6.0), `supported` turns false and the caller polls as before.
"""

from __future__ import annotations

from redis import Redis
from redis.connection import AbstractConnection
from redis.exceptions import ResponseError


class KeyWatch:
    def __init__(self, client: Redis, prefixes: list[str]) -> None:
        self.client = client
        self.prefixes = prefixes
        self.supported = True
        self._connection: AbstractConnection | None = None

    def _connect(self) -> AbstractConnection | None:
        pool = self.client.connection_pool
        connection = pool.connection_class(**{**pool.connection_kwargs, "protocol": 3})
        try:
            connection.connect()  # (HELLO 3: refused before Redis 6)
            command = ["CLIENT", "TRACKING", "ON", "BCAST"]
            for prefix in self.prefixes:
                command += ["PREFIX", prefix]
            connection.send_command(*command)
            connection.read_response()
        except ResponseError:  # this Redis cannot (HELLO 3 or CLIENT TRACKING refused)
            connection.disconnect()
            self.supported = False
            return None
        except BaseException:
            connection.disconnect()
            raise
        return connection

    def wait(self, seconds: float) -> bool:
        """Wait up to `seconds` for a change to a watched key; whether one came (all the changes
        that came are consumed). Raises RedisError / OSError if Redis is unreachable (the next
        call connects again). If Redis cannot watch keys, returns False at once (`supported` is false)."""
        if self._connection is None:
            self._connection = self._connect()
        connection = self._connection
        if connection is None:
            return False
        try:
            if not connection.can_read(timeout=max(0.0, seconds)):
                return False
            while connection.can_read(timeout=0):
                connection.read_response(push_request=True)
            return True
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._connection is not None:
            self._connection.disconnect()
            self._connection = None
