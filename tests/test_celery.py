"""The celery mode end to end: real HTTP, the real Redis (and RabbitMQ) broker, a real worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from celery.contrib.testing.worker import start_worker
from conftest import CALLBACK, TOKEN, delivery_body
from flask import Flask

from nc_receiver import ConfigurationError, Notification, NotificationReceiver
from nc_receiver.celery_delivery import CeleryDelivery, make_celery

REDIS = "redis://127.0.0.1:6379/0"
AMQP = "amqp://guest:guest@127.0.0.1:5672//"
APPS = Path(__file__).parent / "apps"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.fixture
def queue() -> Iterator[str]:
    name = f"nc-test-{uuid.uuid4().hex[:8]}"
    yield name
    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(f"*{name}*"):
        client.delete(key)


@pytest.fixture
def celery_app(make_app: Any, queue: str) -> Callable[..., tuple[Flask, NotificationReceiver]]:
    def factory(**config: Any) -> tuple[Flask, NotificationReceiver]:
        settings = {"celery_broker_url": REDIS, "retry_backoff": 0.05,
                    "retry_backoff_max": 0.1, "max_attempts": 3, **config}
        return make_app(delivery="celery", celery_queue=queue, **settings)

    return factory


@contextmanager
def worker(app: Flask, queue: str, pool: str = "threads") -> Iterator[None]:
    with start_worker(make_celery(app), pool=pool, concurrency=2, queues=[queue],
                      perform_ping_check=False, loglevel="WARNING", shutdown_timeout=10):
        yield


def wait_until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_redis_end_to_end_retries_per_handler(celery_app: Any, queue: str, serve: Any,
                                              http: requests.Session) -> None:
    app, receiver = celery_app()
    runs: list[tuple[str, int]] = []

    @receiver.on("zaken", "status")
    async def flaky(n: Notification) -> None:
        runs.append(("flaky", n.context["attempt"]))
        if n.context["attempt"] < 3:
            raise ConnectionError("zaken API down")

    @receiver.on("zaken")
    def audit(n: Notification) -> None:
        runs.append(("audit", n.context["attempt"]))

    receiver.init_app(app)
    server = serve(app)
    with worker(app, queue):
        assert http.post(server.url + CALLBACK, data=delivery_body(),
                         headers=AUTH).status_code == 204
        wait_until(lambda: len(runs) == 4)
        time.sleep(0.3)
    assert sorted(runs) == [("audit", 1), ("flaky", 1), ("flaky", 2), ("flaky", 3)]


def test_duplicates_across_two_receivers_run_once(celery_app: Any, queue: str,
                                                  serve: Any) -> None:
    runs: Counter[str] = Counter()
    servers = []
    for _ in range(2):  # two receiver "machines" sharing the broker's Redis
        app, receiver = celery_app()
        receiver.on("zaken")(lambda n: runs.update([n.resource_url]))
        receiver.init_app(app)
        servers.append(serve(app))
    barrier = threading.Barrier(6)
    statuses: list[int] = []

    def send(url: str) -> None:
        barrier.wait()
        statuses.append(requests.post(url + CALLBACK, data=delivery_body(),
                                      headers=AUTH).status_code)

    for _ in range(3):
        statuses.append(requests.post(servers[0].url + CALLBACK, data=delivery_body(),
                                      headers=AUTH).status_code)
    threads = [threading.Thread(target=send, args=(servers[i % 2].url,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with worker(app, queue):
        wait_until(lambda: sum(runs.values()) >= 1)
        time.sleep(0.5)
    assert statuses == [204] * 9
    assert list(runs.values()) == [1]


def test_always_failing_handler_is_dead_lettered_in_redis_and_retried(
        celery_app: Any, queue: str, serve: Any, http: requests.Session) -> None:
    app, receiver = celery_app()
    healthy = threading.Event()
    runs: list[int] = []

    @receiver.on("zaken")
    def broken(n: Notification) -> None:
        runs.append(n.context["attempt"])
        if not healthy.is_set():
            raise LookupError("zaaktype unknown")

    receiver.init_app(app)
    delivery: CeleryDelivery = app.extensions["nc_receiver"].delivery
    with worker(app, queue):
        http.post(serve(app).url + CALLBACK, data=delivery_body(), headers=AUTH)
        wait_until(lambda: len(delivery.dead_letters()) == 1)
        (letter,) = delivery.dead_letters()
        assert letter["attempts"] == 3 and letter["handler"].endswith(".broken")
        assert letter["error"].rstrip().endswith("LookupError: zaaktype unknown")
        assert json.loads(letter["body"]) == json.loads(delivery_body())
        healthy.set()
        assert delivery.retry_dead_letters() == 1
        wait_until(lambda: len(runs) == 4)
    assert runs == [1, 2, 3, 1] and delivery.dead_letters() == []


def test_broker_down_answers_503(celery_app: Any, serve: Any, http: requests.Session) -> None:
    app, receiver = celery_app(celery_broker_url="redis://127.0.0.1:1/0")
    receiver.on("zaken")(lambda n: None)
    receiver.init_app(app)
    resp = http.post(serve(app).url + CALLBACK, data=delivery_body(), headers=AUTH)
    assert resp.status_code == 503 and resp.json()["code"] == "unavailable"


def test_rabbitmq_with_publisher_confirms_and_a_celery_worker_process(
        queue: str, tmp_path: Path) -> None:
    env = {**os.environ, "NCR_TEST_BROKER": AMQP, "NCR_TEST_QUEUE": queue,
           "PYTHONPATH": str(APPS)}
    os.environ.update(NCR_TEST_BROKER=AMQP, NCR_TEST_QUEUE=queue)
    try:
        sys.path.insert(0, str(APPS))
        import celery_app as module  # the same app the worker process loads
    finally:
        sys.path.remove(str(APPS))
        del os.environ["NCR_TEST_BROKER"], os.environ["NCR_TEST_QUEUE"]
    assert module.celery.conf.broker_transport_options["confirm_publish"] is True
    client = module.flask_app.test_client()
    headers = {"Authorization": "celery-test-token", "Content-Type": "application/json"}
    for _ in range(2):
        assert client.post("/callback", data=delivery_body(), headers=headers).status_code == 204
    runs = redis.Redis.from_url(REDIS)
    with open(tmp_path / "worker.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celery_app:celery", "worker", "-Q", queue,
             "--pool", "solo", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-l", "WARNING"], cwd=APPS, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            wait_until(lambda: runs.llen(f"{queue}:runs") >= 1, timeout=30)
            time.sleep(0.3)
        finally:
            proc.kill()  # its work is acknowledged; a warm shutdown on AMQP takes ~10 s
            proc.wait(20)
    assert runs.lrange(f"{queue}:runs", 0, -1) == [
        json.loads(delivery_body())["resourceUrl"].encode()]
    del sys.modules["celery_app"]


def test_configuration_errors(celery_app: Any, make_app: Any,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    app, receiver = make_app(delivery="celery")
    with pytest.raises(ConfigurationError) as info:
        receiver.init_app(app)
    assert str(info.value).startswith("The celery mode needs a broker: set "
                                      "NC_RECEIVER_CELERY_BROKER_URL")
    monkeypatch.setitem(sys.modules, "celery", None)
    app, receiver = celery_app()
    with pytest.raises(ConfigurationError) as info:
        receiver.init_app(app)
    assert str(info.value) == (
        "NC_RECEIVER_DELIVERY is 'celery' but Celery is not installed: "
        "pip install 'nc-receiver[celery]' (or choose the 'inbox' mode).")
    with pytest.raises(RuntimeError, match="make_celery"):
        make_celery(Flask("plain"))
