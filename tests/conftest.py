from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from nc_receiver import NotificationReceiver, Router
from nc_receiver._server import ServerThread

SAMPLES = Path(__file__).parent / "samples"
TOKEN = "sometoken"
CLIENT_ID = "open-notificaties"
SECRET = "a-shared-secret-of-at-least-32-bytes!"
CALLBACK = "/callback"


def sample_lines(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (SAMPLES / name).read_text().splitlines() if line]


def delivery_body() -> bytes:
    return (SAMPLES / "delivery_body.json").read_bytes()


def build_app(name: str = "test_app", **config: Any) -> tuple[Flask, NotificationReceiver]:
    """An app (sync mode) with a receiver of its own (no default registry); kwargs are
    NC_RECEIVER_* settings by their lower-case suffix."""
    app = Flask(name)
    app.config.update({
        "NC_RECEIVER_CALLBACK_PATH": CALLBACK,
        "NC_RECEIVER_AUTH_TOKENS": [TOKEN],
        "NC_RECEIVER_JWT_SECRETS": {CLIENT_ID: SECRET},
        "NC_RECEIVER_DELIVERY": "sync",
    })
    app.config.update({f"NC_RECEIVER_{k.upper()}": v for k, v in config.items()})
    return app, NotificationReceiver(router=Router(), include_default_router=False)


@pytest.fixture
def make_app() -> Callable[..., tuple[Flask, NotificationReceiver]]:
    """The :func:`build_app` factory as a fixture."""
    return build_app


@pytest.fixture
def serve() -> Iterator[Callable[[Flask], ServerThread]]:
    """Start an app on a real loopback server; stopped after the test."""
    servers: list[ServerThread] = []

    def start(app: Flask) -> ServerThread:
        server = ServerThread(app).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def raw_request(port: int, data: bytes, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Send exact bytes over a socket; return status, headers (lower-cased) and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if _complete(b"".join(chunks)):
                break
    response = b"".join(chunks)
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def _complete(response: bytes) -> bool:
    head, sep, body = response.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return head.split()[1] in (b"204", b"304")


def build_request(path: str, headers: dict[str, str], body: bytes) -> bytes:
    """An HTTP/1.1 request with the headers exactly as given (name case and order)."""
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode("latin-1") + b"\r\n" + body
