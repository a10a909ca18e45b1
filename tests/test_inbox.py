"""The durable SQLite inbox: dedup, leases, retries, dead letters, durability."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from nc_receiver.inbox import Failure, Inbox, Task

BODY = b'{"kanaal": "zaken", "kenmerken": {"bronorganisatie": "123456782"}}'
JSON = "application/json"


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


MakeInbox = Callable[..., Inbox]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_inbox(tmp_path: Path, clock: Clock) -> Iterator[MakeInbox]:
    opened: list[Inbox] = []

    def make(**settings: Any) -> Inbox:
        settings.setdefault("clock", clock)
        opened.append(Inbox(tmp_path / "inbox.sqlite3", **settings))
        return opened[-1]

    yield make
    for inbox in opened:
        inbox.close()


@pytest.fixture
def inbox(make_inbox: MakeInbox) -> Inbox:
    return make_inbox()


def rows(inbox: Inbox, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(inbox.path)) as conn:
        return conn.execute(sql).fetchall()


def run_children(script: str, count: int, *args: str) -> list[str]:
    """Run ``count`` Python processes at once; return their stdout, in order."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(number), *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        for number in range(count)
    ]
    outputs = [child.communicate(timeout=60)[0] for child in children]
    assert [child.returncode for child in children] == [0] * count
    return outputs


def test_add_stores_the_message_and_a_pending_task_per_handler(inbox: Inbox, clock: Clock) -> None:
    assert inbox.add("key-1", BODY, JSON, ["first", "second", "first"]) is True

    assert rows(inbox, "SELECT dedup_key, body, content_type, received_at FROM nc_message") == [
        ("key-1", BODY, JSON, clock.now)
    ]
    assert rows(inbox, "SELECT handler, state, attempts FROM nc_task ORDER BY id") == [
        ("first", "pending", 0),
        ("second", "pending", 0),
    ]


def test_a_duplicate_within_the_window_stores_nothing(inbox: Inbox, clock: Clock) -> None:
    assert inbox.add("key-1", BODY, JSON, ["handler"]) is True
    clock.advance(86399.0)

    assert inbox.add("key-1", b"{}", JSON, ["other"]) is False
    assert rows(inbox, "SELECT count(*) FROM nc_message") == [(1,)]
    assert rows(inbox, "SELECT handler FROM nc_task") == [("handler",)]


def test_a_duplicate_after_the_window_is_stored_again(inbox: Inbox, clock: Clock) -> None:
    assert inbox.add("key-1", BODY, JSON, ["handler"]) is True
    clock.advance(86400.0)

    assert inbox.add("key-1", BODY, JSON, ["handler"]) is True
    assert inbox.add("key-1", BODY, JSON, ["handler"]) is False
    assert rows(inbox, "SELECT count(*) FROM nc_message") == [(2,)]


def test_a_message_without_handlers_is_recorded_for_dedup(inbox: Inbox) -> None:
    assert inbox.add("key-1", BODY, JSON, []) is True

    assert inbox.add("key-1", BODY, JSON, ["handler"]) is False
    assert inbox.claim("worker") == []
    assert inbox.stats()["messages"] == 1


def test_concurrent_duplicate_adds_in_threads_store_one(inbox: Inbox) -> None:
    barrier = threading.Barrier(8)
    results: list[bool] = []

    def add() -> None:
        barrier.wait()
        for number in range(20):
            results.append(inbox.add(f"key-{number}", BODY, JSON, ["handler"]))

    threads = [threading.Thread(target=add) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results).count(True) == 20
    assert len(results) == 160
    assert rows(inbox, "SELECT count(*), count(DISTINCT dedup_key) FROM nc_message") == [(20, 20)]


ADD_KEYS = """
import sys, time
from pathlib import Path
from nc_receiver.inbox import Inbox
inbox = Inbox(sys.argv[2])
Path(sys.argv[3], sys.argv[1]).touch()
while len(list(Path(sys.argv[3]).iterdir())) < int(sys.argv[4]):
    time.sleep(0.005)
print(sum(inbox.add(f"key-{n}", b"{}", "application/json", ["h"]) for n in range(50)))
"""


def test_concurrent_duplicate_adds_in_processes_store_one(inbox: Inbox, tmp_path: Path) -> None:
    (tmp_path / "ready").mkdir()

    outputs = run_children(ADD_KEYS, 3, inbox.path, str(tmp_path / "ready"), "3")

    assert sum(int(output) for output in outputs) == 50
    assert rows(inbox, "SELECT count(*), count(DISTINCT dedup_key) FROM nc_message") == [(50, 50)]
    assert rows(inbox, "SELECT count(*) FROM nc_task") == [(50,)]


def test_a_claimed_task_is_leased_until_the_lease_expires(
    make_inbox: MakeInbox, clock: Clock
) -> None:
    inbox = make_inbox(lease_seconds=30.0)
    inbox.add("key-1", BODY, JSON, ["handler"])
    [first] = inbox.claim("worker-a")
    assert (first.handler, first.attempts, first.owner, first.body) == (
        "handler",
        1,
        "worker-a",
        BODY,
    )

    clock.advance(29.9)
    assert inbox.claim("worker-b") == []
    clock.advance(0.1)
    [second] = inbox.claim("worker-b")

    assert (second.id, second.attempts, second.owner) == (first.id, 2, "worker-b")
    assert inbox.succeed(first) is False
    assert inbox.fail(first, "too late") == Failure("lost", None)
    assert inbox.succeed(second) is True
    assert rows(inbox, "SELECT state, last_error FROM nc_task") == [("done", None)]


def test_an_expired_lease_on_the_last_attempt_is_dead(make_inbox: MakeInbox, clock: Clock) -> None:
    inbox = make_inbox(lease_seconds=10.0, max_attempts=2)
    inbox.add("key-1", BODY, JSON, ["handler"])
    inbox.claim("crashed-1")
    clock.advance(10.0)
    inbox.claim("crashed-2")
    clock.advance(10.0)

    assert inbox.claim("worker") == []
    [dead] = inbox.dead_letters()
    assert (dead.handler, dead.attempts) == ("handler", 2)
    assert dead.error.startswith("The lease expired during the last attempt")


def test_claim_takes_the_earliest_due_tasks_up_to_the_limit(inbox: Inbox, clock: Clock) -> None:
    for number in range(5):
        inbox.add(f"key-{number}", BODY, JSON, ["handler"])
        clock.advance(1.0)

    claimed = inbox.claim("worker", limit=3)

    assert [task.dedup_key for task in claimed] == ["key-0", "key-1", "key-2"]
    assert [task.dedup_key for task in inbox.claim("worker", limit=3)] == ["key-3", "key-4"]


@pytest.mark.parametrize(
    ("attempts", "low", "high"),
    [(1, 0.5, 1.0), (2, 1.0, 2.0), (4, 4.0, 8.0), (20, 300.0, 600.0)],
    ids=["first", "second", "fourth", "capped"],
)
def test_backoff_doubles_with_jitter_up_to_the_maximum(
    inbox: Inbox, attempts: int, low: float, high: float
) -> None:
    delays = [inbox.backoff(attempts) for _ in range(200)]

    assert low <= min(delays) < max(delays) <= high


def test_a_failed_attempt_is_retried_after_the_backoff(inbox: Inbox, clock: Clock) -> None:
    inbox.add("key-1", BODY, JSON, ["handler"])
    [task] = inbox.claim("worker")

    state, next_at = inbox.fail(task, "ValueError: boom")

    assert state == "pending"
    assert next_at is not None and clock.now + 0.5 <= next_at <= clock.now + 1.0
    assert rows(inbox, "SELECT state, attempts, last_error FROM nc_task") == [
        ("pending", 1, "ValueError: boom")
    ]
    clock.advance(next_at - clock.now - 0.001)
    assert inbox.claim("worker") == []
    clock.advance(0.001)
    [again] = inbox.claim("worker")
    assert again.attempts == 2


def test_the_last_failed_attempt_is_dead_until_retried(make_inbox: MakeInbox, clock: Clock) -> None:
    inbox = make_inbox(max_attempts=3)
    inbox.add("key-1", BODY, JSON, ["handler"])
    states = []
    for number in range(3):
        [task] = inbox.claim("worker")
        states.append(inbox.fail(task, f"error {number}").state)
        clock.advance(10.0)

    assert states == ["pending", "pending", "dead"]
    assert inbox.claim("worker") == []
    [dead] = inbox.dead_letters()
    assert (dead.handler, dead.attempts, dead.error, dead.body) == ("handler", 3, "error 2", BODY)
    assert dead.failed_at == clock.now - 10.0

    assert inbox.retry() == 1
    assert inbox.dead_letters() == []
    [task] = inbox.claim("worker")
    assert task.attempts == 1


def test_retry_by_task_id_revives_only_that_task(make_inbox: MakeInbox) -> None:
    inbox = make_inbox(max_attempts=1)
    inbox.add("key-1", BODY, JSON, ["a", "b"])
    for task in inbox.claim("worker", limit=2):
        inbox.fail(task, "boom")
    first, second = sorted(letter.task_id for letter in inbox.dead_letters())

    assert inbox.retry(second) == 1
    assert inbox.retry(second) == 0
    assert [task.id for task in inbox.claim("worker", limit=2)] == [second]
    assert [letter.task_id for letter in inbox.dead_letters()] == [first]


def test_one_failing_handler_does_not_rerun_the_other(inbox: Inbox, clock: Clock) -> None:
    inbox.add("key-1", BODY, JSON, ["good", "bad"])
    good, bad = inbox.claim("worker", limit=2)
    inbox.succeed(good)
    inbox.fail(bad, "boom")
    clock.advance(5.0)

    assert [task.handler for task in inbox.claim("worker", limit=2)] == ["bad"]


def test_stats_counts_tasks_per_state(make_inbox: MakeInbox, clock: Clock) -> None:
    inbox = make_inbox(max_attempts=1)
    inbox.add("key-1", BODY, JSON, ["a", "b", "c"])
    clock.advance(1.0)
    inbox.add("key-2", BODY, JSON, ["a"])
    a, b, c = inbox.claim("worker", limit=3)
    inbox.succeed(a)
    inbox.fail(b, "boom")
    clock.advance(2.0)

    assert inbox.stats() == {
        "pending": 1,
        "running": 1,
        "done": 1,
        "dead": 1,
        "messages": 2,
        "oldest_pending_at": clock.now - 3.0,
        "oldest_pending_age": 3.0,
    }


def test_purge_deletes_old_finished_messages_only(make_inbox: MakeInbox, clock: Clock) -> None:
    inbox = make_inbox(max_attempts=1)
    for key in ("done", "dead", "pending", "no-handlers"):
        inbox.add(key, BODY, JSON, [] if key == "no-handlers" else ["handler"])
    done, dead = inbox.claim("worker", limit=2)
    inbox.succeed(done)
    inbox.fail(dead, "boom")
    inbox.add("recent", BODY, JSON, [])
    clock.advance(100.0)
    inbox.add("new", BODY, JSON, [])

    assert inbox.purge(50.0) == 3
    assert rows(inbox, "SELECT dedup_key FROM nc_message ORDER BY id") == [
        ("dead",),
        ("pending",),
        ("new",),
    ]
    assert inbox.add("done", BODY, JSON, ["handler"]) is False
    assert inbox.purge(50.0, include_dead=True) == 1
    assert len(inbox.dead_letters()) == 0


def test_purge_forgets_dedup_keys_after_the_window(make_inbox: MakeInbox, clock: Clock) -> None:
    inbox = make_inbox(dedup_window=60.0)
    inbox.add("old", BODY, JSON, [])
    clock.advance(30.0)
    inbox.add("young", BODY, JSON, [])
    clock.advance(30.0)

    assert inbox.purge(0.0) == 2
    assert rows(inbox, "SELECT dedup_key FROM nc_seen") == [("young",)]


def test_purge_deletes_more_than_one_batch(inbox: Inbox, clock: Clock) -> None:
    for number in range(1201):
        inbox.add(f"key-{number}", b"", JSON, [])
    clock.advance(1.0)

    assert inbox.purge(0.5) == 1201
    assert inbox.stats()["messages"] == 0


def test_the_task_repr_leaves_out_the_body(inbox: Inbox) -> None:
    inbox.add("key-1", BODY, JSON, ["handler"])
    [task] = inbox.claim("worker")

    assert isinstance(task, Task)
    assert "123456782" not in repr(task)
    assert "123456782" not in repr(inbox.dead_letters())


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"synchronous": "SOMETIMES"}, "synchronous must be one of OFF, NORMAL, FULL, EXTRA."),
        ({"max_attempts": 0}, "max_attempts must be at least 1 and the durations at least 0."),
        ({"lease_seconds": -1.0}, "max_attempts must be at least 1 and the durations at least 0."),
    ],
    ids=["synchronous", "max-attempts", "lease"],
)
def test_invalid_settings_are_refused(
    make_inbox: MakeInbox, settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as excinfo:
        make_inbox(**settings)

    assert str(excinfo.value) == message


def test_a_newer_schema_is_refused(inbox: Inbox, make_inbox: MakeInbox) -> None:
    with closing(sqlite3.connect(inbox.path)) as conn:
        conn.execute("PRAGMA user_version = 2")

    with pytest.raises(RuntimeError) as excinfo:
        make_inbox()

    assert str(excinfo.value) == (
        f"The inbox {inbox.path} has schema version 2, which this version of nc_receiver "
        "does not know. Upgrade nc_receiver or use another file."
    )


def test_the_file_is_in_wal_mode(inbox: Inbox) -> None:
    assert rows(inbox, "PRAGMA journal_mode") == [("wal",)]


CLAIM_TASKS = """
import sys, time
from pathlib import Path
from nc_receiver.inbox import Inbox
inbox = Inbox(sys.argv[2], lease_seconds=60.0)
Path(sys.argv[3], sys.argv[1]).touch()
while len(list(Path(sys.argv[3]).iterdir())) < int(sys.argv[4]):
    time.sleep(0.005)
while tasks := inbox.claim("worker-" + sys.argv[1], limit=2):
    for task in tasks:
        print(task.id)
        time.sleep(0.001)
        assert inbox.succeed(task)
"""


def test_processes_sharing_one_file_never_claim_the_same_task(inbox: Inbox, tmp_path: Path) -> None:
    for number in range(300):
        inbox.add(f"key-{number}", BODY, JSON, ["a", "b"])
    (tmp_path / "ready").mkdir()

    outputs = run_children(CLAIM_TASKS, 3, inbox.path, str(tmp_path / "ready"), "3")

    claimed = [int(line) for output in outputs for line in output.split()]
    assert sorted(claimed) == list(range(1, 601))
    assert rows(inbox, "SELECT state, count(*), max(attempts) FROM nc_task GROUP BY state") == [
        ("done", 600, 1)
    ]


ADD_FOREVER = """
import itertools, sys
from nc_receiver.inbox import Inbox
inbox = Inbox(sys.argv[2])
for number in itertools.count():
    inbox.add(f"key-{number}", b'{"n": %d}' % number, "application/json", ["handler"])
    print(f"key-{number}", flush=True)
"""


def test_a_sigkill_loses_no_message_whose_add_returned(tmp_path: Path) -> None:
    path = str(tmp_path / "inbox.sqlite3")
    Inbox(path).close()
    child = subprocess.Popen(
        [sys.executable, "-c", ADD_FOREVER, "0", path], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    acknowledged = [child.stdout.readline() for _ in range(300)]
    os.kill(child.pid, signal.SIGKILL)
    rest, _ = child.communicate(timeout=30)
    acknowledged += rest.splitlines(keepends=True)
    keys = {line.strip() for line in acknowledged if line.endswith("\n")}

    assert child.returncode == -signal.SIGKILL
    with Inbox(path) as inbox:
        stored = {key for (key,) in rows(inbox, "SELECT dedup_key FROM nc_message")}
        assert len(keys) >= 300
        assert keys <= stored
        assert inbox.stats()["pending"] == len(stored)


def test_succeed_many_marks_the_held_tasks_and_reports_a_lost_lease(
    make_inbox: MakeInbox, clock: Clock
) -> None:
    inbox = make_inbox(lease_seconds=10.0)
    inbox.add("key-1", BODY, JSON, ["a"])
    [lost] = inbox.claim("worker-a")
    clock.advance(10.0)
    [taken_over] = inbox.claim("worker-b")
    inbox.add("key-2", BODY, JSON, ["b"])
    [held] = inbox.claim("worker-a")

    assert inbox.succeed_many([lost, held]) == [False, True]
    assert rows(inbox, "SELECT handler, state, lease_owner FROM nc_task ORDER BY id") == [
        ("a", "running", "worker-b"),
        ("b", "done", None),
    ]
    assert inbox.succeed_many([taken_over]) == [True]


def test_release_gives_claimed_tasks_back_without_counting_the_claim(
    inbox: Inbox, clock: Clock
) -> None:
    inbox.add("key-1", BODY, JSON, ["a", "b"])
    a, b = inbox.claim("worker-a", limit=2)
    inbox.succeed(a)

    assert inbox.release([a, b]) == 1
    [again] = inbox.claim("worker-a")
    assert (again.id, again.attempts) == (b.id, 1)
    clock.advance(inbox.lease_seconds)
    [taken_over] = inbox.claim("worker-b")
    assert inbox.release([again]) == 0  # a lost lease changes nothing
    assert taken_over.attempts == 2 and inbox.succeed(taken_over)


def hold_the_write_lock(inbox: Inbox) -> sqlite3.Connection:
    """Another connection's write transaction: add() blocks until it is rolled back."""
    blocker = sqlite3.connect(inbox.path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    return blocker


def add_in_threads(inbox: Inbox, calls: list[tuple[str, Any]]) -> list[bool | str]:
    """Run ``add(key, body)`` calls at once, the first one first; results or error types."""
    results: list[bool | str] = ["not run"] * len(calls)

    def add(index: int) -> None:
        key, body = calls[index]
        try:
            results[index] = inbox.add(key, body, JSON, ["handler"])
        except sqlite3.Error as exc:
            results[index] = type(exc).__name__

    blocker = hold_the_write_lock(inbox)
    threads = [threading.Thread(target=add, args=(n,)) for n in range(len(calls))]
    threads[0].start()  # the leader: it waits for the lock with only its own add
    time.sleep(0.1)
    for thread in threads[1:]:
        thread.start()  # these queue up behind it and form the next batch
    time.sleep(0.2)
    blocker.rollback()
    blocker.close()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_adds_share_one_commit_and_duplicates_in_a_batch_store_one(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits = []
    transaction = inbox._durable.transaction

    def counted(*args: Any) -> Any:
        commits.append(args)
        return transaction(*args)

    monkeypatch.setattr(inbox._durable, "transaction", counted)

    results = add_in_threads(inbox, [("first", BODY)] + [("dup", BODY)] * 6 + [("other", BODY)])

    assert results[0] is True and results[-1] is True
    assert sorted(results[1:-1]) == [False] * 5 + [True]
    assert len(commits) == 2
    assert rows(inbox, "SELECT dedup_key FROM nc_message ORDER BY id")[0] == ("first",)
    assert sorted(rows(inbox, "SELECT dedup_key FROM nc_message")) == [
        ("dup",),
        ("first",),
        ("other",),
    ]


def test_a_failed_batch_transaction_fails_all_its_adds_and_stores_none(inbox: Inbox) -> None:
    results = add_in_threads(
        inbox, [("first", BODY), ("good-1", BODY), ("bad", ["not", "bytes"]), ("good-2", BODY)]
    )

    assert results == [True, "ProgrammingError", "ProgrammingError", "ProgrammingError"]
    assert rows(inbox, "SELECT dedup_key FROM nc_message") == [("first",)]
    assert rows(inbox, "SELECT dedup_key FROM nc_seen") == [("first",)]
    assert inbox.add("good-1", BODY, JSON, ["handler"]) is True
