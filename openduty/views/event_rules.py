"""Event rules pages: a service's rules (/services/<id>/event-rules) and the global rules
(/event-rules, admins): list, add, edit, delete, move up/down, and the tester.

Each view serves both: registered twice, under a service's path and the global one (own endpoint
names, so that openduty.access gives each its rule). The rules are openduty.event_rule_edit and
openduty.event_rules, shared with the API.
"""

import json

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select

from openduty import event_intake, event_rule_edit, event_rules, validation
from openduty.errors import ValidationError
from openduty.event_formats import InvalidEvent, parse_sample
from openduty.extensions import db
from openduty.models import EventRule, Service
from openduty.models.event_rule import URGENCIES
from openduty.models.incident import SEVERITIES
from openduty.views import confirm_page, done, for_global_rules, get_or_404, is_htmx, render

bp = Blueprint("event_rules", __name__)

SAMPLE = (
    '{"summary": "Disk 91% full on web-1", "source": "web-1", "severity": "warning",\n'
    ' "custom_details": {"env": "prod"}}'
)


def _service(service_id: int | None) -> Service | None:
    return None if service_id is None else get_or_404(Service, service_id)


def _url_maker(service_id: int | None):
    """url("edit", event_rule_id=3): the URL of an action on this service's rules (or the global ones)."""
    scope = "global" if service_id is None else "service"
    where = {} if service_id is None else {"service_id": service_id}

    def url(action: str, **values) -> str:
        if service_id is None and "event_rule_id" in values:
            values["global_rule_id"] = values.pop("event_rule_id")
        name = f"{action}_{scope}_rules" if action == "test" else f"{action}_{scope}_rule"
        return url_for(f"event_rules.{name}", **where, **values)

    return url


def _list_url(service_id: int | None) -> str:
    if service_id is None:
        return url_for("event_rules.global_rules")
    return url_for("event_rules.service_rules", service_id=service_id)


def _context(service_id: int | None) -> dict:
    """What the pages show beside the rules: where they live and who may change them."""
    service = _service(service_id)
    may_change = current_user.is_admin if service is None else current_user.manages(service.team_id)
    return {
        "service": service,
        "may_change": may_change,
        "list_url": _list_url(service_id),
        "url": _url_maker(service_id),
    }


def index(service_id: int | None, sample: str = SAMPLE, tested=None, errors=None, status: int = 200):
    context = _context(service_id)
    rules = event_rule_edit.rules_of(service_id)
    global_rules = event_rule_edit.rules_of(None) if service_id is not None else []
    names = dict(db.session.execute(select(Service.id, Service.name)).all())
    return render(
        "event_rules/index.html",
        block="tester" if tested is not None or errors else None,
        status=status,
        rules=rules,
        global_rules=global_rules,
        warnings={r.id: event_rule_edit.warnings(r) for r in [*rules, *global_rules]},
        names=names,
        operators=event_rules.OPERATORS,
        sample=sample,
        tested=tested,
        errors=errors or {},
        **context,
    )


def _not_json(exc: ValueError) -> str:
    """What to fix in a sample that is not JSON: where, in words (not the parser's message)."""
    if isinstance(exc, json.JSONDecodeError):
        return (
            f"Not valid JSON: check line {exc.lineno}, column {exc.colno} (names and text in double quotes, "
            "no comma after the last item, every { and [ closed)."
        )
    return f"Not valid JSON: {exc}"  # our own messages (too deep, NaN), which say what to fix


def test(service_id: int | None):
    """The tester: what the rules would do with the pasted event (nothing is stored)."""
    _service(service_id)
    sample = request.form.get("event", "")
    try:
        event = parse_sample(validation.loads(sample) if sample.strip() else None)
    except InvalidEvent as exc:
        return index(service_id, sample, errors={"event": " ".join(exc.errors)}, status=422)
    except ValueError as exc:
        return index(service_id, sample, errors={"event": _not_json(exc)}, status=422)
    book = event_intake.rule_book()
    verdict = event_rules.evaluate(event, service_id, book)
    return index(service_id, sample, tested=(verdict, *event_rules.describe(verdict, book)))


def _form_values() -> dict:
    form = request.form
    conditions = []
    for n in range(event_rule_edit.MAX_CONDITIONS):
        field, value = form.get(f"field-{n}", "").strip(), form.get(f"value-{n}", "")
        if field or value.strip():
            conditions.append({"field": field, "operator": form.get(f"operator-{n}", ""), "value": value})
    return {
        "name": form.get("name", ""),
        "match": form.get("match", "all"),
        "conditions": conditions,
        "action": form.get("action", ""),
        "severity": form.get("severity", ""),
        "urgency": form.get("urgency", ""),
        "route_to_service_id": form.get("route_to_service_id", ""),
        "continue": "continue" in form,
    }


def _form(service_id: int | None, rule: EventRule | None, values: dict, errors: dict | None = None, status: int = 200):
    targets = db.session.scalars(select(Service).where(Service.id != (service_id or 0)).order_by(Service.name)).all()
    blank = min(2, event_rule_edit.MAX_CONDITIONS - len(values["conditions"]))
    return render(
        "event_rules/form.html",
        status=status,
        rule=rule,
        values=values,
        rows=[*values["conditions"], *({"field": "", "operator": "equals", "value": ""} for _ in range(blank))],
        errors=errors or {},
        targets=targets,
        actions=event_rules.ACTION_LABELS,
        operators=event_rules.OPERATORS,
        fields=event_rules.FIELDS,
        severities=SEVERITIES,
        urgencies=URGENCIES,
        **_context(service_id),
    )


def _save(service_id: int | None, rule: EventRule | None):
    values = _form_values()
    try:
        rule = event_rule_edit.save_rule(service_id, values, rule)
    except ValidationError as exc:
        return _form(service_id, rule, values, exc.fields, status=422)
    db.session.commit()
    flash(f"Rule {rule.position} saved.")
    for warning in event_rule_edit.warnings(rule):
        flash(f"Rule {rule.position}: {warning}", "warning")
    return redirect(_list_url(service_id))


def _rule(service_id: int | None, event_rule_id: int) -> EventRule:
    _service(service_id)
    rule = event_rule_edit.rule_in(service_id, event_rule_id)
    if rule is None:
        abort(404, "No such event rule here.")
    return rule


def new(service_id: int | None):
    _service(service_id)
    if request.method == "POST":
        return _save(service_id, None)
    return _form(service_id, None, {"match": "all", "conditions": [], "action": "suppress"})


def edit(service_id: int | None, event_rule_id: int):
    rule = _rule(service_id, event_rule_id)
    if request.method == "POST":
        return _save(service_id, rule)
    return _form(service_id, rule, event_rule_edit.values_of(rule))


def move(service_id: int | None, event_rule_id: int):
    rule = _rule(service_id, event_rule_id)
    try:
        event_rule_edit.move_rule(rule, request.form.get("direction", ""))
    except ValidationError:
        flash("Move a rule up or down.", "error")
        return redirect(_list_url(service_id))
    db.session.commit()
    if is_htmx():
        return index(service_id)
    return redirect(_list_url(service_id))


def delete(service_id: int | None, event_rule_id: int):
    """Delete a rule: GET asks (without JavaScript), POST deletes."""
    rule = _rule(service_id, event_rule_id)
    position = rule.position
    if request.method == "GET":
        return confirm_page(
            f"Delete rule {position}?",
            "Delete rule",
            _list_url(service_id),
            "Events it matched go on to the next rules (or open incidents as usual); the rules after it move up.",
        )
    event_rule_edit.delete_rule(rule)
    db.session.commit()
    flash(f"Rule {position} deleted.")
    return done(_list_url(service_id))


_SERVICE = "/services/<int:service_id>/event-rules"
_GLOBAL = "/event-rules"
_ROUTES = (
    ("", "rules", index, ["GET"]),
    ("/test", "test_{}_rules", test, ["POST"]),
    ("/new", "new_{}_rule", new, ["GET", "POST"]),
    ("/<int:event_rule_id>/edit", "edit_{}_rule", edit, ["GET", "POST"]),
    ("/<int:event_rule_id>/move", "move_{}_rule", move, ["POST"]),
    ("/<int:event_rule_id>/delete", "delete_{}_rule", delete, ["GET", "POST"]),
)
for _path, _name, _view, _methods in _ROUTES:
    _service_name = "service_rules" if _name == "rules" else _name.format("service")
    _global_name = "global_rules" if _name == "rules" else _name.format("global")
    bp.add_url_rule(_SERVICE + _path, _service_name, _view, methods=_methods)
    bp.add_url_rule(
        _GLOBAL + _path.replace("event_rule_id", "global_rule_id"),
        _global_name,
        for_global_rules(_view),
        methods=_methods,
    )
