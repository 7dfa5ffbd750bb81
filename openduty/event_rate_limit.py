"""The ingest rate limit: at most EVENTS_RATE_LIMIT events per integration key per window.

Kept in Redis so that every web process counts against the same window; Redis failing never
blocks ingestion (see `seconds_until_allowed`).
"""

from __future__ import annotations

import hashlib
import logging
import math

from flask import current_app

from openduty import clock
from openduty.extensions import redis

log = logging.getLogger(__name__)


def seconds_until_allowed(routing_key: str, count: int = 1) -> int:
    """Count `count` events against the key's window; 0 if allowed, else seconds to wait.

    A fixed window per integration key in Redis (INCRBY + EXPIRE in one round trip). Redis being
    down, or failing in any way, never blocks ingestion: the database, not Redis, is what must not
    lose events.
    """
    limit = current_app.config["EVENTS_RATE_LIMIT"]
    if not limit:
        return 0
    window = current_app.config["EVENTS_RATE_WINDOW_SECONDS"]
    now = clock.now().timestamp()
    slot = int(now // window)
    # A digest, not the key: bounded size whatever was sent, and no secret in Redis key names.
    digest = hashlib.blake2b(routing_key.encode("utf-8", "backslashreplace"), digest_size=16).hexdigest()
    name = f"openduty:events:rate:{digest}:{slot}"
    try:
        with redis.get().pipeline(transaction=False) as pipe:
            pipe.incrby(name, count)
            pipe.expire(name, window + 1)
            used = pipe.execute()[0]
    except Exception as exc:  # not only RedisError: redis-py raises ValueError on a garbled reply
        log.warning("Event rate limit skipped, Redis is unavailable: %r", exc)
        return 0
    if used <= limit:
        return 0
    return max(1, math.ceil((slot + 1) * window - now))
