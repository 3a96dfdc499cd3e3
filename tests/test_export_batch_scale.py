"""The fast JSON writer of exports (runlog.export.jsontext) writes the json module's text."""

from __future__ import annotations

import json

import pytest

from runlog.export.jsontext import pretty

HOSTILE = [
    {"a": [1, 2, {"b": []}], "c": {}, "é": "\u2028\x7f\x00\x1f\"\\/ü😀", "z": None, "t": True, "f": 1.5},
    {"small": 1e-7, "large": 1e16, "negative": -0.0, "big": 10**30, "exact": 0.1, "ints": [0, -1, 2**63 - 1]},
    [], {}, "x", [[]], {"": ""},
    {"\ud800": "lone surrogate key"}, ["lone \udfff surrogate"],
    {"b": 1, "a": 2, "B": 3, "ä": 4, "😀": 5, "\uffff": 6},  # key order by code point
]


@pytest.mark.parametrize("ensure_ascii", [False, True])
@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_pretty_is_the_json_modules_text(value, ensure_ascii):
    assert pretty(value, ensure_ascii=ensure_ascii) == json.dumps(value, indent=2, sort_keys=True,
                                                                   ensure_ascii=ensure_ascii)


@pytest.mark.parametrize("ensure_ascii", [False, True])
def test_pretty_writes_every_character_as_the_json_module_does(ensure_ascii):
    points = list(range(0x800)) + list(range(0xD7F0, 0xE010)) + [0xFEFF, 0xFFFD, 0xFFFF, 0x10000, 0x1F600, 0x10FFFF]
    value = {chr(p): [chr(p), "a" + chr(p) + "b"] for p in points}
    assert pretty(value, ensure_ascii=ensure_ascii) == json.dumps(value, indent=2, sort_keys=True,
                                                                   ensure_ascii=ensure_ascii)


def test_pretty_refuses_what_the_json_module_refuses():
    with pytest.raises(TypeError):
        pretty({1: "a", "b": 2})  # mixed key types cannot be sorted
    with pytest.raises(TypeError):
        pretty({"when": object()})
    import dataclasses
    import datetime

    @dataclasses.dataclass
    class Point:
        x: int

    for value in (datetime.datetime(2026, 1, 1), datetime.date(2026, 1, 1), Point(1)):
        with pytest.raises(TypeError):
            json.dumps(value)
        with pytest.raises(TypeError):
            pretty({"value": value})
