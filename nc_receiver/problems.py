"""ZGW-style ``application/problem+json`` answers: small, no stack traces, no echo."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence

from .exceptions import RequestRejected, ValidationError

API_VERSION = "1.0.1"
PROBLEM_TYPE = "urn:nc-receiver:error:"
_TITLES = {
    400: "Invalid input.",
    401: "Authentication credentials were not provided.",
    403: "The credentials are not accepted.",
    405: "Method not allowed.",
    413: "The request body is too large.",
    415: "Unsupported media type.",
    500: "The notification could not be processed; the NC will retry it.",
    503: "The notification could not be stored; try again.",
}


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    invalid_params: Sequence[Mapping[str, str]] = (),
) -> tuple[bytes, int, dict[str, str]]:
    """A (body, status, headers) triple for a problem answer."""
    body: dict[str, object] = {
        "type": PROBLEM_TYPE + code,
        "code": code,
        "title": title or _TITLES.get(status, "Error."),
        "status": status,
        "detail": detail[:300],
        "instance": f"urn:uuid:{uuid.uuid4()}",
    }
    if status == 400:
        body["invalidParams"] = [dict(p) for p in invalid_params][:8]
    headers = {"Content-Type": "application/problem+json", "API-version": API_VERSION}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="nc-receiver"'
    return json.dumps(body, separators=(",", ":")).encode(), status, headers


def from_rejection(exc: RequestRejected) -> tuple[bytes, int, dict[str, str]]:
    params = exc.invalid_params if isinstance(exc, ValidationError) else ()
    if isinstance(exc, ValidationError) and not params:
        params = [{"name": "body", "code": exc.code, "reason": exc.detail}]
    return problem(exc.status, exc.code, exc.detail, title=exc.title, invalid_params=params)
