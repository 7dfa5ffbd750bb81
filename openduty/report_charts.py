"""The reports' charts: SVG drawn on the server by pygal, made safe to inline in a page under the
Content-Security-Policy (no scripts, no inline <style>), and their stylesheet, and CSV tables.

pygal writes each chart's CSS into a <style> element scoped by a random id, plus a <script> for
its tooltips. An `xml_filter` removes both (and the comments) from every chart, so the SVG carries
only shapes, text and class names; `stylesheet()` is pygal's own CSS for the same style, scoped to
`svg.pygal-chart` instead of one id, served once as a file (style-src 'self'). Text in the charts
(names of people) is escaped by the XML serializer.
"""

import csv
import io
import re
import sys
from collections.abc import Callable, Iterable
from functools import cache

from markupsafe import Markup

from openduty.report_periods import ReportQuery
from openduty.reports import IncidentFigures, PersonFigures

# Enough colours for the most series a chart has (two: median and p90, in hours and out of hours).
SERIES = 2


@cache
def _pygal():
    """pygal, imported when the first chart is drawn: ~4 MB that the processes which never draw one
    (the worker; the web app until someone opens a report) do not carry."""
    import pygal  # only the reports draw charts (see the docstring)

    # pygal 3.0 puts a finder for its map plugins (unused here) on sys.meta_path; it has no find_spec,
    # so every later failed import anywhere warns (ImportWarning). Taken out again.
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, pygal.PluginImportFixer)]
    return pygal


@cache
def _style():
    return _pygal().style.Style(
        background="transparent",
        plot_background="#ffffff",
        foreground="#333333",
        foreground_strong="#111111",
        foreground_subtle="#888888",
        colors=("#2b6cb0", "#c05621", "#2f855a", "#805ad5"),
        font_family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
        label_font_size=13,
        major_label_font_size=13,
        legend_font_size=14,
        title_font_size=16,
        value_font_size=12,
    )


_ID = re.compile(r"#chart-[0-9a-f-]+ ?")
_SVG_NS = "{http://www.w3.org/2000/svg}"


def _strip(root):
    """pygal's xml_filter: drop <script>, <style> and comments; an image with a name for readers."""
    for parent in list(root.iter()):
        for child in list(parent):
            tag = child.tag if isinstance(child.tag, str) else "#comment"
            if tag.removeprefix(_SVG_NS) in ("script", "style", "#comment"):
                parent.remove(child)
    root.attrib.pop("id", None)
    root.set("role", "img")
    title = root.find("title") if root.find("title") is not None else root.find(f"{_SVG_NS}title")
    if title is not None and title.text:
        root.set("aria-label", title.text)
    return root


def _config(title: str, horizontal: bool = False, **options) -> dict:
    return {
        "title": title,
        "style": _style(),
        "js": [],
        "disable_xml_declaration": True,
        "width": 480,
        "height": 300,
        "legend_at_bottom": True,
        "legend_at_bottom_columns": 2,
        "print_values": False,
        "truncate_label": 18,
        "x_label_rotation": 0 if horizontal else 30,
        "show_minor_x_labels": True,
        "margin": 12,
        **options,
    }


def _chart(kind, *args, **options):
    """A pygal chart of `kind` whose SVG will carry no script, style or comment (`_strip`)."""
    chart = kind(**_config(*args, **options))
    chart.add_xml_filter(_strip)
    return chart


def _svg(chart) -> Markup:
    return Markup(chart.render(disable_xml_declaration=True))  # noqa: S704 (pygal's serializer escaped every text)


@cache
def stylesheet() -> str:
    """pygal's CSS for our style and SERIES colours, scoped to `svg.pygal-chart` (the class of every chart)."""
    found: list[str] = []

    def keep(root):
        for element in root.iter():
            if isinstance(element.tag, str) and element.tag.removeprefix(_SVG_NS) == "style":
                found.append(element.text or "")
        return _strip(root)

    chart = _pygal().Bar(**_config("style"))
    chart.add_xml_filter(keep)
    for n in range(SERIES):
        chart.add(str(n), [1])
    chart.render()
    css = _ID.sub("svg.pygal-chart ", "\n".join(found))
    return css.replace("svg.pygal-chart {", "svg.pygal-chart{")


def _unit(values: list[float | None]) -> tuple[str, int]:
    """Minutes, or hours when the largest value passes three hours: readable axis labels."""
    largest = max((v for v in values if v is not None), default=0)
    return ("hours", 3600) if largest > 3 * 3600 else ("minutes", 60)


def _durations(title: str, rows: list[IncidentFigures], name: str) -> Markup:
    figures = [getattr(r, name) for r in rows]
    unit, size = _unit([f.p90 for f in figures])
    chart = _chart(_pygal().Line, f"{title} ({unit})", y_title=unit, allow_interruptions=True, include_x_axis=True)
    chart.x_labels = [r.label for r in rows]
    for label, attribute in (("median", "median"), ("p90", "p90")):
        chart.add(label, [None if getattr(f, attribute) is None else round(getattr(f, attribute) / size, 1)
                          for f in figures])  # fmt: skip
    return _svg(chart)


def incidents_chart(rows: list[IncidentFigures]) -> Markup:
    chart = _chart(_pygal().Bar, "Incidents opened", y_title="incidents")
    chart.x_labels = [r.label for r in rows]
    chart.add("Incidents", [r.incidents for r in rows])
    chart.add("Escalated beyond level 1", [r.escalated for r in rows])
    return _svg(chart)


def mtta_chart(rows: list[IncidentFigures]) -> Markup:
    return _durations("Time to acknowledge", rows, "mtta")


def mttr_chart(rows: list[IncidentFigures]) -> Markup:
    return _durations("Time to resolve", rows, "mttr")


def _people_height(people: list[PersonFigures]) -> int:
    return max(200, 90 + 26 * len(people))


def pages_chart(people: list[PersonFigures]) -> Markup:
    shown = people[::-1]  # pygal draws the first label at the bottom: the most paged on top
    chart = _chart(_pygal().HorizontalStackedBar, "Pages per person", True, height=_people_height(people))
    chart.x_labels = [p.name for p in shown]
    chart.add("In hours", [p.total - p.total_out_of_hours for p in shown])
    chart.add("Out of hours (22:00-07:00)", [p.total_out_of_hours for p in shown])
    return _svg(chart)


def oncall_chart(people: list[PersonFigures]) -> Markup:
    shown = people[::-1]
    chart = _chart(_pygal().HorizontalBar, "On-call hours per person", True, height=_people_height(people))
    chart.x_labels = [p.name for p in shown]
    chart.add("Hours on call", [round(p.total, 1) for p in shown])
    return _svg(chart)


# --- CSV ------------------------------------------------------------------------------------------


def _csv(header: list[str], rows: Iterable[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(value) for value in row])
    return out.getvalue()


def _cell(value):
    """A value for a spreadsheet: names that start like a formula are quoted (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def incidents_csv(query: ReportQuery, rows: list[IncidentFigures]) -> str:
    header = ["period", "start", "end", "incidents", "escalated_beyond_level_1", "acknowledged", "mtta_median_seconds",
              "mtta_p90_seconds", "resolved", "mttr_median_seconds", "mttr_p90_seconds"]  # fmt: skip
    return _csv(
        header,
        (
            [
                r.label,
                r.start.isoformat(),
                r.end.isoformat(),
                r.incidents,
                r.escalated,
                r.mtta.count,
                r.mtta.median,
                r.mtta.p90,
                r.mttr.count,
                r.mttr.median,
                r.mttr.p90,
            ]  # fmt: skip
            for r in rows
        ),
    )


def people_csv(query: ReportQuery, people: list[PersonFigures], value: str, extra: str | None = None) -> str:
    """One row per person and period: `value` (pages, hours), and `extra` (out-of-hours pages) if given."""
    header = ["period", "start", "end", "user_id", "name", "time_zone", value] + ([extra] if extra else [])
    rows = []
    for index, p in enumerate(query.periods):
        for person in people:
            row = [p.label, p.start.isoformat(), p.end.isoformat(), person.user_id, person.name, person.time_zone]
            row.append(person.values[index])
            if extra:
                row.append(person.out_of_hours[index])
            rows.append(row)
    return _csv(header, rows)


# The charts a report page shows: name -> (what it is, how its CSV is made).
CsvMaker = Callable[..., str]
