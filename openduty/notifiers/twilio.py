"""Twilio SMS and voice over its REST API (TWILIO_BASE_URL, so tests can use a local server).

SMS replies ("ack 12", "res 12") and the voice keypad ("press 1 to acknowledge") come back to the
webhooks in openduty/views/ack.py, which verify Twilio's X-Twilio-Signature.
"""

import base64
import hashlib
import hmac
from xml.sax.saxutils import escape, quoteattr

from openduty import outbound
from openduty.notifiers import http
from openduty.notifiers.base import Message, Notifier, PermanentError

# Twilio takes up to 1600 characters per SMS body and 4000 per inline TwiML document.
SMS_MAX_LENGTH = 1500
TWIML_MAX_LENGTH = 4000
# What a call says (said twice, within TWIML_MAX_LENGTH with the markup and prompts).
VOICE_MAX_LENGTH = 1200


def request_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's X-Twilio-Signature: base64 HMAC-SHA1 of the URL followed by the sorted POST params."""
    data = url + "".join(f"{key}{params[key]}" for key in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def sms_params(address: str, message: Message) -> dict[str, str]:
    """The SMS: the short text on one line, cut so that the acknowledge link always fits."""
    link = f" {message.action_url}" if message.action_url else ""
    return {"To": address, "Body": message.short_text(SMS_MAX_LENGTH - len(link)) + link}


def voice_twiml(message: Message, gather_url: str | None) -> str:
    """Say the page, and (for pages) gather one key: 1 acknowledges."""
    text = escape(message.short_text(VOICE_MAX_LENGTH))
    if message.purpose != "page" or not gather_url:
        return f'<Response><Say voice="alice">{text}</Say></Response>'
    prompt = "Press 1 to acknowledge."
    return (
        f'<Response><Gather numDigits="1" timeout="10" method="POST" action={quoteattr(gather_url)}>'
        f'<Say voice="alice">{text} {prompt}</Say><Pause length="1"/><Say voice="alice">{text} {prompt}</Say>'
        f'</Gather><Say voice="alice">No key pressed. The incident is still open. Goodbye.</Say></Response>'
    )


class _Twilio(Notifier):
    resource = ""

    def _account(self) -> tuple[str, str, str]:
        sid, token, sender = (
            self.config.get(k) for k in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER")
        )
        if not (sid and token and sender):
            raise PermanentError(
                "Twilio is not configured on this server: set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and "
                "TWILIO_FROM_NUMBER."
            )
        return sid, token, sender

    def _post(self, data: dict) -> str:
        sid, token, sender = self._account()
        base = self.config.get("TWILIO_BASE_URL", "https://api.twilio.com").rstrip("/")
        url = f"{base}/2010-04-01/Accounts/{sid}/{self.resource}.json"
        reply = http.post(
            url, f"Twilio {self.kind}", policy=outbound.OPERATOR, data={"From": sender, **data}, auth=(sid, token)
        )
        return http.json_field(reply, "sid") or f"HTTP {reply.status}"


class TwilioSmsNotifier(_Twilio):
    kind = "sms"
    resource = "Messages"

    def send(self, address: str, message: Message) -> str:
        return self._post(sms_params(address, message))


class TwilioVoiceNotifier(_Twilio):
    kind = "voice"
    resource = "Calls"

    def send(self, address: str, message: Message) -> str:
        base_url = (self.config.get("BASE_URL") or "").rstrip("/")
        gather_url = f"{base_url}/twilio/voice/{message.ack_token}" if message.ack_token else None
        return self._post({"To": address, "Twiml": voice_twiml(message, gather_url)})
