"""`runlog report`: one self-contained HTML file for auditors, PIs and reviewers. Read-only:
boto3 is never imported (docs/report.md)."""

from __future__ import annotations

from pathlib import Path

import click

from runlog.cli.common import load_config, reading, require_ledger, said_lost
from runlog.config import printable


@click.command()
@click.argument("refs", nargs=-1, metavar="[REF]...")
@click.option("--since", metavar="DATE", help="Only records created at or after DATE (YYYY-MM-DD, or an ISO 8601 "
              "time; UTC unless it names a zone).")
@click.option("--batch", metavar="B", help="The batch record B and its member runs (with REFs: those too).")
@click.option("-o", "--output", "target", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The HTML file to write.")
@click.option("--force", is_flag=True, help="Replace an existing file (a symbolic link is refused, never followed).")
@click.pass_context
def report(ctx, refs, since, batch, target, force):
    """Write one self-contained HTML report of the ledger's runs: a header with the ledger
    id, the period, the record count and what `verify` found (with the chain head); a table of
    runs, sortable and filterable in the page; the lineage graph (replays -> originals, batches
    -> members); charts of runs per status over time; and for each run its request, inputs with
    their identities, git state, observations, tasks and what changed since the run it replays
    (or the previous run of its workflow).

    Without REFs or --batch the report covers every record. CSS and script are inline, nothing
    is loaded from the network, so the file opens from disk or an e-mail and prints to PDF.
    The same ledger gives the same bytes. Exits 1 (after writing the report) when verify
    finds a problem. See docs/report.md.

    \b
    Examples:
      runlog report -o report.html
      runlog report --since 2026-11-01 -o november.html
      runlog report @3 @2 @1 -o paper-runs.html
      runlog report --batch 7654321 -o cohort.html   # a batch and its runs
    """
    from runlog.cli.diff import _import_deepdiff_lean
    from runlog.report import check
    from runlog.report import report as write_report

    config = load_config(ctx)
    check(target, config.ledger_path(), since=since, force=force)  # -o first, whatever the ledger's state
    _import_deepdiff_lean()
    ledger = require_ledger(config, readonly=True)
    ledger.partial = True  # a cohort whose blob is lost: shown as its reference, the blob named (exit 1)
    with ledger, reading(ledger):
        selection = write_report(ledger, target, list(refs), since=since, batch=batch, force=force)
    verdict = "intact" if selection.verify.ok else f"{len(selection.verify.problems)} problem(s) found by verify"
    runs = len(selection.distinct_runs)
    records = f" in {len(selection.runs)} record(s)" if runs != len(selection.runs) else ""
    click.echo(f"wrote {printable(target)}: {runs} run(s){records}, ledger {verdict}, head {selection.verify.head_text}")
    said_lost(ledger)  # a batch's cohort it could not read: shown as its reference, named here (exit 1)
    if not selection.verify.ok:
        ctx.exit(1)
