"""`runlog report`: one self-contained, deterministic HTML file about a ledger's runs.

  select.py  which records a report covers (REFs, --since, --batch) and what it knows of them
  graph.py   the lineage graph as inline SVG, from generic nodes and edges
  charts.py  runs per status over time (and batch members by status) as inline SVG
  page.py    the page itself: header, runs table, graph, one section per run
  assets.py  its inline style sheet and script (allowed by hash in the page's CSP)

Read-only: nothing here imports boto3 (see docs/report.md)."""

from runlog.report.page import render
from runlog.report.select import Selection, select

__all__ = ["Selection", "render", "select"]
