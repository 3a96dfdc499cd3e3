"""Submitting a run, crash-safe.

1. Everything is checked (request, region, credentials) before anything is written.
2. The intent (the exact request, with its requestId) is committed to the ledger.
3. StartRun is called.
4. The record (intent + the service's answer) is appended.

A process killed between 2 and 4 leaves a pending attempt; `recover` re-sends the same
request with the same requestId, and the service's idempotency returns the same run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NoReturn

from runlog import __version__, aws, gitcapture, inflight, params, resolve
from runlog import record as rec
from runlog.aws import AwsSettings
from runlog.errors import (
    InternalError,
    LedgerError,
    OperationError,
    PendingError,
    RunlogError,
    ServiceError,
    UsageError,
)
from runlog.ledger import Entry, Ledger
from runlog.startrun import StartRunRequest, check_against_model

# What a pending intent is validated with before it is written (the real outcome comes later).
_PLACEHOLDER_OUTCOME = {"status": "rejected", "error": {"code": "pending", "message": "pending"}}


@dataclass
class Submission:
    """A recorded submission: its ledger entry, StartRun's response (without botocore's
    ResponseMetadata, which is in `metadata`) and the warnings kept in the record."""

    entry: Entry
    response: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    metadata: dict[str, Any] | None = None  # botocore's ResponseMetadata (request id, HTTP status, retries)


@dataclass
class DryRun:
    """What a submission would send and record (nothing sent, nothing written)."""
    intent: dict[str, Any]
    ledger: str | None = None  # the ledger it would be written to


def make_intent(start_request: StartRunRequest, *, kind: str, settings: AwsSettings, git: dict, caller: dict | None,
                warnings: list[str], extra: dict[str, Any] | None = None, check: bool = True) -> dict:
    """The record-to-be, without its outcome; checked against the record schema (check_intent)
    unless `check` is False (the caller checks it)."""
    intent: dict[str, Any] = {
        "format": rec.FORMAT,
        "kind": kind,
        "created": rec.utc_now(),
        "runlog_version": __version__,
        "request": rec.jsonable(start_request.request),
        "parameters": start_request.parameters,
        "git": git,
        "caller": caller,
        "aws": {"region": settings.region, "endpoint_url": aws.public_endpoint(settings.endpoint_url),
                "profile": settings.profile},
        "warnings": warnings,
        **(extra or {}),
    }
    intent["fingerprint"] = rec.fingerprint(intent)
    if check:
        check_intent(intent)
    return intent


def check_intent(intent: dict, inputs: Any = None, found: list[str] | None = None) -> None:
    """InternalError (nothing sent) when the record made of `intent` would break its schema.
    `inputs`: the inputs' identities `intent` holds by reference (runlog/blobs.py), checked
    too: they are made of what the services answered. `found`: what the same check of them
    found where they were resolved (runlog/inputsfork.py)."""
    problems = rec.schema_errors({**intent, "outcome": _PLACEHOLDER_OUTCOME})
    if not problems and inputs is not None:
        problems = rec.inputs_errors(inputs)
    if not problems and found:
        problems = list(found)
    if problems:
        raise InternalError("internal error: the record would break its schema: " + "; ".join(problems[:3]))


def submit(open_ledger: Callable[[], Ledger], start_request: StartRunRequest, *, settings: AwsSettings, git_path,
           kind: str = "submit", extra: dict[str, Any] | None = None, capture_git: bool = True,
           lookup_caller: bool = True, resolve_options: resolve.Options | None = None,
           allow_duplicate: bool = False, warn: Callable[[str], None] = lambda message: None,
           dry_run: bool = False, client_options: dict[str, Any] | None = None, session=None, omics=None,
           clients: dict[str, Any] | None = None, git: dict | None = None,
           workflow: dict | None = None) -> Submission | DryRun:
    """Record and send one StartRun request. `open_ledger` is called only once every check passed.

    Raises DuplicateAttemptError when an identical request is still pending (unless
    allow_duplicate), ServiceError when the service refused (the failed
    attempt is recorded), PendingError when the outcome is unknown (the attempt stays pending).
    With dry_run, every check and resolution is made and the intent returned: `open_ledger`
    (which must then not create a ledger, and may return None) is only read, nothing is sent.
    `client_options` go to the HealthOmics client (timeouts, verify).

    What a caller already has is used instead of being made or asked again: `session` (an
    aws.Session), `omics` (the HealthOmics client to send with), `clients` (resolution_clients'
    answer: the clients that resolve the request), `git` (gitcapture.capture_with_notes' answer) and `workflow`
    (resolve.workflow_identity's answer for this request)."""
    from runlog import background

    pending_git = None
    if git is None and capture_git:
        pending_git = background.start(gitcapture.capture_with_notes, str(git_path))
    sess = session or aws.session(settings)
    omics = omics or aws.client(settings, "omics", sess=sess, **(client_options or {}))
    check_against_model(start_request.request, omics.meta.service_model, start_request.spell)
    settings = AwsSettings(settings.profile, sess.region_name,
                           settings.endpoint_url if settings.pinned
                           else aws.custom_endpoint("omics", settings.endpoint_url, sess), settings.pinned)
    warnings = params.lint(start_request.request.get("parameters"))
    extra = dict(extra or {})
    with ThreadPoolExecutor(max_workers=1) as pool:
        caller_future = pool.submit(aws.caller_identity, settings, sess) if lookup_caller else None
        options = resolve_options or resolve.Options()
        if options.enabled:
            found_clients = clients or resolution_clients(start_request.request, settings, sess, omics, options.timeout)
            extra["resolution"], found = resolve.resolve(start_request.request, found_clients, timeout=options.timeout,
                                                         check=options.check, strict=options.strict,
                                                         workflow=workflow)
            warnings.extend(found)
        captured = git or (pending_git.result() if pending_git
                           else {"git": {"state": "unknown", "reason": "not captured"}})
        caller = caller_future.result() if caller_future else {"unknown": "not asked (caller_identity = false)"}
    git = settle_context(captured, caller, caller_future is not None, warnings, warn)
    intent = make_intent(start_request, kind=kind, settings=settings, git=git, caller=caller,
                         warnings=warnings, extra=extra)
    ledger = open_ledger()
    if dry_run:
        return _dry_run(ledger, intent, warn, allow_duplicate)
    _warn_if_completed(ledger, intent, warn)
    return send_attempt(ledger, intent, omics, send, allow_duplicate=allow_duplicate)


def send_attempt(ledger: Ledger, intent: dict, omics, sender: Callable[..., Any], *, allow_duplicate: bool,
                 encoded: bytes | None = None, checkpoint: bool = True,
                 blobs: Sequence[tuple[str, int, bytes]] = ()):
    """Commit the intent as an attempt and send it with `sender` (StartRun's `send`, or
    StartRunBatch's in runlog/batch.py), holding the attempt's in-flight lock throughout.
    `encoded`: the intent's canonical JSON, when the caller made it; `checkpoint`, `blobs`: see
    Ledger.add_attempt."""
    request_id = intent["request"]["requestId"]
    hold = inflight.take(ledger.path, request_id)  # owned before it is written: recover never races us
    if hold is None:
        raise UsageError(f"request id {request_id!r} is being sent by another process right now; "
                         "leave out the request id or give a new one")
    with hold:
        ledger.add_attempt(intent, allow_duplicate=allow_duplicate, encoded=encoded, checkpoint=checkpoint,
                           blobs=blobs)
        try:
            return sender(ledger, intent, omics)
        except KeyboardInterrupt:  # between the commit and the call: nothing was sent yet
            raise PendingError(f"interrupted before the request was sent; the attempt {request_id} is kept as "
                               f"pending: `recover()` sends it (once), `abandon('{request_id}')` gives it up",
                               request_id, interrupted=True) from None


def _warn_if_completed(ledger: Ledger, intent: dict, warn: Callable[[str], None]) -> None:
    """Say (and keep in the record) when the same configuration already completed."""
    same = ledger.completed_like(intent["fingerprint"])
    if same is not None:
        message = (f"an identical configuration already completed: run {same.run_id} (record {same.address[:12]}, "
                   f"{same.created}); submitting again anyway")
        warn(message)
        intent["warnings"].append(message)


def _dry_run(ledger: Ledger | None, intent: dict, warn: Callable[[str], None], allow_duplicate: bool) -> DryRun:
    """The checks the ledger would make, read only."""
    if ledger is None:
        return DryRun(intent=intent)
    with ledger:
        request_id = intent["request"]["requestId"]
        if ledger.request_id_used(request_id):
            raise UsageError(f"request id {request_id!r} was already used in this ledger: this submission would "
                             "be refused if sent; leave out the request id or give a new one")
        if not allow_duplicate:
            ledger.refuse_pending_duplicate(intent["request"])
        _warn_if_completed(ledger, intent, warn)
        return DryRun(intent=intent, ledger=str(ledger.path) if hasattr(ledger, "path") else None)


class _Clients(dict):
    """The clients resolution uses; the S3 client is made when first asked for (by the
    thread that submits the look-ups), so the look-ups already started (GetWorkflow, omics://
    metadata) wait on the network while it is made, and a request without S3 never makes one."""

    def __init__(self, make_s3: Callable[[], Any], **clients: Any):
        super().__init__(**clients)
        self._make_s3 = make_s3

    def __missing__(self, key: str):
        if key != "s3":
            raise KeyError(key)
        self[key] = made = self._make_s3()
        return made


def resolution_clients(request: dict, settings: AwsSettings, sess, omics, timeout: float) -> dict[str, Any]:
    """The clients that resolve a request's workflow and inputs: HealthOmics, and S3 (bounded
    by the resolution's time budget), made when a look-up first needs it. Submit and replay
    make them here, so both get the same timeouts."""
    return _Clients(lambda: aws.client(settings, "s3", sess=sess, connect_timeout=timeout, read_timeout=timeout,
                                       retries={"total_max_attempts": 2, "mode": "standard"}), omics=omics)


def settle_context(captured: dict, caller: dict, asked_caller: bool, warnings: list[str], warn) -> dict:
    """The git state a record keeps (from gitcapture.capture_with_notes' answer), after adding
    to `warnings` what the capture left out, a caller that could not be told and a missing
    repository; every warning is then handed to `warn`. Submit and submit-batch share it."""
    git = captured["git"]
    warnings.extend(captured.get("notes", ()))  # what the capture left out, kept in the record
    if "unknown" in caller and asked_caller:
        warnings.append(f"caller not recorded: {caller['unknown']}")
    if git["state"] == "none":
        warnings.append(f"no git repository: the record says so ({git.get('reason')})")
    for message in warnings:
        warn(message)
    return git


RECOVER_HINT = ("run `recover()` to complete it (it re-sends the same requestId, so it never starts a second "
                "{noun})")
RETRY_HINT = ("stays pending: run `recover()` again later (the same requestId never starts a second {noun}), "
              "or `abandon('{request_id}')` if it never reached the service")


def settle_failure(exc: Exception | KeyboardInterrupt, intent: dict, operation_model, noun: str, *, recovered: bool,
                   record: Callable[[dict], Entry]) -> NoReturn:
    """What a failed StartRun or StartRunBatch call (`operation_model`; the `noun` it starts,
    "run" or "batch") proves, recorded with `record(outcome)` and raised; the one rule for
    both (send here, batch.send). botocore refusing to send it: an abandoned record
    (UsageError), unless the attempt is re-sent (`recovered`: its first send did leave). The
    service's proven refusal (aws.refusal): a rejected record (ServiceError). Anything else,
    Ctrl-C included: nothing recorded, the attempt stays pending (PendingError)."""
    request_id = intent["request"]["requestId"]
    operation = operation_model.name
    if isinstance(exc, KeyboardInterrupt):
        raise PendingError(f"interrupted while {operation} was being sent: a {noun} may have started; the attempt "
                           f"{request_id} is kept as pending: {RECOVER_HINT.format(noun=noun)}", request_id,
                           interrupted=True) from None
    unsent = None if recovered else aws.not_sent(exc)  # refused by botocore itself: nothing left this machine
    if unsent is not None:
        outcome: dict[str, Any] = {"status": "abandoned", "reason": rec.NOT_SENT + unsent}
        entry = record(outcome)
        raise UsageError(f"{outcome['reason']} (kept in the ledger as abandoned attempt {entry.address[:12]})") \
            from None
    error = aws.refusal(exc, operation_model, resent=recovered)
    if error is None:
        raise PendingError(
            f"{operation}'s outcome is unknown ({aws.describe_failure(exc)}): the {noun} may have started. "
            f"The attempt {request_id} " + (RETRY_HINT.format(request_id=request_id, noun=noun) if recovered
                                              else f"is kept as pending: {RECOVER_HINT.format(noun=noun)}"),
            request_id) from None
    outcome = {"status": "rejected",
               "error": {"code": error.code, "message": error.service_message, "http_status": error.http_status}}
    entry = record(outcome)
    raise ServiceError(error.code, error.service_message, error.http_status, error.operation,
                       record=entry.address) from None


def send(ledger: Ledger, intent: dict, omics, *, recovered: bool = False) -> Submission:
    """Call StartRun with the intent's request and append the record of what happened.

    Only the service's proof of a refusal (aws.refusal) makes a rejected record; any other
    failure leaves the attempt pending (PendingError), because the run may have started."""
    request = intent["request"]
    try:
        response = omics.start_run(**request)
    except (KeyboardInterrupt, Exception) as exc:
        settle_failure(exc, intent, omics.meta.service_model.operation_model("StartRun"), "run",
                       recovered=recovered, record=lambda outcome: _complete(ledger, intent, outcome, run_id=None))
    metadata = response.pop("ResponseMetadata", None)
    outcome = {"status": "submitted", "response": rec.jsonable(response)}
    if recovered:
        outcome["recovered"] = True
    entry = _complete(ledger, intent, outcome, run_id=response.get("id"))
    if entry.run_arn is not None and entry.run_arn != response.get("arn"):
        raise OperationError(f"HealthOmics answered with run {response.get('id')}, but the ledger already records "
                          f"attempt {request['requestId']} as run {entry.run_id} (record {entry.address[:12]}); "
                             "`import_runs()` records the other run")
    return Submission(entry=entry, response=response, warnings=list(intent["warnings"]), metadata=metadata)


def _complete(ledger: Ledger, intent: dict, outcome: dict, run_id: str | None, encoded: bytes | None = None,
              prepared=None, checkpoint: bool = True) -> Entry:
    """Write the attempt's record; when the ledger cannot take it, the attempt stays pending.
    A record that `recover` wrote meanwhile for the same attempt is returned as it is.
    `encoded`: the record's canonical JSON, when the caller made it; `prepared`, `checkpoint`:
    see Ledger.add_record."""
    request_id = intent["request"]["requestId"]
    try:
        return ledger.complete(intent, outcome, encoded=encoded, prepared=prepared, checkpoint=checkpoint)
    except LedgerError as exc:
        started = f"the run was started (id {run_id}) but " if run_id else ""
        raise PendingError(
            f"{started}its record could not be written: {exc.message}; the attempt {request_id} stays "
            "pending: run `recover()` once the ledger is writable (it records the run without starting "
            "another)", request_id, run_id=run_id) from None


@dataclass
class InFlight:
    """An attempt that recover left alone because a live process owns it."""

    owner: dict


@dataclass
class Completed:
    """An attempt that was completed by another process while recover was looking at it."""

    entry: Entry | None


def recover(ledger: Ledger, settings_for: Callable[[dict], AwsSettings],
            on_result: Callable[[dict, Submission | RunlogError | InFlight | Completed], None]
            = lambda intent, result: None, session_for: Callable[[AwsSettings], Any] | None = None,
            timeout: float = resolve.DEFAULT_TIMEOUT) -> int:
    """Re-send every pending attempt that no live process owns, with its own requestId, to
    the AWS settings `settings_for(intent["aws"])` gives (see aws.settings_for). Returns how
    many attempts are still pending. `session_for(settings)` gives the session to send with
    (default: one made from the settings, see aws.session). An attempt whose pinned object
    or inputs are no longer what it pinned is not sent (check_pinned_object,
    check_pinned_inputs: `timeout` seconds to identify the inputs again)."""
    for intent in ledger.pending():
        request_id = intent["request"]["requestId"]
        hold = inflight.take(ledger.path, request_id)
        if hold is None:
            on_result(intent, InFlight(inflight.owner(ledger.path, request_id) or {}))
            continue
        with hold:
            if not ledger.is_pending(request_id):
                found = ledger.by_request_id(request_id)
                on_result(intent, Completed(found))
                continue
            try:
                lost = ledger.missing_blobs(intent)
                if lost:  # its record could not be written: a batch sent again would run unrecorded
                    raise _held_back(request_id, f"the ledger lacks blob {lost[0][:12]}, part of its cohort, so its "
                                     "record could not be written", "restore the ledger from a backup or pull the "
                                     "team ledger it was pushed to")
                settings = settings_for(intent["aws"])
                sess = session_for(settings) if session_for else None
                omics = aws.client(settings, "omics", sess=sess)
                sender = send
                if intent.get("kind") == "batch":  # a StartRunBatch attempt (runlog/batch.py)
                    from runlog.batch import send as sender
                make_s3 = partial(aws.client, settings, "s3", sess=sess)
                check_pinned_object(intent, make_s3)
                check_pinned_inputs(intent, _Clients(make_s3, omics=omics), timeout, ledger.blob)
                result: Submission | RunlogError = sender(ledger, intent, omics, recovered=True)
            except RunlogError as exc:
                result = exc
        on_result(intent, result)
    return len(ledger.pending())


def check_pinned_object(intent: dict, s3_client: Callable[[], Any]) -> None:
    """Before a pending attempt is sent again (recover): the S3 object whose content its
    record holds as what ran (a batch's s3UriSettings file, a run's parametersUri) must still
    hold the bytes the intent pinned. The service reads the object when it starts the batch
    or run: sent over other bytes, one the first send never started would run other settings
    than its record says. RunlogError (the attempt stays pending) when the object changed or
    cannot be read now; nothing to compare when it was not read at submission. `s3_client()`
    gives an S3 client (made only when there is an object to read)."""
    request = intent["request"]
    if intent.get("kind") == "batch":
        from runlog.batch import SETTINGS_FILE_LIMIT

        uri = (request.get("batchRunSettings") or {}).get("s3UriSettings")
        pinned = (intent.get("batch") or {}).get("settings_file") or {}
        what, limit, started = "settings file", SETTINGS_FILE_LIMIT, "a batch"
    else:
        uri = request.get("parametersUri")
        pinned = (intent.get("resolution") or {}).get("parameters_file") or {}
        what, limit, started = "parameters file", resolve.PARAMETERS_FILE_LIMIT, "a run"
    if not uri or not pinned.get("sha256"):
        return
    found, _ = resolve.read_object(s3_client(), uri, limit)
    if found.get("sha256") == pinned["sha256"]:
        return
    request_id = request["requestId"]
    now = (f"now sha256 {found['sha256'][:12]}…" if found.get("sha256") else
           f"it cannot be read now ({found['error']['code']}: {found['error']['message']})")
    version = f" (VersionId {pinned['version_id']})" if pinned.get("version_id") else ""
    raise _held_back(request_id, f"its {what} {uri} held sha256 {pinned['sha256'][:12]}… when it was made, {now}, "
                                 f"and {started} started from other bytes would not run what its record says",
                     "put the pinned bytes back" + version)


def check_pinned_inputs(intent: dict, clients: dict, timeout: float,
                        load: Callable[[str], bytes] | None = None) -> None:
    """Before a pending attempt is sent again (recover): the inputs whose identities the
    intent pinned must still be those (replay.input_drift's rule; a batch's identified in
    bulk, as submit-batch identifies them). The record will state those identities as what
    the run read: if the first send started nothing, a run started now reads what the inputs
    hold now. RunlogError (the attempt stays pending) naming how many changed and the first;
    an input that cannot be identified now (its error, or the time budget) counts as changed.
    `load`: Ledger.blob, for a batch's intent holding its inputs by reference (runlog/blobs.py)."""
    import time

    from runlog import blobs
    from runlog.replay import input_drift

    recorded = blobs.value_of(intent, blobs.INPUTS, load or _no_blobs) or {}
    if not recorded:
        return
    if intent.get("kind") == "batch":
        from runlog.batch import input_identities

        now = input_identities(list(recorded), clients, deadline=time.monotonic() + timeout)
    else:
        now = resolve.resolve_inputs(list(recorded), clients, timeout=timeout)
    drift, _ = input_drift(recorded, now)
    if not drift:
        return
    request_id = intent["request"]["requestId"]
    first = drift[0]
    raise _held_back(request_id, f"{len(drift)} of the inputs it pinned are not as they were when it was made (the "
                                 f"first: {first['what']}: {first['recorded']} then, {first['current']} now), and a "
                                 "run started now would not read what its record says", "put them back")


def _no_blobs(sha256: str) -> bytes:
    raise RunlogError(f"the attempt holds its inputs in blob {sha256[:12]} and no ledger was given to read it")


def _held_back(request_id: str, why: str, fix: str) -> RunlogError:
    """The error recover leaves a pending attempt with when it does not send it again (what
    it pinned is no longer so): `why`, then `fix` and the ways on."""
    return RunlogError(f"attempt {request_id} is not sent again: {why}; {fix} and run `recover()` again, or "
                       f"`abandon('{request_id}')` (if the first send started it, `import_runs()` records it)")


def abandon(ledger: Ledger, request_id: str, reason: str) -> Entry:
    """Record a pending attempt as abandoned: kept in the ledger, never sent again. For
    attempts that never reached the service; if one did, its run is in no record (import it)."""
    hold = inflight.take(ledger.path, request_id)
    if hold is None:
        owner = inflight.owner(ledger.path, request_id) or {}
        raise UsageError(f"attempt {request_id} is in flight in process {owner.get('pid', '?')}: "
                         "it cannot be abandoned while it is being sent")
    with hold:
        intent = next((i for i in ledger.pending() if i["request"]["requestId"] == request_id), None)
        if intent is None:
            raise UsageError(f"no pending attempt has request id {request_id!r} (`log()` lists records; "
                             "`recover()` completes what is pending)", option="request_id")
        return ledger.complete(intent, {"status": "abandoned", "reason": reason or "abandoned by the user",
                                        "abandoned_at": rec.utc_now()})
