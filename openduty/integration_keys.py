"""Integration key -> service, for ingest: a per-process cache in front of one query.

Every event names its service by an integration key; looking each one up would cost a query per
request. Known keys are cached for EVENTS_KEY_CACHE_SECONDS; any ORM write to a Service or an
Integration in this process drops the cache (SQLAlchemy events below), and `forget_keys()` drops
it when a commit suggests a cached key went stale in another process.
"""

from __future__ import annotations

import functools
import time
from typing import Any, NamedTuple

from flask import current_app
from sqlalchemy import bindparam, select
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, object_session

from openduty.extensions import db
from openduty.models import Integration, Service


class KeyedService(NamedTuple):
    """What ingest needs of a key's service: where events go, whether it takes them, and what
    urgency its new incidents get (openduty.urgency)."""

    id: int
    disabled: bool
    urgency: str
    support_hours: dict[str, Any] | None


def services_by_key(keys: set[str]) -> dict[str, KeyedService]:
    """Integration key -> its KeyedService, from the key cache or one query.

    Known keys are cached for EVENTS_KEY_CACHE_SECONDS per process (unknown keys never are, so a
    new integration works at once). A change to a service or integration made through the ORM in
    this process clears the cache at once; one made in another process (disabling or deleting a
    service, regenerating or deleting a key) takes effect here within the TTL.
    """
    ttl = current_app.config["EVENTS_KEY_CACHE_SECONDS"]
    found: dict[str, KeyedService] = {}
    cache = _key_cache() if ttl > 0 else None
    now = time.monotonic()
    missing = keys
    if cache is not None:
        missing = set()
        for key in keys:
            entry = cache.get(key)
            if entry is not None and entry[0] > now:
                found[key] = entry[1]
            else:
                missing.add(key)
    if missing:
        rows = db.session.execute(_services_query(), {"keys": list(missing)})
        for key, *columns in rows:
            found[key] = KeyedService(*columns)
            if cache is not None:
                cache[key] = (now + ttl, found[key])
    return found


def key_refusal(routing_key: str) -> str | None:
    """Why events with this key would be refused ("unknown_key", "disabled"), or None if they would not.

    For a request that carries no events (an Alertmanager webhook with no alerts): its key is still
    checked, so a wrong key is never answered with success.
    """
    service = services_by_key({routing_key}).get(routing_key)
    if service is None:
        return "unknown_key"
    return "disabled" if service.disabled else None


@functools.cache
def _services_query():
    return (
        select(Integration.key, Service.id, Service.disabled, Service.urgency, Service.support_hours)
        .join(Service, Service.id == Integration.service_id)
        .where(Integration.key.in_(bindparam("keys", expanding=True)))
    )


# Integration key -> (expires at, KeyedService), per app; cleared whenever the ORM
# writes a Service or an Integration in this process (the generation says so).
_key_cache_generation = 0


def _key_cache() -> dict[str, tuple[float, KeyedService]]:
    holder = current_app.extensions.get("openduty_event_keys")
    if holder is None or holder[0] != _key_cache_generation:
        holder = current_app.extensions["openduty_event_keys"] = (_key_cache_generation, {})
    return holder[1]


def forget_keys() -> None:
    """Drop every cached integration key (in this process)."""
    global _key_cache_generation
    _key_cache_generation += 1


def _forget_keys_on_write(_mapper, _connection, target) -> None:
    session = object_session(target)
    if session is not None:
        session.info["openduty.integration_keys.changed"] = True
    forget_keys()


for _model in (Service, Integration):
    for _name in ("after_insert", "after_update", "after_delete"):
        sa_event.listen(_model, _name, _forget_keys_on_write)


@sa_event.listens_for(Session, "after_commit")
def _forget_keys_after_commit(session: Session) -> None:
    # Again after the commit: a lookup between the flush and the commit may have cached old rows.
    if session.info.pop("openduty.integration_keys.changed", False):
        forget_keys()
