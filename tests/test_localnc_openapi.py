"""The local NC's answers and NCClient's requests, checked against the official 1.0.1 spec.

Where Open Notificaties 1.16.1 (the contract's authority) differs from the spec, the
local NC does what the real one does; each such difference is a named entry in
``DEVIATIONS``, applied to a copy of the spec, and ``test_each_known_deviation_is_real``
proves every entry is still needed. Not covered because no response shows it: the real
NC accepts a PATCH body without every field (its own schema has ``PatchedAbonnement``),
the spec's ``requestBodies/Abonnement`` demands them all; NCClient never sends PATCH.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml  # type: ignore[import-untyped]
from flask import Response, request
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from test_localnc import CALLBACK_AUTH, SAMPLES, SECRET, Api, Callback, callback  # noqa: F401

from nc_receiver.exceptions import NCError
from nc_receiver.localnc import LocalNC
from nc_receiver.nc_client import NCClient

SPEC_FILE = Path(__file__).parent / "reference" / "notificaties-api-1.0.1-openapi.yaml"
OFFICIAL: dict[str, Any] = yaml.safe_load(SPEC_FILE.read_text())
# openapi-core 0.23 only parses application/json bodies by itself.
CONFIG = Config(extra_media_type_deserializers={"application/problem+json": json.loads})
Spec = dict[str, Any]


def _publish_answers_201(spec: Spec) -> None:
    """Open Notificaties answers a publish with 201 Created; the spec says 200."""
    responses = spec["paths"]["/notificaties"]["post"]["responses"]
    responses["201"] = responses.pop("200")


def _publish_refusals_are_problems(spec: Spec) -> None:
    """A refused publish is a 400 ValidatieFout (and 401/403 Fout); the spec lists only 200."""
    documented = spec["paths"]["/abonnement"]["post"]["responses"]
    responses = spec["paths"]["/notificaties"]["post"]["responses"]
    responses.update({code: documented[code] for code in ("400", "401", "403")})


def _auth_is_write_only(spec: Spec) -> None:
    """``auth`` is never returned (write-only); the spec makes it required in answers too."""
    spec["components"]["schemas"]["Abonnement"]["properties"]["auth"]["writeOnly"] = True


DEVIATIONS: dict[str, Callable[[Spec], None]] = {
    "publish-answers-201": _publish_answers_201,
    "publish-refusals-are-problems": _publish_refusals_are_problems,
    "auth-is-write-only": _auth_is_write_only,
}


def openapi(*, without: str | None = None) -> OpenAPI:
    """The official spec with every known deviation applied (but ``without``)."""
    spec = copy.deepcopy(OFFICIAL)
    for name, apply in DEVIATIONS.items():
        if name != without:
            apply(spec)
    return OpenAPI.from_dict(spec, config=CONFIG)


Exchange = tuple[WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse, str]


@pytest.fixture
def captured(callback: Callback) -> Iterator[tuple[LocalNC, list[Exchange]]]:  # noqa: F811
    """A local NC that records each request and response it served."""
    exchanges: list[Exchange] = []
    lock = threading.Lock()
    with LocalNC({"tester": SECRET}, retry_delays=(0.05,)) as nc:
        assert nc.app is not None

        @nc.app.after_request
        def record(response: Response) -> Response:
            current = request._get_current_object()  # type: ignore[attr-defined]  # outlives the context
            current.get_data()  # cached, so the adapter can read it afterwards
            label = f"{request.method} {request.path} -> {response.status_code}"
            with lock:
                exchanges.append(
                    (WerkzeugOpenAPIRequest(current), WerkzeugOpenAPIResponse(response), label)
                )
            return response

        yield nc, exchanges


def exercise(nc: LocalNC, callback: Callback) -> None:  # noqa: F811
    """Every operation of the API, with its usual answers and refusals."""
    api = Api(nc)
    kanaal = api.kanaal(filters=("bronorganisatie", "zaaktype", "vertrouwelijkheidaanduiding"))
    api("GET", "/kanaal", params={"naam": "zaken"})
    api("GET", kanaal["url"][len(nc.url) :])
    api("POST", "/kanaal", {"naam": "zaken"})  # 400 unique
    created = api.abonnement(callback, [{"naam": "zaken", "filters": {"bronorganisatie": "1"}}])
    path = created["url"][len(nc.url) :]
    api("GET", "/abonnement")
    api("GET", path)
    full = {"callbackUrl": callback.url, "auth": callback.auth, "kanalen": [{"naam": "zaken"}]}
    api("PUT", path, full)
    api("PATCH", path, full)
    api("POST", "/abonnement", {**full, "kanalen": [{"naam": "besluiten"}]})  # 400
    api.publish()
    api.publish(kanaal="besluiten")  # 400
    api("DELETE", path)
    api("DELETE", path)  # 404
    api("GET", path)  # 404
    requests.get(nc.url + "/abonnement", timeout=10)  # 401
    api("GET", "/abonnement", headers={"Authorization": "Bearer not-a-jwt"})  # 403
    assert nc.wait_for_deliveries()


def errors(spec: OpenAPI, exchanges: list[Exchange]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for openapi_request, openapi_response, label in exchanges:
        problems = spec.iter_response_errors(openapi_request, openapi_response)
        messages = [f"{type(e).__name__}: {e.__cause__ or e}"[:300] for e in problems]
        if messages:
            found[label] = messages
    return found


def test_the_local_nc_answers_as_the_spec_says_but_for_the_known_deviations(
    captured: tuple[LocalNC, list[Exchange]],
    callback: Callback,  # noqa: F811
) -> None:
    nc, exchanges = captured
    exercise(nc, callback)
    labels = [label.split(" -> ")[1] for *_, label in exchanges]
    assert sorted(set(labels)) == ["200", "201", "204", "400", "401", "403", "404"]
    assert errors(openapi(), exchanges) == {}


@pytest.mark.parametrize("deviation", list(DEVIATIONS), ids=list(DEVIATIONS))
def test_each_known_deviation_is_real(
    captured: tuple[LocalNC, list[Exchange]],
    callback: Callback,  # noqa: F811
    deviation: str,
) -> None:
    nc, exchanges = captured
    exercise(nc, callback)
    found = errors(openapi(without=deviation), exchanges)
    expected = {
        "publish-answers-201": ["POST /api/v1/notificaties -> 201"],
        "publish-refusals-are-problems": ["POST /api/v1/notificaties -> 400"],
        "auth-is-write-only": [
            "GET /api/v1/abonnement -> 200",
            "GET /api/v1/abonnement/{} -> 200",
            "PATCH /api/v1/abonnement/{} -> 200",
            "POST /api/v1/abonnement -> 201",
            "PUT /api/v1/abonnement/{} -> 200",
        ],
    }[deviation]
    assert sorted({_generic(label) for label in found}) == expected


def _generic(label: str) -> str:
    head, _, uuid_and_rest = label.partition("/abonnement/")
    return f"{head}/abonnement/{{}}{uuid_and_rest[36:]}" if uuid_and_rest else label


def test_nc_client_sends_what_the_spec_describes(
    captured: tuple[LocalNC, list[Exchange]],
    callback: Callback,  # noqa: F811
) -> None:
    nc, _ = captured
    official, observed = OpenAPI.from_dict(OFFICIAL, config=CONFIG), openapi()
    problems: list[str] = []
    calls: list[str] = []

    def check(response: requests.Response, **_: Any) -> None:
        sent = RequestsOpenAPIRequest(response.request)
        calls.append(f"{response.request.method} {sent.path}")
        # Requests must satisfy the official spec itself; answers the observed one.
        problems.extend(f"request {e}" for e in official.iter_request_errors(sent))
        answer = RequestsOpenAPIResponse(response)
        problems.extend(f"response {e}" for e in observed.iter_response_errors(sent, answer))

    session = requests.Session()
    session.hooks["response"].append(check)
    client = NCClient(nc.url, nc.client_id, nc.secret, session=session)
    client.create_kanaal("zaken", ["bronorganisatie", "zaaktype"], "https://docs.example.nl/zaken")
    client.create_kanaal("documenten")
    client.list_kanalen()
    client.get_kanaal("zaken")
    created = client.create_abonnement(
        callback.url, CALLBACK_AUTH, [{"naam": "zaken", "filters": {"bronorganisatie": "1"}}]
    )
    client.list_abonnementen()
    client.get_abonnement(created["url"])
    client.update_abonnement(created["url"], callback.url, CALLBACK_AUTH, [{"naam": "zaken"}])
    client.publish(json.loads((SAMPLES / "notificatie_publish_request.json").read_text()))
    with pytest.raises(NCError):
        client.create_abonnement(callback.url, CALLBACK_AUTH, [{"naam": "besluiten"}])
    client.delete_abonnement(created["url"])
    client.delete_abonnement(created["url"])
    session.close()
    assert problems == []
    assert len(calls) == 12
