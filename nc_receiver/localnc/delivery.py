"""Outgoing calls of the local NC: the subscription probe and background delivery.

Both behave as Open Notificaties 1.16.1 does on the wire: the probe posts a fixed body,
first without and then with ``AUTHORIZATION: <auth>``; a delivery posts the
``json.dumps`` body with ``Authorization: <auth>`` verbatim, in parallel, unordered,
retried on anything but a 2xx along a backoff schedule and then dropped.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone

import requests

from .store import Abonnement

logger = logging.getLogger(__name__)

#: The exact body Open Notificaties sends to a callback while validating an abonnement.
PROBE_BODY = (
    b'{"kanaal": "test", "hoofdObject": "http://some.hoofdobject.nl/", "resource": '
    b'"some_resource", "resourceUrl": "http://some.resource.nl/", "actie": "create", '
    b'"aanmaakdatum": "2019-01-01T12:00:00Z", "kenmerken": {}}'
)
#: Seconds before each retry on a fresh Open Notificaties install.
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (5.0, 15.0, 50.0, 50.0, 50.0)
TIMEOUT = 10.0


def probe(url: str, auth: str | None, *, timeout: float = TIMEOUT) -> int | None:
    """POST the probe body to ``url``; the status, or None when it could not be reached.

    ``auth`` None sends no authorization header at all (the first probe, and the second
    one of a PATCH without ``auth``).
    """
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["AUTHORIZATION"] = auth  # upper-case on the wire, as the real NC sends it
    try:
        return requests.post(url, data=PROBE_BODY, headers=headers, timeout=timeout).status_code
    except requests.RequestException as exc:
        logger.info("probe of %s failed: %s", url, type(exc).__name__)
        return None


def delivery_body(message: Mapping[str, object]) -> bytes:
    """The bytes a callback receives: ``json.dumps`` (ASCII escapes), in the NC's key order."""
    order = ("actie", "kanaal", "resource", "source", "kenmerken", "hoofdObject", "resourceUrl")
    ordered = {k: message[k] for k in (*order, "aanmaakdatum") if k in message}
    return json.dumps(ordered).encode()


def matches(abonnement: Abonnement, kanaal: str, kenmerken: Mapping[str, str]) -> bool:
    """True when any of the abonnement's filter groups for ``kanaal`` lets the message through.

    Within a group every filter must equal the kenmerk exactly (case-sensitive), ``"*"``
    matches anything, and a filter whose key the message lacks passes.
    """
    return any(
        all(value == "*" or kenmerken.get(key, value) == value for key, value in g.filters.items())
        for g in abonnement.kanalen
        if g.naam == kanaal
    )


def select(
    abonnementen: Iterable[Abonnement], kanaal: str, kenmerken: Mapping[str, str]
) -> list[Abonnement]:
    """The abonnementen a message on ``kanaal`` goes to (each once)."""
    return [a for a in abonnementen if matches(a, kanaal, kenmerken)]


@dataclass(frozen=True)
class DeliveryAttempt:
    """One attempt to deliver a notification to an abonnement's callback."""

    abonnement: str
    url: str
    attempt: int
    status: int | None
    error: str | None
    time: datetime

    @property
    def ok(self) -> bool:
        """True when the callback answered a 2xx."""
        return self.status is not None and 200 <= self.status < 300


class Deliverer:
    """Delivers notifications on a thread pool, with retries, keeping a log of attempts."""

    def __init__(
        self,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        *,
        timeout: float = TIMEOUT,
        max_workers: int = 16,
    ) -> None:
        self.retry_delays = tuple(retry_delays)
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="localnc-delivery")
        self._stopping = threading.Event()
        self._lock = threading.Condition()
        self._attempts: list[DeliveryAttempt] = []
        self._pending = 0

    @property
    def attempts(self) -> list[DeliveryAttempt]:
        """A snapshot of every attempt so far, in the order they finished."""
        with self._lock:
            return list(self._attempts)

    def clear(self) -> None:
        """Forget the attempts logged so far."""
        with self._lock:
            self._attempts.clear()

    def deliver(self, abonnement: Abonnement, body: bytes) -> None:
        """Queue ``body`` for delivery to ``abonnement`` and return at once."""
        with self._lock:
            self._pending += 1
        future = self._pool.submit(self._run, abonnement, body)
        future.add_done_callback(self._finished)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no delivery is pending or being retried; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        """Stop retrying, drop queued deliveries, and wait for running attempts to end."""
        self._stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _finished(self, _future: Future[None]) -> None:
        with self._lock:
            self._pending -= 1
            self._lock.notify_all()

    def _run(self, abonnement: Abonnement, body: bytes) -> None:
        headers = {"Content-Type": "application/json", "Authorization": abonnement.auth}
        for attempt in range(1, len(self.retry_delays) + 2):
            status: int | None = None
            error: str | None = None
            try:
                response = requests.post(
                    abonnement.callback_url, data=body, headers=headers, timeout=self.timeout
                )
                status = response.status_code
            except requests.RequestException as exc:
                error = f"{type(exc).__name__}: {exc}"
            record = DeliveryAttempt(
                abonnement.uuid,
                abonnement.callback_url,
                attempt,
                status,
                error,
                datetime.now(timezone.utc),
            )
            with self._lock:
                self._attempts.append(record)
            if record.ok:
                logger.debug("delivered to %s (attempt %d)", abonnement.callback_url, attempt)
                return
            if attempt > len(self.retry_delays):
                break
            delay = self.retry_delays[attempt - 1]
            logger.info(
                "delivery to %s failed (%s); retry in %s s",
                abonnement.callback_url,
                status or error,
                delay,
            )
            if self._stopping.wait(delay):
                return
        logger.warning(
            "dropping a notification for abonnement %s after %d attempts",
            abonnement.uuid,
            len(self.retry_delays) + 1,
        )
