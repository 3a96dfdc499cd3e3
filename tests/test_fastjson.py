"""runlog.fastjson (orjson on verify's path) says exactly what record.canonical_json says."""

from __future__ import annotations

import json
import random
import struct

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import json_leaves
from runlog import fastjson
from runlog import record as rec


def _floats(count: int) -> list[float]:
    rnd = random.Random(2791)
    found = [struct.unpack("<d", rnd.randbytes(8))[0] for _ in range(count)]
    found += [rnd.uniform(-1e6, 1e6) for _ in range(count // 4)]
    found += [rnd.uniform(0, 2e-4) for _ in range(count // 4)] + [rnd.uniform(1e15, 1e18) for _ in range(count // 4)]
    found += [s * 10.0**k for k in range(-320, 309) for s in (1.0, -1.5, 9.999999999999998)]
    found += [0.0, -0.0, 1e-4, 9.999999999999999e-05, 1e16, 9999999999999998.0, 0.1, 5e-324]
    return [f for f in found if f == f and abs(f) != float("inf")]


def test_every_code_point_is_written_as_the_json_module_writes_it():
    text = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    for start in range(0, len(text), 4096):
        value = {"s": "".join(text[start:start + 4096]), chr(0x10FFFF): 1, "\u00e9": 2, "Z": 3, "\uffff": 4}
        body = rec.canonical_json(value)
        assert orjson.dumps(value, option=orjson.OPT_SORT_KEYS) == body
        assert fastjson.decode_canonical(body) == (value, True, True)


def test_the_facts_about_orjsons_floats_that_decode_canonical_relies_on():
    """Every float the json module writes with an exponent, orjson writes with an "e" or, below
    1e-4, starting "0.0000"; every other float it writes exactly as the json module."""
    for f in _floats(200_000):
        python, fast = rec.canonical_json(f), orjson.dumps(f)
        if b"e" in python:
            assert b"e" in fast or fast.lstrip(b"-").startswith(b"0.0000"), (f, fast)
        else:
            assert fast == python, (f, fast, python)


@pytest.mark.parametrize("value", [
    {"p": 1e-05}, {"p": 1e16}, {"p": -2.5e-300}, {"p": 2**70}, {"p": -(2**70)}, {"p": 2**64 - 1},
    {"p": [0.1, 1.5, 123456.789]}, {"p": {"q": 9.999999999999999e-05}}, {"p": 0.0001}, {"p": -0.0},
])
def test_numbers_are_read_and_judged_as_the_json_module_does(value):
    body = rec.canonical_json(value)
    decoded, canonical, _ = fastjson.decode_canonical(body)
    assert canonical is True
    assert decoded == json.loads(body)
    assert [type(x) for x in json_leaves(decoded)] == [type(x) for x in json_leaves(json.loads(body))]


def test_orjsons_own_form_of_a_number_is_canonical_only_where_it_is_runlogs():
    """A body in orjson's form, as another tool might write it: canonical exactly when it is
    byte for byte what record.canonical_json writes (1e-05 is "1e-5" to orjson, 4.6e-05 is
    "0.000046...")."""
    differing = 0
    for f in _floats(20_000):
        body = orjson.dumps({"p": f, "q": "x"}, option=orjson.OPT_SORT_KEYS)
        runlogs = body == rec.canonical_json({"p": f, "q": "x"})
        differing += not runlogs
        decoded, canonical, exact = fastjson.decode_canonical(body)
        assert decoded == {"p": f, "q": "x"}
        assert canonical is runlogs, (f, body)
        assert exact is runlogs or not exact
    assert differing > 1000  # the sample holds many numbers the two write differently


@pytest.mark.parametrize("value", [8.32822874635071e-07, 1e-05, 1e16, -2.5e-300, 4.6e-05, [1e-07], 1e22])
def test_a_document_that_is_one_number_is_written_and_judged_as_the_json_module_does(value):
    """A float at the very end of the text (the whole document, or the last of an array's)."""
    body = rec.canonical_json(value)
    assert fastjson.dumps(value) == body
    assert fastjson.decode_canonical(body)[:2] == (value, True)
    assert fastjson.decode_canonical(orjson.dumps(value))[1] is (orjson.dumps(value) == body)


@pytest.mark.parametrize("body", [
    b'{"b":1,"a":2}', b'{"a": 1}', b'{"a":1.0e2}', b'{"a":NaN}', b'{"a":Infinity}', b'{"a":"\\u00e9"}',
    b'{"a":"\\ud800"}', b'{"a":1,"a":1}', b'[1.50]', b'{"a":1}\n',
])
def test_text_that_is_not_canonical_is_said_to_be_so(body):
    decoded, canonical, _ = fastjson.decode_canonical(body)
    assert canonical is False
    assert json.dumps(decoded, allow_nan=True) == json.dumps(json.loads(body), allow_nan=True)


def test_what_is_not_json_raises():
    for body in (b"", b"{", b'{"a":}', b"\xff\xfe", b"[" * 100_000):
        with pytest.raises((ValueError, RecursionError)):
            fastjson.decode_canonical(body)


def test_has_float_finds_every_float_and_anything_not_plain_json():
    assert not fastjson.has_float({"a": [1, "x", None, True, {"b": 2**80}], "c": ""})
    for hidden in (0.0, float("nan"), float("inf"), b"x", (1,), {1: 2}):
        assert fastjson.has_float({"a": [1, {"b": [hidden]}]})


def test_the_marked_reader_marks_every_float_and_nan_and_reads_as_the_json_module():
    reader = fastjson.MarkedReader()
    for text, marked in [('{"a": 1, "b": [2, -3], "c": "1.5e3 NaN"}', False), ('{"a": 1.0}', True),
                         ('[1e5]', True), ('[NaN]', True), ('[-Infinity]', True), ('[Infinity]', True),
                         ('[123456789012345678901234567890]', False), ('[1E-7]', True)]:
        value, seen = reader.read(text)
        assert seen is marked, text
        assert json.dumps(value) == json.dumps(json.loads(text))
    assert reader.read(b'{"x": 2}') == ({"x": 2}, False)


def test_plain_flat_takes_text_integers_booleans_nulls_and_datetimes_only():
    from datetime import UTC, datetime

    assert fastjson.plain_flat({"a": "x", "b": 1, "c": None, "d": True, "e": datetime(2026, 1, 1, tzinfo=UTC)})
    for other in (1.0, [], {}, b"x", float("nan")):
        assert not fastjson.plain_flat({"a": "x", "b": other})
    assert not fastjson.plain_flat({1: "x"})


def test_dumps_floatless_writes_what_the_json_module_writes_for_values_without_floats():
    from datetime import UTC, datetime, timedelta, timezone

    from hypothesis import given, settings
    from hypothesis import strategies as st

    plain = st.recursive(st.none() | st.booleans() | st.integers(min_value=-2**80, max_value=2**80) | st.text()
                         | st.datetimes(timezones=st.just(UTC)),
                         lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                         max_leaves=20)

    @settings(max_examples=500, deadline=None)
    @given(plain)
    def check(value):
        assert fastjson.dumps_floatless(value) == rec.canonical_json(value)

    check()
    moment = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert fastjson.dumps_floatless({"t": moment}) == rec.canonical_json({"t": moment})


def test_dumps_flat_writes_what_the_json_module_writes_for_any_flat_item():
    """A ListRuns item's canonical JSON through orjson's own datetimes: the same bytes as
    record.canonical_json for UTC times (with and without microseconds, any year), times at
    other offsets, naive times, and the values that are no flat item's (floats, NaN,
    containers, integers beyond 64 bits, a key that is no text)."""
    from datetime import UTC, datetime, timedelta, timezone

    from dateutil.tz import tzoffset, tzutc

    zones = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(0)), tzutc(), tzoffset(None, -3600),
                             None])
    leaf = (st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.text()
            | st.datetimes(timezones=zones) | st.floats(allow_nan=False) | st.lists(st.integers(), max_size=2))

    @settings(max_examples=500, deadline=None)
    @given(st.dictionaries(st.text(max_size=8), leaf, max_size=6))
    def check(value):
        try:
            expected = rec.canonical_json(value)
        except (ValueError, TypeError):  # infinities: neither writes them
            with pytest.raises((ValueError, TypeError)):
                fastjson.dumps_flat(value)
            return
        assert fastjson.dumps_flat(value) == expected

    check()
    item = {"id": "1234567", "status": "COMPLETED", "creationTime": datetime.fromisoformat("2026-11-27T10:00:00.123Z"),
            "stopTime": datetime.fromisoformat("2026-11-27T11:00:00Z"), "priority": 2 ** 70}
    assert fastjson.dumps_flat(item) == rec.canonical_json(item)
    assert fastjson.dumps_flat({1: "x"}) == rec.canonical_json({1: "x"})
    assert fastjson.dumps_flat({"t": datetime(2026, 1, 1, 12)}) == rec.canonical_json({"t": datetime(2026, 1, 1, 12)})


_numbers_and_digits = st.recursive(
    st.one_of(st.integers(min_value=-(10 ** 40), max_value=10 ** 40), st.floats(allow_nan=False, allow_infinity=False),
              st.text(st.sampled_from("0123456789 -:abcdef\"[,"), max_size=40), st.booleans(), st.none()),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text("0123456789ab", max_size=25), inner,
                                                                max_size=4), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(_numbers_and_digits, st.booleans())
def test_loads_reads_every_number_as_the_json_module_does(value, spaced):
    """Integers of any size, wherever they stand, and runs of digits in strings and keys (after a
    space, a sign, a letter, a quote): fastjson.loads gives the json module's value, number types
    included (orjson alone reads an integer beyond 64 bits as a float), and so does the reader
    of untrusted JSON."""
    from runlog.safejson import loads_untrusted

    text = json.dumps(value, indent=1 if spaced else None, separators=None if spaced else (",", ":"))
    expected = rec.canonical_json(json.loads(text))
    assert rec.canonical_json(fastjson.loads(text.encode())) == expected
    assert rec.canonical_json(loads_untrusted(text.encode(), max_depth=64)) == expected


NOT_FOUND = {"kind": "s3-object", "error": {"code": "NotFound", "message": "not in the listing of its prefix"}}


@pytest.mark.parametrize("rows, floatless", [
    ([{"kind": "s3-object", "etag": "abc", "size": 12, "last_modified": "2026-11-28T00:00:00Z"}], True),
    ([NOT_FOUND] * 1000 + [{"kind": "s3-object", "etag": "e", "size": 0}], True),
    ([{"kind": "s3-object", "error": {"code": "AccessDenied", "message": "no", "http_status": 403}}], True),
    ([{"a": None, "b": True, "c": -(2 ** 63)}], True),
    ([], False),  # nothing to prove: dumps decides
    ([NOT_FOUND, {"size": 1.0}], False),
    ([NOT_FOUND, {"error": {"code": float("nan")}}], False),
    ([{"size": 1e-7}], False),
    ([{"parts": [1, 2]}], False),
    ([{"error": {"deeper": {"x": 1.5}}}], False),
    ([{"error": {"deeper": {"x": 1}}}], False),
    ([{"size": 2 ** 70}], True),
    ([NOT_FOUND, ["not", "a", "dict"]], False),
])
def test_floatless_rows_says_so_only_where_no_float_can_be(rows, floatless):
    """floatless_rows (a cohort's input identities): True only when no float is anywhere in
    the rows, and then dumps_floatless writes what the json module writes; a float at either
    level, a list or a deeper dict, or a row that is no dict: False (dumps then decides)."""
    assert fastjson.floatless_rows(rows) is floatless
    if floatless:
        value = {f"s3://b/{n}": row for n, row in enumerate(rows)}
        assert fastjson.dumps_floatless(value) == rec.canonical_json(value)


@given(st.lists(st.dictionaries(st.text(max_size=5), st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=5),
    st.dictionaries(st.text(max_size=3), st.one_of(st.integers(), st.floats(), st.text(max_size=3)), max_size=3)),
    max_size=4), max_size=6))
@settings(max_examples=300, deadline=None)
def test_floatless_rows_is_never_wrong_about_a_float(rows):
    if fastjson.floatless_rows(rows):
        assert not fastjson.has_float(rows)
        value = {str(n): row for n, row in enumerate(rows)}
        assert fastjson.dumps_floatless(value) == rec.canonical_json(value)
