"""Structured-mode CloudEvents (``application/cloudevents+json``) as notifications.

Open Notificaties ≥ 1.14 can send, per abonnement, the same event as a CloudEvent:
``type = nl.overheid.{kanaal}.{resource}.{actie}``, ``subject`` = the last path segment
of the resource URL, ``data`` = the kenmerken plus ``hoofdObject``, and a fresh ``id``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

from .exceptions import ValidationError
from .notification import Notification
from .schema import notification_from_json

TYPE_PREFIX = "nl.overheid."
_ENVELOPE = ("specversion", "id", "source", "type", "subject", "time", "datacontenttype",
             "dataschema", "dataref")


def _reject(name: str, reason: str) -> ValidationError:
    return ValidationError(
        "The CloudEvent is not a valid notification.",
        invalid_params=[{"name": name, "code": "invalid", "reason": reason}],
    )


def from_cloudevent(event: Any, raw: bytes = b"") -> Notification:
    """Turn a structured-mode CloudEvent into the equivalent Notification.

    The resource URL is taken from ``data.resourceUrl`` or ``dataref`` when present; else,
    when ``subject`` is the last segment of ``hoofdObject``, the hoofdObject itself.
    """
    if not isinstance(event, dict):
        raise _reject("body", "The body must be a JSON object.")
    for name in ("specversion", "id", "source", "type"):
        if not isinstance(event.get(name), str) or not event[name]:
            raise _reject(name, "Missing data for required field.")
    kind = event["type"]
    parts = kind[len(TYPE_PREFIX):].split(".") if kind.startswith(TYPE_PREFIX) else []
    if len(parts) != 3 or not all(parts):
        raise _reject("type", "Must be nl.overheid.{kanaal}.{resource}.{actie}.")
    data = event.get("data") or {}
    if not isinstance(data, dict):
        raise _reject("data", "Must be an object.")
    kenmerken = {k: v for k, v in data.items() if k not in ("hoofdObject", "resourceUrl")}
    hoofd_object = data.get("hoofdObject")
    subject = event.get("subject")
    resource_url = data.get("resourceUrl") or event.get("dataref")
    if not resource_url and isinstance(hoofd_object, str) and isinstance(subject, str):
        if hoofd_object.rstrip("/").rsplit("/", 1)[-1] == subject:
            resource_url = hoofd_object
    if not resource_url:
        resource_url = hoofd_object
    time = event.get("time") or datetime.now(timezone.utc).isoformat()
    message = {
        "kanaal": parts[0],
        "resource": parts[1],
        "actie": parts[2],
        "hoofdObject": hoofd_object,
        "resourceUrl": resource_url,
        "aanmaakdatum": time,
        "kenmerken": kenmerken,
        "source": event["source"][:100],
    }
    envelope = MappingProxyType({k: event[k] for k in _ENVELOPE if k in event})
    return notification_from_json(message, raw, cloudevent=envelope)
