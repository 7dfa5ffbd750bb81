"""The home page."""

from flask import Blueprint

from openduty.views import render

bp = Blueprint("home", __name__)


@bp.get("/")
def index():
    return render("home/index.html")
