"""The nc_receiver demo: real Open Notificaties traffic against the example consumer.

Part 1 replays wire captures from a real Open Notificaties 1.16.1 (both subscription
probes and deliveries) over HTTP, byte for byte, at the example consumer running on
loopback, and shows what every request was answered and which handler ran.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from examples import zaken_consumer  # noqa: E402
from nc_receiver._server import ServerThread  # noqa: E402

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
    return 0


if __name__ == "__main__":
    sys.exit(main())
