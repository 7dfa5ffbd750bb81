"""HTTP for the notifiers: one place that maps what went wrong to transient or permanent."""

import threading

import requests
from flask import current_app, has_app_context

from openduty.notifiers.base import PermanentError, TransientError, UnconfirmedError

# Seconds to connect, and to wait for an answer once the request is sent (defaults of the
# NOTIFY_CONNECT_TIMEOUT_SECONDS / NOTIFY_READ_TIMEOUT_SECONDS settings). A refused or timed-out
# connection reached nobody and is retried; a request sent but not answered in time may have
# arrived, so it is retried at most once. Sends run on the worker's sender threads, so a long
# read timeout holds up only the slow receiver's own page.
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 30

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
        response = _session().post(url, timeout=timeouts(), **kwargs)
    except requests.ReadTimeout as exc:
        raise UnconfirmedError(f"{what}: no answer within {timeouts()[1]:g} s; it may have arrived") from exc
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise TransientError(f"{what}: could not connect ({type(exc).__name__}: {exc})") from exc
    except requests.RequestException as exc:
        raise PermanentError(f"{what}: bad request ({exc})") from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientError(f"{what}: HTTP {response.status_code} {_snippet(response)}")
    if response.status_code >= 400:
        raise PermanentError(f"{what}: HTTP {response.status_code} {_snippet(response)}")
    return response


def timeouts() -> tuple[float, float]:
    """(connect, read) timeouts in seconds, from the app's settings when there is an app."""
    config = current_app.config if has_app_context() else {}
    return (
        float(config.get("NOTIFY_CONNECT_TIMEOUT_SECONDS") or CONNECT_TIMEOUT),
        float(config.get("NOTIFY_READ_TIMEOUT_SECONDS") or READ_TIMEOUT),
    )


def _snippet(response: requests.Response) -> str:
    text = (response.text or "").strip().replace("\n", " ")
    return text[:300]
