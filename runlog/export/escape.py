"""Escaping of what comes from records, one function per output format runlog writes as text
for people: Markdown (methods.md), CSV (parameters.csv, software.csv, data.csv), YAML
strings (CITATION.cff) and PROV-N (prov.provn). JSON formats are written by json.dumps and need none; runlog writes
no HTML.

A record's strings (run names, parameter values, URIs, failure reasons, workflow names) are
data: whatever they contain, they must stay text in the reader's renderer or spreadsheet.
See docs/export.md ("Escaping")."""

from __future__ import annotations

import re

from runlog.textsafe import UNSAFE_PATTERN, escape_char


def visible(text: str) -> str:
    """Control and other invisible characters (C0/C1 controls, NUL, line and paragraph
    separators, bidirectional overrides, zero-width characters, lone surrogates) as visible
    escapes: newline -> \\n, NUL -> \\x00, U+202E -> \\u202e. Ordinary spaces are kept."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else escape_char(ch) for ch in text)


# textsafe.UNSAFE_PATTERN but the newline: PROV-N's own line breaks, and a value's within its
# """long string""" (the prov package's), which the grammar allows
_PROVN_UNSAFE = UNSAFE_PATTERN.replace("\x00-\x1f", "\x00-\x09\x0b-\x1f", 1)
assert _PROVN_UNSAFE != UNSAFE_PATTERN


def provn(text: str) -> str:
    """PROV-N text (prov.provn) with each control or formatting character of its values (ESC,
    BEL, carriage return, bidi overrides, …; not the newline) written as a visible escape
    whose backslash is PROV-N's escaped backslash: ESC becomes the five characters \\\\x1b,
    which a PROV-N reader reads as the four \\x1b, as methods.md and the CSV files show it:
    `cat prov.provn` never sends a terminal an escape sequence. The exact value is in prov.json."""
    return re.sub(_PROVN_UNSAFE, lambda match: "\\" + escape_char(match.group()), text)


# Characters with a meaning somewhere in inline CommonMark or GitHub-flavoured Markdown
# (emphasis, code, links, images, headings' closing #, tables, strikethrough, math).
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\](){}#!|~$^])")
_HTML = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
_HTML_CHARS = re.compile(r"[<>&]")


def markdown(text: str, *, code: bool = False) -> str:
    """`text` for a Markdown document, on one line and rendered exactly as text: control
    characters made visible (so a blank line cannot end a paragraph, and `# Heading` cannot
    start one), Markdown punctuation backslash-escaped, HTML's < > & as entities.
    With code=True: an inline code span (`...`) with a fence longer than any run of
    backticks inside, so nothing in it can close it."""
    text = visible(str(text))
    if code:
        longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
        fence = "`" * (longest + 1)
        if not text.strip(" ") or text[0] in "` " or text[-1] in "` ":
            text = f" {text} "  # CommonMark strips exactly one space on each side
        return f"{fence}{text}{fence}"
    text = _MARKDOWN_PUNCTUATION.sub(r"\\\1", text)
    return _HTML_CHARS.sub(lambda m: _HTML[m.group()], text)


# OWASP CSV injection: a cell starting with one of these is a formula to a spreadsheet.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def csv_cell(value: object) -> str:
    """A CSV cell that a spreadsheet shows as text: a cell starting with = + - @, tab or CR
    gets a leading ' (OWASP's advice; a plain number such as -5 is left as it is, it is no
    formula), and control characters are made visible (NUL cannot truncate the file, a
    newline cannot start a row in tools that do not honour quoting). Quoting of commas and
    quotes is left to the csv module."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        text = "'" + text
    return visible(text)


def yaml_string(text: str) -> str:
    """A double-quoted YAML scalar: backslash and quote escaped, control characters as YAML's
    own escapes (YAML allows no raw control characters, and a raw newline would be folded)."""
    out = []
    for ch in str(text):
        if ch in '\\"':
            out.append("\\" + ch)
        else:
            out.append(ch if ch.isprintable() or ch == " " else escape_char(ch))
    return '"' + "".join(out) + '"'
