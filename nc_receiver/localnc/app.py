"""The local NC's Flask app: the Notificaties API 1.0.1, as Open Notificaties 1.16.1 serves it.

Authentication (ZGW JWTs of the configured clients), the ``API-version`` header and
``application/problem+json`` errors live here; the views live in :mod:`.views`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

import jwt
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from .delivery import Deliverer
from .store import Store
from .validation import Invalid
from .views import EXTENSION, ROUTES, Problem, State, current_state

API_VERSION = "1.0.1"
#: How long after ``iat`` a token is accepted (as Open Zaak / Open Notificaties do).
TOKEN_MAX_AGE = 3600.0
LEEWAY = 60.0


def create_app(
    *,
    clients: Mapping[str, str],
    store: Store | None = None,
    deliverer: Deliverer | None = None,
    probe_timeout: float = 10.0,
) -> Flask:
    """A Flask app serving the NC API under ``/api/v1`` for the given ``client_id → secret``."""
    app = Flask(__name__)
    app.extensions[EXTENSION] = State(
        store or Store(), deliverer or Deliverer(), dict(clients), probe_timeout
    )
    app.before_request(_authenticate)
    app.after_request(_add_api_version)
    app.register_error_handler(Problem, _problem_response)
    app.register_error_handler(Invalid, _invalid_response)
    app.register_error_handler(HTTPException, _http_error_response)
    for rule, view, methods in ROUTES:
        app.add_url_rule(rule, view.__name__, view, methods=methods)
    return app


def _authenticate() -> None:
    if not request.path.startswith("/api/"):
        return
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Problem(
            401,
            "not_authenticated",
            "Authenticatiegegevens zijn niet opgegeven.",
            "Send 'Authorization: Bearer <ZGW JWT>'.",
            "NotAuthenticated",
        )
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
        client_id = claims.get("client_id") or claims.get("iss")
        secret = current_state().clients.get(str(client_id))
        if secret is None:
            raise jwt.InvalidTokenError(f"unknown client_id {client_id!r}")
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], leeway=LEEWAY, options={"require": ["iat"]}
        )
        if time.time() - float(claims["iat"]) > TOKEN_MAX_AGE + LEEWAY:
            raise jwt.InvalidTokenError("the token's iat is more than an hour ago")
    except jwt.PyJWTError as exc:
        raise Problem(
            403,
            "permission_denied",
            "U heeft geen toestemming om deze actie uit te voeren.",
            f"The token is not accepted: {exc}",
            "PermissionDenied",
        ) from exc


def _add_api_version(response: Response) -> Response:
    response.headers["API-version"] = API_VERSION
    return response


def _problem(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), status, content_type="application/problem+json")


def _problem_response(exc: Problem) -> Response:
    return _problem(
        exc.status,
        {
            "type": f"{request.host_url}ref/fouten/{exc.kind}/",
            "code": exc.code,
            "title": exc.title,
            "status": exc.status,
            "detail": exc.detail,
            "instance": f"urn:uuid:{uuid.uuid4()}",
        },
    )


def _invalid_response(exc: Invalid) -> Response:
    return _problem(
        400,
        {
            "type": f"{request.host_url}ref/fouten/ValidationError/",
            "code": "invalid",
            "title": "Ongeldige invoerwaarde.",
            "status": 400,
            "detail": "Ongeldige invoerwaarde.",
            "instance": f"urn:uuid:{uuid.uuid4()}",
            "invalidParams": exc.params,
        },
    )


def _http_error_response(exc: HTTPException) -> Response:
    status = exc.code or 500
    kind = "".join(w.capitalize() for w in (exc.name or "Error").split())
    code = "_".join((exc.name or "error").lower().split())
    return _problem_response(
        Problem(status, code, exc.name or "Error", exc.description or "", kind)
    )
