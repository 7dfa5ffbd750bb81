"""The Reports page: charts (SVG from the server) with a table beside each, and a CSV per chart.

Everyone logged in reads every report, as they read every incident and schedule (openduty.access);
periods are in the reader's time zone. The charts' stylesheet is pygal's own CSS, served here so
that the page needs no inline <style> (Content-Security-Policy).
"""

from flask import Blueprint, Response, request, url_for
from flask_login import current_user
from sqlalchemy import select

from openduty import report_charts, report_periods, reports
from openduty.errors import ValidationError
from openduty.extensions import db
from openduty.models import Service, Team
from openduty.views import render

bp = Blueprint("reports", __name__, url_prefix="/reports")


def _zone() -> str:
    return current_user.time_zone or "UTC"


def _choices() -> dict:
    return {
        "services": db.session.execute(select(Service.id, Service.name).order_by(Service.name)).all(),
        "teams": db.session.execute(select(Team.id, Team.name).order_by(Team.name)).all(),
        "periods": report_periods.PERIODS,
        "duration": reports.duration_text,
    }


# The report pages (tabs): endpoint -> (label, what it computes and draws).
TABS = {
    "index": "Incidents and response",
    "pages": "Pages per person",
    "oncall": "On-call hours",
}


def _page(tab: str, figures):
    """One report page: the form, the tabs, and `figures(query)` (charts and rows) for the tab."""
    try:
        query = report_periods.parse(request.args, _zone())
    except ValidationError as exc:
        return render("reports/index.html", status=400, tab=tab, tabs=TABS, error=exc.message, args=request.args,
                      query=None, **_choices())  # fmt: skip
    args = query.args()
    return render(
        "reports/index.html",
        tab=tab,
        tabs=TABS,
        query=query,
        args=args,
        tab_urls={name: url_for(f"reports.{name}", **args) for name in TABS},
        csv=url_for(f"reports.{'incidents' if tab == 'index' else tab}_csv", **args),
        error=None,
        **figures(query),
        **_choices(),
    )


@bp.get("")
def index():
    """Incidents opened, escalations beyond level 1, MTTA and MTTR per period."""

    def figures(query):
        rows = reports.incident_report(query)
        return {
            "rows": rows,
            "charts": [
                report_charts.incidents_chart(rows),
                report_charts.mtta_chart(rows),
                report_charts.mttr_chart(rows),
            ],
        }

    return _page("index", figures)


@bp.get("/pages")
def pages():
    """Pages per person, and those out of hours."""

    def figures(query):
        people = reports.page_report(query)
        return {"people": people, "charts": [report_charts.pages_chart(people)] if people else []}

    return _page("pages", figures)


@bp.get("/oncall")
def oncall():
    """On-call hours per person."""

    def figures(query):
        people = reports.oncall_report(query)
        return {"people": people, "charts": [report_charts.oncall_chart(people)] if people else []}

    return _page("oncall", figures)


def _csv(name: str, make) -> Response:
    try:
        query = report_periods.parse(request.args, _zone())
    except ValidationError as exc:
        return Response(exc.message + "\n", status=400, mimetype="text/plain")
    filename = f"openduty-{name}-{query.period}-{query.since}-{query.until}.csv"
    return Response(
        make(query), mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


@bp.get("/incidents.csv")
def incidents_csv():
    """Per period: incidents, escalations, MTTA and MTTR (seconds)."""
    return _csv("incidents", lambda q: report_charts.incidents_csv(q, reports.incident_report(q)))


@bp.get("/pages.csv")
def pages_csv():
    """Per period and person: pages sent, and those out of hours."""
    return _csv("pages", lambda q: report_charts.people_csv(q, reports.page_report(q), "pages", "out_of_hours"))


@bp.get("/oncall.csv")
def oncall_csv():
    """Per period and person: hours on call."""
    return _csv("oncall", lambda q: report_charts.people_csv(q, reports.oncall_report(q), "hours"))


@bp.get("/charts.css")
def stylesheet():
    response = Response(report_charts.stylesheet(), mimetype="text/css")
    response.cache_control.max_age = 3600
    response.cache_control.public = True
    return response
