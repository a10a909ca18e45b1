"""The ``inbox`` mode (the default): commit to a local SQLite inbox, answer 204, work later.

``accept()`` stores the body and one task per matching handler in one durable
transaction and wakes a worker thread; the 204 goes out only after the commit. The
:class:`~nc_receiver.worker.InboxWorker` threads rebuild the notification from the stored
bytes and run each handler inside an app context, with retries, backoff and dead letters.

When the threads start: in :meth:`start` (that is, in ``init_app``) in every process that
serves requests, but not in a process the ``flask`` command started for something else
than serving (``flask shell``, ``flask nc inbox status``, the reloader's watcher process,
which would keep running stale code). There, and in any process forked after start-up
(gunicorn ``--preload``), they start on the first delivery instead. Several processes may
share one inbox file: leases keep them from running a task twice.
"""

from __future__ import annotations

import atexit
import logging
import os
import sqlite3
import threading
from collections import OrderedDict
from contextlib import suppress
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from . import signals
from .delivery import DeliveryUnavailable, PermanentFailure
from .dispatch import Dispatcher, call_handler
from .inbox import Inbox, Task
from .notification import Notification
from .schema import parse_body
from .worker import InboxWorker

if TYPE_CHECKING:
    from flask import Flask

    from .settings import Settings

log = logging.getLogger(__name__)
INBOX_FILE = "nc_receiver_inbox.sqlite3"
_PARSED_MAX = 1024
CLOUDEVENTS = "application/cloudevents+json"


def inbox_path(settings: Settings, app: Flask) -> str:
    """``NC_RECEIVER_INBOX_PATH``, or the inbox file in the app's instance folder."""
    return settings.inbox_path or os.path.join(app.instance_path, INBOX_FILE)


def content_type_of(notification: Notification) -> str:
    return CLOUDEVENTS if notification.cloudevent is not None else "application/json"


def _serving_process(app: Flask) -> bool:
    """False in a process that the ``flask`` command runs for anything but serving."""
    from werkzeug.serving import is_running_from_reloader

    if is_running_from_reloader() or os.environ.get("FLASK_RUN_FROM_CLI") != "true":
        return True
    import click

    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.command.name != "run":
        return False
    reload = ctx.params.get("reload")
    return not (app.debug if reload is None else reload)


class InboxDelivery:
    """Acknowledge from a durable SQLite inbox; worker threads run the handlers."""

    mode = "inbox"

    def __init__(self, dispatcher: Dispatcher, settings: Settings, app: Flask) -> None:
        self.dispatcher = dispatcher
        self.settings = settings
        path = inbox_path(settings, app)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.inbox = Inbox(
            path, lease_seconds=settings.lease_seconds, dedup_window=settings.dedup_window,
            max_attempts=settings.max_attempts, backoff_base=settings.retry_backoff,
            backoff_max=settings.retry_backoff_max,
        )
        self.worker: InboxWorker | None = None
        self._app: Flask | None = None  # per-app state, like the rest of app.extensions
        self._pid = -1
        self._lock = threading.Lock()
        self._last = threading.local()  # the notification the current thread just ran
        # Notifications parsed by the request, per (dedup key, handler), so that a worker
        # in this process need not parse the stored body again. Bounded; a miss parses.
        self._parsed: OrderedDict[tuple[str, str], Notification] = OrderedDict()
        self._handlers: dict[str, Any] = {}

    # -- the request path ---------------------------------------------------------------
    def accept(self, app: Any, notification: Notification) -> None:
        names = [name for name, _ in self.dispatcher.handlers_for(notification)]
        if not names:
            return
        body, ctype = notification.raw, content_type_of(notification)
        if not body:
            body, ctype = notification_body(notification), "application/json"
        key = notification.dedup_key
        try:
            added = self.inbox.add(key, body, ctype, names)
        except sqlite3.Error as exc:
            raise DeliveryUnavailable(f"The inbox {self.inbox.path} is not writable.") from exc
        signals.notification_queued.send(app, notification=notification, mode=self.mode,
                                         duplicate=not added)
        if not added:
            log.debug("nc_receiver: duplicate notification %s acknowledged", key)
            return
        if body is notification.raw:
            parsed = self._parsed
            while len(parsed) >= _PARSED_MAX:
                with suppress(KeyError):  # another thread emptied it first
                    parsed.popitem(last=False)
            for name in names:
                parsed[key, name] = notification
        if self._pid != os.getpid():
            self._start_worker(app)
        if self.worker is not None:
            self.worker.notify()

    # -- lifecycle ----------------------------------------------------------------------
    def start(self, app: Flask) -> None:
        self._app = app
        atexit.register(self.stop)
        if _serving_process(app):
            self._start_worker(app)

    def _start_worker(self, app: Flask) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._app = app
            self.worker = InboxWorker(
                self.inbox, self.run_task, threads=self.settings.worker_threads,
                on_success=self._succeeded, on_retry=self._retried, on_dead=self._dead,
            )
            self.worker.start()
            self._pid = os.getpid()
        log.debug("nc_receiver: %d inbox worker threads on %s", self.settings.worker_threads,
                  self.inbox.path)

    def stop(self, timeout: float = 10.0) -> None:
        """Let running handlers finish (up to ``timeout`` s) and stop the threads."""
        worker, self.worker = self.worker, None
        if worker is not None and self._pid == os.getpid() and not worker.stop(timeout):
            log.warning("nc_receiver: inbox workers still busy after %.0f s; their tasks "
                        "run again when the lease expires", timeout)
        self._pid = -1

    # -- the worker side ----------------------------------------------------------------
    def run_task(self, task: Task) -> None:
        """Run one stored handler task (in a worker thread, inside an app context).

        The notification is the one the request parsed when it is still in memory and
        its bytes are the stored ones; otherwise (after a restart, on a retry, from
        another process) it is parsed again from the stored body.
        """
        cached = self._parsed.pop((task.dedup_key, task.handler), None)
        if (cached is not None and cached.raw == task.body
                and content_type_of(cached) == task.content_type):
            notification = replace(cached, context={})
        else:
            notification = parse_body(task.body, task.content_type)
        notification.context.update(dedup_key=task.dedup_key, attempt=task.attempts,
                                    handler=task.handler)
        self._last.value = (task.id, notification)
        handler = self._handlers.get(task.handler)
        if handler is None:
            handler = self.dispatcher.handler_by_name(task.handler)
            if handler is not None:
                self._handlers[task.handler] = handler
        if handler is None:
            raise HandlerGone(
                f"No handler named {task.handler!r} is registered (renamed or removed in a "
                f"deploy?). Register it again, then run 'flask nc inbox retry {task.id}'."
            )
        assert self._app is not None
        with self._app.app_context():
            try:
                call_handler(handler, notification)
            except Exception as exc:
                self.dispatcher.report_error(notification, task.handler, exc)
                signals.handler_failed.send(self._app, notification=notification,
                                            handler=task.handler, error=exc)
                raise

    def _notification(self, task: Task) -> Notification:
        last = getattr(self._last, "value", None)
        if last is not None and last[0] == task.id:
            notification: Notification = last[1]
            return notification
        return parse_body(task.body, task.content_type)

    def _succeeded(self, task: Task) -> None:
        if signals.notification_handled.receivers:
            signals.notification_handled.send(self._app, notification=self._notification(task),
                                              handlers=[task.handler])

    def _retried(self, task: Task, exc: BaseException, next_at: float) -> None:
        signals.handler_retried.send(
            self._app, notification=self._notification(task), handler=task.handler,
            error=exc, attempt=task.attempts, delay=max(0.0, next_at - self.inbox.clock()),
        )

    def _dead(self, task: Task, exc: BaseException) -> None:
        signals.notification_dead_lettered.send(
            self._app, notification=self._notification(task), handler=task.handler,
            error=exc, attempts=task.attempts,
        )


class HandlerGone(PermanentFailure):
    """A stored task names a handler that is no longer registered: dead-lettered at once."""


def notification_body(notification: Notification) -> bytes:
    """Wire-form JSON for a notification built in code (one without ``raw``)."""
    import json

    return json.dumps(notification.to_dict()).encode()
