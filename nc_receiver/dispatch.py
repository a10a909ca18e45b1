"""Running the handlers for a notification: ordered, all of them, errors collected."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

from .exceptions import HandlerError
from .notification import Notification
from .routing import Router, default_router

log = logging.getLogger(__name__)

Handler = Callable[[Notification], Any]


def call_handler(handler: Handler, notification: Notification) -> None:
    """Call one handler; an ``async def`` handler is run to completion."""
    result = handler(notification)
    if inspect.isawaitable(result):
        asyncio.run(_wait(result))


async def _wait(awaitable: Any) -> None:
    await awaitable


class Dispatcher:
    """Finds and runs handlers from a receiver's router and the module-level default."""

    def __init__(self, router: Router, *, include_default: bool = True) -> None:
        self.routers = [router] if not include_default or router is default_router else [
            router, default_router]

    def handlers_for(self, notification: Notification) -> list[tuple[str, Handler]]:
        """(name, handler) pairs in run order: routed, most specific first, then on_any.

        None at all is logged at DEBUG (every delivery mode answers 204 then).
        """
        routes = []
        for router in self.routers:
            routes.extend(router.match(notification))
        if len(self.routers) > 1 and len(routes) > 1:
            routes.sort(key=lambda r: (-r.specificity, r.seq))
        out = [(r.name, r.handler) for r in routes]
        for router in self.routers:
            out.extend((router._name_for(h), h) for h in router._any)
        seen: set[str] = set()
        unique = []
        for pair in out:
            if pair[0] not in seen:
                seen.add(pair[0])
                unique.append(pair)
        if not unique:
            log.debug("nc_receiver: no handler for %s %s %s", notification.kanaal,
                      notification.resource, notification.actie)
        return unique

    def handler_by_name(self, name: str) -> Handler | None:
        for router in self.routers:
            handler = router.handler_by_name(name)
            if handler is not None:
                return handler
        return None

    def error_hooks(self) -> list[Callable[..., Any]]:
        return [h for router in self.routers for h in router._error_handlers]

    def report_error(self, notification: Notification, name: str, error: BaseException) -> None:
        """Call the ``on_error`` hooks; a hook that raises is logged, never propagated."""
        for hook in self.error_hooks():
            try:
                hook(notification, name, error)
            except Exception:
                log.exception("nc_receiver: an on_error hook raised")

    def run(
        self,
        notification: Notification,
        handlers: Sequence[tuple[str, Handler]],
        *,
        on_failure: Callable[[str, BaseException], None] | None = None,
    ) -> list[str]:
        """Run every handler; raise HandlerError after all ran if any failed."""
        errors: list[tuple[Any, BaseException]] = []
        ran: list[str] = []
        for name, handler in handlers:
            try:
                call_handler(handler, notification)
            except Exception as exc:
                log.warning(
                    "nc_receiver: handler %s failed for %s %s %s: %s",
                    name, notification.kanaal, notification.resource, notification.actie,
                    type(exc).__name__,
                )
                errors.append((handler, exc))
                self.report_error(notification, name, exc)
                if on_failure is not None:
                    on_failure(name, exc)
            else:
                ran.append(name)
        if errors:
            raise HandlerError(errors)
        return ran
