"""Reports as JSON: GET /api/v1/reports/incidents, /pages and /oncall, with the page's arguments
(`period`, `since`, `until`, `service_id` or `team_id`); periods are in the caller's time zone."""

from typing import Any

from flask import request

from openduty import report_periods, reports
from openduty.report_periods import ReportQuery
from openduty.reports import Duration, PersonFigures
from openduty.views.api import api_user, bp, iso


def _query() -> ReportQuery:
    return report_periods.parse(request.args, api_user().time_zone or "UTC")


def _envelope(query: ReportQuery) -> dict[str, Any]:
    return {
        "period": query.period,
        "time_zone": query.zone,
        "since": query.since.isoformat(),
        "until": query.until.isoformat(),
        "service_id": query.service.id if query.service is not None else None,
        "team_id": query.team.id if query.team is not None else None,
    }


def _duration(figure: Duration) -> dict[str, Any]:
    return {"count": figure.count, "median_seconds": figure.median, "p90_seconds": figure.p90}


@bp.get("/reports/incidents")
def report_incidents():
    """Per period: incidents opened, escalated beyond level 1, MTTA and MTTR (median, p90)."""
    query = _query()
    rows = reports.incident_report(query)
    return {
        **_envelope(query),
        "periods": [
            {
                "label": r.label,
                "start": iso(r.start),
                "end": iso(r.end),
                "incidents": r.incidents,
                "escalated": r.escalated,
                "mtta": _duration(r.mtta),
                "mttr": _duration(r.mttr),
            }
            for r in rows
        ],
    }


def _people(query: ReportQuery, people: list[PersonFigures], value: str, pages: bool) -> dict[str, Any]:
    def person(p: PersonFigures) -> dict[str, Any]:
        periods = []
        for index, period in enumerate(query.periods):
            entry: dict[str, Any] = {"label": period.label, value: p.values[index]}
            if pages:
                entry["out_of_hours"] = p.out_of_hours[index]
            periods.append(entry)
        total: dict[str, Any] = {value: round(p.total, 2)}
        if pages:
            total["out_of_hours"] = p.total_out_of_hours
        return {"user_id": p.user_id, "name": p.name, "time_zone": p.time_zone, **total, "periods": periods}

    return {
        **_envelope(query),
        "periods": [{"label": p.label, "start": iso(p.start), "end": iso(p.end)} for p in query.periods],
        "people": [person(p) for p in people],
    }


@bp.get("/reports/pages")
def report_pages():
    """Per person and period: pages sent, and those between 22:00 and 07:00 in the person's zone."""
    query = _query()
    return _people(query, reports.page_report(query), "pages", pages=True)


@bp.get("/reports/oncall")
def report_oncall():
    """Per person and period: hours on call in the final schedules of the scope."""
    query = _query()
    return _people(query, reports.oncall_report(query), "hours", pages=False)
