"""InboxWorker: threads that run inbox tasks, retry them and dead-letter them."""

from __future__ import annotations

import logging
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

from nc_receiver.inbox import Inbox, Task
from nc_receiver.worker import InboxWorker

BODY = b'{"kanaal": "zaken", "kenmerken": {"bronorganisatie": "123456782"}}'
JSON = "application/json"
MakeWorker = Callable[..., InboxWorker]


class Recorder:
    """A ``run_task`` that records its calls and fails as told, per handler name."""

    def __init__(self, failures: dict[str, int] | None = None) -> None:
        self.failures = dict(failures or {})
        self.calls: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def __call__(self, task: Task) -> None:
        with self.lock:
            self.calls.append((task.handler, task.attempts))
            failing = self.failures.get(task.handler, 0)
            self.failures[task.handler] = failing - 1
        if failing > 0:
            raise ValueError("bronorganisatie 123456782 is unknown")

    def handlers(self) -> list[str]:
        return sorted(handler for handler, _ in self.calls)


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[Inbox]:
    with Inbox(
        tmp_path / "inbox.sqlite3", max_attempts=3, backoff_base=0.005, backoff_max=0.02
    ) as inbox:
        yield inbox


@pytest.fixture
def make_worker(inbox: Inbox) -> Iterator[MakeWorker]:
    workers: list[InboxWorker] = []

    def make(run_task: Callable[[Task], None], **settings: Any) -> InboxWorker:
        settings.setdefault("threads", 2)
        settings.setdefault("poll_interval", 0.01)
        workers.append(InboxWorker(inbox, run_task, **settings))
        workers[-1].start()
        return workers[-1]

    yield make
    for worker in workers:
        assert worker.stop(timeout=5.0)


def states(inbox: Inbox) -> list[tuple[str, str, int]]:
    with closing(sqlite3.connect(inbox.path)) as conn:
        return conn.execute("SELECT handler, state, attempts FROM nc_task ORDER BY id").fetchall()


def test_a_task_runs_once_and_is_done(inbox: Inbox, make_worker: MakeWorker) -> None:
    run_task = Recorder()
    succeeded: list[Task] = []
    worker = make_worker(run_task, on_success=succeeded.append)

    inbox.add("key-1", BODY, JSON, ["handler"])
    worker.notify()

    assert worker.drain(timeout=5.0)
    assert run_task.calls == [("handler", 1)]
    assert [(task.handler, task.body) for task in succeeded] == [("handler", BODY)]
    assert states(inbox) == [("handler", "done", 1)]


def test_a_handler_that_fails_twice_then_succeeds_runs_three_times(
    inbox: Inbox, make_worker: MakeWorker
) -> None:
    run_task = Recorder({"flaky": 2})
    retries: list[tuple[int, str, float]] = []
    dead: list[Task] = []
    worker = make_worker(
        run_task,
        on_retry=lambda task, exc, at: retries.append((task.attempts, type(exc).__name__, at)),
        on_dead=lambda task, exc: dead.append(task),
    )

    inbox.add("key-1", BODY, JSON, ["flaky"])

    assert worker.drain(timeout=5.0)
    assert run_task.calls == [("flaky", 1), ("flaky", 2), ("flaky", 3)]
    assert [(attempts, kind) for attempts, kind, _ in retries] == [
        (1, "ValueError"),
        (2, "ValueError"),
    ]
    assert dead == []
    assert states(inbox) == [("flaky", "done", 3)]


def test_an_always_failing_handler_is_dead_lettered_until_retried(
    inbox: Inbox, make_worker: MakeWorker
) -> None:
    run_task = Recorder({"broken": 5})
    dead: list[tuple[int, str]] = []
    worker = make_worker(run_task, on_dead=lambda task, exc: dead.append((task.id, str(exc))))

    inbox.add("key-1", BODY, JSON, ["broken"])
    assert worker.drain(timeout=5.0)

    assert run_task.calls == [("broken", 1), ("broken", 2), ("broken", 3)]
    assert dead == [(1, "bronorganisatie 123456782 is unknown")]
    [letter] = inbox.dead_letters()
    assert (letter.handler, letter.attempts, letter.body) == ("broken", 3, BODY)
    assert letter.error.startswith("Traceback (most recent call last):\n")
    assert letter.error.endswith("ValueError: bronorganisatie 123456782 is unknown\n")

    assert inbox.retry() == 1
    worker.notify()
    assert worker.drain(timeout=5.0)
    assert run_task.calls[3:] == [("broken", 1), ("broken", 2), ("broken", 3)]
    assert states(inbox) == [("broken", "done", 3)]


def test_a_failing_handler_does_not_rerun_the_succeeding_one(
    inbox: Inbox, make_worker: MakeWorker
) -> None:
    run_task = Recorder({"bad": 99})
    worker = make_worker(run_task)

    inbox.add("key-1", BODY, JSON, ["good", "bad"])

    assert worker.drain(timeout=5.0)
    assert run_task.handlers() == ["bad", "bad", "bad", "good"]
    assert states(inbox) == [("good", "done", 1), ("bad", "dead", 3)]


def test_notify_wakes_a_worker_without_waiting_for_the_poll(
    inbox: Inbox, make_worker: MakeWorker
) -> None:
    ran = threading.Event()
    worker = make_worker(lambda task: ran.set(), poll_interval=30.0)
    time.sleep(0.05)  # let both threads go idle

    started = time.monotonic()
    inbox.add("key-1", BODY, JSON, ["handler"])
    worker.notify()

    assert ran.wait(timeout=5.0)
    assert time.monotonic() - started < 1.0


def test_tasks_added_by_another_process_are_polled(inbox: Inbox, make_worker: MakeWorker) -> None:
    run_task = Recorder()
    make_worker(run_task, poll_interval=0.02)
    time.sleep(0.05)

    inbox.add("key-1", BODY, JSON, ["handler"])

    assert inbox.wait_for_idle(timeout=5.0)
    assert run_task.calls == [("handler", 1)]


def test_a_task_of_a_dead_worker_is_taken_over_after_its_lease(
    tmp_path: Path, make_worker: MakeWorker
) -> None:
    with Inbox(tmp_path / "inbox.sqlite3", lease_seconds=0.2) as short_lease:
        short_lease.add("key-1", BODY, JSON, ["handler"])
        [orphan] = short_lease.claim("crashed-worker")
        run_task = Recorder()
        worker = InboxWorker(short_lease, run_task, threads=1, poll_interval=0.01)
        worker.start()
        try:
            assert short_lease.wait_for_idle(timeout=5.0)
        finally:
            assert worker.stop(timeout=5.0)

        assert run_task.calls == [("handler", 2)]
        assert short_lease.succeed(orphan) is False


def test_failures_are_logged_without_the_exception_message(
    inbox: Inbox, make_worker: MakeWorker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="nc_receiver.worker")
    worker = make_worker(Recorder({"broken": 5}))

    inbox.add("key-1", BODY, JSON, ["broken"])
    assert worker.drain(timeout=5.0)

    summary = [(record.levelname, record.getMessage().split(";")[0]) for record in caplog.records]
    assert summary == [
        ("WARNING", "Handler 'broken' failed on task 1 (attempt 1 of 3) with ValueError"),
        ("WARNING", "Handler 'broken' failed on task 1 (attempt 2 of 3) with ValueError"),
        ("ERROR", "Handler 'broken' failed on task 1 (attempt 3 of 3) with ValueError"),
    ]
    assert caplog.records[-1].getMessage().endswith("; it is dead-lettered.")
    assert not any(
        record.exc_info or "123456782" in record.getMessage() for record in caplog.records
    )


def test_a_raising_hook_changes_nothing(
    inbox: Inbox, make_worker: MakeWorker, caplog: pytest.LogCaptureFixture
) -> None:
    def on_success(task: Task) -> None:
        raise RuntimeError("hook broke")

    run_task = Recorder()
    worker = make_worker(run_task, on_success=on_success, threads=1)

    inbox.add("key-1", BODY, JSON, ["handler"])
    inbox.add("key-2", BODY, JSON, ["handler"])

    assert worker.drain(timeout=5.0)
    assert run_task.calls == [("handler", 1), ("handler", 1)]
    assert states(inbox) == [("handler", "done", 1), ("handler", "done", 1)]
    assert [record.getMessage() for record in caplog.records] == [
        "The on_success hook of the inbox worker raised.",
        "The on_success hook of the inbox worker raised.",
    ]


def test_stop_lets_the_running_task_finish(inbox: Inbox) -> None:
    started = threading.Event()

    def slow(task: Task) -> None:
        started.set()
        time.sleep(0.2)

    worker = InboxWorker(inbox, slow, threads=1, poll_interval=0.01)
    worker.start()
    inbox.add("key-1", BODY, JSON, ["handler"])
    assert started.wait(timeout=5.0)

    assert worker.stop(timeout=5.0) is True
    assert worker.running is False
    assert states(inbox) == [("handler", "done", 1)]


def test_drain_gives_up_after_its_timeout(inbox: Inbox, make_worker: MakeWorker) -> None:
    release = threading.Event()
    worker = make_worker(lambda task: release.wait(timeout=5.0))
    inbox.add("key-1", BODY, JSON, ["handler"])

    assert worker.drain(timeout=0.1) is False
    release.set()
    assert worker.drain(timeout=5.0) is True


def test_old_finished_messages_are_purged(inbox: Inbox, make_worker: MakeWorker) -> None:
    make_worker(Recorder(), purge_after=0.0, purge_interval=0.0)
    inbox.add("key-1", BODY, JSON, ["handler"])
    deadline = time.monotonic() + 5.0

    while inbox.stats()["messages"] and time.monotonic() < deadline:
        time.sleep(0.01)

    assert inbox.stats()["messages"] == 0
    assert inbox.add("key-1", BODY, JSON, ["handler"]) is False


def test_start_twice_is_refused(inbox: Inbox, make_worker: MakeWorker) -> None:
    worker = make_worker(Recorder())

    with pytest.raises(RuntimeError) as excinfo:
        worker.start()

    assert str(excinfo.value) == "InboxWorker.start() was called twice; create a new worker."


RUN_WORKER = """
import sys, threading, time
from pathlib import Path
from nc_receiver.inbox import Inbox
from nc_receiver.worker import InboxWorker
inbox = Inbox(sys.argv[2])
seen, lock = [], threading.Lock()
def run_task(task):
    time.sleep(0.001)
    with lock:
        seen.append(task.id)
worker = InboxWorker(inbox, run_task, threads=2, poll_interval=0.01)
Path(sys.argv[3], sys.argv[1]).touch()
while len(list(Path(sys.argv[3]).iterdir())) < int(sys.argv[4]):
    time.sleep(0.005)
worker.start()
assert worker.drain(timeout=30.0)
assert worker.stop(timeout=5.0)
print(*seen)
"""


def test_workers_in_several_processes_run_each_task_once(inbox: Inbox, tmp_path: Path) -> None:
    for number in range(200):
        inbox.add(f"key-{number}", BODY, JSON, ["handler"])
    (tmp_path / "ready").mkdir()
    children = [
        subprocess.Popen(
            [sys.executable, "-c", RUN_WORKER, str(n), inbox.path, str(tmp_path / "ready"), "2"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]

    outputs = [child.communicate(timeout=60)[0] for child in children]

    assert [child.returncode for child in children] == [0, 0]
    assert sorted(int(task_id) for output in outputs for task_id in output.split()) == list(
        range(1, 201)
    )
    assert {state for _, state, _ in states(inbox)} == {"done"}


def test_a_backlog_of_fast_tasks_is_claimed_in_batches_and_each_marked_done_at_once(
    inbox: Inbox, make_worker: MakeWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in range(200):
        inbox.add(f"key-{number}", BODY, JSON, ["handler"])
    claims: list[int] = []
    marked: list[int] = []
    claim, succeed_many = inbox.claim, inbox.succeed_many

    def counted_claim(owner: str, limit: int = 1, *, peek: bool = True) -> list[Task]:
        tasks = claim(owner, limit, peek=peek)
        if tasks:
            claims.append(len(tasks))
        return tasks

    def counted_succeed(tasks: list[Task]) -> list[bool]:
        marked.append(len(tasks))
        return succeed_many(tasks)

    monkeypatch.setattr(inbox, "claim", counted_claim)
    monkeypatch.setattr(inbox, "succeed_many", counted_succeed)
    run_task = Recorder()
    worker = make_worker(run_task, threads=1, max_batch=50)
    worker.notify()

    assert worker.drain(timeout=5.0)
    assert len(run_task.calls) == 200 and sum(claims) == 200
    assert claims[0] == 1 and max(claims) == 50  # one task until one was timed
    # Each success is stored right after its task: a crash re-runs only the running one.
    assert marked == [1] * 200
    assert {state for _, state, _ in states(inbox)} == {"done"}


def test_slow_tasks_still_run_in_parallel(inbox: Inbox, make_worker: MakeWorker) -> None:
    worker = make_worker(lambda task: time.sleep(0.3), threads=4)
    inbox.add("warm-up", BODY, JSON, ["handler"])
    worker.notify()
    assert worker.drain(timeout=5.0)
    started = time.monotonic()

    for number in range(4):
        inbox.add(f"key-{number}", BODY, JSON, ["handler"])
        worker.notify()

    assert worker.drain(timeout=5.0)
    assert time.monotonic() - started < 0.9


def test_a_batch_not_started_by_half_the_lease_is_released(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    slow = threading.Event()
    run_task = Recorder()

    def run(task: Task) -> None:
        run_task(task)
        if slow.is_set():
            time.sleep(0.15)

    with Inbox(tmp_path / "inbox.sqlite3", lease_seconds=0.2) as inbox:
        worker = InboxWorker(inbox, run, threads=1, poll_interval=0.01, batch_seconds=60.0)
        worker.start()
        try:
            inbox.add("warm-up", BODY, JSON, ["handler"])  # times a fast task: big batches
            assert worker.drain(timeout=5.0)
            slow.set()
            for number in range(4):
                inbox.add(f"key-{number}", BODY, JSON, ["handler"])
            worker.notify()
            assert worker.drain(timeout=10.0)
        finally:
            assert worker.stop(timeout=5.0)

    assert run_task.calls == [("handler", 1)] * 5  # each once; a release is no attempt
    assert caplog.records == []


def test_notify_during_a_claim_wakes_no_second_thread(
    inbox: Inbox, make_worker: MakeWorker
) -> None:
    owners: list[str] = []
    claim = inbox.claim

    def recording(owner: str, limit: int = 1, *, peek: bool = True) -> list[Task]:
        tasks = claim(owner, limit, peek=peek)
        if tasks:
            owners.append(owner)
        return tasks

    inbox.claim = recording  # type: ignore[method-assign]
    worker = make_worker(Recorder(), threads=4, poll_interval=30.0, coalesce=0.2)
    inbox.add("warm-up", BODY, JSON, ["handler"])  # times a task: batches of more than one
    worker.notify()
    assert worker.drain(timeout=5.0)
    owners.clear()

    for number in range(5):
        inbox.add(f"key-{number}", BODY, JSON, ["handler"])
        worker.notify()

    assert worker.drain(timeout=5.0)
    assert len(owners) == 1  # the five adds within the coalescing time: one claim
    assert states(inbox) == [("handler", "done", 1)] * 6


def test_a_steady_trickle_of_adds_is_claimed_in_batches(
    inbox: Inbox, make_worker: MakeWorker
) -> None:
    """Adds spaced below the coalescing time must not wake a thread each (regression:
    while one thread waited out its coalescing time or ran its batch, every notify woke
    another idle thread, so four threads took turns claiming one or two tasks each)."""
    owners: list[tuple[str, int]] = []
    claim = inbox.claim

    def recording(owner: str, limit: int = 1, *, peek: bool = True) -> list[Task]:
        tasks = claim(owner, limit, peek=peek)
        if tasks:
            owners.append((owner, len(tasks)))
        return tasks

    inbox.claim = recording  # type: ignore[method-assign]
    worker = make_worker(lambda task: time.sleep(0.003), threads=4, poll_interval=30.0,
                         coalesce=0.05)
    inbox.add("warm-up", BODY, JSON, ["handler"])  # times a task: batches of more than one
    worker.notify()
    assert worker.drain(timeout=5.0)
    owners.clear()

    for number in range(40):  # one add every ~5 ms: about ten per coalescing time
        inbox.add(f"key-{number}", BODY, JSON, ["handler"])
        worker.notify()
        time.sleep(0.005)

    assert worker.drain(timeout=5.0)
    assert sum(n for _, n in owners) == 40
    assert len(owners) <= 10, owners  # batches, not a claim per add
