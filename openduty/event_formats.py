"""The inbound event formats: one parser per format, each turning a request body into `Event`s.

`parse_v2` (PagerDuty Events API v2), `parse_v1` (PagerDuty v1), `parse_legacy` (the original
Openduty form), `parse_alertmanager` (Prometheus Alertmanager webhook, version 4) and
`parse_generic` (plain JSON) validate the body and return Events, or raise `InvalidEvent` naming
every problem; `parse_change` (PagerDuty change events) returns a `Change`. Nothing here touches
the database: the ingest endpoints parse before anything else.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from openduty.events import Event
from openduty.models.incident import SEVERITIES
from openduty.models.service import INTEGRATION_KEY_LENGTH
from openduty.validation import MAX_YEAR, MIN_YEAR, unstorable, unstorable_path

ACTIONS = ("trigger", "acknowledge", "resolve")
# PagerDuty's limits, so a client that works there works here.
MAX_BODY_BYTES = 512 * 1024
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255
MAX_SHORT_FIELD = 255


class InvalidEvent(Exception):
    """The body is not a valid event; `errors` names each problem."""

    def __init__(self, errors: list[str], status: int = 400):
        super().__init__("; ".join(errors))
        self.errors = errors
        self.status = status


class _Fields:
    """Collects every problem of one body, PagerDuty-style ("'payload.summary' is missing")."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def text(self, obj: dict, name: str, *, path: str | None = None, max_length: int, required: bool) -> str:
        label = path or name
        value = obj.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.errors.append(f"'{label}' is missing or blank.")
            return ""
        if not isinstance(value, str):
            self.errors.append(f"'{label}' must be a string.")
            return ""
        if len(value) > max_length:
            self.errors.append(f"'{label}' is too long ({len(value)} characters; at most {max_length}).")
            return ""
        return value.strip()

    def choice(self, obj: dict, name: str, choices: tuple[str, ...], *, path: str | None = None, default=None):
        label = path or name
        value = obj.get(name, default)
        if value is None:
            self.errors.append(f"'{label}' is missing; use one of {', '.join(choices)}.")
            return None
        if value not in choices:
            self.errors.append(f"'{label}' is invalid ({_short(value)}); use one of {', '.join(choices)}.")
            return None
        return value

    def timestamp(self, obj: dict, name: str, *, path: str) -> str | None:
        """An optional ISO 8601 timestamp, kept as sent."""
        return obj[name] if self._parsed_time(obj, name, path) is not None else None

    def moment(self, obj: dict, name: str, *, path: str) -> datetime | None:
        """An optional ISO 8601 timestamp as an aware UTC time (UTC when it has no offset), in the
        years validation accepts everywhere."""
        parsed = self._parsed_time(obj, name, path)
        if parsed is None:
            return None
        if not MIN_YEAR <= parsed.year <= MAX_YEAR:
            self.errors.append(f"'{path}' must be between the years {MIN_YEAR} and {MAX_YEAR}.")
            return None
        return parsed.astimezone(UTC) if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)

    def _parsed_time(self, obj: dict, name: str, path: str) -> datetime | None:
        value = obj.get(name)
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            self.errors.append(f"'{path}' must be an ISO 8601 timestamp string.")
            return None
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            self.errors.append(f"'{path}' is not an ISO 8601 timestamp ({_short(value)}).")
            return None

    def list_of_objects(self, obj: dict, name: str, required_key: str) -> list | None:
        value = obj.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.errors.append(f"'{name}' must be a list of objects.")
            return None
        for i, item in enumerate(value):
            if not isinstance(item.get(required_key), str) or not item[required_key].strip():
                self.errors.append(f"'{name}[{i}].{required_key}' is missing or not a string.")
                return None
        return value

    def raise_if_any(self) -> None:
        if self.errors:
            raise InvalidEvent(self.errors)


def _short(value: Any) -> str:
    text_ = json.dumps(value, default=str)
    return text_ if len(text_) <= 40 else text_[:37] + "..."


def _require_object(body: Any) -> dict:
    """The body as an object whose every text (values and keys) a database can store.

    Checked up front, for the whole body: a NUL or a lone surrogate reaching the driver fails the
    transaction that other requests' events share, so it is refused here, naming where it is.
    """
    if not isinstance(body, dict):
        raise InvalidEvent(["The event must be a JSON object."])
    found = unstorable_path(body)
    if found:
        where, reason = found
        raise InvalidEvent([f"'{where}' {reason}; remove it."])
    return body


def url_key(key: str) -> str:
    """An integration key taken from the URL: refused before any lookup if it cannot be one of ours."""
    if len(key) > INTEGRATION_KEY_LENGTH:
        raise InvalidEvent(
            [f"The integration key in the URL is too long ({len(key)} characters; keys have {INTEGRATION_KEY_LENGTH})."]
        )
    reason = unstorable(key)
    if reason:
        raise InvalidEvent([f"The integration key in the URL {reason}."])
    return key


def new_dedup_key() -> str:
    return uuid.uuid4().hex


def _event(
    key: str, action: str, dedup_key: str, summary: str, severity: str, source: str, details: dict, via: str
) -> Event:
    """The Event; a trigger sent without a dedup key gets a new one (and says so, for grouping)."""
    return Event(
        key,
        action,
        dedup_key or new_dedup_key(),
        summary,
        severity,
        source=source,
        details=details,
        via=via,
        dedup_key_given=bool(dedup_key),
    )


def parse_v2(body: Any) -> Event:
    """PagerDuty Events API v2 (`POST /v2/enqueue`)."""
    body = _require_object(body)
    f = _Fields()
    routing_key = f.text(body, "routing_key", max_length=INTEGRATION_KEY_LENGTH, required=True)
    action = f.choice(body, "event_action", ACTIONS)
    dedup_key = f.text(body, "dedup_key", max_length=MAX_DEDUP_KEY, required=action in ("acknowledge", "resolve"))
    summary, source, severity, details = "", "", "critical", {}
    if action == "trigger":
        payload = body.get("payload")
        if not isinstance(payload, dict):
            f.errors.append("'payload' is missing or not an object.")
        else:
            summary = f.text(payload, "summary", path="payload.summary", max_length=MAX_SUMMARY, required=True)
            source = f.text(payload, "source", path="payload.source", max_length=MAX_SHORT_FIELD, required=True)
            severity = f.choice(payload, "severity", SEVERITIES, path="payload.severity") or "critical"
            timestamp = f.timestamp(payload, "timestamp", path="payload.timestamp")
            for name in ("component", "group", "class"):
                value = f.text(payload, name, path=f"payload.{name}", max_length=MAX_SHORT_FIELD, required=False)
                if value:
                    details[name] = value
            if timestamp:
                details["timestamp"] = timestamp
            if payload.get("custom_details") is not None:
                details["custom_details"] = payload["custom_details"]
        links = f.list_of_objects(body, "links", "href")
        images = f.list_of_objects(body, "images", "src")
        if links:
            details["links"] = links
        if images:
            details["images"] = images
        for name in ("client", "client_url"):
            value = f.text(body, name, max_length=MAX_SUMMARY, required=False)
            if value:
                details[name] = value
    f.raise_if_any()
    return _event(routing_key, action, dedup_key, summary, severity, source, details, "events_v2")


def parse_sample(body: Any) -> Event:
    """A sample event pasted into the event rules tester: an Events API v2 body, or just its payload
    (the routing key and the action may be left out: a trigger is assumed)."""
    body = _require_object(body)
    if "payload" not in body and "event_action" not in body:
        body = {"payload": body}
    return parse_v2({"routing_key": "sample", "event_action": "trigger", **body})


def parse_v1(body: Any, via: str = "events_v1") -> Event:
    """PagerDuty Events API v1 (`POST /generic/2010-04-15/create_event.json`)."""
    body = _require_object(body)
    f = _Fields()
    routing_key = f.text(body, "service_key", max_length=INTEGRATION_KEY_LENGTH, required=True)
    action = f.choice(body, "event_type", ACTIONS)
    dedup_key = f.text(body, "incident_key", max_length=MAX_DEDUP_KEY, required=action in ("acknowledge", "resolve"))
    description = f.text(body, "description", max_length=MAX_SUMMARY, required=action == "trigger")
    details: dict[str, Any] = {}
    if body.get("details") not in (None, ""):
        details["custom_details"] = body["details"]
    contexts = f.list_of_objects(body, "contexts", "type")
    if contexts:
        details["links"] = [{"href": c["href"], "text": c.get("text", c["href"])} for c in contexts if c.get("href")]
        details["images"] = [
            {"src": c["src"], "href": c.get("href"), "alt": c.get("alt")} for c in contexts if c.get("src")
        ]
    for name in ("client", "client_url"):
        value = f.text(body, name, max_length=MAX_SUMMARY, required=False)
        if value:
            details[name] = value
    f.raise_if_any()
    return _event(routing_key, action, dedup_key, description, "critical", "", details, via)


def parse_legacy(body: Any) -> Event:
    """The original Openduty `POST /api/create_event` (JSON or form fields, as v1)."""
    body = _require_object(body)
    if isinstance(body.get("details"), str):
        # The old form sent details as free text; keep it readable.
        body = {**body, "details": {"text": body["details"]}}
    return parse_v1(body, via="openduty")


_ALERTMANAGER_SEVERITIES = {"page": "critical", "high": "error", "medium": "warning", "low": "info", "none": "info"}


def parse_alertmanager(key: str, body: Any) -> list[Event]:
    """Prometheus Alertmanager webhook (version 4): one Event per alert, keyed by fingerprint."""
    key = url_key(key)
    body = _require_object(body)
    alerts = body.get("alerts")
    if not isinstance(alerts, list):
        raise InvalidEvent(["'alerts' is missing or not a list (is this an Alertmanager webhook, version 4?)."])
    f = _Fields()
    events = []
    for i, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            f.errors.append(f"'alerts[{i}]' must be an object.")
            continue
        labels = alert.get("labels") or {}
        annotations = alert.get("annotations") or {}
        if not isinstance(labels, dict) or not isinstance(annotations, dict):
            f.errors.append(f"'alerts[{i}].labels' and '.annotations' must be objects.")
            continue
        status = alert.get("status")
        if status not in ("firing", "resolved"):
            f.errors.append(f"'alerts[{i}].status' must be firing or resolved.")
            continue
        fingerprint = alert.get("fingerprint")
        if not isinstance(fingerprint, str) or not fingerprint:
            # Older senders: derive a stable key from the label set, as Alertmanager does.
            fingerprint = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]
        name = str(labels.get("alertname") or "Alert")
        summary = str(annotations.get("summary") or name)[:MAX_SUMMARY]
        severity = str(labels.get("severity", "")).lower()
        severity = severity if severity in SEVERITIES else _ALERTMANAGER_SEVERITIES.get(severity, "critical")
        details: dict[str, Any] = {"labels": labels, "annotations": annotations}
        for name_ in ("startsAt", "endsAt", "generatorURL"):
            if alert.get(name_):
                details[name_] = alert[name_]
        for name_ in ("receiver", "externalURL", "groupKey"):
            if body.get(name_):
                details[name_] = body[name_]
        if alert.get("generatorURL"):
            details["links"] = [{"href": alert["generatorURL"], "text": "Source (Prometheus)"}]
        source = str(labels.get("instance") or labels.get("job") or "")[:MAX_SHORT_FIELD]
        action = "trigger" if status == "firing" else "resolve"
        dedup_key = fingerprint[:MAX_DEDUP_KEY]
        events.append(_event(key, action, dedup_key, summary, severity, source, details, "alertmanager"))
    f.raise_if_any()
    return events


def parse_generic(key: str, body: Any) -> Event:
    """The plain JSON webhook: `{"summary", "dedup_key", "action", "severity", "details", "source"}`."""
    key = url_key(key)
    body = _require_object(body)
    f = _Fields()
    action = f.choice(body, "action", ACTIONS, default="trigger")
    dedup_key = f.text(body, "dedup_key", max_length=MAX_DEDUP_KEY, required=action in ("acknowledge", "resolve"))
    summary = f.text(body, "summary", max_length=MAX_SUMMARY, required=action == "trigger")
    severity = f.choice(body, "severity", SEVERITIES, default="critical") or "critical"
    source = f.text(body, "source", max_length=MAX_SHORT_FIELD, required=False)
    details: dict[str, Any] = {}
    if body.get("details") is not None:
        if not isinstance(body["details"], dict):
            f.errors.append("'details' must be an object.")
        else:
            details["custom_details"] = body["details"]
    f.raise_if_any()
    return _event(key, action, dedup_key, summary, severity, source, details, "generic")


@dataclass(slots=True)
class Change:
    """One PagerDuty change event (a deploy, a config change), as parsed; openduty.change_events stores it."""

    routing_key: str
    summary: str
    source: str = ""
    # When it happened; None: when it arrived.
    timestamp: datetime | None = None
    custom_details: Any = None
    links: list[dict[str, str]] = field(default_factory=list)


def parse_change(body: Any) -> Change:
    """PagerDuty change events (`POST /v2/change/enqueue`): routing_key and payload.summary required;
    payload.timestamp, .source, .custom_details and links[] (href, text) optional."""
    body = _require_object(body)
    f = _Fields()
    routing_key = f.text(body, "routing_key", max_length=INTEGRATION_KEY_LENGTH, required=True)
    summary, source, timestamp, custom_details = "", "", None, None
    payload = body.get("payload")
    if not isinstance(payload, dict):
        f.errors.append("'payload' is missing or not an object.")
    else:
        summary = f.text(payload, "summary", path="payload.summary", max_length=MAX_SUMMARY, required=True)
        source = f.text(payload, "source", path="payload.source", max_length=MAX_SHORT_FIELD, required=False)
        timestamp = f.moment(payload, "timestamp", path="payload.timestamp")
        custom_details = payload.get("custom_details")
    links = []
    for i, link in enumerate(f.list_of_objects(body, "links", "href") or []):
        text_ = link.get("text")
        if text_ is not None and not isinstance(text_, str):
            f.errors.append(f"'links[{i}].text' must be a string.")
        links.append({"href": link["href"], "text": text_ or link["href"]})
    f.raise_if_any()
    return Change(routing_key, summary, source, timestamp, custom_details, links)
