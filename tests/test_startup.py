"""The start-up subscription: in the background, after the server serves, with backoff."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from flask import Flask
from flask.cli import FlaskGroup
from test_subscription import (
    ORG,
    TOKEN,
    RecordingNC,
    consumer_config,
    nc,  # noqa: F401
    ours,
    register_kanalen,
    start_nc,
)

from nc_receiver import ConfigurationError, NotificationReceiver, Router, signals
from nc_receiver._server import ServerThread
from nc_receiver.startup import SubscriptionTask

FAST = {"NC_RECEIVER_SUBSCRIBE_ON_STARTUP": True, "NC_RECEIVER_SUBSCRIBE_BACKOFF": 0.05,
        "NC_RECEIVER_SUBSCRIBE_BACKOFF_MAX": 0.2}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_app(config: dict[str, Any]) -> Flask:
    app = Flask("worker")
    app.config.update(config)
    receiver = NotificationReceiver(router=Router(), include_default_router=False)
    receiver.add_handler(print, "zaken", bronorganisatie=ORG)
    receiver.init_app(app)
    return app


def task_of(app: Flask) -> SubscriptionTask:
    task: SubscriptionTask = NotificationReceiver.state(app).extras["subscription"]
    return task


@pytest.fixture
def stop_tasks() -> Iterator[list[Flask]]:
    apps: list[Flask] = []
    yield apps
    for app in apps:
        task_of(app).stop()


def test_subscribes_in_the_background_once_the_server_serves(
    nc: RecordingNC, tmp_path: Path, caplog: pytest.LogCaptureFixture,  # noqa: F811
    stop_tasks: list[Flask],
) -> None:
    register_kanalen(nc.url)
    nc.calls.clear()
    port = free_port()
    callback = f"http://127.0.0.1:{port}/callback"
    synced: list[dict[str, Any]] = []
    caplog.set_level(logging.INFO, logger="nc_receiver.startup")

    app = make_app(consumer_config(nc.url, callback, tmp_path, **FAST))
    stop_tasks.append(app)
    with signals.subscription_synced.connected_to(
        lambda sender, **kw: synced.append({"sender": sender, **kw}), sender=app
    ):
        time.sleep(0.3)
        assert nc.calls == []  # init_app did no I/O, and the thread waits for our server
        with ServerThread(app, port=port):
            assert task_of(app).wait(10)

    assert task_of(app).result is not None
    assert [s["action"] for s in synced] == ["created"]
    assert synced[0]["sender"] is app
    assert len(ours(nc, callback)) == 1
    [line] = [r.getMessage() for r in caplog.records if r.name == "nc_receiver.startup"]
    assert line.startswith("nc_receiver: abonnement created (http://127.0.0.1:")
    assert line.endswith(" for zaken[bronorganisatie]")
    assert TOKEN not in caplog.text and ORG not in caplog.text


def test_nc_down_at_startup_then_up_subscribes_within_the_backoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, stop_tasks: list[Flask]
) -> None:
    nc_port = free_port()
    nc_url = f"http://127.0.0.1:{nc_port}/api/v1"
    late = ServerThread(Flask("placeholder"))  # only to reserve a callback port
    app = make_app(consumer_config(nc_url, f"{late.url}/callback", tmp_path, **FAST))
    late.app, late._server.app = app, app
    stop_tasks.append(app)
    with late:
        time.sleep(0.8)  # several attempts fail: nobody listens at the NC's port
        local = start_nc(nc_port)
        up = time.monotonic()
        try:
            register_kanalen(local.url)
            assert task_of(app).wait(5)
            elapsed = time.monotonic() - up
            assert task_of(app).result is not None
            assert len(ours(local, f"{late.url}/callback")) == 1
        finally:
            local.stop()
    assert elapsed < 0.2 + 1.0  # the longest backoff plus the subscription itself
    retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert retries and all(r.levelno == logging.WARNING for r in retries)


WORKER = """
import json, sys, threading
from flask import Flask
from werkzeug.serving import make_server
from nc_receiver import NotificationReceiver, Router

app = Flask("worker")
app.config.update(json.loads(sys.argv[1]))
receiver = NotificationReceiver(router=Router(), include_default_router=False)
receiver.add_handler(print, "zaken", bronorganisatie="224557609")
receiver.init_app(app)  # schedules the subscription
server = make_server("127.0.0.1", 0, app, threaded=True, fd=int(sys.argv[2]))
threading.Thread(target=server.serve_forever, daemon=True).start()
task = receiver.state(app).extras["subscription"]
task.wait(30)
print(json.dumps({"action": task.result and task.result.action, "error": repr(task.error)}),
      flush=True)
sys.stdin.read()  # keep serving (other workers' probes) until the test is done
"""


@pytest.mark.parametrize("machines", [1, 8], ids=["one-machine", "eight-machines"])
def test_eight_workers_starting_at_once_leave_one_abonnement(
    nc: RecordingNC, tmp_path: Path, machines: int  # noqa: F811
) -> None:
    register_kanalen(nc.url)
    # One listening socket shared by eight processes, as a pre-forking server does.
    listener = socket.create_server(("127.0.0.1", 0))
    callback = f"http://127.0.0.1:{listener.getsockname()[1]}/callback"
    workers = []
    for i in range(8):
        config = consumer_config(nc.url, callback, tmp_path / f"machine-{i % machines}", **FAST)
        workers.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps(config), str(listener.fileno())],
            pass_fds=(listener.fileno(),), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True,
        ))
    try:
        reports = [json.loads(w.stdout.readline() or "{}") for w in workers]  # type: ignore[union-attr]
    finally:
        for worker in workers:
            worker.communicate(timeout=10)  # closes stdin: the worker exits
        listener.close()

    assert [r.get("action") for r in reports].count(None) == 0, reports
    [abonnement] = ours(nc, callback)
    assert abonnement["kanalen"] == [{"naam": "zaken", "filters": {"bronorganisatie": ORG}}]
    if machines == 1:  # the file lock: one create, then seven that see it is all there
        assert sorted(r["action"] for r in reports) == ["created"] + ["unchanged"] * 7
        assert [m for m, _ in nc.writes()] == ["POST"]


def _scheduled(app_config: dict[str, Any]) -> bool:
    app = make_app(app_config)
    task = NotificationReceiver.state(app).extras.get("subscription")
    if task is not None:
        task.stop()
    return task is not None


@pytest.mark.parametrize(
    ("command", "params", "run_main", "scheduled"),
    [
        ("routes", {}, None, False),
        ("run", {"reload": True}, None, False),
        ("run", {"reload": True}, "true", True),
        ("run", {"reload": False}, None, True),
    ],
    ids=["other-flask-command", "reloader-parent", "reloader-child", "run-without-reloader"],
)
def test_only_processes_that_serve_subscribe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, params: dict[str, Any],
    run_main: str | None, scheduled: bool,
) -> None:
    if run_main:
        monkeypatch.setenv("WERKZEUG_RUN_MAIN", run_main)
    config = consumer_config("http://127.0.0.1:9/api/v1", "http://127.0.0.1:9/callback",
                             tmp_path, **FAST)
    with click.Context(FlaskGroup(), info_name="flask") as root:
        with click.Context(click.Command(command), parent=root, info_name=command) as ctx:
            ctx.params.update(params)
            assert _scheduled(config) is scheduled


def test_switched_off_or_misconfigured(tmp_path: Path) -> None:
    config = consumer_config("http://127.0.0.1:9/api/v1", "http://127.0.0.1:9/callback",
                             tmp_path)
    assert _scheduled(config) is False  # NC_RECEIVER_SUBSCRIBE_ON_STARTUP = False
    with pytest.raises(ConfigurationError, match="^Set NC_RECEIVER_CALLBACK_URL to the public"):
        make_app({**config, **FAST, "NC_RECEIVER_CALLBACK_URL": None})
