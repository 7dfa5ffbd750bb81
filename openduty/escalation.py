"""Escalation: who a policy pages and when (the planner), paging, and the engine the timers run.

The planner (`user_pages`, `level_users`, `preview`) is pure, with time passed in; the policy
preview uses the same code as the engine. Escalation position: `incident.escalation_level` is the
1-based number of the level most recently paged (0: none yet), `escalation_loop` the pass through
the policy (0 is the first). When `next_escalation_at` comes, `run_escalations` pages the next
level, wrapping around `repeat_count` times. A re-trigger (ack timeout, end of a snooze) restarts
at level 1.

The actions people take on an incident (acknowledge, snooze, reassign, ...) live in
openduty.incidents and call the paging functions here; openduty.timers arms the jobs.

One module because the engine pages with the planner's own functions: the policy preview and the
escalate job cannot drift apart.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from openduty import clock, notifiers, oncall
from openduty.extensions import db, redis
from openduty.incident_start import first_escalation
from openduty.models import (
    EscalationLevel,
    EscalationPolicy,
    EscalationTarget,
    Incident,
    Notification,
    NotificationRule,
    Service,
    User,
)
from openduty.models.maintenance import maintenance_ends
from openduty.models.notification import THROTTLED_KINDS, this_process
from openduty.models.user import CONTACT_KIND_LABELS
from openduty.timers import enqueue_escalation, escalation_job_id, track_incident, track_notification
from openduty.transactions import begin_write

log = logging.getLogger(__name__)


# --- Planning (pure: time passed in) ------------------------------------------------------------


@dataclass(frozen=True)
class PlannedPage:
    """One page owed to a user: which channel, where, and how long after the user is paged."""

    user: User
    kind: str
    address: str
    contact_method_id: int | None
    delay_minutes: int


def user_pages(user: User, urgency: str = "high") -> list[PlannedPage]:
    """The pages a user gets when paged at `urgency`: one per rule of that list, or email now if it is empty."""
    rules = [rule for rule in user.notification_rules if rule.urgency == urgency]
    if not rules:
        return [PlannedPage(user, "email", user.email, None, 0)]
    return [
        PlannedPage(
            user, rule.contact_method.kind, rule.contact_method.address, rule.contact_method_id, rule.delay_minutes
        )
        for rule in rules
    ]


def level_users(level: EscalationLevel, at: datetime) -> list[User]:
    """Who a level pages at `at`: its users and whoever its schedules have on call, active only, once each."""
    users: list[User] = []
    seen: set[int] = set()
    for target in level.targets:
        if target.target_type == "user":
            candidates = [target.user] if target.user is not None else []
        elif target.target_type == "schedule" and target.schedule is not None:
            candidates = list(oncall.who_is_on_call(target.schedule, at))
        else:
            candidates = []
        for user in candidates:
            if user.active and user.id not in seen:
                seen.add(user.id)
                users.append(user)
    return users


@dataclass
class PreviewStep:
    """One moment of the preview: `minute` after the incident opens, these users on these channels."""

    minute: int
    level: int  # 1-based
    pages: list[tuple[User, list[str]]] = field(default_factory=list)


@dataclass
class Preview:
    steps: list[PreviewStep]  # a high-urgency incident's pages
    skipped_levels: list[int]  # 1-based numbers of levels with nobody to page
    repeat_count: int
    cycle_minutes: int
    has_levels: bool
    low_steps: list[PreviewStep] = field(default_factory=list)  # a low-urgency incident's pages

    @property
    def pages_anyone(self) -> bool:
        return bool(self.steps)


def preview(policy: EscalationPolicy, at: datetime) -> Preview:
    """What would happen if an incident opened at `at`, at each urgency (the engine's planner; the first pass)."""
    by_minute: dict[str, dict[tuple[int, int], dict[int, tuple[User, list[str]]]]] = {"high": {}, "low": {}}
    skipped: list[int] = []
    offset = 0
    for index, level in enumerate(policy.levels):
        users = level_users(level, at + timedelta(minutes=offset))
        if not users:
            skipped.append(index + 1)
            continue  # the engine skips an empty level at once, without waiting its delay
        for urgency, steps in by_minute.items():
            for page in (page for user in users for page in user_pages(user, urgency)):
                slot = steps.setdefault((offset + page.delay_minutes, index + 1), {})
                entry = slot.setdefault(page.user.id, (page.user, []))
                label = CONTACT_KIND_LABELS.get(page.kind, page.kind)
                label = label if page.kind in ("sms", "xmpp") else label.lower()
                if notifiers.missing_settings(page.kind):
                    label += " (not configured on this server: this page would fail)"
                if label not in entry[1]:
                    entry[1].append(label)
        offset += level.delay_minutes
    high, low = (
        [PreviewStep(minute, level, list(users.values())) for (minute, level), users in sorted(steps.items())]
        for steps in by_minute.values()
    )
    return Preview(high, skipped, policy.repeat_count, offset, bool(policy.levels), low)


def _names(users: list[User]) -> str:
    names = [u.name for u in users]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


# --- Paging: called inside the transaction of an incident's change (the caller commits) ---------


def incident_triggered(incident: Incident, maintenance: dict[int, datetime] | None = None) -> None:
    """A new incident opened (not a duplicate): start its escalation at level 1, right away, or hold
    it if its service is in maintenance (openduty.incident_start decides; ingest's bulk path, which
    writes rows, applies the same decision).

    Called before commit by every path that opens an incident through the ORM. `maintenance` is
    `maintenance_ends()` of the services, when the caller (ingest) looked them up for a whole batch.
    """
    service = incident.service
    now = clock.now()
    if maintenance is None:
        maintenance = maintenance_ends([service.id], now)
    start = first_escalation(service.name, service.escalation_policy_id, maintenance.get(service.id), now)
    if start.entry is not None:
        incident.log(*start.entry)
    if start.in_maintenance:
        incident.in_maintenance = True
    incident.next_escalation_at = start.next_escalation_at
    if start.next_escalation_at is not None:
        incident.escalation_level = 0
        incident.escalation_loop = 0
        track_incident(incident)


def _held(incident: Incident, message: str) -> None:
    """Hold an incident for its service's maintenance (openduty.maintenance resumes it at the end)."""
    incident.log("maintenance", message)
    incident.in_maintenance = True
    incident.next_escalation_at = None


def queue_resolve_notices(incident: Incident) -> None:
    """Owe a resolve notice to each user a page of this resolved incident reached, on each channel
    that reached them, once each (except whoever resolved it).

    Called when the incident is resolved, and again by delivery when a page that was in flight at
    that moment turns out sent. Delivery locks the incident row before it looks, and resolving
    updates that row first, so one of the two always sees the other's work; the notices already
    owed are skipped, so nobody gets two.
    """
    db.session.flush()
    sent = db.session.execute(
        select(Notification.user_id, Notification.contact_method_id, Notification.kind, Notification.address)
        .where(Notification.incident_id == incident.id, Notification.purpose == "page", Notification.status == "sent")
        .distinct()
    ).all()
    owed = set(
        db.session.execute(
            select(Notification.user_id, Notification.kind, Notification.address).where(
                Notification.incident_id == incident.id, Notification.purpose == "resolve"
            )
        ).all()
    )
    now = clock.now()
    for user_id, method_id, kind, address in sorted(set(sent), key=lambda r: (r[0], r[2], r[3])):
        if user_id == incident.resolved_by_id or (user_id, kind, address) in owed:
            continue
        owed.add((user_id, kind, address))
        notice = Notification(
            incident=incident,
            user_id=user_id,
            contact_method_id=method_id,
            kind=kind,
            address=address,
            purpose="resolve",
            send_at=now,
        )
        db.session.add(notice)
        track_notification(notice)


def cancel_pending_pages(incident: Incident) -> None:
    """Cancel the pages of this incident not sent yet (it was acknowledged, resolved, snoozed or handed on)."""
    if incident.id is None:
        return
    db.session.execute(
        update(Notification)
        .where(
            Notification.incident_id == incident.id,
            Notification.purpose == "page",
            Notification.status == "pending",
        )
        .values(status="cancelled")
        .execution_options(synchronize_session=False)
    )


def retrigger(incident: Incident) -> None:
    """Put an acknowledged incident back to triggered (the ack timeout, a snooze's end, escalate now)."""
    incident.status = "triggered"
    incident.acknowledged_at = None
    incident.acknowledged_by_id = None
    incident.snoozed_until = None


# --- The engine (run by the escalate job) --------------------------------------------------------

# What planning a level reads, loaded with the incident in one query (a policy has a few levels,
# targets and rules, so the joined rows stay few) instead of one lazy load per object.
_PLAN = (
    joinedload(Incident.service)
    .joinedload(Service.escalation_policy)
    .joinedload(EscalationPolicy.levels)
    .joinedload(EscalationLevel.targets)
    .options(
        joinedload(EscalationTarget.schedule),
        joinedload(EscalationTarget.user)
        .joinedload(User.notification_rules)
        .joinedload(NotificationRule.contact_method),
    )
)


def run_escalations(items: list[tuple[int, int]], send_now: list[Notification] | None = None) -> dict[int, str]:
    """Move each incident (id, epoch) on if its time has come, all in one transaction (the caller
    commits); returns what happened to each incident id (for logs/tests).

    Idempotent: an incident whose epoch moved on (an old or duplicate job) is left alone ("stale").
    The epochs are claimed on the locked rows (SELECT ... FOR UPDATE, in id order; BEGIN IMMEDIATE
    on SQLite), so of two concurrent jobs only one pages each incident. One query loads the
    incidents with their plans (services, policies, levels, targets, rules); a batch's levels are
    flushed, its timers armed and its pages claimed together. With `send_now`, the pages due now are
    created already claimed for sending by this process and added to it: the caller hands them to
    delivery after the commit (see `page_user`).
    """
    now = clock.now()
    epochs = dict(items)
    begin_write()
    incidents = (
        db.session.scalars(
            select(Incident)
            .where(Incident.id.in_(epochs))
            .order_by(Incident.id)
            .options(_PLAN)
            .with_for_update(of=Incident)
            .execution_options(populate_existing=True)
        )
        .unique()
        .all()
    )
    outcomes = dict.fromkeys(epochs, "stale")
    due_now: list[Incident] = []
    for incident in incidents:
        if incident.epoch != epochs[incident.id] or not incident.is_open or incident.next_escalation_at is None:
            continue
        if now < incident.next_escalation_at:
            # Never page early (e.g. a job armed by plain RQ, which works in whole seconds): re-arm.
            outcomes[incident.id] = "early"
            job_id = f"{escalation_job_id(incident.id, incident.epoch)}-late"
            enqueue_escalation(incident.id, incident.epoch, incident.next_escalation_at, job_id=job_id)
            continue
        due_now.append(incident)
    if not due_now:
        db.session.rollback()
        return outcomes
    maintenance = maintenance_ends({incident.service_id for incident in due_now}, now)
    for incident in due_now:
        incident.epoch += 1  # claimed: the row is locked and its epoch is ours
        outcomes[incident.id] = _escalate(incident, now, maintenance, send_now)
    return outcomes


def _escalate(
    incident: Incident, now: datetime, maintenance: dict[int, datetime], send_now: list[Notification] | None
) -> str:
    """Page the next level of a claimed incident (re-triggering an acknowledged one first)."""
    service = incident.service
    outcome = "escalated"
    if incident.status == "acknowledged":
        reason = "the snooze ended" if incident.snoozed_until is not None else "the acknowledgement timed out"
        retrigger(incident)
        incident.escalation_level = 0
        incident.escalation_loop = 0
        incident.log("retrigger", f"Re-triggered: {reason}. Escalating from level 1.")
        outcome = "retriggered"
    if service.id in maintenance:
        _held(incident, f"Service {service.name} is in maintenance until {maintenance[service.id]:%Y-%m-%d %H:%M} "
              "UTC: nobody is paged; the escalation starts again at level 1 when the maintenance ends.")  # fmt: skip
        return "maintenance"
    policy = service.escalation_policy
    if policy is None or not policy.levels:
        incident.log("nobody_to_page", f"Service {service.name} has no escalation policy levels: nobody to page.")
        incident.next_escalation_at = None
        return "nobody"
    result = _page_next_level(incident, policy, now, send_now)
    track_incident(incident)
    return outcome if result == "paged" else result


def _page_next_level(
    incident: Incident, policy: EscalationPolicy, now: datetime, send_now: list[Notification] | None
) -> str:
    levels = policy.levels
    index, loop = incident.escalation_level, incident.escalation_loop
    for _ in range((len(levels) + 1) * (policy.repeat_count + 1) + 1):
        if index >= len(levels):
            if loop < policy.repeat_count:
                index, loop = 0, loop + 1
                incident.log("repeat", f"Repeating the policy (pass {loop + 1} of {policy.repeat_count + 1}).")
            else:
                break
        level = levels[index]
        users = level_users(level, now)
        if not users:
            incident.log("escalate", f"Level {index + 1}: nobody to page (no active users on call); skipped.")
            index += 1
            continue
        for user in users:
            page_user(incident, user, now, level=index + 1, loop=loop, send_now=send_now)
        incident.log(
            "escalate",
            f"Level {index + 1}{_pass(loop)}: paging {_names(users)}.",
            data={"level": index + 1, "loop": loop, "user_ids": [u.id for u in users]},
        )
        incident.escalation_level = index + 1
        incident.escalation_loop = loop
        incident.assigned_to_id = users[0].id
        incident.next_escalation_at = now + timedelta(minutes=level.delay_minutes)
        return "paged"
    incident.escalation_level = len(levels)
    incident.escalation_loop = loop
    incident.next_escalation_at = None
    times = policy.repeat_count + 1
    incident.log(
        "escalation_exhausted",
        f"Escalation exhausted: the policy ran {times} time{'s' if times != 1 else ''}; nobody more to page.",
    )
    return "exhausted"


def _pass(loop: int) -> str:
    return f" (pass {loop + 1})" if loop else ""


def page_user(
    incident: Incident,
    user: User,
    now: datetime,
    level: int | None,
    loop: int | None,
    send_now: list[Notification] | None = None,
) -> None:
    """Owe `user` the pages their notification rules ask for, from `now` (armed after commit).

    With `send_now` (the escalate job), a page due now on a channel that is not throttled is
    written already claimed by this process (`sending`, as the deliver job's claim would) and
    added to `send_now`, for the caller to send after the commit: no deliver job, no second
    transaction to claim it. If this process dies before the send, reconcile recovers the claim
    like any other interrupted send. Delayed and throttled pages get a deliver job as before.
    """
    for page in user_pages(user, incident.urgency or "high"):  # the column's default, before a flush
        notification = Notification(
            incident=incident,
            user=user,
            contact_method_id=page.contact_method_id,
            kind=page.kind,
            address=page.address,
            purpose="page",
            urgency=incident.urgency or "high",  # delivery does not send it if the urgency changes
            level=level,
            loop=loop,
            send_at=now + timedelta(minutes=page.delay_minutes),
        )
        db.session.add(notification)
        if send_now is not None and page.delay_minutes == 0 and page.kind not in THROTTLED_KINDS:
            notification.status = "sending"
            notification.claimed_at = now
            notification.claimed_by = this_process()
            notification.attempts = 1
            send_now.append(notification)
        else:
            track_notification(notification)


class TestLimitReached(Exception):
    """The caller sent TEST_NOTIFICATION_LIMIT test notifications in the current window."""

    def __init__(self, retry_after: int):
        self.retry_after = retry_after
        super().__init__(
            f"You sent {current_app.config['TEST_NOTIFICATION_LIMIT']} test notifications recently."
            f" Try again in {max(1, (retry_after + 59) // 60)} min."
        )


def _count_test(user_id: int) -> None:
    """Count one test notification for `user_id`; raise TestLimitReached over the limit.

    A fixed window per user in Redis (the key holds only the user id): test notifications go to
    addresses a member chooses, so without a cap a button could be used to flood someone.
    """
    limit = current_app.config["TEST_NOTIFICATION_LIMIT"]
    if not limit:
        return
    key = f"openduty:test-notifications:{int(user_id)}"
    with redis.get().pipeline() as pipe:
        pipe.set(key, 0, ex=current_app.config["TEST_NOTIFICATION_WINDOW_SECONDS"], nx=True)
        pipe.incr(key)
        pipe.ttl(key)
        _, count, ttl = pipe.execute()
    if count > limit:
        raise TestLimitReached(max(int(ttl), 1))


def send_test(method, by: User | None = None) -> Notification:
    """Queue a test notification to one contact method (delivered after the caller commits).

    At most TEST_NOTIFICATION_LIMIT per caller per window (TestLimitReached beyond it).
    """
    if by is not None:
        _count_test(by.id)
    notification = Notification(
        user_id=method.user_id,
        contact_method_id=method.id,
        kind=method.kind,
        address=method.address,
        purpose="test",
        send_at=clock.now(),
    )
    db.session.add(notification)
    track_notification(notification)
    return notification
