"""``flask nc inbox``: status, dead letters (no kenmerk values unless asked), retry, purge."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CALLBACK, TOKEN, delivery_body
from flask import Flask

from nc_receiver import Notification, NotificationReceiver
from nc_receiver.cli import nc_group

AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.fixture
def app(make_app: Any, tmp_path: Path) -> Iterator[tuple[Flask, NotificationReceiver]]:
    app, receiver = make_app(delivery="inbox", inbox_path=str(tmp_path / "inbox.sqlite3"),
                             retry_backoff=0.01, retry_backoff_max=0.02, max_attempts=2)
    yield app, receiver
    if "nc_receiver" in app.extensions:
        app.extensions["nc_receiver"].delivery.stop()


def test_dead_letter_listed_without_kenmerken_then_retried_by_the_cli(
        app: tuple[Flask, NotificationReceiver]) -> None:
    flask_app, receiver = app
    healthy = {"now": False}
    ran: list[int] = []

    @receiver.on("zaken")
    def sync_zaak(n: Notification) -> None:
        ran.append(n.context["attempt"])
        if not healthy["now"]:
            raise ValueError(f"bronorganisatie {n.kenmerken['bronorganisatie']} unknown")

    receiver.init_app(flask_app)
    delivery = flask_app.extensions["nc_receiver"].delivery
    flask_app.test_client().post(CALLBACK, data=delivery_body(), headers=AUTH)
    assert delivery.worker.drain(10)
    cli = flask_app.test_cli_runner()

    status = cli.invoke(nc_group, ["inbox", "status"])
    assert status.exit_code == 0, status.output
    assert re.search(r"^dead:\s+1$", status.output, re.M)
    assert "oldest pending: -" in status.output

    listing = cli.invoke(nc_group, ["inbox", "dead"])
    assert listing.exit_code == 0
    assert re.match(r"#1  \S+  zaken status create  test_cli_inbox:\S+sync_zaak  attempts=2  "
                    r"error=ValueError\n$", listing.output), listing.output
    assert "224557609" not in listing.output
    verbose = cli.invoke(nc_group, ["inbox", "dead", "--verbose"])
    assert "ValueError: bronorganisatie 224557609 unknown" in verbose.output

    healthy["now"] = True
    neither = cli.invoke(nc_group, ["inbox", "retry"])
    assert neither.exit_code == 2
    assert "Give a task ID (see 'flask nc inbox dead') or --all." in neither.output
    both = cli.invoke(nc_group, ["inbox", "retry", "1", "--all"])
    assert both.exit_code == 2 and "Give a task ID or --all, not both." in both.output
    missing = cli.invoke(nc_group, ["inbox", "retry", "99"])
    assert missing.exit_code == 1 and "No dead-lettered task #99." in missing.output
    retried = cli.invoke(nc_group, ["inbox", "retry", "1"])
    assert retried.output == "Retrying 1 task.\n"
    assert delivery.worker.drain(10)
    assert ran == [1, 2, 1]
    assert cli.invoke(nc_group, ["inbox", "dead"]).output == "No dead-lettered notifications.\n"
    assert cli.invoke(nc_group, ["inbox", "retry", "--all"]).output == "Retrying 0 tasks.\n"


def test_purge_older_than_days(app: tuple[Flask, NotificationReceiver]) -> None:
    flask_app, receiver = app
    receiver.on("zaken")(lambda n: None)
    receiver.init_app(flask_app)
    flask_app.test_client().post(CALLBACK, data=delivery_body(), headers=AUTH)
    delivery = flask_app.extensions["nc_receiver"].delivery
    assert delivery.worker.drain(10)
    cli = flask_app.test_cli_runner()
    assert cli.invoke(nc_group, ["inbox", "purge", "--older-than", "1"]).output.startswith(
        "Purged 0 notifications")
    assert cli.invoke(nc_group, ["inbox", "purge", "--older-than", "0"]).output.startswith(
        "Purged 1 notification in")
    assert delivery.inbox.stats()["messages"] == 0
    assert cli.invoke(nc_group, ["inbox", "purge"]).exit_code == 2


def test_other_modes_have_no_inbox(make_app: Any) -> None:
    flask_app, receiver = make_app(delivery="sync")
    receiver.init_app(flask_app)
    result = flask_app.test_cli_runner().invoke(nc_group, ["inbox", "status"])
    assert result.exit_code == 1
    assert "This app uses the 'sync' delivery mode, which has no inbox" in result.output
