"""Receive-path overhead, as ratios against a bare Flask route measured in the same run.

    python benchmarks/receive.py [--requests N] [--rounds R]

Every case is a server subprocess running werkzeug's threaded server on loopback; the
client sends distinct notifications in turn over one keep-alive connection; cases are
interleaved per round and the median time per request is used. The receiver runs in
``sync`` mode with a no-op handler, so the figure is auth + validation + routing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    BODY,
    CLIENT_ID,
    SECRET,
    TOKEN,
    Server,
    bodies,
    interleaved,
    post_all,
    report,
)

from nc_receiver import make_zgw_jwt  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    n = args.requests
    jwt_header = {"Authorization": f"Bearer {make_zgw_jwt(CLIENT_ID, SECRET)}"}
    token = {"Authorization": f"Bearer {TOKEN}"}
    servers = {
        "bare": Server(app="bare"),
        "r10": Server(app="receiver", delivery="sync", routes=10),
        "r10000": Server(app="receiver", delivery="sync", routes=10_000),
    }
    payloads = [bodies(n, r * n) for r in range(args.rounds)]

    def case(server: str, headers: dict[str, str]) -> object:
        port = servers[server].port
        return lambda r: statistics.fmean(post_all(port, payloads[r], headers))

    cases = {
        "bare": case("bare", {}),
        "token": case("r10", token),
        "jwt": case("r10", jwt_header),
        "token-10000-routes": case("r10000", token),
    }
    try:
        for name, server in (("bare", "bare"), ("token", "r10"), ("jwt", "r10"),
                             ("token-10000-routes", "r10000")):  # warm up every path
            post_all(servers[server].port, bodies(300, 10**9),
                     {"token": token, "jwt": jwt_header}.get(name.split("-")[0], token))
        t = interleaved(cases, args.rounds)  # type: ignore[arg-type]
    finally:
        for server in servers.values():
            server.close()
    print(f"body: {len(BODY)} bytes; {n} distinct notifications x {args.rounds} rounds per "
          "case, one keep-alive connection; median of the per-round mean time per request:")
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
