"""Subscribing at start-up: in a background thread, once our callback answers.

``schedule_subscription`` is called by ``init_app`` and does no network I/O: it builds
the wanted :class:`~nc_receiver.subscription.Subscription` (so configuration errors
surface at start-up) and starts a daemon thread. The thread waits until our own callback
answers an unauthenticated POST (the NC probes it synchronously while we subscribe),
then syncs, retrying with exponential backoff while the NC is unreachable or refuses.
Every worker does this; the file lock and the idempotent sync make it one write per
deployment. Not in Flask's reloader parent, nor in ``flask`` commands other than ``run``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from . import signals
from .exceptions import ConfigurationError
from .nc_client import NCClient
from .settings import Settings
from .subscription import Subscription, SyncResult, wanted_kanalen
from .tokens import make_zgw_jwt

if TYPE_CHECKING:
    from flask import Flask

    from .extension import _State

log = logging.getLogger(__name__)

#: The body the NC posts to a callback while it validates an abonnement.
PROBE_BODY = (
    b'{"kanaal": "test", "hoofdObject": "http://some.hoofdobject.nl/", "resource": '
    b'"some_resource", "resourceUrl": "http://some.resource.nl/", "actie": "create", '
    b'"aanmaakdatum": "2019-01-01T12:00:00Z", "kenmerken": {}}'
)
#: How long the thread waits for our callback to answer before it subscribes anyway.
READY_TIMEOUT = 60.0
#: The User-Agent of that readiness check, so that it can be told apart in access logs.
READY_AGENT = "nc-receiver-startup"


@dataclass(eq=False)
class SubscriptionTask:
    """The background subscription of one app (``state.extras["subscription"]``)."""

    thread: threading.Thread | None = None
    done: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)
    result: SyncResult | None = None
    error: BaseException | None = None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until it subscribed or gave up; False on timeout."""
        return self.done.wait(timeout)

    def stop(self) -> None:
        """Stop retrying (a sync in flight finishes)."""
        self.stopping.set()


def auth_for(settings: Settings) -> tuple[str, str]:
    """The ``auth`` value to give the NC, and the key that identifies its credential.

    The first ``NC_RECEIVER_AUTH_TOKENS`` token, else a ZGW JWT signed with one of our
    own ``NC_RECEIVER_JWT_SECRETS`` (that of ``NC_RECEIVER_NC_CLIENT_ID`` when listed),
    without ``exp``: the NC stores it and replays it for as long as the abonnement lives.
    """
    if settings.auth_tokens:
        token = settings.auth_tokens[0]
        return f"Bearer {token}", f"token\0{token}"
    if settings.jwt_max_age is not None:
        raise ConfigurationError(
            "NC_RECEIVER_JWT_MAX_AGE is set, but the NC replays the token in its abonnement "
            "forever, so deliveries would be refused once it is older: set "
            "NC_RECEIVER_AUTH_TOKENS for the NC to use, or unset NC_RECEIVER_JWT_MAX_AGE."
        )
    secrets = settings.jwt_secrets
    preferred = settings.nc_client_id or ""
    client_id = preferred if preferred in secrets else next(iter(secrets))
    algorithm = settings.jwt_algorithms[0]
    token = make_zgw_jwt(client_id, secrets[client_id], algorithm=algorithm)
    return f"Bearer {token}", f"jwt\0{client_id}\0{secrets[client_id]}\0{algorithm}"


def build_subscription(app: Flask, state: _State, **client_options: Any) -> Subscription:
    """The subscription this app's receiver wants (no network I/O)."""
    settings = state.settings
    if not (settings.nc_url and settings.nc_client_id and settings.nc_secret):
        raise ConfigurationError(
            "The NC is not configured: set NC_RECEIVER_NC_URL, NC_RECEIVER_NC_CLIENT_ID and "
            "NC_RECEIVER_NC_SECRET."
        )
    if not settings.callback_url:
        raise ConfigurationError(
            "Set NC_RECEIVER_CALLBACK_URL to the public URL at which the NC reaches this "
            f"receiver's callback (ending in {settings.callback_path})."
        )
    client = NCClient(settings.nc_url, settings.nc_client_id, settings.nc_secret,
                      **client_options)
    auth, auth_key = auth_for(settings)
    state_dir = Path(settings.state_dir or app.instance_path)
    kanalen = wanted_kanalen(state.dispatcher.routers, settings.kanalen)
    subscription = Subscription(client, settings.callback_url, auth, kanalen, state_dir,
                                auth_key)
    subscription.check_limits()
    return subscription


def subscribe(app: Flask, state: _State, subscription: Subscription | None = None) -> SyncResult:
    """Sync now; log one line and send ``subscription_synced``."""
    result = (subscription or build_subscription(app, state)).sync()
    log.info("nc_receiver: %s", result)
    signals.subscription_synced.send(app, action=result.action, abonnement=result.abonnement)
    return result


def schedule_subscription(app: Flask, state: _State) -> SubscriptionTask | None:
    """Subscribe in a daemon thread once the server accepts requests; None when skipped."""
    reason = _skip_reason()
    if reason:
        log.debug("nc_receiver: not subscribing at start-up: %s", reason)
        return None
    subscription = build_subscription(app, state, retries=0)
    task = SubscriptionTask()
    task.thread = threading.Thread(target=_run, args=(app, state, subscription, task),
                                   name="nc-receiver-subscribe", daemon=True)
    state.extras["subscription"] = task
    task.thread.start()
    return task


def _skip_reason() -> str | None:
    import click
    from flask.cli import FlaskGroup
    from flask.helpers import get_debug_flag

    ctx = click.get_current_context(silent=True)
    if ctx is None or not isinstance(ctx.find_root().command, FlaskGroup):
        return None
    if ctx.info_name != "run":
        return f"'flask {ctx.info_name}' does not serve requests"
    reload = ctx.params.get("reload")
    if (get_debug_flag() if reload is None else reload) and not os.environ.get("WERKZEUG_RUN_MAIN"):
        return "this is the reloader's parent process; its child subscribes"
    return None


def wait_until_serving(url: str, stopping: threading.Event, timeout: float) -> int | None:
    """Poll ``url`` without auth until it answers 401/403; the last status (None: no answer)."""
    deadline, delay, status = time.monotonic() + timeout, 0.05, None
    while not stopping.is_set():
        try:
            response = requests.post(url, data=PROBE_BODY, timeout=2, headers={
                "Content-Type": "application/json", "User-Agent": READY_AGENT})
            status = response.status_code
        except requests.RequestException:
            status = None
        if status in (401, 403) or time.monotonic() > deadline:
            break
        stopping.wait(delay)
        delay = min(delay * 1.5, 1.0)
    return status


def _run(app: Flask, state: _State, subscription: Subscription, task: SubscriptionTask) -> None:
    settings = state.settings
    try:
        status = wait_until_serving(subscription.callback_url, task.stopping, READY_TIMEOUT)
        if status not in (401, 403) and not task.stopping.is_set():
            log.warning(
                "nc_receiver: %s answered an unauthenticated request with %s, not 401/403; "
                "subscribing anyway (check NC_RECEIVER_CALLBACK_URL)",
                subscription.callback_url, status or "no answer",
            )
        delay = settings.subscribe_backoff
        while not task.stopping.is_set():
            try:
                task.result = subscribe(app, state, subscription)
                return
            except ConfigurationError as exc:
                log.error("nc_receiver: cannot subscribe at the NC: %s", exc)
                task.error = exc
                return
            except Exception as exc:  # the NC down, refusing, or a bug: never crash the app
                log.warning("nc_receiver: subscribing at the NC failed (%s: %s); retrying in "
                            "%.1f s", type(exc).__name__, exc, delay)
                task.error = exc
            task.stopping.wait(delay)
            delay = min(delay * 2, settings.subscribe_backoff_max)
    finally:
        task.done.set()
