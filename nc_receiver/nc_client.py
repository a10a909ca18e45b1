"""A client for the Notificatiecomponent's own API (kanalen, abonnementen, publishing).

Every call carries a fresh ZGW JWT and a timeout. Connection errors and 5xx answers are
retried with exponential backoff and end in :class:`NCUnavailable`; any other refusal
becomes an :class:`NCError` whose message says what to do about it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import requests

from .exceptions import NCError, NCUnavailable
from .notification import Notification
from .tokens import make_zgw_jwt

logger = logging.getLogger(__name__)

CONSUME = "notificaties.consumeren"
PUBLISH = "notificaties.publiceren"
_READ = f"{CONSUME} or {PUBLISH}"
#: ``[{"naam": "zaken", "filters": {"bronorganisatie": "123456789"}}, ...]``
Kanalen = Sequence[Mapping[str, Any]]


def uuid_from_url(url: str) -> str:
    """Return the UUID an NC resource URL ends with (a bare UUID is returned as-is).

    Raises ``ValueError`` when the last path segment is not a UUID.
    """
    segment = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    try:
        return str(uuid.UUID(segment))
    except ValueError:
        raise ValueError(f"{url!r} does not end with a UUID; pass an NC resource URL") from None


class NCClient:
    """Talks to the NC API rooted at ``base_url`` (e.g. ``http://nc/api/v1``).

    ``retries`` is the number of extra attempts after a connection error or a 5xx; the
    n-th retry waits ``backoff * 2 ** (n - 1)`` seconds.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        secret: str,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._secret = secret
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.session = session if session is not None else requests.Session()

    def list_kanalen(self, naam: str | None = None) -> list[dict[str, Any]]:
        """All kanalen, or those named ``naam`` (an empty list when there is none)."""
        params = {"naam": naam} if naam is not None else None
        return self._list("GET", "/kanaal", scope=_READ, params=params)

    def get_kanaal(self, naam: str) -> dict[str, Any] | None:
        """The kanaal named ``naam``, or ``None`` when the publisher has not registered it."""
        return next((k for k in self.list_kanalen(naam) if k.get("naam") == naam), None)

    def create_kanaal(
        self, naam: str, filters: Iterable[str] = (), documentatie_link: str = ""
    ) -> dict[str, Any]:
        """Register kanaal ``naam`` with the kenmerk names it can be filtered on."""
        body: dict[str, Any] = {"naam": naam, "filters": list(filters)}
        if documentatie_link:
            body["documentatieLink"] = documentatie_link
        return self._json("POST", "/kanaal", scope=PUBLISH, json=body)

    def list_abonnementen(self) -> list[dict[str, Any]]:
        """Every abonnement at the NC, of all clients (``auth`` is never included)."""
        return self._list("GET", "/abonnement", scope=_READ)

    def get_abonnement(self, uuid_or_url: str) -> dict[str, Any]:
        """One abonnement; :class:`NCError` with status 404 when it does not exist."""
        return self._json("GET", self._abonnement_path(uuid_or_url), scope=_READ)

    def create_abonnement(self, callback_url: str, auth: str, kanalen: Kanalen) -> dict[str, Any]:
        """Create an abonnement; the NC probes ``callback_url`` before it answers."""
        body = _abonnement_body(callback_url, auth, kanalen)
        return self._json("POST", "/abonnement", scope=CONSUME, json=body)

    def update_abonnement(
        self, uuid_or_url: str, callback_url: str, auth: str, kanalen: Kanalen
    ) -> dict[str, Any]:
        """Replace an abonnement as a whole (PUT).

        Never PATCH: without ``kanalen`` the NC deletes every filter group, and without
        ``auth`` its probe goes out unauthenticated and fails.
        """
        body = _abonnement_body(callback_url, auth, kanalen)
        return self._json("PUT", self._abonnement_path(uuid_or_url), scope=CONSUME, json=body)

    def delete_abonnement(self, uuid_or_url: str) -> None:
        """Delete an abonnement; one that is already gone is fine."""
        self._request(
            "DELETE", self._abonnement_path(uuid_or_url), scope=CONSUME, ok=(204, 200, 404)
        )

    def publish(self, notification: Mapping[str, Any] | Notification) -> dict[str, Any]:
        """Publish a notification (201 at Open Notificaties, 200 in the spec)."""
        body = (
            notification.to_dict() if isinstance(notification, Notification) else dict(notification)
        )
        return self._json("POST", "/notificaties", scope=PUBLISH, json=body, ok=(200, 201))

    def _abonnement_path(self, uuid_or_url: str) -> str:
        # Built from base_url, not the NC's own url: behind a proxy or in containers the
        # host the NC reports is often not the one we can reach.
        return f"/abonnement/{uuid_from_url(uuid_or_url)}"

    def _list(self, method: str, path: str, *, scope: str, **kwargs: Any) -> list[dict[str, Any]]:
        # Open Notificaties answers a bare, unpaginated array.
        return cast("list[dict[str, Any]]", self._json(method, path, scope=scope, **kwargs))

    def _json(self, method: str, path: str, *, scope: str, **kwargs: Any) -> dict[str, Any]:
        response = self._request(method, path, scope=scope, **kwargs)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, (dict, list)):
            raise NCError(
                f"the NC answered {method} {path} with {response.status_code} but the body is "
                "not a JSON object; check that the base URL is the NC's API root (…/api/v1)",
                status=response.status_code,
            )
        return cast("dict[str, Any]", data)  # a list for the list calls; _list knows

    def _request(
        self,
        method: str,
        path: str,
        *,
        scope: str,
        ok: Sequence[int] = (200, 201),
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> requests.Response:
        url = self.base_url + path
        for attempt in range(1, self.retries + 2):
            last = attempt > self.retries
            token = make_zgw_jwt(self.client_id, self._secret)
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            try:
                response = self.session.request(
                    method, url, headers=headers, json=json, params=params, timeout=self.timeout
                )
            except requests.RequestException as exc:
                # A POST that timed out while reading may have been applied at the NC:
                # retrying it could create a second abonnement.
                if last or (method == "POST" and isinstance(exc, requests.ReadTimeout)):
                    raise NCUnavailable(
                        f"could not reach the NC for {method} {url} after {attempt} attempt(s) "
                        f"({type(exc).__name__}); check the NC base URL and that it is up"
                    ) from exc
                reason = type(exc).__name__
            else:
                logger.debug("NC %s %s -> %s", method, url, response.status_code)
                if response.status_code in ok:
                    return response
                if response.status_code < 500:
                    raise self._refusal(response, method, url, scope, json)
                if last:
                    raise NCUnavailable(
                        f"the NC kept answering {response.status_code} to {method} {url} "
                        f"after {attempt} attempt(s); check the NC's logs",
                        status=response.status_code,
                    ) from requests.HTTPError(f"HTTP {response.status_code}", response=response)
                reason = f"HTTP {response.status_code}"
            delay = self.backoff * 2 ** (attempt - 1)
            logger.warning("NC %s %s failed (%s); retrying in %.2f s", method, url, reason, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _refusal(
        self, response: requests.Response, method: str, url: str, scope: str, body: Any
    ) -> NCError:
        """An NCError for a 4xx answer, with a message that names the fix."""
        status = response.status_code
        try:
            problem = response.json()
        except ValueError:
            problem = None
        problem = problem if isinstance(problem, dict) else {}
        params = [p for p in problem.get("invalidParams") or [] if isinstance(p, dict)]
        codes = [str(p.get("code")) for p in params]
        code = next((c for c in codes if c in _HINTS), codes[0] if codes else problem.get("code"))
        names = _kanaal_names(body)
        if names and status == 400 and any(p.get("name") in ("kanaal", "naam") for p in params):
            hint = _HINTS["kanaal_naam"]  # a 400 about the kanaal's name, whatever its code
        elif code == "inconsistent-abonnement-filters":
            hint = self._filters_hint(body)
        elif code in _HINTS:
            hint = _HINTS[code]
        elif status in (401, 403):
            hint = (
                f"the NC refused client_id {self.client_id!r} (HTTP {status}): check "
                f"client_id/secret and that the NC grants this client the scope {scope}"
            )
        else:
            hint = f"the NC answered {status} to {method} {url}: " + (
                "; ".join(f"{p.get('name')}: {p.get('reason')} ({p.get('code')})" for p in params)
                or str(problem.get("detail") or response.reason)
            )
        which = " or ".join(repr(n) for n in names) or "(unnamed)"
        message = hint.format(kanaal=which, url=(body or {}).get("callbackUrl"))
        return NCError(message, status=status, code=code, problem=problem)

    def _filters_hint(self, body: Any) -> str:
        for group in body.get("kanalen", []):
            try:
                kanaal = self.get_kanaal(group["naam"])
            except NCError:  # only a hint: never hide the original refusal
                continue
            allowed, keys = set(kanaal["filters"] if kanaal else ()), set(group["filters"])
            if kanaal and not (keys <= allowed or allowed <= keys):
                return (
                    (
                        f"filter keys must be a subset or superset of the kanaal's filters "
                        f"{sorted(allowed)}: kanaal {group['naam']!r} got {sorted(keys)}"
                    )
                    .replace("{", "{{")
                    .replace("}", "}}")
                )
        return "filter keys must be a subset or superset of the kanaal's filters [...]"


_HINTS = {
    "kanaal_naam": (
        "the publisher has not registered kanaal {kanaal} yet at the NC; have the publisher "
        "register it (POST /kanaal) or correct the name, then retry"
    ),
    "no-auth-on-callback-url": (
        "the NC called the callback without authorization and got a 2xx; the receiver must "
        "answer 401/403 to unauthenticated requests"
    ),
    "invalid-callback-url": (
        "the NC's authorized probe of {url} did not get a 2xx (204): check "
        "NC_RECEIVER_CALLBACK_URL is reachable from the NC and that the auth value is accepted"
    ),
    "inconsistent-abonnement-filters": "",
    "kenmerken_inconsistent": (
        "the notification's kenmerken must be a subset or superset of the kanaal's filters; "
        "check the kanaal's filters (GET /kanaal?naam=...)"
    ),
}
_HINTS["message_kanaal"] = _HINTS["kanaal_naam"]  # the same refusal, when publishing


def _abonnement_body(callback_url: str, auth: str, kanalen: Kanalen) -> dict[str, Any]:
    return {
        "callbackUrl": callback_url,
        "auth": auth,
        "kanalen": [{"naam": k["naam"], "filters": dict(k.get("filters") or {})} for k in kanalen],
    }


def _kanaal_names(body: Any) -> list[str]:
    """The kanaal names an abonnement or notification body refers to."""
    if not isinstance(body, dict):
        return []
    if "kanaal" in body:
        return [str(body["kanaal"])]
    return [str(k.get("naam")) for k in body.get("kanalen", [])]
