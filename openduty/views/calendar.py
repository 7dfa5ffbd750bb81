"""iCal feeds of schedules and of each person's shifts."""

from flask import Blueprint

bp = Blueprint("calendar", __name__)
