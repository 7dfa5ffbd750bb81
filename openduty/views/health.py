"""GET /healthz: is the database reachable, is Redis reachable."""

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from openduty.extensions import db, redis

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    status = {"status": "ok", "database": "ok", "redis": "ok"}
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to reach the database is "down"
        current_app.logger.warning("healthz: database unreachable: %s", exc)
        db.session.rollback()
        status["database"] = "unavailable"
    try:
        redis.get().ping()
    except Exception as exc:
        current_app.logger.warning("healthz: redis unreachable: %s", exc)
        status["redis"] = "unavailable"
    if "unavailable" in status.values():
        status["status"] = "unavailable"
        return jsonify(status), 503
    return jsonify(status)
