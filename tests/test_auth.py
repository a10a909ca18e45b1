"""The auth attack matrix, over real HTTP, plus the verifier's cache."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
import requests
from conftest import CALLBACK, CLIENT_ID, SECRET, TOKEN, delivery_body, raw_request
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from nc_receiver import Authenticator, AuthorizationError, make_zgw_jwt

NOW = time.time()


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def alg_none_token() -> str:
    claims = {"client_id": CLIENT_ID, "iss": CLIENT_ID, "iat": int(NOW)}
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


def rs_confusion_token() -> str:
    """An RS256 token, and an HS256 token signed with the RSA public key as HMAC secret."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode({"client_id": CLIENT_ID, "iat": int(NOW)}, key, algorithm="RS256")


def hs_with_public_key_token() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64({'client_id': CLIENT_ID})}"
    import hashlib
    import hmac

    sig = base64.urlsafe_b64encode(
        hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    return f"{signing_input}.{sig}"


def zgw(**kwargs: Any) -> str:
    return make_zgw_jwt(CLIENT_ID, kwargs.pop("secret", SECRET), **kwargs)


MATRIX: list[tuple[str, Callable[[], str | None], int]] = [
    ("missing", lambda: None, 401),
    ("empty", lambda: "", 401),
    ("wrong-scheme-basic", lambda: "Basic " + base64.b64encode(b"a:b").decode(), 403),
    ("wrong-token", lambda: "Bearer not-the-token", 403),
    ("token-bare-legacy", lambda: TOKEN, 204),
    ("token-bearer", lambda: f"Bearer {TOKEN}", 204),
    ("token-bearer-lowercase-scheme", lambda: f"bearer {TOKEN}", 204),
    ("token-prefix", lambda: f"Bearer {TOKEN[:-1]}", 403),
    ("jwt-valid", lambda: f"Bearer {zgw()}", 204),
    ("jwt-bare-legacy", lambda: zgw(), 204),
    ("jwt-wrong-key", lambda: f"Bearer {zgw(secret='another-secret-that-is-long-enough!!')}", 403),
    ("jwt-unknown-client", lambda: "Bearer " + make_zgw_jwt("stranger", SECRET), 403),
    ("jwt-alg-none", lambda: f"Bearer {alg_none_token()}", 403),
    ("jwt-rs256", lambda: f"Bearer {rs_confusion_token()}", 403),
    ("jwt-hs-signed-with-public-key", lambda: f"Bearer {hs_with_public_key_token()}", 403),
    ("jwt-expired", lambda: f"Bearer {zgw(issued_at=NOW - 7200, expires_in=3600)}", 403),
    ("jwt-expired-within-leeway", lambda: f"Bearer {zgw(issued_at=NOW - 3630, expires_in=3600)}",
     204),
    ("jwt-nbf-beyond-leeway",
     lambda: f"Bearer {zgw(extra_claims={'nbf': int(NOW) + 600})}", 403),
    ("jwt-iat-30s-future", lambda: f"Bearer {zgw(issued_at=NOW + 30)}", 204),
    ("jwt-iat-10min-future", lambda: f"Bearer {zgw(issued_at=NOW + 600)}", 403),
    ("jwt-2-days-old-no-exp", lambda: f"Bearer {zgw(issued_at=NOW - 2 * 86400)}", 204),
    ("jwt-malformed", lambda: "Bearer abc.def.ghi", 403),
    ("jwt-garbage-segments", lambda: "Bearer ...", 403),
    ("header-8kb", lambda: "Bearer " + "a" * 8192, 403),
    ("two-words-after-bearer", lambda: f"Bearer {TOKEN} extra", 403),
]


@pytest.mark.parametrize(("header", "expected"), [(m[1], m[2]) for m in MATRIX],
                         ids=[m[0] for m in MATRIX])
def test_auth_matrix_over_http(make_app: Any, serve: Any, http: requests.Session,
                               header: Callable[[], str | None], expected: int) -> None:
    app, receiver = make_app()
    receiver.init_app(app)
    server = serve(app)
    value = header()
    headers = {"Content-Type": "application/json"}
    if value is not None:
        headers["Authorization"] = value
    resp = http.post(server.url + CALLBACK, data=delivery_body(), headers=headers)
    assert resp.status_code == expected
    assert resp.headers["API-version"] == "1.0.1"
    if expected == 401:
        assert resp.headers["WWW-Authenticate"] == 'Bearer realm="nc-receiver"'
    if expected >= 400:
        assert resp.headers["Content-Type"] == "application/problem+json"
        assert resp.json()["status"] == expected
        assert len(resp.content) < 1024
        assert TOKEN not in resp.text and SECRET not in resp.text


def test_upper_case_header_name_as_the_nc_probe_sends_it(make_app: Any, serve: Any) -> None:
    app, receiver = make_app()
    receiver.init_app(app)
    server = serve(app)
    body = delivery_body()
    request = (f"POST {CALLBACK} HTTP/1.1\r\nHost: x\r\nAUTHORIZATION: Bearer {TOKEN}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    status, headers, _ = raw_request(server.port, request + body)
    assert status == 204
    assert headers["api-version"] == "1.0.1"


def test_blank_header_is_no_credentials(make_app: Any, serve: Any) -> None:
    app, receiver = make_app()
    receiver.init_app(app)
    server = serve(app)
    body = delivery_body()
    request = (f"POST {CALLBACK} HTTP/1.1\r\nHost: x\r\nAuthorization:    \r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    status, headers, _ = raw_request(server.port, request + body)
    assert status == 401
    assert headers["www-authenticate"] == 'Bearer realm="nc-receiver"'


def test_verified_jwt_header_is_cached_but_not_past_exp() -> None:
    auth = Authenticator(jwt_secrets={CLIENT_ID: SECRET}, leeway=0)
    token = zgw(expires_in=2)
    header = f"Bearer {token}"
    first = auth.authenticate(header)
    assert auth.authenticate(header) is first  # served from the cache
    time.sleep(3.1)
    with pytest.raises(AuthorizationError, match="The token has expired."):
        auth.authenticate(header)


def test_max_age_refuses_old_tokens() -> None:
    auth = Authenticator(jwt_secrets={CLIENT_ID: SECRET}, max_age=3600)
    assert auth.authenticate(f"Bearer {zgw()}").client_id == CLIENT_ID
    with pytest.raises(AuthorizationError, match="older than the maximum age"):
        auth.authenticate(f"Bearer {zgw(issued_at=NOW - 7200)}")


def test_cache_is_bounded() -> None:
    auth = Authenticator(jwt_secrets={CLIENT_ID: SECRET}, cache_size=10)
    for i in range(50):
        auth.authenticate(f"Bearer {zgw(extra_claims={'n': i})}")
    assert len(auth._cache) == 10


def test_short_secret_works_and_is_logged_without_the_secret(
        caplog: pytest.LogCaptureFixture) -> None:
    short = "shortsecret"
    auth = Authenticator(jwt_secrets={"legacy": short})
    assert "shorter than 32 bytes" in caplog.text and short not in caplog.text
    token = make_zgw_jwt_short("legacy", short)
    assert auth.authenticate(token).client_id == "legacy"


def make_zgw_jwt_short(client_id: str, secret: str) -> str:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jwt.encode({"client_id": client_id, "iat": int(time.time())}, secret, "HS256")


def test_token_in_config_may_carry_bearer_prefix() -> None:
    auth = Authenticator(tokens=["Bearer abc"])
    assert auth.authenticate("Bearer abc").method == "token"
    assert auth.authenticate("abc").method == "token"
