"""The callback endpoint: authenticate, check, parse, validate, deliver, answer 204.

The order is the NC's contract: credentials are checked before the body is read, so the
NC's unauthenticated probe gets 401 whatever it sends; every answer carries
``API-version``; every rejection is a small problem+json document.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, current_app, request
from flask.sansio.blueprints import BlueprintSetupState
from werkzeug.exceptions import HTTPException

from . import signals
from .exceptions import HandlerError, RequestRejected
from .problems import API_VERSION, from_rejection, problem
from .schema import parse_body

if TYPE_CHECKING:
    from .extension import _State

log = logging.getLogger(__name__)

JSON_TYPES = ("application/json", "application/cloudevents+json")
_NO_CONTENT_HEADERS = {"API-version": API_VERSION}
_UNAVAILABLE = "The notification could not be stored or queued; send it again later."


class _NoContent(Response):
    default_mimetype = None  # a 204 carries no body, so no Content-Type either


def make_blueprint(state: _State, name: str) -> Blueprint:
    """A blueprint with the callback view at the configured path."""
    bp = Blueprint(name, __name__)

    def callback() -> Response:
        return _handle(state)

    endpoint = f"{name}.callback"

    def add_rule(setup: BlueprintSetupState) -> None:
        # A rule without a method list matches every method (TRACE, PROPFIND, lower-case
        # "post", ...), so each of them reaches the view and gets our 405 problem, instead
        # of Flask's HTML 405 from routing, which no blueprint error handler can see.
        app = setup.app
        app.url_map.add(app.url_rule_class(state.settings.callback_path, endpoint=endpoint))
        app.view_functions[endpoint] = callback

    bp.record_once(add_rule)
    bp.register_error_handler(HTTPException, _http_error)
    bp.register_error_handler(Exception, _unexpected)
    return bp


def _http_error(exc: HTTPException) -> Response:
    """Werkzeug's own errors while reading the request (short body, too large) as problems."""
    status = exc.code or 400
    code = {413: "too_large"}.get(status, "bad_request")
    return _reject(code, problem(status, code, "The request could not be read completely."))


def _unexpected(exc: Exception) -> Response:
    """A bug of ours: a problem+json 500 without details (the traceback goes to the log)."""
    log.exception("nc_receiver: unexpected error in the callback")
    return _answer(problem(500, "server_error", "The notification could not be processed."))


def _answer(triple: tuple[bytes, int, dict[str, str]]) -> Response:
    body, status, headers = triple
    return Response(body, status=status, headers=headers)


def _reject(code: str, triple: tuple[bytes, int, dict[str, str]]) -> Response:
    status = triple[1]
    signals.notification_rejected.send(
        current_app._get_current_object(), status=status, code=code,  # type: ignore[attr-defined]
    )
    log.info("nc_receiver: rejected a %s request with %d", request.method, status)
    return _answer(triple)


def _handle(state: _State) -> Response:
    # The real objects once, instead of a context-local lookup per attribute access.
    req: Any = request._get_current_object()  # type: ignore[attr-defined]
    if req.method != "POST":
        resp = _reject("method_not_allowed", problem(405, "method_not_allowed",
                                      "The callback accepts POST only."))
        resp.headers["Allow"] = "POST"
        return resp
    app: Any = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        identity = state.authenticator.authenticate(req.headers.get("Authorization"))
        length = req.content_length
        limit = state.settings.max_body_size
        if length is not None and length > limit:
            return _reject("too_large", problem(413, "too_large",
                                          f"The body must be at most {limit} bytes."))
        mimetype = req.mimetype
        if mimetype not in JSON_TYPES:
            return _reject("unsupported_media_type", problem(
                415, "unsupported_media_type",
                "Send the notification as application/json (or application/cloudevents+json)."))
        try:
            raw = req.stream.read(limit + 1)
        except OSError:  # werkzeug's dechunker: a malformed or cut-off chunked body
            raw = None
        if raw is None or (length is not None and len(raw) < length):
            return _reject("bad_request", problem(
                400, "bad_request", "The request body is incomplete or malformed.",
                invalid_params=[{"name": "body", "code": "incomplete",
                                 "reason": "The body did not arrive completely."}]))
        if len(raw) > limit:
            return _reject("too_large", problem(413, "too_large",
                                          f"The body must be at most {limit} bytes."))
        notification = parse_body(raw, mimetype)
    except RequestRejected as exc:
        return _reject(exc.code, from_rejection(exc))

    signals.notification_received.send(app, notification=notification, identity=identity)
    if notification.is_probe:
        log.debug("nc_receiver: answered the NC's subscription probe")
        return _NoContent(status=204, headers=_NO_CONTENT_HEADERS)
    try:
        state.delivery.accept(app, notification)
    except HandlerError:
        return _answer(problem(500, "handler_failed",
                               "A handler failed; the NC will deliver the notification again."))
    except RequestRejected as exc:
        return _reject(exc.code, from_rejection(exc))
    except Exception as exc:  # storage or broker down: a definite 503, and the NC retries
        log.error("nc_receiver: could not accept a notification (%s delivery): %s",
                  state.delivery.mode, type(exc).__name__)
        log.debug("nc_receiver: accept() raised", exc_info=exc)
        resp = _answer(problem(503, "unavailable", _UNAVAILABLE))
        resp.headers["Retry-After"] = "5"
        return resp
    return _NoContent(status=204, headers=_NO_CONTENT_HEADERS)
