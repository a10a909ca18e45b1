"""How an accepted notification reaches its handlers: the ``sync`` mode.

A delivery mode has ``accept(app, notification)``, called in the request after
validation; the 204 is sent when it returns. ``start(app)`` / ``stop()`` manage any
background machinery. The durable modes live in ``inbox_delivery`` and
``celery_delivery``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any, Protocol

from . import signals
from .dispatch import Dispatcher
from .exceptions import DeliveryUnavailable, HandlerError, PermanentFailure
from .notification import Notification

log = logging.getLogger(__name__)
__all__ = ["Delivery", "DeliveryUnavailable", "PermanentFailure", "SeenHandlers", "SyncDelivery"]


class Delivery(Protocol):
    mode: str

    def accept(self, app: Any, notification: Notification) -> None: ...

    def start(self, app: Any) -> None: ...

    def stop(self) -> None: ...


class SeenHandlers:
    """A bounded, process-local TTL map: dedup key → names of handlers that succeeded.

    ``lock(key)`` serialises concurrent deliveries of one key, so a duplicate that arrives
    while the first is still running waits for it and then finds the work done.
    """

    def __init__(self, ttl: float, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        # Values are (time, names joined by NUL): a tuple of atoms, which the garbage
        # collector stops tracking, so 100,000 entries do not slow every collection down.
        self._done: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}
        self._mutex = threading.Lock()

    def done(self, key: str) -> frozenset[str]:
        with self._mutex:
            entry = self._done.get(key)
            if entry is None or entry[0] < time.monotonic() - self.ttl or not entry[1]:
                return frozenset()
            return frozenset(entry[1].split("\0"))

    def add(self, key: str, names: frozenset[str]) -> None:
        with self._mutex:
            self._done.pop(key, None)
            self._done[key] = (time.monotonic(), "\0".join(sorted(names)))
            while len(self._done) > self.max_entries:
                self._done.popitem(last=False)

    def acquire(self, key: str) -> threading.Lock:
        with self._mutex:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        lock.acquire()
        return lock

    def release(self, key: str, lock: threading.Lock) -> None:
        lock.release()
        with self._mutex:
            _, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class SyncDelivery:
    """Run the handlers inside the request; a failure answers 500 so the NC retries.

    Deduplication is process-local: a redelivery within ``dedup_window`` runs only the
    handlers that have not yet succeeded for that notification.
    """

    mode = "sync"

    def __init__(self, dispatcher: Dispatcher, dedup_window: float = 86400.0) -> None:
        self.dispatcher = dispatcher
        self.seen = SeenHandlers(dedup_window)

    def accept(self, app: Any, notification: Notification) -> None:
        handlers = self.dispatcher.handlers_for(notification)
        if not handlers:
            return
        key = notification.dedup_key
        lock = self.seen.acquire(key)
        try:
            self._run(app, notification, key, handlers)
        finally:
            self.seen.release(key, lock)

    def _run(self, app: Any, notification: Notification, key: str,
             handlers: list[tuple[str, Any]]) -> None:
        done = self.seen.done(key)
        todo = [(name, h) for name, h in handlers if name not in done]
        if not todo:
            log.debug("nc_receiver: duplicate notification %s; its handlers already ran", key)
            return

        def failed(name: str, error: BaseException) -> None:
            signals.handler_failed.send(app, notification=notification, handler=name,
                                        error=error)

        try:
            ran = self.dispatcher.run(notification, todo, on_failure=failed)
        except HandlerError as exc:
            broken = {id(handler) for handler, _ in exc.errors}
            self.seen.add(key, done | {name for name, h in todo if id(h) not in broken})
            raise
        self.seen.add(key, done | set(ran))
        signals.notification_handled.send(app, notification=notification, handlers=ran)

    def start(self, app: Any) -> None:
        pass

    def stop(self) -> None:
        pass
