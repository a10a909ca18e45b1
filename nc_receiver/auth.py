"""Checking the ``Authorization`` header of a delivery: shared tokens and ZGW JWTs.

The NC sends the abonnement's ``auth`` value verbatim on every delivery, so the same
header arrives again and again: a verified JWT header is cached (bounded LRU, never past
the token's ``exp`` or maximum age) and costs a dict lookup afterwards.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from .exceptions import AuthenticationError, AuthorizationError

log = logging.getLogger(__name__)

MAX_CREDENTIAL_LENGTH = 4096
_MIN_HMAC_KEY = 32


@dataclass(frozen=True, slots=True)
class Identity:
    """Who sent a delivery: ``method`` is ``"token"`` or ``"jwt"``."""

    method: str
    client_id: str | None = None
    claims: Mapping[str, Any] | None = None


class Authenticator:
    """Verify ``Authorization`` headers against shared tokens and per-client JWT secrets."""

    def __init__(
        self,
        tokens: Iterable[str] = (),
        jwt_secrets: Mapping[str, str] | None = None,
        *,
        algorithms: Iterable[str] = ("HS256",),
        leeway: float = 60.0,
        max_age: float | None = None,
        cache_size: int = 1024,
        cache_ttl: float = 300.0,
    ) -> None:
        self._tokens = [_strip_bearer(t).encode() for t in tokens]
        self._secrets = dict(jwt_secrets or {})
        self._algorithms = list(algorithms)
        self._leeway = leeway
        self._max_age = max_age
        self._cache: OrderedDict[str, tuple[float, Identity]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_ttl = cache_ttl
        self._lock = threading.Lock()
        self._decoder = jwt.PyJWT()
        if not self._tokens and not self._secrets:
            raise ValueError("An Authenticator needs at least one token or JWT secret.")
        for client_id, secret in self._secrets.items():
            if len(secret.encode()) < _MIN_HMAC_KEY:
                log.warning(
                    "The JWT secret for client_id %r is shorter than %d bytes (RFC 7518 §3.2); "
                    "consider a longer one.", client_id, _MIN_HMAC_KEY,
                )

    def authenticate(self, header: str | None) -> Identity:
        """Return who sent ``header``, or raise AuthenticationError (401) / AuthorizationError."""
        if header is None or not header.strip():
            raise AuthenticationError("This callback requires an Authorization header.")
        if len(header) > MAX_CREDENTIAL_LENGTH:
            raise AuthorizationError("The Authorization header is not accepted.")
        cached = self._cache.get(header)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        credential = _credential(header)
        if credential is None:
            raise AuthorizationError(
                "The Authorization scheme is not accepted: send 'Bearer <token>'."
            )
        raw = credential.encode()
        matched = False
        for token in self._tokens:  # compare with every token: no early exit to time
            matched |= hmac.compare_digest(raw, token)
        if matched:
            return Identity("token")
        if self._secrets and credential.count(".") == 2:
            identity, valid_for = self._verify_jwt(credential)
            self._remember(header, identity, valid_for)
            return identity
        raise AuthorizationError("The Authorization header is not accepted.")

    def _verify_jwt(self, token: str) -> tuple[Identity, float]:
        try:
            header = jwt.get_unverified_header(token)
            unverified = self._decoder.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AuthorizationError("The token is not a valid JWT.") from None
        if header.get("alg") not in self._algorithms:
            raise AuthorizationError(
                f"The token's algorithm is not accepted (allowed: {', '.join(self._algorithms)})."
            )
        client_id = unverified.get("client_id") or unverified.get("iss")
        secret = self._secrets.get(client_id) if isinstance(client_id, str) else None
        if secret is None:
            raise AuthorizationError("The token's client_id is not known here.")
        try:
            # Short HMAC keys are common at NCs; that was logged once at start-up, so PyJWT's
            # warning is silenced for those keys only (catch_warnings is process-global).
            quiet = len(secret.encode()) < _MIN_HMAC_KEY
            with warnings.catch_warnings() if quiet else contextlib.nullcontext():
                if quiet:
                    warnings.simplefilter("ignore", UserWarning)
                claims = self._decoder.decode(
                    token,
                    secret,
                    algorithms=self._algorithms,
                    leeway=self._leeway,
                    options={"require": [], "verify_aud": False},
                )
        except jwt.ExpiredSignatureError:
            raise AuthorizationError("The token has expired.") from None
        except jwt.ImmatureSignatureError:
            raise AuthorizationError("The token is not yet valid.") from None
        except jwt.PyJWTError:
            raise AuthorizationError("The token's signature or claims are not valid.") from None
        now = time.time()
        valid_for = self._cache_ttl
        exp = _seconds(claims.get("exp"))
        if exp is not None:
            valid_for = min(valid_for, exp + self._leeway - now)
        if self._max_age is not None:
            iat = _seconds(claims.get("iat"))
            if iat is None:
                raise AuthorizationError("The token has no usable 'iat' claim, which is "
                                         "required here.")
            age_left = iat + self._max_age + self._leeway - now
            if age_left <= 0:
                raise AuthorizationError("The token is older than the maximum age accepted.")
            valid_for = min(valid_for, age_left)
        return Identity("jwt", client_id, claims), valid_for

    def _remember(self, header: str, identity: Identity, valid_for: float) -> None:
        if valid_for <= 0:
            return
        with self._lock:
            self._cache[header] = (time.monotonic() + valid_for, identity)
            self._cache.move_to_end(header)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)


def _seconds(value: Any) -> float | None:
    """A numeric date claim as float seconds, clamped (a signed 400-digit ``exp`` is legal)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(max(-1e12, min(1e12, value)))


def _strip_bearer(value: str) -> str:
    scheme, _, rest = value.strip().partition(" ")
    return rest.strip() if scheme.lower() == "bearer" and rest.strip() else value.strip()


def _credential(header: str) -> str | None:
    """The credential in ``Bearer <x>`` (any case) or a bare legacy value; None otherwise."""
    value = header.strip()
    scheme, sep, rest = value.partition(" ")
    if not sep:
        return value
    if scheme.lower() == "bearer" and rest.strip() and " " not in rest.strip():
        return rest.strip()
    return None
