"""The home page, with the "on call now" panel (computed here, rendered by a macro)."""

from flask import Blueprint

from openduty import oncall
from openduty.views import render

bp = Blueprint("home", __name__)


@bp.get("/")
def index():
    return render("home/index.html", on_call=oncall.on_call_now())
