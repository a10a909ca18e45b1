"""``flask nc subscribe | unsubscribe | status | check | publish`` against the local NC."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from flask import Flask
from test_subscription import (  # noqa: F401
    MESSAGE,
    ORG,
    Consumer,
    RecordingNC,
    callback_of,
    make_consumer,
    nc,
    ours,
    publisher,
)

from nc_receiver._server import ServerThread
from nc_receiver.cli import nc_group
from nc_receiver.nc_client import NCClient


def run(app: Flask, *args: str) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(nc_group, list(args))
    return result.exit_code, result.output


def test_subscribe_status_unsubscribe(
    nc: RecordingNC, publisher: NCClient, make_consumer: Callable[..., Consumer],  # noqa: F811
) -> None:
    consumer = make_consumer()
    callback = callback_of(consumer)

    code, out = run(consumer.app, "status")
    assert code == 0
    assert out.splitlines() == [
        f"callback:  {callback}",
        f"wanted:    zaken {{'bronorganisatie': '{ORG}'}}",
        "at the NC: 0 abonnement(en) with our callback URL",
        "  none: 'flask nc subscribe' creates it",
    ]

    code, out = run(consumer.app, "subscribe")
    assert code == 0
    assert out.startswith("abonnement created (")
    assert out.endswith(") for zaken[bronorganisatie]\n")
    assert run(consumer.app, "subscribe")[1].startswith("abonnement unchanged (")

    consumer.receiver.add_handler(print, "documenten")
    code, out = run(consumer.app, "status")
    [abonnement] = ours(nc, callback)
    assert out.splitlines()[1:] == [
        f"wanted:    documenten {{}}, zaken {{'bronorganisatie': '{ORG}'}}",
        "at the NC: 1 abonnement(en) with our callback URL",
        f"  {abonnement['url']}: zaken {{'bronorganisatie': '{ORG}'}}",
        "    + documenten {}",
    ]
    run(consumer.app, "subscribe")
    assert run(consumer.app, "status")[1].endswith("\nin sync\n")

    assert run(consumer.app, "unsubscribe") == (0, f"deleted 1 abonnement(en) for {callback}\n")
    assert ours(nc, callback) == []


def test_subscribe_reports_what_to_do_when_the_nc_refuses(
    nc: RecordingNC, publisher: NCClient, make_consumer: Callable[..., Consumer],  # noqa: F811
) -> None:
    consumer = make_consumer()
    consumer.receiver.add_handler(print, "besluiten")

    code, out = run(consumer.app, "subscribe")

    assert code == 1
    assert "Error: the publisher has not registered kanaal 'besluiten' yet at the NC" in out


def test_check_probes_the_callback_as_the_nc_does(
    nc: RecordingNC, make_consumer: Callable[..., Consumer],  # noqa: F811
) -> None:
    consumer = make_consumer()

    code, out = run(consumer.app, "check")

    assert code == 0, out
    assert out.splitlines() == [
        "ok   without auth -> 401 (the NC wants 401 or 403)",
        "ok   with auth    -> 204 (the NC wants 204)",
    ]


def test_check_fails_for_a_receiver_that_answers_204_without_auth(
    nc: RecordingNC, make_consumer: Callable[..., Consumer],  # noqa: F811
) -> None:
    consumer = make_consumer()
    naive = Flask("naive")
    naive.add_url_rule("/callback", "callback", lambda: ("", 204), methods=["POST"])
    with ServerThread(naive) as server:
        code, out = run(consumer.app, "check", "--url", f"{server.url}/callback")

    assert code == 1
    assert out.splitlines() == [
        "FAIL without auth -> 204 (the NC wants 401 or 403)",
        "ok   with auth    -> 204 (the NC wants 204)",
        f"Error: the NC would refuse an abonnement for {server.url}/callback",
    ]


def test_publish_from_options_and_from_a_file(
    nc: RecordingNC, publisher: NCClient, make_consumer: Callable[..., Consumer],  # noqa: F811
    tmp_path: Path,
) -> None:
    consumer = make_consumer()
    consumer.receiver.subscribe(consumer.app)
    path = tmp_path / "notification.json"
    path.write_text(json.dumps({**MESSAGE, "resource": "zaak", "actie": "update"}))

    assert run(consumer.app, "publish", "--kenmerk", f"bronorganisatie={ORG}") == (
        0, "published zaken status create\n")
    assert run(consumer.app, "publish", "--kenmerk", "bronorganisatie=999999999")[0] == 0
    assert run(consumer.app, "publish", "--file", str(path)) == (
        0, "published zaken zaak update\n")
    assert nc.wait_for_deliveries(5)

    assert sorted(consumer.events) == ["status", "zaak"]  # the other organisation is filtered
    code, out = run(consumer.app, "publish", "--kanaal", "besluiten")
    assert code == 1
    assert "Error: the publisher has not registered kanaal 'besluiten' yet" in out
