"""Heartbeats: a `heartbeat` integration expects a ping every interval; a miss opens an incident.

Each one's state is a `Heartbeat` row (1:1 with its integration). The first ping arms it: state
`up`, `due_at` = ping + interval + grace, and the shared timer ("heartbeat", integration id) at
`due_at`. No ping by then, and the timer's handler `missed()` opens an incident with dedup key
`heartbeat` through openduty.events, as any event would (so escalation, maintenance and the rest
behave the same); the next ping resolves it. A paused heartbeat has no timer and never fires;
resuming waits for the next ping.

A ping is one transaction on one row. While a heartbeat is up, a ping moves `due_at` but not the
timer: the timer stays at its earlier due time, and when it fires `missed()` finds the later
`due_at` and re-arms there. So a steady heartbeat costs one UPDATE per ping and one timer job per
window however often it pings; only arming (the first ping, the one after a miss or a resume) and
changing the settings touch the timer (docs/integrations.md).
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from openduty import clock, timers, validation
from openduty.errors import ValidationError
from openduty.events import Event, apply_events
from openduty.extensions import db
from openduty.models import Heartbeat, Integration
from openduty.models.heartbeat import MAX_INTERVAL_SECONDS, MIN_INTERVAL_SECONDS

DEDUP_KEY = "heartbeat"
TIMER_KIND = "heartbeat"
SETTINGS = ("interval_seconds", "grace_seconds")
FIELDS = (*SETTINGS, "paused")
STATE_LABELS = {
    "waiting": "waiting for a ping",
    "up": "up",
    "missed": "missed",
    "paused": "paused",
}


def _given(value: Any) -> bool:
    return value not in (None, "")


def clean_settings(data: dict[str, Any], heartbeat: Heartbeat | None = None) -> dict[str, Any]:
    """Validate the heartbeat fields present in `data` (the interval is required when creating);
    raises ValidationError naming each bad field."""
    checks = {
        "interval_seconds": lambda: validation.integer(
            data.get("interval_seconds"),
            minimum=MIN_INTERVAL_SECONDS,
            maximum=MAX_INTERVAL_SECONDS,
            label="The interval (seconds)",
        ),
        "grace_seconds": lambda: validation.integer(
            data.get("grace_seconds") if _given(data.get("grace_seconds")) else 0,
            minimum=0,
            maximum=MAX_INTERVAL_SECONDS,
            label="The grace (seconds)",
        ),
        "paused": lambda: validation.boolean(data.get("paused"), "Paused"),
    }
    if heartbeat is None:
        checks.pop("paused")
        if not _given(data.get("interval_seconds")):
            checks["interval_seconds"] = _interval_required
    else:  # an update changes only what it names
        checks = {name: check for name, check in checks.items() if name in data}
    return validation.collect(checks)


def _interval_required():
    raise validation.FieldError(
        f"A heartbeat needs an interval: how many seconds (at least {MIN_INTERVAL_SECONDS}) may pass between pings."
    )


def refuse_settings(data: dict[str, Any]) -> None:
    """For integrations of other kinds: heartbeat settings given to them are a mistake worth saying."""
    given = [name for name in SETTINGS if _given(data.get(name))]
    if given:
        raise ValidationError({name: "Only heartbeat integrations take this." for name in given})


def add(integration: Integration, clean: dict[str, Any]) -> Heartbeat:
    """The state of a new heartbeat integration: waiting for its first ping, nothing armed."""
    heartbeat = Heartbeat(integration=integration, paused=False, state="waiting", **clean)
    db.session.add(heartbeat)
    return heartbeat


def update(heartbeat: Heartbeat, data: dict[str, Any]) -> Heartbeat:
    """Change the interval, grace or paused flag (`data` names which); ValidationError if any is bad."""
    clean = clean_settings(data, heartbeat)
    paused = clean.pop("paused", None)
    for name, value in clean.items():
        setattr(heartbeat, name, value)
    if paused is True and not heartbeat.paused:
        pause(heartbeat)
    elif paused is False and heartbeat.paused:
        resume(heartbeat)
    elif clean and heartbeat.state == "up" and not heartbeat.paused:
        # The window changed: due from the last ping by the new one (maybe earlier than the timer).
        heartbeat.due_at = heartbeat.last_ping_at + heartbeat.window
        timers.set_timer(TIMER_KIND, heartbeat.integration_id, heartbeat.due_at)
    return heartbeat


def pause(heartbeat: Heartbeat) -> None:
    """Never fire until resumed: the timer is cancelled (an open miss stays open until a ping)."""
    heartbeat.paused = True
    heartbeat.due_at = None
    if heartbeat.state == "up":
        heartbeat.state = "waiting"
    timers.set_timer(TIMER_KIND, heartbeat.integration_id, None)


def resume(heartbeat: Heartbeat) -> None:
    """Watch again from the next ping (a job that stopped while paused is not a miss)."""
    heartbeat.paused = False


def ping(key: str) -> Heartbeat | None:
    """A ping with this key, in the current write transaction (the caller commits); None if no
    heartbeat has the key. Resolves an open miss; arms the timer unless already armed or paused."""
    heartbeat = db.session.scalar(
        select(Heartbeat)
        .join(Heartbeat.integration)
        .where(Integration.key == key, Integration.kind == "heartbeat")
        .with_for_update(of=Heartbeat)
    )
    if heartbeat is None:
        return None
    now = clock.now()
    before = heartbeat.state
    heartbeat.last_ping_at = now
    if before == "missed":
        apply_events([Event(key, "resolve", DEDUP_KEY, via="heartbeat")])
        heartbeat.state = "waiting"
    if heartbeat.paused:
        return heartbeat
    heartbeat.state = "up"
    heartbeat.due_at = now + heartbeat.window
    if before != "up":  # while up, the armed timer is earlier and re-arms itself (missed())
        timers.set_timer(TIMER_KIND, heartbeat.integration_id, heartbeat.due_at)
    return heartbeat


def missed(integration_id: int, due: datetime) -> str:
    """The timer's handler: open the heartbeat's incident if no ping came in time; re-arm at the
    later `due_at` if pings moved it; nothing if it was paused, deleted or is not up."""
    heartbeat = db.session.scalar(
        select(Heartbeat)
        .options(joinedload(Heartbeat.integration))
        .where(Heartbeat.integration_id == integration_id)
        .with_for_update(of=Heartbeat)
    )
    if heartbeat is None or heartbeat.paused or heartbeat.state != "up" or heartbeat.due_at is None:
        return "nothing due"
    if heartbeat.due_at > clock.now():
        timers.set_timer(TIMER_KIND, integration_id, heartbeat.due_at)
        return "re-armed"
    heartbeat.state = "missed"
    heartbeat.due_at = None
    integration = heartbeat.integration
    since = heartbeat.last_ping_at.astimezone(UTC)
    summary = f"Heartbeat {integration.name} missed: no ping since {since:%Y-%m-%d %H:%M:%S} UTC"
    details = {
        "custom_details": {
            "last_ping_at": since.isoformat(),
            "interval_seconds": heartbeat.interval_seconds,
            "grace_seconds": heartbeat.grace_seconds,
        }
    }
    event = Event(
        integration.key,
        "trigger",
        DEDUP_KEY,
        summary,
        "critical",
        source=integration.name,
        details=details,
        via="heartbeat",
    )
    apply_events([event])
    return "missed"


def of_integrations(integration_ids: list[int]) -> dict[int, Heartbeat]:
    """Integration id -> its heartbeat, in one query (for the pages and the API)."""
    if not integration_ids:
        return {}
    rows = db.session.scalars(select(Heartbeat).where(Heartbeat.integration_id.in_(integration_ids)))
    return {heartbeat.integration_id: heartbeat for heartbeat in rows}


def of_integration(integration: Integration) -> Heartbeat | None:
    """The heartbeat of a heartbeat integration (None for other kinds)."""
    return db.session.get(Heartbeat, integration.id) if integration.kind == "heartbeat" else None
