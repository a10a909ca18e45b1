"""The nc_receiver demo: real Open Notificaties traffic against the example consumer.

Part 1 replays wire captures from a real Open Notificaties 1.16.1 (both subscription
probes and deliveries) over HTTP, byte for byte, at the example consumer running on
loopback, and shows what every request was answered and which handler ran.

Part 2 runs the whole loop on this machine: a local NC starts, the publisher registers
its kanalen, the example consumer starts and subscribes by itself (the NC probes it), the
seed guide's notification is published and its handler runs, and a notification for
another organisation is not delivered at all: the abonnement filters it out.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from examples import zaken_consumer  # noqa: E402
from nc_receiver import NotificationReceiver, signals  # noqa: E402
from nc_receiver._server import ServerThread  # noqa: E402
from nc_receiver.localnc import LocalNC  # noqa: E402
from nc_receiver.nc_client import NCClient  # noqa: E402
from nc_receiver.startup import READY_AGENT  # noqa: E402
from nc_receiver.subscription import wanted_kanalen  # noqa: E402

CAPTURES = ROOT / "tests" / "samples"
REPLAY = [
    ("validation_calls_abonnement_create.jsonl", "the NC's two-step subscription probe"),
    ("validation_calls_receiver_always204.jsonl", "the probe a naive receiver answers 204"),
    ("delivery_matching.jsonl", "a status create delivery"),
    ("delivery_missing_filter_key_and_tz_offset.jsonl", "a zaak partial_update (no filter key)"),
    ("delivery_retries_receiver_500.jsonl", "a retried delivery (six identical attempts)"),
]


def send(port: int, path: str, headers: dict[str, str], body: bytes) -> int:
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
    return int(data.split()[1])


def replay(server: ServerThread) -> None:
    print("== Part 1: replaying real Open Notificaties 1.16.1 traffic ==")
    for name, what in REPLAY:
        print(f"\n-- {what} ({name})")
        for line in (CAPTURES / name).read_text().splitlines():
            rec = json.loads(line)
            body = rec["body_raw"].encode()
            sent = json.loads(body)
            auth = "with auth" if "Authorization" in rec["headers"] else "no auth  "
            before = len(zaken_consumer.EVENTS)
            status = send(server.port, rec["path"], rec["headers"], body)
            ran = [e["handler"] for e in zaken_consumer.EVENTS[before:]] or ["no handler"]
            print(f"   {auth} kanaal={sent['kanaal']:<6} {sent['resource']:<14} "
                  f"{sent['actie']:<15} -> HTTP {status}  {', '.join(ran)}")


class Shown:
    """WSGI middleware: print what the NC sends the consumer, and what it answered."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        sent = json.loads(body or b"{}")
        what = ("NC probe" if sent.get("kanaal") == "test" else
                f"delivery {sent.get('kanaal')} {sent.get('resource')} {sent.get('actie')}")
        if environ.get("HTTP_USER_AGENT") == READY_AGENT:
            what = "readiness check by the consumer itself:"
        auth = "with auth   " if environ.get("HTTP_AUTHORIZATION") else "without auth"

        def answer(status: str, headers: Any, exc_info: Any = None) -> Any:
            print(f"   <- {what} {auth} -> HTTP {status.split()[0]}", flush=True)
            return start_response(status, headers, exc_info)

        return self.app(environ, answer)


def wait_for(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def publish(nc: LocalNC, publisher: NCClient, body: dict[str, Any]) -> tuple[int, list[str]]:
    """Publish; return how many deliveries the NC made and which handlers ran."""
    before, events = len(nc.deliveries), len(zaken_consumer.EVENTS)
    publisher.publish(body)
    nc.wait_for_deliveries(5)
    delivered = len(nc.deliveries) - before
    if delivered:  # the handlers may run after the 204 (inbox delivery): wait for them
        wait_for(lambda: len(zaken_consumer.EVENTS) > events)
    return delivered, [e["handler"] for e in zaken_consumer.EVENTS[events:]]


def loop(state_dir: str) -> None:
    print("\n== Part 2: the whole loop on this machine, with a local NC ==")
    clients = {"zaken-dashboard": secrets.token_urlsafe(32), "open-zaak": secrets.token_urlsafe(32)}
    with LocalNC(clients, retry_delays=(0.2, 0.5)) as nc:
        print(f"local NC listening on {nc.url}")
        publisher = NCClient(nc.url, "open-zaak", clients["open-zaak"])
        publisher.create_kanaal("zaken", ["bronorganisatie", "zaaktype",
                                          "vertrouwelijkheidaanduiding"])
        publisher.create_kanaal("documenten", ["bronorganisatie"])
        print("the publisher (open-zaak) registered kanalen 'zaken' and 'documenten'")

        shown = Shown(None)
        server = ServerThread(shown)  # bound now; serving starts below
        app = zaken_consumer.create_app({
            "NC_RECEIVER_AUTH_TOKENS": ["sometoken"], "NC_RECEIVER_DELIVERY": "sync",
            "NC_RECEIVER_NC_URL": nc.url, "NC_RECEIVER_NC_CLIENT_ID": "zaken-dashboard",
            "NC_RECEIVER_NC_SECRET": clients["zaken-dashboard"],
            "NC_RECEIVER_CALLBACK_URL": f"{server.url}/callback",
            "NC_RECEIVER_STATE_DIR": state_dir,
        })
        shown.app = app
        routers = NotificationReceiver.state(app).dispatcher.routers
        print("the handlers want:", ", ".join(
            f"{k['naam']} {k['filters'] or '(whole kanaal)'}" for k in wanted_kanalen(routers)))
        print("NC_RECEIVER_KANALEN narrows it to:", zaken_consumer.SUBSCRIPTION)
        synced = threading.Event()
        with signals.subscription_synced.connected_to(lambda *a, **k: synced.set(), sender=app):
            print(f"example consumer serving on {server.url}/callback; it subscribes by itself:")
            with server:
                synced.wait(30)
                again = zaken_consumer.receiver.subscribe(app)
                print(f"   subscribing again (as every restart does): abonnement {again.action}, "
                      "nothing written")
                seed = json.loads((CAPTURES / "notificatie_publish_request.json").read_text())
                print("\npublishing the seed guide's notification (status create on zaken, "
                      f"bronorganisatie {seed['kenmerken']['bronorganisatie']}):")
                delivered, ran = publish(nc, publisher, seed)
                print(f"   the NC delivered it {delivered} time(s); handler(s) ran: "
                      f"{', '.join(ran) or 'none'}")
                other = {**seed, "kenmerken": {**seed["kenmerken"],
                                               "bronorganisatie": "999999999"}}
                print("publishing the same for another organisation (bronorganisatie 999999999):")
                delivered, ran = publish(nc, publisher, other)
                time.sleep(0.2)
                print(f"   not delivered: the NC delivered it {delivered} time(s) (the abonnement "
                      "filters on our bronorganisatie); handler(s) ran: "
                      f"{', '.join(ran) or 'none'}")


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="   %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("nc_receiver").setLevel(logging.WARNING)
    app = zaken_consumer.create_app({"NC_RECEIVER_AUTH_TOKENS": ["sometoken"],
                                     "NC_RECEIVER_DELIVERY": "sync"})
    with ServerThread(app) as server:
        print(f"example consumer listening on {server.url}/callback\n")
        replay(server)
    print("\nhandlers ran:", len(zaken_consumer.EVENTS), "times;",
          "unauthenticated requests got 401, authenticated probes 204 with nothing dispatched.")
    logging.getLogger("nc_receiver.startup").setLevel(logging.INFO)
    logging.getLogger("zaken_consumer").setLevel(logging.INFO)
    with tempfile.TemporaryDirectory(prefix="nc-receiver-demo-") as state_dir:
        loop(state_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
