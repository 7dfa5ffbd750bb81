"""Email over SMTP: plain text + HTML, one thread per incident (Message-ID / In-Reply-To)."""

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from openduty.notifiers.base import Message, Notifier, PermanentError, TransientError, UnconfirmedError
from openduty.notifiers.text import plain_text

SMTP_TIMEOUT = 20
# Subjects longer than this are cut with an ellipsis (mail clients show far less anyway).
SUBJECT_MAX_LENGTH = 250


def thread_id(incident_id: int, domain: str) -> str:
    """The Message-ID every email about one incident refers to, so mail clients thread them."""
    return f"<openduty.incident-{incident_id}@{domain}>"


class EmailNotifier(Notifier):
    kind = "email"

    def _domain(self) -> str:
        sender = self.config.get("SMTP_FROM") or "openduty@localhost"
        return sender.rpartition("@")[2].strip(">") or "localhost"

    def build(self, address: str, message: Message) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self.config.get("SMTP_FROM") or "openduty@localhost"
        email["To"] = address
        email["Subject"] = message.title(SUBJECT_MAX_LENGTH)
        email["Date"] = formatdate(localtime=False)
        domain = self._domain()
        email["Message-ID"] = make_msgid("openduty", domain=domain)
        if message.incident_id is not None:
            root = thread_id(message.incident_id, domain)
            email["In-Reply-To"] = root
            email["References"] = root
        email["Auto-Submitted"] = "auto-generated"
        email.set_content(message.text())
        if message.html:
            email.add_alternative(plain_text(message.html), subtype="html")
        return email

    def send(self, address: str, message: Message) -> str:
        email = self.build(address, message)
        host, port = self.config.get("SMTP_HOST", "localhost"), int(self.config.get("SMTP_PORT") or 25)
        security = (self.config.get("SMTP_SECURITY") or "none").lower()
        if security not in ("none", "starttls", "tls"):
            raise PermanentError(f"SMTP_SECURITY must be none, starttls or tls, not {security!r}.")
        try:
            if security == "tls":
                smtp = smtplib.SMTP_SSL(host, port, timeout=SMTP_TIMEOUT, context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT)
            with smtp:
                if security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if self.config.get("SMTP_USERNAME"):
                    smtp.login(self.config["SMTP_USERNAME"], self.config.get("SMTP_PASSWORD") or "")
                try:
                    smtp.send_message(email)
                except (TimeoutError, smtplib.SMTPServerDisconnected) as exc:
                    # Connected and talking: the server may have taken the message before it went
                    # quiet, so this counts as maybe delivered (sent at most once more).
                    raise UnconfirmedError(f"The mail server {host}:{port} stopped answering: {exc}") from exc
        except UnconfirmedError:
            raise
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentError(f"The mail server refused {address}: {_refusal(exc)}") from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentError(f"The mail server refused the login (SMTP_USERNAME/SMTP_PASSWORD): {exc}") from exc
        except smtplib.SMTPResponseException as exc:
            error = f"The mail server answered {exc.smtp_code} {_text(exc.smtp_error)}"
            raise (TransientError(error) if 400 <= exc.smtp_code < 500 else PermanentError(error)) from exc
        except (TimeoutError, OSError, smtplib.SMTPException) as exc:
            raise TransientError(f"Could not reach the mail server {host}:{port}: {exc}") from exc
        return email["Message-ID"]


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _refusal(exc: smtplib.SMTPRecipientsRefused) -> str:
    return "; ".join(f"{code} {_text(msg)}" for code, msg in exc.recipients.values())
