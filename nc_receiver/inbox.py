"""The durable inbox: accepted notifications in SQLite, one task per handler.

``Inbox(path)`` opens or creates the database (WAL mode) and is safe to use from many
threads and many processes at once. The request path calls ``add()``, which commits the
message and its tasks in one small transaction (``synchronous=FULL`` by default, so a 204
sent after it returns survives a crash; concurrent adds share one commit). Workers call
``claim()``, run the handler and then ``succeed()`` (or ``succeed_many()`` for a batch),
``fail()`` or ``release()``; these only count while the claim is still the task's latest.
``fail()`` schedules a retry with exponential backoff and jitter, or moves the task to
``dead`` after ``max_attempts``. Operators use ``stats()``, ``dead_letters()``,
``retry()`` and ``purge()``.

Schema (``PRAGMA user_version = 1``)::

    nc_seen    (dedup_key PK, seen_at)       dedup keys, meaningful for dedup_window
    nc_message (id PK, dedup_key, body, content_type, received_at)
    nc_task    (id PK, message_id FK, handler, state, attempts, due_at, lease_owner,
                last_error, finished_at, UNIQUE (message_id, handler))

A task is ``pending`` (``due_at`` is the earliest next attempt), ``running`` (``due_at``
is when the lease expires), ``done`` or ``dead``. ``attempts`` counts claims and doubles
as the fencing token of a lease. One partial index on ``due_at`` serves every claim.

Only ``add()`` and ``retry()`` commit at the configured ``synchronous`` level; the
workers' bookkeeping commits with ``NORMAL``: losing that to a power cut (not to a process
crash) only means a handler runs once more, which at-least-once delivery allows anyway.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing

from ._sqlite import DeadLetter, Failure, GroupCommit, InboxStats, Pool, Task, TaskState

__all__ = ["DeadLetter", "Failure", "Inbox", "InboxStats", "Task", "TaskState"]

logger = logging.getLogger(__name__)
_SYNC_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")
_MAX_ERROR = 10_000
_BATCH = 500
_STALE_LEASE = (
    "The lease expired during the last attempt: the worker died, or the handler ran "
    "longer than lease_seconds."
)
_SCHEMA = """
CREATE TABLE nc_seen (dedup_key TEXT PRIMARY KEY, seen_at REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX nc_seen_at ON nc_seen (seen_at);
CREATE TABLE nc_message (
    id INTEGER PRIMARY KEY, dedup_key TEXT NOT NULL, body BLOB NOT NULL,
    content_type TEXT NOT NULL, received_at REAL NOT NULL);
CREATE INDEX nc_message_received ON nc_message (received_at);
CREATE TABLE nc_task (
    id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES nc_message (id) ON DELETE CASCADE,
    handler TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0, due_at REAL NOT NULL, lease_owner TEXT,
    last_error TEXT, finished_at REAL, UNIQUE (message_id, handler));
CREATE INDEX nc_task_due ON nc_task (due_at) WHERE state IN ('pending', 'running');
CREATE INDEX nc_task_dead ON nc_task (finished_at) WHERE state = 'dead';
PRAGMA user_version = 1;
"""
_DUE = "FROM nc_task WHERE state IN ('pending', 'running') AND due_at <= ?"
_JOIN = "FROM nc_task t JOIN nc_message m ON m.id = t.message_id"
_TASK = "t.id, t.message_id, t.handler, t.attempts, m.dedup_key, m.body, m.content_type"
_HELD = "WHERE id = ? AND state = 'running' AND lease_owner = ? AND attempts = ?"


class Inbox:
    """A durable, multi-process inbox of notifications and their handler tasks."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lease_seconds: float = 60.0,
        dedup_window: float = 86400.0,
        max_attempts: int = 8,
        backoff_base: float = 1.0,
        backoff_max: float = 600.0,
        synchronous: str = "FULL",
        busy_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        synchronous = synchronous.upper()
        if synchronous not in _SYNC_LEVELS:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNC_LEVELS)}.")
        if max_attempts < 1 or min(lease_seconds, dedup_window, backoff_base) < 0:
            raise ValueError("max_attempts must be at least 1 and the durations at least 0.")
        self.path = os.fspath(path)
        self.lease_seconds = lease_seconds
        self.dedup_window = dedup_window
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.clock = clock
        relaxed = "NORMAL" if synchronous in ("FULL", "EXTRA") else synchronous
        writer = threading.Lock()
        self._durable = Pool(self.path, synchronous, busy_timeout, writer=writer)
        self._relaxed = Pool(self.path, relaxed, busy_timeout, writer=writer)
        self._adds = GroupCommit(self._durable)
        with closing(sqlite3.connect(self.path, timeout=busy_timeout)) as conn:
            conn.execute("PRAGMA journal_mode = WAL")  # persistent: once per file is enough
        with self._relaxed.transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    conn.execute(statement)
            elif version != 1:
                raise RuntimeError(
                    f"The inbox {self.path} has schema version {version}, which this version "
                    "of nc_receiver does not know. Upgrade nc_receiver or use another file."
                )

    def add(self, dedup_key: str, body: bytes, content_type: str, handlers: Sequence[str]) -> bool:
        """Store a notification and a pending task per handler; False for a duplicate.

        A key seen within ``dedup_window`` stores nothing. The check and the insert are
        one transaction, so concurrent duplicates in any thread or process store one.
        Concurrent calls in one process share a transaction (a group commit): one
        ``fsync`` for all of them, and each returns once it is on disk.
        """
        now = self.clock()
        tasks = dict.fromkeys(handlers)

        def insert(conn: sqlite3.Connection) -> bool:
            seen = conn.execute(
                "INSERT INTO nc_seen (dedup_key, seen_at) VALUES (?, ?) ON CONFLICT (dedup_key)"
                " DO UPDATE SET seen_at = excluded.seen_at WHERE nc_seen.seen_at <= ?",
                (dedup_key, now, now - self.dedup_window),
            )
            if seen.rowcount == 0:
                return False
            message_id = conn.execute(
                "INSERT INTO nc_message (dedup_key, body, content_type, received_at)"
                " VALUES (?, ?, ?, ?)",
                (dedup_key, body, content_type, now),
            ).lastrowid
            conn.executemany(
                "INSERT INTO nc_task (message_id, handler, state, due_at)"
                " VALUES (?, ?, 'pending', ?)",
                [(message_id, name, now) for name in tasks],
            )
            return True

        return self._adds.run(insert)

    def claim(self, owner: str, limit: int = 1, *, peek: bool = True) -> list[Task]:
        """Lease up to ``limit`` due tasks to ``owner`` for ``lease_seconds``.

        Due are pending tasks whose ``next_attempt_at`` has come and running tasks whose
        lease expired. An expired lease on the last allowed attempt goes to ``dead``.
        ``peek`` first looks in a read transaction, so that idle polling never takes the
        write lock that ``add()`` needs; pass False when work is known to be waiting.
        """
        now = self.clock()
        if peek:
            with self._relaxed.transaction("BEGIN") as conn:
                if conn.execute(f"SELECT 1 {_DUE} LIMIT 1", (now,)).fetchone() is None:
                    return []
        with self._relaxed.transaction() as conn:
            due = conn.execute(
                f"SELECT id, state, attempts {_DUE} ORDER BY due_at LIMIT ?", (now, limit)
            ).fetchall()
            stale = [i for i, s, n in due if s == "running" and n >= self.max_attempts]
            ids = [i for i, s, n in due if i not in stale]
            for task_id in stale:
                logger.error("Task %d is dead: its lease expired on the last attempt.", task_id)
                conn.execute(
                    "UPDATE nc_task SET state = 'dead', lease_owner = NULL, last_error = ?,"
                    " finished_at = ? WHERE id = ?",
                    (_STALE_LEASE, now, task_id),
                )
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            conn.execute(
                "UPDATE nc_task SET state = 'running', lease_owner = ?, due_at = ?,"
                f" attempts = attempts + 1 WHERE id IN ({marks})",
                (owner, now + self.lease_seconds, *ids),
            )
            rows = conn.execute(
                f"SELECT {_TASK}, m.received_at {_JOIN} WHERE t.id IN ({marks}) ORDER BY t.id",
                ids,
            ).fetchall()
        return [
            Task(tid, message_id, handler, attempts, key, body, ctype, received_at, owner)
            for tid, message_id, handler, attempts, key, body, ctype, received_at in rows
        ]

    def succeed(self, task: Task) -> bool:
        """Mark a claimed task done; False if its lease was taken over meanwhile."""
        return self.succeed_many([task]) == [True]

    def succeed_many(self, tasks: Iterable[Task]) -> list[bool]:
        """Mark claimed tasks done in one transaction; per task, False for a lost lease."""
        now = self.clock()
        with self._relaxed.transaction() as conn:
            return [
                conn.execute(
                    "UPDATE nc_task SET state = 'done', lease_owner = NULL, finished_at = ?"
                    f" {_HELD}",
                    (now, task.id, task.owner, task.attempts),
                ).rowcount == 1
                for task in tasks
            ]

    def release(self, tasks: Iterable[Task]) -> int:
        """Give back claimed tasks that did not run: due now, the claim not counted."""
        with self._relaxed.transaction() as conn:
            return sum(
                conn.execute(
                    "UPDATE nc_task SET state = 'pending', lease_owner = NULL, due_at = ?,"
                    f" attempts = attempts - 1 {_HELD}",
                    (self.clock(), task.id, task.owner, task.attempts),
                ).rowcount
                for task in tasks
            )

    def fail(self, task: Task, error: str, *, permanent: bool = False) -> Failure:
        """Record a failed attempt: retry later with backoff, or ``dead`` when out of attempts.

        ``permanent`` dead-letters the task at once. The error text (its last 10 000
        characters) and the attempt count are kept. Returns ``lost`` and changes nothing
        if the lease was taken over meanwhile.
        """
        now = self.clock()
        dead = permanent or task.attempts >= self.max_attempts
        due = now if dead else now + self.backoff(task.attempts)
        with self._relaxed.transaction() as conn:
            cur = conn.execute(
                "UPDATE nc_task SET state = ?, due_at = ?, lease_owner = NULL, last_error = ?,"
                f" finished_at = ? {_HELD}",
                (
                    "dead" if dead else "pending",
                    due,
                    error[-_MAX_ERROR:],
                    now if dead else None,
                    task.id,
                    task.owner,
                    task.attempts,
                ),
            )
        if cur.rowcount == 0:
            return Failure("lost", None)
        return Failure("dead", None) if dead else Failure("pending", due)

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after failed attempt number ``attempts``: doubling, with jitter."""
        delay = min(self.backoff_max, self.backoff_base * 2.0 ** min(attempts - 1, 64))
        return delay * random.uniform(0.5, 1.0)

    def stats(self) -> InboxStats:
        """Task counts per state, messages stored, and the oldest unfinished notification."""
        with self._relaxed.transaction("BEGIN") as conn:
            counts = dict(conn.execute("SELECT state, count(*) FROM nc_task GROUP BY state"))
            messages = conn.execute("SELECT count(*) FROM nc_message").fetchone()[0]
            oldest = conn.execute(
                f"SELECT min(m.received_at) {_JOIN} WHERE t.state IN ('pending', 'running')"
            ).fetchone()[0]
        return InboxStats(
            pending=counts.get("pending", 0),
            running=counts.get("running", 0),
            done=counts.get("done", 0),
            dead=counts.get("dead", 0),
            messages=messages,
            oldest_pending_at=oldest,
            oldest_pending_age=None if oldest is None else self.clock() - oldest,
        )

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Dead tasks with their notification and last error, the most recent first."""
        with self._relaxed.transaction("BEGIN") as conn:
            rows = conn.execute(
                "SELECT t.id, t.message_id, t.handler, t.attempts, t.last_error, t.finished_at,"
                f" m.dedup_key, m.body, m.content_type, m.received_at {_JOIN}"
                " WHERE t.state = 'dead' ORDER BY t.finished_at DESC, t.id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [DeadLetter(*row) for row in rows]

    def retry(self, task_id: int | None = None) -> int:
        """Make one dead task (or all of them) pending again with zero attempts."""
        where, args = ("", ()) if task_id is None else (" AND id = ?", (task_id,))
        with self._durable.transaction() as conn:
            cur = conn.execute(
                "UPDATE nc_task SET state = 'pending', attempts = 0, due_at = ?,"
                f" finished_at = NULL WHERE state = 'dead'{where}",
                (self.clock(), *args),
            )
        return cur.rowcount

    def purge(self, older_than_seconds: float, *, include_dead: bool = False) -> int:
        """Delete finished messages received more than ``older_than_seconds`` ago.

        Finished means every task is done (or dead, with ``include_dead``). Dedup keys stay
        for ``dedup_window`` regardless. Deletes in small batches so that ``add()`` never
        waits long for the write lock. Returns the number of messages deleted.
        """
        now = self.clock()
        kept = "'pending', 'running'" if include_dead else "'pending', 'running', 'dead'"
        deleted = self._delete_batches(
            "DELETE FROM nc_message WHERE id IN (SELECT m.id FROM nc_message m"
            " WHERE m.received_at < ? AND NOT EXISTS (SELECT 1 FROM nc_task t"
            f" WHERE t.message_id = m.id AND t.state IN ({kept})) LIMIT {_BATCH})",
            now - older_than_seconds,
        )
        self._delete_batches(
            "DELETE FROM nc_seen WHERE dedup_key IN (SELECT dedup_key FROM nc_seen"
            f" WHERE seen_at <= ? LIMIT {_BATCH})",
            now - self.dedup_window,
        )
        return deleted

    def _delete_batches(self, sql: str, cutoff: float) -> int:
        total = count = _BATCH
        while count == _BATCH:
            with self._relaxed.transaction() as conn:
                count = conn.execute(sql, (cutoff,)).rowcount
            total += count
        return total - _BATCH

    def is_idle(self) -> bool:
        """True when no task is pending or running (scheduled retries count as pending)."""
        with self._relaxed.transaction("BEGIN") as conn:
            busy = "SELECT 1 FROM nc_task WHERE state IN ('pending', 'running') LIMIT 1"
            return conn.execute(busy).fetchone() is None

    def wait_for_idle(self, timeout: float = 10.0) -> bool:
        """Poll until ``is_idle()``; False if ``timeout`` seconds pass first. For tests."""
        deadline = time.monotonic() + timeout
        while not self.is_idle():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        """Close the pooled connections; connections in use close when they are returned."""
        self._durable.close()
        self._relaxed.close()

    def __enter__(self) -> Inbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
