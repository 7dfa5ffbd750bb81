"""The home page."""

from flask import Blueprint
from flask_login import login_required

from openduty.views import render

bp = Blueprint("home", __name__)


@bp.get("/")
@login_required
def index():
    return render("home/index.html")
