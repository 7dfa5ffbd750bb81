"""The home page, the on-call dashboard: my open incidents (acknowledge them from here), whether I
am on call now and until when, my next shift, and who is on call now, my teams' schedules first.

Everything is computed here (nothing queries while the template renders) in a number of queries
that does not grow with the number of schedules or incidents; htmx refreshes the `dashboard`
block when an incident changes and every minute.
"""

from flask import Blueprint
from flask_login import current_user

from openduty import clock, oncall
from openduty import incident_lists as lists
from openduty.views import render

bp = Blueprint("home", __name__)

# How many of my open incidents the dashboard lists (the console has them all).
MY_INCIDENTS = 10


@bp.get("/")
def index():
    now = clock.now()
    mine = lists.Filters(status="open", assigned_to_id=current_user.id, per_page=MY_INCIDENTS)
    page = lists.page_of(mine)
    return render(
        "home/index.html",
        block="dashboard",
        my_incidents=page.incidents,
        my_incident_count=lists.count(mine, cap=lists.COUNT_CAP) if page.next_cursor else len(page.incidents),
        me=oncall.shifts_now_and_next(current_user, now),
        on_call=oncall.on_call_now(now, team_ids=current_user.team_ids()),
    )
