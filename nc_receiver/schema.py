"""Validating a delivery body into a :class:`Notification` (marshmallow).

Lenient where the NC is lenient (empty kenmerk values, missing kenmerken, the 2019
list-of-objects kenmerken, any RFC 3339 date-time, URLs without a TLD, unknown fields),
strict where it matters (required fields, types, lengths).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from marshmallow import INCLUDE, Schema, fields
from marshmallow import ValidationError as MarshmallowError

from .exceptions import ValidationError
from .notification import Notification

MAX_URL = 1000
MAX_KENMERK = 1000
KNOWN = ("kanaal", "hoofdObject", "resource", "resourceUrl", "actie", "aanmaakdatum",
         "kenmerken", "source")


_WHITESPACE = re.compile(r"[\s\x00-\x1f\x7f]").search
# RFC 3339 (and the ISO 8601 forms producers send): a time with optional seconds and
# fraction, then an optional offset (no offset = UTC).
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"([Zz]|[+-](\d{2})(?::?(\d{2}))?)?",
    re.ASCII,
).fullmatch


# An absolute http(s) URL: scheme, optional userinfo, a host (a name, or an IP literal in
# brackets) and an optional port. Checked with one regex for ASCII text; anything else
# goes through urlsplit, which also refuses hosts that NFKC-normalise to a delimiter.
_ASCII_URL = re.compile(
    r"(?i:https?)://(?:[^/?#]*@)?(?:\[[0-9A-Fa-f:.]+\]|[^/?#@:\[\]]+)(?::(\d*))?(?:[/?#].*)?",
    re.DOTALL,
).fullmatch


def is_url(text: str) -> bool:
    """Whether ``text`` is an absolute http(s) URL; hosts without a TLD pass."""
    if _WHITESPACE(text):
        return False
    if text.isascii():
        m = _ASCII_URL(text)
        return m is not None and (not m.group(1) or int(m.group(1)) <= 65535)
    try:
        parts = urlsplit(text)
        return parts.scheme in ("http", "https") and bool(parts.hostname) and (
            parts.port is None or parts.port >= 0)
    except ValueError:
        return False


class _Text(fields.Field):  # type: ignore[type-arg]
    """A string of ``min``..``max`` characters (one check instead of a validator chain)."""

    def __init__(self, min: int = 0, max: int = 100, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.min, self.max = min, max

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise MarshmallowError("Not a valid string.")
        if not self.min <= len(value) <= self.max:
            if self.min:
                raise MarshmallowError(f"Length must be between {self.min} and {self.max}.")
            raise MarshmallowError(f"Longer than maximum length {self.max}.")
        return value


class _Uri(_Text):
    """An absolute http(s) URL; hostnames without a TLD (``openzaak``, ``localhost``) pass."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise MarshmallowError("Not a valid string.")
        text = value
        if len(text) > MAX_URL:
            raise MarshmallowError(f"Must be at most {MAX_URL} characters.")
        if not is_url(text):
            raise MarshmallowError("Not a valid URL.")
        return text


def parse_datetime(text: str) -> datetime:
    """Parse an RFC 3339 / ISO 8601 date-time; a value without offset is taken as UTC.

    Seconds and the fraction are optional; a fraction beyond microseconds is truncated.
    """
    m = _RFC3339(text.strip()) if len(text) <= 40 else None
    if m is None:
        raise ValueError("not an RFC 3339 date-time")
    year, month, day, hour, minute, second, fraction, zone, oh, om = m.groups()
    tz = timezone.utc
    if zone and zone not in "zZ":
        delta = timedelta(hours=int(oh), minutes=int(om or 0))
        tz = timezone(delta if zone[0] == "+" else -delta)  # ValueError beyond ±24 h
    return datetime(int(year), int(month), int(day), int(hour), int(minute),
                    int(second or 0), int((fraction or "0").ljust(6, "0")[:6]), tzinfo=tz)


class _DateTime(fields.Field):  # type: ignore[type-arg]  # generic in marshmallow 4 only
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if not isinstance(value, str):
            raise MarshmallowError("Not a valid date-time: send an RFC 3339 string.")
        try:
            return parse_datetime(value)
        except ValueError:
            raise MarshmallowError("Not a valid RFC 3339 date-time.") from None


class _Kenmerken(fields.Field):  # type: ignore[type-arg]
    """An object of string → string; also the 2019 form, a list of single-key objects."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> Mapping[str, str]:
        if isinstance(value, list):
            merged: dict[str, Any] = {}
            for item in value:
                if not isinstance(item, dict):
                    raise MarshmallowError("A kenmerken list must hold objects.")
                merged.update(item)
            value = merged
        if not isinstance(value, dict):
            raise MarshmallowError("Must be an object of string values.")
        for key, item in value.items():
            if not key or len(key) > 100:
                raise MarshmallowError("Kenmerk names must be 1 to 100 characters.")
            if not isinstance(item, str):
                raise MarshmallowError("Kenmerk values must be strings.")
            if len(item) > MAX_KENMERK:
                raise MarshmallowError(f"Kenmerk values must be at most {MAX_KENMERK} characters.")
        return MappingProxyType(value)


class NotificationSchema(Schema):
    """The NC's ``Notificatie`` message."""

    class Meta:
        unknown = INCLUDE

    kanaal = _Text(1, 50, required=True)
    hoofdObject = _Uri(required=True)  # noqa: N815 (wire names)
    resource = _Text(1, 100, required=True)
    resourceUrl = _Uri(required=True)  # noqa: N815
    actie = _Text(1, 100, required=True)
    aanmaakdatum = _DateTime(required=True)
    kenmerken = _Kenmerken(load_default=MappingProxyType({}), allow_none=True)
    source = _Text(0, 100, load_default=None, allow_none=True)


_schema = NotificationSchema()


def notification_from_json(data: Any, raw: bytes = b"", cloudevent: Any = None) -> Notification:
    """Validate parsed JSON into a Notification, or raise ValidationError (400)."""
    if not isinstance(data, dict):
        raise _invalid({"_schema": ["The body must be a JSON object."]})
    try:
        loaded = _schema.load(data)
    except MarshmallowError as exc:
        raise _invalid(exc.normalized_messages()) from None  # type: ignore[no-untyped-call]
    extra = {k: v for k, v in loaded.items() if k not in KNOWN}
    return Notification(
        kanaal=loaded["kanaal"],
        hoofd_object=loaded["hoofdObject"],
        resource=loaded["resource"],
        resource_url=loaded["resourceUrl"],
        actie=loaded["actie"],
        aanmaakdatum=loaded["aanmaakdatum"],
        kenmerken=loaded["kenmerken"] or MappingProxyType({}),
        source=loaded["source"],
        extra=MappingProxyType(extra),
        raw=raw,
        cloudevent=cloudevent,
    )


def parse_body(raw: bytes, content_type: str) -> Notification:
    """Parse and validate a delivery body of ``content_type`` (already checked)."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise ValidationError(
            "The body is not valid JSON.", code="parse_error",
            invalid_params=[{"name": "body", "code": "parse_error",
                             "reason": "The body must be a JSON object."}],
        ) from None
    if content_type == "application/cloudevents+json":
        from .cloudevents import from_cloudevent

        return from_cloudevent(data, raw)
    return notification_from_json(data, raw)


def _invalid(messages: Any) -> ValidationError:
    params: list[dict[str, str]] = []
    if isinstance(messages, dict):
        for name, reasons in messages.items():
            if isinstance(reasons, dict):  # nested (unlikely): flatten one level
                reasons = [str(r) for r in reasons.values()]
            reason = reasons[0] if isinstance(reasons, list) and reasons else str(reasons)
            name = "body" if name == "_schema" else str(name)
            code = "required" if "required" in str(reason).lower() else "invalid"
            params.append({"name": name[:100], "code": code, "reason": str(reason)[:200]})
    params = params[:8]
    return ValidationError("The notification is not valid.", invalid_params=params)
