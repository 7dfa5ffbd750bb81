"""The audit log (admins): GET /api/v1/audit, newest first, with the page's filters and a `next` link."""

from typing import Any

from flask import request, url_for

from openduty import audit_log, validation
from openduty.errors import ValidationError
from openduty.models import AuditEntry
from openduty.views import next_page_query
from openduty.views.api import api_user, bp, iso


def audit_entry_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": iso(entry.at),
        "actor": entry.actor,
        "actor_id": entry.actor_id,
        "action": entry.action,
        "object_type": entry.object_type,
        "object_id": entry.object_id,
        "object_label": entry.object_label,
        "changes": entry.changes,
    }


@bp.get("/audit")
def list_audit():
    """Filters: `actor` (part of an email or name), `object_type`, `object_id`, `since`, `until` (a date
    or an ISO 8601 time), `per_page` (<= 200); `next` is the URL of the older entries, or null."""
    try:
        filters = audit_log.parse_filters(request.args)
    except validation.FieldError as exc:
        name, _, message = str(exc).partition(": ")
        raise ValidationError({name: message}) from exc
    try:
        per_page = request.args.get("per_page") or audit_log.PAGE_SIZE
        limit = validation.integer(per_page, minimum=1, maximum=audit_log.MAX_PAGE_SIZE, label="per_page")
    except validation.FieldError as exc:
        raise ValidationError({"per_page": str(exc)}) from exc
    rows, cursor = audit_log.entries(audit_log.for_viewer(filters, api_user()), limit)
    more = next_page_query(cursor)
    return {
        "entries": [audit_entry_json(entry) for entry in rows],
        "next": url_for("api.list_audit", **more) if more else None,
    }
