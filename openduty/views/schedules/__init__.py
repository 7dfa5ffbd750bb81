"""Schedules pages: the list, a schedule's calendar (month / week, htmx), layers, overrides, shifts.

Every action is a plain form POST + redirect; htmx swaps the calendar, the side panels and the
layers panel (editing, reordering and removing layers) in place. The routes live in `pages`
(list, detail, settings, calendar links), `layers`, `overrides` (overrides and shifts) and `cover`
(cover requests), all on this one blueprint, so every endpoint is `schedules.<function>` (openduty.access lists them).
"""

from flask import Blueprint

bp = Blueprint("schedules", __name__, url_prefix="/schedules")

# The submodules add their routes to `bp` when imported, so they are imported after it.
from openduty.views.schedules import cover, layers, overrides, pages  # noqa: E402, F401
