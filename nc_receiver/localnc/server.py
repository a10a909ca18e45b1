"""``LocalNC``: the local NC served by a threaded werkzeug server in a background thread."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Mapping, Sequence
from types import TracebackType

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .app import create_app
from .delivery import DEFAULT_RETRY_DELAYS, Deliverer, DeliveryAttempt
from .store import Store

logger = logging.getLogger(__name__)

DEFAULT_CLIENT_ID = "localnc"


class _RequestHandler(WSGIRequestHandler):
    """Logs each request through this module's logger at DEBUG instead of to stderr."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.debug("%s %s -> %s", self.command, self.path, code)


class LocalNC:
    """A Notificatiecomponent for development and tests, on a free port by default.

    ``clients`` maps ``client_id`` to its secret (a random one is made for
    ``"localnc"`` when left out); the first client is the default one, exposed as
    :attr:`client_id` / :attr:`secret`. Every client may publish and consume.
    ``db_path`` keeps kanalen and abonnementen in an SQLite file instead of in memory.
    ``retry_delays`` are the seconds before each delivery retry.
    """

    def __init__(
        self,
        clients: Mapping[str, str] | None = None,
        db_path: str | None = None,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        probe_timeout: float = 10.0,
    ) -> None:
        self.clients = dict(clients) if clients else {DEFAULT_CLIENT_ID: secrets.token_urlsafe(32)}
        self.client_id, self.secret = next(iter(self.clients.items()))
        self.db_path = db_path
        self.retry_delays = tuple(retry_delays)
        self.host = host
        self.port = port
        self.probe_timeout = probe_timeout
        self.app: Flask | None = None
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._store: Store | None = None
        self._deliverer: Deliverer | None = None

    @property
    def url(self) -> str:
        """The API root, e.g. ``http://127.0.0.1:54321/api/v1``."""
        if self._server is None:
            raise RuntimeError("The local NC is not running; call start() or use it in a 'with'.")
        return f"http://{self.host}:{self._server.server_port}/api/v1"

    @property
    def deliveries(self) -> list[DeliveryAttempt]:
        """Every delivery attempt so far (a snapshot), in the order they finished."""
        return self._deliverer.attempts if self._deliverer else []

    def wait_for_deliveries(self, timeout: float = 5.0) -> bool:
        """Wait until no delivery is pending or waiting for a retry; False on timeout."""
        return self._deliverer.wait_idle(timeout) if self._deliverer else True

    def start(self) -> LocalNC:
        """Start serving in a background thread; returns self."""
        if self._server is not None:
            raise RuntimeError("The local NC is already running; call stop() first.")
        self._store = Store(self.db_path)
        self._deliverer = Deliverer(self.retry_delays)
        self.app = create_app(
            clients=self.clients,
            store=self._store,
            deliverer=self._deliverer,
            probe_timeout=self.probe_timeout,
        )
        self._server = make_server(
            self.host, self.port, self.app, threaded=True, request_handler=_RequestHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="localnc-server",
            daemon=True,
        )
        self._thread.start()
        logger.info("local NC listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and delivering, and close the store. Safe to call twice."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._deliverer is not None:
            self._deliverer.close()
        if self._store is not None:
            self._store.close()
        self._server = self._thread = self._store = self._deliverer = None

    def __enter__(self) -> LocalNC:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"<LocalNC {where} client_id={self.client_id!r}>"
