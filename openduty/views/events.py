"""Ingest endpoints: every inbound event format, parsed into one Event (see openduty.events)."""

from flask import Blueprint

bp = Blueprint("events", __name__)
