"""The local NC's views: kanalen, abonnementen and publishing, as Open Notificaties answers."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from flask import Response, current_app, request

from .delivery import Deliverer, delivery_body, probe, select
from .store import Abonnement, Kanaal, Store
from .validation import (
    AbonnementInput,
    format_datetime,
    invalid,
    parse_abonnement,
    parse_kanaal,
    parse_message,
    to_camel,
)

EXTENSION = "nc_receiver.localnc"


@dataclass
class State:
    """What the views need; kept in ``app.extensions["nc_receiver.localnc"]``."""

    store: Store
    deliverer: Deliverer
    clients: Mapping[str, str]
    probe_timeout: float


class Problem(Exception):
    """An error answered as ``application/problem+json``."""

    def __init__(self, status: int, code: str, title: str, detail: str, kind: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.title, self.detail = status, code, title, detail
        self.kind = kind  # names the type URI: .../ref/fouten/<kind>/


def current_state() -> State:
    state: State = current_app.extensions[EXTENSION]
    return state


def _api(path: str) -> str:
    return f"{request.host_url}api/v1{path}"


def _body() -> Any:
    try:
        return json.loads(request.get_data())
    except ValueError as exc:
        raise invalid("nonFieldErrors", "parse_error", f"JSON parse error - {exc}") from exc


def _json(data: Any, status: int = 200, location: str | None = None) -> Response:
    response = Response(json.dumps(data), status, content_type="application/json")
    if location:
        response.headers["Location"] = location
    return response


def _render_kanaal(kanaal: Kanaal) -> dict[str, Any]:
    return {
        "url": _api(f"/kanaal/{kanaal.uuid}"),
        "naam": kanaal.naam,
        "documentatieLink": kanaal.documentatie_link,
        "filters": list(kanaal.filters),
    }


def kanaal_list() -> Response:
    kanalen = current_state().store.list_kanalen(request.args.get("naam"))
    return _json([_render_kanaal(k) for k in kanalen])


def kanaal_create() -> Response:
    data = parse_kanaal(_body())
    try:
        kanaal = current_state().store.add_kanaal(data.naam, data.documentatie_link, data.filters)
    except sqlite3.IntegrityError:
        raise invalid("naam", "unique", "Kanaal met deze Naam bestaat al.") from None
    rendered = _render_kanaal(kanaal)
    return _json(rendered, 201, rendered["url"])


def kanaal_read(kanaal_uuid: uuid.UUID) -> Response:
    kanaal = current_state().store.get_kanaal(str(kanaal_uuid))
    if kanaal is None:
        raise _not_found()
    return _json(_render_kanaal(kanaal))


def _render_abonnement(abonnement: Abonnement) -> dict[str, Any]:
    # ``auth`` is write-only: never rendered.
    return {
        "url": _api(f"/abonnement/{abonnement.uuid}"),
        "callbackUrl": abonnement.callback_url,
        "kanalen": [
            {"filters": {to_camel(k): v for k, v in g.filters.items()}, "naam": g.naam}
            for g in abonnement.kanalen
        ],
        "sendCloudevents": abonnement.send_cloudevents,
        "cloudeventFilters": [],
    }


def _not_found() -> Problem:
    return Problem(404, "not_found", "Niet gevonden.", "Niet gevonden.", "NotFound")


def _validated(data: AbonnementInput, existing: Abonnement | None) -> Abonnement:
    """Probe the callback and check the kanalen, as the NC does before it saves."""
    state = current_state()
    url = data.callback_url or (existing.callback_url if existing else "")
    if (status := probe(url, None, timeout=state.probe_timeout)) and 200 <= status < 300:
        raise invalid(
            "callbackUrl",
            "no-auth-on-callback-url",
            "De opgegeven callback URL is niet beveiligd met autorisatie.",
        )
    # A PATCH without auth probes without it: the real NC does not fall back to the stored one.
    status = probe(url, data.auth, timeout=state.probe_timeout)
    if status is None or not 200 <= status <= 209:
        raise invalid(
            "callbackUrl",
            "invalid-callback-url",
            "De opgegeven callback URL kan geen notificaties ontvangen.",
        )
    # A PATCH without kanalen deletes every filter group, exactly like Open Notificaties.
    groups = data.kanalen or ()
    for group in groups:
        kanaal = state.store.find_kanaal(group.naam)
        if kanaal is None:
            raise invalid("naam", "kanaal_naam", "Kanaal met deze naam bestaat niet.")
        if not kanaal.matches_filter_names(group.filters):
            raise invalid(
                "filters",
                "inconsistent-abonnement-filters",
                "abonnement filters aren't consistent with kanaal filters",
            )
    return Abonnement(
        existing.uuid if existing else str(uuid.uuid4()),
        url,
        data.auth if data.auth is not None else (existing.auth if existing else ""),
        groups,
        data.send_cloudevents
        if data.send_cloudevents is not None
        else (existing.send_cloudevents if existing else False),
    )


def abonnement_list() -> Response:
    return _json([_render_abonnement(a) for a in current_state().store.list_abonnementen()])


def abonnement_create() -> Response:
    abonnement = current_state().store.save_abonnement(_validated(parse_abonnement(_body()), None))
    rendered = _render_abonnement(abonnement)
    return _json(rendered, 201, rendered["url"])


def _existing(abonnement_uuid: str) -> Abonnement:
    abonnement = current_state().store.get_abonnement(abonnement_uuid)
    if abonnement is None:
        raise _not_found()
    return abonnement


def abonnement_read(abonnement_uuid: uuid.UUID) -> Response:
    return _json(_render_abonnement(_existing(str(abonnement_uuid))))


def abonnement_update(abonnement_uuid: uuid.UUID) -> Response:
    existing = _existing(str(abonnement_uuid))
    data = parse_abonnement(_body(), partial=request.method == "PATCH")
    abonnement = current_state().store.save_abonnement(_validated(data, existing))
    return _json(_render_abonnement(abonnement))


def abonnement_delete(abonnement_uuid: uuid.UUID) -> Response:
    if not current_state().store.delete_abonnement(str(abonnement_uuid)):
        raise _not_found()
    return Response(status=204)


def notificaties_create() -> Response:
    state = current_state()
    message = parse_message(_body())
    kanaal = state.store.find_kanaal(message["kanaal"])
    if kanaal is None:
        raise invalid("kanaal", "message_kanaal", "Kanaal bestaat niet.")
    kenmerken: dict[str, str] | None = message.get("kenmerken")
    if not kanaal.matches_filter_names(kenmerken or {}):
        raise invalid(
            "kenmerken", "kenmerken_inconsistent", "Kenmerken aren't consistent with kanaal filters"
        )
    wire: dict[str, Any] = {
        to_camel(k): v for k, v in message.items() if k not in ("aanmaakdatum", "kenmerken")
    }
    wire["aanmaakdatum"] = format_datetime(message["aanmaakdatum"])
    if kenmerken is not None:
        wire["kenmerken"] = {to_camel(k): v for k, v in kenmerken.items()}
    body = delivery_body(wire)
    for abonnement in select(state.store.list_abonnementen(), kanaal.naam, kenmerken or {}):
        state.deliverer.deliver(abonnement, body)
    return _json(wire, 201)


def local_deliveries() -> Response:
    attempts = current_state().deliverer.attempts
    return _json([{**asdict(a), "time": a.time.isoformat(), "ok": a.ok} for a in attempts])


ROUTES: list[tuple[str, Callable[..., Response], list[str]]] = [
    ("/api/v1/kanaal", kanaal_list, ["GET"]),
    ("/api/v1/kanaal", kanaal_create, ["POST"]),
    ("/api/v1/kanaal/<uuid:kanaal_uuid>", kanaal_read, ["GET"]),
    ("/api/v1/abonnement", abonnement_list, ["GET"]),
    ("/api/v1/abonnement", abonnement_create, ["POST"]),
    ("/api/v1/abonnement/<uuid:abonnement_uuid>", abonnement_read, ["GET"]),
    ("/api/v1/abonnement/<uuid:abonnement_uuid>", abonnement_update, ["PUT", "PATCH"]),
    ("/api/v1/abonnement/<uuid:abonnement_uuid>", abonnement_delete, ["DELETE"]),
    ("/api/v1/notificaties", notificaties_create, ["POST"]),
    ("/_local/deliveries", local_deliveries, ["GET"]),
]
