"""The ingest ceiling: a bare Flask app that parses an Events API v2 body and answers 202.

`bench ingest` serves it with the same gunicorn settings as Openduty: what any Flask endpoint
costs here (HTTP, WSGI, JSON in and out), the most ingest could reach without storing anything.
Served as `gunicorn bench._ceiling_app:app`.
"""

import json

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/v2/enqueue")
def enqueue():
    event = json.loads(request.get_data(cache=False))
    if not isinstance(event, dict) or not event.get("routing_key"):
        return jsonify({"status": "invalid event", "message": "Event object is invalid"}), 400
    return jsonify({"status": "success", "message": "Event processed", "dedup_key": event.get("dedup_key")}), 202


@app.get("/healthz")
def healthz():
    return "ok"
