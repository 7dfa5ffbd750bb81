"""Fixtures for the users tests."""
