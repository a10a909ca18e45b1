"""Worker threads that run the inbox's tasks.

``InboxWorker(inbox, run_task)`` starts ``threads`` daemon threads on ``start()``. Each
claims one task at a time, calls ``run_task(task)`` and records the outcome: ``succeed``
when it returns, ``fail`` when it raises (a retry with backoff, or a dead letter after the
last attempt, or at once for a ``PermanentFailure``). ``notify()`` wakes one idle thread
right after an ``add()``; otherwise idle threads poll every ``poll_interval`` seconds,
which also picks up work that other processes added. The optional hooks
``on_success(task)``, ``on_retry(task, exc, next_at)`` and ``on_dead(task, exc)`` run in
the worker thread after the outcome is stored; an exception in a hook is logged and
changes nothing.

Every ``purge_interval`` seconds one idle thread deletes finished messages older than
``purge_after`` seconds (``None`` keeps them forever), so the file does not grow with
the number of notifications processed.

Failures are logged at WARNING (ERROR when dead-lettered) with the handler name, task id
and exception type only: exception messages can quote kenmerk values, so the traceback
goes to DEBUG and into the inbox, where ``dead_letters()`` shows it.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
import traceback
from collections.abc import Callable

from nc_receiver.delivery import PermanentFailure
from nc_receiver.inbox import Inbox, Task

logger = logging.getLogger(__name__)

RunTask = Callable[[Task], None]
OnSuccess = Callable[[Task], None]
OnRetry = Callable[[Task, BaseException, float], None]
OnDead = Callable[[Task, BaseException], None]


class InboxWorker:
    """A pool of threads that claim tasks from an :class:`Inbox` and run them."""

    def __init__(
        self,
        inbox: Inbox,
        run_task: RunTask,
        *,
        threads: int = 4,
        poll_interval: float = 0.2,
        owner: str | None = None,
        on_success: OnSuccess | None = None,
        on_retry: OnRetry | None = None,
        on_dead: OnDead | None = None,
        purge_after: float | None = 7 * 86400.0,
        purge_interval: float = 600.0,
    ) -> None:
        if threads < 1:
            raise ValueError("threads must be at least 1.")
        self.inbox = inbox
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._run_task = run_task
        self._threads_wanted = threads
        self._poll_interval = poll_interval
        self._on_success = on_success
        self._on_retry = on_retry
        self._on_dead = on_dead
        self._purge_after = purge_after
        self._purge_interval = purge_interval
        self._next_purge = time.monotonic() + purge_interval
        self._threads: list[threading.Thread] = []
        self._cond = threading.Condition()
        self._wakeups = 0  # notify() calls not yet consumed; a busy thread picks them up
        self._busy = 0
        self._stopping = False

    @property
    def running(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return bool(self._threads) and not self._stopping

    def start(self) -> None:
        """Start the worker threads."""
        if self._threads:
            raise RuntimeError("InboxWorker.start() was called twice; create a new worker.")
        for number in range(self._threads_wanted):
            thread = threading.Thread(
                target=self._loop,
                args=(f"{self.owner}/{number}",),
                name=f"nc-inbox-worker-{number}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def notify(self) -> None:
        """Wake one idle thread: a task was just added."""
        with self._cond:
            self._wakeups = min(self._wakeups + 1, self._threads_wanted)
            self._cond.notify()

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Let running tasks finish and stop the threads; False if some did not in time."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until no task is pending or running and every thread is idle. For tests."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._wakeups = self._threads_wanted
            self._cond.notify_all()
        while True:
            with self._cond:
                busy = self._busy
            if busy == 0 and self.inbox.is_idle():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def _loop(self, owner: str) -> None:
        while not self._stopping:
            try:
                tasks = self.inbox.claim(owner)
            except Exception:
                logger.exception("Could not claim a task from the inbox %s.", self.inbox.path)
                tasks = []
            if not tasks:
                self._housekeep()
                self._idle()
                continue
            with self._cond:
                self._busy += 1
            try:
                for task in tasks:
                    self._process(task)
            finally:
                with self._cond:
                    self._busy -= 1

    def _idle(self) -> None:
        with self._cond:
            if not self._wakeups and not self._stopping:
                self._cond.wait(self._poll_interval)
            if self._wakeups:
                self._wakeups -= 1

    def _process(self, task: Task) -> None:
        try:
            self._run_task(task)
        except Exception as exc:
            self._failed(task, exc)
            return
        try:
            held = self.inbox.succeed(task)
        except Exception:
            logger.exception("Could not mark task %d done; it will run again.", task.id)
            return
        if held:
            self._hook("on_success", self._on_success, task)
        else:
            logger.warning(
                "Task %d (handler %r) finished after its lease expired and was claimed "
                "again; it may run twice. Raise lease_seconds above the slowest handler.",
                task.id,
                task.handler,
            )

    def _failed(self, task: Task, exc: Exception) -> None:
        kind = type(exc).__qualname__
        logger.debug("Task %d (handler %r) raised.", task.id, task.handler, exc_info=exc)
        try:
            state, next_at = self.inbox.fail(
                task, "".join(traceback.format_exception(exc)),
                permanent=isinstance(exc, PermanentFailure),
            )
        except Exception:
            logger.exception("Could not record the failure of task %d.", task.id)
            return
        attempt = f"attempt {task.attempts} of {self.inbox.max_attempts}"
        if state == "pending" and next_at is not None:
            logger.warning(
                "Handler %r failed on task %d (%s) with %s; retrying in %.1f s.",
                task.handler,
                task.id,
                attempt,
                kind,
                max(0.0, next_at - self.inbox.clock()),
            )
            self._hook("on_retry", self._on_retry, task, exc, next_at)
        elif state == "dead":
            logger.error(
                "Handler %r failed on task %d (%s) with %s; it is dead-lettered.",
                task.handler,
                task.id,
                attempt,
                kind,
            )
            self._hook("on_dead", self._on_dead, task, exc)
        else:
            logger.warning("Task %d failed after its lease was taken over.", task.id)

    def _hook(self, name: str, hook: Callable[..., None] | None, *args: object) -> None:
        if hook is None:
            return
        try:
            hook(*args)
        except Exception:
            logger.exception("The %s hook of the inbox worker raised.", name)

    def _housekeep(self) -> None:
        if self._purge_after is None or time.monotonic() < self._next_purge:
            return
        with self._cond:  # one thread per interval
            if time.monotonic() < self._next_purge:
                return
            self._next_purge = time.monotonic() + self._purge_interval
        try:
            deleted = self.inbox.purge(self._purge_after)
        except Exception:
            logger.exception("Could not purge the inbox %s.", self.inbox.path)
            return
        if deleted:
            logger.info("Purged %d finished notifications from the inbox.", deleted)
