"""The callback endpoint over real HTTP: the NC's captures, statuses, dispatch, signals."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import requests
from conftest import (
    CALLBACK,
    SAMPLES,
    TOKEN,
    build_request,
    delivery_body,
    raw_request,
    sample_lines,
)

from nc_receiver import Notification, signals

AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
CAPTURES = [
    "validation_calls_abonnement_create.jsonl",
    "validation_calls_receiver_always204.jsonl",
    "delivery_matching.jsonl",
    "delivery_missing_filter_key_and_tz_offset.jsonl",
    "delivery_retries_receiver_500.jsonl",
    "delivery_after_receiver_down.jsonl",
]


def recording_app(make_app: Any, **config: Any) -> tuple[Any, list[tuple[str, Notification]]]:
    app, receiver = make_app(**config)
    ran: list[tuple[str, Notification]] = []

    @receiver.on("zaken", "status", "create")
    def status_created(n: Notification) -> None:
        ran.append(("status_created", n))

    @receiver.on("zaken", "zaak")
    def zaak_changed(n: Notification) -> None:
        ran.append(("zaak_changed", n))

    receiver.init_app(app)
    return app, ran


@pytest.mark.parametrize("capture", CAPTURES, ids=[c.split(".")[0] for c in CAPTURES])
def test_every_capture_replayed_byte_for_byte(make_app: Any, serve: Any, capture: str) -> None:
    app, ran = recording_app(make_app)
    server = serve(app)
    for line in sample_lines(capture):
        body = line["body_raw"].encode()
        status, headers, answer = raw_request(
            server.port, build_request(line["path"], line["headers"], body))
        authorized = "Authorization" in line["headers"]
        assert status == (204 if authorized else 401), line["n"]
        assert headers["api-version"] == "1.0.1"
        if status == 204:
            assert answer == b""
    kinds = {name for name, _ in ran}
    if capture.startswith("validation"):
        assert ran == []  # the probe dispatches nothing
    elif "missing_filter" in capture:
        assert kinds == {"zaak_changed"}
        assert ran[0][1].aanmaakdatum.microsecond == 123000
    else:
        assert kinds == {"status_created"}


def test_raw_wire_requests_probe_and_delivery(make_app: Any, serve: Any) -> None:
    app, ran = recording_app(make_app, callback_path="/raw", auth_tokens=["rawtoken"])
    server = serve(app)
    text = (SAMPLES / "raw_wire_requests.txt").read_bytes()
    answers = []
    for part in re.split(rb"===== request \d+ =====\n", text)[1:]:
        head, _, body = part.partition(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
        answers.append(raw_request(server.port, head + b"\r\n\r\n" + body[:length])[0])
    assert answers == [401, 204, 204]
    assert [(name, n.kenmerken["bronorganisatie"]) for name, n in ran] == [
        ("zaak_changed", "999999999")]


def test_delivery_becomes_a_typed_notification(make_app: Any, serve: Any,
                                               http: requests.Session) -> None:
    app, ran = recording_app(make_app)
    server = serve(app)
    resp = http.post(server.url + CALLBACK, data=delivery_body(), headers=AUTH)
    assert resp.status_code == 204 and resp.content == b""
    assert "Content-Type" not in resp.headers
    (name, n), = ran
    assert name == "status_created"
    assert n.kanaal == "zaken" and n.resource == "status" and n.actie == "create"
    assert n.hoofd_object.endswith("/zaken/d4d0a2ef-1b8e-4d5c-9d4e-2a2f1b7a6c01")
    assert n.aanmaakdatum.isoformat() == "2026-12-03T16:41:54+00:00"
    assert dict(n.kenmerken)["bronorganisatie"] == "224557609"
    assert n.raw == delivery_body()
    with pytest.raises(TypeError):
        n.kenmerken["x"] = "y"  # type: ignore[index]


@pytest.mark.parametrize(
    ("method", "headers", "data", "status", "code"),
    [
        ("GET", AUTH, b"", 405, "method_not_allowed"),
        ("PUT", AUTH, b"{}", 405, "method_not_allowed"),
        ("OPTIONS", {}, b"", 405, "method_not_allowed"),
        ("POST", {**AUTH, "Content-Type": "text/plain"}, b"{}", 415, "unsupported_media_type"),
        ("POST", {"Authorization": AUTH["Authorization"]}, b"{}", 415, "unsupported_media_type"),
        ("POST", AUTH, b"{not json", 400, "parse_error"),
        ("POST", AUTH, b"[1, 2]", 400, "invalid"),
        ("POST", AUTH, b'{"kanaal": "zaken"}', 400, "invalid"),
        ("POST", AUTH, b"\xff\xfe", 400, "parse_error"),
        ("POST", AUTH, b"[" * 100_000, 413, "too_large"),
        ("POST", {"Content-Type": "text/plain"}, b"x" * 100_000, 401, "not_authenticated"),
    ],
    ids=["get", "put", "options-unauthenticated", "text-plain", "no-content-type", "bad-json",
         "array", "missing-fields", "not-utf8", "too-large", "unauthenticated-first"],
)
def test_bad_requests_get_small_problems(make_app: Any, serve: Any, http: requests.Session,
                                         method: str, headers: dict[str, str], data: bytes,
                                         status: int, code: str) -> None:
    app, ran = recording_app(make_app)
    server = serve(app)
    resp = http.request(method, server.url + CALLBACK, data=data, headers=headers)
    assert resp.status_code == status
    assert resp.headers["Content-Type"] == "application/problem+json"
    assert resp.headers["API-version"] == "1.0.1"
    problem = resp.json()
    assert problem["code"] == code and problem["status"] == status
    assert set(problem) >= {"type", "code", "title", "status", "detail", "instance"}
    assert ("invalidParams" in problem) == (status == 400)
    assert len(resp.content) < 1024
    assert ran == []
    if status == 405:
        assert resp.headers["Allow"] == "POST"


def test_invalid_body_names_fields_without_echoing_values(make_app: Any, serve: Any,
                                                           http: requests.Session) -> None:
    app, _ = recording_app(make_app)
    server = serve(app)
    body = json.loads(delivery_body())
    body["hoofdObject"] = "secret-kenmerk-value-not-a-url"
    body["kenmerken"]["bronorganisatie"] = 224557609
    resp = http.post(server.url + CALLBACK, json=body, headers=AUTH)
    assert resp.status_code == 400
    params = {p["name"]: p for p in resp.json()["invalidParams"]}
    assert params["hoofdObject"] == {"name": "hoofdObject", "code": "invalid",
                                     "reason": "Not a valid URL."}
    assert params["kenmerken"]["reason"] == "Kenmerk values must be strings."
    assert "secret-kenmerk-value" not in resp.text and "224557609" not in resp.text


def test_failing_handler_answers_500_and_others_still_run(make_app: Any, serve: Any,
                                                          http: requests.Session) -> None:
    app, receiver = make_app()
    ran: list[str] = []
    errors: list[tuple[str, str]] = []

    @receiver.on("zaken", "status", "create")
    def boom(n: Notification) -> None:
        raise RuntimeError("database down")

    @receiver.on("zaken")
    def audit(n: Notification) -> None:
        ran.append("audit")

    @receiver.on_error
    def report(n: Notification, handler: str, exc: BaseException) -> None:
        errors.append((handler.rsplit(":", 1)[1], str(exc)))

    receiver.init_app(app)
    server = serve(app)
    resp = http.post(server.url + CALLBACK, data=delivery_body(), headers=AUTH)
    assert resp.status_code == 500
    assert resp.headers["Content-Type"] == "application/problem+json"
    assert "database down" not in resp.text and "Traceback" not in resp.text
    assert ran == ["audit"]
    assert errors == [("test_failing_handler_answers_500_and_others_still_run.<locals>.boom",
                       "database down")]


def test_no_matching_handler_is_204_and_a_debug_line(make_app: Any, serve: Any,
                                                     http: requests.Session,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    app, receiver = make_app()
    receiver.init_app(app)
    server = serve(app)
    with caplog.at_level("DEBUG", logger="nc_receiver"):
        resp = http.post(server.url + CALLBACK, data=delivery_body(), headers=AUTH)
    assert resp.status_code == 204
    assert "no handler for zaken status create" in caplog.text


def test_on_any_runs_after_routed_handlers(make_app: Any, serve: Any,
                                           http: requests.Session) -> None:
    app, receiver = make_app()
    order: list[str] = []
    receiver.on_any(lambda n: order.append("any"))
    receiver.on("zaken")(lambda n: order.append("kanaal"))
    receiver.init_app(app)
    server = serve(app)
    http.post(server.url + CALLBACK, data=delivery_body(), headers=AUTH)
    assert order == ["kanaal", "any"]


def test_async_handler_runs(make_app: Any, serve: Any, http: requests.Session) -> None:
    app, receiver = make_app()
    seen: list[str] = []

    @receiver.on("zaken", "status")
    async def fetch_status(n: Notification) -> None:
        seen.append(n.resource_url)

    receiver.init_app(app)
    server = serve(app)
    assert http.post(server.url + CALLBACK, data=delivery_body(), headers=AUTH).status_code == 204
    assert len(seen) == 1


def test_signals_around_every_step(make_app: Any, serve: Any, http: requests.Session) -> None:
    app, receiver = make_app()
    receiver.on("zaken", "status")(lambda n: None)

    def fails(n: Notification) -> None:
        raise ValueError("no")

    receiver.on("zaken", "status", "create")(fails)
    receiver.init_app(app)
    server = serve(app)
    events: list[tuple[str, Any]] = []
    with (
        signals.notification_received.connected_to(
            lambda s, notification, identity: events.append(("received", identity.method)),
            sender=app),
        signals.handler_failed.connected_to(
            lambda s, notification, handler, error: events.append(("failed", str(error))),
            sender=app),
        signals.notification_rejected.connected_to(
            lambda s, status, code: events.append(("rejected", status)), sender=app),
        signals.notification_handled.connected_to(
            lambda s, notification, handlers: events.append(("handled", len(handlers))),
            sender=app),
    ):
        http.post(server.url + CALLBACK, data=delivery_body())
        http.post(server.url + CALLBACK, data=delivery_body(), headers=AUTH)
        probe = json.loads(sample_lines("validation_calls_abonnement_create.jsonl")[1]["body_raw"])
        http.post(server.url + CALLBACK, json=probe, headers=AUTH)
    assert events == [("rejected", 401), ("received", "token"), ("failed", "no"),
                      ("received", "token")]


def test_kenmerk_values_and_tokens_never_logged_at_info(make_app: Any, serve: Any,
                                                        http: requests.Session,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    app, receiver = make_app()

    @receiver.on("zaken")
    def boom(n: Notification) -> None:
        raise RuntimeError("x")

    receiver.init_app(app)
    server = serve(app)
    with caplog.at_level("INFO"):
        http.post(server.url + CALLBACK, data=delivery_body(), headers=AUTH)
        http.post(server.url + CALLBACK, data=delivery_body(),
                  headers={**AUTH, "Authorization": "Bearer wrong-secret-token"})
    assert "224557609" not in caplog.text and "openbaar" not in caplog.text
    assert TOKEN not in caplog.text and "wrong-secret-token" not in caplog.text


def test_cloudevent_delivery_reaches_the_same_handler(make_app: Any, serve: Any,
                                                      http: requests.Session) -> None:
    app, ran = recording_app(make_app)
    server = serve(app)
    body = json.loads(delivery_body())
    event = {
        "specversion": "1.0", "id": "0f6b7c6e-8d1c-4d1e-9a53-5f2f3f7b1a01",
        "source": "urn:nld:oin:00000001823288444000:systeem:open-zaak",
        "type": "nl.overheid.zaken.status.create",
        "subject": body["resourceUrl"].rsplit("/", 1)[1], "time": body["aanmaakdatum"],
        "datacontenttype": "application/json",
        "data": {**body["kenmerken"], "hoofdObject": body["hoofdObject"],
                 "resourceUrl": body["resourceUrl"]},
    }
    resp = http.post(server.url + CALLBACK, data=json.dumps(event),
                     headers={**AUTH, "Content-Type": "application/cloudevents+json"})
    assert resp.status_code == 204
    (name, n), = ran
    assert name == "status_created"
    assert n.resource_url == body["resourceUrl"]
    assert n.dedup_key == "ce:0f6b7c6e-8d1c-4d1e-9a53-5f2f3f7b1a01"


def test_chunked_body_over_the_limit_is_413(make_app: Any, serve: Any) -> None:
    app, ran = recording_app(make_app, max_body_size=1000)
    server = serve(app)
    chunk = b"x" * 800
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)) + b"0\r\n\r\n"
    request = (f"POST {CALLBACK} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
               "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    status, headers, body = raw_request(server.port, request + chunked)
    assert status == 413
    assert json.loads(body)["code"] == "too_large"
    assert ran == []


def test_chunked_body_within_the_limit_is_accepted(make_app: Any, serve: Any) -> None:
    app, ran = recording_app(make_app)
    server = serve(app)
    body = delivery_body()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    request = (f"POST {CALLBACK} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
               "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    status, _, _ = raw_request(server.port, request + chunked)
    assert status == 204
    assert [name for name, _ in ran] == ["status_created"]


def test_body_shorter_than_content_length_is_a_problem(make_app: Any, serve: Any) -> None:
    app, ran = recording_app(make_app)
    server = serve(app)
    request = (f"POST {CALLBACK} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
               "Content-Type: application/json\r\nContent-Length: 500\r\n"
               "Connection: close\r\n\r\n").encode()
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request + b'{"kanaal": "za')
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split()[1] == b"400"
    assert b"application/problem+json" in head
    assert json.loads(body)["code"] in ("bad_request", "parse_error")
    assert ran == []


def test_a_crashing_signal_subscriber_gives_a_problem_500(make_app: Any, serve: Any,
                                                          http: requests.Session,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    app, ran = recording_app(make_app)
    server = serve(app)

    def broken(sender: Any, **kwargs: Any) -> None:
        raise KeyError("subscriber bug")

    with signals.notification_received.connected_to(broken, sender=app):
        resp = http.post(server.url + CALLBACK, data=delivery_body(), headers=AUTH)
    assert resp.status_code == 500
    assert resp.headers["Content-Type"] == "application/problem+json"
    assert resp.json()["code"] == "server_error"
    assert "subscriber bug" not in resp.text
    assert "unexpected error in the callback" in caplog.text
