"""SIGKILL a real inbox-mode server mid-burst: every 204 is processed, at most once more
per worker thread (the handlers that were running at the moment of the kill)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import requests
from conftest import delivery_body

from nc_receiver.inbox import Inbox

APPS = Path(__file__).parent / "apps"
TOKEN = "crash-test-token"
TOTAL = 10_500
SENDERS = 16
KILL_AFTER = 4_000
WORKER_THREADS = 4


class Server:
    def __init__(self, inbox: Path, record: Path) -> None:
        self.args = [sys.executable, str(APPS / "inbox_server.py"), str(inbox), str(record)]
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [*self.args, str(self.port), "--threads", str(WORKER_THREADS)],
            stdout=subprocess.PIPE, text=True, cwd=APPS)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), line
        self.port = int(line.split()[1])

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._close()

    def _close(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(10)
        self._close()


def test_sigkill_mid_burst_loses_no_acknowledged_notification(tmp_path: Path) -> None:
    inbox_path, record = tmp_path / "inbox.sqlite3", tmp_path / "runs.sqlite3"
    template = json.loads(delivery_body())
    bodies = []
    for i in range(TOTAL):
        template["resourceUrl"] = f"https://openzaak.example.nl/zaken/api/v1/statussen/{i}"
        bodies.append(json.dumps(template).encode())
    server = Server(inbox_path, record)
    server.start()
    acked: set[int] = set()
    refused = Counter[str]()
    lock = threading.Lock()
    todo = list(range(TOTAL))

    def sender() -> None:
        # Like the NC: a delivery that gets no 2xx is sent again until it does.
        with requests.Session() as http:
            while True:
                with lock:
                    if not todo:
                        return
                    i = todo.pop()
                try:
                    resp = http.post(f"http://127.0.0.1:{server.port}/callback", data=bodies[i],
                                     headers={"Authorization": TOKEN,
                                              "Content-Type": "application/json"}, timeout=10)
                    ok = resp.status_code == 204
                except requests.RequestException as exc:
                    ok = False
                    with lock:
                        refused[type(exc).__name__] += 1
                    time.sleep(0.02)
                with lock:
                    (acked.add if ok else todo.append)(i)

    threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
    try:
        for t in threads:
            t.start()
        while len(acked) < KILL_AFTER:
            time.sleep(0.005)
        server.kill()
        acked_before_kill = len(acked)
        server.start()  # same port, same inbox; the senders' retries land here
        for t in threads:
            t.join(120)
        assert len(acked) == TOTAL
        with Inbox(inbox_path) as inbox:
            assert inbox.wait_for_idle(60), inbox.stats()
            stats = inbox.stats()
    finally:
        server.stop()
    assert KILL_AFTER <= acked_before_kill < TOTAL and sum(refused.values()) > 0
    with sqlite3.connect(record) as conn:
        runs = Counter(url for url, in conn.execute("SELECT url FROM runs"))
        pids = {pid for pid, in conn.execute("SELECT DISTINCT pid FROM runs")}
    assert len(pids) == 2
    ran = {int(url.rsplit("/", 1)[1]) for url in runs}
    assert ran == set(range(TOTAL)), f"{TOTAL - len(ran)} acknowledged notifications not run"
    twice = [url for url, count in runs.items() if count > 1]
    assert len(twice) <= WORKER_THREADS and max(runs.values()) <= 2, twice
    assert (stats["done"], stats["dead"], stats["messages"]) == (TOTAL, 0, TOTAL)
    print(f"killed after {acked_before_kill} acks; {len(twice)} ran twice; "
          f"refused while down: {dict(refused)}",
          file=sys.stderr)
    assert os.path.getsize(inbox_path) > 0
