"""Subscribing at the local NC over real HTTP: idempotent, derived from the handlers."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask

from nc_receiver import ConfigurationError, NCError, NotificationReceiver, Router
from nc_receiver._server import ServerThread
from nc_receiver.localnc import LocalNC
from nc_receiver.nc_client import NCClient, uuid_from_url
from nc_receiver.subscription import Subscription, normalized, wanted_kanalen

CONSUMER_ID, CONSUMER_SECRET = "our-consumer", "the-consumer-secret-at-the-nc-0123456789"
PUBLISHER_ID, PUBLISHER_SECRET = "open-zaak", "the-publisher-secret-at-the-nc-0123456789"
TOKEN = "a-token-the-nc-replays-to-us-0123456789"
JWT_SECRET = "our-own-jwt-secret-of-at-least-32-bytes!"
ORG = "224557609"
ZAKEN_FILTERS = ("bronorganisatie", "zaaktype", "vertrouwelijkheidaanduiding")
WRITES = ("POST", "PUT", "PATCH", "DELETE")


class LateApp:
    """A WSGI app to serve before the real one exists (its URL goes into its config)."""

    def __init__(self) -> None:
        self.app: Any = None
        self.ready = threading.Event()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.ready.wait(10)
        return self.app(environ, start_response)


class RecordingNC(LocalNC):
    """The local NC, logging every API call as (method, path)."""

    def start(self) -> RecordingNC:
        super().start()
        self.calls: list[tuple[str, str]] = []
        assert self.app is not None
        inner = self.app.wsgi_app

        def record(environ: dict[str, Any], start_response: Any) -> Any:
            self.calls.append((environ["REQUEST_METHOD"], environ["PATH_INFO"]))
            return inner(environ, start_response)

        self.app.wsgi_app = record  # type: ignore[method-assign]
        return self

    def writes(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] in WRITES and "/abonnement" in c[1]]


def start_nc(port: int = 0) -> RecordingNC:
    clients = {CONSUMER_ID: CONSUMER_SECRET, PUBLISHER_ID: PUBLISHER_SECRET}
    return RecordingNC(clients, retry_delays=(0.05, 0.1), port=port).start()


def register_kanalen(nc_url: str) -> NCClient:
    """What the publisher does: register its kanalen (and return its client)."""
    publisher = NCClient(nc_url, PUBLISHER_ID, PUBLISHER_SECRET, backoff=0.01)
    publisher.create_kanaal("zaken", ZAKEN_FILTERS)
    publisher.create_kanaal("documenten", ("bronorganisatie",))
    return publisher


@pytest.fixture
def nc() -> Iterator[RecordingNC]:
    local = start_nc()
    yield local
    local.stop()


@pytest.fixture
def publisher(nc: RecordingNC) -> NCClient:
    return register_kanalen(nc.url)


@dataclasses.dataclass
class Consumer:
    app: Flask
    receiver: NotificationReceiver
    server: ServerThread
    events: list[str]


def consumer_config(
    nc_url: str, callback_url: str, state_dir: Path, **extra: Any
) -> dict[str, Any]:
    return {
        "NC_RECEIVER_CALLBACK_PATH": "/callback",
        "NC_RECEIVER_AUTH_TOKENS": [TOKEN],
        "NC_RECEIVER_DELIVERY": "sync",
        "NC_RECEIVER_NC_URL": nc_url,
        "NC_RECEIVER_NC_CLIENT_ID": CONSUMER_ID,
        "NC_RECEIVER_NC_SECRET": CONSUMER_SECRET,
        "NC_RECEIVER_CALLBACK_URL": callback_url,
        "NC_RECEIVER_SUBSCRIBE_ON_STARTUP": False,
        "NC_RECEIVER_STATE_DIR": str(state_dir),
        **extra,
    }


@pytest.fixture
def make_consumer(
    nc: RecordingNC, tmp_path: Path
) -> Iterator[Callable[..., Consumer]]:
    """A receiver with a zaken handler for our organisation, served on loopback."""
    servers: list[ServerThread] = []

    def factory(**config: Any) -> Consumer:
        late = LateApp()
        server = ServerThread(late).start()
        servers.append(server)
        app = Flask("consumer")
        app.config.update(consumer_config(nc.url, f"{server.url}/callback", tmp_path / "state"))
        app.config.update(config)
        receiver = NotificationReceiver(router=Router(), include_default_router=False)
        events: list[str] = []
        receiver.add_handler(lambda n: events.append(n.resource), "zaken",
                             bronorganisatie=ORG)
        receiver.init_app(app)
        late.app = app
        late.ready.set()
        return Consumer(app, receiver, server, events)

    yield factory
    for server in servers:
        server.stop()


def ours(nc: LocalNC, callback_url: str) -> list[dict[str, Any]]:
    return [a for a in NCClient(nc.url, CONSUMER_ID, CONSUMER_SECRET).list_abonnementen()
            if a["callbackUrl"] == callback_url]


def callback_of(consumer: Consumer) -> str:
    return f"{consumer.server.url}/callback"


def test_subscribe_on_an_empty_nc_creates_the_abonnement_the_handlers_want(
    nc: RecordingNC, publisher: NCClient, make_consumer: Callable[..., Consumer]
) -> None:
    consumer = make_consumer()
    consumer.receiver.add_handler(lambda n: None, "documenten")

    result = consumer.receiver.subscribe(consumer.app)

    assert result.action == "created"
    assert result.deleted == 0
    [abonnement] = ours(nc, callback_of(consumer))
    assert abonnement["url"] == result.abonnement["url"]
    assert normalized(abonnement["kanalen"]) == [
        ("documenten", ()), ("zaken", (("bronorganisatie", ORG),))]
    assert nc.writes() == [("POST", "/api/v1/abonnement")]
    # The NC delivers what matches, with our token; another organisation's zaak is filtered.
    publisher.publish({**MESSAGE, "kenmerken": {"bronorganisatie": "999999999"}})
    publisher.publish(MESSAGE)
    assert nc.wait_for_deliveries(5)
    assert consumer.events == ["status"]
    assert [(d.status, d.attempt) for d in nc.deliveries] == [(204, 1)]


MESSAGE = {
    "kanaal": "zaken",
    "hoofdObject": "https://openzaak.example.nl/zaken/api/v1/zaken/1",
    "resource": "status",
    "resourceUrl": "https://openzaak.example.nl/zaken/api/v1/statussen/1",
    "actie": "create",
    "aanmaakdatum": "2026-12-03T16:41:54Z",
    "kenmerken": {"bronorganisatie": ORG},
}


def test_subscribe_again_changes_nothing_and_writes_nothing(
    nc: RecordingNC, publisher: NCClient, make_consumer: Callable[..., Consumer]
) -> None:
    consumer = make_consumer()
    first = consumer.receiver.subscribe(consumer.app)
    nc.calls.clear()

    again = consumer.receiver.subscribe(consumer.app)
    again_after_restart = consumer.receiver.subscribe(consumer.app)  # rebuilt from settings

    assert (again.action, again_after_restart.action) == ("unchanged", "unchanged")
    assert again.abonnement["url"] == first.abonnement["url"]
    assert nc.writes() == []
    assert {m for m, _ in nc.calls} == {"GET"}


def test_changed_handlers_cause_exactly_one_full_put(
    nc: RecordingNC, publisher: NCClient, make_consumer: Callable[..., Consumer]
) -> None:
    consumer = make_consumer()
    created = consumer.receiver.subscribe(consumer.app)
    nc.calls.clear()
    consumer.receiver.add_handler(lambda n: None, "zaken", "zaak", "destroy",
                                  vertrouwelijkheidaanduiding="openbaar")

    result = consumer.receiver.subscribe(consumer.app)

    uuid = uuid_from_url(created.abonnement["url"])
    assert result.action == "updated"
    assert nc.writes() == [("PUT", f"/api/v1/abonnement/{uuid}")]
    [abonnement] = ours(nc, callback_of(consumer))
    assert normalized(abonnement["kanalen"]) == [
        ("zaken", (("bronorganisatie", ORG),)),
        ("zaken", (("vertrouwelijkheidaanduiding", "openbaar"),)),
    ]
    assert consumer.receiver.subscribe(consumer.app).action == "unchanged"


def test_changed_auth_causes_one_put_then_nothing(
    nc: RecordingNC, publisher: NCClient, make_consumer: Callable[..., Consumer]
) -> None:
    consumer = make_consumer(NC_RECEIVER_AUTH_TOKENS=[TOKEN, "a-second-token-0123456789abcdef"])
    consumer.receiver.subscribe(consumer.app)
    state = NotificationReceiver.state(consumer.app)
    from nc_receiver.startup import build_subscription

    rotated = dataclasses.replace(build_subscription(consumer.app, state),
                                  auth="Bearer a-second-token-0123456789abcdef", auth_key=None)
    nc.calls.clear()

    assert rotated.sync().action == "updated"
    assert rotated.sync().action == "unchanged"
    assert [m for m, _ in nc.writes()] == ["PUT"]
    publisher.publish(MESSAGE)
    assert nc.wait_for_deliveries(5)
    assert consumer.events == ["status"]


def test_two_stale_abonnementen_with_our_url_leave_one(
    nc: RecordingNC, publisher: NCClient, make_consumer: Callable[..., Consumer]
) -> None:
    consumer = make_consumer()
    old = NCClient(nc.url, CONSUMER_ID, CONSUMER_SECRET)
    stale = [old.create_abonnement(callback_of(consumer), f"Bearer {TOKEN}",
                                   [{"naam": "zaken", "filters": {}}]) for _ in range(2)]
    keep = min(stale, key=lambda a: uuid_from_url(a["url"]))

    result = consumer.receiver.subscribe(consumer.app)

    assert (result.action, result.deleted) == ("updated", 1)
    [abonnement] = ours(nc, callback_of(consumer))
    assert abonnement["url"] == keep["url"]
    assert normalized(abonnement["kanalen"]) == [("zaken", (("bronorganisatie", ORG),))]
    assert consumer.receiver.subscribe(consumer.app).action == "unchanged"


def test_unknown_kanaal_is_an_actionable_error_and_writes_nothing(
    nc: RecordingNC, publisher: NCClient, make_consumer: Callable[..., Consumer]
) -> None:
    consumer = make_consumer()
    consumer.receiver.add_handler(lambda n: None, "besluiten")

    with pytest.raises(NCError) as info:
        consumer.receiver.subscribe(consumer.app)

    assert str(info.value) == (
        "the publisher has not registered kanaal 'besluiten' yet at the NC; have the publisher "
        "register it (POST /kanaal) or correct the name, then retry")
    assert info.value.code == "kanaal_naam"
    assert nc.writes() == []


def test_filter_key_not_allowed_by_the_kanaal_is_an_actionable_error(
    nc: RecordingNC, publisher: NCClient, make_consumer: Callable[..., Consumer]
) -> None:
    consumer = make_consumer()
    consumer.receiver.add_handler(lambda n: None, "zaken", object_type="https://x/1")

    with pytest.raises(NCError) as info:
        consumer.receiver.subscribe(consumer.app)

    assert str(info.value) == (
        "filter keys must be a subset or superset of the kanaal's filters ['bronorganisatie', "
        "'vertrouwelijkheidaanduiding', 'zaaktype']: kanaal 'zaken' got ['objectType']; change "
        "the handlers' kenmerken filters or NC_RECEIVER_KANALEN")
    assert info.value.code == "inconsistent-abonnement-filters"
    assert nc.writes() == []


def test_a_receiver_answering_204_without_auth_cannot_subscribe(
    nc: RecordingNC, publisher: NCClient, tmp_path: Path
) -> None:
    naive = Flask("naive")
    naive.add_url_rule("/callback", "callback", lambda: ("", 204), methods=["POST"])
    with ServerThread(naive) as server:
        client = NCClient(nc.url, CONSUMER_ID, CONSUMER_SECRET)
        subscription = Subscription(client, f"{server.url}/callback", f"Bearer {TOKEN}",
                                    [{"naam": "zaken", "filters": {}}], tmp_path)
        with pytest.raises(NCError) as info:
            subscription.sync()

    assert info.value.code == "no-auth-on-callback-url"
    assert "must answer 401/403 to unauthenticated requests" in str(info.value)
    assert ours(nc, f"{server.url}/callback") == []


def test_unsubscribe_deletes_ours_only(
    nc: RecordingNC, publisher: NCClient, make_consumer: Callable[..., Consumer]
) -> None:
    mine, other = make_consumer(), make_consumer()
    mine.receiver.subscribe(mine.app)
    other.receiver.subscribe(other.app)

    assert mine.receiver.unsubscribe(mine.app) == 1
    assert ours(nc, callback_of(mine)) == []
    assert len(ours(nc, callback_of(other))) == 1
    assert mine.receiver.unsubscribe(mine.app) == 0


def test_with_jwt_secrets_only_the_nc_gets_a_jwt_without_expiry(
    nc: RecordingNC, publisher: NCClient, make_consumer: Callable[..., Consumer]
) -> None:
    consumer = make_consumer(NC_RECEIVER_AUTH_TOKENS=[],
                             NC_RECEIVER_JWT_SECRETS={"other": "x" * 40, CONSUMER_ID: JWT_SECRET})

    assert consumer.receiver.subscribe(consumer.app).action == "created"
    # A fresh iat is no change: the record identifies the secret, not the token.
    assert consumer.receiver.subscribe(consumer.app).action == "unchanged"

    publisher.publish(MESSAGE)
    assert nc.wait_for_deliveries(5)
    assert consumer.events == ["status"]
    auth = nc._store.list_abonnementen()[0].auth  # type: ignore[union-attr]
    claims = jwt.decode(auth.removeprefix("Bearer "), JWT_SECRET, algorithms=["HS256"])
    assert claims["client_id"] == CONSUMER_ID
    assert "exp" not in claims


def test_limits_of_open_notificaties_are_checked_before_any_call(tmp_path: Path) -> None:
    client = NCClient("http://127.0.0.1:9/api/v1", CONSUMER_ID, CONSUMER_SECRET)
    long_url = Subscription(client, "http://x/" + "c" * 200, "Bearer t", [], tmp_path)
    long_auth = Subscription(client, "http://x/callback", "Bearer " + "t" * 1000, [], tmp_path)

    with pytest.raises(ConfigurationError, match="at most 200: use a shorter URL"):
        long_url.check_limits()
    with pytest.raises(ConfigurationError, match="at most 1000: use a shorter"):
        long_auth.check_limits()


@pytest.mark.parametrize(
    ("explicit", "expected"),
    [
        (None, [{"naam": "documenten", "filters": {}},
                {"naam": "zaken", "filters": {"bronorganisatie": ORG}},
                {"naam": "zaken", "filters": {"zaaktype": "https://zt/1"}}]),
        ({"zaken": [{"vertrouwelijkheid_aanduiding": "openbaar"}]},
         [{"naam": "zaken", "filters": {"vertrouwelijkheidAanduiding": "openbaar"}}]),
        ({"zaken": [{}, {"bronorganisatie": ORG}]}, [{"naam": "zaken", "filters": {}}]),
    ],
    ids=["union-of-routers", "explicit-camelcased", "whole-kanaal-wins"],
)
def test_wanted_kanalen(explicit: Any, expected: list[dict[str, Any]]) -> None:
    own, default = Router(), Router()
    own.add_handler(print, "zaken", bronorganisatie=ORG)
    own.add_handler(print, "zaken", "status", zaaktype="https://zt/1")
    default.add_handler(print, "documenten")
    default.add_handler(print, "*", "zaak")  # every kanaal: not subscribable by name

    assert wanted_kanalen([own, default], explicit) == expected


def test_nothing_to_subscribe_to_is_a_configuration_error() -> None:
    router = Router()
    router.add_handler(print, "*")
    with pytest.raises(ConfigurationError, match="There is nothing to subscribe to"):
        wanted_kanalen([router])
