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


def notifier_for(kind: str, config: dict | None = None) -> Notifier:
    """The notifier for a contact-method kind, reading its settings from `config` (default: the app's)."""
    if kind not in NOTIFIERS:
        raise PermanentError(f"No notifier for contact methods of kind {kind!r}.")
    module_name, class_name = NOTIFIERS[kind].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(config if config is not None else current_app.config)
