"""RQ jobs for schedules: refresh iCal source layers (thin, take ids, idempotent).

The periodic job `openduty.jobs.refresh_ical_sources` (in escalation.PERIODIC_JOBS) calls
`refresh_ical_sources()` here every ICAL_REFRESH_MINUTES.
"""

from flask import current_app
from sqlalchemy import select

from openduty import clock, oncall
from openduty.extensions import db, queue
from openduty.models import ScheduleLayer


def refresh_ical_sources() -> int:
    """Enqueue one refresh per iCal layer; returns how many were enqueued."""
    ids = db.session.scalars(select(ScheduleLayer.id).where(ScheduleLayer.kind == "ical")).all()
    q = queue("low")
    for layer_id in ids:
        # One job id per layer: re-enqueueing replaces it, and a refresh running twice is harmless.
        q.enqueue(refresh_ical_layer, layer_id, job_id=f"refresh-ical-layer-{layer_id}")
    return len(ids)


def refresh_ical_layer(layer_id: int) -> str:
    """Refetch (URL) or re-expand (uploaded file) one iCal layer over the moving import window.

    On an error the previous events stay in force and the error is recorded on the layer.
    """
    layer = db.session.get(ScheduleLayer, layer_id)
    if layer is None or layer.kind != "ical":
        return "gone"
    try:
        data = oncall.fetch_ical(layer.ical_url) if layer.ical_url else (layer.ical_data or "")
        oncall.import_ical(layer, data)
    except oncall.ICalImportError as exc:
        db.session.rollback()
        layer = db.session.get(ScheduleLayer, layer_id)
        layer.ical_error = str(exc)[:2000]
        layer.ical_refreshed_at = clock.now()
        db.session.commit()
        current_app.logger.warning("iCal layer %s: %s", layer_id, exc)
        return "error"
    db.session.commit()
    return "ok"
