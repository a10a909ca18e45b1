"""Fetching what a notification points at (``resourceUrl``, ``hoofdObject``).

Notifications carry URLs only. ``fetch(url)`` GETs one with a fresh ZGW JWT for the API
root it belongs to (``NC_RECEIVER_FETCH_CREDENTIALS``: ``{api_root: {"client_id": ...,
"secret": ...}}``, the longest matching root wins), a timeout, and retries on connection
errors and 502/503/504. A 404 or 410 is no error: the object was deleted meanwhile (or
the URL was wrong), and the result says so with ``gone``. Anything else that is not 2xx
raises :class:`FetchError`.

Inside an app context (every delivery mode runs handlers in one, the Celery worker
included) the current app's settings are used; handlers call
``notification.fetch_resource()`` / ``notification.fetch_hoofd_object()``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .exceptions import NCReceiverError
from .tokens import make_zgw_jwt

log = logging.getLogger(__name__)
GONE = (404, 410)


class FetchError(NCReceiverError):
    """The API did not give the object: unreachable, 5xx after retries, 401/403, ..."""

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


@dataclass(frozen=True)
class Resource:
    """A fetched object: ``data`` is the parsed JSON, or None when it is ``gone``."""

    url: str
    status: int
    data: Any

    @property
    def gone(self) -> bool:
        """True when the API answered 404 or 410: the object no longer exists."""
        return self.status in GONE

    def __bool__(self) -> bool:
        return not self.gone


class Fetcher:
    """A small ZGW API client: JWT per API root, timeouts, retries, 404 as ``gone``."""

    def __init__(self, credentials: Mapping[str, Mapping[str, str]] | None = None, *,
                 timeout: float = 10.0, retries: int = 3, backoff: float = 0.2) -> None:
        self.credentials = dict(credentials or {})
        for root, cred in self.credentials.items():
            if not isinstance(cred, Mapping) or not {"client_id", "secret"} <= set(cred):
                raise ValueError(f"The fetch credentials for {root!r} need 'client_id' and "
                                 "'secret' (NC_RECEIVER_FETCH_CREDENTIALS).")
        self.timeout = timeout
        self.retry = Retry(total=retries, connect=retries, read=retries, status=retries,
                           backoff_factor=backoff, status_forcelist=(502, 503, 504),
                           allowed_methods=("GET",), raise_on_status=False)
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            adapter = HTTPAdapter(max_retries=self.retry)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        return session

    def headers_for(self, url: str) -> dict[str, str]:
        headers = {"Accept": "application/json", "Accept-Crs": "EPSG:4326"}
        roots = [root for root in self.credentials if url.startswith(root)]
        if roots:
            cred = self.credentials[max(roots, key=len)]
            token = make_zgw_jwt(cred["client_id"], cred["secret"], expires_in=300)
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def fetch(self, url: str) -> Resource:
        """GET ``url``; a :class:`Resource` (``gone`` on 404/410), or raise FetchError."""
        try:
            resp = self._session().get(url, headers=self.headers_for(url), timeout=self.timeout)
        except requests.RequestException as exc:
            raise FetchError(f"Could not fetch {url}: {type(exc).__name__}.", url=url) from exc
        if resp.status_code in GONE:
            log.debug("nc_receiver: %s is gone (%d)", url, resp.status_code)
            return Resource(url, resp.status_code, None)
        if not resp.ok:
            raise FetchError(f"Fetching {url} answered {resp.status_code}.", url=url,
                             status=resp.status_code)
        try:
            data = resp.json()
        except ValueError as exc:
            raise FetchError(f"{url} did not answer JSON.", url=url,
                             status=resp.status_code) from exc
        return Resource(url, resp.status_code, data)


def fetcher_for_app(app: Any) -> Fetcher:
    """The app's Fetcher, made once from its settings and kept with the receiver's state."""
    state = app.extensions["nc_receiver"]
    fetcher: Fetcher | None = state.extras.get("fetcher")
    if fetcher is None:
        s = state.settings
        fetcher = state.extras.setdefault("fetcher", Fetcher(
            s.fetch_credentials, timeout=s.fetch_timeout, retries=s.fetch_retries))
    return fetcher


def fetch(url: str) -> Resource:
    """Fetch ``url`` with the current app's credentials (or none outside an app context)."""
    from flask import current_app, has_app_context

    if has_app_context() and "nc_receiver" in current_app.extensions:
        return fetcher_for_app(current_app).fetch(url)
    return Fetcher().fetch(url)
