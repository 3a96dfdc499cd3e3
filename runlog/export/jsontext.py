"""Exported JSON, fast and byte for byte as the json module writes it.

Every JSON file an export writes is `json.dumps(value, indent=2, sort_keys=True,
ensure_ascii=...)`. A cohort's crate and PROV-JSON are tens of megabytes, where the json
module's pure-Python pretty printer takes most of the export's time; orjson writes the same
text (same indentation, separators, key order by code point, string escapes) several times
faster, except for the numbers runlog.fastjson describes (floats Python writes with an
exponent, integers beyond 64 bits) and, with `ensure_ascii`, any character outside printable ASCII
(orjson writes UTF-8 and DEL as is). For those, and for anything orjson refuses, the json module writes the value;
tests/test_export_batch_scale.py compares the two on hostile strings and on real exports."""

from __future__ import annotations

import json
from typing import Any

import orjson

from runlog.fastjson import plain

# dates and dataclasses are no JSON to the json module: refused there too, never written
_PRETTY = (orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
           | orjson.OPT_PASSTHROUGH_DATACLASS)


def pretty(value: Any, *, ensure_ascii: bool = False) -> str:
    """`json.dumps(value, indent=2, sort_keys=True, ensure_ascii=ensure_ascii)`, the same text."""
    try:
        encoded = orjson.dumps(value, option=_PRETTY)
    except (TypeError, orjson.JSONEncodeError):
        encoded = b""
    if encoded and plain(encoded) and (not ensure_ascii or (encoded.isascii() and b"\x7f" not in encoded)):
        return encoded.decode("utf-8")
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=ensure_ascii)
