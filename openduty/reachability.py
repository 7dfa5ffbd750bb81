"""Who would be paged soon but cannot be reached: the warnings beside the gap warnings.

For a schedule, everyone on call in the next two weeks; for a policy, its users and the people of
its schedules in that time; for a service, its policy's. A person cannot be reached (or not on
every channel) when they are deactivated, have no (high-urgency) notification rule (only the
fallback email goes out), a rule's channel is not configured on this server, or a rule's contact method failed its
last test or its last FAILED_PAGES pages.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from openduty import clock, notifiers, oncall
from openduty.extensions import db
from openduty.models import EscalationPolicy, Notification, NotificationRule, Schedule, User

HORIZON = timedelta(days=14)
# A contact method whose last this-many finished pages all failed is reported as failing.
FAILED_PAGES = 3


@dataclass(frozen=True)
class ReachWarning:
    """People who may be paged within HORIZON, and why a page may not reach them (the same reasons
    for each of them: one warning per set of reasons, so a team without rules is one line)."""

    users: tuple[User, ...]
    reasons: tuple[str, ...]

    @property
    def user_ids(self) -> list[int]:
        return [u.id for u in self.users]

    @property
    def message(self) -> str:
        names = [u.name for u in self.users]
        who = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        return f"{who} may be paged in the next 14 days, but: {'; '.join(self.reasons)}."


def schedule_warnings(schedule: Schedule) -> list[ReachWarning]:
    return _warnings(_on_call_ids([schedule]))


def policy_warnings(policy: EscalationPolicy | None) -> list[ReachWarning]:
    """For the people a policy would page within HORIZON (its users, its schedules' people)."""
    if policy is None:
        return []
    targets = [t for level in policy.levels for t in level.targets]
    ids = [t.user_id for t in targets if t.target_type == "user" and t.user_id is not None]
    schedules = {t.schedule_id: t.schedule for t in targets if t.target_type == "schedule" and t.schedule is not None}
    return _warnings([*ids, *_on_call_ids(schedules.values())])


def _on_call_ids(schedules: Iterable[Schedule]) -> list[int]:
    now = clock.now()
    return [u for schedule in schedules for s in oncall.shifts(schedule, now, now + HORIZON) for u in s.user_ids]


def _warnings(user_ids: Iterable[int]) -> list[ReachWarning]:
    ids = list(dict.fromkeys(user_ids))  # once each, in order
    if not ids:
        return []
    people = db.session.scalars(
        select(User)
        .where(User.id.in_(ids))
        .options(selectinload(User.notification_rules).selectinload(NotificationRule.contact_method))
    ).all()
    failing = _failing_methods(ids)
    by_id = {u.id: u for u in people}
    grouped: dict[tuple[str, ...], list[User]] = {}
    for user_id in ids:
        user = by_id.get(user_id)
        if user is not None and (reasons := _reasons(user, failing)):
            grouped.setdefault(tuple(reasons), []).append(user)
    return [ReachWarning(tuple(users), reasons) for reasons, users in grouped.items()]


def _reasons(user: User, failing: dict[int, str]) -> list[str]:
    if not user.active:
        return ["they are deactivated (never paged)"]
    # High-urgency pages are the ones that must reach people; low-urgency ones fall back to email by design.
    rules = [rule for rule in user.notification_rules if rule.urgency == "high"]
    if not rules:
        which = "high-urgency " if user.notification_rules else ""
        return [f"they have no {which}notification rule (only the fallback email to their login address goes out)"]
    reasons = []
    for method in dict.fromkeys(rule.contact_method for rule in rules):
        problem = notifiers.not_configured(method.kind) or failing.get(method.id)
        if problem:
            reasons.append(f"{method}: {problem}")
    if len(reasons) == len({rule.contact_method_id for rule in rules}):
        reasons.append("no notification rule of theirs can reach them")
    return reasons


def _failing_methods(user_ids: list[int]) -> dict[int, str]:
    """Contact methods (of these users) whose last test failed or whose last FAILED_PAGES pages did."""
    finished = (Notification.status.in_(("sent", "failed")), Notification.contact_method_id.is_not(None))
    rank = func.row_number().over(
        partition_by=(Notification.contact_method_id, Notification.purpose), order_by=Notification.id.desc()
    )
    recent = (
        select(Notification.contact_method_id, Notification.purpose, Notification.status, rank.label("rank"))
        .where(Notification.user_id.in_(user_ids), Notification.purpose.in_(("page", "test")), *finished)
        .subquery()
    )
    rows = db.session.execute(
        select(recent.c.contact_method_id, recent.c.purpose, recent.c.status)
        .where(recent.c.rank <= FAILED_PAGES)
        .order_by(recent.c.rank)
    ).all()
    tests: dict[int, str] = {}
    pages: dict[int, list[str]] = {}
    for method_id, purpose, status in rows:
        if purpose == "test":
            tests.setdefault(method_id, status)  # the first is the last test (rank 1)
        else:
            pages.setdefault(method_id, []).append(status)
    failing = {m: "its last test failed" for m, status in tests.items() if status == "failed"}
    for method_id, statuses in pages.items():
        if len(statuses) == FAILED_PAGES and all(s == "failed" for s in statuses):
            failing[method_id] = f"its last {FAILED_PAGES} pages failed"
    return failing
