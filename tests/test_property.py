"""Property-based: generated and mutated bodies and headers over real HTTP.

Never a 5xx; every rejection a small problem+json; every valid, authenticated one a 204.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta, timezone
from typing import Any

import pytest
import requests
from conftest import CALLBACK, TOKEN, delivery_body
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nc_receiver import Notification, NotificationReceiver, Router
from nc_receiver._server import ServerThread

BASE: dict[str, Any] = json.loads(delivery_body())
FIELDS = list(BASE)
SEEN: list[Notification] = []


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, requests.Session]]:
    app = Flask("property")
    app.config.update(NC_RECEIVER_CALLBACK_PATH=CALLBACK, NC_RECEIVER_AUTH_TOKENS=[TOKEN],
                      NC_RECEIVER_DELIVERY="sync")
    receiver = NotificationReceiver(router=Router(), include_default_router=False)
    receiver.on_any(SEEN.append)
    receiver.init_app(app)
    with ServerThread(app) as srv, requests.Session() as session:
        yield srv.url + CALLBACK, session


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=8,
)


@st.composite
def mutated_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["mutate", "drop", "bytes", "json"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    body = dict(BASE)
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        if kind == "drop":
            body.pop(name)
        else:
            body[name] = draw(json_values)
    if draw(st.booleans()):
        body[draw(st.text(max_size=10))] = draw(json_values)
    return json.dumps(body).encode()


headers_strategy = st.fixed_dictionaries({}, optional={
    "Authorization": st.sampled_from([f"Bearer {TOKEN}", TOKEN, "Bearer x", "", "Basic abc",
                                      f"bearer {TOKEN}", "Bearer a.b.c"]),
    "Content-Type": st.sampled_from(["application/json", "application/cloudevents+json",
                                     "text/plain", "application/json; charset=utf-8",
                                     "multipart/form-data"]),
})


def check_rejection(resp: requests.Response) -> None:
    assert resp.status_code < 500, resp.text
    if resp.status_code != 204:
        assert 400 <= resp.status_code < 500
        assert resp.headers["Content-Type"] == "application/problem+json"
        assert len(resp.content) < 1024
        assert resp.json()["status"] == resp.status_code
    assert resp.headers["API-version"] == "1.0.1"


# Each example sends a batch, so the run covers BATCH * max_examples requests.
BATCH = 10
SETTINGS = settings(deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large])
SENT: dict[str, int] = {"mutated": 0, "valid": 0}


@settings(SETTINGS, max_examples=700)
@given(cases=st.lists(st.tuples(mutated_bodies(), headers_strategy), min_size=BATCH,
                      max_size=BATCH))
def test_mutated_input_never_5xx(server: tuple[str, requests.Session],
                                 cases: list[tuple[bytes, dict[str, str]]]) -> None:
    url, session = server
    for body, headers in cases:
        resp = session.post(url, data=body, headers=headers)
        SENT["mutated"] += 1
        check_rejection(resp)
        if "Authorization" not in headers or not headers["Authorization"]:
            assert resp.status_code == 401


LABEL = "abcdefghijklmnopqrstuvwxyz0123456789"
hosts = st.lists(st.text(LABEL, min_size=1, max_size=12), min_size=1, max_size=3).map(".".join)
urls = st.builds(lambda scheme, host, path: f"{scheme}://{host}/{path}",
                 st.sampled_from(["http", "https"]), hosts,
                 st.text(LABEL + "ABCXYZ/._-", max_size=80))
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
short_text = st.text(min_size=1, max_size=50)
valid_bodies = st.fixed_dictionaries(
    {
        "kanaal": short_text,
        "hoofdObject": urls,
        "resource": st.text(min_size=1, max_size=100),
        "resourceUrl": urls,
        "actie": st.sampled_from(["create", "update", "partial_update", "destroy", "verwijderd"]),
        "aanmaakdatum": st.datetimes(timezones=offsets).map(lambda d: d.isoformat()),
    },
    optional={
        "kenmerken": st.dictionaries(st.text(min_size=1, max_size=100),
                                     st.text(max_size=200), max_size=5)
        | st.lists(st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=20),
                                   min_size=1, max_size=1), max_size=3),
        "source": st.none() | st.text(max_size=100),
        "extraVeld": json_values,
    },
)


@settings(SETTINGS, max_examples=450)
@given(cases=st.lists(st.tuples(valid_bodies, st.sampled_from(["Bearer ", "bearer ", "BEARER ",
                                                               ""])),
                      min_size=BATCH, max_size=BATCH))
def test_valid_input_is_204(server: tuple[str, requests.Session],
                            cases: list[tuple[dict[str, Any], str]]) -> None:
    url, session = server
    for body, scheme in cases:
        resp = session.post(url, data=json.dumps(body),
                            headers={"Authorization": scheme + TOKEN,
                                     "Content-Type": "application/json"})
        SENT["valid"] += 1
        assert resp.status_code == 204, resp.text


def test_at_least_10000_requests_were_sent() -> None:
    """Runs after the two property tests (file order): the count is what was sent."""
    assert SENT["mutated"] + SENT["valid"] >= 10_000, SENT
