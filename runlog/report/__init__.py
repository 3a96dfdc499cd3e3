"""`runlog report`: one self-contained, deterministic HTML file about a ledger's runs.

  select.py  which records a report covers (REFs, --since, --batch) and what it knows of them
  graph.py   the lineage graph as inline SVG, from generic nodes and edges
  charts.py  runs per status over time (and batch members by status) as inline SVG
  page.py    the page itself: header, runs table, graph, one section per run
  assets.py  its inline style sheet and script (allowed by hash in the page's CSP)
  output.py  the file it is written to: checked first, written whole

Read-only: nothing here imports boto3 (see docs/report.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from runlog.report.page import render
from runlog.report.select import Selection, select

if TYPE_CHECKING:
    from runlog.ledger import Ledger

__all__ = ["Selection", "check", "render", "report", "select"]


def report(ledger: Ledger, target: str | Path, refs: list[str] | None = None, *, since: str | None = None,
           batch: str | None = None, force: bool = False) -> Selection:
    """Write the report of `refs` (and/or `since`, `batch`; none: every record) to `target`
    and return what it covers (its `runs`, and `verify`: the whole ledger's verify report).
    The target is checked before the ledger is read (report.output). Raises UsageError for a
    bad target, REF or date; the report is written even when verify finds a problem."""
    from runlog.report import output

    target = Path(target)
    check(target, ledger.path, since=since, force=force)
    selection = select(ledger, list(refs or []), since=since, batch=batch)
    output.write(target, render(selection))
    return selection


def check(target: Path, ledger_path: Path, *, since: str | None = None, force: bool = False) -> None:
    """What report() refuses before the ledger is read: a bad `since`, a target it may not
    write (report.output.check_target) or the ledger's own file. The command line calls it
    before it opens the ledger, so that a bad -o is what it says whether or not the ledger
    can be opened."""
    from runlog.report import output
    from runlog.report.select import parse_since

    if since is not None:
        parse_since(since)  # bad input before anything is read
    output.check_target(target, force)
    output.check_not_ledger(target, ledger_path)
