"""Minting ZGW JWTs (HS256, shared secret per ``client_id``).

Used by the NC client (a fresh token per call), by the subscription (a token the NC
stores in ``auth`` and replays: no expiry by default) and by the testing helpers.
"""

from __future__ import annotations

import time
from typing import Any

import jwt


def make_zgw_jwt(
    client_id: str,
    secret: str,
    *,
    user_id: str = "nc-receiver",
    user_representation: str = "nc-receiver",
    issued_at: float | None = None,
    expires_in: float | None = None,
    algorithm: str = "HS256",
    extra_claims: dict[str, Any] | None = None,
) -> str:
    """Return a signed ZGW JWT for ``client_id``.

    ``expires_in`` adds an ``exp`` claim that many seconds after ``iat``; leave it out
    for a token the NC stores and replays.
    """
    iat = int(time.time() if issued_at is None else issued_at)
    claims: dict[str, Any] = {
        "iss": client_id,
        "iat": iat,
        "client_id": client_id,
        "user_id": user_id,
        "user_representation": user_representation,
    }
    if expires_in is not None:
        claims["exp"] = iat + int(expires_in)
    if extra_claims:
        claims.update(extra_claims)
    return jwt.encode(claims, secret, algorithm=algorithm, headers={"client_identifier": client_id})
