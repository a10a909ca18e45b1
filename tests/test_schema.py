"""Validation: lenient where the NC is lenient, strict where it matters."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from conftest import delivery_body

from nc_receiver import ValidationError, parse_body
from nc_receiver.schema import parse_datetime

BASE: dict[str, Any] = json.loads(delivery_body())


def parse(**changes: Any) -> Any:
    body = {**BASE, **changes}
    body = {k: v for k, v in body.items() if v is not ...}
    return parse_body(json.dumps(body).encode(), "application/json")


@pytest.mark.parametrize(
    "changes",
    [
        {"kenmerken": {"bronorganisatie": ""}},
        {"kenmerken": ...},
        {"kenmerken": {}},
        {"kenmerken": None},
        {"hoofdObject": "http://openzaak:8000/zaken/api/v1/zaken/1"},
        {"resourceUrl": "http://localhost/x"},
        {"hoofdObject": "http://open_zaak.docker/zaken/1"},
        {"aanmaakdatum": "2026-12-03T16:41:54.123Z"},
        {"aanmaakdatum": "2026-12-03T17:41:54.123456+01:00"},
        {"aanmaakdatum": "2026-12-03t16:41:54z"},
        {"aanmaakdatum": "2026-12-03T16:41:54"},
        {"aanmaakdatum": "1999-01-01T00:00:00Z"},
        {"aanmaakdatum": (datetime.now(timezone.utc) + timedelta(minutes=5)).isoformat()},
        {"source": "openzaak"},
        {"source": None},
        {"extraVeld": {"nested": [1, 2]}},
        {"kenmerken": {"objectType": "https://objecttypen/1", "a" * 100: "x" * 1000}},
    ],
    ids=["empty-kenmerk-value", "no-kenmerken", "empty-kenmerken", "null-kenmerken",
         "host-without-tld", "localhost", "underscore-host", "millis", "offset-micros",
         "lowercase-t-z", "naive-as-utc", "far-past", "little-future", "source", "null-source",
         "unknown-field", "max-lengths"],
)
def test_lenient_where_the_nc_is(changes: dict[str, Any]) -> None:
    n = parse(**changes)
    assert n.kanaal == "zaken"
    assert n.aanmaakdatum.tzinfo is not None


def test_2019_list_kenmerken_are_normalised() -> None:
    n = parse(kenmerken=[{"bronorganisatie": "224557609"}, {"zaaktype": "https://zt/1"}])
    assert dict(n.kenmerken) == {"bronorganisatie": "224557609", "zaaktype": "https://zt/1"}


def test_unknown_fields_are_kept() -> None:
    n = parse(extraVeld="x", source="oz")
    assert dict(n.extra) == {"extraVeld": "x"}
    assert n.source == "oz"
    assert n.to_dict()["extraVeld"] == "x"


def test_offsets_are_kept_as_aware_datetimes() -> None:
    n = parse(aanmaakdatum="2026-12-03T17:41:54.123456+01:00")
    assert n.aanmaakdatum == datetime(2026, 12, 3, 16, 41, 54, 123456, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"kanaal": ...}, "kanaal", "Missing data for required field."),
        ({"kanaal": ""}, "kanaal", "Length must be between 1 and 50."),
        ({"kanaal": "k" * 51}, "kanaal", "Length must be between 1 and 50."),
        ({"kanaal": 5}, "kanaal", "Not a valid string."),
        ({"resource": "r" * 101}, "resource", "Length must be between 1 and 100."),
        ({"actie": None}, "actie", "Field may not be null."),
        ({"hoofdObject": "ftp://x/y"}, "hoofdObject", "Not a valid URL."),
        ({"hoofdObject": "not a url"}, "hoofdObject", "Not a valid URL."),
        ({"resourceUrl": "https://x:99999/"}, "resourceUrl", "Not a valid URL."),
        ({"resourceUrl": "https://x/" + "a" * 1000}, "resourceUrl",
         "Must be at most 1000 characters."),
        ({"aanmaakdatum": "gisteren"}, "aanmaakdatum", "Not a valid RFC 3339 date-time."),
        ({"aanmaakdatum": 1733244114}, "aanmaakdatum",
         "Not a valid date-time: send an RFC 3339 string."),
        ({"kenmerken": {"a": 1}}, "kenmerken", "Kenmerk values must be strings."),
        ({"kenmerken": {"a": "x" * 1001}}, "kenmerken",
         "Kenmerk values must be at most 1000 characters."),
        ({"kenmerken": "a=b"}, "kenmerken", "Must be an object of string values."),
        ({"kenmerken": ["a"]}, "kenmerken", "A kenmerken list must hold objects."),
        ({"source": "s" * 101}, "source", "Longer than maximum length 100."),
    ],
    ids=["missing-kanaal", "empty-kanaal", "long-kanaal", "int-kanaal", "long-resource",
         "null-actie", "ftp-url", "no-url", "bad-port", "long-url", "bad-date", "epoch-date",
         "int-kenmerk", "long-kenmerk", "string-kenmerken", "list-of-strings", "long-source"],
)
def test_strict_where_it_matters(changes: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse(**changes)
    params = {p["name"]: p["reason"] for p in info.value.invalid_params}
    assert params[field] == reason


def test_cloudevent_is_the_same_notification() -> None:
    event = {
        "specversion": "1.0", "id": "5d0c6c0a-2b4e-4d7b-9c43-1f0bd1b1b1b1",
        "source": "urn:nld:oin:00000001823288444000:systeem:open-zaak",
        "type": "nl.overheid.zaken.status.create", "subject": "7c3e1f9a",
        "time": "2026-12-03T16:41:54Z", "datacontenttype": "application/json",
        "data": {"bronorganisatie": "224557609", "hoofdObject": BASE["hoofdObject"],
                 "resourceUrl": BASE["resourceUrl"]},
    }
    n = parse_body(json.dumps(event).encode(), "application/cloudevents+json")
    assert (n.kanaal, n.resource, n.actie) == ("zaken", "status", "create")
    assert n.resource_url == BASE["resourceUrl"] and n.hoofd_object == BASE["hoofdObject"]
    assert dict(n.kenmerken) == {"bronorganisatie": "224557609"}
    assert n.dedup_key == "ce:5d0c6c0a-2b4e-4d7b-9c43-1f0bd1b1b1b1"
    assert n.cloudevent is not None and n.cloudevent["subject"] == "7c3e1f9a"


@pytest.mark.parametrize(
    ("change", "field"),
    [({"type": "com.example.other"}, "type"), ({"type": "nl.overheid.zaken.status"}, "type"),
     ({"id": None}, "id"), ({"data": "x"}, "data")],
    ids=["foreign-type", "short-type", "no-id", "data-not-object"],
)
def test_bad_cloudevents_are_400(change: dict[str, Any], field: str) -> None:
    event = {"specversion": "1.0", "id": "1", "source": "s",
             "type": "nl.overheid.zaken.zaak.create", "time": "2026-12-03T16:41:54Z",
             "data": {"hoofdObject": "https://oz/zaken/1"}, **change}
    with pytest.raises(ValidationError) as info:
        parse_body(json.dumps(event).encode(), "application/cloudevents+json")
    assert info.value.invalid_params[0]["name"] == field


def test_dedup_key_is_stable_across_key_order_and_differs_on_content() -> None:
    a = parse()
    reordered = json.dumps(dict(reversed(list(BASE.items())))).encode()
    b = parse_body(reordered, "application/json")
    assert a.dedup_key == b.dedup_key
    assert parse(actie="update").dedup_key != a.dedup_key


@pytest.mark.parametrize("text", ["2026-12-03", "2026-12-03T16:41:54+0100x", "", "x" * 50])
def test_parse_datetime_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        parse_datetime(text)
