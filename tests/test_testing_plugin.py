"""The pytest plugin users get: make_notification, deliver_notification, local_nc."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask

from nc_receiver import NCClient, Notification, NotificationReceiver, Router, make_zgw_jwt

SECRET = "plugin-test-secret-of-at-least-32-bytes"


def make(config: dict[str, Any]) -> tuple[Flask, list[Notification]]:
    app = Flask("plugin")
    app.config.update(NC_RECEIVER_DELIVERY="sync", **config)
    receiver = NotificationReceiver(router=Router(), include_default_router=False)
    seen: list[Notification] = []
    receiver.on("zaken", "zaak", "update")(seen.append)
    receiver.init_app(app)
    return app, seen


def test_deliver_with_a_token(make_notification: Callable[..., dict[str, Any]],
                              deliver_notification: Callable[..., Any]) -> None:
    app, seen = make({"NC_RECEIVER_AUTH_TOKENS": ["t0k3n"]})
    body = make_notification(resource="zaak", actie="update", kenmerken={"zaaktype": "x"})
    resp = deliver_notification(app, body)
    assert resp.status_code == 204
    assert [(n.resource, dict(n.kenmerken)) for n in seen] == [("zaak", {"zaaktype": "x"})]


def test_deliver_with_a_jwt_and_overrides(deliver_notification: Callable[..., Any]) -> None:
    app, seen = make({"NC_RECEIVER_JWT_SECRETS": {"oz": SECRET}})
    assert deliver_notification(app, resource="zaak", actie="update").status_code == 204
    assert deliver_notification(app, resource="zaak", actie="update",
                                authorization="Bearer " + make_zgw_jwt("oz", SECRET + "x")
                                ).status_code == 403
    assert len(seen) == 1


def test_local_nc_fixture_serves_the_api(local_nc: Any) -> None:
    client = NCClient(local_nc.url, local_nc.client_id, local_nc.secret)
    client.create_kanaal("zaken", filters=["bronorganisatie"])
    assert [k["naam"] for k in client.list_kanalen()] == ["zaken"]


def test_make_notification_takes_snake_case_url_overrides(
        make_notification: Callable[..., dict[str, Any]]) -> None:
    body = make_notification(resource_url="https://oz/statussen/1", hoofd_object="https://oz/z/1")
    assert (body["resourceUrl"], body["hoofdObject"]) == ("https://oz/statussen/1",
                                                         "https://oz/z/1")
    assert "resource_url" not in body
