"""The ``celery`` mode: each accepted notification becomes a Celery task on your broker.

``accept()`` publishes one task message per notification (its body and the names of the
matching handlers) and returns only when the broker has it: for Redis when the LPUSH
returned, for AMQP after the publisher confirm (``confirm_publish`` is switched on). The
task runs with ``acks_late`` and ``reject_on_worker_lost``; a handler that raises is
retried alone, with exponential backoff and jitter, until ``NC_RECEIVER_MAX_ATTEMPTS``;
then a dead-letter record (notification, handler, error, attempts) is kept in Redis
(list ``nc_receiver:<queue>:dead``) or, without Redis, in the broker queue
``<queue>.dead``.

Deduplication works across many receivers when a Redis is known (the broker, or
``NC_RECEIVER_CELERY_REDIS_URL``): ``SET NX EX`` on the dedup key. Without one it falls
back to a per-process memory, and duplicates reaching different processes both run.

Run the workers with ``celery -A yourapp:celery worker -Q nc_receiver`` where
``celery = make_celery(flask_app)``, or pass your own Celery app as
``NC_RECEIVER_CELERY_APP``.
"""

from __future__ import annotations

import json
import logging
import random
import time
import traceback
from typing import TYPE_CHECKING, Any

from . import signals
from ._celery_store import CeleryStore
from .delivery import DeliveryUnavailable, PermanentFailure
from .dispatch import Dispatcher, call_handler
from .exceptions import ConfigurationError
from .inbox_delivery import HandlerGone, content_type_of, notification_body
from .notification import Notification
from .schema import parse_body

if TYPE_CHECKING:
    from flask import Flask

    from .settings import Settings

log = logging.getLogger(__name__)
TASK_NAME = "nc_receiver.handle"
_PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2,
                  "interval_max": 0.5}


def _celery_class() -> Any:
    try:
        from celery import Celery  # type: ignore[import-untyped]
    except ImportError:
        raise ConfigurationError(
            "NC_RECEIVER_DELIVERY is 'celery' but Celery is not installed: "
            "pip install 'nc-receiver[celery]' (or choose the 'inbox' mode)."
        ) from None
    return Celery


def make_celery(app: Flask) -> Any:
    """The Celery app that ``app``'s receiver publishes to; point ``celery -A`` at it."""
    delivery = app.extensions.get("nc_receiver") and app.extensions["nc_receiver"].delivery
    if not isinstance(delivery, CeleryDelivery):
        raise RuntimeError(
            "make_celery(app) needs a receiver in celery mode: set "
            "NC_RECEIVER_DELIVERY='celery' and call 'receiver.init_app(app)' first."
        )
    return delivery.celery


class CeleryDelivery:
    """Publish each notification as a Celery task; the 204 waits for the broker."""

    mode = "celery"

    def __init__(self, dispatcher: Dispatcher, settings: Settings, app: Flask) -> None:
        celery_class = _celery_class()
        self.dispatcher = dispatcher
        self.settings = settings
        self.queue = settings.celery_queue
        self._app = app
        if settings.celery_app is not None:
            self.celery = settings.celery_app
        elif settings.celery_broker_url:
            self.celery = celery_class("nc_receiver", broker=settings.celery_broker_url,
                                       set_as_current=False)
            self.celery.conf.update(broker_connection_retry_on_startup=True,
                                    worker_prefetch_multiplier=1, task_default_queue=self.queue)
        else:
            raise ConfigurationError(
                "The celery mode needs a broker: set NC_RECEIVER_CELERY_BROKER_URL "
                "(redis://… or amqp://…) or pass your Celery app as NC_RECEIVER_CELERY_APP."
            )
        broker = str(self.celery.conf.broker_url or "")
        if broker.startswith(("amqp", "pyamqp")):
            options = self.celery.conf.broker_transport_options
            self.celery.conf.broker_transport_options = {"confirm_publish": True, **options}
        redis_url = settings.celery_redis_url or (
            broker if broker.startswith(("redis://", "rediss://")) else None)
        self.store = CeleryStore(self.celery, self.queue, redis_url, settings.dedup_window)
        register_tasks(self.celery, self)

    # -- the request path ---------------------------------------------------------------
    def accept(self, app: Any, notification: Notification) -> None:
        names = [name for name, _ in self.dispatcher.handlers_for(notification)]
        if not names:
            return
        key = notification.dedup_key
        if not self.store.claim(key):
            signals.notification_queued.send(app, notification=notification, mode=self.mode,
                                             duplicate=True)
            return
        body, ctype = notification.raw, content_type_of(notification)
        if not body:
            body, ctype = notification_body(notification), "application/json"
        try:
            self.publish(body, ctype, names, 1)
        except Exception as exc:
            self.store.release(key)
            raise DeliveryUnavailable("The broker did not take the notification.") from exc
        self.store.queued(key)
        signals.notification_queued.send(app, notification=notification, mode=self.mode,
                                         duplicate=False)

    def publish(self, body: bytes, ctype: str, names: list[str], attempt: int,
                countdown: float | None = None) -> None:
        """Send the task message and wait for the broker to confirm it."""
        self.celery.send_task(
            TASK_NAME, args=[body.decode("latin-1"), ctype, names, attempt], queue=self.queue,
            countdown=countdown, retry=True, retry_policy=_PUBLISH_RETRY, ignore_result=True,
        )

    def start(self, app: Any) -> None:
        pass

    def stop(self) -> None:
        pass

    # -- the worker side ----------------------------------------------------------------
    def run(self, body_text: str, ctype: str, names: list[str],
            attempt: int) -> tuple[list[str], float]:
        """Run the named handlers; return those to retry, and when. Dead-letters the rest."""
        notification = parse_body(body_text.encode("latin-1"), ctype)
        notification.context.update(dedup_key=notification.dedup_key, attempt=attempt)
        retry: list[tuple[str, BaseException]] = []
        with self._app.app_context():
            for name in names:
                handler = self.dispatcher.handler_by_name(name)
                try:
                    if handler is None:
                        raise HandlerGone(f"No handler named {name!r} is registered (renamed or "
                                          "removed in a deploy?). Register it, then retry.")
                    notification.context["handler"] = name
                    call_handler(handler, notification)
                except Exception as exc:
                    log.warning("nc_receiver: handler %s failed (attempt %d of %d) with %s",
                                name, attempt, self.settings.max_attempts, type(exc).__name__)
                    self.dispatcher.report_error(notification, name, exc)
                    signals.handler_failed.send(self._app, notification=notification,
                                                handler=name, error=exc)
                    if isinstance(exc, PermanentFailure) or attempt >= self.settings.max_attempts:
                        self._dead(notification, ctype, name, exc, attempt)
                    else:
                        retry.append((name, exc))
                else:
                    signals.notification_handled.send(self._app, notification=notification,
                                                      handlers=[name])
        delay = self.backoff(attempt)
        for name, error in retry:
            signals.handler_retried.send(self._app, notification=notification, handler=name,
                                         error=error, attempt=attempt, delay=delay)
        return [name for name, _ in retry], delay

    def backoff(self, attempt: int) -> float:
        """Seconds before retry ``attempt + 1``: doubling from RETRY_BACKOFF, with jitter."""
        base, cap = self.settings.retry_backoff, self.settings.retry_backoff_max
        return float(min(cap, base * 2.0 ** min(attempt - 1, 64)) * random.uniform(0.5, 1.0))

    def _dead(self, notification: Notification, ctype: str, name: str, exc: BaseException,
              attempt: int) -> None:
        log.error("nc_receiver: handler %s dead-lettered after %d attempt(s) with %s", name,
                  attempt, type(exc).__name__)
        self.store.dead_letter(json.dumps({
            "handler": name, "attempts": attempt, "failed_at": time.time(),
            "error": "".join(traceback.format_exception(exc))[-10_000:],
            "dedup_key": notification.dedup_key, "content_type": ctype,
            "body": notification.raw.decode("latin-1"),
        }))
        signals.notification_dead_lettered.send(self._app, notification=notification,
                                                handler=name, error=exc, attempts=attempt)

    def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        """The dead-letter records, the most recent first (needs Redis)."""
        return [json.loads(r) for r in self.store.dead_records(limit)]

    def retry_dead_letters(self) -> int:
        """Publish every dead-lettered handler again with fresh attempts (needs Redis)."""
        count = 0
        for record in self.store.take_dead_records():
            data = json.loads(record)
            self.publish(data["body"].encode("latin-1"), data["content_type"],
                         [data["handler"]], 1)
            count += 1
        return count


def register_tasks(celery_app: Any, delivery: CeleryDelivery) -> None:
    """Register the ``nc_receiver.handle`` task on ``celery_app`` for ``delivery``."""

    @celery_app.task(name=TASK_NAME, bind=True, acks_late=True,  # type: ignore[untyped-decorator]
                     reject_on_worker_lost=True, max_retries=None, ignore_result=True,
                     shared=False)
    def handle(task: Any, body: str, ctype: str, names: list[str], attempt: int = 1) -> None:
        retry, delay = delivery.run(body, ctype, names, attempt)
        if retry:
            raise task.retry(args=[body, ctype, retry, attempt + 1], countdown=delay)

