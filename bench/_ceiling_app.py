"""The ingest ceiling: a bare Flask app that parses an Events API v2 body and answers 202.

`bench ingest` serves it with the same gunicorn settings as Openduty: what any Flask endpoint
costs here (HTTP, WSGI, JSON in and out), the most ingest could reach without storing anything.
Served as `gunicorn bench._ceiling_app:app`. The floor app (bench/_floor_app.py) parses and
answers with the same functions.
"""

import json
from typing import Any

from flask import Flask, jsonify, request

app = Flask(__name__)


def parsed_event() -> dict[str, Any] | None:
    """The request's event, or None if it is no object with a routing key."""
    event = json.loads(request.get_data(cache=False))
    return event if isinstance(event, dict) and event.get("routing_key") else None


def invalid():
    return jsonify({"status": "invalid event", "message": "Event object is invalid"}), 400


def accepted(event: dict[str, Any]):
    return jsonify({"status": "success", "message": "Event processed", "dedup_key": event.get("dedup_key")}), 202


@app.post("/v2/enqueue")
def enqueue():
    event = parsed_event()
    return invalid() if event is None else accepted(event)


@app.get("/healthz")
def healthz():
    return "ok"
