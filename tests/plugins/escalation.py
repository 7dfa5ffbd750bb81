"""Fixtures for the escalation tests."""
