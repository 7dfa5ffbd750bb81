"""Oncalls API routes, registered on the api blueprint."""

from openduty.views.api import bp  # noqa: F401
