"""Teams and their members: everyone with a token reads; admins create and delete teams; admins and
the team's managers change a team and its members (openduty.access, openduty.teams)."""

from typing import Any

from flask import url_for

from openduty import teams
from openduty.extensions import db
from openduty.models import Team
from openduty.views.api import bp, created, get_or_404, iso, json_body
from openduty.views.api.users import user_ref


def team_json(team: Team) -> dict[str, Any]:
    return {
        "id": team.id,
        "name": team.name,
        "description": team.description,
        "from_directory": team.directory_dn is not None,
        "members": [{"user": user_ref(m.user), "role": m.role} for m in team.members],
        "created_at": iso(team.created_at),
    }


@bp.get("/teams")
def list_teams():
    return {"teams": [team_json(t) for t in teams.all_teams()]}


@bp.post("/teams")
def create_team():
    team = teams.save_team(None, json_body(teams.TEAM_FIELDS))
    db.session.commit()
    return created(team_json(team), url_for("api.get_team", team_id=team.id))


@bp.get("/teams/<int:team_id>")
def get_team(team_id: int):
    return team_json(get_or_404(Team, team_id))


@bp.patch("/teams/<int:team_id>")
def update_team(team_id: int):
    team = get_or_404(Team, team_id)
    teams.save_team(team, json_body(teams.TEAM_FIELDS))
    db.session.commit()
    return team_json(team)


@bp.delete("/teams/<int:team_id>")
def delete_team(team_id: int):
    teams.delete_team(get_or_404(Team, team_id))
    db.session.commit()
    return "", 204


@bp.post("/teams/<int:team_id>/members")
def put_team_member(team_id: int):
    """Add `user_id` with `role` (member or manager), or change their role: 201 when added, else 200."""
    team = get_or_404(Team, team_id)
    _, is_new = teams.set_member(team, json_body(("user_id", "role")))
    db.session.commit()
    return team_json(team), 201 if is_new else 200


@bp.delete("/teams/<int:team_id>/members/<int:user_id>")
def delete_team_member(team_id: int, user_id: int):
    teams.remove_member(get_or_404(Team, team_id), user_id)
    db.session.commit()
    return "", 204
