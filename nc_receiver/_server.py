"""A real threaded WSGI server on loopback, in a background thread (tests, demo, benchmarks)."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    """No access log line per request (tests and benchmarks send thousands)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class ServerThread:
    """Serve ``app`` on ``host:port`` (port 0 = a free one) until :meth:`stop`."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0,
                 threaded: bool = True, quiet: bool = True) -> None:
        self.app = app
        handler = _QuietHandler if quiet else None
        self._server: BaseWSGIServer = make_server(host, port, app, threaded=threaded,
                                                   request_handler=handler)
        self.host = host
        self.port: int = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"nc-receiver-server-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
