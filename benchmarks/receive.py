"""Receive-path overhead, as ratios against a bare Flask route measured in the same run.

    python benchmarks/receive.py [--requests N] [--rounds R]

Every case runs on the same kind of server (werkzeug's threaded server on loopback, in
this process) and is timed over one keep-alive connection; cases are interleaved per
round and the median is used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BODY, CALLBACK, bare_app, interleaved, report, time_requests  # noqa: E402
from flask import Flask  # noqa: E402

from nc_receiver import Notification, NotificationReceiver, Router, make_zgw_jwt  # noqa: E402
from nc_receiver._server import ServerThread  # noqa: E402

TOKEN = "benchmark-token"
CLIENT_ID = "open-notificaties"
SECRET = "benchmark-secret-of-at-least-32-bytes"


def receiver_app(routes: int) -> Flask:
    """A receiver in sync mode with ``routes`` registered handlers, one of which matches."""
    app = Flask(f"receiver{routes}")
    app.config.update(
        NC_RECEIVER_CALLBACK_PATH=CALLBACK, NC_RECEIVER_AUTH_TOKENS=[TOKEN],
        NC_RECEIVER_JWT_SECRETS={CLIENT_ID: SECRET}, NC_RECEIVER_DELIVERY="sync",
    )
    receiver = NotificationReceiver(router=Router(), include_default_router=False)

    def noop(n: Notification) -> None:
        pass

    receiver.add_handler(noop, "zaken", "status", "create", bronorganisatie="224557609")
    for i in range(routes - 1):
        def other(n: Notification) -> None:
            pass

        # A realistic spread: many kanalen, resources, acties and kenmerken filters.
        receiver.add_handler(other, f"kanaal{i % 50}" if i % 3 else "zaken",
                             ("status", "zaak", "rol", "resultaat")[i % 4],
                             ("create", "update", "destroy")[i % 3],
                             bronorganisatie=str(100000000 + i))
    receiver.init_app(app)
    return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    jwt_header = f"Bearer {make_zgw_jwt(CLIENT_ID, SECRET)}"
    servers = {
        "bare": ServerThread(bare_app()).start(),
        "r10": ServerThread(receiver_app(10)).start(),
        "r10000": ServerThread(receiver_app(10_000)).start(),
    }
    n = args.requests
    token = {"Authorization": f"Bearer {TOKEN}"}
    cases = {
        "bare": lambda: time_requests(servers["bare"].port, {}, n),
        "token": lambda: time_requests(servers["r10"].port, token, n),
        "jwt": lambda: time_requests(servers["r10"].port, {"Authorization": jwt_header}, n),
        "token-10000-routes": lambda: time_requests(servers["r10000"].port, token, n),
    }
    for run in cases.values():  # warm up connections, caches and the JWT cache
        time_requests(servers["bare"].port, {}, 200)
        run()
    try:
        t = interleaved(cases, args.rounds)
    finally:
        for server in servers.values():
            server.stop()
    print(f"body: {len(BODY)} bytes; {n} requests x {args.rounds} rounds per case; "
          "median seconds per request:")
    for name, value in t.items():
        print(f"  {name:20} {value * 1e6:9.1f} us")
    print()
    return report([
        ("token auth + validation + routing vs bare route", t["token"], t["bare"], 1.25),
        ("ZGW JWT auth (NC's repeated header) vs bare route", t["jwt"], t["bare"], 1.30),
        ("10,000 registered routes vs 10 routes", t["token-10000-routes"], t["token"], 1.05),
    ])


if __name__ == "__main__":
    sys.exit(main())
