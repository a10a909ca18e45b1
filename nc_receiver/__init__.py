"""Consume ZGW Notificaties API (Open Notificaties) notifications in a Flask app."""

from __future__ import annotations

from . import signals
from .auth import Authenticator, Identity
from .exceptions import (
    AuthenticationError,
    AuthorizationError,
    ConfigurationError,
    DeliveryUnavailable,
    HandlerError,
    NCError,
    NCReceiverError,
    NCUnavailable,
    PermanentFailure,
    RequestRejected,
    ValidationError,
)
from .extension import NotificationReceiver
from .fetch import Fetcher, FetchError, Resource, fetch
from .nc_client import NCClient
from .notification import Notification
from .routing import Route, Router, default_router, on, on_any, on_error
from .schema import parse_body
from .settings import Settings
from .subscription import Subscription, SyncResult
from .tokens import make_zgw_jwt

__all__ = [
    "AuthenticationError",
    "Authenticator",
    "AuthorizationError",
    "ConfigurationError",
    "DeliveryUnavailable",
    "FetchError",
    "Fetcher",
    "HandlerError",
    "Identity",
    "NCClient",
    "NCError",
    "NCReceiverError",
    "NCUnavailable",
    "Notification",
    "NotificationReceiver",
    "PermanentFailure",
    "RequestRejected",
    "Resource",
    "Route",
    "Router",
    "Settings",
    "Subscription",
    "SyncResult",
    "ValidationError",
    "default_router",
    "fetch",
    "make_zgw_jwt",
    "on",
    "on_any",
    "on_error",
    "parse_body",
    "signals",
]
