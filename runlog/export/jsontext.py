"""Exported JSON, fast and byte for byte as the json module writes it.

Every JSON file an export writes is `json.dumps(value, indent=2, sort_keys=True,
ensure_ascii=...)`. A cohort's crate and PROV-JSON are tens of megabytes, where the json
module's pure-Python pretty printer takes most of the export's time; orjson writes the same
text (same indentation, separators, key order by code point, string escapes) several times
faster, except for the numbers runlog.fastjson describes (floats Python writes with an
exponent, integers beyond 64 bits) and, with `ensure_ascii`, any character outside printable ASCII
(orjson writes UTF-8 and DEL as is). For those, and for anything orjson refuses, the json module writes the value;
tests/test_export_batch_scale.py compares the two on hostile strings and on real exports.

One difference is made on purpose: the characters a terminal may take for control codes
when a file is printed (DEL, the C1 controls U+0080 to U+009F, among them U+009B, a CSI that
starts an escape sequence, and the line and paragraph separators U+2028 and U+2029) are
written as `\\uXXXX` escapes, as the json module writes the C0 controls (ESC is `\\u001b`).
They can only be inside strings (names and tags a service or a pulled ledger gave), so the
JSON's value is the same; only its text is safe to `cat`."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from runlog.fastjson import plain

# dates and dataclasses are no JSON to the json module: refused there too, never written
_PRETTY = (orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
           | orjson.OPT_PASSTHROUGH_DATACLASS)


_CONTROLS = re.compile("[\x7f-\x9f\u2028\u2029]")
_CONTROL_BYTES = re.compile(b"\x7f|\xc2[\x80-\x9f]|\xe2\x80[\xa8\xa9]")  # the same, in UTF-8


def escape_controls(text: str) -> str:
    """JSON text with DEL, the C1 controls and U+2028/U+2029 written as escapes (see above)."""
    return _CONTROLS.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def pretty(value: Any, *, ensure_ascii: bool = False) -> str:
    """`json.dumps(value, indent=2, sort_keys=True, ensure_ascii=ensure_ascii)`, the same text
    but for the control characters escape_controls escapes."""
    try:
        encoded = orjson.dumps(value, option=_PRETTY)
    except (TypeError, orjson.JSONEncodeError):
        encoded = b""
    if encoded and plain(encoded) and (not ensure_ascii or encoded.isascii()):
        text = encoded.decode("utf-8")
        return escape_controls(text) if _CONTROL_BYTES.search(encoded) else text
    return escape_controls(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=ensure_ascii))
