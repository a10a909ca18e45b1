"""SQLite plumbing and record types of the inbox: pooled connections, group commit.

``Pool`` hands out reusable connections at one ``synchronous`` level, one writer at a
time per process. ``GroupCommit`` lets concurrent writers share one transaction and so
one ``fsync``: the first caller in commits everything queued behind it, then hands the
lead to the next caller that arrived meanwhile.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, Literal, NamedTuple, TypedDict, TypeVar

T = TypeVar("T")
TaskState = Literal["pending", "running", "done", "dead"]


@dataclass(frozen=True, slots=True)
class Task:
    """One handler's share of one message, as claimed by ``owner``."""

    id: int
    message_id: int
    handler: str
    attempts: int
    dedup_key: str
    body: bytes = field(repr=False)
    content_type: str
    received_at: float
    owner: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A task that ran out of attempts, with its message and its last error."""

    task_id: int
    message_id: int
    handler: str
    attempts: int
    error: str
    failed_at: float
    dedup_key: str
    body: bytes = field(repr=False)
    content_type: str
    received_at: float


class Failure(NamedTuple):
    """What ``fail()`` did: ``pending`` until ``next_attempt_at``, ``dead``, or ``lost``."""

    state: Literal["pending", "dead", "lost"]
    next_attempt_at: float | None


class InboxStats(TypedDict):
    """Task counts per state, messages stored and the oldest unfinished notification."""

    pending: int
    running: int
    done: int
    dead: int
    messages: int
    oldest_pending_at: float | None
    oldest_pending_age: float | None


class Pool:
    """Reusable connections at one ``synchronous`` level, shared by any number of threads."""

    def __init__(self, path: str, synchronous: str, timeout: float, keep: int = 16,
                 writer: threading.Lock | None = None) -> None:
        self._args = (path, synchronous, timeout)
        # One writer at a time per process: threads queue on a lock instead of in SQLite's
        # busy handler, whose sleeps (up to 100 ms each) would stall the 204s.
        self._writer = writer or threading.Lock()
        self._keep = keep
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        # Connections inherited through fork() must never be used or closed by the child.
        self._inherited: list[sqlite3.Connection] = []

    def _connect(self) -> sqlite3.Connection:
        path, synchronous, timeout = self._args
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    @contextmanager
    def transaction(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._pid != os.getpid():
                self._inherited += self._idle
                self._idle, self._pid = [], os.getpid()
                self._writer = threading.Lock()  # another thread may have held it at fork()
            conn = self._idle.pop() if self._idle else None
        conn = conn or self._connect()
        writing = begin != "BEGIN"
        if writing:
            self._writer.acquire()
        try:
            conn.execute(begin)
            yield conn
            conn.execute("COMMIT")
        finally:
            broken = False
            if conn.in_transaction:
                try:
                    conn.rollback()
                except sqlite3.Error:
                    broken = True
            if writing:
                self._writer.release()
            with self._lock:
                keep = not broken and len(self._idle) < self._keep
                if keep:
                    self._idle.append(conn)
            if not keep:
                conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle, self._keep = self._idle, [], 0
        for conn in idle:
            conn.close()


class _Waiter(Generic[T]):
    __slots__ = ("work", "wake", "done", "result", "error")

    def __init__(self, work: Callable[[sqlite3.Connection], T]) -> None:
        self.work = work
        self.wake = threading.Lock()
        self.wake.acquire()  # released by the leader: done, or this waiter leads next
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None


class GroupCommit:
    """Run concurrent callers' writes in shared transactions of ``pool``, in arrival order.

    ``run(work)`` returns ``work(conn)``'s result once the transaction that ran it has
    committed. When any ``work`` of a batch raises, the whole transaction is rolled back
    and every caller of that batch gets the exception, as with ``Future.result()``.
    """

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[_Waiter[object]] = []
        self._leading = False
        self._pid = os.getpid()

    def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._pid != os.getpid():  # a leader in the parent does not exist in a fork
            self._reset()
        me = _Waiter(work)
        with self._lock:
            self._queue.append(me)  # type: ignore[arg-type]
            lead, self._leading = not self._leading, True
        if not lead:
            me.wake.acquire()
        if not me.done:
            self._commit_batch()
        if me.error is not None:
            raise me.error
        return me.result  # type: ignore[return-value]

    def _commit_batch(self) -> None:
        with self._lock:
            batch, self._queue = self._queue, []
        try:
            with self._pool.transaction() as conn:
                for waiter in batch:
                    waiter.result = waiter.work(conn)
        except BaseException as exc:
            for waiter in batch:
                waiter.result, waiter.error = None, exc
        finally:
            with self._lock:
                successor = self._queue[0] if self._queue else None
                self._leading = successor is not None
            for waiter in batch:
                waiter.done = True
                waiter.wake.release()
            if successor is not None:
                successor.wake.release()
