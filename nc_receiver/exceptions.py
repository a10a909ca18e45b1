"""Exceptions raised by nc_receiver.

The tree::

    NCReceiverError                 base of everything raised here
    ├── ConfigurationError          bad or missing NC_RECEIVER_* settings (at start-up)
    ├── RequestRejected             a delivery that gets a 4xx problem answer
    │   ├── AuthenticationError     401: no credentials
    │   ├── AuthorizationError      403: credentials that are not ours
    │   └── ValidationError         400: malformed or invalid body (has ``invalid_params``)
    ├── HandlerError                one or more handlers raised (``errors`` holds them)
    ├── DeliveryUnavailable         the inbox or the broker could not take it (HTTP 503)
    └── NCError                     the Notificatiecomponent refused or failed a call
        └── NCUnavailable           it could not be reached, or kept answering 5xx

``PermanentFailure`` (not an NCReceiverError) is raised by a *handler* to dead-letter a
notification at once, without retries. ``nc_receiver.fetch.FetchError`` is raised by the
resource fetcher.

Programmer mistakes (bad ``@on`` arguments, a second ``init_app``) raise the built-in
``ValueError`` / ``TypeError`` / ``RuntimeError`` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class NCReceiverError(Exception):
    """Base class of every exception raised by nc_receiver."""


class ConfigurationError(NCReceiverError):
    """The receiver's configuration is missing or invalid."""


class RequestRejected(NCReceiverError):
    """A request that is answered with a problem+json 4xx."""

    status: int = 400
    code: str = "invalid"
    title: str = "Invalid request."

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class AuthenticationError(RequestRejected):
    """No usable credentials were sent (HTTP 401)."""

    status = 401
    code = "not_authenticated"
    title = "Authentication credentials were not provided."


class AuthorizationError(RequestRejected):
    """Credentials were sent but are not accepted (HTTP 403)."""

    status = 403
    code = "permission_denied"
    title = "The credentials are not accepted."


class ValidationError(RequestRejected):
    """The body is not a valid notification (HTTP 400)."""

    status = 400
    code = "invalid"
    title = "Invalid input."

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        invalid_params: Sequence[dict[str, str]] = (),
    ) -> None:
        super().__init__(detail, code=code)
        self.invalid_params = list(invalid_params)


class HandlerError(NCReceiverError):
    """One or more handlers raised while processing a notification."""

    def __init__(self, errors: Sequence[tuple[Any, BaseException]]) -> None:
        names = ", ".join(getattr(h, "__qualname__", repr(h)) for h, _ in errors)
        super().__init__(f"{len(errors)} handler(s) failed: {names}")
        self.errors = list(errors)


class DeliveryUnavailable(NCReceiverError):
    """The notification could not be stored or queued (HTTP 503; the NC sends it again)."""


class PermanentFailure(Exception):
    """Raise from a handler to dead-letter the notification at once, without retries."""


class NCError(NCReceiverError):
    """The Notificatiecomponent refused or failed a call.

    ``status`` is the HTTP status, ``code`` the NC's (first) error code when it sent a
    problem+json body, and ``problem`` the parsed body.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        problem: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.problem = problem or {}


class NCUnavailable(NCError):
    """The Notificatiecomponent could not be reached, or kept answering 5xx."""
