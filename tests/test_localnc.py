"""The local NC behaves like Open Notificaties 1.16.1 on the wire (tests/samples/)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from nc_receiver.localnc import LocalNC
from nc_receiver.tokens import make_zgw_jwt

SAMPLES = Path(__file__).parent / "samples"
CALLBACK_AUTH = "Bearer callback-token-of-the-receiver"
FAST = (0.05, 0.05)
SECRET = "a-local-nc-test-secret-of-at-least-32-bytes"
ZAAKTYPE = "https://openzaak.example.nl/catalogi/api/v1/zaaktypen/0119dd4e"


@dataclass(frozen=True)
class Received:
    """One request the callback received, with the header names as sent on the wire."""

    headers: list[tuple[str, str]]
    body: bytes
    status: int

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class _RawHeaderHandler(WSGIRequestHandler):
    def make_environ(self) -> Any:
        environ = super().make_environ()
        environ["test.raw_headers"] = list(self.headers.items())
        return environ

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class Callback:
    """A receiver: 401 without auth, 403 with other auth, 204 (or ``answers``) with ``auth``.

    ``mode="always204"`` answers 204 to everything; ``answers`` is a list of statuses
    for successive authorized notifications (the probe always gets 204), then 204.
    """

    def __init__(self, auth: str = CALLBACK_AUTH, mode: str = "auth") -> None:
        self.auth = auth
        self.mode = mode
        self.answers: list[int] = []
        self.received: list[Received] = []
        self._cond = threading.Condition()
        self._server = make_server(
            "127.0.0.1", 0, self._app, threaded=True, request_handler=_RawHeaderHandler
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}/callback"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def _app(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        body = request.get_data()
        auth = request.headers.get("Authorization")
        if self.mode == "always204":
            status = 204
        elif auth is None:
            status = 401
        elif auth != self.auth:
            status = 403
        elif b'"kanaal": "test"' in body or not self.answers:
            status = 204
        else:
            status = self.answers.pop(0)
        with self._cond:
            self.received.append(Received(environ["test.raw_headers"], body, status))
            self._cond.notify_all()
        return Response(status=status)(environ, start_response)

    @property
    def notifications(self) -> list[Received]:
        """What arrived apart from the subscription probes."""
        return [r for r in self.received if b'"kanaal": "test"' not in r.body]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.notifications) >= count, timeout)
        return self.notifications

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def callback() -> Iterator[Callback]:
    server = Callback()
    yield server
    server.close()


@pytest.fixture
def nc() -> Iterator[LocalNC]:
    with LocalNC({"tester": SECRET}, retry_delays=FAST) as local_nc:
        yield local_nc


class Api:
    """Raw HTTP against the local NC, as its default client."""

    def __init__(self, nc: LocalNC) -> None:
        self.nc = nc

    def __call__(self, method: str, path: str, body: Any = None, **kw: Any) -> requests.Response:
        headers = {"Authorization": "Bearer " + make_zgw_jwt(self.nc.client_id, self.nc.secret)}
        headers.update(kw.pop("headers", {}))
        return requests.request(
            method, self.nc.url + path, json=body, headers=headers, timeout=10, **kw
        )

    def kanaal(
        self, naam: str = "zaken", filters: tuple[str, ...] = ("bronorganisatie", "zaaktype")
    ) -> Any:
        response = self("POST", "/kanaal", {"naam": naam, "filters": list(filters)})
        assert response.status_code == 201, response.text
        return response.json()

    def abonnement(self, callback: Callback, kanalen: list[dict[str, Any]] | None = None) -> Any:
        kanalen = [{"naam": "zaken", "filters": {}}] if kanalen is None else kanalen
        body = {"callbackUrl": callback.url, "auth": callback.auth, "kanalen": kanalen}
        response = self("POST", "/abonnement", body)
        assert response.status_code == 201, response.text
        return response.json()

    def publish(self, **changes: Any) -> requests.Response:
        message = json.loads((SAMPLES / "notificatie_publish_request.json").read_text())
        message.update(changes)
        return self("POST", "/notificaties", message)


@pytest.fixture
def api(nc: LocalNC) -> Api:
    return Api(nc)


def probe_body() -> bytes:
    raw = (SAMPLES / "raw_wire_requests.txt").read_bytes()
    head, rest = raw.split(b"\r\n\r\n", 1)  # request 1
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    return rest[:length]


def invalid_params(response: requests.Response) -> list[dict[str, str]]:
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    params: list[dict[str, str]] = response.json()["invalidParams"]
    return params


# -- API basics --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/kanaal", 200),
        ("GET", "/abonnement", 200),
        ("GET", "/abonnement/00000000-0000-4000-8000-000000000000", 404),
        ("DELETE", "/abonnement/00000000-0000-4000-8000-000000000000", 404),
        ("POST", "/notificaties", 400),
    ],
    ids=["kanaal-list", "abonnement-list", "abonnement-404", "delete-404", "publish-400"],
)
def test_every_response_carries_the_api_version(
    api: Api, method: str, path: str, status: int
) -> None:
    response = api(method, path, {} if method == "POST" else None)
    assert response.status_code == status
    assert response.headers["API-version"] == "1.0.1"


def test_an_unknown_uuid_is_a_zgw_problem(api: Api) -> None:
    response = api("GET", "/abonnement/00000000-0000-4000-8000-000000000000")
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert {k: problem[k] for k in ("code", "title", "status")} == {
        "code": "not_found",
        "title": "Niet gevonden.",
        "status": 404,
    }
    assert problem["type"].endswith("/ref/fouten/NotFound/")
    assert problem["instance"].startswith("urn:uuid:")


@pytest.mark.parametrize(
    ("authorization", "status", "code"),
    [
        (None, 401, "not_authenticated"),
        ("Token abc", 401, "not_authenticated"),
        ("Bearer not-a-jwt", 403, "permission_denied"),
        (
            "Bearer " + make_zgw_jwt("tester", "another-secret-that-is-32-bytes-long"),
            403,
            "permission_denied",
        ),
        ("Bearer " + make_zgw_jwt("stranger", SECRET), 403, "permission_denied"),
        (
            "Bearer " + make_zgw_jwt("tester", SECRET, issued_at=time.time() - 7200),
            403,
            "permission_denied",
        ),
    ],
    ids=["missing", "not-bearer", "garbage", "wrong-secret", "unknown-client", "two-hours-old"],
)
def test_the_api_demands_a_zgw_jwt_of_a_known_client(
    nc: LocalNC, authorization: str | None, status: int, code: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = requests.get(nc.url + "/kanaal", headers=headers, timeout=10)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert response.headers["API-version"] == "1.0.1"


def test_a_token_with_a_minute_of_clock_skew_is_accepted(api: Api) -> None:
    token = make_zgw_jwt("tester", SECRET, issued_at=time.time() + 30)
    assert api("GET", "/kanaal", headers={"Authorization": f"Bearer {token}"}).status_code == 200


# -- kanalen -----------------------------------------------------------------------------


def test_kanaal_create_answers_like_open_notificaties(api: Api) -> None:
    created = api.kanaal(filters=("bronorganisatie", "zaaktype", "vertrouwelijkheidaanduiding"))
    sample = json.loads((SAMPLES / "kanaal_create_response.txt").read_text().splitlines()[0])
    assert created.keys() == sample.keys()
    assert {k: created[k] for k in ("naam", "documentatieLink", "filters")} == {
        k: sample[k] for k in ("naam", "documentatieLink", "filters")
    }
    assert created["url"].startswith(api.nc.url + "/kanaal/")
    assert api("GET", created["url"][len(api.nc.url) :]).json() == created


def test_kanaal_list_filters_on_naam(api: Api) -> None:
    zaken, documenten = api.kanaal("zaken"), api.kanaal("documenten")
    assert api("GET", "/kanaal").json() == [zaken, documenten]
    assert api("GET", "/kanaal", params={"naam": "documenten"}).json() == [documenten]
    assert api("GET", "/kanaal", params={"naam": "besluiten"}).json() == []


def test_a_kanaal_naam_is_unique(api: Api) -> None:
    api.kanaal("zaken")
    assert invalid_params(api("POST", "/kanaal", {"naam": "zaken"})) == [
        {"name": "naam", "code": "unique", "reason": "Kanaal met deze Naam bestaat al."}
    ]


# -- abonnementen: the probe -------------------------------------------------------------


def test_subscribing_probes_without_then_with_authorization(api: Api, callback: Callback) -> None:
    api.kanaal()
    created = api.abonnement(callback)
    first, second = callback.received
    assert first.body == second.body == probe_body()
    assert first.header("Authorization") is None and first.status == 401
    assert ("AUTHORIZATION", CALLBACK_AUTH) in second.headers and second.status == 204
    assert first.header("Content-Type") == "application/json"
    sample = json.loads((SAMPLES / "abonnement_create_response.txt").read_text().splitlines()[0])
    assert created.keys() == sample.keys()
    assert created["callbackUrl"] == callback.url
    assert created["kanalen"] == [{"filters": {}, "naam": "zaken"}]


def test_a_receiver_answering_204_to_everything_cannot_subscribe(api: Api) -> None:
    api.kanaal()
    always204 = Callback(mode="always204")
    try:
        body = {"callbackUrl": always204.url, "auth": "Bearer x", "kanalen": [{"naam": "zaken"}]}
        response = api("POST", "/abonnement", body)
        sample = json.loads(
            (SAMPLES / "abonnement_create_response_receiver_always204.txt")
            .read_text()
            .splitlines()[0]
        )
        assert invalid_params(response) == sample["invalidParams"]
        assert {k: response.json()[k] for k in ("code", "title", "status", "detail")} == {
            k: sample[k] for k in ("code", "title", "status", "detail")
        }
        assert len(always204.received) == 1  # refused after the unauthenticated probe
    finally:
        always204.close()
    assert api("GET", "/abonnement").json() == []


@pytest.mark.parametrize(
    "auth",
    ["Bearer the-wrong-token", "bearer callback-token-of-the-receiver"],
    ids=["wrong", "case"],
)
def test_an_auth_value_the_receiver_refuses_fails_the_probe(
    api: Api, callback: Callback, auth: str
) -> None:
    api.kanaal()
    response = api(
        "POST", "/abonnement", {"callbackUrl": callback.url, "auth": auth, "kanalen": []}
    )
    assert invalid_params(response) == [
        {
            "name": "callbackUrl",
            "code": "invalid-callback-url",
            "reason": "De opgegeven callback URL kan geen notificaties ontvangen.",
        }
    ]


def test_an_unreachable_callback_fails_the_probe(api: Api) -> None:
    body = {"callbackUrl": "http://127.0.0.1:9/callback", "auth": "Bearer x", "kanalen": []}
    assert invalid_params(api("POST", "/abonnement", body))[0]["code"] == "invalid-callback-url"


# -- abonnementen: validation ------------------------------------------------------------


def test_an_unknown_kanaal_is_refused(api: Api, callback: Callback) -> None:
    body = {"callbackUrl": callback.url, "auth": callback.auth, "kanalen": [{"naam": "zaken"}]}
    assert invalid_params(api("POST", "/abonnement", body)) == [
        {"name": "naam", "code": "kanaal_naam", "reason": "Kanaal met deze naam bestaat niet."}
    ]


@pytest.mark.parametrize(
    ("filters", "accepted"),
    [
        ({}, True),
        ({"bronorganisatie": "1"}, True),
        ({"bronorganisatie": "1", "zaaktype": "*"}, True),
        ({"bronorganisatie": "1", "zaaktype": "x", "extra": "y"}, True),
        ({"extra": "y"}, False),
        ({"bronorganisatie": "1", "extra": "y"}, False),
    ],
    ids=["none", "subset", "equal", "superset", "disjoint", "overlapping"],
)
def test_filter_keys_must_be_a_subset_or_superset_of_the_kanaals(
    api: Api, callback: Callback, filters: dict[str, str], accepted: bool
) -> None:
    api.kanaal()
    body = {
        "callbackUrl": callback.url,
        "auth": callback.auth,
        "kanalen": [{"naam": "zaken", "filters": filters}],
    }
    response = api("POST", "/abonnement", body)
    if accepted:
        assert response.status_code == 201, response.text
    else:
        assert invalid_params(response) == [
            {
                "name": "filters",
                "code": "inconsistent-abonnement-filters",
                "reason": "abonnement filters aren't consistent with kanaal filters",
            }
        ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"callbackUrl": "http://x.nl/" + "a" * 189}, ("callbackUrl", "max_length")),
        ({"auth": "Bearer " + "a" * 994}, ("auth", "max_length")),
        ({"callbackUrl": None}, ("callbackUrl", "required")),
        ({"auth": None}, ("auth", "required")),
        ({"callbackUrl": "not a url"}, ("callbackUrl", "invalid")),
        ({"kanalen": [{"filters": {}}]}, ("kanalen.0.naam", "required")),
    ],
    ids=["callback-201-chars", "auth-1001-chars", "no-callback", "no-auth", "bad-url", "no-naam"],
)
def test_abonnement_fields_are_validated_like_open_notificaties(
    api: Api, callback: Callback, change: dict[str, Any], expected: tuple[str, str]
) -> None:
    body = {"callbackUrl": callback.url, "auth": callback.auth, "kanalen": []}
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    assert [(p["name"], p["code"]) for p in invalid_params(api("POST", "/abonnement", body))] == [
        expected
    ]
    assert callback.received == []  # fields are checked before the callback is probed


def test_limits_are_inclusive(api: Api, callback: Callback) -> None:
    api.kanaal()
    url = callback.url + "?" + "a" * (200 - len(callback.url) - 1)
    callback.auth = "Bearer " + "a" * 993
    body = {"callbackUrl": url, "auth": callback.auth, "kanalen": [{"naam": "zaken"}]}
    assert api("POST", "/abonnement", body).status_code == 201


def test_callback_urls_are_not_unique(api: Api, callback: Callback) -> None:
    api.kanaal()
    first, second = api.abonnement(callback), api.abonnement(callback)
    assert first["url"] != second["url"]
    assert api("GET", "/abonnement").json() == [first, second]
    assert api.publish().status_code == 201
    assert len(callback.wait_for(2)) == 2  # once per abonnement


def test_the_list_holds_every_clients_abonnementen_and_never_auth(
    callback: Callback,
) -> None:
    with LocalNC({"one": SECRET, "two": SECRET[::-1]}) as nc:
        api = Api(nc)
        api.kanaal()
        made = [api.abonnement(callback) for _ in range(3)]
        token = make_zgw_jwt("two", SECRET[::-1])
        listed = requests.get(
            nc.url + "/abonnement", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
    assert listed.json() == made
    assert "auth" not in listed.text and callback.auth not in listed.text


# -- abonnementen: PUT, PATCH, DELETE ----------------------------------------------------


def test_put_replaces_the_abonnement_and_probes_again(api: Api, callback: Callback) -> None:
    api.kanaal()
    created = api.abonnement(callback, [{"naam": "zaken", "filters": {"bronorganisatie": "1"}}])
    path = created["url"][len(api.nc.url) :]
    body = {
        "callbackUrl": callback.url,
        "auth": callback.auth,
        "kanalen": [{"naam": "zaken", "filters": {"zaaktype": "z"}}],
    }
    response = api("PUT", path, body)
    assert response.status_code == 200
    assert response.json()["kanalen"] == [{"filters": {"zaaktype": "z"}, "naam": "zaken"}]
    assert api("GET", path).json() == response.json()
    assert len(callback.received) == 4


def test_patch_without_kanalen_deletes_every_filter_group(api: Api, callback: Callback) -> None:
    api.kanaal()
    created = api.abonnement(callback, [{"naam": "zaken", "filters": {"bronorganisatie": "1"}}])
    response = api("PATCH", created["url"][len(api.nc.url) :], {"auth": callback.auth})
    assert response.status_code == 200
    assert response.json()["kanalen"] == []  # the real pitfall: nothing is delivered any more
    assert api.publish().status_code == 201
    assert api.nc.wait_for_deliveries()
    assert callback.notifications == []


def test_patch_without_auth_probes_unauthenticated_and_fails(api: Api, callback: Callback) -> None:
    api.kanaal()
    created = api.abonnement(callback)
    response = api("PATCH", created["url"][len(api.nc.url) :], {"kanalen": [{"naam": "zaken"}]})
    assert invalid_params(response)[0]["code"] == "invalid-callback-url"
    assert [r.header("Authorization") for r in callback.received[2:]] == [None, None]


def test_delete_answers_204_then_404(api: Api, callback: Callback) -> None:
    api.kanaal()
    path = api.abonnement(callback)["url"][len(api.nc.url) :]
    assert api("DELETE", path).status_code == 204
    assert api("DELETE", path).status_code == 404
    assert api("GET", "/abonnement").json() == []


# -- publishing and delivery -------------------------------------------------------------


def test_publish_answers_201_with_the_message(api: Api, callback: Callback) -> None:
    api.kanaal(filters=("bronorganisatie", "zaaktype", "vertrouwelijkheidaanduiding"))
    api.abonnement(callback, [{"naam": "zaken", "filters": {"bronorganisatie": "224557609"}}])
    response = api.publish()
    status_line = (SAMPLES / "notificatie_publish_response.txt").read_text().splitlines()
    assert response.status_code == int(status_line[1].split()[1]) == 201
    assert response.json() == json.loads(status_line[0])
    (delivery,) = callback.wait_for(1)
    sample = json.loads((SAMPLES / "delivery_body.json").read_text())
    assert delivery.json == sample
    assert list(delivery.json) == list(sample)  # the NC's own key order


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"kanaal": "besluiten"}, [("kanaal", "message_kanaal")]),
        ({"kenmerken": {"iets": "anders"}}, [("kenmerken", "kenmerken_inconsistent")]),
        ({"aanmaakdatum": "gisteren"}, [("aanmaakdatum", "invalid")]),
        (
            {"resourceUrl": None, "actie": None},
            [("resourceUrl", "required"), ("actie", "required")],
        ),
    ],
    ids=["unknown-kanaal", "inconsistent-kenmerken", "bad-date", "missing"],
)
def test_publish_validates_the_message(
    api: Api, change: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    api.kanaal(filters=("bronorganisatie", "zaaktype", "vertrouwelijkheidaanduiding"))
    response = api.publish(**change)
    assert [(p["name"], p["code"]) for p in invalid_params(response)] == expected


def test_publish_accepts_what_real_producers_send(api: Api, callback: Callback) -> None:
    api.kanaal()
    api.abonnement(callback)
    response = api.publish(
        kenmerken={"bronorganisatie": ""},
        hoofdObject="http://openzaak:8000/zaken/1",
        aanmaakdatum="2026-12-03T17:41:54.123456+01:00",
        extra="ignored",
    )
    assert response.status_code == 201, response.text
    (delivery,) = callback.wait_for(1)
    assert delivery.json["aanmaakdatum"] == "2026-12-03T16:41:54.123Z"
    assert delivery.json["kenmerken"] == {"bronorganisatie": ""}
    assert "extra" not in delivery.json


KENMERKEN = {"bronorganisatie": "224557609", "zaaktype": ZAAKTYPE}


@pytest.mark.parametrize(
    ("groups", "kenmerken", "delivered"),
    [
        ([{"bronorganisatie": "224557609"}], KENMERKEN, True),
        ([{"bronorganisatie": "999999999"}], KENMERKEN, False),
        ([{"zaaktype": ZAAKTYPE.upper()}], KENMERKEN, False),
        ([{"bronorganisatie": "*", "zaaktype": "*"}], KENMERKEN, True),
        ([{"bronorganisatie": "224557609"}], {"zaaktype": ZAAKTYPE}, True),
        ([{"bronorganisatie": "1"}, {"zaaktype": ZAAKTYPE}], KENMERKEN, True),
        ([{"bronorganisatie": "1"}, {"zaaktype": "2"}], KENMERKEN, False),
        ([{}], {}, True),
    ],
    ids=[
        "equal",
        "different",
        "case-sensitive",
        "wildcard",
        "missing-key-passes",
        "any-group",
        "no-group",
        "no-filters",
    ],
)
def test_filter_matching(
    api: Api,
    callback: Callback,
    groups: list[dict[str, str]],
    kenmerken: dict[str, str],
    delivered: bool,
) -> None:
    api.kanaal()
    api.abonnement(callback, [{"naam": "zaken", "filters": f} for f in groups])
    assert api.publish(kenmerken=kenmerken).status_code == 201
    assert api.nc.wait_for_deliveries()
    assert len(callback.notifications) == int(delivered)


def test_only_abonnementen_on_the_kanaal_get_the_message(api: Api, callback: Callback) -> None:
    api.kanaal("zaken")
    api.kanaal("documenten")
    api.abonnement(callback, [{"naam": "documenten"}])
    assert api.publish().status_code == 201
    assert api.nc.wait_for_deliveries()
    assert callback.notifications == []


@pytest.mark.parametrize("sent_key", ["object_type", "objectType"], ids=["snake", "camel"])
def test_kenmerk_keys_are_camelcased_and_filters_match_either_form(
    api: Api, callback: Callback, sent_key: str
) -> None:
    api.kanaal(filters=("object_type",))
    created = api.abonnement(callback, [{"naam": "zaken", "filters": {"object_type": "o"}}])
    assert created["kanalen"][0]["filters"] == {"objectType": "o"}
    response = api.publish(kenmerken={sent_key: "o"})
    assert response.json()["kenmerken"] == {"objectType": "o"}
    (delivery,) = callback.wait_for(1)
    assert delivery.json["kenmerken"] == {"objectType": "o"}


def test_a_delivery_is_the_json_dumps_body_with_auth_verbatim(api: Api, callback: Callback) -> None:
    api.kanaal()
    api.abonnement(callback)
    api.publish(resource="zaakobject", kenmerken={"bronorganisatie": "Één"})
    (delivery,) = callback.wait_for(1)
    assert delivery.header("Content-Type") == "application/json"
    assert delivery.header("Authorization") == CALLBACK_AUTH
    assert b'"bronorganisatie": "\\u00c9\\u00e9n"' in delivery.body
    assert delivery.body == json.dumps(delivery.json).encode()


def test_a_failing_callback_is_retried_until_it_answers_2xx(api: Api, callback: Callback) -> None:
    api.kanaal()
    created = api.abonnement(callback)
    callback.answers = [500, 500]
    api.publish()
    assert api.nc.wait_for_deliveries()
    assert [r.status for r in callback.notifications] == [500, 500, 204]
    attempts = api.nc.deliveries
    assert [(a.attempt, a.status, a.ok) for a in attempts] == [
        (1, 500, False),
        (2, 500, False),
        (3, 204, True),
    ]
    assert {(a.abonnement, a.url) for a in attempts} == {(created["url"][-36:], callback.url)}
    assert attempts[1].time - attempts[0].time >= timedelta(seconds=0.05)


def test_after_the_schedule_the_notification_is_dropped(api: Api, callback: Callback) -> None:
    api.kanaal()
    api.abonnement(callback)
    callback.answers = [500, 400, 503, 204]
    api.publish()
    assert api.nc.wait_for_deliveries()
    assert [r.status for r in callback.notifications] == [500, 400, 503]  # 1 + len(FAST)


def test_a_callback_that_is_down_is_retried(api: Api) -> None:
    api.kanaal()
    down = Callback()
    api.abonnement(down)
    down.close()
    api.publish()
    assert api.nc.wait_for_deliveries()
    attempts = api.nc.deliveries
    assert [a.status for a in attempts] == [None, None, None]
    assert all(a.error and a.error.startswith("ConnectionError") for a in attempts)


def test_deliveries_run_in_parallel(callback: Callback) -> None:
    slow_started = threading.Event()
    release = threading.Event()

    def slow(environ: Any, start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        if request.headers.get("Authorization") is None:
            return Response(status=401)(environ, start_response)
        if b'"kanaal": "test"' not in request.get_data():  # the probe is answered at once
            slow_started.set()
            release.wait(5)
        return Response(status=204)(environ, start_response)

    server = make_server("127.0.0.1", 0, slow, threaded=True, request_handler=_RawHeaderHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        with LocalNC({"tester": SECRET}, retry_delays=FAST) as nc:
            api = Api(nc)
            api.kanaal()
            body = {
                "callbackUrl": f"http://127.0.0.1:{server.server_port}/slow",
                "auth": "x",
                "kanalen": [{"naam": "zaken"}],
            }
            assert api("POST", "/abonnement", body).status_code == 201
            api.abonnement(callback)
            api.publish()
            assert slow_started.wait(5)
            assert len(callback.wait_for(1)) == 1  # not stuck behind the slow receiver
            release.set()
            assert nc.wait_for_deliveries()
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_the_delivery_log_is_served_for_debugging(api: Api, callback: Callback) -> None:
    api.kanaal()
    api.abonnement(callback)
    api.publish()
    assert api.nc.wait_for_deliveries()
    (entry,) = requests.get(api.nc.url.replace("/api/v1", "/_local/deliveries"), timeout=10).json()
    assert (entry["url"], entry["status"], entry["ok"], entry["attempt"]) == (
        callback.url,
        204,
        True,
        1,
    )


# -- running it --------------------------------------------------------------------------


def test_kanalen_and_abonnementen_survive_a_restart_with_a_db_file(
    tmp_path: Path, callback: Callback
) -> None:
    db = str(tmp_path / "nc.sqlite3")
    with LocalNC({"tester": SECRET}, db_path=db) as nc:
        api = Api(nc)
        api.kanaal()
        created = api.abonnement(callback)
    with LocalNC({"tester": SECRET}, db_path=db, retry_delays=FAST) as nc:
        api = Api(nc)
        listed = api("GET", "/abonnement").json()
        assert [a["url"][-36:] for a in listed] == [created["url"][-36:]]
        api.publish()
        assert callback.wait_for(1)[0].header("Authorization") == CALLBACK_AUTH


def test_stop_leaves_no_threads_behind(callback: Callback) -> None:
    before = set(threading.enumerate())
    nc = LocalNC(retry_delays=(30.0,))
    nc.start()
    api = requests.Session()
    token = make_zgw_jwt(nc.client_id, nc.secret)
    api.headers["Authorization"] = f"Bearer {token}"
    api.post(nc.url + "/kanaal", json={"naam": "zaken"}, timeout=10)
    body = {"callbackUrl": callback.url, "auth": callback.auth, "kanalen": [{"naam": "zaken"}]}
    api.post(nc.url + "/abonnement", json=body, timeout=10)
    callback.answers = [500]
    message = json.loads((SAMPLES / "notificatie_publish_request.json").read_text())
    api.post(nc.url + "/notificaties", json=message, timeout=10)
    callback.wait_for(1)  # the retry now waits 30 s
    started = time.monotonic()
    nc.stop()
    nc.stop()
    api.close()
    assert time.monotonic() - started < 5
    leftover = [t for t in set(threading.enumerate()) - before if t.name.startswith("localnc")]
    assert leftover == []
    with pytest.raises(RuntimeError, match=r"^The local NC is not running; call start\(\)"):
        _ = nc.url


def test_python_m_localnc_prints_where_it_listens_and_the_credentials() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nc_receiver.localnc",
            "--port",
            "0",
            "--client",
            "app:" + SECRET,
            "--retry-delays",
            "0.1,0.2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        listening = process.stdout.readline().strip()
        credentials = process.stdout.readline().strip()
        assert listening.startswith("Local NC listening on http://127.0.0.1:")
        assert credentials == f"client_id=app secret={SECRET}"
        url = listening.rsplit(" ", 1)[1]
        token = make_zgw_jwt("app", SECRET)
        response = requests.get(
            url + "/kanaal", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert response.json() == []
    finally:
        process.terminate()
        process.wait(10)
        assert process.stdout is not None
        process.stdout.close()


def test_python_m_localnc_registers_kanalen_given_on_the_command_line() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "nc_receiver.localnc", "--port", "0", "--client",
         "app:" + SECRET, "--kanaal", "zaken:bronorganisatie,zaaktype", "--kanaal", "besluiten"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip().rsplit(" ", 1)[1]
        lines = [process.stdout.readline().strip() for _ in range(3)]
        assert lines[1:] == ["kanaal zaken (filters: bronorganisatie, zaaktype)",
                             "kanaal besluiten (filters: none)"]
        token = make_zgw_jwt("app", SECRET)
        kanalen = requests.get(url + "/kanaal", headers={"Authorization": f"Bearer {token}"},
                               timeout=10).json()
        assert {k["naam"]: k["filters"] for k in kanalen} == {
            "zaken": ["bronorganisatie", "zaaktype"], "besluiten": []}
    finally:
        process.terminate()
        process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()
