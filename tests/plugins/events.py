"""Fixtures for the events tests."""
