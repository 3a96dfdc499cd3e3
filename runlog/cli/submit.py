"""`runlog submit` and `runlog recover`."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any

import click

from runlog.cli.common import aws_options, aws_settings, dry_run_warn, echo_json, load_config, note, open_ledger, warn
from runlog.cli.wording import command_line
from runlog.config import RESOLVE_TIMEOUT_MAX
from runlog.startrun import options as startrun_model_options

_CLICK_TYPES = {"integer": int, "long": int, "float": float, "double": float}


def member_option(option, help: str | None = None):
    """A click option for one StartRun member, spelled and typed as the aws CLI does:
    booleans are --x/--no-x, numbers are parsed, everything else is text (JSON, shorthand
    and file:// are read by runlog.startrun.parse_flag)."""
    text = option.help if help is None else help
    if option.kind == "boolean":
        negative = "--no-" + option.flag[2:]
        return click.option(f"{option.flag}/{negative}", option.member, default=None, help=text)
    kind = _CLICK_TYPES.get(option.kind, str)
    metavar = {"document": "JSON", "structure": "JSON", "list": "JSON", "map": "KEY=VALUE,..."}.get(option.kind)
    if metavar is None:
        metavar = {str: "TEXT", int: "INTEGER", float: "FLOAT"}[kind]
    return click.option(option.flag, option.member, type=kind, default=None, metavar=metavar, help=text)


def startrun_options(func):
    """Every `aws omics start-run` option, same spelling and meaning: one per member of
    StartRun's input shape in botocore's service model (a newer botocore brings its options)."""
    for option in reversed(startrun_model_options()):
        func = member_option(option)(func)
    return func


# The shape of StartRun's response, to try a --query on before anything is sent.
_SAMPLE_RESPONSE = {"arn": "arn:aws:omics:us-east-1:123456789012:run/1234567", "id": "1234567", "status": "PENDING",
                    "tags": {}, "uuid": "00000000-0000-0000-0000-000000000000", "runOutputUri": "s3://b/o/1234567"}


def check_query(query: str | None):
    """Compile --query, and try it on a response of StartRun's shape, before anything is sent:
    a run must never be started and then hidden behind an error about how to print it."""
    if not query:
        return None
    import jmespath

    try:
        compiled = jmespath.compile(query)
        json.dumps(compiled.search(_SAMPLE_RESPONSE))  # what fails on any response fails here
    except (jmespath.exceptions.JMESPathError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        message = " ".join(str(exc).split())[:300]
        raise click.BadParameter(f"{query[:200]!r} is not a usable JMESPath expression ({message}); "
                                 "nothing was sent", param_hint="--query") from None
    return compiled


def print_submission(result, query: str | None, output: str, as_json: bool, quiet: bool,
                     color: str | None = None, operation: str = "StartRun") -> None:
    """Print a recorded submission. If printing fails (a closed pipe, a full disk, a query that
    fails on this very response), the run id still reaches stderr: a started run is never hidden."""
    try:
        if output == "table" and not (as_json or quiet):
            print_output(result.response, query, output, color, operation)
        else:
            print_response(result.response, query, output, as_json, quiet, result.entry.address, result.warnings)
        sys.stdout.flush()
    except (BrokenPipeError, KeyboardInterrupt):
        _note_started(result)
        raise
    except Exception as exc:
        from runlog.errors import OperationError

        raise OperationError(f"run {result.response.get('id')} was started and recorded as "
                             f"{result.entry.address[:12]}, but printing its response failed: "
                             f"{type(exc).__name__}: {exc}"[:500]) from None


def _note_started(result) -> None:
    try:
        note(f"run {result.response.get('id')} was started and recorded as {result.entry.address[:12]}, "
             "but printing its response failed")
    except Exception:
        pass


def print_response(response: dict, query: str | None, output: str, as_json: bool, quiet: bool,
                   record: str | None = None, warnings: list[str] | None = None) -> None:
    """Print as `aws omics start-run` does (same JSON), or runlog's own forms."""
    if quiet:
        click.echo(response.get("id", ""))
        return
    if as_json:
        echo_json({"record": record, "response": response, "warnings": warnings or []})
        return
    value = response
    if query:
        value = check_query(query).search(response)
    if value == {}:  # as the aws CLI: an empty object prints nothing, in every format
        return
    if output == "text":
        lines = _text_lines(value)
        if lines:  # as the aws CLI: an object of empty objects prints nothing
            click.echo("\n".join(lines))
    else:  # None prints as null, as the aws CLI prints it
        echo_json(value, indent=4)  # as the aws CLI prints it, a control or bidi character escaped


def _text_lines(value: Any, label: str | None = None, columns: list[str] | None = None) -> list[str]:
    """The aws CLI's `--output text` of a value, line by line: an object's scalar members on one
    line (sorted by name; `columns`: the scalar names of all the objects of its list, missing
    ones empty), after its `label` in capitals when it is nested, then a line or more for each
    nested member, labelled with its name; a list of objects one line each; a list of scalars
    one line each when labelled (`LABEL<TAB>item`), else tab-joined; a scalar as text."""
    def nested(item: Any) -> bool:
        return isinstance(item, (dict, list))

    if isinstance(value, dict):
        if columns is None:
            columns = [k for k in sorted(value) if not nested(value[k])]
        lines = []
        if columns:
            cells = [str(value.get(k, "")) for k in columns]
            lines.append("\t".join(cells if label is None else [label.upper(), *cells]))
        for key in sorted(set(value) - set(columns)):
            lines += _text_lines(value[key], key)
        return lines
    if isinstance(value, list):
        if any(isinstance(item, dict) for item in value):
            shared = sorted({k for item in value if isinstance(item, dict) for k, v in item.items() if not nested(v)})
            return [line for item in value for line in _text_lines(item, label, shared)]
        scalars = [str(item) for item in value if not nested(item)]
        lines = ([f"{label.upper()}\t{item}" for item in scalars] if label is not None
                 else ["\t".join(scalars)] if scalars else [])
        return lines + [line for item in value if nested(item) for line in _text_lines(item, label)]
    return [str(value)]


def resolve_options(func):
    """--no-resolve, --no-check, --strict, --resolve-timeout (shared by submit and replay)."""
    func = click.option("--resolve-timeout", type=click.FloatRange(min=0.1, max=RESOLVE_TIMEOUT_MAX), default=None,
                        help="Seconds allowed for resolving the workflow and inputs (default 5, or "
                             "resolve_timeout in the config).")(func)
    func = click.option("--strict", is_flag=True, help="Refuse to submit when an input cannot be resolved.")(func)
    func = click.option("--no-check", is_flag=True,
                        help="Send parameters that do not fit the workflow's parameter template.")(func)
    func = click.option("--no-resolve", is_flag=True,
                        help="Do not look up the workflow's digest and the inputs' identities.")(func)
    return func


def make_resolve_options(config, no_resolve: bool, no_check: bool, strict: bool, timeout: float | None):
    from runlog.resolve import DEFAULT_TIMEOUT, Options

    return Options(enabled=not no_resolve, check=not no_check, strict=strict,
                   timeout=timeout or config.get("resolve_timeout") or DEFAULT_TIMEOUT)


def output_options(func):
    func = click.option("--allow-duplicate", is_flag=True,
                        help="Send even though an identical request is still pending (that one may already "
                             "have started a run, or a batch).")(func)
    func = click.option("--quiet", "-q", is_flag=True, help="Print only the id (of the run; of the batch, for a batch).")(func)
    func = click.option("--json", "as_json", is_flag=True,
                        help="Print runlog's JSON: the record address, the response and warnings.")(func)
    func = click.option("--output", type=click.Choice(["json", "text", "table"]), default="json", show_default=True,
                        help="Format of the response, as the aws CLI's --output.")(func)
    func = click.option("--query", help="JMESPath query on the response, as the aws CLI's --query "
                        "(e.g. --query id --output text).")(func)
    func = click.option("--no-cli-pager", is_flag=True, hidden=True, help="Accepted for aws CLI compatibility.")(func)
    return func


def aws_global_options(func):
    """The aws CLI's global options a script may pass after the subcommand."""
    func = click.option("--debug", "aws_debug", is_flag=True,
                        help="As the aws CLI's --debug: botocore's debug log on stderr, and tracebacks.")(func)
    func = click.option("--no-paginate", is_flag=True, help="Accepted (StartRun and StartRunBatch are not paginated).")(func)
    func = click.option("--color", type=click.Choice(["on", "off", "auto"]), default=None,
                        help="Accepted (runlog prints the response without color).")(func)
    func = click.option("--ca-bundle", type=click.Path(dir_okay=False),
                        help="CA certificate bundle to verify HTTPS with (as the aws CLI's --ca-bundle).")(func)
    func = click.option("--no-verify-ssl", is_flag=True,
                        help="Do not verify the endpoint's TLS certificate (as the aws CLI's --no-verify-ssl).")(func)
    func = click.option("--cli-connect-timeout", type=click.IntRange(min=0), default=None,
                        help="Seconds to wait for a connection to HealthOmics (0: no limit).")(func)
    func = click.option("--cli-read-timeout", type=click.IntRange(min=0), default=None,
                        help="Seconds to wait for HealthOmics to answer (0: no limit).")(func)
    return func


def global_client_options(ctx, cli_read_timeout, cli_connect_timeout, no_verify_ssl, ca_bundle, color,
                          no_paginate, aws_debug) -> dict:
    """The aws CLI's global options as client options; notes for those with no effect."""
    options: dict = {}
    if cli_read_timeout is not None:
        options["read_timeout"] = cli_read_timeout or None
    if cli_connect_timeout is not None:
        options["connect_timeout"] = cli_connect_timeout or None
    if no_verify_ssl:
        options["verify"] = False
        warn("--no-verify-ssl: the endpoint's TLS certificate is not verified")
    elif ca_bundle:
        options["verify"] = ca_bundle
    if color is not None:
        note(f"--color {color} accepted: runlog prints the response without color")
    if no_paginate:
        note("--no-paginate accepted: StartRun and StartRunBatch are not paginated")
    if aws_debug:
        import logging

        ctx.find_root().ensure_object(dict)["debug"] = True
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s - %(name)s - %(levelname)s - %(message)s")
    return options


def print_skeleton(which: str, request: dict | None = None, query=None, output="json", color=None) -> None:
    """--generate-cli-skeleton: what the aws CLI prints, from the same botocore model."""
    from runlog.servicemodel import service_model, skeleton

    operation = service_model("omics").operation_model("StartRun")
    if which == "input":
        click.echo(json.dumps(skeleton(operation.input_shape), indent=4, default=str))
        return
    # output: the request is checked as for sending; the answer's shape, member names as values
    from runlog.startrun import check_against_model, flag_for

    check_against_model(request or {}, service_model("omics"), flag_for)
    print_output(skeleton(operation.output_shape, member_names=True), query, output, color)


def print_output(response: dict, query, output, color: str | None = None, operation: str = "StartRun") -> None:
    if output == "table":  # titled with the operation's name, as the aws CLI does
        compiled = check_query(query)
        printed = _aws_table(response, compiled, color, operation)
        if printed is None:
            value = compiled.search(response) if compiled else response
            printed = _table(value, operation) + "\n" if value not in (None, {}, []) else ""
        click.echo(printed, nl=False)
        return
    print_response(response, query, output, False, False)


def _aws_table(response: dict, compiled_query, color: str | None, operation: str = "StartRun") -> str | None:
    """The aws CLI's own table formatter, when the aws CLI is installed."""
    try:
        from awscli.formatter import TableFormatter
    except ImportError:
        return None
    import argparse
    import io

    stream = io.StringIO()
    args = argparse.Namespace(query=compiled_query, color="on" if color == "on" else "off")
    TableFormatter(args)(operation, response, stream)
    return stream.getvalue()


def _table(value, title: str) -> str:
    """The aws CLI's --output table, in its simple form: a titled box of key | value rows,
    nested maps and lists as titled boxes below."""
    rows: list[tuple[str, str]] = []
    nested: list[tuple[str, object]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            (nested if isinstance(item, (dict, list)) else rows).append((key, item))
    elif isinstance(value, list):
        for item in value:
            (nested if isinstance(item, (dict, list)) else rows).append(("", item))
    else:
        rows.append(("", value))
    rows = [(k, str(v)) for k, v in rows]
    key_width = max([len(k) for k, _ in rows] + [0])
    value_width = max([len(v) for _, v in rows] + [0])
    inner = max(len(title) + 2, key_width + value_width + 7 if key_width else value_width + 4)
    lines = ["-" * (inner + 2), "|" + title.center(inner) + "|"]
    if rows:
        lines.append("+" + "-" * inner + "+")
        for key, text in rows:
            if key:
                lines.append(f"|  {key.ljust(key_width)}  |  {text.ljust(inner - key_width - 7)}|")
            else:
                lines.append(f"|  {text.ljust(inner - 2)}|")
    lines.append("+" + "-" * inner + "+")
    for key, item in nested:
        lines.append(_table(item, key or title))
    return "\n".join(lines)


def print_dry_run(result) -> None:
    """--dry-run: the exact request and the record that would be written."""
    intent = result.intent
    echo_json({"dry_run": True, "request": intent["request"], "ledger": result.ledger,
               "record": {**intent, "outcome": None}}, indent=2)
    note("dry run: every check passed; nothing was sent to HealthOmics and nothing was written")


def skeleton_option(request: str):
    """--generate-cli-skeleton, as submit and submit-batch take it (`request`: what the input skeleton is of)."""
    return click.option(
        "--generate-cli-skeleton", type=click.Choice(["input", "output"]), is_flag=False, flag_value="input",
        default=None, help=f"Print what the aws CLI prints: a JSON skeleton of {request} (input, the default) for "
        "--cli-input-json, or of the response (output, after checking the options); nothing is sent or written.")


# --dry-run, as submit and submit-batch take it
dry_run_option = click.option("--dry-run", is_flag=True, help="Make every check and resolution, print the exact "
                              "request and the record that would be written; send nothing, write nothing.")


@click.command(context_settings={"max_content_width": 100})
@startrun_options
@click.option("--cli-input-json", help="The whole request as JSON, inline or file://PATH; flags override it. "
              "Every StartRun member of the model, types checked (a file's path and SHA-256 are recorded).")
@skeleton_option("the request")
@dry_run_option
@aws_options
@aws_global_options
@resolve_options
@output_options
@click.pass_context
def submit(ctx, cli_input_json, generate_cli_skeleton, dry_run, profile, region, endpoint_url, cli_read_timeout,
           cli_connect_timeout, no_verify_ssl, ca_bundle, color, no_paginate, aws_debug, no_resolve, no_check,
           strict, resolve_timeout, query, output, as_json, quiet, allow_duplicate, no_cli_pager, **members):
    """Start a HealthOmics run and record it: a drop-in for `aws omics start-run`.

    Takes every `start-run` option with the same spelling and meaning and prints the same
    response JSON: the options are made at run time from StartRun's input shape in botocore's
    service model, so a newer botocore brings its new options. Before StartRun is called, the
    exact request (with its requestId), the resolved parameters and the git state of the
    analysis repository are committed to the ledger; the response is appended after.
    Defaults for --role-arn, --output-uri and --tags may come from .runlog.toml.

    Before sending, runlog resolves what the request names (docs/resolve.md): the workflow's
    digest and parameter template (missing or unknown parameters are refused), and the
    identity of every s3:// and omics:// input (ETag, version, read-set status). Inputs it
    cannot resolve are recorded as such and warned about.

    \b
    Examples:
      runlog submit --workflow-id 1234567 --role-arn arn:aws:iam::123456789012:role/OmicsRole \\
        --name cram-to-bam --output-uri s3://my-bucket/out/ --parameters file://workflow-inputs.json
      runlog submit --workflow-id 7206765 --role-arn ROLE --output-uri s3://b/out/ \\
        --parameters '{"input": "s3://b/samplesheet.csv"}' --cache-id 1234567 --cache-behavior CACHE_ALWAYS
      runlog submit --generate-cli-skeleton > run.json     # fill in, then:
      RUN_ID=$(runlog submit --cli-input-json file://run.json --query id --output text)
      runlog submit --cli-input-json file://run.json --dry-run

    Exit status: 0 submitted (or printed); 1 the service refused the request (kept as a failed
    attempt) or its answer is unknown (a 5xx, a throttle or timeout that outlived the retries, a
    lost connection: kept as pending, see `runlog recover`); 2 bad input (nothing sent or
    written), or an identical request is still pending; 130 interrupted (the message says
    whether the request was sent).
    """
    from runlog.startrun import build_request, flag_for

    check_query(query)
    if generate_cli_skeleton == "input":
        print_skeleton("input")
        return
    client_options = global_client_options(ctx, cli_read_timeout, cli_connect_timeout, no_verify_ssl, ca_bundle,
                                           color, no_paginate, aws_debug)
    config = load_config(ctx)
    start_request = build_request(
        members,
        cli_input_json=cli_input_json,
        defaults={"roleArn": config.get("role_arn"), "outputUri": config.get("output_uri"),
                  "tags": config.get("tags")},
        spell=flag_for,
    )
    if generate_cli_skeleton == "output":
        print_skeleton("output", start_request.request, query, output, color)
        return
    import runlog.submit
    from runlog.ledger import claim
    from runlog.submit import DryRun

    settings = aws_settings(config, profile, region, endpoint_url)
    opener = (lambda: open_ledger(config, create=False, notice=False)) if dry_run else \
        (lambda: open_ledger(config, create=True))
    with duplicate_hint():
        claim(config.ledger_path())  # git capture (started first) leaves it out of the untracked files
        result = runlog.submit.submit(opener, start_request, settings=settings, git_path=config.git_repo,
                                      lookup_caller=config.get("caller_identity", True),
                                      resolve_options=make_resolve_options(config, no_resolve, no_check, strict,
                                                                           resolve_timeout),
                                      allow_duplicate=allow_duplicate, warn=dry_run_warn if dry_run else warn, dry_run=dry_run,
                                      client_options=client_options)
    if isinstance(result, DryRun):
        if result.ledger is None:
            result.ledger = str(config.ledger_path())
        print_dry_run(result)
        return
    print_submission(result, query, output, as_json, quiet, color)


@contextmanager
def duplicate_hint():
    """Submit's and replay's words for the library's refusals, with the option that changes
    them: the duplicate of a pending attempt (--allow-duplicate), parameters that do not fit
    the workflow (--no-check), inputs strict resolution could not resolve (--strict), and an
    interruption before anything was written (exit 130)."""
    from runlog.errors import DuplicateAttemptError, Interrupted, TemplateMismatch, Unresolved

    try:
        yield
    except TemplateMismatch as exc:
        raise TemplateMismatch(f"{exc.message} (--no-check sends them anyway)", exc.problems) from None
    except Unresolved as exc:
        raise Unresolved(f"{exc.message} (--strict refuses to submit)", exc.uris) from None
    except DuplicateAttemptError as exc:
        fix = ("wait for it to finish" if exc.in_flight is not None
               else "`runlog recover` completes it without starting a second run")
        raise DuplicateAttemptError(f"{exc.message}: {fix}, or pass --allow-duplicate to start another run anyway",
                                    exc.request_id, exc.in_flight) from None
    except KeyboardInterrupt:
        raise Interrupted("interrupted before the request was sent; nothing was written") from None


@click.command()
@aws_options
@click.option("--abandon", "abandon_id", metavar="REQUEST_ID",
              help="Record this pending attempt as abandoned (kept, never sent again) instead of sending it.")
@click.option("--reason", help="Why the attempt is abandoned (recorded; with --abandon).")
@click.option("--json", "as_json", is_flag=True, help="Print what happened to each attempt as JSON.")
@click.pass_context
def recover(ctx, profile, region, endpoint_url, abandon_id, reason, as_json):
    """Complete attempts left pending by a crash, an unknown outcome or a lost connection.

    A pending attempt is a request committed to the ledger whose answer was never recorded
    (the process was killed, the service answered 5xx or timed out, the ledger could not be
    written). Each is re-sent with its own requestId: HealthOmics treats a repeated requestId
    with the same request as the same run, so this never starts a second run. The record is
    then written, marked `recovered`. Attempts that a live runlog process is still sending
    are left alone (and listed). An attempt whose s3UriSettings or parametersUri object no
    longer holds the bytes it pinned, or whose inputs are no longer the ones it pinned
    (identified again within resolve_timeout), is not sent (it stays pending; the line says
    what to do).

    Each attempt goes to the region, endpoint and profile recorded with it; --region,
    --endpoint-url and --profile override them. Neither .runlog.toml nor AWS_ENDPOINT_URL /
    AWS_REGION of today redirects a recorded attempt.

    --abandon REQUEST_ID records one pending attempt as abandoned instead: for an attempt
    you know never reached the service. It is kept in the ledger and never sent again (if
    it did start a run after all, `runlog import` records that run).

    \b
    Examples:
      runlog recover
      runlog recover --json
      runlog recover --abandon 0f6b6b1e-5d4c-4b7a-9a51-6f1f7a2f8c10 --reason "sent to the wrong account"

    Exit status: 0 nothing left pending; 1 an attempt is still pending, in flight, or was refused; 2 bad input.
    """
    import runlog.submit
    from runlog.cli.common import require_ledger
    from runlog.submit import Completed, InFlight, Submission, abandon

    config = load_config(ctx)
    if reason is not None and abandon_id is None:
        raise click.UsageError("--reason goes with --abandon REQUEST_ID")
    if abandon_id is not None:
        with require_ledger(config, notice=False) as ledger:
            entry = abandon(ledger, abandon_id.strip(), reason or "")
        if as_json:
            echo_json({"abandoned": abandon_id, "record": entry.address})
        else:
            click.echo(f"abandoned {abandon_id}: recorded as {entry.address[:12]}; it will not be sent")
        return
    ledger = open_ledger(config, create=False, notice=False)
    if ledger is None or not ledger.pending():
        if as_json:
            echo_json({"recovered": [], "still_pending": 0})
        else:
            note("no pending attempts")
        return
    results = []

    def report(intent, result):
        request_id = intent["request"]["requestId"]
        if isinstance(result, Submission):
            results.append({"request_id": request_id, "record": result.entry.address, "response": result.response})
            what = "batch" if result.entry.kind == "batch" else "run"
            line = (f"recovered {request_id}: {what} {result.response.get('id')} "
                    f"(record {result.entry.address[:12]})")
        elif isinstance(result, InFlight):
            results.append({"request_id": request_id, "in_flight": result.owner})
            line = (f"left alone {request_id}: being sent by process {result.owner.get('pid', '?')} on "
                    f"{result.owner.get('host', '?')}")
        elif isinstance(result, Completed):
            address = result.entry.address if result.entry else None
            results.append({"request_id": request_id, "record": address, "completed_elsewhere": True})
            line = f"already recorded {request_id}: record {(address or '?')[:12]} (written by another process)"
        else:
            results.append({"request_id": request_id, "error": command_line(result.message)})
            line = f"not recovered {request_id}: {command_line(result.message)}"
        if not as_json:
            click.echo(line)

    with ledger:
        still = runlog.submit.recover(ledger, lambda recorded: aws_settings(config, profile, region, endpoint_url,
                                                                             recorded=recorded),
                                      on_result=report,
                                      timeout=config.get("resolve_timeout") or runlog.submit.resolve.DEFAULT_TIMEOUT)
    if as_json:
        echo_json({"recovered": results, "still_pending": still})
    if still or any("error" in r for r in results):
        ctx.exit(1)
