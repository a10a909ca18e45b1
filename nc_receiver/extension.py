"""The Flask extension: ``NotificationReceiver(app=None)`` + ``init_app(app)``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from .auth import Authenticator
from .delivery import Delivery, SyncDelivery
from .dispatch import Dispatcher
from .routing import Router
from .settings import Settings

if TYPE_CHECKING:
    from flask import Flask

    from .subscription import SyncResult

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
EXTENSION_KEY = "nc_receiver"


@dataclass(eq=False)
class _State:
    """Per-app state, kept in ``app.extensions["nc_receiver"]``."""

    receiver: NotificationReceiver
    settings: Settings
    authenticator: Authenticator
    dispatcher: Dispatcher
    delivery: Delivery
    extras: dict[str, Any] = field(default_factory=dict)


class NotificationReceiver:
    """Receive NC notifications in a Flask app and route them to handlers.

    Register handlers with :meth:`on`, :meth:`on_any` and :meth:`on_error` (or the bare
    module-level ``on``, which uses the default registry that every receiver also serves),
    then call :meth:`init_app` (or pass the app to the constructor).
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        router: Router | None = None,
        include_default_router: bool = True,
        blueprint_name: str = "nc_receiver",
    ) -> None:
        self.router = router if router is not None else Router()
        self.dispatcher = Dispatcher(self.router, include_default=include_default_router)
        self.blueprint_name = blueprint_name
        if app is not None:
            self.init_app(app)

    # -- registration -----------------------------------------------------------------
    def on(
        self, kanaal: str, resource: str | None = None, actie: str | None = None, **filters: str
    ) -> Callable[[F], F]:
        """Decorator: handle notifications on ``kanaal`` (see :meth:`Router.on`)."""
        return self.router.on(kanaal, resource, actie, **filters)

    def add_handler(
        self, handler: Callable[..., Any], kanaal: str, resource: str | None = None,
        actie: str | None = None, **filters: str,
    ) -> None:
        """The plain-method twin of :meth:`on`."""
        self.router.add_handler(handler, kanaal, resource, actie, **filters)

    def on_any(self, func: F) -> F:
        """Decorator: handle every accepted notification (after the routed handlers)."""
        return self.router.on_any(func)

    def on_error(self, func: F) -> F:
        """Decorator: ``func(notification, handler_name, exception)`` when a handler raises."""
        return self.router.on_error(func)

    # -- Flask --------------------------------------------------------------------------
    def init_app(self, app: Flask) -> None:
        """Read the configuration, register the callback blueprint and the delivery mode."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "A NotificationReceiver is already registered on this app; call 'init_app' "
                "once per app (use one receiver and register all handlers on it)."
            )
        settings = Settings.from_config(app.config)
        authenticator = Authenticator(
            settings.auth_tokens, settings.jwt_secrets, algorithms=settings.jwt_algorithms,
            leeway=settings.jwt_leeway, max_age=settings.jwt_max_age,
        )
        delivery = self._make_delivery(app, settings)
        state = _State(self, settings, authenticator, self.dispatcher, delivery)
        app.extensions[EXTENSION_KEY] = state
        from .views import make_blueprint

        app.register_blueprint(make_blueprint(state, self.blueprint_name))
        delivery.start(app)
        if settings.nc_configured and settings.subscribe_on_startup:
            self._schedule_subscription(app, state)
        log.debug("nc_receiver: listening on %s (%s delivery)", settings.callback_path,
                  settings.delivery)

    def _make_delivery(self, app: Flask, settings: Settings) -> Delivery:
        if settings.delivery == "sync":
            return SyncDelivery(self.dispatcher, settings.dedup_window)
        if settings.delivery == "inbox":
            from .inbox_delivery import InboxDelivery

            return InboxDelivery(self.dispatcher, settings, app)
        from .celery_delivery import CeleryDelivery

        return CeleryDelivery(self.dispatcher, settings, app)

    def _schedule_subscription(self, app: Flask, state: _State) -> None:
        from .startup import schedule_subscription

        schedule_subscription(app, state)

    def subscribe(self, app: Flask) -> SyncResult:
        """Create or update our abonnement at the NC now; idempotent (see ``subscription``)."""
        from .startup import subscribe

        return subscribe(app, self.state(app))

    def unsubscribe(self, app: Flask) -> int:
        """Delete every abonnement at the NC that points at our callback; return how many."""
        from .startup import build_subscription

        return build_subscription(app, self.state(app)).unsubscribe()

    @staticmethod
    def state(app: Flask) -> _State:
        """The receiver's per-app state; fails with a hint when init_app was not called."""
        try:
            state: _State = app.extensions[EXTENSION_KEY]
        except KeyError:
            raise RuntimeError(
                "nc_receiver is not set up on this app. Did you forget to call "
                "'receiver.init_app(app)'?"
            ) from None
        return state
