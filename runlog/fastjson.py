"""Fast and exact: decode what runlog wrote, and tell whether it is still canonical.

`record.canonical_json` (Python's json module) defines the bytes runlog hashes. orjson
decodes and encodes the same JSON four to five times faster and, for the values a record
holds, gives the same values and the same bytes, with two exceptions this module handles
by leaving the decision to the json module:

- floats Python writes with an exponent (nonzero, below 1e-4 or from 1e16 on): orjson may
  write them in full (0.00001) or with another exponent form (1e16 for 1e+16);
- integers beyond 64 bits: orjson reads them as floats (so they count as the floats above)
  and cannot write them.

Anything orjson refuses (NaN, lone surrogates, nesting deeper than it allows) also goes to
the json module. Strings (every code point), key order (by code point), integers within 64
bits, other floats, true, false and null come out byte for byte as the json module writes
them; tests/test_fastjson.py checks this over every code point and a sample of floats.
Used by `runlog verify`.
"""

from __future__ import annotations

import json
import marshal
import re
from datetime import datetime
from typing import Any

import orjson

from runlog import record as rec
from runlog.safejson import long_number

SORTED = orjson.OPT_SORT_KEYS


# A number orjson writes differently from the json module, in orjson's own output: every
# float Python writes with an exponent, orjson writes either with an exponent, "e" then digits
# ending the number token (before , } ] or at the end of a document that is a bare number), or,
# below 1e-4, in full, starting "0.0000" (tests/test_fastjson.py checks both facts on a large
# sample). Matches in strings only cost the slower path.
_EXPONENT = re.compile(rb"e[-+]?[0-9]+(?:[,}\]]|\Z)")


def plain(encoded: bytes) -> bool:
    """No float in orjson's output `encoded` that the json module writes otherwise."""
    return b"0.0000" not in encoded and _EXPONENT.search(encoded) is None


# A float whose exponent bits are all ones (NaN, an infinity) in marshal's form of a value:
# the type byte "g" (0xe7 when marked for reference), then the 8 bytes of the double, little
# endian, whose last two are the sign and exponent (0x7f or 0xff) and the exponent's low bits
# with the mantissa's top (0xf0 or more). Every float is written so; other bytes can match
# too (rarely: never inside UTF-8 text), which only costs the exact check.
_NON_FINITE = re.compile(rb"[g\xe7][\x00-\xff]{6}[\xf0-\xff][\x7f\xff]")


def _finite(value: Any, data: bytes) -> bool:
    """No NaN or infinity in `value`, which orjson wrote as `data` (it writes them as null).
    Marshal's bytes (C, about a tenth of reading `data` back) say so for almost every value;
    when they cannot, `data` read back is compared with `value`."""
    try:
        if _NON_FINITE.search(marshal.dumps(value)) is None:
            return True
    except ValueError:  # a type marshal does not write: the exact check decides
        pass
    return bool(orjson.loads(data) == value)


def decode_canonical(data: bytes) -> tuple[Any, bool, bool]:
    """(value, canonical, exact): the JSON value in data, whether data is its canonical
    form (record.canonical_json), and whether orjson may be used on the value's parts (see
    `canonical`). Raises ValueError when data is not JSON (RecursionError if nested deeper
    than Python's json module can read)."""
    try:
        value = orjson.loads(data)
        if orjson.dumps(value, option=SORTED) == data and plain(data):
            return value, True, True
    except (orjson.JSONDecodeError, TypeError):
        pass
    value = json.loads(data)  # the json module decides: not canonical, or a number orjson may differ on
    try:
        return value, rec.canonical_json(value) == data, False
    except (ValueError, TypeError):  # NaN or infinity: never canonical
        return value, False, False


def canonical(value: Any, exact_value: bool) -> bytes:
    """record.canonical_json(value); through orjson when exact_value says it gives the same
    bytes (value is, or is built of, parts of a value decode_canonical called exact)."""
    if exact_value:
        try:
            return orjson.dumps(value, option=SORTED)
        except TypeError:
            pass
    return rec.canonical_json(value)


def dumps(value: Any) -> bytes:
    """record.canonical_json(value), through orjson when it writes the same bytes: for JSON
    values (objects with text keys, arrays, text, numbers, true, false, null) but for the
    numbers named above. Datetimes are written as record.canonical_json writes them (its
    `default`: ISO 8601 UTC text). What orjson refuses or would write in a way of its own
    (subclasses, non-text keys; NaN and infinities, which it writes as null) goes to
    record.canonical_json. Used where many records are written at once (a batch's members,
    their statuses, the service's answers)."""
    try:
        data = orjson.dumps(value, default=rec._default, option=SORTED | orjson.OPT_PASSTHROUGH_DATETIME
                            | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS)
    except TypeError:
        return rec.canonical_json(value)
    # orjson writes NaN and infinities as null: no null, or no such float in the value
    if not plain(data) or (b"null" in data and not _finite(value, data)):
        return rec.canonical_json(value)
    return data


def loads(data: bytes | str) -> Any:
    """json.loads(data), faster: orjson's value when it reads the text as the json module
    does. A text that may hold a number of 19 digits or more (an integer beyond 64 bits,
    which orjson reads as a float: a settings file's parameter, say; safejson.long_number) is
    read by the json module, as is one orjson refuses."""
    if long_number(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data):
        return json.loads(data)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def loads_inexact(data: bytes | str) -> Any:
    """loads(data) for a caller that reads no number of the value (its keys, text, true, false,
    null): orjson's value without `loads`' scan for a run of 19 digits, which costs more than
    orjson's read of a member record (about 1.6 us of 4.7 for 1.1 KB) and finds one in about
    one in a hundred (a digest's hex digits). An integer beyond 64 bits is a float here."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def members(obj: dict[str, Any], at: str) -> tuple[list[memoryview], list[memoryview]]:
    """The canonical JSON of an object's members, `"key":value` each, in two parts: the
    members whose names sort before `at` (by code point, as canonical JSON sorts them) and
    those after. With `joined`, the object's canonical JSON and that of the object with a
    member `at` added are made from one encoding (a batch's intent and its record hold the same
    cohort). Member by member, so the checks on what orjson wrote (a null may be NaN) cover one
    member each."""
    ordered = sorted(obj)
    return ([member(key, obj[key]) for key in ordered if key < at],
            [member(key, obj[key]) for key in ordered if key > at])


def member(key: str, value: Any) -> memoryview:
    """One member, `"key":value`, in canonical JSON (for `joined`; a view, not a copy)."""
    return memoryview(dumps({key: value}))[1:-1]


def joined(*parts: list[memoryview] | memoryview) -> bytes:
    """An object's canonical JSON from its members (alone or in lists), given in sorted
    order: one copy of tens of MB, not one per brace."""
    pieces: list[bytes | memoryview] = [b"{"]
    for part in parts:
        for piece in part if isinstance(part, list) else [part]:
            if len(pieces) > 1:
                pieces.append(b",")
            pieces.append(piece)
    pieces.append(b"}")
    return b"".join(pieces)


# -- values proven to hold no float (a batch's members and statuses, issue 14) ------------------

_PLAIN_TYPES = (str, int, bool, type(None))


def has_float(value: Any) -> bool:
    """Whether `value` may hold a float: True for a float anywhere in it, and for anything
    that is not a dict with text keys, a list, text, an integer, true, false or null (such a
    value is not proven plain; the caller then uses `dumps`). Walked once per batch, on the
    part of every member record that all members share."""
    kind = type(value)
    if kind is dict:
        return any(type(key) is not str or has_float(item) for key, item in value.items())
    if kind is list:
        return any(has_float(item) for item in value)
    return kind not in _PLAIN_TYPES


class MarkedReader:
    """json.loads that also tells whether it read a number as a float: `read(text)` gives
    (value, had_float). NaN and the infinities, and every number with a fraction or an
    exponent, pass through json's parse_float or parse_constant, which mark them; any other
    number is read as an int. The value is the json module's, float for float. One decoder
    for all the texts (making one costs more than reading a run setting); not to be shared
    between threads."""

    def __init__(self) -> None:
        self._seen = False
        self._decoder = json.JSONDecoder(parse_float=self._float, parse_constant=self._float)

    def _float(self, token: str) -> float:
        self._seen = True
        return float(token)  # "NaN", "Infinity", "-Infinity" too: what json.loads gives for them

    def read(self, text: str | bytes) -> tuple[Any, bool]:
        self._seen = False
        value = self._decoder.decode(text if isinstance(text, str) else text.decode("utf-8"))
        return value, self._seen


def plain_flat(value: dict) -> bool:
    """Whether `value` is a dict with text keys whose values are each text, an integer, true,
    false, null or a datetime (a ListRuns item, a ListRunsInBatch item): no float, no
    container, so `dumps_floatless` writes it exactly."""
    for key, item in value.items():
        if type(key) is not str or (type(item) not in _PLAIN_TYPES and type(item) is not datetime):
            return False
    return True


def dumps_flat(value: dict) -> bytes:
    """record.canonical_json(value) for a dict of one level (a ListRuns item), by the fastest
    exact way: when its values are text, integers, true, false, null and datetimes in UTC
    (`datetime.UTC`, as runlog's timestamp parser gives the service's "...Z" times:
    aws.parse_timestamp), orjson writes the datetimes itself (OPT_UTC_Z: the same text as
    record.canonical_json's, microseconds included when there are any) instead of calling
    back into Python for each (three a ListRuns item: a tenth of the status paging's time at
    100 000 runs). Other datetimes (another offset, none) go to dumps_floatless, anything else
    (a float, a container, a key that is no text) to dumps. tests/test_fastjson.py compares it
    with record.canonical_json."""
    utc = True
    for key, item in value.items():
        kind = type(item)
        if type(key) is not str:
            return dumps(value)
        if kind is datetime:
            utc = utc and item.tzinfo is rec.UTC
        elif kind not in _PLAIN_TYPES:
            return dumps(value)
    if not utc:
        return dumps_floatless(value)
    try:
        return orjson.dumps(value, option=SORTED | orjson.OPT_UTC_Z)
    except TypeError:  # an integer beyond 64 bits
        return rec.canonical_json(value)


def floatless_rows(rows: list[dict]) -> bool:
    """Whether no float is in `rows`, dicts whose values are text, integers, true, false,
    null, or dicts of those (a cohort's input identities: an object's ETag and size, or an
    error's code and message, one error dict shared by every input it stands for), decided at
    C speed: each distinct row, and each distinct inner dict, looked at once, the types of
    their values gathered in a set. False for anything else too (a list, a subclass, a deeper dict): the caller then
    uses `dumps`, whose checks are exact. 100 000 identities: about a third of the time of
    `dumps`'s checks of their JSON."""
    from itertools import chain, compress, repeat

    if set(map(type, rows)) != {dict}:
        return False
    values = list(chain.from_iterable(map(dict.values, _distinct(rows))))
    kinds = set(map(type, values))
    if kinds.issubset(_PLAIN_TYPES):
        return True
    if not kinds.issubset((*_PLAIN_TYPES, dict)):
        return False
    inner = list(compress(values, map(isinstance, values, repeat(dict))))
    return set(map(type, chain.from_iterable(map(dict.values, _distinct(inner))))).issubset(_PLAIN_TYPES)


def _distinct(objects: list) -> Any:
    """Each object of `objects` once (by identity, at C speed)."""
    return dict(zip(map(id, objects), objects, strict=True)).values()


def dumps_floatless(value: Any) -> bytes:
    """record.canonical_json(value) for a value its caller has proven to hold no float (only
    dicts with text keys, lists, text, integers, true, false, null and datetimes, built so or
    checked with `has_float`, `MarkedReader` or `plain_flat`): orjson's sorted bytes, without
    the checks `dumps` makes after it, which only floats need (`plain`: numbers written in
    another form; `_finite`: NaN written as null). What orjson refuses (integers beyond 64
    bits) goes to record.canonical_json. tests/test_fastjson.py and tests/test_member_encode.py
    compare the two on hostile values."""
    try:
        return orjson.dumps(value, default=rec._default, option=SORTED | orjson.OPT_PASSTHROUGH_DATETIME)
    except TypeError:
        return rec.canonical_json(value)
