"""Routing notifications to handlers by kanaal, resource, actie and kenmerken.

Handlers are indexed so that finding the ones for a notification costs the same with ten
or ten thousand registrations: a dict lookup per wildcard combination of (kanaal,
resource, actie), then one dict lookup per distinct *set of filter keys* in that bucket.

Order: the most specific handler runs first. Specificity counts the fixed parts of the
route: the kanaal, the resource and the actie (each 1 unless ``"*"``) plus the number of
kenmerken filters. Ties run in registration order.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .notification import Notification

F = TypeVar("F", bound=Callable[..., Any])
ANY = "*"
_seq = itertools.count()


def camelize(key: str) -> str:
    """``object_type`` → ``objectType``: the form in which the NC forwards kenmerk keys."""
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def snakeize(key: str) -> str:
    """``objectType`` → ``object_type``."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


@dataclass(frozen=True, eq=False, slots=True)
class Route:
    """One registered handler and what it matches."""

    handler: Callable[..., Any]
    kanaal: str
    resource: str = ANY
    actie: str = ANY
    filters: tuple[tuple[str, str], ...] = ()
    seq: int = field(default_factory=lambda: next(_seq))

    name: str = ""

    @property
    def specificity(self) -> int:
        fixed = sum(part != ANY for part in (self.kanaal, self.resource, self.actie))
        return fixed + len(self.filters)


def _kenmerk(kenmerken: Mapping[str, str], camel_key: str) -> str | None:
    value = kenmerken.get(camel_key)
    if value is None:
        value = kenmerken.get(snakeize(camel_key))
    return value


def _check_part(what: str, value: object) -> str:
    if value is None:
        return ANY
    if not isinstance(value, str) or not value:
        raise TypeError(
            f"The {what} of a handler must be a non-empty string or '*', got {value!r}; "
            f"write e.g. @on('zaken', 'status', 'create')."
        )
    return value


class _Bucket:
    """Routes for one (kanaal, resource, actie) key, grouped by their filter key set."""

    __slots__ = ("groups",)

    def __init__(self) -> None:
        # filter keys (sorted tuple) -> filter values (tuple) -> routes
        self.groups: dict[tuple[str, ...], dict[tuple[str, ...], list[Route]]] = {}

    def add(self, route: Route) -> None:
        keys = tuple(k for k, _ in route.filters)
        values = tuple(v for _, v in route.filters)
        self.groups.setdefault(keys, {}).setdefault(values, []).append(route)

    def collect(self, kenmerken: Mapping[str, str], out: list[Route]) -> None:
        for keys, by_values in self.groups.items():
            if not keys:
                out.extend(by_values.get((), ()))
                continue
            values = []
            for key in keys:
                value = _kenmerk(kenmerken, key)
                if value is None:
                    break
                values.append(value)
            else:
                out.extend(by_values.get(tuple(values), ()))


class Router:
    """A registry of handlers; ``on`` registers, ``match`` finds."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}
        self._routes: list[Route] = []
        self._any: list[Callable[..., Any]] = []
        self._error_handlers: list[Callable[..., Any]] = []
        self._by_name: dict[str, Callable[..., Any]] = {}
        self._names: dict[Callable[..., Any], str] = {}

    @property
    def routes(self) -> list[Route]:
        """All routes in registration order."""
        return list(self._routes)

    @property
    def any_handlers(self) -> list[Callable[..., Any]]:
        return list(self._any)

    @property
    def error_handlers(self) -> list[Callable[..., Any]]:
        return list(self._error_handlers)

    def on(
        self, kanaal: str, resource: str | None = None, actie: str | None = None, **filters: str
    ) -> Callable[[F], F]:
        """Decorator: run the function for notifications on ``kanaal``.

        ``resource`` and ``actie`` default to any (``"*"``); keyword arguments are
        kenmerken filters matched by exact equality (``bronorganisatie="224557609"``); a
        snake_case key also matches the NC's camelCased key.
        """
        route_args = (kanaal, resource, actie, filters)
        self._validate(*route_args)

        def decorator(func: F) -> F:
            self.add_handler(func, kanaal, resource, actie, **filters)
            return func

        return decorator

    def add_handler(
        self,
        handler: Callable[..., Any],
        kanaal: str,
        resource: str | None = None,
        actie: str | None = None,
        **filters: str,
    ) -> Route:
        """The plain-method twin of :meth:`on`."""
        if not callable(handler):
            raise TypeError(f"A handler must be callable, got {handler!r}.")
        k, r, a, f = self._validate(kanaal, resource, actie, filters)
        route = Route(handler, k, r, a, f, name=self._name_for(handler))
        self._routes.append(route)
        self._buckets.setdefault((k, r, a), _Bucket()).add(route)
        return route

    @staticmethod
    def _validate(
        kanaal: object, resource: object, actie: object, filters: Mapping[str, object]
    ) -> tuple[str, str, str, tuple[tuple[str, str], ...]]:
        if kanaal is None or callable(kanaal):
            raise TypeError(
                "@on needs a kanaal: write @on('zaken') or @on('zaken', 'status', 'create'), "
                "not a bare @on."
            )
        k = _check_part("kanaal", kanaal)
        r = _check_part("resource", resource)
        a = _check_part("actie", actie)
        pairs: dict[str, str] = {}
        for key, value in filters.items():
            if not isinstance(value, str):
                raise TypeError(
                    f"Kenmerken filter {key}={value!r} must be a string: the NC sends kenmerk "
                    f"values as strings, so write {key}={str(value)!r}."
                )
            camel = camelize(key)
            if camel in pairs and pairs[camel] != value:
                raise ValueError(f"Kenmerken filter {key!r} is given twice with different values.")
            pairs[camel] = value
        return k, r, a, tuple(sorted(pairs.items()))

    def on_any(self, func: F) -> F:
        """Decorator: run the function for every accepted notification (after routed ones)."""
        if not callable(func):
            raise TypeError(
                "@on_any decorates a function: write @receiver.on_any without arguments.")
        self._name_for(func)
        self._any.append(func)
        return func

    def on_error(self, func: F) -> F:
        """Decorator: call ``func(notification, handler, exception)`` when a handler raises."""
        if not callable(func):
            raise TypeError("@on_error decorates a function: write @receiver.on_error.")
        self._error_handlers.append(func)
        return func

    def match(self, notification: Notification) -> list[Route]:
        """The routes for ``notification``, most specific first, then registration order."""
        found: list[Route] = []
        kenmerken = notification.kenmerken
        for key in _keys(notification.kanaal, notification.resource, notification.actie):
            bucket = self._buckets.get(key)
            if bucket is not None:
                bucket.collect(kenmerken, found)
        if len(found) > 1:
            found.sort(key=_order)
            seen: set[int] = set()
            unique = []
            for route in found:
                if id(route.handler) not in seen:
                    seen.add(id(route.handler))
                    unique.append(route)
            found = unique
        return found

    def _name_for(self, handler: Callable[..., Any]) -> str:
        """A stable name (``module:qualname``) by which durable queues refer to a handler.

        Different functions with the same qualified name (closures made in a loop) get
        ``#2``, ``#3``, ... in registration order.
        """
        try:
            return self._names[handler]
        except KeyError:
            pass
        base = f"{getattr(handler, '__module__', '?')}:{getattr(handler, '__qualname__', '?')}"
        name, n = base, 1
        while name in self._by_name:
            n += 1
            name = f"{base}#{n}"
        self._by_name[name] = handler
        self._names[handler] = name
        return name

    def handler_by_name(self, name: str) -> Callable[..., Any] | None:
        """The handler registered under ``name`` (see :attr:`Route.name`)."""
        return self._by_name.get(name)

    def wanted_kanalen(self) -> dict[str, list[dict[str, str]]]:
        """Per kanaal, the filter groups the handlers need (``[{}]`` = the whole kanaal)."""
        wanted: dict[str, list[dict[str, str]]] = {}
        for route in self._routes:
            groups = wanted.setdefault(route.kanaal, [])
            group = dict(route.filters)
            if group not in groups:
                groups.append(group)
        for groups in wanted.values():
            if {} in groups:
                groups[:] = [{}]
        return wanted


def _order(route: Route) -> tuple[int, int]:
    return (-route.specificity, route.seq)


def _keys(kanaal: str, resource: str, actie: str) -> Iterable[tuple[str, str, str]]:
    return (
        (kanaal, resource, actie),
        (kanaal, resource, ANY),
        (kanaal, ANY, actie),
        (kanaal, ANY, ANY),
        (ANY, resource, actie),
        (ANY, resource, ANY),
        (ANY, ANY, actie),
        (ANY, ANY, ANY),
    )


default_router = Router()
on = default_router.on
on_any = default_router.on_any
on_error = default_router.on_error
