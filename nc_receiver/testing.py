"""Testing helpers for users of nc_receiver, and a pytest plugin (auto-registered).

Fixtures:

- ``make_notification(**overrides)`` → a wire-form notification dict (the seed guide's
  ``status create`` on kanaal ``zaken`` unless overridden; kenmerken by keyword);
- ``deliver_notification(app, body=None, **overrides)`` → delivers it to ``app``'s callback
  over the Flask test client, with an ``Authorization`` header the app accepts, and
  returns the response;
- ``local_nc`` → a :class:`nc_receiver.localnc.LocalNC` running on a free loopback port.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from ._server import ServerThread
from .tokens import make_zgw_jwt

__all__ = ["ServerThread", "auth_header_for", "deliver", "notification_body"]


_WIRE_NAMES = {"hoofd_object": "hoofdObject", "resource_url": "resourceUrl"}


def notification_body(**overrides: Any) -> dict[str, Any]:
    """A valid notification as a wire-form dict (camelCase keys, as the NC sends it).

    Overrides replace fields; ``hoofd_object`` / ``resource_url`` may be given in
    snake_case too. ``kenmerken`` replaces the default kenmerken as a whole.
    """
    body: dict[str, Any] = {
        "kanaal": "zaken",
        "hoofdObject": "https://openzaak.example.nl/zaken/api/v1/zaken/d4d0a2ef-1b8e-4d5c-9d4e-2a2f1b7a6c01",
        "resource": "status",
        "resourceUrl": "https://openzaak.example.nl/zaken/api/v1/statussen/7c3e1f9a-5b2d-4e8f-a1c6-3d9b0e4f2a11",
        "actie": "create",
        "aanmaakdatum": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        "kenmerken": {
            "bronorganisatie": "224557609",
            "zaaktype": "https://openzaak.example.nl/catalogi/api/v1/zaaktypen/0119dd4e-7be9-477e-bccf-75023b1453c1",
            "vertrouwelijkheidaanduiding": "openbaar",
        },
    }
    body.update({_WIRE_NAMES.get(k, k): v for k, v in overrides.items()})
    return body


def auth_header_for(app: Any) -> str:
    """An ``Authorization`` value that ``app``'s receiver accepts."""
    settings = app.extensions["nc_receiver"].settings
    if settings.auth_tokens:
        return f"Bearer {settings.auth_tokens[0]}"
    client_id, secret = next(iter(settings.jwt_secrets.items()))
    return f"Bearer {make_zgw_jwt(client_id, secret)}"


def deliver(app: Any, body: dict[str, Any] | bytes | None = None, *,
            authorization: str | None = None, **overrides: Any) -> Any:
    """POST a notification to ``app``'s callback the way the NC does; return the response."""
    if body is None:
        body = notification_body(**overrides)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    settings = app.extensions["nc_receiver"].settings
    with app.test_client() as client:
        return client.post(
            settings.callback_path, data=data, content_type="application/json",
            headers={"Authorization": authorization or auth_header_for(app)},
        )


@pytest.fixture
def make_notification() -> Callable[..., dict[str, Any]]:
    """Factory fixture: ``make_notification(resource="zaak", actie="update")``."""
    return notification_body


@pytest.fixture
def deliver_notification() -> Callable[..., Any]:
    """``deliver_notification(app, **overrides)`` → the callback's response."""
    return deliver


@pytest.fixture
def local_nc() -> Iterator[Any]:
    """A local Notificatiecomponent on a free port, with fast retries."""
    from .localnc import LocalNC

    nc = LocalNC(retry_delays=(0.05, 0.1, 0.2))
    nc.start()
    try:
        yield nc
    finally:
        nc.stop()
