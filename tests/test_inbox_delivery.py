"""The inbox delivery mode over real HTTP: 204 after the commit, dedup, retries, dead letters."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import CALLBACK, TOKEN, delivery_body
from flask import Flask, current_app

from nc_receiver import Notification, NotificationReceiver, Router, signals
from nc_receiver.delivery import PermanentFailure
from nc_receiver.inbox import Inbox
from nc_receiver.inbox_delivery import InboxDelivery

AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
FAST = {"retry_backoff": 0.01, "retry_backoff_max": 0.05, "max_attempts": 3}
MakeInboxApp = Callable[..., tuple[Flask, NotificationReceiver]]


@pytest.fixture
def inbox_app(make_app: Any, tmp_path: Path) -> Iterator[MakeInboxApp]:
    """An inbox-mode app on a temporary inbox file; its workers are stopped afterwards."""
    apps: list[Flask] = []

    def factory(**config: Any) -> tuple[Flask, NotificationReceiver]:
        config.setdefault("inbox_path", str(tmp_path / "inbox.sqlite3"))
        app, receiver = make_app(delivery="inbox", **{**FAST, **config})
        apps.append(app)
        return app, receiver

    yield factory
    for app in apps:
        if "nc_receiver" in app.extensions:
            app.extensions["nc_receiver"].delivery.stop()


def delivery(app: Flask) -> InboxDelivery:
    d: InboxDelivery = app.extensions["nc_receiver"].delivery
    return d


def drain(app: Flask) -> None:
    worker = delivery(app).worker
    assert worker is not None and worker.drain(10)


def body(n: int = 0) -> bytes:
    data = json.loads(delivery_body())
    data["resourceUrl"] += f"-{n}"
    return json.dumps(data).encode()


def test_acknowledged_after_commit_and_run_in_an_app_context(
        inbox_app: MakeInboxApp, serve: Any, http: requests.Session) -> None:
    app, receiver = inbox_app()
    seen: list[tuple[str, str, str]] = []

    @receiver.on("zaken", "status", "create")
    async def status_created(n: Notification) -> None:
        seen.append((current_app.name, n.resource_url, n.context["dedup_key"]))

    receiver.init_app(app)
    server = serve(app)
    resp = http.post(server.url + CALLBACK, data=delivery_body(), headers=AUTH)
    assert resp.status_code == 204 and resp.content == b""
    drain(app)
    (name, url, key), = seen
    assert name == "test_app" and url.endswith("/statussen/7c3e1f9a-5b2d-4e8f-a1c6-3d9b0e4f2a11")
    assert len(key) == 64
    assert delivery(app).inbox.stats()["done"] == 1


def test_duplicates_sequential_and_concurrent_run_the_handler_once(
        inbox_app: MakeInboxApp, serve: Any) -> None:
    app, receiver = inbox_app()
    runs: Counter[str] = Counter()
    lock = threading.Lock()

    @receiver.on("zaken")
    def count(n: Notification) -> None:
        with lock:
            runs[n.resource_url] += 1

    receiver.init_app(app)
    server = serve(app)
    queued: list[bool] = []
    barrier = threading.Barrier(6)

    def send(data: bytes) -> None:
        barrier.wait()
        assert requests.post(server.url + CALLBACK, data=data, headers=AUTH).status_code == 204

    with signals.notification_queued.connected_to(
            lambda s, notification, mode, duplicate: queued.append(duplicate), sender=app):
        for _ in range(3):
            assert requests.post(server.url + CALLBACK, data=body(1),
                                 headers=AUTH).status_code == 204
        threads = [threading.Thread(target=send, args=(body(2),)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        drain(app)
    assert runs == {json.loads(body(1))["resourceUrl"]: 1, json.loads(body(2))["resourceUrl"]: 1}
    assert sorted(queued) == [False, False] + [True] * 7


def test_fails_twice_then_succeeds_runs_three_times(
        inbox_app: MakeInboxApp, serve: Any, http: requests.Session) -> None:
    app, receiver = inbox_app()
    attempts: list[int] = []
    other: list[str] = []

    @receiver.on("zaken", "status")
    def flaky(n: Notification) -> None:
        attempts.append(n.context["attempt"])
        if len(attempts) < 3:
            raise ConnectionError("zaken API down")

    @receiver.on("zaken")
    def audit(n: Notification) -> None:
        other.append("audit")

    receiver.init_app(app)
    server = serve(app)
    retried: list[tuple[str, int]] = []
    with signals.handler_retried.connected_to(
            lambda s, notification, handler, error, attempt, delay: retried.append(
                (type(error).__name__, attempt)), sender=app):
        assert http.post(server.url + CALLBACK, data=delivery_body(),
                         headers=AUTH).status_code == 204
        drain(app)
    assert attempts == [1, 2, 3]
    assert other == ["audit"]  # one failing handler does not make another run again
    assert retried == [("ConnectionError", 1), ("ConnectionError", 2)]
    stats = delivery(app).inbox.stats()
    assert (stats["done"], stats["dead"]) == (2, 0)


def test_always_failing_handler_is_dead_lettered_with_its_error(
        inbox_app: MakeInboxApp, serve: Any, http: requests.Session) -> None:
    app, receiver = inbox_app()
    errors: list[str] = []

    @receiver.on("zaken")
    def broken(n: Notification) -> None:
        raise LookupError("zaaktype unknown")

    receiver.on_error(lambda n, name, exc: errors.append(str(exc)))
    receiver.init_app(app)
    server = serve(app)
    dead: list[tuple[str, int]] = []
    with signals.notification_dead_lettered.connected_to(
            lambda s, notification, handler, error, attempts: dead.append(
                (handler.rsplit(".", 1)[1], attempts)), sender=app):
        http.post(server.url + CALLBACK, data=delivery_body(), headers=AUTH)
        drain(app)
    assert dead == [("broken", 3)] and errors == ["zaaktype unknown"] * 3
    (letter,) = delivery(app).inbox.dead_letters()
    assert letter.attempts == 3 and letter.body == delivery_body()
    assert letter.error.rstrip().endswith("LookupError: zaaktype unknown")


def test_permanent_failure_and_a_handler_gone_after_a_deploy_dead_letter_at_once(
        inbox_app: MakeInboxApp, tmp_path: Path) -> None:
    path = tmp_path / "inbox.sqlite3"
    with Inbox(path) as inbox:
        inbox.add("k1", delivery_body(), "application/json", ["old_module:removed_handler"])
    app, receiver = inbox_app(inbox_path=str(path))

    @receiver.on("zaken")
    def refuses(n: Notification) -> None:
        raise PermanentFailure("not ours")

    receiver.init_app(app)
    app.extensions["nc_receiver"].delivery.inbox.add(
        "k2", body(2), "application/json", [receiver.router.routes[0].name])
    drain(app)
    letters = {d.handler.rsplit(".", 1)[-1]: d for d in delivery(app).inbox.dead_letters()}
    assert set(letters) == {"old_module:removed_handler", "refuses"}
    assert all(d.attempts == 1 for d in letters.values())
    assert letters["old_module:removed_handler"].error.rstrip().endswith(
        "HandlerGone: No handler named 'old_module:removed_handler' is registered (renamed or "
        "removed in a deploy?). Register it again, then run 'flask nc inbox retry 1'.")


def test_storage_failure_answers_503_problem(inbox_app: MakeInboxApp, serve: Any,
                                             http: requests.Session,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    app, receiver = inbox_app()
    receiver.on("zaken")(lambda n: None)
    receiver.init_app(app)

    def broken_add(*args: Any) -> bool:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(delivery(app).inbox, "add", broken_add)
    resp = http.post(serve(app).url + CALLBACK, data=delivery_body(), headers=AUTH)
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "5"
    assert resp.headers["Content-Type"] == "application/problem+json"
    assert resp.json()["code"] == "unavailable" and "disk" not in resp.text


def test_default_inbox_in_the_instance_folder(tmp_path: Path) -> None:
    app = Flask("instance_app", instance_path=str(tmp_path / "instance"))
    app.config.update(NC_RECEIVER_AUTH_TOKENS=[TOKEN])
    NotificationReceiver(app, router=Router(), include_default_router=False)
    try:
        assert app.config["NC_RECEIVER_DELIVERY"] == "inbox"
        assert (tmp_path / "instance" / "nc_receiver_inbox.sqlite3").is_file()
    finally:
        delivery(app).stop()


def test_no_worker_threads_in_a_flask_command_until_a_delivery(
        inbox_app: MakeInboxApp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASK_RUN_FROM_CLI", "true")
    monkeypatch.delenv("WERKZEUG_RUN_MAIN", raising=False)
    app, receiver = inbox_app()
    ran: list[str] = []
    receiver.on("zaken")(lambda n: ran.append(n.actie))
    receiver.init_app(app)
    assert delivery(app).worker is None
    client = app.test_client()
    assert client.post(CALLBACK, data=delivery_body(), headers=AUTH).status_code == 204
    drain(app)
    assert ran == ["create"]


def test_each_handler_gets_its_own_copy_whether_parsed_in_memory_or_from_the_inbox(
        inbox_app: MakeInboxApp, tmp_path: Path) -> None:
    path = tmp_path / "inbox.sqlite3"
    app, receiver = inbox_app(inbox_path=str(path))
    seen: list[tuple[str, Notification]] = []
    lock = threading.Lock()

    def record(name: str) -> Callable[[Notification], None]:
        def handler(n: Notification) -> None:
            with lock:
                seen.append((name, n))
        handler.__name__ = name
        return handler

    receiver.on("zaken")(record("first"))
    receiver.on("zaken", "status")(record("second"))
    receiver.init_app(app)
    client = app.test_client()
    assert client.post(CALLBACK, data=body(1), headers=AUTH).status_code == 204
    drain(app)
    names = [route.name for route in receiver.router.routes]
    with Inbox(path) as other_process:  # stored without the request's parse in memory
        other_process.add("from-elsewhere", body(2), "application/json", names)
    delivery(app).worker.notify()  # type: ignore[union-attr]
    drain(app)

    first, second = names
    assert sorted((name, n.resource_url[-2:], n.context["handler"]) for name, n in seen) == [
        ("first", "-1", first), ("first", "-2", first),
        ("second", "-1", second), ("second", "-2", second)]
    assert len({id(n) for _, n in seen}) == 4
    parsed = [n for _, n in seen if n.resource_url.endswith("-1")]
    assert parsed[0] == parsed[1] and parsed[0].raw == body(1)
