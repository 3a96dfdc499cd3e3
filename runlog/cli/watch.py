"""`runlog watch`: follow a run to the end and record what the service says about it."""

from __future__ import annotations

import itertools
import sys
import time

import click

from runlog.cli.common import aws_options, aws_settings, echo_json, load_config, require_ledger, warn
from runlog.textsafe import terminal_safe


@click.command()
@click.argument("ref")
@click.option("--interval", type=click.FloatRange(min=0.1, max=86_400), default=30.0, show_default=True,
              help="Seconds between GetRun calls.")
@click.option("--timeout", type=click.FloatRange(min=0, max=366 * 86_400), default=None, help="Give up after this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the final GetRun answer and the input check as JSON.")
@aws_options
@click.pass_context
def watch(ctx, ref, interval, timeout, as_json, profile, region, endpoint_url):
    """Follow a run (or a batch) until it finishes, recording each status change in the ledger.

    On the way it records GetRun's answers as observations (status, times, workflow digest,
    engine version, resourceDigests, failure reason). At the end it checks every S3 input
    pinned at submission against the ETag the service actually read, and names any input
    that changed in between. A live status line goes to stderr when it is a terminal.

    For a batch (its id or REF) it pages GetBatch, ListRunsInBatch and ListRuns each interval,
    recording every member run once and each status change, until the batch is PROCESSED
    (or CANCELLED, FAILED); exit 0 only when every run COMPLETED.

    A throttle, a 5xx or a lost answer is warned about and GetRun (for a batch, the whole
    refresh) asked again at the next interval; another refusal (AccessDenied) ends the watch.

    Exit status: 0 COMPLETED with its inputs as pinned; 1 FAILED, CANCELLED, DELETED, an
    input changed, --timeout reached, or GetRun refused; 2 bad REF.

    \b
    Examples:
      runlog watch @1
      runlog watch 4207391 --interval 60 --timeout 86400
      runlog watch @1 --json | jq .run.resourceDigests
      runlog watch 7654321 --interval 60   # a batch: every run recorded, until it is finished
    """
    import runlog.watch
    from runlog import aws

    config = load_config(ctx)
    ledger = require_ledger(config)
    with ledger:
        entry = ledger.resolve(ref)
        if entry.kind == "batch":  # the batch and its members, a page at a time (runlog/cli/batch.py)
            from runlog.cli.batch import watch_batch

            return watch_batch(ctx, ledger, entry, config, interval, timeout, as_json, profile, region,
                               endpoint_url)
        recorded = entry.record["aws"]
        settings = aws_settings(config, profile, region, endpoint_url, recorded=recorded)
        omics = aws.client(settings, "omics")
        outcome = runlog.watch.watch(ledger, entry, omics, interval=interval, timeout=timeout,
                                     on_poll=_status_line(entry),
                                     on_failure=lambda exc: warn(f"{exc.message}; asking again in {interval:g} s"))
    if sys.stderr.isatty():
        click.echo("", err=True)
    for change in outcome.input_changes:
        warn(f"input changed between submission and execution: {change['uri']} was pinned at ETag "
             f"{change['pinned_etag']}, the run read {change['run_etag']}")
    if as_json:
        echo_json({"record": entry.address, "run_id": entry.run_id, "status": outcome.status,
                   "run": outcome.run, "input_changes": outcome.input_changes})
    else:
        reason = f" ({outcome.run['failureReason']})" if outcome.run.get("failureReason") else ""
        click.echo(terminal_safe(f"run {entry.run_id} {outcome.status}{reason}"))  # the service's text, escaped
    if not outcome.ok:
        ctx.exit(1)


def _status_line(entry):
    """A spinner line on a terminal; one plain line per status change otherwise."""
    spinner = itertools.cycle("|/-\\")
    started = time.monotonic()
    last: dict[str, str | None] = {"status": None}

    def show(run):
        status = terminal_safe(run.get("status"))  # GetRun's text (or not text), printed as one plain line
        if sys.stderr.isatty():
            elapsed = int(time.monotonic() - started)
            click.echo(f"\r{next(spinner)} run {entry.run_id} {status:<10} {elapsed // 60:02d}:{elapsed % 60:02d}",
                       err=True, nl=False)
        elif status != last["status"]:
            click.echo(f"run {entry.run_id}: {status}", err=True)
        last["status"] = status

    return show
