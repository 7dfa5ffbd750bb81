"""Notifiers: one module per channel, all behind the interface in base.py.

`notifier_for(kind)` returns the channel's Notifier configured from the app config. Delivery
(claiming rows, throttling, retries, the timeline) lives in `delivery.py`; what a message says
(subject, bodies, short text) is built in `message.py`.
"""

import importlib

from flask import current_app

from openduty.notifiers.base import Notifier, PermanentError

# Contact-method kind -> "module:Class".
NOTIFIERS = {
    "email": "openduty.notifiers.email:EmailNotifier",
    "webhook": "openduty.notifiers.webhook:WebhookNotifier",
    "slack": "openduty.notifiers.slack:SlackNotifier",
    "sms": "openduty.notifiers.twilio:TwilioSmsNotifier",
    "voice": "openduty.notifiers.twilio:TwilioVoiceNotifier",
    "pushover": "openduty.notifiers.pushover:PushoverNotifier",
    "xmpp": "openduty.notifiers.xmpp:XmppNotifier",
    "apprise": "openduty.notifiers.apprise:AppriseNotifier",
}


# The settings a channel cannot send without, on this server. Methods of a channel that lacks them
# cannot be added, and the policy preview marks existing ones (they would fail at page time).
REQUIRED_SETTINGS = {
    "sms": ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER"),
    "voice": ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER"),
    "pushover": ("PUSHOVER_TOKEN",),
    "xmpp": ("XMPP_JID", "XMPP_PASSWORD"),
}


def missing_settings(kind: str, config=None) -> list[str]:
    """The settings `kind` needs that this server lacks (none: it can send)."""
    config = config if config is not None else current_app.config
    return [name for name in REQUIRED_SETTINGS.get(kind, ()) if not config.get(name)]


def not_configured(kind: str, config=None) -> str | None:
    """Why this server cannot send on `kind` ("... is not configured: set X and Y."), or None."""
    missing = missing_settings(kind, config)
    if not missing:
        return None
    names = ", ".join(missing[:-1]) + " and " + missing[-1] if len(missing) > 1 else missing[0]
    return f"{CHANNEL_NAMES.get(kind, kind)} is not configured on this server: an admin must set {names}."


CHANNEL_NAMES = {"sms": "SMS (Twilio)", "voice": "Voice (Twilio)", "pushover": "Pushover", "xmpp": "XMPP"}


def notifier_for(kind: str, config: dict | None = None) -> Notifier:
    """The notifier for a contact-method kind, reading its settings from `config` (default: the app's)."""
    if kind not in NOTIFIERS:
        raise PermanentError(f"No notifier for contact methods of kind {kind!r}.")
    module_name, class_name = NOTIFIERS[kind].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(config if config is not None else current_app.config)
