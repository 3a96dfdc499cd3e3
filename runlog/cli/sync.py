"""`runlog push`, `pull`, `import` and `refresh`: a team ledger in S3, and what HealthOmics knows.

boto3 and the sync library are imported inside the commands."""

from __future__ import annotations

import sys
from datetime import datetime

import click

from runlog.cli.common import (
    aws_options,
    aws_settings,
    echo_json,
    load_config,
    no_ledger,
    note,
    open_ledger,
    require_ledger,
    warn,
)
from runlog.cli.status import exit_code_for
from runlog.cli.wording import command_line
from runlog.errors import LedgerError, RunlogError, ServiceError, UsageError
from runlog.textsafe import terminal_safe

RUN_STATUSES = ["PENDING", "STARTING", "RUNNING", "STOPPING", "COMPLETED", "DELETED", "CANCELLED", "FAILED"]


def _progress(quiet: bool):
    """A progress bar on stderr when stderr is a terminal and not --quiet; nothing otherwise."""
    if quiet or not sys.stderr.isatty():
        from runlog.sync import no_progress

        return no_progress

    def bar(items, total, label):
        with click.progressbar(items, length=total, label=label, file=sys.stderr) as shown:
            yield from shown

    return bar


def _jobs_option(func):
    return click.option("--jobs", "-j", type=click.IntRange(1, 256), default=16, show_default=True,
                        help="Requests in flight at once.")(func)


def _quiet_option(func):
    return click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary line.")(func)


def transfer_options(func):
    """REMOTE, --jobs, --quiet, --json, --profile, --region (S3 endpoints come from the AWS
    configuration: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, or the profile's services section)."""
    func = click.option("--region", help="AWS region (else AWS_REGION / AWS_DEFAULT_REGION / the profile).")(func)
    func = click.option("--profile", help="AWS named profile (else AWS_PROFILE).")(func)
    func = click.option("--json", "as_json", is_flag=True, help="Print what was transferred as JSON.")(func)
    func = _quiet_option(func)
    func = _jobs_option(func)
    return click.argument("remote", required=False)(func)


def _s3(config, profile, region, jobs):
    """One S3 client for every thread (clients are thread-safe, sessions are not)."""
    from runlog import aws

    settings = aws_settings(config, profile, region)
    return aws.client(settings, "s3", max_pool_connections=max(10, jobs))


def _remote(config, remote):
    from runlog.sync import Remote

    return Remote.parse(remote or config.get("remote"))


@click.command()
@transfer_options
@click.option("--objects", is_flag=True,
              help="One object per record and observation (runlog.remote/1), for a team ledger that runlog "
                   "versions before packs still pull; slower for many records.")
@click.pass_context
def push(ctx, remote, jobs, quiet, as_json, profile, region, objects):
    """Send local records, observations and pending attempts to the team ledger in S3.

    REMOTE is s3://BUCKET/PREFIX (default: `remote` in .runlog.toml). Records and observations
    travel in packs of up to 1 MiB (runlog.remote/2), each named by the SHA-256 of its content
    and listed by a small index object, written with If-None-Match: * so that nothing on the
    remote is ever overwritten. The remote is listed first and only what it lacks is sent:
    pushing twice sends nothing, and a push that stopped half way resumes where it stopped.
    The cohorts batch records hold by reference go as blobs (blobs/<sha256>.json.zlib), each
    checked as verify checks it first. A push adds nothing to the local ledger's records or observations. S3 is reached with the usual AWS settings
    (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL_S3, ...); see docs/team-ledger.md.

    \b
    Examples:
      runlog push s3://my-lab-provenance/runlog
      runlog push                      # the remote from .runlog.toml
      runlog push --jobs 64 --json
      runlog push --objects            # a team ledger also pulled by runlog before packs
    """
    from runlog import sync

    config = load_config(ctx)
    target = _remote(config, remote)
    ledger = open_ledger(config, create=False)
    if ledger is None:
        raise LedgerError(f"{no_ledger(config)}: nothing to push")
    with ledger:
        s3 = _s3(config, profile, region, jobs)
        result = sync.push(ledger, s3, target, jobs=jobs, progress=_progress(quiet), objects=objects)
    if not result.conditional_writes:
        warn("the store does not support conditional writes (If-None-Match); runlog checked each object "
             "with HEAD before writing it")
    if as_json:
        echo_json(result.as_dict())
    elif not quiet:
        packs = "" if objects else f" in {result.packs_sent} pack(s)"
        click.echo(f"{target}: sent {result.records_sent} record(s), {result.observations_sent} observation(s){packs}, "
                   f"{result.attempts_sent} pending attempt(s), {result.blobs_sent} blob(s); "
                   f"{result.records_present} record(s) were "
                   "already there")


def _max_object_bytes(config, flag: float | None) -> int:
    from runlog.sync import PULL_MAX_BYTES

    mib = flag if flag is not None else config.get("max_object_mib")
    if mib is None:
        return PULL_MAX_BYTES
    if not 0 < mib <= 4096:
        source = "--max-object-mib" if flag is not None else f"max_object_mib in {config.sources.get('max_object_mib')}"
        raise UsageError(f"{source} must be more than 0 and at most 4096 (MiB), got {mib!r}")
    return int(mib * 1024 * 1024)


@click.command()
@transfer_options
@click.option("--max-object-mib", type=float, metavar="MIB",
              help="Refuse objects larger than this many MiB (default 256, or max_object_mib in the config).")
@click.pass_context
def pull(ctx, remote, jobs, quiet, as_json, profile, region, max_object_mib):
    """Fetch the records and observations the local ledger lacks from the team ledger in S3.

    Every object is checked before anything enters the ledger: at most 256 MiB
    (--max-object-mib; an older batch record holds its whole cohort inline), strict UTF-8 JSON nested at most 100 deep, bytes that hash to the
    address in its name, canonical JSON, and (for records) the record schema and a requestId
    no other record has; a pack must also hold exactly what its index names, and then each
    of its records and observations is checked as above; a batch record holding its cohort by
    reference comes with its blobs, each decompressed within the limit and checked against its
    name, or is left out with its members. Objects that fail (tampered, truncated, hostile, denied) are named
    on stderr one per line with the reason and left out, the good ones are imported, and the
    exit status is 1. Pulled records go at the end of the local chain, oldest first;
    observations keep the time and source they were made with. Attempts pending in other
    ledgers are listed, not imported.

    \b
    Examples:
      runlog pull s3://my-lab-provenance/runlog
      runlog pull --json | jq .refused
    """
    from runlog import sync

    config = load_config(ctx)
    target = _remote(config, remote)
    max_bytes = _max_object_bytes(config, max_object_mib)
    s3 = _s3(config, profile, region, jobs)
    sync.return_large_blocks()  # this process is runlog's: what the pull frees goes back to the system
    listing = sync.survey(s3, target, jobs=jobs, doing="pull from", expect_ledger=True, max_bytes=max_bytes)
    ledger = open_ledger(config, create=True)
    with ledger:
        result = sync.pull(ledger, s3, target, jobs=jobs, progress=_progress(quiet), listing=listing,
                           max_bytes=max_bytes)
    if as_json:
        echo_json(result.as_dict())
    else:
        from runlog.ledger import ITEM_REFUSED

        for key, why in result.refused:  # an item of a pack refused as it was appended is named by its address
            named = key if key.startswith(ITEM_REFUSED) else f"s3://{target.bucket}/{key}"
            note(terminal_safe(f"refused {named}: {why}"))
        if not quiet:
            click.echo(f"{terminal_safe(target)}: received {result.records_received} record(s) and "
                       f"{result.observations_received} observation(s); {result.records_present} record(s) "
                       f"were already here; refused {len(result.refused)} object(s)")
        if result.remote_pending and not quiet:
            shown = terminal_safe(", ".join(result.remote_pending[:3]) + ("…" if len(result.remote_pending) > 3
                                                                           else ""))
            note(f"{len(result.remote_pending)} attempt(s) pending in other ledgers ({shown}): their records "
                 "arrive once those ledgers run `runlog recover` and push")
    if result.refused:
        ctx.exit(1)


def _parse_since(value: str | None) -> datetime | None:
    if not value:
        return None
    from runlog.record import parse_timestamp

    try:
        return parse_timestamp(value)
    except ValueError:
        raise UsageError(f"--since {value!r}: expected a date like 2026-11-01 or 2026-11-01T09:00:00Z") from None


@click.command("import")
@click.option("--since", help="Only runs created on or after this date (2026-11-01, or ISO 8601 with a time).")
@click.option("--status", type=click.Choice(RUN_STATUSES), help="Only runs with this status.")
@click.option("--run-group-id", help="Only runs of this run group.")
@_jobs_option
@_quiet_option
@click.option("--json", "as_json", is_flag=True, help="Print the imported runs as JSON.")
@aws_options
@click.pass_context
def import_(ctx, since, status, run_group_id, jobs, quiet, as_json, profile, region, endpoint_url):
    """Record runs started without runlog (console, aws CLI, boto3, other pipelines).

    Pages through ListRuns and fetches each run the ledger does not hold with GetRun (by
    ARN and creation time: HealthOmics reuses the ids of deleted runs), then records it as an
    `import` record: the StartRun request rebuilt from GetRun, git state unknown, the caller
    from `startedBy`, and GetRun's answer as its first observation. Runs already in the ledger
    (by uuid) are skipped, so it can run as often as you like; so are the runs of a batch the
    ledger records (`runlog refresh BATCH` records them as its members). Throttling is retried by
    botocore's retry mode (AWS_RETRY_MODE, AWS_MAX_ATTEMPTS).

    Batches (StartRunBatch) started without runlog are found first (ListBatch, GetBatch; --since
    and --run-group-id select them too, --status does not: a batch is recorded whole): each is
    recorded as a batch record with what GetBatch tells of its request (its requestId and run
    settings were never seen and are left out), then its runs as its members, as `runlog
    refresh` records them, never as single imports, and what each member ran with, from GetRun
    (--jobs at a time), as an observation. `--json` counts them under "batches".

    A run whose GetRun uuid is not text (or is missing) is not imported, as runlog could not
    tell it from another run: a warning names it, the others are imported, exit status 1.

    A run a pending attempt of this ledger may have started (same workflow or source run, role,
    output URI and name, created after the attempt was made) is left to `runlog recover`, which
    records it with its attempt (imported too, it would be recorded twice); a note names it,
    `--json` lists it under "pending".

    \b
    Examples:
      runlog import
      runlog import --since 2026-11-01 --status COMPLETED
      runlog import --run-group-id 1234567 --json
    """
    from runlog import aws
    from runlog.importer import import_batches, import_runs, list_batches, list_runs

    config = load_config(ctx)
    moment = _parse_since(since)
    settings = aws_settings(config, profile, region, endpoint_url)
    sess = aws.session(settings)
    omics = aws.client(settings, "omics", sess=sess, max_pool_connections=max(10, jobs))
    try:
        batch_items = list_batches(omics, run_group_id=run_group_id, since=moment)
    except ServiceError as exc:
        if exc.code != "AccessDeniedException":
            raise
        warn(f"ListBatch refused ({exc.code}): batches are not discovered, so their runs are imported as "
             "single runs; allow omics:ListBatch and omics:GetBatch to record them as batches")
        batch_items = []
    items = list_runs(omics, status=status, run_group_id=run_group_id, since=moment)
    ledger = open_ledger(config, create=True)
    with ledger:  # batches first: their runs are then members, not imports
        batches = import_batches(ledger, omics, batch_items, endpoint_url=aws.recorded_endpoint(settings, sess), jobs=jobs)
        if batches.failure is not None:
            from runlog.cli.batch import batch_import_failure

            raise batch_import_failure(batches)
        result = import_runs(ledger, omics, items, endpoint_url=aws.recorded_endpoint(settings, sess), jobs=jobs,
                             progress=_progress(quiet), skip_batches=set(batches.pending))
        result.batches = batches
    imported, failure = result.imported, result.failure
    for refused in result.not_imported:
        warn(refused["line"])
    if failure is not None:
        raise RunlogError(f"{failure.message} (after importing {len(imported)} run(s); run it again to "
                          "import the rest)", exit_code=exit_code_for(failure))
    if as_json:
        echo_json(result.as_dict())
    elif not quiet:
        from runlog.cli.batch import print_batch_import

        print_batch_import(batches)
        for item in imported:
            click.echo(terminal_safe(f"imported run {item['run_id']} ({item['status']}) as record "
                                     f"{item['record'][:12]}"))
        if result.pending:
            note(f"{len(result.pending)} run(s) may have been started by pending attempts (the first: run "
                 f"{result.pending[0]}): `runlog recover` records them (not imported)")
        click.echo(f"{len(imported)} run(s) imported, {result.skipped} already in the ledger"
                   + (f", {len(result.not_imported)} not imported" if result.not_imported else ""))
    if result.not_imported:
        ctx.exit(1)  # a run listed is not in the ledger (each said why)


@click.command()
@click.argument("refs", nargs=-1, metavar="[REF]...")
@click.option("--all", "every", is_flag=True, help="Every record with a run, finished or not.")
@click.option("--active", is_flag=True, help="Every run not yet finished (the default without REFs).")
@click.option("--json", "as_json", is_flag=True, help="Print the old and new status of each run as JSON.")
@click.option("--outputs", is_flag=True,
              help="For batches: also GetRun each member run that ended and whose output location "
                   "(runOutputUri) is not recorded yet (ListRuns does not give it), --jobs at a time.")
@_jobs_option
@aws_options
@click.pass_context
def refresh(ctx, refs, every, active, as_json, outputs, jobs, profile, region, endpoint_url):
    """Record what HealthOmics says now about runs: status, times, digests, failure reason.

    GetRun's answer is appended as an observation (records are never edited) when the status
    changed since the last one. Without REFs, every run and batch that has not finished is
    refreshed (--active); --all refreshes every recorded one. A REF is a run's or a batch's id,
    uuid or ARN, @N, or a record address prefix; a REF naming a record that started nothing (a
    rejected submission, a member whose submission failed) stops the command before anything
    is asked (exit 2), as in `watch`. Prints one line per run: old -> new status;
    for a batch (GetBatch, ListRunsInBatch, ListRuns): its status, and how many runs were
    listed, member records added and statuses changed.

    A batch started without runlog (found by `runlog import`): also GetRun, --jobs at a time,
    for each member whose own settings no observation holds yet (what it ran with).

    \b
    Examples:
      runlog refresh                 # every unfinished run
      runlog refresh @1 4207391
      runlog refresh --all --json
      runlog refresh 8100001 --outputs --jobs 32   # a batch, and where its runs wrote
    """

    from runlog.observe import refresh_targets

    if refs and (every or active):
        raise UsageError("give REFs, or --all / --active, not both")
    if every and active:
        raise UsageError("give --all or --active, not both")
    config = load_config(ctx)
    ledger = require_ledger(config)
    from runlog.cli.batch import batch_line, refresh_batches

    with ledger:
        targets = refresh_targets(ledger, refs, every)
        changes = refresh_runs(ledger, [e for e in targets if e.kind != "batch"], config, profile, region,
                               endpoint_url)
        batches = refresh_batches(ledger, [e for e in targets if e.kind == "batch"], config, profile, region,
                                  endpoint_url, outputs_jobs=jobs if outputs else None, jobs=jobs)
    failed = sum("error" in change for change in changes + batches)
    from runlog.batchread import listing_warnings, settings_file_warning

    for change in batches:  # said even with --json (on stderr), as other warnings are
        if "settings_file_changed" in change:
            warn(settings_file_warning(change["settings_file_changed"], change["batch_id"]))
        for _, line in listing_warnings(change):
            warn(line)
        if "submissions_unsettled" in change:
            warn(f"batch {change['batch_id']}: {change['submissions_unsettled']} submission(s) ListRunsInBatch listed "
                 "with neither a run nor the status FAILED were not recorded (no outcome yet); a later refresh records "
                 "them once they have one")
    unchecked = [change["settings_file_unchecked"] for change in batches if "settings_file_unchecked" in change]
    if unchecked:  # once: S3 was asked once, then left alone for the rest of this refresh
        warn(f"the settings files of {len(unchecked)} batch(es) were not checked (S3 could not be reached: "
             f"{unchecked[0]}): whether they are still those pinned is not known; run the refresh again when S3 "
             "answers")
    if as_json:
        echo_json(changes + batches)
    else:
        for change in batches:
            click.echo(batch_line(change))
        for change in changes:
            if "error" in change:
                line = (f"run {change['run_id'] or '-'} (record {change['record'][:12]}): "
                        f"{command_line(change['error'])}")
            elif change["old"] != change["new"]:
                line = f"run {change['run_id']}: {change['old']} -> {change['new']}"
            else:
                line = f"run {change['run_id']}: {change['new']} (unchanged)"
            click.echo(terminal_safe(line))
        if not changes and not batches:
            note("no unfinished runs to refresh" if not every else "no recorded runs to refresh")
    if failed:
        ctx.exit(1)


def refresh_runs(ledger, entries, config, profile=None, region=None, endpoint_url=None) -> list[dict]:
    """observe.refresh_runs with the AWS settings of the flags and the configuration (flag >
    recorded > config > environment); shared by `refresh` and `log --refresh`."""
    import runlog.observe

    return runlog.observe.refresh_runs(ledger, entries,
                                       lambda recorded: aws_settings(config, profile, region, endpoint_url,
                                                                     recorded=recorded))
