"""Teams pages: the list, a team with its members and what it owns; admins create and delete teams,
admins and the team's managers change it and its members. The rules are openduty.teams."""

from flask import Blueprint, flash, redirect, request, url_for
from flask_login import current_user
from sqlalchemy.orm import selectinload

from openduty import teams, users
from openduty.errors import ApiError, ValidationError
from openduty.extensions import db
from openduty.models import Team, TeamMember
from openduty.models.team import TEAM_ROLES
from openduty.views import confirm_page, done, get_or_404, render

bp = Blueprint("teams", __name__, url_prefix="/teams")


def _team(team_id: int) -> Team:
    options = [selectinload(Team.members).selectinload(TeamMember.user)]
    return get_or_404(Team, team_id, options=options, populate_existing=True)


def _new_page(errors: dict | None = None, status: int = 200):
    """The new-team form (its own page, as for every other kind of object); members come after."""
    return render("teams/new.html", errors=errors or {}, values=request.form, status=status)


def _show(team: Team, errors: dict | None = None, status: int = 200):
    return render(
        "teams/show.html",
        team=team,
        owned=teams.owned(team),
        users=users.active_users(),
        roles=TEAM_ROLES,
        may_change=current_user.manages(team.id),
        errors=errors or {},
        values=request.form,
        status=status,
    )


@bp.get("")
def index():
    return render("teams/index.html", teams=teams.all_teams())


@bp.get("/new")
def new():
    return _new_page()


@bp.post("")
def create():
    try:
        team = teams.save_team(None, {"name": request.form.get("name"), "description": request.form.get("description")})
    except ValidationError as exc:
        db.session.rollback()
        return _new_page(exc.fields, 422)
    db.session.commit()
    flash(f"Team {team.name} created. Add its members below.")
    return redirect(url_for("teams.show", team_id=team.id))


@bp.get("/<int:team_id>")
def show(team_id: int):
    return _show(_team(team_id))


@bp.post("/<int:team_id>/edit")
def edit(team_id: int):
    team = _team(team_id)
    try:
        teams.save_team(team, {"name": request.form.get("name"), "description": request.form.get("description", "")})
    except ValidationError as exc:
        db.session.rollback()
        return _show(_team(team_id), exc.fields, 422)
    db.session.commit()
    flash("Team saved.")
    return redirect(url_for("teams.show", team_id=team.id))


@bp.route("/<int:team_id>/delete", methods=["GET", "POST"])
def delete(team_id: int):
    """Delete a team: GET asks, POST deletes (what it owned stays, with no team)."""
    team = _team(team_id)
    name = team.name
    if request.method == "GET":
        return confirm_page(
            f"Delete the team {name}?",
            "Delete team",
            url_for("teams.show", team_id=team.id),
            "Its services, escalation policies and schedules stay but have no team: only admins can change them "
            "until they are given another team. Its managers lose their rights over them.",
        )
    teams.delete_team(team)
    db.session.commit()
    flash(f"Deleted team {name}; what it owned now has no team.")
    return done(url_for("teams.index"))


def _member_change(team_id: int, data: dict, message: str):
    team = _team(team_id)
    try:
        teams.set_member(team, data)
    except ApiError as exc:
        db.session.rollback()
        return _show(_team(team_id), exc.fields or {"members": exc.message}, exc.status)
    db.session.commit()
    flash(message)
    return redirect(url_for("teams.show", team_id=team_id))


@bp.post("/<int:team_id>/members")
def add_member(team_id: int):
    data = {"user_id": request.form.get("user_id"), "role": request.form.get("role", "member")}
    return _member_change(team_id, data, "Member added.")


@bp.post("/<int:team_id>/members/<int:user_id>")
def update_member(team_id: int, user_id: int):
    return _member_change(team_id, {"user_id": user_id, "role": request.form.get("role")}, "Role changed.")


@bp.post("/<int:team_id>/members/<int:user_id>/delete")
def remove_member(team_id: int, user_id: int):
    team = _team(team_id)
    try:
        teams.remove_member(team, user_id)
    except ApiError as exc:
        db.session.rollback()
        return _show(_team(team_id), {"members": exc.message}, exc.status)
    db.session.commit()
    flash("Member removed.")
    return redirect(url_for("teams.show", team_id=team_id))
