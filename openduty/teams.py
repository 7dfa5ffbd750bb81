"""Teams and their members: the rules shared by the team pages, the API and the directory sync.

A team owns services, escalation policies and schedules (their `team_id`). Its managers change what it
owns and who is in it; its members act on incidents; admins do everything. Which object a path names
and who may change it is decided in openduty.access (`may_manage_path`); which team a new or changed
object may go to is decided here (`team_choice`), for the pages and the API alike.
"""

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from openduty import validation
from openduty.errors import ApiError
from openduty.extensions import db
from openduty.models import EscalationPolicy, Schedule, Service, Team, TeamMember, User
from openduty.models.team import TEAM_ROLES

TEAM_FIELDS = ("name", "description")


def save_team(team: Team | None, data: dict[str, Any]) -> Team:
    """Create a team (`team` None) or change the fields `data` names; ValidationError if any is bad."""
    validation.refuse_unknown(data, TEAM_FIELDS)
    checks = {
        "name": lambda: validation.unique_name(data.get("name"), Team, team, "Another team already has this name."),
        "description": lambda: validation.text(data.get("description"), max_length=2000, required=False),
    }
    if team is not None:
        checks = {name: check for name, check in checks.items() if name in data}
    clean = validation.collect(checks)
    if team is None:
        team = Team(**clean)
        db.session.add(team)
    else:
        for name, value in clean.items():
            setattr(team, name, value)
    db.session.flush()
    return team


def delete_team(team: Team) -> None:
    """Delete a team; what it owned stays, owned by no team (admins only change it until given one)."""
    db.session.delete(team)
    db.session.flush()


def team_choice(value: Any, actor: User, current: int | None = None) -> int | None:
    """The team a service, policy or schedule may be given by `actor`: admins any or none; managers
    one of the teams they manage (so they never give away or lose what they can change)."""
    if value in (None, ""):
        if not actor.is_admin:
            raise validation.FieldError("Choose one of the teams you manage.")
        return None
    team_id = validation.object_id(value, label="The team id")
    if db.session.get(Team, team_id) is None:
        raise validation.FieldError(f"No team with id {team_id}.")
    if not actor.manages(team_id) and team_id != current:
        raise validation.FieldError("You can only choose a team you manage.")
    return team_id


def owner_check(data: dict[str, Any], actor: User | None, current: Any | None) -> dict:
    """The `team_id` check for clean_service / clean_policy / clean_schedule: when `data` names a team,
    or when a non-admin creates (a manager's new object must belong to one of their teams)."""
    if actor is None:
        return {}
    creating = current is None
    if "team_id" in data or (creating and not actor.is_admin):
        existing = None if creating else current.team_id
        return {"team_id": lambda: team_choice(data.get("team_id"), actor, existing)}
    return {}


def choices_for(actor: User) -> list[Team]:
    """The teams `actor` may give an object to, for the forms' select."""
    query = select(Team).order_by(func.lower(Team.name))
    if not actor.is_admin:
        query = query.where(Team.id.in_(actor.managed_team_ids() or {-1}))
    return list(db.session.scalars(query))


def all_teams() -> list[Team]:
    return list(db.session.scalars(select(Team).options(selectinload(Team.members)).order_by(func.lower(Team.name))))


def owned(team: Team) -> dict[str, list]:
    """What the team owns, for its page."""
    return {
        "services": list(db.session.scalars(select(Service).where(Service.team_id == team.id).order_by(Service.name))),
        "policies": list(
            db.session.scalars(
                select(EscalationPolicy).where(EscalationPolicy.team_id == team.id).order_by(EscalationPolicy.name)
            )
        ),
        "schedules": list(
            db.session.scalars(select(Schedule).where(Schedule.team_id == team.id).order_by(Schedule.name))
        ),
    }


def set_member(team: Team, data: dict[str, Any]) -> tuple[TeamMember, bool]:
    """Add a user to the team or change their role; returns the membership and whether it is new.

    A directory team's membership follows its group (only roles change here)."""
    validation.refuse_unknown(data, ("user_id", "role"))
    clean = validation.collect(
        {
            "user_id": lambda: _active_user(data.get("user_id")),
            "role": lambda: _role(data.get("role", "member")),
        }
    )
    member = next((m for m in team.members if m.user_id == clean["user_id"]), None)
    if member is None:
        if team.directory_dn:
            raise ApiError(409, "This team's members come from its directory group; change them there.")
        member = TeamMember(team=team, user_id=clean["user_id"], role=clean["role"])
        db.session.add(member)
        created = True
    else:
        member.role, created = clean["role"], False
    db.session.flush()
    return member, created


def remove_member(team: Team, user_id: int) -> None:
    member = next((m for m in team.members if m.user_id == user_id), None)
    if member is None:
        raise ApiError(404, f"User {user_id} is not in team {team.name}.")
    if team.directory_dn:
        raise ApiError(409, "This team's members come from its directory group; change them there.")
    team.members.remove(member)
    db.session.flush()


def _active_user(value: Any) -> int:
    user_id = validation.object_id(value, label="The user id")
    user = db.session.get(User, user_id)
    if user is None or not user.active:
        raise validation.FieldError(f"No active user with id {user_id}.")
    return user_id


def _role(value: Any) -> str:
    if value not in TEAM_ROLES:
        raise validation.FieldError(f"Use one of {', '.join(TEAM_ROLES)}.")
    return value


def mirror_directory_teams(user: User, groups: dict[str, str]) -> None:
    """Make `user`'s directory teams match `groups` (DN -> name): join those they are in, creating the
    team on first sight; leave directory teams they are no longer in. Local teams are untouched."""
    teams = {t.directory_dn: t for t in db.session.scalars(select(Team).where(Team.directory_dn.in_(list(groups))))}
    for dn, name in groups.items():
        if dn not in teams:
            taken = db.session.scalar(select(Team.id).where(func.lower(Team.name) == func.lower(name)))
            teams[dn] = Team(name=name if taken is None else f"{name} (directory)", directory_dn=dn, description="")
            db.session.add(teams[dn])
    current = {m.team_id: m for m in user.memberships}
    db.session.flush()
    for team in teams.values():
        if team.id not in current:
            user.memberships.append(TeamMember(team_id=team.id, role="member"))
    wanted = {team.id for team in teams.values()}
    stale = {m.team_id for m in user.memberships} - wanted
    from_directory = set(db.session.scalars(select(Team.id).where(Team.id.in_(stale), Team.directory_dn.is_not(None))))
    for member in list(user.memberships):
        if member.team_id in from_directory:
            user.memberships.remove(member)
