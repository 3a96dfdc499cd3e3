"""The export escaping functions against a real CommonMark parser and the csv module, with
generated text: whatever a record holds, it renders as exactly that text (control characters
made visible), never as markup, and no CSV cell is a formula."""

from __future__ import annotations

import csv
import io
import re

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from runlog.export.escape import csv_cell, markdown, visible

PARSER = MarkdownIt("commonmark").enable(["table", "strikethrough"])
# Characters that matter to Markdown, HTML, CSV and terminals, mixed with anything at all.
NASTY = st.text(alphabet=st.sampled_from(list("\\`*_[](){}#!|~$^<>&=+-@:;'\" \t\r\n\x00\x1b\u2028\u202e\u200b"
                                              "ab1.")), max_size=40)
ANY = st.one_of(NASTY, st.text(max_size=40))


def inline_children(document: str):
    tokens = PARSER.parse(document)
    assert [t.type for t in tokens] == ["paragraph_open", "inline", "paragraph_close"], document
    return tokens[1].children


@settings(max_examples=400, deadline=None)
@given(ANY)
def test_markdown_text_renders_as_exactly_that_text(value):
    children = inline_children(f"x {markdown(value)} y")
    assert {c.type for c in children} <= {"text"}, children
    assert "".join(c.content for c in children) == f"x {visible(value)} y"


@settings(max_examples=400, deadline=None)
@given(ANY.filter(lambda v: v.strip(" ") != ""))
def test_markdown_code_span_holds_exactly_that_text(value):
    children = inline_children(f"x {markdown(value, code=True)} y")
    assert [c.type for c in children] == ["text", "code_inline", "text"], children
    assert children[1].content == visible(value)


@settings(max_examples=400, deadline=None)
@given(st.lists(ANY, min_size=1, max_size=4))
def test_csv_cells_are_never_formulas_and_read_back_as_one_row(values):
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([csv_cell(v) for v in values])
    assert "\x00" not in out.getvalue() and "\r" not in out.getvalue()
    assert out.getvalue().count("\n") == 1  # one line per row: no cell holds a line break
    (row,) = list(csv.reader(io.StringIO(out.getvalue())))
    for original, cell in zip(values, row, strict=True):
        # a cell may start with + or - only as a plain number, which a spreadsheet reads as a number
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")) or re.fullmatch(r"[+-][\d.]+([eE][+-]?\d+)?", cell)
        assert cell in (visible(original), "'" + visible(original))
