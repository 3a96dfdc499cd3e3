"""Submitting a run, crash-safe.

1. Everything is checked (request, region, credentials) before anything is written.
2. The intent (the exact request, with its requestId) is committed to the ledger.
3. StartRun is called.
4. The record (intent + the service's answer) is appended.

A process killed between 2 and 4 leaves a pending attempt; `recover` re-sends the same
request with the same requestId, and the service's idempotency returns the same run."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from runlog import __version__, aws, gitcapture, params, resolve
from runlog import record as rec
from runlog.aws import AwsSettings
from runlog.errors import LedgerError, RunlogError, ServiceError
from runlog.ledger import Entry, Ledger
from runlog.startrun import Built, check_against_model

# What a pending intent is validated with before it is written (the real outcome comes later).
_PLACEHOLDER_OUTCOME = {"status": "rejected", "error": {"code": "pending", "message": "pending"}}


@dataclass
class Submission:
    entry: Entry
    response: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


@dataclass
class DryRun:
    """What a submission would send and record (nothing sent, nothing written)."""
    intent: dict[str, Any]
    ledger: str | None = None  # the ledger it would be written to


def make_intent(built: Built, *, kind: str, settings: AwsSettings, git: dict, caller: dict | None,
                warnings: list[str], extra: dict[str, Any] | None = None) -> dict:
    """The record-to-be, without its outcome."""
    intent: dict[str, Any] = {
        "format": rec.FORMAT,
        "kind": kind,
        "created": rec.utc_now(),
        "runlog_version": __version__,
        "request": rec.jsonable(built.request),
        "parameters": built.parameters,
        "git": git,
        "caller": caller,
        "aws": {"region": settings.region, "endpoint_url": aws.public_endpoint(settings.endpoint_url),
                "profile": settings.profile},
        "warnings": warnings,
        **(extra or {}),
    }
    intent["fingerprint"] = rec.fingerprint(intent)
    problems = rec.schema_errors({**intent, "outcome": _PLACEHOLDER_OUTCOME})
    if problems:
        raise RunlogError("internal error: the record would break its schema: " + "; ".join(problems[:3]))
    return intent


def submit(open_ledger: Callable[[], Ledger], built: Built, *, settings: AwsSettings, git_path,
           kind: str = "submit", extra: dict[str, Any] | None = None, capture_git: bool = True,
           lookup_caller: bool = True, resolve_options: "resolve.Options | None" = None,
           warn: Callable[[str], None] = lambda message: None, dry_run: bool = False,
           client_options: dict[str, Any] | None = None) -> Submission | DryRun:
    """Record and send one StartRun request. `open_ledger` is called only once every check passed.
    With dry_run, every check and resolution is made and the intent returned: `open_ledger`
    (which must then not create a ledger, and may return None) is only read, nothing is sent.
    `client_options` go to the HealthOmics client (timeouts, verify)."""
    from runlog import background

    pending_git = background.start(gitcapture.capture, str(git_path)) if capture_git else None
    sess = aws.session(settings)
    omics = aws.client(settings, "omics", sess=sess, **(client_options or {}))
    check_against_model(built.request, omics.meta.service_model)
    settings = AwsSettings(settings.profile, sess.region_name, aws.custom_endpoint("omics", settings.endpoint_url))
    warnings = params.lint(built.request.get("parameters"))
    extra = dict(extra or {})
    with ThreadPoolExecutor(max_workers=1) as pool:
        caller_future = pool.submit(aws.caller_identity, settings, sess) if lookup_caller else None
        options = resolve_options or resolve.Options()
        if options.enabled:
            extra["resolution"], found = _resolve(built.request, settings, sess, omics, options)
            warnings.extend(found)
        git = pending_git.result() if pending_git else {"state": "unknown", "reason": "not captured"}
        caller = caller_future.result() if caller_future else None
    if git["state"] == "none":
        warnings.append(f"no git repository: the record says so ({git.get('reason')})")
    for message in warnings:
        warn(message)
    intent = make_intent(built, kind=kind, settings=settings, git=git, caller=caller,
                         warnings=warnings, extra=extra)
    ledger = open_ledger()
    if dry_run:
        return _dry_run(ledger, intent, warn)
    same = ledger.completed_like(intent["fingerprint"])
    if same is not None:
        message = (f"an identical configuration already completed: run {same.run_id} (record {same.address[:12]}, "
                   f"{same.created}); submitting again anyway")
        warn(message)
        intent["warnings"].append(message)
    ledger.add_attempt(intent)
    return send(ledger, intent, omics)


def _dry_run(ledger: Ledger | None, intent: dict, warn: Callable[[str], None]) -> DryRun:
    """The checks the ledger would make, read only."""
    if ledger is None:
        return DryRun(intent=intent)
    with ledger:
        request_id = intent["request"]["requestId"]
        used = ledger.conn.execute("SELECT 1 FROM attempts WHERE request_id = ?", (request_id,)).fetchone()
        if used:
            raise RunlogError(f"request id {request_id!r} was already used in this ledger: without --dry-run "
                              "this submission would be refused; leave out --request-id or give a new one",
                              exit_code=2)
        same = ledger.completed_like(intent["fingerprint"])
        if same is not None:
            message = (f"an identical configuration already completed: run {same.run_id} (record "
                       f"{same.address[:12]}, {same.created}); submitting again anyway")
            warn(message)
            intent["warnings"].append(message)
        return DryRun(intent=intent, ledger=str(ledger.path) if hasattr(ledger, "path") else None)


def _resolve(request: dict, settings: AwsSettings, sess, omics, options) -> tuple[dict, list[str]]:
    """Workflow and input identities (runlog.resolve), with clients bounded by the time budget."""
    clients = {"omics": omics}
    if any(uri.startswith("s3://") for uri in resolve.input_uris(request.get("parameters"))):
        clients["s3"] = aws.client(settings, "s3", sess=sess, connect_timeout=options.timeout,
                                   read_timeout=options.timeout, retries={"total_max_attempts": 2, "mode": "standard"})
    return resolve.resolve(request, clients, timeout=options.timeout, check=options.check, strict=options.strict)


def send(ledger: Ledger, intent: dict, omics, *, recovered: bool = False) -> Submission:
    """Call StartRun with the intent's request and append the record of what happened."""
    request = intent["request"]
    try:
        response = omics.start_run(**request)
    except Exception as exc:
        if aws.is_transport_error(exc):
            raise RunlogError(
                f"could not reach HealthOmics ({exc}); the attempt {request['requestId']} is kept as pending: "
                "run `runlog recover` once the service is reachable (it will not start a second run)",
                exit_code=1,
            ) from None
        error = aws.error_from(exc, "StartRun")
        code = error.code if isinstance(error, ServiceError) else type(exc).__name__
        status = error.http_status if isinstance(error, ServiceError) else None
        message = error.service_message if isinstance(error, ServiceError) else error.message
        outcome = {"status": "rejected", "error": {"code": code, "message": message, "http_status": status}}
        if recovered:
            outcome["recovered"] = True
        entry = _complete(ledger, intent, outcome, run_id=None)
        raise RunlogError(f"{error.message} (kept in the ledger as failed attempt {entry.address[:12]})",
                          exit_code=1) from None
    response.pop("ResponseMetadata", None)
    outcome = {"status": "submitted", "response": rec.jsonable(response)}
    if recovered:
        outcome["recovered"] = True
    entry = _complete(ledger, intent, outcome, run_id=response.get("id"))
    return Submission(entry=entry, response=response, warnings=list(intent["warnings"]))


def _complete(ledger: Ledger, intent: dict, outcome: dict, run_id: str | None) -> Entry:
    try:
        return ledger.complete(intent, outcome)
    except LedgerError as exc:
        started = f"the run was started (id {run_id}) but " if run_id else ""
        raise RunlogError(
            f"{started}its record could not be written: {exc.message}; the attempt "
            f"{intent['request']['requestId']} stays pending: run `runlog recover` once the ledger is writable",
            exit_code=1,
        ) from None


def recover(ledger: Ledger, settings: AwsSettings | None = None,
            on_result: Callable[[dict, Submission | RunlogError], None] = lambda intent, result: None) -> int:
    """Re-send every pending attempt with its own requestId. Returns how many are still pending."""
    for intent in ledger.pending():
        recorded = intent["aws"]
        use = AwsSettings(
            profile=(settings.profile if settings and settings.profile else recorded.get("profile")),
            region=(settings.region if settings and settings.region else recorded.get("region")),
            endpoint_url=(settings.endpoint_url if settings and settings.endpoint_url
                          else recorded.get("endpoint_url")),
        )
        try:
            result: Submission | RunlogError = send(ledger, intent, aws.client(use, "omics"), recovered=True)
        except RunlogError as exc:
            result = exc
        on_result(intent, result)
    return len(ledger.pending())
