"""Signed acknowledge links: a token naming the incidents and the person paged, expiring.

Notifiers put the link (and, for the voice keypad, the token) in every page; the ack views load
it back. Signed with SECRET_KEY, so nobody can forge one; it expires after ACK_LINK_MAX_AGE_SECONDS.
"""

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from openduty.extensions import db
from openduty.models import Incident, User

_SALT = "openduty.ack-link"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def ack_token(incident_ids: list[int], user_id: int) -> str:
    """A signed token that lets its bearer act on these incidents as this user."""
    return _serializer().dumps({"i": list(incident_ids), "u": user_id})


def ack_url(incident_ids: list[int], user_id: int) -> str:
    """The absolute acknowledge link for these incidents and this user (BASE_URL + /ack/<token>)."""
    return token_url(ack_token(incident_ids, user_id))


def token_url(token: str) -> str:
    """The absolute acknowledge link of a token made by `ack_token`."""
    return f"{current_app.config['BASE_URL'].rstrip('/')}/ack/{token}"


class LinkError(Exception):
    """The token cannot be used; `status`, `title` and `message` say why, for the page shown."""

    def __init__(self, status: int, title: str, message: str):
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


def load_token(token: str) -> tuple[list[Incident], User]:
    """The incidents and user a token names, or LinkError saying why it cannot be used."""
    max_age = current_app.config["ACK_LINK_MAX_AGE_SECONDS"]
    try:
        data = _serializer().loads(token, max_age=max_age)
    except SignatureExpired as exc:
        raise LinkError(
            410, "This link has expired", "Acknowledge links work for a limited time. Log in to act on the incident."
        ) from exc
    except BadSignature as exc:
        raise LinkError(
            400, "This link is not valid", "The link is incomplete or was altered. Copy the whole link, or log in."
        ) from exc
    user = db.session.get(User, data.get("u")) if isinstance(data, dict) else None
    if user is None or not user.active:
        raise LinkError(403, "This link cannot be used", "The person this link was sent to can no longer act on it.")
    incidents = [i for i in (db.session.get(Incident, n) for n in data.get("i", [])) if i is not None]
    if not incidents:
        raise LinkError(404, "Incident not found", "The incident this link is about no longer exists.")
    return incidents, user
