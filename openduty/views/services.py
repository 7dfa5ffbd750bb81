"""Services pages."""

from flask import Blueprint

bp = Blueprint("services", __name__)
