"""Configuration: read once in init_app, from app.config or the environment, validated."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from nc_receiver import ConfigurationError, NotificationReceiver, Router, Settings


@pytest.fixture(autouse=True)
def _sync_delivery(monkeypatch: pytest.MonkeyPatch) -> None:
    # These apps only check configuration: no inbox file, no worker threads.
    monkeypatch.setenv("NC_RECEIVER_DELIVERY", "sync")


def test_defaults_are_written_back_to_app_config() -> None:
    app = Flask(__name__)
    app.config["NC_RECEIVER_AUTH_TOKENS"] = ["t"]
    NotificationReceiver(app, router=Router())
    assert app.config["NC_RECEIVER_CALLBACK_PATH"] == "/notificaties/callback"
    assert app.config["NC_RECEIVER_JWT_LEEWAY"] == 60.0
    assert app.config["NC_RECEIVER_MAX_BODY_SIZE"] == 65536
    assert Settings.from_config({"NC_RECEIVER_AUTH_TOKENS": "t"}, environ={}).delivery == "inbox"
    assert set(Settings.keys()) <= set(app.config)


def test_environment_variables_of_the_same_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NC_RECEIVER_AUTH_TOKENS", "old-token,new-token")
    monkeypatch.setenv("NC_RECEIVER_JWT_SECRETS", '{"open-notificaties": "s3cr3t"}')
    monkeypatch.setenv("NC_RECEIVER_JWT_LEEWAY", "120")
    monkeypatch.setenv("NC_RECEIVER_SUBSCRIBE_ON_STARTUP", "false")
    settings = Settings.from_config({})
    assert settings.auth_tokens == ("old-token", "new-token")
    assert settings.jwt_secrets == {"open-notificaties": "s3cr3t"}
    assert settings.jwt_leeway == 120.0
    assert settings.subscribe_on_startup is False


def test_app_config_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NC_RECEIVER_AUTH_TOKENS", "from-env")
    assert Settings.from_config({"NC_RECEIVER_AUTH_TOKENS": ["from-config"]}).auth_tokens == (
        "from-config",)


def test_secrets_as_client_colon_secret_pairs() -> None:
    s = Settings.from_config({"NC_RECEIVER_JWT_SECRETS": "a:one, b:two:with:colons"})
    assert s.jwt_secrets == {"a": "one", "b": "two:with:colons"}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "nc_receiver has no way to authenticate the NC: set NC_RECEIVER_AUTH_TOKENS "
             "(shared tokens) or NC_RECEIVER_JWT_SECRETS (client_id → secret for ZGW JWTs). "
             "The NC refuses a callback that accepts unauthenticated requests."),
        ({"NC_RECEIVER_AUTH_TOKENS": "t", "NC_RECEIVER_CALLBACK_PATH": "callback"},
         "NC_RECEIVER_CALLBACK_PATH must start with '/', got 'callback'."),
        ({"NC_RECEIVER_AUTH_TOKENS": "t", "NC_RECEIVER_JWT_LEEWAY": "lots"},
         "NC_RECEIVER_JWT_LEEWAY must be a number, got 'lots'."),
        ({"NC_RECEIVER_AUTH_TOKENS": "t", "NC_RECEIVER_DELIVERY": "kafka"},
         "NC_RECEIVER_DELIVERY must be one of inbox, sync, celery; got 'kafka'."),
        ({"NC_RECEIVER_AUTH_TOKENS": "t", "NC_RECEIVER_JWT_ALGORITHMS": ["RS256"]},
         "NC_RECEIVER_JWT_ALGORITHMS: only HS256, HS384 and HS512 are supported (ZGW JWTs "
         "use a shared secret), not RS256."),
        ({"NC_RECEIVER_AUTH_TOKENS": "t", "NC_RECEIVER_NC_URL": "http://nc/api/v1"},
         "To talk to the NC set all of NC_RECEIVER_NC_URL, NC_RECEIVER_NC_CLIENT_ID and "
         "NC_RECEIVER_NC_SECRET (or none of them)."),
        ({"NC_RECEIVER_JWT_SECRETS": "no-colon"},
         "NC_RECEIVER_JWT_SECRETS must map client_id to secret: a dict, JSON object, or "
         "'client-id:secret,other-id:secret'."),
        ({"NC_RECEIVER_AUTH_TOKENS": "t", "NC_RECEIVER_MAX_BODY_SIZE": 0},
         "NC_RECEIVER_MAX_BODY_SIZE must be a positive whole number, got 0."),
    ],
    ids=["no-auth", "relative-path", "bad-leeway", "bad-mode", "rs256", "half-nc", "bad-secrets",
         "zero-body"],
)
def test_bad_configuration_fails_at_start_up(config: dict[str, Any], message: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for key in Settings.keys():
        monkeypatch.delenv(key, raising=False)
    app = Flask(__name__)
    app.config.update(config)
    with pytest.raises(ConfigurationError) as info:
        NotificationReceiver(app, router=Router())
    assert str(info.value) == message


def test_second_init_app_is_refused() -> None:
    app = Flask(__name__)
    app.config["NC_RECEIVER_AUTH_TOKENS"] = ["t"]
    receiver = NotificationReceiver(app, router=Router())
    with pytest.raises(RuntimeError, match="call 'init_app' once per app"):
        receiver.init_app(app)


def test_state_without_init_app_names_the_fix() -> None:
    with pytest.raises(RuntimeError, match=r"Did you forget to call 'receiver.init_app\(app\)'"):
        NotificationReceiver.state(Flask(__name__))


def test_app_factory_one_receiver_many_apps() -> None:
    receiver = NotificationReceiver(router=Router())
    apps = [Flask(f"app{i}") for i in range(2)]
    for app in apps:
        app.config["NC_RECEIVER_AUTH_TOKENS"] = ["t"]
        receiver.init_app(app)
    assert all(NotificationReceiver.state(a).receiver is receiver for a in apps)


def test_numeric_looking_environment_values_stay_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NC_RECEIVER_AUTH_TOKENS", "123456")
    monkeypatch.setenv("NC_RECEIVER_NC_URL", "http://nc.local/api/v1")
    monkeypatch.setenv("NC_RECEIVER_NC_CLIENT_ID", "true")
    monkeypatch.setenv("NC_RECEIVER_NC_SECRET", "123456")
    monkeypatch.setenv("NC_RECEIVER_KANALEN", "zaken,documenten")
    settings = Settings.from_config({})
    assert settings.auth_tokens == ("123456",)
    assert (settings.nc_client_id, settings.nc_secret) == ("true", "123456")
    assert settings.kanalen == {"zaken": [{}], "documenten": [{}]}


@pytest.mark.parametrize("key", ["NC_RECEIVER_NC_URL", "NC_RECEIVER_CALLBACK_URL"])
def test_urls_must_be_absolute(key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_config({"NC_RECEIVER_AUTH_TOKENS": "t", key: "nc.example.nl"},
                             environ={})
    assert str(info.value) == (
        f"{key} must be an absolute http(s) URL, e.g. https://nc.example.nl/api/v1; "
        "got 'nc.example.nl'.")
