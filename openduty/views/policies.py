"""Policies pages."""

from flask import Blueprint

bp = Blueprint("policies", __name__)
