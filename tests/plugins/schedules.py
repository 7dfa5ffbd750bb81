"""Fixtures for the schedules tests."""
