"""``NC_RECEIVER_*`` configuration, read once from ``app.config`` / the environment.

Each key is looked up in ``app.config`` first, then in ``os.environ`` under the same name
(values there are parsed as JSON when they are valid JSON, like Flask's prefixed-env
loading, otherwise taken as text); the result is written back with ``setdefault`` so the
effective value is visible in ``app.config``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field, fields
from typing import Any

from .exceptions import ConfigurationError

PREFIX = "NC_RECEIVER_"
DELIVERY_MODES = ("inbox", "sync", "celery")


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"{key} must be a string, got {value!r}.")
    return value


def _opt_text(key: str, value: Any) -> str | None:
    return None if value in (None, "") else _text(key, value)


def _number(key: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{key} must be a number, got {value!r}.") from None
    if number < 0:
        raise ConfigurationError(f"{key} must not be negative, got {value!r}.")
    return number


def _opt_number(key: str, value: Any) -> float | None:
    return None if value in (None, "") else _number(key, value)


def _int(key: str, value: Any) -> int:
    number = _number(key, value)
    if number != int(number) or number < 1:
        raise ConfigurationError(f"{key} must be a positive whole number, got {value!r}.")
    return int(number)


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no",
                                                    "off"):
        return value.lower() in ("1", "true", "yes", "on")
    if value in (0, 1):
        return bool(value)
    raise ConfigurationError(f"{key} must be true or false, got {value!r}.")


def _list(key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [part for part in value.replace(",", " ").split() if part]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise ConfigurationError(
            f"{key} must be a list of non-empty strings (or one comma-separated string)."
        )
    return tuple(value)


def _secrets(key: str, value: Any) -> Mapping[str, str]:
    if value is None:
        return {}
    if isinstance(value, str):
        pairs = [part for part in value.replace(",", " ").split() if part]
        if not all(":" in p for p in pairs):
            raise ConfigurationError(
                f"{key} must map client_id to secret: a dict, JSON object, or "
                "'client-id:secret,other-id:secret'."
            )
        value = dict(p.split(":", 1) for p in pairs)
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in value.items()
    ):
        raise ConfigurationError(f"{key} must map non-empty client_id strings to secrets.")
    return dict(value)


def _kanalen(key: str, value: Any) -> Mapping[str, list[dict[str, str]]] | None:
    if value in (None, ""):
        return None
    if isinstance(value, str):
        value = [name for name in value.replace(",", " ").split() if name]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return {name: [{}] for name in value}
    if isinstance(value, Mapping):
        out: dict[str, list[dict[str, str]]] = {}
        for name, groups in value.items():
            if isinstance(groups, Mapping):
                groups = [groups]
            if not isinstance(groups, list) or not all(
                isinstance(g, Mapping) and all(isinstance(v, str) for v in g.values())
                for g in groups
            ):
                break
            out[str(name)] = [dict(g) for g in groups] or [{}]
        else:
            return out
    raise ConfigurationError(
        f"{key} must be a list of kanaal names or a mapping of kanaal → filters "
        "(a dict of strings, or a list of such dicts)."
    )


def _delivery(key: str, value: Any) -> str:
    text = _text(key, value).lower()
    if text not in DELIVERY_MODES:
        raise ConfigurationError(
            f"{key} must be one of {', '.join(DELIVERY_MODES)}; got {value!r}."
        )
    return text


def _path(key: str, value: Any) -> str:
    text = _text(key, value)
    if not text.startswith("/"):
        raise ConfigurationError(f"{key} must start with '/', got {value!r}.")
    return text


def _from_env(raw: str) -> Any:
    """A JSON list or object from the environment is parsed; anything else stays text.

    So ``NC_RECEIVER_NC_SECRET=123456`` is the string ``"123456"``, not a number, and the
    key's own parser reads ``"120"`` or ``"false"`` as a number or a flag.
    """
    text = raw.strip()
    if text[:1] in ("[", "{"):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return raw


def _url(key: str, value: Any) -> str | None:
    text = _opt_text(key, value)
    if text is not None and not text.lower().startswith(("http://", "https://")):
        raise ConfigurationError(
            f"{key} must be an absolute http(s) URL, e.g. https://nc.example.nl/api/v1; "
            f"got {value!r}."
        )
    return text


def _opt(parser: Callable[[str, Any], Any], default: Any) -> Any:
    return field(default=default, metadata={"parse": parser})


@dataclass(frozen=True)
class Settings:
    """The effective configuration; attribute ``x`` comes from key ``NC_RECEIVER_X``."""

    callback_path: str = _opt(_path, "/notificaties/callback")
    auth_tokens: tuple[str, ...] = _opt(_list, ())
    jwt_secrets: Mapping[str, str] = _opt(_secrets, None)
    jwt_algorithms: tuple[str, ...] = _opt(_list, ("HS256",))
    jwt_leeway: float = _opt(_number, 60.0)
    jwt_max_age: float | None = _opt(_opt_number, None)
    max_body_size: int = _opt(_int, 64 * 1024)
    delivery: str = _opt(_delivery, "inbox")
    inbox_path: str | None = _opt(_opt_text, None)
    worker_threads: int = _opt(_int, 4)
    dedup_window: float = _opt(_number, 86400.0)
    max_attempts: int = _opt(_int, 8)
    retry_backoff: float = _opt(_number, 2.0)
    retry_backoff_max: float = _opt(_number, 600.0)
    lease_seconds: float = _opt(_number, 300.0)
    celery_broker_url: str | None = _opt(_opt_text, None)
    celery_queue: str = _opt(_text, "nc_receiver")
    celery_app: Any = _opt(lambda k, v: v, None)
    celery_redis_url: str | None = _opt(_opt_text, None)
    nc_url: str | None = _opt(_url, None)
    nc_client_id: str | None = _opt(_opt_text, None)
    nc_secret: str | None = _opt(_opt_text, None)
    callback_url: str | None = _opt(_url, None)
    subscribe_on_startup: bool = _opt(_bool, True)
    subscribe_backoff: float = _opt(_number, 1.0)
    subscribe_backoff_max: float = _opt(_number, 300.0)
    state_dir: str | None = _opt(_opt_text, None)
    kanalen: Mapping[str, list[dict[str, str]]] | None = _opt(_kanalen, None)
    fetch_credentials: Mapping[str, Any] = _opt(lambda k, v: dict(v or {}), None)
    fetch_timeout: float = _opt(_number, 10.0)
    fetch_retries: int = _opt(_int, 3)

    @classmethod
    def keys(cls) -> list[str]:
        return [PREFIX + f.name.upper() for f in fields(cls)]

    @classmethod
    def from_config(
        cls, config: MutableMapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Read, default and validate every key; raise ConfigurationError naming the key."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = PREFIX + f.name.upper()
            if key not in config and key in environ:
                config[key] = _from_env(environ[key])
            default = f.default
            if isinstance(default, (tuple, dict)):
                default = type(default)(default)
            value = config.setdefault(key, default)
            values[f.name] = f.metadata["parse"](key, value)
        settings = cls(**values)
        settings._check()
        return settings

    def _check(self) -> None:
        if not self.auth_tokens and not self.jwt_secrets:
            raise ConfigurationError(
                "nc_receiver has no way to authenticate the NC: set NC_RECEIVER_AUTH_TOKENS "
                "(shared tokens) or NC_RECEIVER_JWT_SECRETS (client_id → secret for ZGW JWTs). "
                "The NC refuses a callback that accepts unauthenticated requests."
            )
        unknown = set(self.jwt_algorithms) - {"HS256", "HS384", "HS512"}
        if unknown:
            raise ConfigurationError(
                f"NC_RECEIVER_JWT_ALGORITHMS: only HS256, HS384 and HS512 are supported "
                f"(ZGW JWTs use a shared secret), not {', '.join(sorted(unknown))}."
            )
        nc_parts = [self.nc_url, self.nc_client_id, self.nc_secret]
        if any(nc_parts) and not all(nc_parts):
            raise ConfigurationError(
                "To talk to the NC set all of NC_RECEIVER_NC_URL, NC_RECEIVER_NC_CLIENT_ID and "
                "NC_RECEIVER_NC_SECRET (or none of them)."
            )

    @property
    def nc_configured(self) -> bool:
        return bool(self.nc_url and self.nc_client_id and self.nc_secret)
