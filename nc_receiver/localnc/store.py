"""Storage of the local NC's kanalen and abonnementen: in memory or in an SQLite file.

One SQLite connection guarded by a lock serves every request thread; ``":memory:"`` (the
default) keeps the data for the lifetime of the store only.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kanaal (
    uuid TEXT PRIMARY KEY,
    naam TEXT NOT NULL UNIQUE,
    documentatie_link TEXT NOT NULL,
    filters TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS abonnement (
    uuid TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    callback_url TEXT NOT NULL,
    auth TEXT NOT NULL,
    kanalen TEXT NOT NULL,
    send_cloudevents INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class Kanaal:
    """A registered kanaal and the kenmerk names it can be filtered on."""

    uuid: str
    naam: str
    documentatie_link: str = ""
    filters: tuple[str, ...] = ()

    def matches_filter_names(self, keys: Iterable[str]) -> bool:
        """True when ``keys`` are a subset or a superset of this kanaal's filters."""
        given, allowed = set(keys), set(self.filters)
        return given <= allowed or allowed <= given


@dataclass(frozen=True)
class FilterGroup:
    """One kanaal of an abonnement with its filters (keys in snake_case, as stored)."""

    naam: str
    filters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Abonnement:
    """A subscription: where to deliver, the verbatim ``auth`` header, which kanalen."""

    uuid: str
    callback_url: str
    auth: str
    kanalen: tuple[FilterGroup, ...] = ()
    send_cloudevents: bool = False


class Store:
    """Thread-safe storage of kanalen and abonnementen."""

    def __init__(self, db_path: str | None = None) -> None:
        self.db_path = db_path or ":memory:"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.db_path, check_same_thread=False)
        with self._lock, self._db:
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock, self._db:
            return self._db.execute(sql, params).fetchall()

    def add_kanaal(self, naam: str, documentatie_link: str, filters: Iterable[str]) -> Kanaal:
        """Register a kanaal; ``sqlite3.IntegrityError`` when ``naam`` is taken."""
        kanaal = Kanaal(str(uuid.uuid4()), naam, documentatie_link, tuple(filters))
        self._query(
            "INSERT INTO kanaal VALUES (?, ?, ?, ?)",
            (kanaal.uuid, naam, documentatie_link, json.dumps(list(kanaal.filters))),
        )
        return kanaal

    def list_kanalen(self, naam: str | None = None) -> list[Kanaal]:
        """All kanalen in registration order, or the one named ``naam``."""
        where, params = ("WHERE naam = ?", [naam]) if naam is not None else ("", [])
        rows = self._query(f"SELECT * FROM kanaal {where} ORDER BY rowid", params)
        return [_kanaal(r) for r in rows]

    def get_kanaal(self, kanaal_uuid: str) -> Kanaal | None:
        """The kanaal with this uuid, if any."""
        rows = self._query("SELECT * FROM kanaal WHERE uuid = ?", [kanaal_uuid])
        return _kanaal(rows[0]) if rows else None

    def find_kanaal(self, naam: str) -> Kanaal | None:
        """The kanaal named ``naam``, if it is registered."""
        found = self.list_kanalen(naam)
        return found[0] if found else None

    def save_abonnement(self, abonnement: Abonnement) -> Abonnement:
        """Insert or fully replace an abonnement (the uuid decides which)."""
        kanalen = json.dumps([{"naam": g.naam, "filters": g.filters} for g in abonnement.kanalen])
        self._query(
            "INSERT INTO abonnement VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM abonnement),"
            " ?, ?, ?, ?) ON CONFLICT(uuid) DO UPDATE SET callback_url = excluded.callback_url,"
            " auth = excluded.auth, kanalen = excluded.kanalen,"
            " send_cloudevents = excluded.send_cloudevents",
            (
                abonnement.uuid,
                abonnement.callback_url,
                abonnement.auth,
                kanalen,
                int(abonnement.send_cloudevents),
            ),
        )
        return abonnement

    def list_abonnementen(self) -> list[Abonnement]:
        """Every abonnement, oldest first."""
        return [_abonnement(r) for r in self._query("SELECT * FROM abonnement ORDER BY seq")]

    def get_abonnement(self, abonnement_uuid: str) -> Abonnement | None:
        """The abonnement with this uuid, if any."""
        rows = self._query("SELECT * FROM abonnement WHERE uuid = ?", [abonnement_uuid])
        return _abonnement(rows[0]) if rows else None

    def delete_abonnement(self, abonnement_uuid: str) -> bool:
        """Delete an abonnement; False when there was none."""
        with self._lock, self._db:
            cursor = self._db.execute("DELETE FROM abonnement WHERE uuid = ?", [abonnement_uuid])
            return cursor.rowcount > 0


def _kanaal(row: tuple[Any, ...]) -> Kanaal:
    return Kanaal(row[0], row[1], row[2], tuple(json.loads(row[3])))


def _abonnement(row: tuple[Any, ...]) -> Abonnement:
    groups = tuple(FilterGroup(g["naam"], dict(g["filters"])) for g in json.loads(row[4]))
    return Abonnement(row[0], row[2], row[3], groups, bool(row[5]))
