"""`runlog submit-batch` (a drop-in for `aws omics start-run-batch`), and what `show`,
`refresh`, `watch` and `log --batch` do for batches (runlog/batch.py)."""

from __future__ import annotations

import json

import click

from runlog.cli.common import (
    aws_options,
    aws_settings,
    dry_run_warn,
    echo_json,
    load_config,
    note,
    open_ledger,
    warn,
)
from runlog.cli.submit import (
    aws_global_options,
    check_query,
    dry_run_option,
    duplicate_hint,
    global_client_options,
    make_resolve_options,
    member_option,
    output_options,
    print_dry_run,
    print_output,
    print_submission,
    resolve_options,
    skeleton_option,
)
from runlog.textsafe import terminal_safe


def startrunbatch_options(func):
    """Every `aws omics start-run-batch` option, one per member of StartRunBatch's input shape
    in botocore's model (a newer botocore brings its options)."""
    from runlog.batch import options

    for option in reversed(options()):
        func = member_option(option)(func)
    return func


@click.command("submit-batch", context_settings={"max_content_width": 100})
@startrunbatch_options
@click.option("--cli-input-json", help="The whole StartRunBatch request as JSON, inline or file://PATH; flags "
              "override it.")
@skeleton_option("the StartRunBatch request")
@dry_run_option
@aws_options
@aws_global_options
@resolve_options
@output_options
@click.pass_context
def submit_batch(ctx, cli_input_json, generate_cli_skeleton, dry_run, profile, region, endpoint_url, cli_read_timeout, cli_connect_timeout,
                 no_verify_ssl, ca_bundle, color, no_paginate, aws_debug, no_resolve, no_check, strict,
                 resolve_timeout, query, output, as_json, quiet, allow_duplicate, no_cli_pager, **members):
    """Start a HealthOmics batch of runs and record it: a drop-in for `aws omics start-run-batch`.

    Takes every `start-run-batch` option with the same spelling and prints the same response
    JSON (id, arn, status, uuid, tags). Before StartRunBatch is called, the exact request (with
    its requestId), the git state, and for --batch-run-settings '{"s3UriSettings": ...}' the
    settings file itself (ETag, VersionId, SHA-256 and its content: the cohort) are committed
    to the ledger; the response is appended after. The default workflow is resolved once and
    every run's parameters (the default's merged with its own) are checked against its
    template; the runs' S3 inputs are identified in bulk (docs/batch.md).

    The runs appear later: `runlog refresh BATCH` (or `runlog watch BATCH`) records each as a
    member record, with its status.

    \b
    Examples:
      runlog submit-batch --batch-name cohort-1 \\
        --default-run-setting '{"workflowId": "1234567", "roleArn": "arn:aws:iam::123456789012:role/OmicsRole", "outputUri": "s3://b/out/"}' \\
        --batch-run-settings '{"inlineSettings": [{"runSettingId": "NA12878", "parameters": {"sample": "NA12878"}}]}'
      runlog submit-batch --default-run-setting file://default.json \\
        --batch-run-settings '{"s3UriSettings": "s3://b/cohort/settings.json"}' --query id --output text
      runlog submit-batch --generate-cli-skeleton > batch.json   # fill in, then:
      runlog submit-batch --cli-input-json file://batch.json

    Exit status: 0 submitted; 1 the service refused the request (kept as a failed attempt) or its
    answer is unknown (kept as pending, see `runlog recover`); 2 bad input (nothing sent or
    written); 130 interrupted.
    """
    import runlog.batch
    from runlog.batch import build_request
    from runlog.ledger import claim
    from runlog.startrun import flag_for

    check_query(query)
    if generate_cli_skeleton == "input":
        print_batch_skeleton("input")
        return
    client_options = global_client_options(ctx, cli_read_timeout, cli_connect_timeout, no_verify_ssl, ca_bundle,
                                           color, no_paginate, aws_debug)
    config = load_config(ctx)
    batch_request = build_request(members, cli_input_json=cli_input_json, spell=flag_for,
                                  defaults={"role_arn": config.get("role_arn"), "output_uri": config.get("output_uri")})
    if generate_cli_skeleton == "output":
        print_batch_skeleton("output", batch_request.request, query, output, color)
        return
    settings = aws_settings(config, profile, region, endpoint_url)
    resolved = make_resolve_options(config, no_resolve, no_check, strict, resolve_timeout)
    opener = (lambda: open_ledger(config, create=False, notice=False)) if dry_run else \
        (lambda: open_ledger(config, create=True))
    with duplicate_hint():
        claim(config.ledger_path())  # git capture (started first) leaves it out of the untracked files
        result = runlog.batch.submit_batch(opener, batch_request.request, settings=settings, git_path=config.git_repo,
                                           lookup_caller=config.get("caller_identity", True),
                                           resolve_options=resolved,
                                           allow_duplicate=allow_duplicate, warn=dry_run_warn if dry_run else warn, dry_run=dry_run,
                                           client_options=client_options)
    if dry_run:
        if result.ledger is None:
            result.ledger = str(config.ledger_path())
        print_dry_run(result)
        return
    print_submission(result, query, output, as_json, quiet, color, "StartRunBatch")


def print_batch_skeleton(which: str, request: dict | None = None, query=None, output="json", color=None) -> None:
    """--generate-cli-skeleton for submit-batch: what `aws omics start-run-batch` prints, made
    from StartRunBatch's shapes in the same botocore model (the output after the request is
    checked as for sending)."""
    from runlog.batch import OPERATION, check_against_model
    from runlog.servicemodel import service_model, skeleton

    operation = service_model("omics").operation_model(OPERATION)
    if which == "input":
        click.echo(json.dumps(skeleton(operation.input_shape), indent=4, default=str))
        return
    check_against_model(request or {}, service_model("omics"))
    print_output(skeleton(operation.output_shape, member_names=True), query, output, color, OPERATION)


def refresh_batches(ledger, entries, config, profile=None, region=None, endpoint_url=None,
                    outputs_jobs: int | None = None, jobs: int = 16) -> list[dict]:
    """`runlog refresh` for batch records (runlog.batch.refresh_batches), with the AWS
    settings of the flags and of where each batch was recorded, errors in the command
    line's words."""
    from runlog import aws, batch
    from runlog.cli.wording import command_line

    def settings_for(entry):
        return aws_settings(config, profile, region, endpoint_url,
                            recorded=ledger.batch_outline(entry.address).get("aws"))  # not the whole cohort

    def client_for(entry):
        return aws.client(settings_for(entry), "omics", max_pool_connections=max(10, jobs))

    def s3_for(entry):  # the settings file is checked as submit-batch read it: S3 as configured
        return aws.client(settings_for(entry), "s3", **batch.SETTINGS_CHECK_CLIENT)

    return batch.refresh_batches(ledger, entries, client_for, outputs_jobs=outputs_jobs, jobs=jobs,
                                 words=command_line, s3_for=s3_for)


def batch_line(change: dict) -> str:
    from runlog.batchread import not_found_words

    if "error" in change:
        return terminal_safe(f"batch {change['batch_id'] or '-'} (record {change['record'][:12]}): {change['error']}")
    status = change["status"] if "not_found" not in change else \
        f"GetBatch {not_found_words(change['not_found']['last_seen'])}"
    return terminal_safe(f"batch {change['batch_id']}: {status}; {change['members_listed']} run(s) listed, "
                         f"{change['members_added']} new member record(s), {change['statuses_changed']} status "
                         "change(s)" + (f", {change['outputs_recorded']} output location(s) recorded"
                                        if "outputs_recorded" in change else "")
                         + (f", {change['settings_observed']} member setting(s) observed from GetRun"
                            + (f" ({change['settings_unknown']} unknown: `runlog show RUN_ID` says why)"
                               if change["settings_unknown"] else "") if "settings_observed" in change else ""))


def watch_batch(ctx, ledger, entry, config, interval: float, timeout: float | None, as_json: bool,
                profile=None, region=None, endpoint_url=None) -> None:
    """`runlog watch BATCH`: runlog.watch.watch_batch, a line at each status change, then the
    batch's counts and failures."""
    from runlog import aws, batch
    from runlog.batchread import SHOWN_FAILURES, listing_warnings, not_found_words, settings_file_warning
    from runlog.watch import watch_batch as follow

    settings = aws_settings(config, profile, region, endpoint_url,
                            recorded=ledger.batch_outline(entry.address).get("aws"))
    omics = aws.client(settings, "omics")
    seen: list[str] = []
    said: list[dict | str] = []  # the settings file's identities warned of, and "unchecked" once said

    def status_line(change: dict) -> None:
        if change["status"] not in seen[-1:]:
            status = change["status"] if "not_found" not in change else \
                f"GetBatch {not_found_words(change['not_found']['last_seen'])}"
            click.echo(terminal_safe(f"batch {entry.batch_id}: {status}"), err=True)
            seen.append(change["status"])
        found = change.get("settings_file_changed")
        if found is not None and found["now"] not in said:  # as refresh warns of it, once an identity
            warn(settings_file_warning(found, entry.batch_id))
            said.append(found["now"])
        for finding, line in listing_warnings(change):
            if finding not in said:  # as refresh warns of them: once each finding
                warn(line)
                said.append(finding)
        if "settings_file_unchecked" in change and "unchecked" not in said:
            said.append("unchecked")
            warn(f"batch {entry.batch_id}: its settings file was not checked (S3 could not be reached: "
                 f"{change['settings_file_unchecked']}): whether it is still the one pinned is not known; "
                 f"`runlog refresh {entry.batch_id}` checks it when S3 answers")

    outcome = follow(ledger, entry, omics, interval=interval, timeout=timeout, on_poll=status_line,
                     s3=aws.client(settings, "s3", **batch.SETTINGS_CHECK_CLIENT),
                     on_failure=lambda exc: warn(f"batch {entry.batch_id}: {exc.message}; asking again in "
                                                 f"{interval:g} s"),
                     failures=None if as_json else SHOWN_FAILURES)
    facts = outcome.facts
    if as_json:
        echo_json(facts)
    else:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(facts["run_status"].items())) or "no runs"
        failed = facts["submission"].get("FAILED", 0)
        click.echo(terminal_safe(f"batch {entry.batch_id} {facts['batch_status']}: {counts}"
                                 + (f"; {failed} submission(s) FAILED" if failed else "")))
        if facts["batch_failure"]:  # the batch itself FAILED: GetBatch's reason, the one thing to say of it
            click.echo(terminal_safe(f"  batch failed: {facts['batch_failure']['reason'] or 'no failureReason given'}"))
        for failure in facts["failures"]:
            click.echo(terminal_safe(f"  failed {failure['run_setting_id']} ({failure['stage']}): "
                                     f"{failure['reason']}"))
        if facts["failures_count"] > len(facts["failures"]):
            click.echo(f"  … and {facts['failures_count'] - len(facts['failures'])} more failed "
                       "(--json lists all; `runlog show B` lists them with their runs)")
    if not outcome.ok:
        ctx.exit(1)


def is_batch_ref(config, ref: str) -> bool:
    """Whether REF names a batch record in the ledger (a missing ledger or REF: no)."""
    from runlog.batchreplay import names_batch

    ledger = open_ledger(config, create=False, notice=False)
    if ledger is None:
        return False
    with ledger:
        return names_batch(ledger, ref)


def replay_batch(ctx, config, ref: str, *, only: list[str], sets: list[str], allow_drift: bool, dry_run: bool,
                 native: bool, members: dict, options, given: tuple, output: tuple, allow_duplicate: bool,
                 settings_uri: str | None = None) -> None:
    """`runlog replay BATCH`: the batch (or --only some of its runs) as a new batch, its drift
    checked (runlog/batchreplay.py)."""
    from runlog import aws, batchreplay
    from runlog.cli.common import require_ledger
    from runlog.errors import DriftError, UsageError
    from runlog.replay import describe

    if native:
        raise UsageError("--native duplicates one run; a batch is replayed from its recorded request")
    given_members = [name for name, value in members.items() if value is not None]
    if given_members:
        raise UsageError(f"a batch replay takes --set (the default setting's parameters) and --only, not "
                         f"{given_members[0]} (edit the batch's request and use submit-batch)")
    profile, region, endpoint_url = given
    query, out_format, as_json, quiet = output
    with require_ledger(config) as ledger:
        plan = batchreplay.prepare(ledger, ref, only=only, sets=sets, settings_uri=settings_uri,
                                   settings_for=lambda recorded: aws_settings(config, profile, region, endpoint_url,
                                                                              recorded=recorded),
                                   session_for=aws.session, git_path=config.git_repo, resolve=options.enabled,
                                   timeout=options.timeout)
    for line in plan.notes:
        note(line)
    for drift in plan.drift[:20]:
        warn("drift: " + describe(drift))
    if len(plan.drift) > 20:
        warn(f"drift: … and {len(plan.drift) - 20} more (`--dry-run` lists them all)")
    if dry_run:
        if plan.drift and not allow_drift:
            note(f"without --dry-run this replay would be refused (exit 3): {len(plan.drift)} drift finding(s)")
        if plan.template_problem and options.check:
            warn(f"without --dry-run this replay would be refused (exit 2): {plan.template_problem} "
                 "(--no-check sends it)")
        if plan.settings_uri:
            taken = batchreplay.settings_uri_refusal(plan)
            if taken:
                warn(f"without --dry-run this replay would be refused (exit 2): {taken}")
            else:
                note(f"without --dry-run runlog would write the {len(plan.selected)} selected run "
                     f"settings to {plan.settings_uri} (a new object) and start the batch from it")
        from runlog.cli.wording import command_line

        echo_json({"request": plan.request, **plan.lineage, "notes": [command_line(line) for line in plan.notes]})
        return
    if plan.drift and not allow_drift:
        raise DriftError(f"replay refused: {len(plan.drift)} drift finding(s) since the original batch "
                         "(listed above); --allow-drift replays anyway and records them", plan.drift)
    with duplicate_hint():
        result = batchreplay.send(plan, lambda: open_ledger(config, create=True), git_path=config.git_repo,
                                  allow_drift=allow_drift, allow_duplicate=allow_duplicate,
                                  lookup_caller=config.get("caller_identity", True),
                                  resolve_options=options,
                                  warn=warn, wrote=lambda message: note(terminal_safe(message)))
    print_submission(result, query, out_format, as_json, quiet, operation="StartRunBatch")


def batch_import_failure(result):
    """The error `runlog import` stops with when recording a batch failed: the batches
    recorded before it stay; a rerun or `runlog refresh BATCH` records the rest."""
    from runlog.cli.status import exit_code_for
    from runlog.errors import RunlogError

    failure = result.failure
    done = ", ".join(item["batch_id"] for item in result.imported) or "none"
    return RunlogError(f"{failure.message} (batches recorded before it: {done}; run `runlog import` again, and "
                       "`runlog refresh BATCH` for the members of a batch it stopped in)",
                       exit_code=exit_code_for(failure))


def print_batch_import(result) -> None:
    """`runlog import`'s lines for the batches it recorded."""
    for item in result.imported:
        click.echo(terminal_safe(f"imported batch {item['batch_id']} ({item['status']}, {item['runs']} run(s)) as "
                                 f"record {item['record'][:12]} with {item['members_added']} member record(s)"
                                 + (f", {item['settings_observed']} member setting(s) observed from GetRun"
                                    if "settings_observed" in item else "")
                                 + (f" ({item['settings_unknown']} unknown: `runlog show RUN_ID` says why)"
                                    if item.get("settings_unknown") else "")))
    if result.pending:
        note(f"{len(result.pending)} batch(es) may be pending submit-batch attempts: `runlog recover` records them "
             "(not imported)")
    if result.listed:
        click.echo(f"{len(result.imported)} batch(es) imported, {result.skipped} already in the ledger")


@click.command("cancel")
@click.argument("ref")
@click.option("--delete-runs", is_flag=True, help="DeleteRunBatch instead: delete the runs of a finished batch.")
@click.option("--json", "as_json", is_flag=True, help="Print what was asked and the batch's status as JSON.")
@aws_options
@click.pass_context
def cancel(ctx, ref, delete_runs, as_json, profile, region, endpoint_url):
    """Cancel a batch (CancelRunBatch), or delete its runs (--delete-runs: DeleteRunBatch).

    REF names a batch (its id, uuid, ARN, @N or record address). What was asked and the
    service's answer (or refusal) are appended to the ledger as observations of the batch
    record, followed by GetBatch; nothing is removed from the ledger: the batch's and its
    members' records stay, and `runlog refresh BATCH` records the members' new statuses.

    \b
    Examples:
      runlog cancel 7654321
      runlog cancel 7654321 --delete-runs

    With --json, a refusal or an unknown outcome is printed too, as {"outcome": "refused" or
    "unknown", "error": ...} beside the batch, before the exit status says it.

    Exit status: 0 asked; 1 the service refused, or the outcome is unknown (both recorded); 2 bad REF (not a batch).
    """
    from runlog import aws
    from runlog.batch import act_on_batch, action_told
    from runlog.cli.common import require_ledger
    from runlog.errors import RunlogError

    config = load_config(ctx)
    action = "delete-runs" if delete_runs else "cancel"
    with require_ledger(config) as ledger:
        entry = ledger.resolve(ref)
        omics = aws.client(aws_settings(config, profile, region, endpoint_url, recorded=entry.record.get("aws")),
                           "omics")
        try:
            result = act_on_batch(ledger, entry, omics, action)
        except RunlogError as exc:
            told = action_told(entry, action, exc) if as_json else None
            if told is not None:  # refused, unknown, or accepted and then GetBatch failed: recorded, and said
                echo_json(told)
            raise
    if as_json:
        echo_json(result)
    else:
        click.echo(terminal_safe(f"batch {result['batch_id']}: {result['action']} asked; now {result['status']}"))
