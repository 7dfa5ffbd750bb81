"""Registers every blueprint on the app (and the time filters every template uses): the one
module that knows them all.

Kept apart from openduty.views (the helpers each blueprint imports) so that no view module
imports another one through the package.
"""

from flask import Flask

from openduty.views import (
    ack,
    api,
    audit,
    auth,
    calendar,
    event_rules,
    events,
    health,
    home,
    incidents,
    maintenance,
    metrics,
    policies,
    reports,
    schedules,
    services,
    teams,
    times,
    users,
)

BLUEPRINTS = (
    auth,
    health,
    home,
    api,
    users,
    services,
    incidents,
    policies,
    schedules,
    events,
    calendar,
    ack,
    audit,
    teams,
    event_rules,
    maintenance,
    metrics,
    reports,
)


def register(app: Flask) -> None:
    """Register the blueprints (each module's `bp`), in the order their URL rules were written."""
    for module in BLUEPRINTS:
        app.register_blueprint(module.bp)
    times.register(app)
