"""HTTP for the notifiers: one place that maps what went wrong to transient or permanent."""

import threading

import requests

from openduty.notifiers.base import PermanentError, TransientError

# Seconds to connect, and to wait for an answer. A page is worth waiting for, but not forever.
TIMEOUT = (5, 15)

_local = threading.local()


def _session() -> requests.Session:
    """One Session per thread: keeps connections to the same provider alive between pages."""
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session


def post(url: str, what: str, **kwargs) -> requests.Response:
    """POST and return the response; raise TransientError (timeouts, refused, 5xx, 429) or
    PermanentError (other 4xx) naming `what` was being called."""
    try:
        response = _session().post(url, timeout=TIMEOUT, **kwargs)
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise TransientError(f"{what}: could not connect ({type(exc).__name__}: {exc})") from exc
    except requests.RequestException as exc:
        raise PermanentError(f"{what}: bad request ({exc})") from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientError(f"{what}: HTTP {response.status_code} {_snippet(response)}")
    if response.status_code >= 400:
        raise PermanentError(f"{what}: HTTP {response.status_code} {_snippet(response)}")
    return response


def _snippet(response: requests.Response) -> str:
    text = (response.text or "").strip().replace("\n", " ")
    return text[:300]
