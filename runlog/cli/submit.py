"""`runlog submit` and `runlog recover`."""

from __future__ import annotations

import json

import click

from runlog.cli.common import aws_options, aws_settings, echo_json, load_config, note, open_ledger, warn
from runlog.startrun import OPTIONS


def startrun_options(func):
    """Every `aws omics start-run` option, same spelling and meaning."""
    for option in reversed(OPTIONS):
        kind = int if option.kind == "int" else str
        func = click.option(option.flag, option.member, type=kind, default=None, help=option.help)(func)
    return func


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
        import jmespath

        try:
            value = jmespath.search(query, response)
        except jmespath.exceptions.JMESPathError as exc:
            raise click.BadParameter(str(exc), param_hint="--query") from None
    if output == "text":
        click.echo(_text(value))
    elif value is not None:
        click.echo(json.dumps(value, indent=4, ensure_ascii=False, default=str))


def _text(value) -> str:
    if value is None:
        return "None"
    if isinstance(value, dict):
        return "\t".join(_text(value[k]) for k in sorted(value) if not isinstance(value[k], (dict, list)))
    if isinstance(value, list):
        return "\t".join(_text(v) for v in value)
    return str(value)


def resolve_options(func):
    """--no-resolve, --no-check, --strict, --resolve-timeout (shared by submit and replay)."""
    func = click.option("--resolve-timeout", type=click.FloatRange(min=0.1), default=None,
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
    func = click.option("--quiet", "-q", is_flag=True, help="Print only the run id.")(func)
    func = click.option("--json", "as_json", is_flag=True,
                        help="Print runlog's JSON: the record address, the response and warnings.")(func)
    func = click.option("--output", type=click.Choice(["json", "text"]), default="json", show_default=True,
                        help="Format of the response, as the aws CLI's --output.")(func)
    func = click.option("--query", help="JMESPath query on the response, as the aws CLI's --query "
                        "(e.g. --query id --output text).")(func)
    func = click.option("--no-cli-pager", is_flag=True, hidden=True, help="Accepted for aws CLI compatibility.")(func)
    return func


@click.command(context_settings={"max_content_width": 100})
@startrun_options
@click.option("--cli-input-json", help="The whole request as JSON, inline or file://PATH; flags override it.")
@aws_options
@resolve_options
@output_options
@click.pass_context
def submit(ctx, cli_input_json, profile, region, endpoint_url, no_resolve, no_check, strict, resolve_timeout,
           query, output, as_json, quiet, no_cli_pager, **members):
    """Start a HealthOmics run and record it: a drop-in for `aws omics start-run`.

    Takes every `start-run` option with the same spelling and meaning and prints the same
    response JSON. Before StartRun is called, the exact request (with its requestId), the
    resolved parameters and the git state of the analysis repository are committed to the
    ledger; the response is appended after. Defaults for --role-arn, --output-uri and --tags
    may come from .runlog.toml.

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
      RUN_ID=$(runlog submit --cli-input-json file://run.json --query id --output text)

    Exit status: 0 submitted; 1 the service rejected the request (kept as a failed attempt) or
    could not be reached (kept as pending: see `runlog recover`); 2 bad input (nothing written).
    """
    from runlog.startrun import build_request
    from runlog.submit import submit as do_submit

    config = load_config(ctx)
    built = build_request(
        members,
        cli_input_json=cli_input_json,
        defaults={"roleArn": config.get("role_arn"), "outputUri": config.get("output_uri"),
                  "tags": config.get("tags")},
    )
    settings = aws_settings(config, profile, region, endpoint_url)
    result = do_submit(lambda: open_ledger(config, create=True), built, settings=settings,
                       git_path=config.git_repo, lookup_caller=config.get("caller_identity", True),
                       resolve_options=make_resolve_options(config, no_resolve, no_check, strict, resolve_timeout),
                       warn=warn)
    print_response(result.response, query, output, as_json, quiet, result.entry.address, result.warnings)


@click.command()
@aws_options
@click.option("--json", "as_json", is_flag=True, help="Print what happened to each attempt as JSON.")
@click.pass_context
def recover(ctx, profile, region, endpoint_url, as_json):
    """Complete attempts left pending by a crash or a lost connection.

    A pending attempt is a request committed to the ledger whose answer was never recorded
    (the process was killed, or the service could not be reached). Each is re-sent with its
    own requestId: HealthOmics treats a repeated requestId with the same request as the same
    run, so this never starts a second run. The record is then written, marked `recovered`.
    Region, profile and endpoint default to those recorded with the attempt.

    \b
    Examples:
      runlog recover
      runlog recover --json
    """
    from runlog.submit import Submission, recover as do_recover

    config = load_config(ctx)
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
            if not as_json:
                click.echo(f"recovered {request_id}: run {result.response.get('id')} "
                           f"(record {result.entry.address[:12]})")
        else:
            results.append({"request_id": request_id, "error": result.message})
            if not as_json:
                click.echo(f"not recovered {request_id}: {result.message}")

    with ledger:
        still = do_recover(ledger, aws_settings(config, profile, region, endpoint_url), on_result=report)
    if as_json:
        echo_json({"recovered": results, "still_pending": still})
    if still or any("error" in r for r in results):
        ctx.exit(1)
