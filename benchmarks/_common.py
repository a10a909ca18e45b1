"""Shared parts of the benchmark scripts: apps, server subprocesses, timing, reporting.

Every app is served by werkzeug's threaded server in a subprocess of its own, so the
client's work never shares the server's interpreter lock: the figures are the server's.
"""

from __future__ import annotations

import http.client
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BODY = (ROOT / "tests" / "samples" / "delivery_body.json").read_bytes()
CALLBACK = "/callback"
TOKEN = "benchmark-token"
CLIENT_ID = "open-notificaties"
SECRET = "benchmark-secret-of-at-least-32-bytes"


def bodies(count: int, start: int = 0) -> list[bytes]:
    """``count`` distinct notifications (the capture with a numbered resourceUrl)."""
    base = json.loads(BODY)
    out = []
    for n in range(start, start + count):
        base["resourceUrl"] = f"https://openzaak.example.nl/zaken/api/v1/statussen/{n:012d}"
        out.append(json.dumps(base).encode())
    return out


# -- the server side (runs in the subprocess) ---------------------------------------------
def _bare_app() -> Any:
    """The baseline: a plain Flask route that parses the JSON body and answers 204."""
    from flask import Flask, Response, request

    app = Flask("bare")

    @app.post(CALLBACK)
    def callback() -> Response:
        json.loads(request.get_data())
        return Response(status=204)

    return app


def _receiver_app(delivery: str, routes: int, sleep: float, inbox: str, threads: int) -> Any:
    from flask import Flask

    from nc_receiver import Notification, NotificationReceiver, Router

    app = Flask(f"receiver-{delivery}")
    app.config.update(
        NC_RECEIVER_CALLBACK_PATH=CALLBACK, NC_RECEIVER_AUTH_TOKENS=[TOKEN],
        NC_RECEIVER_JWT_SECRETS={CLIENT_ID: SECRET}, NC_RECEIVER_DELIVERY=delivery,
        NC_RECEIVER_INBOX_PATH=inbox or None, NC_RECEIVER_WORKER_THREADS=threads,
    )
    receiver = NotificationReceiver(router=Router(), include_default_router=False)

    def handler(n: Notification) -> None:
        if sleep:
            time.sleep(sleep)

    receiver.add_handler(handler, "zaken", "status", "create", bronorganisatie="224557609")
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


def _serve(spec: dict[str, Any]) -> None:
    from werkzeug.serving import make_server

    from nc_receiver._server import _QuietHandler

    if spec["app"] == "bare":
        app = _bare_app()
    else:
        app = _receiver_app(spec["delivery"], spec.get("routes", 1), spec.get("sleep", 0.0),
                            spec.get("inbox", ""), spec.get("threads", 4))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    print(f"PORT {server.server_port}", flush=True)
    server.serve_forever(poll_interval=0.05)


# -- the client side ----------------------------------------------------------------------
class Server:
    """A server subprocess for one app spec; ``port``, ``pid``; a context manager."""

    def __init__(self, **spec: Any) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, json.dumps(spec)],
                                     stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            raise SystemExit(f"the server for {spec} did not start")
        self.port = int(line.split()[1])
        self.pid = self.proc.pid

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def post_all(port: int, payloads: Sequence[bytes], headers: dict[str, str]) -> list[float]:
    """POST each payload in turn over one keep-alive connection; seconds per request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    all_headers = {"Content-Type": "application/json", **headers}
    latencies = []
    for body in payloads:
        start = time.perf_counter()
        conn.request("POST", CALLBACK, body=body, headers=all_headers)
        resp = conn.getresponse()
        resp.read()
        latencies.append(time.perf_counter() - start)
        if resp.status != 204:
            raise SystemExit(f"unexpected status {resp.status}: the benchmark is misconfigured")
    conn.close()
    return latencies


def post_concurrently(port: int, payloads: Sequence[bytes], headers: dict[str, str],
                      senders: int) -> list[float]:
    """Spread the payloads over ``senders`` threads, each with its own connection."""
    results: list[list[float]] = [[] for _ in range(senders)]

    def run(i: int) -> None:
        results[i] = post_all(port, payloads[i::senders], headers)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [x for r in results for x in r]


def interleaved(cases: dict[str, Callable[[int], float]], rounds: int) -> dict[str, float]:
    """Run every case once per round, in turn (``run(round)``); the median per case."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(rounds):
        for name, run in cases.items():
            samples[name].append(run(r))
    return {name: statistics.median(values) for name, values in samples.items()}


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def report(rows: Sequence[tuple[str, float, float, float]]) -> int:
    """Print (what, measured, baseline, target) rows as ratios; return the exit status."""
    failed = 0
    print(f"{'comparison':64} {'ratio':>7} {'target':>7}  result")
    for what, measured, baseline, target in rows:
        ratio = measured / baseline
        ok = ratio <= target
        failed += not ok
        print(f"{what:64} {ratio:7.3f} {target:7.2f}  {'PASS' if ok else 'FAIL'}")
    return 1 if failed else 0


if __name__ == "__main__":
    _serve(json.loads(sys.argv[1]))
