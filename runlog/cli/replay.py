"""`runlog replay`: run a recorded submission again, exactly, with drift checks."""

from __future__ import annotations

import re

import click

from runlog.cli.common import aws_options, aws_settings, echo_json, load_config, no_ledger, note, open_ledger, warn
from runlog.cli.submit import (
    check_query,
    duplicate_hint,
    make_resolve_options,
    member_option,
    output_options,
    print_submission,
    resolve_options,
)
from runlog.errors import DriftError, LedgerError, UsageError
from runlog.replay import NOT_OVERRIDABLE, describe, parse_set
from runlog.startrun import OPTIONS

OVERRIDABLE = [o for o in OPTIONS if o.member not in NOT_OVERRIDABLE]


def override_options(func):
    """submit's StartRun options, as overrides of the recorded members (config defaults do not apply)."""
    for option in reversed(OVERRIDABLE):
        described = re.sub(r" Default: [^.]*\.", "", option.help)  # config defaults do not apply
        text = (f"Add to (or change) the recorded tags. {described.removeprefix('Tags: ')}" if option.member == "tags"
                else f"Override the recorded value. {described}")
        func = member_option(option, text)(func)
    return func


@click.command()
@click.argument("ref")
@click.option("--set", "sets", multiple=True, metavar="PATH=VALUE",
              help="Override a parameter (nested: a.b[0].c); VALUE is JSON when it parses, else a string.")
@click.option("--allow-drift", is_flag=True, help="Replay even though code, workflow or inputs changed (recorded).")
@click.option("--dry-run", is_flag=True, help="Print the request that would be sent and the drift report; send nothing.")
@click.option("--native", is_flag=True, help="Use the service's own duplication (StartRun --run-id) instead.")
@click.option("--default-only", is_flag=True,
              help="A member of an imported batch whose own settings are unknown: replay its batch's default "
                   "setting alone (recorded as such), not what the run ran with.")
@click.option("--only", "only", multiple=True, metavar="RUN_SETTING_ID|failed",
              help="A batch: start only this run again (a runSettingId; repeat --only for more), or `failed`: "
                   "every failed one, as a new batch.")
@click.option("--settings-uri", metavar="s3://BUCKET/KEY",
              help="A batch with --only: write the selected run settings to this new S3 object (never over an "
                   "existing one) and start the new batch from it. Default for more than 100 runs of an "
                   "s3UriSettings batch: beside the original file, NAME.replay-REQUESTID.json.")
@override_options
@resolve_options
@aws_options
@output_options
@click.pass_context
def replay(ctx, ref, sets, allow_drift, dry_run, native, default_only, only, settings_uri, no_resolve, no_check, strict, resolve_timeout,
           profile, region, endpoint_url, query, output, as_json, quiet, allow_duplicate, no_cli_pager, **members):
    """Run a recorded submission again, exactly: the recorded StartRun request member for
    member, with a new requestId and a `runlog:replay-of` tag naming the original run.

    REF is anything `show` takes. A run id or ARN that is not in the ledger is fetched
    with GetRun, recorded as an imported record, and replayed from that.

    Before sending, replay checks for drift, one line each: the analysis repository's
    commit or uncommitted changes differ from the record's; the workflow's digest differs;
    an input's identity (S3 ETag or version, read-set status) differs. Any drift refuses the
    replay (exit 3) unless --allow-drift, and is then recorded in the replay's lineage.
    Overrides (--set and the options below; --tags adds to the recorded tags) are recorded
    too, and show in `runlog diff`. The replay's own record resolves the workflow and
    inputs again, as submit does (--no-resolve, --no-check, --strict).

    \b
    Examples:
      runlog replay 4207391 --dry-run
      runlog replay @1 --set genome.annotation=gencode.v45 --name rerun-v45
      runlog replay arn:aws:omics:us-west-2:123456789012:run/4207391 --allow-drift
      runlog replay 4207391 --native --output-uri s3://bucket/rerun/
      runlog replay 8100001 --only failed                     # a batch's failed runs, as a new batch
      runlog replay 8100001 --only NA12891 --only HG002 --dry-run

    A batch's REF starts the batch again as a new batch (a new requestId, lineage to it, drift
    refused as for runs); --only failed or --only RUN_SETTING_ID (once per run) starts just those runs;
    --set changes the default setting's parameters. More than 100 selected runs (or any, with
    --settings-uri) go into a new settings file in S3 that runlog writes, pins and names in
    the request. A member's REF replays that run alone as a single run: its effective
    settings or, for a member of a batch runlog imported, the settings GetRun reported for it
    (`runlog import`/`refresh` observed them; unknown: refused, --native or --default-only).
    An imported batch itself is not replayed (its run settings were never seen).

    Exit status: 0 sent; 1 the service rejected it (kept as a failed attempt) or could not be
    reached (kept as pending: `runlog recover`); 2 bad input or unknown run; 3 drift refused.
    """
    from runlog.startrun import flag_for, parse_flag
    from runlog.startrun import members as startrun_members

    check_query(query)
    ref = ref.strip()
    for text in sets:  # syntax first: nothing is fetched or written for a misspelt --set
        parse_set(text, flag_for)
    known = startrun_members()
    for name, raw in members.items():  # JSON, shorthand and file:// read as submit reads them
        if raw is not None:
            members[name] = parse_flag(known[name], raw, spell=flag_for)[0]
    config = load_config(ctx)
    options = make_resolve_options(config, no_resolve, no_check, strict, resolve_timeout)
    from runlog.cli.batch import is_batch_ref, replay_batch

    if is_batch_ref(config, ref):  # a new batch (runlog/batch.py)
        if default_only:
            raise UsageError("--default-only replays one member of an imported batch; REF names a batch")
        return replay_batch(ctx, config, ref, only=list(only), sets=list(sets), settings_uri=settings_uri,
                            allow_drift=allow_drift,
                            dry_run=dry_run, native=native, members=members, options=options,
                            given=(profile, region, endpoint_url), output=(query, output, as_json, quiet),
                            allow_duplicate=allow_duplicate)
    if only or settings_uri:
        raise UsageError(f"{'--only' if only else '--settings-uri'} is for a batch's runs; REF names a single run")
    prepared, ledger = _prepare(config, ref, members, list(sets), native, (profile, region, endpoint_url),
                                options.timeout, default_only)
    with ledger:
        plan = prepared.plan
        if prepared.imported is not None:
            note(f"run {prepared.imported.run_id} was not in the ledger: imported from GetRun as record "
                 f"{prepared.imported.address[:12]}")
        for line in plan.notes:
            note(line)
        for drift in plan.drift:
            warn("drift: " + describe(drift))
        if dry_run:
            if plan.drift and not allow_drift:
                note(f"without --dry-run this replay would be refused (exit 3): {len(plan.drift)} drift "
                     "finding(s)")
            if options.enabled and options.check and not native and "error" not in (plan.workflow or {"error": 1}):
                from runlog.resolve import check_template

                for problem in check_template(plan.workflow, plan.request.get("parameters")):
                    warn(f"without --dry-run this replay would be refused (exit 2): {problem} (--no-check sends it)")
            # the request, then what the replay's record would say about it (replay_of, mode, overrides, drift)
            echo_json({"request": plan.request, **plan.lineage, "notes": plan.notes})
            return
        if plan.drift and not allow_drift:
            raise DriftError(f"replay refused: {len(plan.drift)} drift finding(s) since the original run "
                             "(listed above); --allow-drift replays anyway and records them", plan.drift)
        from runlog.replay import send

        with duplicate_hint():
            result = send(prepared, ledger, allow_drift=allow_drift, lookup_caller=config.get("caller_identity", True),
                          resolve_options=options, allow_duplicate=allow_duplicate, warn=warn, spell=flag_for)
    print_submission(result, query, output, as_json, quiet)


def _prepare(config, ref: str, members: dict, sets: list[str], native: bool, given: tuple, timeout: float,
             default_only: bool = False):
    """The prepared replay (runlog.replay.prepare) and the ledger it was read from: the
    ledger is opened once, created only for a run GetRun found."""
    from runlog import aws
    from runlog.replay import is_fetchable, prepare
    from runlog.startrun import flag_for

    profile, region, endpoint_url = given
    existing = open_ledger(config, create=False)
    if existing is None and not is_fetchable(ref):
        raise LedgerError(no_ledger(config))
    try:
        return prepare(ref, existing=existing, create_ledger=lambda: open_ledger(config, create=True, notice=False),
                       settings_for=lambda recorded: aws_settings(config, profile, region, endpoint_url,
                                                                  recorded=recorded),
                       session_for=aws.session, git_path=config.git_repo, members=members, sets=sets,
                       native=native, timeout=timeout, spell=flag_for, default_only=default_only)
    except BaseException:
        if existing is not None:
            existing.close()
        raise
