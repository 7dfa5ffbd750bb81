"""The home page, with the "on call now" panel when schedules are part of the app."""

from flask import Blueprint, current_app

from openduty import oncall
from openduty.views import render

bp = Blueprint("home", __name__)


@bp.get("/")
def index():
    on_call = oncall.on_call_now() if "schedules.index" in current_app.view_functions else None
    return render("home/index.html", on_call=on_call)
