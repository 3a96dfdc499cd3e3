"""`runlog report`: one self-contained HTML file for auditors, PIs and reviewers. Read-only:
boto3 is never imported (docs/report.md)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from runlog.cli.common import load_config, reading, require_ledger
from runlog.config import printable
from runlog.errors import UsageError


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
    """
    from runlog.cli.diff import _import_deepdiff_lean
    from runlog.report import render, select
    from runlog.report.select import parse_since

    if since is not None:
        parse_since(since)  # bad input before anything is read
    _check_target(target, force)
    _import_deepdiff_lean()
    config = load_config(ctx)
    ledger = require_ledger(config, readonly=True)
    with ledger, reading(ledger):
        selection = select(ledger, list(refs), since=since, batch=batch)
        html = render(selection)
    _write(target, html)
    verdict = "intact" if selection.verify.ok else f"{len(selection.verify.problems)} problem(s) found by verify"
    click.echo(f"wrote {printable(target)}: {len(selection.runs)} run(s), ledger {verdict}, head {selection.verify.head_text}")
    if not selection.verify.ok:
        ctx.exit(1)


def _check_target(target: Path, force: bool) -> None:
    if "\0" in str(target):
        raise UsageError(f"-o {printable(target)}: the path contains a NUL character; give a valid file path")
    try:
        _check_path(target, force)
    except OSError as exc:
        raise UsageError(f"-o {printable(target)}: {exc.strerror}; give another path") from None


def _check_path(target: Path, force: bool) -> None:
    if target.is_symlink():
        raise UsageError(f"-o {printable(target)}: is a symbolic link; runlog does not write through links: give another path")
    if target.is_dir():
        raise UsageError(f"-o {printable(target)}: is a directory; give a file name such as {printable(target / 'report.html')}")
    if target.exists() and not force:
        raise UsageError(f"-o {printable(target)}: already exists; add --force to replace it, or give another path")
    if target.exists() and not target.is_file():
        raise UsageError(f"-o {printable(target)}: is not a regular file; give another path")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"-o {printable(target)}: directory {printable(parent)} does not exist; create it first")


def _write(target: Path, text: str) -> None:
    """Write beside the target, then rename into place: never a half-written report."""
    parent = target.parent if str(target.parent) else Path(".")
    try:
        fd, staging = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise UsageError(f"-o {printable(target)}: cannot write in {printable(parent)}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o666 & ~umask)  # as an ordinary new file (mkstemp makes it 0600)
        os.replace(staging, target)
    except OSError as exc:
        raise UsageError(f"-o {printable(target)}: cannot write: {exc.strerror}") from None
    finally:
        if os.path.exists(staging):
            os.unlink(staging)
