"""`runlog replay`: run a recorded submission again, exactly, with drift checks."""

from __future__ import annotations

import json

import click

from runlog.cli.common import aws_options, aws_settings, load_config, note, open_ledger, warn
from runlog.cli.submit import output_options, print_response
from runlog.errors import DriftError, ServiceError, UsageError
from runlog.startrun import OPTIONS

OVERRIDABLE = [o for o in OPTIONS if o.member not in ("parameters", "requestId", "runId", "workflowId")]


def override_options(func):
    for option in reversed(OVERRIDABLE):
        kind = int if option.kind == "int" else str
        func = click.option(option.flag, option.member, type=kind, default=None,
                            help=f"Override the recorded value. {option.help}")(func)
    return func


@click.command()
@click.argument("ref")
@click.option("--set", "sets", multiple=True, metavar="PATH=VALUE",
              help="Override a parameter (nested: a.b[0].c); VALUE is JSON when it parses, else a string.")
@click.option("--allow-drift", is_flag=True, help="Replay even though code, workflow or inputs changed (recorded).")
@click.option("--dry-run", is_flag=True, help="Print the request that would be sent and the drift report; send nothing.")
@click.option("--native", is_flag=True, help="Use the service's own duplication (StartRun --run-id) instead.")
@override_options
@aws_options
@output_options
@click.pass_context
def replay(ctx, ref, sets, allow_drift, dry_run, native, profile, region, endpoint_url, query, output, as_json,
           quiet, no_cli_pager, **members):
    """Run a recorded submission again, exactly: the recorded StartRun request member for
    member, with a new requestId and a `runlog:replay-of` tag naming the original run.

    REF is anything `show` takes. A run id or ARN that is not in the ledger is fetched
    with GetRun, recorded as an imported record, and replayed from that.

    Before sending, replay checks for drift, one line each: the analysis repository's
    commit or uncommitted changes differ from the record's; the workflow's digest differs;
    an input's identity (S3 ETag or version, read-set status) differs. Any drift refuses the
    replay (exit 3) unless --allow-drift, and is then recorded in the replay's lineage.
    Overrides (--set and the options below) are recorded too, and show in `runlog diff`.

    \b
    Examples:
      runlog replay 4207391 --dry-run
      runlog replay @1 --set genome.annotation=gencode.v45 --name rerun-v45
      runlog replay arn:aws:omics:us-west-2:123456789012:run/4207391 --allow-drift
      runlog replay 4207391 --native --output-uri s3://bucket/rerun/

    Exit status: 0 sent; 1 the service rejected it (kept as a failed attempt); 2 bad input or
    unknown run; 3 drift refused.
    """
    from runlog import aws, gitcapture
    from runlog.importer import import_run
    from runlog.ledger import RUN_ARN_RE
    from runlog.observe import get_run, latest_run_facts
    from runlog.replay import check_drift, describe, plan as make_plan
    from runlog.resolve import input_uris
    from runlog.startrun import Built, check_request
    from runlog.submit import submit as do_submit

    config = load_config(ctx)
    ledger = open_ledger(config, create=True)
    with ledger:
        candidates = ledger.candidates(ref)
        fetched = None
        if not candidates and (ref.isdigit() or RUN_ARN_RE.match(ref)):
            run_id = ref if ref.isdigit() else RUN_ARN_RE.match(ref).group(1)
            settings = aws_settings(config, profile, region, endpoint_url)
            try:
                fetched = get_run(aws.client(settings, "omics"), run_id)
            except ServiceError as exc:
                if exc.code in ("ResourceNotFoundException", "AccessDeniedException", "ValidationException"):
                    raise UsageError(f"run {run_id} is not in the ledger and GetRun cannot find it "
                                     f"({exc.code}: {exc.service_message}); it may be deleted, expired, or in "
                                     "another account or region") from None
                raise
            entry, added = import_run(ledger, fetched)
            note(f"run {run_id} was not in the ledger: imported from GetRun as record {entry.address[:12]}")
        else:
            entry = ledger.resolve(ref)
        recorded = entry.record["aws"]
        settings = aws_settings(config, profile or recorded.get("profile"), region or recorded.get("region"),
                                endpoint_url or recorded.get("endpoint_url"))
        the_plan = make_plan(entry, members=members, sets=list(sets), native=native)
        check_request(the_plan.request)
        sess = aws.session(settings)
        omics = aws.client(settings, "omics", sess=sess)
        clients = {"omics": omics}
        if any(u.startswith("s3://") for u in input_uris(the_plan.request.get("parameters"))):
            clients["s3"] = aws.client(settings, "s3", sess=sess)
        recorded_digest = ((entry.record.get("resolution") or {}).get("workflow") or {}).get("digest") \
            or latest_run_facts(ledger, entry.address).get("digest")
        check_drift(the_plan, git_now=gitcapture.capture(config.git_repo), omics=omics, clients=clients,
                    recorded_digest=recorded_digest)
    for line in the_plan.notes:
        note(line)
    for drift in the_plan.drift:
        warn("drift: " + describe(drift))
    if dry_run:
        click.echo(json.dumps({"request": the_plan.request, "drift": the_plan.drift, "notes": the_plan.notes,
                               "lineage": the_plan.lineage}, indent=2, ensure_ascii=False))
        return
    if the_plan.drift and not allow_drift:
        raise DriftError(f"replay refused: {len(the_plan.drift)} thing(s) drifted since the original run "
                         "(listed above); --allow-drift replays anyway and records the drift")
    built = Built(request=the_plan.request, parameters={"source": "recorded", "argument": None})
    result = do_submit(lambda: open_ledger(config, create=True), built, settings=settings,
                       git_path=config.git_repo, kind="replay", extra={"lineage": the_plan.lineage},
                       lookup_caller=config.get("caller_identity", True), warn=warn)
    print_response(result.response, query, output, as_json, quiet, result.entry.address, result.warnings)
