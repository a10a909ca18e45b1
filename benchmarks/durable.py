"""Benchmark of the inbox mode against a bare Flask route, all in one run (loopback only).

(a) time per acknowledgement: inbox mode vs a bare route that parses the JSON and answers
    204 (target <= 2.0x); (b) p99 time to the 204 with 20 concurrent senders when every
    handler sleeps 2 s vs a no-op handler (target <= 1.5x), all handler work completing;
(c) server RSS after 100,000 notifications vs after 10,000 (target <= 1.1x).

Every server is a subprocess running werkzeug's threaded server. ``python
benchmarks/durable.py``; exits 1 when a target is missed.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from nc_receiver.inbox import Inbox

TOKEN = "bench-token"
BASE = {"kanaal": "zaken", "hoofdObject": "http://openzaak.local/zaken/api/v1/zaken/1",
        "resource": "status", "actie": "create", "aanmaakdatum": "2026-12-03T16:41:54Z",
        "kenmerken": {"bronorganisatie": "224557609", "zaaktype": "http://x/zt/1"}}


def serve(kind: str, inbox: str, sleep: float, threads: int) -> None:
    from flask import Flask, Response, request
    from werkzeug.serving import make_server

    from nc_receiver import NotificationReceiver, Router
    from nc_receiver._server import _QuietHandler

    app = Flask("bench")
    if kind == "bare":
        @app.post("/callback")
        def bare() -> Response:
            json.loads(request.get_data())
            return Response(status=204)
    else:
        app.config.update(NC_RECEIVER_AUTH_TOKENS=[TOKEN], NC_RECEIVER_INBOX_PATH=inbox,
                          NC_RECEIVER_CALLBACK_PATH="/callback", NC_RECEIVER_DELIVERY="inbox",
                          NC_RECEIVER_WORKER_THREADS=threads, NC_RECEIVER_LEASE_SECONDS=60)
        receiver = NotificationReceiver(router=Router(), include_default_router=False)
        receiver.on("zaken")(lambda n: time.sleep(sleep) if sleep else None)
        receiver.init_app(app)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    print(f"PORT {server.server_port}", flush=True)
    server.serve_forever(poll_interval=0.05)


class Server:
    def __init__(self, kind: str, inbox: str = "", sleep: float = 0.0, threads: int = 4):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind, inbox, str(sleep), str(threads)],
            stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline().split()[1])
        self.inbox = inbox

    def rss(self) -> int:
        return int(psutil.Process(self.proc.pid).memory_info().rss)

    def wait_done(self, timeout: float = 120.0) -> None:
        with Inbox(self.inbox) as inbox:
            assert inbox.wait_for_idle(timeout), inbox.stats()

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def send(port: int, senders: int, count: int, start: int) -> list[float]:
    """``count`` distinct notifications from ``senders`` keep-alive connections; latencies."""
    latencies: list[float] = []
    lock = threading.Lock()
    numbers = iter(range(start, start + count))

    def run() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        headers = {"Authorization": TOKEN, "Content-Type": "application/json"}
        while True:
            with lock:
                n = next(numbers, None)
            if n is None:
                break
            body = json.dumps({**BASE, "resourceUrl": f"http://openzaak.local/statussen/{n}"})
            t = time.perf_counter()
            conn.request("POST", "/callback", body, headers)
            resp = conn.getresponse()
            resp.read()
            mine.append(time.perf_counter() - t)
            assert resp.status == 204, resp.status
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run) for _ in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def p99(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.99) - 1]


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="nc-bench-"))
    rows: list[tuple[str, str, float, float]] = []
    started = time.monotonic()

    # (a) the acknowledgement path: mean time per request, 4 senders, after a warm-up
    means = {}
    for kind in ("bare", "inbox"):
        server = Server(kind, str(tmp / f"a-{kind}.sqlite3"))
        send(server.port, 4, 300, 0)
        lat = send(server.port, 4, 4000, 1000)
        means[kind] = sum(lat) / len(lat)
        server.close()
    rows.append((f"(a) ack: inbox {means['inbox'] * 1e3:.2f} ms / bare "
                 f"{means['bare'] * 1e3:.2f} ms", "<= 2.0", means["inbox"] / means["bare"], 2.0))

    # (b) p99 time to 204, 20 senders, handlers sleeping 2 s vs no-op; all work completes
    p = {}
    for sleep in (0.0, 2.0):
        server = Server("inbox", str(tmp / f"b-{sleep}.sqlite3"), sleep, threads=32)
        send(server.port, 20, 100, 0)
        server.wait_done()
        lat = send(server.port, 20, 400, 1000)
        p[sleep] = p99(lat)
        t = time.monotonic()
        server.wait_done()
        if sleep:
            drained = time.monotonic() - t
        server.close()
    rows.append((f"(b) p99: sleep-2s {p[2.0] * 1e3:.2f} ms / no-op {p[0.0] * 1e3:.2f} ms "
                 f"(work drained {drained:.0f} s later)", "<= 1.5", p[2.0] / p[0.0], 1.5))

    # (c) RSS after 100,000 notifications vs after 10,000
    server = Server("inbox", str(tmp / "c.sqlite3"))
    send(server.port, 8, 10_000, 0)
    server.wait_done()
    rss_10k = server.rss()
    send(server.port, 8, 90_000, 10_000)
    server.wait_done()
    rss_100k = server.rss()
    server.close()
    rows.append((f"(c) RSS: 100k {rss_100k / 2**20:.1f} MiB / 10k {rss_10k / 2**20:.1f} MiB",
                 "<= 1.1", rss_100k / rss_10k, 1.1))

    print(f"{'measure':<72} {'target':>7} {'ratio':>6}  result")
    failed = False
    for label, target, ratio, limit in rows:
        ok = ratio <= limit
        failed |= not ok
        print(f"{label:<72} {target:>7} {ratio:>6.2f}  {'PASS' if ok else 'FAIL'}")
    print(f"(one run, {time.monotonic() - started:.0f} s, {os.cpu_count()} CPUs, loopback)")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit(main())
