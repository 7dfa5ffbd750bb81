"""The audit log page (admins): who changed what, newest first, filtered, paged in place."""

from flask import Blueprint, request, url_for
from flask_login import current_user

from openduty import audit, audit_log, validation
from openduty.views import is_htmx, next_page_query, render

bp = Blueprint("audit", __name__)


@bp.get("/audit")
def index():
    error = None
    try:
        filters = audit_log.parse_filters(request.args)
    except validation.FieldError as exc:
        error, filters = str(exc), audit_log.Filters()
    rows, cursor = audit_log.entries(audit_log.for_viewer(filters, current_user)) if error is None else ([], None)
    more = next_page_query(cursor)
    return render(
        "audit/index.html",
        block="rows" if is_htmx() and filters.before else None,
        status=400 if error else 200,
        entries=rows,
        more_url=url_for("audit.index", **more) if more else None,
        args=request.args,
        object_types=audit.OBJECT_TYPES,
        error=error,
    )
