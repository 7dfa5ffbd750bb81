"""GET /metrics: Prometheus's text format (openduty.monitoring). Who may scrape is the access
rule's business (openduty.access: METRICS_TOKEN, else this machine only)."""

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4

from openduty import monitoring

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    # The classic text format (version 0.0.4), which every Prometheus reads.
    return Response(monitoring.exposition(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
