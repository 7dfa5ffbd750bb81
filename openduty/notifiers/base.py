"""The Notifier interface every channel implements."""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

from openduty.notifiers.text import one_line, plain_text


class NotifierError(Exception):
    """Delivery failed. `transient` failures (timeouts, 5xx, refused connections) are retried."""

    def __init__(self, message: str, transient: bool):
        super().__init__(message)
        self.transient = transient


class PermanentError(NotifierError):
    """Retrying cannot help: a 4xx answer, an invalid address, a missing setting."""

    def __init__(self, message: str):
        super().__init__(message, transient=False)


class TransientError(NotifierError):
    """Worth retrying with backoff."""

    def __init__(self, message: str):
        super().__init__(message, transient=True)


class UnconfirmedError(TransientError):
    """The request went out whole but no answer came in time: the page may have arrived.

    Delivery retries it at most once (see models.notification.MAX_UNCONFIRMED), so a slow
    receiver is not paged again and again for one page.
    """


@dataclass
class Message:
    """What to tell a person, independent of the channel."""

    subject: str
    body: str
    # A link to act on the incident (the signed acknowledge link for pages).
    action_url: str | None = None
    incident_id: int | None = None
    incident_number: int | None = None
    # page | resolve | test
    purpose: str = "page"
    # An HTML rendering of `body` for channels that show one (email).
    html: str | None = None
    # One or two lines for channels where length costs (SMS, push, voice).
    short: str = ""
    # The incidents this message is about (a throttled message folds several): dicts with the
    # fields the webhook sends (docs/notifications.md), text as stored; channels clean what they show.
    incidents: list[dict] = field(default_factory=list)
    # The signed token that acknowledges these incidents as the recipient (links, voice keypad).
    ack_token: str | None = None
    # Whether the recipient (the contact method's owner) is an admin now: admin-only Apprise
    # schemes are refused at send time for anyone else.
    recipient_is_admin: bool = False

    # Channels read the text through these: whatever the fields hold (event text may carry
    # newlines, controls, kilobytes), the result is safe for a header, an SMS or XML, and never empty.
    def title(self, max_length: int) -> str:
        """The subject on one line, at most `max_length` characters."""
        return one_line(self.subject, max_length) or one_line(self.short, max_length) or "Openduty notification"

    def text(self, max_length: int | None = None) -> str:
        """The plain-text body (line breaks kept), at most `max_length` characters."""
        return plain_text(self.body, max_length).strip() or self.title(max_length or 250)

    def short_text(self, max_length: int) -> str:
        """The short form (SMS, push, voice) on one line, at most `max_length` characters."""
        return one_line(self.short, max_length) or self.title(max_length)

    def short_lines(self, max_length: int | None = None) -> str:
        """The short form keeping its lines (push and chat), at most `max_length` characters."""
        return plain_text(self.short, max_length).strip() or self.text(max_length)


class Notifier(ABC):
    """Send a Message to one address of one contact-method kind.

    Implementations read their settings from the app config, raise TransientError or
    PermanentError on failure, and return a short receipt (e.g. a provider's message id).
    """

    kind: ClassVar[str]

    def __init__(self, config: dict):
        self.config = config

    @abstractmethod
    def send(self, address: str, message: Message) -> str:
        """Deliver `message` to `address`; returns a receipt, raises NotifierError on failure."""
