"""Fetching resourceUrl / hoofdObject: JWT per API root, retries, timeouts, 404 as gone."""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from conftest import CALLBACK, TOKEN, delivery_body
from flask import Flask, request

from nc_receiver import Notification
from nc_receiver._server import ServerThread
from nc_receiver.fetch import Fetcher, FetchError, fetch

SECRET = "zaken-api-secret-of-at-least-32-bytes!!"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.fixture
def api() -> Iterator[tuple[str, Counter[str]]]:
    """A ZGW-like API on loopback that checks the JWT; /flaky fails twice, then works."""
    app = Flask("zaken_api")
    hits: Counter[str] = Counter()

    @app.get("/zaken/api/v1/<path:name>")
    def get(name: str) -> Any:
        hits[name] += 1
        header = request.headers.get("Authorization", "")
        try:
            claims = jwt.decode(header.removeprefix("Bearer "), SECRET, algorithms=["HS256"])
        except jwt.InvalidTokenError:
            return {"detail": "no"}, 403
        if name == "gone":
            return {"detail": "Niet gevonden."}, 404
        if name == "flaky" and hits[name] < 3:
            return {"detail": "busy"}, 503
        if name == "broken":
            return {"detail": "bug"}, 500
        return {"url": request.url, "client_id": claims["client_id"]}

    with ServerThread(app) as server:
        yield server.url + "/zaken/api/v1/", hits


def fetcher(root: str, **kwargs: Any) -> Fetcher:
    return Fetcher({root: {"client_id": "consumer", "secret": SECRET},
                    root + "other/": {"client_id": "x", "secret": "y"}}, backoff=0, **kwargs)


def test_fetch_with_a_jwt_for_the_api_root(api: tuple[str, Counter[str]]) -> None:
    root, _ = api
    resource = fetcher(root).fetch(root + "zaken/1")
    assert resource and not resource.gone and resource.status == 200
    assert resource.data == {"url": root + "zaken/1", "client_id": "consumer"}


def test_404_is_gone_not_an_error(api: tuple[str, Counter[str]]) -> None:
    root, _ = api
    resource = fetcher(root).fetch(root + "gone")
    assert resource.gone and resource.data is None and not resource


def test_retries_5xx_then_succeeds_and_reports_the_rest(api: tuple[str, Counter[str]]) -> None:
    root, hits = api
    assert fetcher(root).fetch(root + "flaky").status == 200
    assert hits["flaky"] == 3
    with pytest.raises(FetchError) as info:
        fetcher(root).fetch(root + "broken")
    assert info.value.status == 500 and hits["broken"] == 1  # a 500 is not retried
    with pytest.raises(FetchError) as info:
        Fetcher().fetch(root + "zaken/1")
    assert str(info.value) == f"Fetching {root}zaken/1 answered 403."


def test_connection_refused_raises_after_retries() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FetchError, match="Could not fetch .*ConnectionError"):
        Fetcher(retries=1, backoff=0, timeout=1).fetch(f"http://127.0.0.1:{port}/x")


def test_bad_credentials_fail_with_a_sentence() -> None:
    with pytest.raises(ValueError, match="need 'client_id' and 'secret'"):
        Fetcher({"https://x/": {"client_id": "a"}})


def test_handler_fetches_from_the_notification_in_the_inbox_worker(
        api: tuple[str, Counter[str]], make_app: Any, tmp_path: Path, serve: Any) -> None:
    root, _ = api
    app, receiver = make_app(delivery="inbox", inbox_path=str(tmp_path / "inbox.sqlite3"),
                             fetch_credentials={root: {"client_id": "consumer",
                                                       "secret": SECRET}})
    fetched: list[Any] = []

    @receiver.on("zaken")
    def sync_zaak(n: Notification) -> None:
        fetched.append((n.fetch_resource().data, n.fetch_hoofd_object().gone))

    receiver.init_app(app)
    body = json.loads(delivery_body())
    body["resourceUrl"], body["hoofdObject"] = root + "statussen/1", root + "gone"
    try:
        client = app.test_client()
        assert client.post(CALLBACK, json=body, headers=AUTH).status_code == 204
        assert app.extensions["nc_receiver"].delivery.worker.drain(10)
    finally:
        app.extensions["nc_receiver"].delivery.stop()
    assert fetched == [({"url": root + "statussen/1", "client_id": "consumer"}, True)]
    with app.app_context():
        assert fetch(root + "zaken/2").data["client_id"] == "consumer"
