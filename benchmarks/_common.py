"""Shared helpers for the benchmark scripts: apps, loopback servers, timing, reporting."""

from __future__ import annotations

import http.client
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from flask import Flask, Response, request

BODY = (Path(__file__).resolve().parent.parent / "tests" / "samples" /
        "delivery_body.json").read_bytes()
CALLBACK = "/callback"


def bare_app() -> Flask:
    """The baseline: a plain Flask route that parses the JSON body and answers 204."""
    app = Flask("bare")

    @app.post(CALLBACK)
    def callback() -> Response:
        json.loads(request.get_data())
        return Response(status=204)

    return app


def time_requests(port: int, headers: dict[str, str], count: int,
                  body: bytes = BODY) -> float:
    """Seconds per request for ``count`` sequential POSTs over one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    all_headers = {"Content-Type": "application/json", **headers}
    start = time.perf_counter()
    for _ in range(count):
        conn.request("POST", CALLBACK, body=body, headers=all_headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 204:
            raise SystemExit(f"unexpected status {resp.status}: the benchmark is misconfigured")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed / count


def interleaved(cases: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Run every case once per round, in turn; the median per case damps machine noise."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, run in cases.items():
            samples[name].append(run())
    return {name: statistics.median(values) for name, values in samples.items()}


def report(rows: Sequence[tuple[str, float, float, float]]) -> int:
    """Print (what, measured, baseline, target) rows as ratios; return the exit status."""
    failed = 0
    print(f"{'comparison':58} {'ratio':>7} {'target':>7}  result")
    for what, measured, baseline, target in rows:
        ratio = measured / baseline
        ok = ratio <= target
        failed += not ok
        print(f"{what:58} {ratio:7.3f} {target:7.2f}  {'PASS' if ok else 'FAIL'}")
    return 1 if failed else 0
