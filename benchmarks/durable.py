"""Durable delivery (the inbox), as ratios measured in one run (loopback only).

    python benchmarks/durable.py [--requests N] [--rounds R] [--skip-memory]

(a) the inbox acknowledgement path vs the bare Flask route of ``receive.py``, measured the
    same way: distinct notifications in turn over one keep-alive connection, cases
    interleaved, medians — while the inbox's worker threads run the (no-op) handler
    (target <= 2.0x);
(b) 20 concurrent senders: the 99th-percentile time to the 204 when every handler sleeps
    2 s vs the same with a no-op handler, and all handler work completes (target <= 1.5x);
(c) the server's resident memory after 100,000 notifications vs after 10,000 (<= 1.1x).

Every server is a subprocess running werkzeug's threaded server (see ``_common``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    TOKEN,
    Server,
    bodies,
    interleaved,
    percentile,
    post_all,
    post_concurrently,
    report,
)

from nc_receiver.inbox import Inbox  # noqa: E402

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def drained(path: Path, timeout: float) -> float:
    """Seconds until every task in the inbox at ``path`` is finished."""
    start = time.monotonic()
    with Inbox(path) as inbox:
        if not inbox.wait_for_idle(timeout):
            raise SystemExit(f"the handler work did not complete: {inbox.stats()}")
        stats = inbox.stats()
    if stats["dead"]:
        raise SystemExit(f"handlers were dead-lettered: {stats}")
    return time.monotonic() - start


def ack_path(tmp: Path, n: int, rounds: int) -> tuple[float, float]:
    bare = Server(app="bare")
    inbox = Server(app="receiver", delivery="inbox", inbox=str(tmp / "a.sqlite3"))
    payloads = [bodies(n, r * n) for r in range(rounds)]
    try:
        post_all(bare.port, bodies(300, 10**9), {})
        post_all(inbox.port, bodies(300, 10**9), AUTH)
        t = interleaved({
            "bare": lambda r: statistics.fmean(post_all(bare.port, payloads[r], {})),
            "inbox": lambda r: statistics.fmean(post_all(inbox.port, payloads[r], AUTH)),
        }, rounds)
        drained(tmp / "a.sqlite3", 60)
    finally:
        bare.close()
        inbox.close()
    return t["inbox"], t["bare"]


def p99_under_slow_handlers(tmp: Path) -> tuple[float, float, float]:
    p99: dict[float, float] = {}
    drain = 0.0
    for sleep in (0.0, 2.0):
        path = tmp / f"b-{sleep}.sqlite3"
        with Server(app="receiver", delivery="inbox", inbox=str(path), sleep=sleep,
                    threads=32) as server:
            post_concurrently(server.port, bodies(100, 10**9), AUTH, 20)  # warm up
            drained(path, 120)
            latencies = post_concurrently(server.port, bodies(400), AUTH, 20)
            p99[sleep] = percentile(latencies, 0.99)
            took = drained(path, 300)
            drain = took if sleep else drain
    return p99[2.0], p99[0.0], drain


def memory(tmp: Path) -> tuple[int, int]:
    path = tmp / "c.sqlite3"
    with Server(app="receiver", delivery="inbox", inbox=str(path)) as server:
        process = psutil.Process(server.pid)
        post_concurrently(server.port, bodies(10_000), AUTH, 8)
        drained(path, 120)
        at_10k = process.memory_info().rss
        for start in range(10_000, 100_000, 10_000):
            post_concurrently(server.port, bodies(10_000, start), AUTH, 8)
        drained(path, 300)
        at_100k = process.memory_info().rss
    return at_100k, at_10k


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-memory", action="store_true", help="leave out (c), ~2 min")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nc-bench-"))
    started = time.monotonic()
    inbox, bare = ack_path(tmp, args.requests, args.rounds)
    slow, fast, drain = p99_under_slow_handlers(tmp)
    rows = [
        (f"(a) ack: inbox {inbox * 1e3:.2f} ms vs bare route {bare * 1e3:.2f} ms", inbox, bare,
         2.0),
        (f"(b) p99 to 204: 2 s handlers {slow * 1e3:.1f} ms vs no-op {fast * 1e3:.1f} ms",
         slow, fast, 1.5),
    ]
    if not args.skip_memory:
        at_100k, at_10k = memory(tmp)
        rows.append((f"(c) RSS: after 100k {at_100k / 2**20:.1f} MiB vs after 10k "
                     f"{at_10k / 2**20:.1f} MiB", at_100k, at_10k, 1.1))
    status = report(rows)
    print(f"(b): all 400 slow handler runs completed, {drain:.0f} s after the last 204. "
          f"One run: {time.monotonic() - started:.0f} s.")
    return status


if __name__ == "__main__":
    sys.exit(main())
