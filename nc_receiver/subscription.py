"""Our abonnement at the NC, derived from the handlers and kept in sync idempotently.

``Subscription.sync()`` finds the abonnementen whose ``callbackUrl`` is ours, keeps the
one with the lowest uuid (a rule every process and machine agrees on), deletes the
others, and creates or fully replaces (PUT) the kept one only when it differs from what
the handlers want. The NC never returns ``auth``, so a hash of the credential last set per
abonnement is kept in ``state_dir``: a missing or different record costs one PUT. A file
lock in ``state_dir`` serialises the processes of one machine; across machines the
lowest-uuid rule converges on one abonnement.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .exceptions import ConfigurationError, NCError
from .nc_client import NCClient, uuid_from_url
from .routing import ANY, Router, camelize

try:
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

MAX_CALLBACK_URL, MAX_AUTH = 200, 1000  # Open Notificaties' limits (not in the 1.0.1 spec)
RECORD_FILE, LOCK_FILE = "nc_receiver-subscription.json", "nc_receiver-subscription.lock"
Groups = Mapping[str, Sequence[Mapping[str, str]]]


def wanted_kanalen(
    routers: Iterable[Router], explicit: Groups | None = None
) -> list[dict[str, Any]]:
    """The abonnement's ``kanalen``: one entry per filter group, keys camelCased.

    ``explicit`` (``NC_RECEIVER_KANALEN``) replaces what the handlers want. Handlers on
    every kanaal (``"*"``) cannot be subscribed to by name and add nothing.
    """
    source: dict[str, list[dict[str, str]]] = {}
    for naam, groups in (explicit.items() if explicit is not None else ()):
        source[naam] = [dict(g) for g in groups] or [{}]
    for router in routers if explicit is None else ():
        for naam, groups in router.wanted_kanalen().items():
            merged = source.setdefault(naam, [])
            merged.extend(g for g in groups if g not in merged)
    kanalen: list[dict[str, Any]] = []
    for naam in sorted(n for n in source if n != ANY):
        groups = [{camelize(k): v for k, v in g.items()} for g in source[naam]]
        if {} in groups:
            groups = [{}]  # the whole kanaal: narrower groups add nothing
        unique = {tuple(sorted(g.items())): g for g in groups}
        kanalen.extend({"naam": naam, "filters": unique[key]} for key in sorted(unique))
    if not kanalen:
        raise ConfigurationError(
            "There is nothing to subscribe to: register a handler for a named kanaal "
            "(@receiver.on('zaken')) or set NC_RECEIVER_KANALEN."
        )
    return kanalen


def normalized(kanalen: Iterable[Mapping[str, Any]]) -> list[tuple[str, tuple[Any, ...]]]:
    """Kanalen in a comparable form (order-free, camelCased filter keys)."""
    out = []
    for kanaal in kanalen:
        filters = dict(kanaal.get("filters") or {}).items()
        out.append((str(kanaal["naam"]), tuple(sorted((camelize(k), v) for k, v in filters))))
    return sorted(out)


@dataclass(frozen=True)
class SyncResult:
    """What :meth:`Subscription.sync` did: ``action`` is created, updated or unchanged."""

    action: str
    abonnement: dict[str, Any]
    deleted: int = 0

    def __str__(self) -> str:
        kanalen = ", ".join(
            k["naam"] + (f"[{','.join(sorted(k['filters']))}]" if k.get("filters") else "")
            for k in self.abonnement.get("kanalen", [])
        )  # filter keys only: kenmerk values stay out of the logs
        extra = f"; deleted {self.deleted} duplicate(s)" if self.deleted else ""
        return f"abonnement {self.action} ({self.abonnement.get('url')}) for {kanalen}{extra}"


@dataclass
class Subscription:
    """The abonnement ``callback_url`` should have at the NC that ``client`` talks to.

    ``auth`` is the value the NC will send back verbatim; ``auth_key`` identifies the
    credential behind it (default: ``auth`` itself) so that a freshly minted JWT for the
    same secret does not count as a change.
    """

    client: NCClient
    callback_url: str
    auth: str
    kanalen: list[dict[str, Any]]
    state_dir: Path | None = None
    auth_key: str | None = None
    _memory: dict[str, str] = field(default_factory=dict, repr=False)

    def check(self) -> None:
        """Check the limits, that each kanaal exists and that the filter keys fit it."""
        self.check_limits()
        for naam in sorted({k["naam"] for k in self.kanalen}):
            kanaal = self.client.get_kanaal(naam)
            if kanaal is None:
                raise NCError(
                    f"the publisher has not registered kanaal {naam!r} yet at the NC; have the "
                    "publisher register it (POST /kanaal) or correct the name, then retry",
                    code="kanaal_naam",
                )
            allowed = {camelize(f) for f in kanaal.get("filters") or ()}
            for group in (k for k in self.kanalen if k["naam"] == naam):
                keys = set(group["filters"])
                if not (keys <= allowed or allowed <= keys):
                    raise NCError(
                        f"filter keys must be a subset or superset of the kanaal's filters "
                        f"{sorted(allowed)}: kanaal {naam!r} got {sorted(keys)}; change the "
                        "handlers' kenmerken filters or NC_RECEIVER_KANALEN",
                        code="inconsistent-abonnement-filters",
                    )

    def check_limits(self) -> None:
        """Open Notificaties' column sizes (no network)."""
        if len(self.callback_url) > MAX_CALLBACK_URL:
            raise ConfigurationError(
                f"NC_RECEIVER_CALLBACK_URL is {len(self.callback_url)} characters; Open "
                f"Notificaties stores at most {MAX_CALLBACK_URL}: use a shorter URL."
            )
        if len(self.auth) > MAX_AUTH:
            raise ConfigurationError(
                f"The auth value for the NC is {len(self.auth)} characters; Open Notificaties "
                f"stores at most {MAX_AUTH}: use a shorter NC_RECEIVER_AUTH_TOKENS token."
            )

    def ours(self) -> list[dict[str, Any]]:
        """Our abonnementen at the NC (same ``callbackUrl``), lowest uuid first."""
        found = [a for a in self.client.list_abonnementen()
                 if a.get("callbackUrl") == self.callback_url]
        return sorted(found, key=lambda a: uuid_from_url(a["url"]))

    def differences(self, abonnement: Mapping[str, Any]) -> list[str]:
        """Why ``abonnement`` would be replaced; empty when it is what we want."""
        have, want = normalized(abonnement.get("kanalen") or ()), normalized(self.kanalen)
        out = [f"+ {naam} {dict(fs)}" for naam, fs in want if (naam, fs) not in have]
        out += [f"- {naam} {dict(fs)}" for naam, fs in have if (naam, fs) not in want]
        recorded = self._records().get(abonnement["url"])
        if recorded != self._fingerprint():
            out.append("auth: not set from here yet" if recorded is None else "auth: changed")
        return out

    def sync(self) -> SyncResult:
        """Make the NC hold exactly one abonnement for us, as wanted; write only if needed."""
        self.check()
        deleted, action, result = 0, "unchanged", None
        with self._locked():
            for attempt in range(4):
                try:
                    result = self._sync_once()
                except NCError as exc:  # 404: another machine deleted it under our feet
                    if exc.status != 404 or attempt == 3:
                        raise
                    continue
                deleted += result.deleted
                action = result.action if action == "unchanged" else action
                # A PUT racing a DELETE elsewhere re-creates the row (Django's save() does
                # too), so after any write look once more; another round converges.
                if result.action == "unchanged" and not result.deleted or len(self.ours()) <= 1:
                    break
        assert result is not None
        return SyncResult(action, result.abonnement, deleted)

    def _sync_once(self) -> SyncResult:
        ours, created = self.ours(), None
        if not ours:
            created = self.client.create_abonnement(self.callback_url, self.auth, self.kanalen)
            self._remember(created["url"])
            # Another machine may have created one at the same moment: converge on the lowest.
            ours = self.ours() or [created]
        keep, extra = ours[0], ours[1:]
        for abonnement in extra:
            self.client.delete_abonnement(abonnement["url"])
            self._forget(abonnement["url"])
        if created is not None and keep["url"] == created["url"]:
            return SyncResult("created", created, len(extra))
        if not self.differences(keep):
            return SyncResult("unchanged", keep, len(extra))
        updated = self.client.update_abonnement(keep["url"], self.callback_url, self.auth,
                                                self.kanalen)
        self._remember(updated["url"])
        return SyncResult("updated", updated, len(extra))

    def unsubscribe(self) -> int:
        """Delete every abonnement pointing at our callback; return how many."""
        with self._locked():
            ours = self.ours()
            for abonnement in ours:
                self.client.delete_abonnement(abonnement["url"])
                self._forget(abonnement["url"])
        return len(ours)

    # -- the local record of the auth we set, and the lock --------------------------------
    def _fingerprint(self) -> str:
        key = self.auth_key if self.auth_key is not None else self.auth
        return hashlib.sha256(f"nc_receiver-auth\0{key}".encode()).hexdigest()

    def _records(self) -> dict[str, str]:
        if self.state_dir is None:
            return self._memory
        try:
            data = json.loads((self.state_dir / RECORD_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _remember(self, url: str) -> None:
        self._write({**self._records(), url: self._fingerprint()})

    def _forget(self, url: str) -> None:
        self._write({k: v for k, v in self._records().items() if k != url})

    def _write(self, records: dict[str, str]) -> None:
        if self.state_dir is None:
            self._memory.clear()
            self._memory.update(records)
            return
        path = self.state_dir / RECORD_FILE
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(records, indent=1, sort_keys=True))
        os.replace(tmp, path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self.state_dir is None:
            yield
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / LOCK_FILE, "a+") as handle:
            if fcntl is not None:  # on Windows only the lowest-uuid rule holds
                fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
            yield

