"""The ingest floor: the bare Flask endpoint plus the least a durable event costs with our tools.

Like the ceiling (bench/_ceiling_app.py) it parses an Events API v2 body and answers 202, but first
it stores the event: one INSERT committed through Flask-SQLAlchemy's session on the same engine
settings as Openduty (psycopg 3, pool pre-ping), one transaction per request. No incident, no
deduplication, no timeline, no escalation, no group commit: what any Flask app pays here to store
one event before it answers. `bench ingest` serves it with the same gunicorn settings, saturated
and at 25 events/s, beside Openduty and the ceiling.
Served as `gunicorn 'bench._floor_app:create()'`, with DATABASE_URL set; `bench ingest` creates its
table (`metadata`) beforehand.
"""

import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import JSON, Column, DateTime, Integer, MetaData, String, Table, func, insert

from bench._ceiling_app import accepted, healthz, invalid, parsed_event
from config import Config, database_url

metadata = MetaData()
floor_events = Table(
    "bench_floor_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("routing_key", String(64), nullable=False),
    Column("dedup_key", String(255), nullable=False),
    Column("summary", String(1024), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

db = SQLAlchemy(metadata=metadata)
STORE = insert(floor_events)


def create() -> Flask:
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url(os.environ["DATABASE_URL"]),
        SQLALCHEMY_ENGINE_OPTIONS=Config.SQLALCHEMY_ENGINE_OPTIONS,
    )
    db.init_app(app)
    app.post("/v2/enqueue")(enqueue)
    app.get("/healthz")(healthz)
    return app


def enqueue():
    event = parsed_event()
    if event is None:
        return invalid()
    payload = event.get("payload") or {}
    row = {
        "routing_key": event["routing_key"],
        "dedup_key": event.get("dedup_key") or "",
        "summary": payload.get("summary", ""),
        "payload": payload,
    }
    db.session.execute(STORE, row)
    db.session.commit()
    return accepted(event)
