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

Nothing here imports more than the standard library."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from runlog.errors import RunlogError

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_DEPTH = 100

# The escape of a UTF-16 surrogate; only escapes can make one (strict UTF-8 decoding refuses them).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class UntrustedJSONError(RunlogError, ValueError):
    """Bytes that loads_untrusted refused; `reason` says why in a few words (exit 2 if it
    reaches the user unhandled)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether the arrays/objects of a parsed JSON value nest more than `limit` deep (level by
    level, no recursion)."""
    level = [value] if isinstance(value, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below = []
        for item in level:
            for child in (item.values() if type(item) is dict else item):
                if type(child) is dict or type(child) is list:
                    below.append(child)
        level = below
    return False


def _no_constant(name: str) -> Any:
    raise UntrustedJSONError(f"not strict JSON: {name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UntrustedJSONError(f"not strict JSON: the number {text[:20]} does not fit a 64-bit float")
    return value


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
        raise UntrustedJSONError(f"not strict JSON: the key {twice[:40]!r} appears twice in one object")
    return out


def _check_strings(value: Any) -> None:
    """Refuse lone surrogates in any string or key (json.loads accepts the escape "\\ud800")."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise UntrustedJSONError("not strict JSON: a string holds a lone surrogate (\\ud800-\\udfff), "
                                         "which is not Unicode text")
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


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
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UntrustedJSONError(f"not UTF-8: invalid byte at offset {exc.start}") from None
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite, object_pairs_hook=_unique)
    except UntrustedJSONError:
        raise
    except RecursionError:  # deeper than the interpreter's recursion limit (about 1000)
        raise UntrustedJSONError(f"nested more than {min(max_depth, 500)} levels deep") from None
    except ValueError as exc:  # JSONDecodeError, an integer of more than 4300 digits
        message = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc).split(";")[0]
        where = f" at offset {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        raise UntrustedJSONError(f"not JSON: {message}{where}") from None
    # it cannot nest deeper than it has openings: most objects need no walk
    if text.count("[") + text.count("{") > max_depth and nested_deeper_than(value, max_depth):
        raise UntrustedJSONError(f"nested more than {max_depth} levels deep")
    if _SURROGATE_ESCAPE.search(text):
        _check_strings(value)
    return value
