from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from nc_receiver import Notification, Router
from nc_receiver.routing import camelize, snakeize


def note(kanaal: str = "zaken", resource: str = "status", actie: str = "create",
         **kenmerken: str) -> Notification:
    return Notification(
        kanaal=kanaal, hoofd_object="https://oz.nl/zaken/1", resource=resource,
        resource_url="https://oz.nl/statussen/1", actie=actie,
        aanmaakdatum=datetime(2026, 12, 3, tzinfo=timezone.utc), kenmerken=kenmerken,
    )


def names(router: Router, n: Notification) -> list[str]:
    return [r.handler.__name__ for r in router.match(n)]


def h(name: str) -> Any:
    def handler(n: Notification) -> None: ...
    handler.__name__ = handler.__qualname__ = name
    return handler


def test_exact_route_and_wildcards_match() -> None:
    router = Router()
    router.add_handler(h("exact"), "zaken", "status", "create")
    router.add_handler(h("kanaal_only"), "zaken")
    router.add_handler(h("star_resource"), "zaken", "*", "create")
    router.add_handler(h("other_kanaal"), "documenten")
    router.add_handler(h("other_actie"), "zaken", "status", "destroy")
    router.add_handler(h("all"), "*")
    assert names(router, note()) == ["exact", "star_resource", "kanaal_only", "all"]


def test_most_specific_first_then_registration_order() -> None:
    router = Router()
    router.add_handler(h("b_kanaal"), "zaken")
    router.add_handler(h("a_kanaal"), "zaken")
    router.add_handler(h("filtered"), "zaken", bronorganisatie="1")
    router.add_handler(h("exact_filtered"), "zaken", "status", "create", bronorganisatie="1")
    assert names(router, note(bronorganisatie="1")) == [
        "exact_filtered", "filtered", "b_kanaal", "a_kanaal"]


@pytest.mark.parametrize(
    ("kenmerken", "expected"),
    [
        ({"bronorganisatie": "224557609"}, ["filtered"]),
        ({"bronorganisatie": "999999999"}, []),
        ({}, []),
        ({"bronorganisatie": "224557609", "zaaktype": "x"}, ["filtered"]),
        ({"Bronorganisatie": "224557609"}, []),
    ],
    ids=["equal", "different", "missing-key-does-not-match-locally", "extra-keys", "case"],
)
def test_kenmerken_filter_exact_equality(kenmerken: dict[str, str], expected: list[str]) -> None:
    router = Router()
    router.add_handler(h("filtered"), "zaken", bronorganisatie="224557609")
    assert names(router, note(**kenmerken)) == expected


@pytest.mark.parametrize(
    ("filter_key", "kenmerk_key"),
    [("object_type", "objectType"), ("objectType", "objectType"), ("object_type", "object_type"),
     ("objectType", "object_type")],
    ids=["snake-filter-camel-wire", "camel-camel", "snake-snake", "camel-filter-snake-wire"],
)
def test_filter_keys_match_camel_and_snake(filter_key: str, kenmerk_key: str) -> None:
    router = Router()
    router.add_handler(h("typed"), "objecten", **{filter_key: "https://x/types/1"})
    assert names(router, note("objecten", **{kenmerk_key: "https://x/types/1"})) == ["typed"]


def test_one_function_on_two_routes_runs_once() -> None:
    router = Router()
    fn = h("both")
    router.add_handler(fn, "zaken", "status")
    router.add_handler(fn, "zaken")
    assert names(router, note()) == ["both"]


def test_closures_with_the_same_qualname_get_distinct_stable_names() -> None:
    router = Router()
    routes = [router.add_handler(h("same"), "zaken") for _ in range(3)]
    assert [r.name for r in routes] == [f"{__name__}:same", f"{__name__}:same#2",
                                        f"{__name__}:same#3"]
    assert router.handler_by_name(f"{__name__}:same#2") is routes[1].handler


def test_decorator_keeps_the_function() -> None:
    router = Router()

    @router.on("zaken", "zaak", "create")
    def created(n: Notification) -> str:
        return "ok"

    assert created(note()) == "ok"
    assert router.routes[0].handler is created


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((), {}, TypeError, "Router.on() missing 1 required positional argument: 'kanaal'"),
        (("",), {}, TypeError, "The kanaal of a handler must be a non-empty string or '*', "
         "got ''; write e.g. @on('zaken', 'status', 'create')."),
        (("zaken", 5), {}, TypeError, "The resource of a handler must be a non-empty string or "
         "'*', got 5; write e.g. @on('zaken', 'status', 'create')."),
        (("zaken",), {"bronorganisatie": 224557609}, TypeError,
         "Kenmerken filter bronorganisatie=224557609 must be a string: the NC sends kenmerk "
         "values as strings, so write bronorganisatie='224557609'."),
        (("zaken",), {"object_type": "a", "objectType": "b"}, ValueError,
         "Kenmerken filter 'objectType' is given twice with different values."),
    ],
    ids=["no-kanaal", "empty-kanaal", "int-resource", "int-filter", "conflicting-filter"],
)
def test_registration_mistakes_fail_at_registration(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    router = Router()
    with pytest.raises(error) as info:
        router.on(*args, **kwargs)
    assert str(info.value) == message


def test_bare_decorator_without_kanaal_is_explained() -> None:
    router = Router()
    with pytest.raises(TypeError, match="not a bare @on"):
        router.on(h("oops"))  # type: ignore[arg-type]


def test_on_any_and_on_error_are_kept_in_order() -> None:
    router = Router()
    first, second = h("first"), h("second")
    router.on_any(first)
    router.on_any(second)
    assert router.any_handlers == [first, second]
    router.on_error(first)
    assert router.error_handlers == [first]


def test_wanted_kanalen_unions_filters_per_kanaal() -> None:
    router = Router()
    router.add_handler(h("a"), "zaken", "status", bronorganisatie="1")
    router.add_handler(h("b"), "zaken", bronorganisatie="2")
    router.add_handler(h("c"), "zaken", "zaak", bronorganisatie="1")
    router.add_handler(h("d"), "documenten")
    router.add_handler(h("e"), "documenten", bronorganisatie="3")
    assert router.wanted_kanalen() == {
        "zaken": [{"bronorganisatie": "1"}, {"bronorganisatie": "2"}],
        "documenten": [{}],
    }


def test_lookup_with_many_routes_only_touches_matching_buckets() -> None:
    router = Router()
    for i in range(10_000):
        router.add_handler(h(f"h{i}"), "zaken", "status", bronorganisatie=str(i))
    assert names(router, note(bronorganisatie="1234")) == ["h1234"]
    assert names(router, note(bronorganisatie="nope")) == []


@pytest.mark.parametrize(("snake", "camel"), [("object_type", "objectType"),
                                               ("a_b_c", "aBC"), ("plain", "plain")])
def test_case_conversion(snake: str, camel: str) -> None:
    assert camelize(snake) == camel
    assert snakeize(camelize("object_type")) == "object_type"
