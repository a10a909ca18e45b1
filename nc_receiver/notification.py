"""The typed, immutable notification that handlers receive."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .fetch import Resource

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Notification:
    """One notification from the Notificatiecomponent.

    ``kenmerken`` is a read-only mapping with the keys as they arrived (the NC sends them
    camelCased). ``extra`` holds fields the receiver does not know; ``raw`` the body as it
    was received. ``cloudevent`` holds the CloudEvent envelope attributes when the
    notification arrived as one (``id``, ``source``, ``time``, ...).
    """

    kanaal: str
    hoofd_object: str
    resource: str
    resource_url: str
    actie: str
    aanmaakdatum: datetime
    kenmerken: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    source: str | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    raw: bytes = b""
    cloudevent: Mapping[str, Any] | None = None
    context: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_probe(self) -> bool:
        """True for the NC's subscription probe (kanaal ``test``)."""
        return self.kanaal == "test"

    @property
    def dedup_key(self) -> str:
        """A stable key for this notification's content.

        The NC sends no message id; a redelivery carries the same content, so the key is
        a hash of the fields that identify the event. A CloudEvent's ``id`` is used as-is.
        """
        key: str | None = self.context.get("dedup_key")
        if key is None:
            if self.cloudevent and self.cloudevent.get("id"):
                key = "ce:" + str(self.cloudevent["id"])
            else:
                parts = [self.kanaal, self.hoofd_object, self.resource, self.resource_url,
                         self.actie, self.aanmaakdatum.isoformat()]
                parts += [p for item in sorted(self.kenmerken.items()) for p in item]
                # Length-prefixed, so no value can shift another's boundary.
                ident = "".join(f"{len(p)}:{p}" for p in parts)
                key = hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()
            self.context["dedup_key"] = key
        return key

    def fetch_resource(self) -> Resource:
        """GET ``resource_url`` with the current app's fetch credentials (see ``fetch``)."""
        from .fetch import fetch

        return fetch(self.resource_url)

    def fetch_hoofd_object(self) -> Resource:
        """GET ``hoofd_object`` with the current app's fetch credentials (see ``fetch``)."""
        from .fetch import fetch

        return fetch(self.hoofd_object)

    def to_dict(self) -> dict[str, Any]:
        """The notification in the NC's wire form (camelCase keys)."""
        data: dict[str, Any] = dict(self.extra)
        data.update(
            kanaal=self.kanaal,
            hoofdObject=self.hoofd_object,
            resource=self.resource,
            resourceUrl=self.resource_url,
            actie=self.actie,
            aanmaakdatum=self.aanmaakdatum.isoformat().replace("+00:00", "Z"),
            kenmerken=dict(self.kenmerken),
        )
        if self.source is not None:
            data["source"] = self.source
        return data

    def __repr__(self) -> str:
        # Kenmerk values can be sensitive: leave them out of reprs that end up in logs.
        return (
            f"Notification(kanaal={self.kanaal!r}, resource={self.resource!r}, "
            f"actie={self.actie!r}, resource_url={self.resource_url!r})"
        )
