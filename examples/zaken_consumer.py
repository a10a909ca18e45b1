"""A small, realistic zaken consumer: a case dashboard that follows Open Zaak via the NC.

Run it on its own with::

    NC_RECEIVER_AUTH_TOKENS=sometoken flask --app examples.zaken_consumer run

and point an abonnement at ``http://<host>:5000/callback`` with ``auth`` =
``Bearer sometoken`` -- or let it subscribe by itself: also set ``NC_RECEIVER_NC_URL``,
``NC_RECEIVER_NC_CLIENT_ID``, ``NC_RECEIVER_NC_SECRET`` and ``NC_RECEIVER_CALLBACK_URL``.
It subscribes to :data:`SUBSCRIPTION` (only our organisation's zaken). ``examples/demo.py``
drives it with captured traffic and with a local NC.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify

from nc_receiver import Notification, NotificationReceiver

log = logging.getLogger("zaken_consumer")
receiver = NotificationReceiver()
OUR_ORGANISATION = "224557609"
#: NC_RECEIVER_KANALEN: narrower than what the handlers want (status_created takes any zaak).
SUBSCRIPTION = {"zaken": {"bronorganisatie": OUR_ORGANISATION}, "documenten": {}}

# What the dashboard knows; a real consumer would fetch resource_url and store it.
EVENTS: list[dict[str, str]] = []


def _record(handler: str, n: Notification) -> None:
    EVENTS.append({"handler": handler, "kanaal": n.kanaal, "resource": n.resource,
                   "actie": n.actie, "resource_url": n.resource_url})
    log.info("%-22s ran for %s %s %s  %s", handler, n.kanaal, n.resource, n.actie,
             n.resource_url.rsplit("/", 1)[-1])


@receiver.on("zaken", "status", "create")
def status_created(n: Notification) -> None:
    """A zaak got a new status: refresh its progress bar."""
    _record("status_created", n)


@receiver.on("zaken", "zaak", bronorganisatie=OUR_ORGANISATION)
def our_zaak_changed(n: Notification) -> None:
    """Any change to a zaak of our own organisation (the kenmerk is matched exactly)."""
    _record("our_zaak_changed", n)


@receiver.on("zaken", "zaak", "destroy")
def zaak_deleted(n: Notification) -> None:
    """A zaak was deleted: drop it from the dashboard."""
    _record("zaak_deleted", n)


@receiver.on("documenten", "enkelvoudiginformatieobject", "create")
def document_added(n: Notification) -> None:
    _record("document_added", n)


@receiver.on_error
def report(n: Notification, handler: str, exc: BaseException) -> None:
    log.warning("handler %s failed: %s", handler, type(exc).__name__)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(NC_RECEIVER_CALLBACK_PATH="/callback", NC_RECEIVER_KANALEN=SUBSCRIPTION)
    app.config.update(config or {})
    receiver.init_app(app)

    @app.get("/events")
    def events() -> Any:
        return jsonify(EVENTS)

    return app
