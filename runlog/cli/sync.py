"""`runlog push`, `pull`, `import` and `refresh`: a team ledger in S3, and what HealthOmics knows."""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import click

from runlog.cli.common import aws_options, aws_settings, echo_json, load_config, note, open_ledger
from runlog.errors import LedgerError, UsageError


def _progress(quiet: bool, label: str):
    """A progress bar on stderr when it is a terminal (and not --quiet); nothing otherwise."""
    if quiet or not sys.stderr.isatty():
        return lambda items, total: items

    def wrap(items, total):
        with click.progressbar(items, length=total, label=label, file=sys.stderr) as bar:
            yield from bar

    return wrap


def transfer_options(func):
    func = click.option("--json", "as_json", is_flag=True, help="Print what was transferred as JSON.")(func)
    func = click.option("--quiet", "-q", is_flag=True, help="No progress bar, no summary line.")(func)
    func = click.option("--jobs", type=click.IntRange(1, 256), default=16, show_default=True,
                        help="Concurrent transfers.")(func)
    func = click.argument("remote", required=False)(func)
    return func


def _setup(ctx, remote, profile, region, endpoint_url, *, create: bool):
    from runlog import aws
    from runlog.sync import Remote

    config = load_config(ctx)
    target = Remote.parse(remote or config.get("remote"))
    settings = aws_settings(config, profile, region, endpoint_url)
    s3 = aws.client(settings, "s3", max_pool_connections=64)
    ledger = open_ledger(config, create=create)
    if ledger is None:
        raise LedgerError(f"no ledger at {config.ledger_path()} (nothing to push)")
    return ledger, s3, target


@click.command()
@transfer_options
@aws_options
@click.pass_context
def push(ctx, remote, jobs, quiet, as_json, profile, region, endpoint_url):
    """Send local records, observations and pending attempts to the team ledger in S3.

    REMOTE is s3://BUCKET/PREFIX (default: `remote` in .runlog.toml). Each record becomes one
    object named by its content address, written with If-None-Match so nothing on the remote
    is ever overwritten. The remote is listed first: only what it lacks is sent, so pushing
    twice sends nothing, and an interrupted push resumes where it stopped.

    \b
    Examples:
      runlog push s3://my-lab-provenance/runlog
      runlog push                   # the remote from .runlog.toml
      runlog push --jobs 64 --json
    """
    from runlog.sync import push as do_push

    ledger, s3, target = _setup(ctx, remote, profile, region, endpoint_url, create=False)
    with ledger:
        result = do_push(ledger, s3, target, jobs=jobs, progress=_progress(quiet, "pushing"))
    if as_json:
        echo_json({"remote": str(target), **result.as_dict()})
    elif not quiet:
        click.echo(f"{target}: sent {result.sent} record(s), {result.observations_sent} observation(s), "
                   f"{result.attempts_sent} pending attempt(s); {result.present} record(s) were already there")


@click.command()
@transfer_options
@aws_options
@click.pass_context
def pull(ctx, remote, jobs, quiet, as_json, profile, region, endpoint_url):
    """Fetch the records and observations the local ledger lacks from the team ledger.

    Every object is checked before it enters the ledger: its bytes must hash to the address
    in its name, be canonical JSON and pass the record schema. Objects that fail (tampered,
    truncated, not a record) are named and left out, the good ones are imported, and the
    exit status is 1. Pending attempts on the remote are counted, not imported (they belong
    to the ledger that made them and its `runlog recover`).

    \b
    Examples:
      runlog pull s3://my-lab-provenance/runlog
      runlog pull --json | jq .refused
    """
    from runlog.sync import pull as do_pull

    ledger, s3, target = _setup(ctx, remote, profile, region, endpoint_url, create=True)
    with ledger:
        result = do_pull(ledger, s3, target, jobs=jobs, progress=_progress(quiet, "pulling"))
    if as_json:
        echo_json({"remote": str(target), **result.as_dict()})
    else:
        for key, why in result.refused:
            click.echo(f"refused s3://{target.bucket}/{key}: {why}", err=True)
        if not quiet:
            pending = f"; {result.remote_pending} pending attempt(s) on the remote" if result.remote_pending else ""
            click.echo(f"{target}: received {result.received} record(s), {result.observations_received} "
                       f"observation(s), refused {len(result.refused)}{pending}")
    if result.refused:
        ctx.exit(1)


def _parse_since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since {value!r}: expected a date like 2026-11-01 or 2026-11-01T09:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@click.command("import")
@click.option("--since", help="Only runs created on or after this date (2026-11-01, or ISO 8601 with time).")
@click.option("--status", type=click.Choice(["PENDING", "STARTING", "RUNNING", "STOPPING", "COMPLETED", "DELETED",
                                             "CANCELLED", "FAILED"]), help="Only runs with this status.")
@click.option("--run-group-id", help="Only runs of this run group.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, no summary line.")
@click.option("--json", "as_json", is_flag=True, help="Print the imported runs as JSON.")
@aws_options
@click.pass_context
def import_(ctx, since, status, run_group_id, quiet, as_json, profile, region, endpoint_url):
    """Record runs started without runlog (console, aws CLI, boto3, pipelines).

    Pages through ListRuns, fetches each run not yet in the ledger with GetRun, and records
    it as an `import` record: the StartRun request rebuilt from GetRun, git state unknown,
    the caller from `startedBy`. Runs already in the ledger (by uuid) are skipped, so it can
    run as often as you like. Throttling is retried by botocore's retry mode.

    \b
    Examples:
      runlog import
      runlog import --since 2026-11-01 --status COMPLETED
      runlog import --run-group-id 1234567 --json
    """
    from runlog import aws
    from runlog.importer import import_run
    from runlog.observe import get_run

    config = load_config(ctx)
    moment = _parse_since(since)
    settings = aws_settings(config, profile, region, endpoint_url)
    omics = aws.client(settings, "omics")
    filters = {k: v for k, v in (("status", status), ("runGroupId", run_group_id)) if v}
    try:
        items = [item for page in omics.get_paginator("list_runs").paginate(**filters) for item in page["items"]]
    except Exception as exc:
        raise aws.error_from(exc, "ListRuns") from None
    if moment:
        items = [i for i in items if i.get("creationTime") and i["creationTime"] >= moment]
    ledger = open_ledger(config, create=True)
    imported, skipped = [], 0
    with ledger:
        for item in _progress(quiet, "importing")(items, len(items)):
            entry, added = import_run(ledger, get_run(omics, item["id"]))
            if added:
                imported.append({"record": entry.address, "run_id": entry.run_id, "run_uuid": entry.run_uuid,
                                 "status": item.get("status"), "name": item.get("name")})
            else:
                skipped += 1
    if as_json:
        echo_json({"imported": imported, "skipped": skipped})
    elif not quiet:
        for item in imported:
            click.echo(f"imported run {item['run_id']} ({item['status']}) as record {item['record'][:12]}")
        click.echo(f"{len(imported)} run(s) imported, {skipped} already in the ledger")


@click.command()
@click.argument("refs", nargs=-1, metavar="[REF]...")
@click.option("--all", "every", is_flag=True, help="Every record with a run, finished or not.")
@click.option("--active", is_flag=True, help="Every run not yet finished (the default without REFs).")
@click.option("--json", "as_json", is_flag=True, help="Print old and new status per run as JSON.")
@aws_options
@click.pass_context
def refresh(ctx, refs, every, active, as_json, profile, region, endpoint_url):
    """Record what HealthOmics says now about runs: status, times, digests, failure reason.

    Each answer is appended as an observation (never edited into the record) when something
    changed. Without REFs, refreshes every run that has not finished (--active).

    \b
    Examples:
      runlog refresh                 # every unfinished run
      runlog refresh @1 4207391
      runlog refresh --all --json
    """
    from runlog import aws
    from runlog.observe import SOURCE, TERMINAL, observe

    if refs and (every or active):
        raise UsageError("give REFs, or --all / --active, not both")
    config = load_config(ctx)
    ledger = open_ledger(config, create=False)
    if ledger is None:
        raise LedgerError(f"no ledger at {config.ledger_path()}")
    settings = aws_settings(config, profile, region, endpoint_url)
    omics = aws.client(settings, "omics")
    changes = []
    with ledger:
        if refs:
            entries = [ledger.resolve(ref) for ref in refs]
        else:
            entries = [e for e in ledger.entries(where="run_id IS NOT NULL")
                       if every or (e.status or "PENDING") not in TERMINAL]
        for entry in entries:
            if not entry.run_id:
                note(f"record {entry.address[:12]} has no run (the service rejected it)")
                continue
            seen_before = any(o["source"] == SOURCE for o in ledger.observations(entry.address))
            run = observe(ledger, entry, omics, unless_status=entry.status if seen_before else None) or {}
            changes.append({"record": entry.address, "run_id": entry.run_id, "old": entry.status,
                            "new": run.get("status")})
    if as_json:
        echo_json(changes)
    else:
        for change in changes:
            arrow = f"{change['old']} -> {change['new']}" if change["old"] != change["new"] else f"{change['new']}"
            click.echo(f"run {change['run_id']}: {arrow}")
        if not changes:
            note("no unfinished runs to refresh")
