"""Parsing JSON that someone else wrote (objects in a shared bucket, files handed to runlog).

`loads_untrusted` is the one place where such bytes become Python values. It refuses,
with an UntrustedJSONError naming the reason, anything that is:

  * larger than `max_bytes` (checked before anything is decoded);
  * not strict UTF-8 (no byte order mark, no encoded surrogates, no invalid sequences);
  * nested deeper than `max_depth` arrays/objects (json's C parser stops at the
    interpreter's recursion limit, about 1000 levels, which is reported the same way; below
    that the parsed value is measured level by level, never recursively);
  * not strict JSON: NaN, Infinity, numbers that overflow a float (1e999) or an integer
    too long to convert, a string holding a lone surrogate (`"\\ud800"`, which no UTF-8
    writer can reproduce), an object with the same key twice, trailing data.

Most untrusted JSON is plain, and large only when it is plain (a cohort's settings file: 100 000
run settings, tens of MB). Such bytes are read by orjson (C, and strict: it refuses NaN,
Infinity, numbers beyond a float's range, lone surrogates, invalid UTF-8 and trailing data),
then cheap checks on orjson's own writing of the value (`_plain_value`) show that no key was
given twice, nothing nests deeper than allowed and no number was read differently; anything
else (or anything orjson refuses) goes the strict way below, which names the problem. Either
way the value, or the refusal, is the same.

Its JSON rules are `loads_strict`, the one strict JSON reader, which params.parse_json_text
uses for JSON arguments too (with their own depth limit, a key allowed twice as the aws CLI
allows it, and integers limited to a float's range). Nothing here imports more than the
standard library and orjson (when untrusted bytes are read)."""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterator
from typing import Any

from runlog.errors import RunlogError

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_DEPTH = 100

# The escape of a UTF-16 surrogate; only escapes can make one (strict UTF-8 decoding refuses them).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_WHY = "the {what} holds a lone surrogate (\\ud800-\\udfff), which is not Unicode text"
_FLOAT_MAX_INT = int(sys.float_info.max)


class UntrustedJSONError(RunlogError, ValueError):
    """Bytes that loads_untrusted refused; `reason` says why in a few words (exit 2 if it
    reaches the user unhandled)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class StrictJSONError(UntrustedJSONError):
    """Text that loads_strict refused: `reason`, the value's `path` (a.b[0], "" for the whole
    text) and `syntax`, json's own error when the text is not JSON at all."""

    def __init__(self, reason: str, path: str = "", *, syntax: json.JSONDecodeError | None = None):
        super().__init__(f"{path}: {reason}" if path else reason)
        self.reason, self.path, self.syntax = reason, path, syntax


class _Refused:
    """A number json.loads met that strict JSON does not carry; the walk after parsing
    replaces it by an error naming its place."""

    __slots__ = ("why",)

    def __init__(self, why: str):
        self.why = why


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


class _Hooks:
    """json.loads hooks that mark the numbers strict JSON refuses (NaN, Infinity, floats
    beyond a float's range and, when asked, integers beyond it) instead of raising, so that
    the error can name the value's path; `refused` says whether any was met."""

    def __init__(self, integers_within_float: bool, unique_keys: bool):
        self.refused = False
        self.integers_within_float = integers_within_float
        self.object_pairs_hook = _unique if unique_keys else None

    def _mark(self, why: str) -> _Refused:
        self.refused = True
        return _Refused(why)

    def parse_int(self, text: str) -> Any:
        digits = len(text.lstrip("-"))
        if self.integers_within_float and (digits > 309 or (digits == 309 and abs(int(text)) > _FLOAT_MAX_INT)):
            return self._mark(f"the integer with {digits} digits is beyond what JSON numbers can carry "
                              "(at most about 1.8e308); pass it as a string")
        return int(text)  # more than 4300 digits: ValueError, reported as not JSON

    def parse_float(self, text: str) -> Any:
        value = float(text)
        if not math.isfinite(value):
            return self._mark(f"the number {_clip(text)} does not fit the range of JSON numbers "
                              "(a 64-bit float: at most about 1.8e308)")
        return value

    def parse_constant(self, text: str) -> Any:
        return self._mark(f"{text} is not a JSON number (JSON has no NaN or Infinity); pass a number or a string")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        twice = ""
        for key, _ in pairs:
            if key in seen:
                twice = key
                break
            seen.add(key)
        raise UntrustedJSONError(f"the key {twice[:40]!r} appears twice in one object")
    return out


def _problems(value: Any, max_depth: int) -> Iterator[tuple[str, str]]:
    """(path, why) for each value or key strict JSON may not carry, in document order: a
    refused number, a lone surrogate in a string or key, arrays/objects nested deeper than
    max_depth. Iterative, so a deeply nested value cannot exhaust the stack."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, _Refused):
            yield path, item.why
        elif isinstance(item, str):
            if _SURROGATE.search(item):
                yield path, _SURROGATE_WHY.format(what="string")
        elif isinstance(item, (dict, list)):
            if depth >= max_depth:
                yield path, f"nested deeper than {max_depth} levels"
                continue
            children = []
            if isinstance(item, dict):
                for key, child in item.items():
                    if _SURROGATE.search(key):
                        yield (f"{path}.{key}" if path else key), _SURROGATE_WHY.format(what="key")
                        return
                    children.append((child, f"{path}.{key}" if path else key, depth + 1))
            else:
                children = [(child, f"{path}[{index}]", depth + 1) for index, child in enumerate(item)]
            stack.extend(reversed(children))


def loads_strict(text: str, *, max_depth: int = DEFAULT_MAX_DEPTH, unique_keys: bool = True,
                 integers_within_float: bool = False) -> Any:
    """The one strict JSON reader (for untrusted objects and for JSON arguments alike): no NaN
    or Infinity, no float beyond a 64-bit float's range (nor, with integers_within_float, an
    integer beyond it), no lone surrogate in a string or key, nesting at most max_depth, and
    (unique_keys) no key twice in one object. Raises StrictJSONError with the reason, the
    value's path ("" for the whole text) and, for text that is not JSON at all, json's error."""
    hooks = _Hooks(integers_within_float, unique_keys)
    try:
        value = json.loads(text, parse_int=hooks.parse_int, parse_float=hooks.parse_float,
                           parse_constant=hooks.parse_constant, object_pairs_hook=hooks.object_pairs_hook)
    except UntrustedJSONError as exc:  # a duplicate key
        raise StrictJSONError(exc.reason) from None
    except RecursionError:  # deeper than the interpreter's recursion limit (about 1000)
        raise StrictJSONError(f"nested deeper than {max_depth} levels") from None
    except json.JSONDecodeError as exc:
        raise StrictJSONError(f"not JSON: {exc.msg}", syntax=exc) from None
    except ValueError as exc:  # an integer of more than 4300 digits
        raise StrictJSONError(f"not JSON: {str(exc).split(';')[0]}") from None
    # most values need no walk: nothing was refused, no surrogate can be in them, and they
    # cannot nest deeper than they have openings
    if (hooks.refused or text.count("[") + text.count("{") > max_depth
            or _SURROGATE_ESCAPE.search(text) or _SURROGATE.search(text)):
        for path, why in _problems(value, max_depth):
            raise StrictJSONError(why, path)
    return value


# A colon written as an escape (\u003a) would make the key count below inexact; such text goes
# the strict way (so may a backslash written as "\\" before "u003a": that only costs time).
_ESCAPED_COLON = re.compile(rb"\\u003[aA]")
# Every digit as "0"; every byte a number can follow ("[", ":", ",", whitespace, and the sign
# "-") as "|"; every other byte as " ". "|" then 19 zeros is a run of 19 digits or more that
# starts where a number can (a number's, or digits in a string after a space, say); digits
# after a letter or a quote (a digest's in a string) are no number's. orjson reads an integer
# within 64 bits (18 digits always are) as the json module does, a longer one as a float.
_DIGITS = bytes(ord("0") if chr(byte).isdigit() and byte < 128 else ord("|") if chr(byte) in "[:, \t\n\r-"
                else ord(" ") for byte in range(256))
_LONG = b"|" + b"0" * 19
_SLOW = object()


def long_number(raw: bytes) -> bool:
    """Whether `raw` (JSON text) may hold a number of 19 digits or more, which orjson may read
    otherwise than the json module (an integer beyond 64 bits, as a float): a run of 19
    digits where a number can start (at the start of the text too). Digits in a string that
    start there too count (they only cost the json module's slower read)."""
    marked = raw.translate(_DIGITS)
    return _LONG in marked or marked.startswith(_LONG[1:])


def _plain_value(raw: bytes, max_depth: int) -> Any:
    """The value of `raw` as loads_strict reads it, when orjson reads it and cheap checks show
    that the strict reader would too: no run of 19 digits in `raw`, and orjson's own writing
    of the value, indented (one value per line, two spaces a level; a string never holds a
    raw line break), has as many colons as `raw` (each key has one, and so has each colon in a
    string: orjson keeps the last of a key given twice, so one fewer key is one fewer colon)
    and no line as deep as `max_depth` levels (an array or object nested `max_depth` deep would
    be an item of a non-empty one at `max_depth` - 1, on such a line). Otherwise _SLOW: the
    strict reader decides (it may still accept: these checks refuse more than it does, never
    less). orjson reads floats as the json module does (tests/test_batch_submit_scale.py)."""
    import orjson  # here: parsing untrusted JSON is rare, and orjson's import is not free

    if _ESCAPED_COLON.search(raw) or long_number(raw):
        return _SLOW
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _SLOW
    written = orjson.dumps(value, option=orjson.OPT_INDENT_2)
    if written.count(b":") != raw.count(b":") or b"\n" + b" " * (2 * max_depth) in written:
        return _SLOW
    return value


def loads_untrusted(data: bytes | str, *, max_bytes: int = DEFAULT_MAX_BYTES,
                    max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse untrusted JSON within the limits above; raises UntrustedJSONError (never
    RecursionError, UnicodeDecodeError or json.JSONDecodeError)."""
    if isinstance(data, str):
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError:
            raise UntrustedJSONError("not UTF-8: the text holds a lone surrogate") from None
    else:
        raw = bytes(data)
    if len(raw) > max_bytes:
        raise UntrustedJSONError(f"too large: {len(raw)} bytes, more than the limit of {max_bytes}")
    if raw.startswith(b"\xef\xbb\xbf"):
        raise UntrustedJSONError("not strict JSON: it starts with a byte order mark")
    value = _plain_value(raw, max_depth)
    if value is not _SLOW:
        return value
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UntrustedJSONError(f"not UTF-8: invalid byte at offset {exc.start}") from None
    try:
        return loads_strict(text, max_depth=max_depth)
    except StrictJSONError as exc:
        if exc.syntax is not None:
            raise UntrustedJSONError(f"{exc.reason} at offset {exc.syntax.pos}") from None
        if exc.reason.startswith(("not JSON", "nested")):
            raise UntrustedJSONError(exc.reason) from None
        raise UntrustedJSONError(f"not strict JSON: {exc.reason}") from None  # no path: keys are untrusted text
