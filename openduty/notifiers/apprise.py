"""Apprise URLs: one contact method reaches any of the 100+ services Apprise supports."""

import warnings

from openduty.notifiers.base import Message, Notifier, PermanentError, TransientError

TITLE_MAX_LENGTH = 250


def title_and_body(message: Message) -> tuple[str, str]:
    """A one-line title and a plain-text body ending with the acknowledge link."""
    body = message.text() + (f"\n\n{message.action_url}" if message.action_url else "")
    return message.title(TITLE_MAX_LENGTH), body


class AppriseNotifier(Notifier):
    kind = "apprise"

    def send(self, address: str, message: Message) -> str:
        with warnings.catch_warnings():
            # Apprise loads its plugins lazily, and one imports the stdlib's deprecated imghdr.
            warnings.simplefilter("ignore", DeprecationWarning)
            return self._send(address, message)

    def _send(self, address: str, message: Message) -> str:
        import apprise

        target = apprise.Apprise()
        if not target.add(address):
            raise PermanentError("Apprise does not recognise this URL; see the Apprise wiki for the format.")
        title, body = title_and_body(message)
        kind = apprise.NotifyType.FAILURE if message.purpose == "page" else apprise.NotifyType.SUCCESS
        # Apprise reports only success or failure; a failure may be an outage, so it is retried.
        if not target.notify(title=title, body=body, notify_type=kind):
            raise TransientError("Apprise could not deliver the notification (see the worker log for details).")
        return "sent"
