"""How an accepted notification reaches its handlers: the ``sync`` mode.

A delivery mode has ``accept(app, notification)``, called in the request after
validation; the 204 is sent when it returns. ``start(app)`` / ``stop()`` manage any
background machinery. The durable modes live in ``inbox_delivery`` and
``celery_delivery``.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from . import signals
from .dispatch import Dispatcher
from .notification import Notification

log = logging.getLogger(__name__)


class Delivery(Protocol):
    mode: str

    def accept(self, app: Any, notification: Notification) -> None: ...

    def start(self, app: Any) -> None: ...

    def stop(self) -> None: ...


class SyncDelivery:
    """Run the handlers inside the request; a failure answers 500 so the NC retries."""

    mode = "sync"

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def accept(self, app: Any, notification: Notification) -> None:
        handlers = self.dispatcher.handlers_for(notification)
        if not handlers:
            log.debug("nc_receiver: no handler for %s %s %s", notification.kanaal,
                      notification.resource, notification.actie)
            return

        def failed(name: str, error: BaseException) -> None:
            signals.handler_failed.send(app, notification=notification, handler=name,
                                        error=error)

        ran = self.dispatcher.run(notification, handlers, on_failure=failed)
        signals.notification_handled.send(app, notification=notification, handlers=ran)

    def start(self, app: Any) -> None:
        pass

    def stop(self) -> None:
        pass
