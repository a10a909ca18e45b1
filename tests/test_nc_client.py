"""NCClient against the local NC and against misbehaving servers, over real HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import jwt
import pytest
import requests
from test_localnc import CALLBACK_AUTH, SECRET, Callback, callback, nc  # noqa: F401
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from nc_receiver.exceptions import NCError, NCUnavailable
from nc_receiver.localnc import LocalNC
from nc_receiver.nc_client import NCClient, uuid_from_url
from nc_receiver.notification import Notification

UUID = "9049471c-0811-4c44-a38b-7078f8980567"
KANAAL_FILTERS = ("bronorganisatie", "zaaktype")
MESSAGE = {
    "kanaal": "zaken",
    "hoofdObject": "https://openzaak.example.nl/zaken/api/v1/zaken/1",
    "resource": "zaak",
    "resourceUrl": "https://openzaak.example.nl/zaken/api/v1/zaken/1",
    "actie": "create",
    "aanmaakdatum": "2026-12-03T16:41:54Z",
    "kenmerken": {"bronorganisatie": "224557609"},
}


@pytest.fixture
def client(nc: LocalNC) -> NCClient:  # noqa: F811
    return NCClient(nc.url, nc.client_id, nc.secret, backoff=0.01)


@pytest.fixture
def zaken(client: NCClient) -> dict[str, Any]:
    return client.create_kanaal("zaken", KANAAL_FILTERS)


class Flaky:
    """A server answering ``statuses`` in turn (then 200 ``[]``), counting requests."""

    def __init__(self, statuses: list[int], delay: float = 0.0, body: bytes = b"[]") -> None:
        self.statuses = statuses
        self.delay = delay
        self.body = body
        self.requests: list[Request] = []
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}/api/v1"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def _app(self, environ: Any, start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        request.get_data()
        self.requests.append(request)
        time.sleep(self.delay)
        status = self.statuses.pop(0) if self.statuses else 200
        response = Response(self.body, status, content_type="application/json")
        return response(environ, start_response)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def flaky() -> Iterator[Callable[..., Flaky]]:
    servers: list[Flaky] = []

    def make(statuses: list[int], **kwargs: Any) -> Flaky:
        servers.append(Flaky(statuses, **kwargs))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"http://nc/api/v1/abonnement/{UUID}", UUID),
        (f"http://nc/api/v1/abonnement/{UUID}/", UUID),
        (UUID, UUID),
        (UUID.upper(), UUID),
    ],
    ids=["url", "trailing-slash", "bare", "upper-case"],
)
def test_uuid_from_url(value: str, expected: str) -> None:
    assert uuid_from_url(value) == expected


def test_uuid_from_url_refuses_what_is_not_a_resource_url() -> None:
    with pytest.raises(ValueError) as info:
        uuid_from_url("http://nc/api/v1/abonnement")
    assert str(info.value) == (
        "'http://nc/api/v1/abonnement' does not end with a UUID; pass an NC resource URL"
    )


def test_every_call_carries_a_fresh_zgw_jwt(nc: LocalNC) -> None:  # noqa: F811
    session = requests.Session()
    sent: list[str] = []
    session.hooks["response"].append(lambda r, **_: sent.append(r.request.headers["Authorization"]))
    client = NCClient(nc.url, nc.client_id, nc.secret, session=session)
    client.list_kanalen()
    client.list_abonnementen()
    assert len(sent) == 2
    for header in sent:
        scheme, token = header.split(" ")
        claims = jwt.decode(token, nc.secret, algorithms=["HS256"])
        assert scheme == "Bearer"
        assert claims["client_id"] == claims["iss"] == nc.client_id
        assert abs(claims["iat"] - time.time()) < 5
    session.close()


def test_kanalen(client: NCClient, zaken: dict[str, Any]) -> None:
    assert zaken["naam"] == "zaken" and zaken["filters"] == list(KANAAL_FILTERS)
    assert client.list_kanalen() == [zaken]
    assert client.list_kanalen("zaken") == [zaken]
    assert client.list_kanalen("besluiten") == []
    assert client.get_kanaal("zaken") == zaken
    assert client.get_kanaal("besluiten") is None
    linked = client.create_kanaal("documenten", documentatie_link="https://docs.example.nl/")
    assert (linked["documentatieLink"], linked["filters"]) == ("https://docs.example.nl/", [])


def test_an_abonnements_life(client: NCClient, zaken: dict[str, Any], callback: Callback) -> None:  # noqa: F811
    kanalen = [{"naam": "zaken", "filters": {"bronorganisatie": "224557609"}}]
    created = client.create_abonnement(callback.url, CALLBACK_AUTH, kanalen)
    assert created["callbackUrl"] == callback.url and created["kanalen"] == kanalen
    assert "auth" not in created
    assert client.list_abonnementen() == [created]
    assert client.get_abonnement(created["url"]) == client.get_abonnement(created["url"][-36:])
    changed = [{"naam": "zaken", "filters": {"zaaktype": "*"}}]
    updated = client.update_abonnement(created["url"], callback.url, CALLBACK_AUTH, changed)
    assert updated["url"] == created["url"] and updated["kanalen"] == changed
    assert len(callback.received) == 4  # POST and PUT both ran the probe
    client.delete_abonnement(created["url"])
    client.delete_abonnement(created["url"])  # already gone is fine
    assert client.list_abonnementen() == []
    with pytest.raises(NCError) as info:
        client.get_abonnement(created["url"])
    assert info.value.status == 404 and info.value.code == "not_found"


@pytest.mark.parametrize(
    "notification",
    [
        MESSAGE,
        Notification(
            kanaal="zaken",
            hoofd_object=str(MESSAGE["hoofdObject"]),
            resource="zaak",
            resource_url=str(MESSAGE["resourceUrl"]),
            actie="create",
            aanmaakdatum=datetime(2026, 12, 3, 16, 41, 54, tzinfo=timezone.utc),
            kenmerken={"bronorganisatie": "224557609"},
        ),
    ],
    ids=["dict", "Notification"],
)
def test_publish(
    client: NCClient,
    zaken: dict[str, Any],
    callback: Callback,  # noqa: F811
    nc: LocalNC,  # noqa: F811
    notification: dict[str, Any] | Notification,
) -> None:
    client.create_abonnement(callback.url, CALLBACK_AUTH, [{"naam": "zaken"}])
    assert client.publish(notification) == MESSAGE
    (delivery,) = callback.wait_for(1)
    assert delivery.json == MESSAGE


def test_unknown_kanaal(client: NCClient, callback: Callback) -> None:  # noqa: F811
    with pytest.raises(NCError) as info:
        client.create_abonnement(callback.url, CALLBACK_AUTH, [{"naam": "zaken", "filters": {}}])
    assert str(info.value) == (
        "the publisher has not registered kanaal 'zaken' yet at the NC; have the publisher "
        "register it (POST /kanaal) or correct the name, then retry"
    )
    assert (info.value.status, info.value.code) == (400, "kanaal_naam")
    assert info.value.problem["invalidParams"][0]["name"] == "naam"


def test_publishing_on_an_unknown_kanaal(client: NCClient) -> None:
    with pytest.raises(NCError) as info:
        client.publish({**MESSAGE, "kanaal": "besluiten"})
    assert str(info.value).startswith("the publisher has not registered kanaal 'besluiten' yet")
    assert info.value.code == "message_kanaal"


def test_a_receiver_that_answers_unauthenticated_requests(client: NCClient, zaken: Any) -> None:
    always204 = Callback(mode="always204")
    try:
        with pytest.raises(NCError) as info:
            client.create_abonnement(always204.url, "Bearer x", [{"naam": "zaken"}])
    finally:
        always204.close()
    assert str(info.value) == (
        "the NC called the callback without authorization and got a 2xx; the receiver must "
        "answer 401/403 to unauthenticated requests"
    )
    assert (info.value.status, info.value.code) == (400, "no-auth-on-callback-url")


def test_an_auth_value_the_receiver_refuses(
    client: NCClient,
    zaken: Any,
    callback: Callback,  # noqa: F811
) -> None:
    with pytest.raises(NCError) as info:
        client.create_abonnement(callback.url, "Bearer wrong", [{"naam": "zaken"}])
    assert str(info.value) == (
        f"the NC's authorized probe of {callback.url} did not get a 2xx (204): check "
        "NC_RECEIVER_CALLBACK_URL is reachable from the NC and that the auth value is accepted"
    )
    assert info.value.code == "invalid-callback-url"


def test_inconsistent_filters(client: NCClient, zaken: Any, callback: Callback) -> None:  # noqa: F811
    with pytest.raises(NCError) as info:
        client.create_abonnement(
            callback.url, CALLBACK_AUTH, [{"naam": "zaken", "filters": {"zaak_type": "x"}}]
        )
    assert str(info.value) == (
        "filter keys must be a subset or superset of the kanaal's filters "
        "['bronorganisatie', 'zaaktype']: kanaal 'zaken' got ['zaak_type']"
    )
    assert info.value.code == "inconsistent-abonnement-filters"


@pytest.mark.parametrize(
    ("client_id", "status"),
    [("stranger", 403), ("", 403)],
    ids=["unknown-client", "empty-client-id"],
)
def test_refused_credentials(nc: LocalNC, client_id: str, status: int) -> None:  # noqa: F811
    client = NCClient(nc.url, client_id, nc.secret)
    with pytest.raises(NCError) as info:
        client.create_kanaal("zaken")
    assert str(info.value) == (
        f"the NC refused client_id {client_id!r} (HTTP {status}): check client_id/secret and "
        "that the NC grants this client the scope notificaties.publiceren"
    )
    assert info.value.status == status and not isinstance(info.value, NCUnavailable)


def test_a_401_names_the_scope_of_the_call(flaky: Callable[..., Flaky]) -> None:
    server = flaky([401], body=b'{"code": "not_authenticated", "detail": "no"}')
    with pytest.raises(NCError) as info:
        NCClient(server.url, "app", SECRET).create_abonnement("http://r/cb", "x", [])
    assert str(info.value) == (
        "the NC refused client_id 'app' (HTTP 401): check client_id/secret and that the NC "
        "grants this client the scope notificaties.consumeren"
    )
    assert info.value.code == "not_authenticated"


def test_other_refusals_list_the_invalid_params(client: NCClient) -> None:
    with pytest.raises(NCError) as info:
        client.create_abonnement("not a url", "x" * 1001, [])
    assert str(info.value) == (
        f"the NC answered 400 to POST {client.base_url}/abonnement: "
        "callbackUrl: Voer een geldige URL in. (invalid); "
        "auth: Zorg ervoor dat dit veld niet meer dan 1000 karakters bevat. (max_length)"
    )


def test_5xx_is_retried_with_backoff(flaky: Callable[..., Flaky]) -> None:
    server = flaky([503, 502])
    started = time.monotonic()
    assert NCClient(server.url, "app", SECRET, backoff=0.05).list_kanalen() == []
    assert len(server.requests) == 3
    assert time.monotonic() - started >= 0.05 + 0.1


def test_persistent_5xx_becomes_nc_unavailable(flaky: Callable[..., Flaky]) -> None:
    server = flaky([500] * 10)
    with pytest.raises(NCUnavailable) as info:
        NCClient(server.url, "app", SECRET, retries=2, backoff=0.01).list_abonnementen()
    assert str(info.value) == (
        f"the NC kept answering 500 to GET {server.url}/abonnement after 3 attempt(s); "
        "check the NC's logs"
    )
    assert info.value.status == 500
    assert isinstance(info.value.__cause__, requests.HTTPError)
    assert len(server.requests) == 3


def test_an_unreachable_nc_becomes_nc_unavailable() -> None:
    client = NCClient("http://127.0.0.1:9/api/v1", "app", SECRET, retries=1, backoff=0.01)
    with pytest.raises(NCUnavailable) as info:
        client.get_kanaal("zaken")
    assert str(info.value) == (
        "could not reach the NC for GET http://127.0.0.1:9/api/v1/kanaal after 2 attempt(s) "
        "(ConnectionError); check the NC base URL and that it is up"
    )
    assert isinstance(info.value.__cause__, requests.ConnectionError)


@pytest.mark.parametrize(
    ("call", "attempts"),
    [
        (lambda c: c.list_kanalen(), 2),
        (lambda c: c.delete_abonnement(UUID), 2),
        (lambda c: c.create_abonnement("http://r/cb", "x", []), 1),
    ],
    ids=["GET-retried", "DELETE-retried", "POST-not-retried"],
)
def test_a_timeout_is_retried_unless_a_post_may_have_been_applied(
    flaky: Callable[..., Flaky], call: Callable[[NCClient], Any], attempts: int
) -> None:
    server = flaky([], delay=0.3)
    client = NCClient(server.url, "app", SECRET, timeout=0.1, retries=1, backoff=0.01)
    with pytest.raises(NCUnavailable) as info:
        call(client)
    assert isinstance(info.value.__cause__, requests.Timeout)
    assert len(server.requests) == attempts


def test_a_non_json_answer_points_at_the_base_url(flaky: Callable[..., Flaky]) -> None:
    server = flaky([], body=b"<html>login</html>")
    with pytest.raises(NCError) as info:
        NCClient(server.url, "app", SECRET).list_kanalen()
    assert str(info.value) == (
        "the NC answered GET /kanaal with 200 but the body is not a JSON object; check that "
        "the base URL is the NC's API root (…/api/v1)"
    )
