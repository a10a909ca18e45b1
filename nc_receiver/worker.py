"""Worker threads that run the inbox's tasks.

``InboxWorker(inbox, run_task)`` starts ``threads`` daemon threads on ``start()``. Each
claims a batch of tasks, calls ``run_task(task)`` for each and records the outcome:
``succeed`` as soon as it returns (so that after a crash only the running task can run
again), ``fail`` when it raises (a retry with backoff, or a dead letter after the last
attempt, or at once for a ``PermanentFailure``). A batch holds about ``batch_seconds``
of work by the measured time per task (one task while that is unknown, at most
``max_batch``), and what has not started when half the lease has passed is released, so
slow handlers still run in parallel and never outlive their lease for waiting in a batch.

``notify()`` wakes one idle thread right after an ``add()``; that thread waits
``coalesce`` seconds so that the adds arriving meanwhile join its claim, and further
``notify()`` calls until then are nearly free. Otherwise idle threads poll every
``poll_interval`` seconds, which also picks up work that other processes added. The optional hooks
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
        coalesce: float = 0.005,
        batch_seconds: float = 0.05,
        max_batch: int = 64,
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
        self._coalesce = coalesce
        self._batch_seconds = batch_seconds
        self._max_batch = max_batch
        self._task_seconds: float | None = None  # moving average of one run_task call
        self._cond = threading.Condition(threading.Lock())
        self._signalled = False  # notify() not yet taken up by a claim
        self._busy = 0
        self._batch_started = 0.0
        self._claiming = 0  # threads between a notify and their claim
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
        """Wake one idle thread: a task was just added.

        Calls while a woken thread has not claimed yet cost next to nothing: that
        thread's claim will take their tasks too.
        """
        if self._signalled:
            return
        with self._cond:
            if self._signalled:
                return
            self._signalled = True
            # A thread about to claim, or one whose batch started just now (most likely a
            # fast one), takes these tasks when it claims next: waking a second thread
            # would only split the work into more, smaller transactions.
            if self._claiming or (
                self._busy and time.monotonic() - self._batch_started < 2 * self._coalesce
            ):
                return
            self._cond.notify()

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Let running tasks finish and stop the threads; False if some did not in time.

        Tasks claimed in the same batch that have not started yet are released.
        """
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
            self._signalled = True
            self._cond.notify_all()
        while True:
            # Busy before and after the look: a thread counts as busy from before its
            # claim until its batch's hooks have run, so a batch cannot slip in between.
            with self._cond:
                busy = self._busy
            idle = self.inbox.is_idle()
            with self._cond:
                busy += self._busy
            if busy == 0 and idle:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def _loop(self, owner: str) -> None:
        peek, coalesced = True, False
        while not self._stopping:
            limit = self._batch_size()
            with self._cond:
                self._busy += 1  # from before the claim, for drain()
            try:
                tasks = self.inbox.claim(owner, limit, peek=peek)
            except Exception:
                logger.exception("Could not claim a task from the inbox %s.", self.inbox.path)
                tasks = []
            with self._cond:
                self._claiming -= coalesced
                if tasks:
                    self._batch_started = time.monotonic()
                else:
                    self._busy -= 1
            if not tasks:
                self._housekeep()
                coalesced = self._wait()
                peek = not coalesced
                continue
            if len(tasks) == limit:
                self._wake_one()  # there may be more: let an idle thread help
            try:
                self._run_batch(tasks)
            finally:
                with self._cond:
                    self._busy -= 1
                    signalled, self._signalled = self._signalled, False
            # A full batch: claim again at once. Notified meanwhile: wait ``coalesce`` first
            # so that the next claim takes a batch, not the one add that woke us (fewer
            # transactions per task, less competition with the request threads). Otherwise
            # the inbox is most likely empty, so wait without looking.
            if len(tasks) == limit:
                peek, coalesced = False, False
            elif signalled:
                self._coalesce_wait()
                peek, coalesced = False, True
            else:
                coalesced = self._wait()
                peek = not coalesced

    def _wake_one(self) -> None:
        with self._cond:
            self._signalled = True
            self._cond.notify()

    def _wait(self) -> bool:
        """Sleep until notified or the poll interval passes; True when notified.

        When notified it also waits ``coalesce`` (see :meth:`_coalesce_wait`); the caller
        then owes one ``_claiming`` decrement after its claim.
        """
        with self._cond:
            if not self._signalled and not self._stopping:
                self._cond.wait(self._poll_interval)
            if not self._signalled:
                return False
        self._coalesce_wait()
        return True

    def _coalesce_wait(self) -> None:
        """Let the adds of the next ``coalesce`` seconds join the coming claim.

        Meanwhile this thread counts as claiming, so ``notify()`` wakes no other thread
        for those adds: they would only split one batch into several smaller ones.
        """
        with self._cond:
            self._claiming += 1
        if self._coalesce:
            time.sleep(self._coalesce)
        with self._cond:
            self._signalled = False  # before the claim: a later add signals again

    def _batch_size(self) -> int:
        """As many tasks as take about ``batch_seconds``; one until a task was timed."""
        seconds = self._task_seconds
        if seconds is None:
            return 1
        return max(1, min(self._max_batch, int(self._batch_seconds / max(seconds, 1e-6))))

    def _run_batch(self, tasks: list[Task]) -> None:
        claimed = time.monotonic()
        for index, task in enumerate(tasks):
            late = time.monotonic() - claimed > self.inbox.lease_seconds / 2
            if index and (late or self._stopping):
                self._release(tasks[index:])
                break
            started = time.perf_counter()
            try:
                self._run_task(task)
            except Exception as exc:
                self._failed(task, exc)
            else:
                # Marked done at once, not with the rest of the batch: after a crash only
                # the task that was running may run again (at most one per thread).
                self._succeeded([task])
            seconds = time.perf_counter() - started
            last = self._task_seconds
            self._task_seconds = seconds if last is None else 0.8 * last + 0.2 * seconds

    def _succeeded(self, tasks: list[Task]) -> None:
        try:
            held = self.inbox.succeed_many(tasks)
        except Exception:
            logger.exception("Could not mark %d tasks done; they will run again.", len(tasks))
            return
        for task, ok in zip(tasks, held, strict=True):
            if ok:
                self._hook("on_success", self._on_success, task)
            else:
                logger.warning(
                    "Task %d (handler %r) finished after its lease expired and was claimed "
                    "again; it may run twice. Raise lease_seconds above the slowest handler.",
                    task.id,
                    task.handler,
                )

    def _release(self, tasks: list[Task]) -> None:
        try:
            self.inbox.release(tasks)
        except Exception:
            logger.exception("Could not release %d claimed tasks.", len(tasks))

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
