"""Text from elsewhere (S3 keys, run names, request ids) made safe to print on a terminal.

A name in a shared bucket or a record can hold ESC sequences (`\\x1b[2J` clears the screen),
newlines or carriage returns (which forge extra output lines), C1 controls, or Unicode
format characters that reorder what is shown (bidi overrides). `terminal_safe` writes each
of them as a visible escape instead (`\\x1b`, `\\n`, `\\u202e`), so what is printed is one
line that says exactly which characters the name holds."""

from __future__ import annotations

import re
from typing import Any

# C0 controls, DEL, C1 controls, zero-width and bidi formatting characters, line and paragraph
# separators, the byte order mark, and lone surrogates.
# A pattern `re` compiles on first use and caches (compiling this one costs ~4 million
# instructions, a tenth of all `runlog log` adds to its imports); printable ASCII, most of
# what is printed, never needs it. `_UNSAFE` is the compiled pattern.
UNSAFE_PATTERN = "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ud800-\udfff]"
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_char(char: str) -> str:
    """One character as the visible escape runlog writes everywhere: \\n, \\r, \\t, else
    \\xNN, \\uNNNN or \\UNNNNNNNN (as Python and JSON readers would read it back)."""
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def terminal_safe(text: Any) -> str:
    """`text` as a string with every control or formatting character written as an escape."""
    text = text if isinstance(text, str) else str(text)
    if text.isascii() and text.isprintable():  # no control character: nothing to escape
        return text
    return re.sub(UNSAFE_PATTERN, lambda match: escape_char(match.group()), text)


def terminal_json(value: Any, *, indent: int | None = 2, sort_keys: bool = False, default: Any = None) -> str:
    """`value` as JSON text (UTF-8 characters as themselves) in which each character
    terminal_safe escapes is written as JSON's \\uNNNN escape: the same JSON for a reader, and
    one a terminal shows as it is (no bidi override reorders it, no C1 control acts).
    json.dumps escapes C0 controls within strings itself; the only one outside them is the
    newline of `indent`, which stays."""
    import json

    text = json.dumps(value, indent=indent, ensure_ascii=False, sort_keys=sort_keys, default=default)
    if text.isascii() and "\x7f" not in text:
        return text
    return re.sub(_JSON_UNSAFE_PATTERN, lambda match: f"\\u{ord(match.group()):04x}", text)


# UNSAFE_PATTERN but the C0 controls: in JSON text they are escaped or (a newline) structure
_JSON_UNSAFE_PATTERN = "[\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ud800-\udfff]"


def __getattr__(name: str) -> Any:
    if name == "_UNSAFE":  # the compiled pattern, for modules that build on it (runlog.report.graph)
        return re.compile(UNSAFE_PATTERN)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
