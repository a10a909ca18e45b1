"""A local Notificatiecomponent for development and tests.

It implements the Notificaties API 1.0.1 the way Open Notificaties 1.16.1 behaves on the
wire: the synchronous two-step probe of a callback, ``auth`` replayed verbatim, filter
matching with ``"*"`` and missing keys passing, camelCased kenmerk keys, parallel and
unordered at-least-once delivery with retries. Run it with ``python -m
nc_receiver.localnc``, or in-process::

    with LocalNC(retry_delays=(0.05,)) as nc:
        client = NCClient(nc.url, nc.client_id, nc.secret)
"""

from __future__ import annotations

from .app import create_app
from .delivery import DeliveryAttempt
from .server import LocalNC

__all__ = ["DeliveryAttempt", "LocalNC", "create_app"]
