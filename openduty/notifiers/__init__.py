"""Notifiers: one module per channel, all behind the interface in base.py."""
