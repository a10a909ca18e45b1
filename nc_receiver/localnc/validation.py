"""Validation of the bodies the local NC accepts, with the NC's error codes and key casing.

Like Open Notificaties (which parses with a camelCase-to-snake_case parser and renders
with the reverse), kenmerk and filter keys are stored in snake_case and shown camelCased.
Errors are collected per field as ``invalidParams`` entries and raised together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from .store import FilterGroup

_TO_SNAKE = re.compile(r"([a-z0-9]|[A-Z]?(?=[A-Z](?=[a-z])))([A-Z])")
_TO_CAMEL = re.compile(r"[a-z0-9]?_[a-z0-9]")
REQUIRED = "Dit veld is vereist."


def to_snake(key: str) -> str:
    """``objectType`` → ``object_type`` (as djangorestframework-camel-case does)."""
    return _TO_SNAKE.sub(r"\1_\2", key).lower()


def to_camel(key: str) -> str:
    """``object_type`` → ``objectType``."""
    return _TO_CAMEL.sub(
        lambda m: m[0][0] + m[0][2].upper() if len(m[0]) == 3 else m[0][1].upper(), key
    )


class Invalid(Exception):
    """One or more fields are invalid; ``params`` are ``{name, code, reason}`` dicts."""

    def __init__(self, params: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{p['name']}: {p['reason']}" for p in params))
        self.params = params


def invalid(name: str, code: str, reason: str) -> Invalid:
    """An :class:`Invalid` for a single field."""
    return Invalid([{"name": name, "code": code, "reason": reason}])


@dataclass(frozen=True)
class AbonnementInput:
    """The fields of an abonnement body; None for those a PATCH left out."""

    callback_url: str | None
    auth: str | None
    kanalen: tuple[FilterGroup, ...] | None
    send_cloudevents: bool | None


@dataclass(frozen=True)
class KanaalInput:
    """The fields of a kanaal body."""

    naam: str
    documentatie_link: str
    filters: tuple[str, ...]


def parse_kanaal(data: Any) -> KanaalInput:
    """Validate a ``POST /kanaal`` body."""
    fields = Fields(data)
    naam = fields.text("naam", max_length=50)
    link = fields.text("documentatieLink", required=False, max_length=200, blank=True, url=True)
    filters = fields.data.get("filters", [])
    if not isinstance(filters, list) or not all(isinstance(f, str) and f for f in filters):
        fields.error("filters", "invalid", "Verwacht een lijst van niet-lege strings.")
    elif any(len(f) > 100 for f in filters):
        fields.error("filters", "max_length", "Filters mogen niet meer dan 100 karakters bevatten.")
    fields.check()
    assert naam is not None
    return KanaalInput(naam, link or "", tuple(filters))


def parse_abonnement(data: Any, *, partial: bool = False) -> AbonnementInput:
    """Validate an abonnement body (``partial`` for a PATCH)."""
    fields = Fields(data, partial=partial)
    callback_url = fields.text("callbackUrl", max_length=200, url=True)
    auth = fields.text("auth", max_length=1000)
    kanalen: tuple[FilterGroup, ...] | None = None
    raw = fields.data.get("kanalen")
    if isinstance(raw, list):
        groups = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                fields.error(f"kanalen.{i}", "invalid", "Verwacht een object.")
                continue
            naam = fields.text("naam", source=item, label=f"kanalen.{i}.naam")
            filters = fields.mapping(f"kanalen.{i}.filters", item.get("filters") or {})
            if naam is not None and filters is not None:
                groups.append(FilterGroup(naam, filters))
        kanalen = tuple(groups)
    elif raw is not None:
        fields.error("kanalen", "not_a_list", "Verwacht een lijst.")
    cloudevents = fields.data.get("sendCloudevents")
    if cloudevents is not None and not isinstance(cloudevents, bool):
        fields.error("sendCloudevents", "invalid", "Moet een geldige boolean zijn.")
    fields.check()
    return AbonnementInput(callback_url, auth, kanalen, cloudevents)


def parse_message(data: Any) -> dict[str, Any]:
    """Validate a notification; kenmerk keys come back in snake_case, the date in UTC."""
    fields = Fields(data)
    message: dict[str, Any] = {
        "kanaal": fields.text("kanaal", max_length=50),
        "source": fields.text("source", required=False, max_length=100),
        "hoofd_object": fields.text("hoofdObject", url=True),
        "resource": fields.text("resource", max_length=100),
        "resource_url": fields.text("resourceUrl", url=True),
        "actie": fields.text("actie", max_length=100),
        "aanmaakdatum": fields.date_time("aanmaakdatum"),
    }
    if "kenmerken" in fields.data:
        # Real NCs forward empty kenmerk values, whatever the spec says.
        message["kenmerken"] = fields.mapping("kenmerken", fields.data["kenmerken"])
    fields.check()
    if message["source"] is None:
        del message["source"]
    return message


class Fields:
    """Collects the errors of one body while its fields are read."""

    def __init__(self, data: Any, *, partial: bool = False) -> None:
        self.errors: list[dict[str, str]] = []
        self.partial = partial
        if not isinstance(data, dict):
            kind = type(data).__name__
            self.error(
                "nonFieldErrors", "invalid", f"Ongeldige data. Verwacht een object, kreeg {kind}."
            )
            data = {}
        self.data: dict[str, Any] = data

    def error(self, name: str, code: str, reason: str) -> None:
        self.errors.append({"name": name, "code": code, "reason": reason})

    def check(self) -> None:
        """Raise :class:`Invalid` when any field was invalid."""
        if self.errors:
            raise Invalid(self.errors)

    def text(
        self,
        name: str,
        *,
        required: bool = True,
        max_length: int | None = None,
        blank: bool = False,
        url: bool = False,
        source: dict[str, Any] | None = None,
        label: str | None = None,
    ) -> str | None:
        """A string field of the body (or of ``source``); None when absent or invalid."""
        value = (self.data if source is None else source).get(name)
        label = label or name
        if value is None:
            if required and not self.partial:
                self.error(label, "required", REQUIRED)
            return None
        if not isinstance(value, str):
            self.error(label, "invalid", "Geen geldige string.")
        elif not value and not blank:
            self.error(label, "blank", "Dit veld mag niet leeg zijn.")
        elif max_length is not None and len(value) > max_length:
            self.error(
                label,
                "max_length",
                f"Zorg ervoor dat dit veld niet meer dan {max_length} karakters bevat.",
            )
        elif url and value and not _is_url(value):
            self.error(label, "invalid", "Voer een geldige URL in.")
        else:
            return value
        return None

    def mapping(self, name: str, value: Any, *, max_length: int = 1000) -> dict[str, str] | None:
        """An object of string to string, keys turned to snake_case."""
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            self.error(name, "invalid", "Verwacht een object met string-waarden.")
            return None
        if any(len(v) > max_length for v in value.values()):
            self.error(
                name, "max_length", f"Waarden mogen niet meer dan {max_length} karakters bevatten."
            )
            return None
        return {to_snake(str(k)): v for k, v in value.items()}

    def date_time(self, name: str) -> datetime | None:
        """An RFC 3339 date-time, returned in UTC (a naive one is taken as UTC)."""
        raw = self.text(name)
        if raw is None:
            return None
        try:
            parsed = _parse_datetime(raw)
        except ValueError:
            self.error(name, "invalid", "Datetime heeft een ongeldig formaat.")
            return None
        return parsed


def format_datetime(value: datetime) -> str:
    """UTC with ``Z``, milliseconds only when there is a fraction (as the NC forwards it)."""
    text = value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond // 1000:03d}"
    return text + "Z"


def _parse_datetime(raw: str) -> datetime:
    match = re.fullmatch(
        r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}(?::\d{2})?)(?:\.(\d+))?([Zz]|[+-]\d{2}:?\d{2})?", raw
    )
    if not match:
        raise ValueError(raw)
    day, clock, fraction, offset = match.groups()
    offset = "+00:00" if offset in (None, "Z", "z") else offset
    fraction = f".{(fraction + '000000')[:6]}" if fraction else ""
    return datetime.fromisoformat(f"{day}T{clock}{fraction}{offset}").astimezone(timezone.utc)


def _is_url(value: str) -> bool:
    # Lenient on purpose: container names and localhost have no TLD.
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and " " not in value
