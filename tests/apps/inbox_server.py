"""A receiver in inbox mode in its own process, for the crash test and the benchmark.

``python inbox_server.py INBOX RECORD [PORT] [--sleep S]`` serves on 127.0.0.1:PORT (0 = a
free port), prints ``PORT <n>`` when it accepts connections, and records every handler run
as a row in the SQLite file RECORD (table ``runs``). SIGINT stops it cleanly.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import threading
import time

from flask import Flask

from nc_receiver import Notification, NotificationReceiver, Router
from nc_receiver._server import _QuietHandler

TOKEN = "crash-test-token"


def create_app(inbox: str, record: str, sleep: float = 0.0, threads: int = 4) -> Flask:
    app = Flask("inbox_server")
    app.config.update(
        NC_RECEIVER_AUTH_TOKENS=[TOKEN], NC_RECEIVER_DELIVERY="inbox",
        NC_RECEIVER_INBOX_PATH=inbox, NC_RECEIVER_CALLBACK_PATH="/callback",
        NC_RECEIVER_LEASE_SECONDS=2, NC_RECEIVER_WORKER_THREADS=threads,
    )
    receiver = NotificationReceiver(router=Router(), include_default_router=False)
    local = threading.local()

    @receiver.on("zaken")
    def record_run(n: Notification) -> None:
        if sleep:
            time.sleep(sleep)
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = sqlite3.connect(record, timeout=30)
        with conn:
            conn.execute("INSERT INTO runs (url, pid) VALUES (?, ?)",
                         (n.resource_url, os.getpid()))

    receiver.init_app(app)
    return app


def prepare_record(record: str) -> None:
    with sqlite3.connect(record) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS runs (url TEXT, pid INTEGER)")


def main() -> None:
    from werkzeug.serving import make_server

    parser = argparse.ArgumentParser()
    parser.add_argument("inbox")
    parser.add_argument("record")
    parser.add_argument("port", type=int, nargs="?", default=0)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    prepare_record(args.record)
    app = create_app(args.inbox, args.record, args.sleep, args.threads)
    server = make_server("127.0.0.1", args.port, app, threaded=True,
                         request_handler=_QuietHandler)
    print(f"PORT {server.server_port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
