"""Records for runs started without runlog, reconstructed from GetRun.

An imported record holds the StartRun request that would start the same run (members
copied from GetRun), `git.state = "unknown"`, the caller from GetRun's `startedBy`, and in
`source_run` the parts of GetRun that never change. What does change (status, times,
digests) is appended as an observation. Two people importing the same run therefore
write the same record, so shared ledgers merge without duplicates."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from runlog import __version__
from runlog import record as rec
from runlog.arn import parse_run_arn
from runlog.errors import LedgerError, RunlogError
from runlog.ledger import Entry, Ledger
from runlog.observe import SOURCE

# GetRun member -> StartRun member, for every setting StartRun takes.
REQUEST_MEMBERS = (
    "workflowId", "workflowType", "workflowOwnerId", "workflowVersionName", "roleArn", "name", "runGroupId",
    "priority", "parameters", "storageCapacity", "storageType", "outputUri", "logLevel", "retentionMode",
    "cacheId", "cacheBehavior", "networkingMode", "tags", "engineSettings", "scratchStorageMode",
    "outputUriPrefixMode", "requesterPaysEnabled", "sessionPolicy", "parametersUri",
)
# GetRun members that are fixed once the run exists.
STABLE_MEMBERS = REQUEST_MEMBERS + (
    "id", "arn", "uuid", "runId", "creationTime", "startedBy", "runOutputUri", "configuration", "batchId",
)


def request_from_run(run: dict[str, Any]) -> dict[str, Any]:
    """The StartRun request that starts the same computation as the run GetRun describes.
    READY2RUN runs keep workflowType READY2RUN (PRIVATE, the default, is left out); storage
    capacity is kept only for STATIC storage; a parameters file (parametersUri) only when
    GetRun gives no parameters."""
    request = {m: run[m] for m in REQUEST_MEMBERS if run.get(m) not in (None, "", {})}
    if request.get("workflowType") == "PRIVATE":
        del request["workflowType"]  # the default: StartRun without it means the same
    if request.get("storageType") == "DYNAMIC":
        request.pop("storageCapacity", None)
    if request.get("requesterPaysEnabled") is False:
        del request["requesterPaysEnabled"]  # the default
    if "parameters" in request:
        request.pop("parametersUri", None)  # StartRun takes one; the parameters are what the run read
    configuration = run.get("configuration") or {}
    if configuration.get("name"):
        request["configurationName"] = configuration["name"]
    return request


def _timestamp(value: str | None) -> str:
    """GetRun's creationTime as the record's `created` (ISO 8601 UTC, milliseconds)."""
    if not value:
        return rec.utc_now()
    return rec.timestamp(rec.parse_timestamp(value))


def import_record(run: dict[str, Any], endpoint_url: str | None = None) -> dict[str, Any]:
    """An `import` record for a run described by GetRun (as plain JSON), fetched from
    `endpoint_url` (None: AWS's own HealthOmics endpoint)."""
    arn = parse_run_arn(run.get("arn"))
    started_by = run.get("startedBy")
    caller = None
    if started_by:
        account = started_by.split(":")[4] if started_by.count(":") >= 5 else (arn.account if arn else "")
        caller = {"arn": started_by, "account": account, "user_id": None}
    record: dict[str, Any] = {
        "format": rec.FORMAT,
        "kind": "import",
        "created": _timestamp(run.get("creationTime")),
        "runlog_version": __version__,
        "request": request_from_run(run),
        "parameters": {"source": "service", "argument": None},
        "git": {"state": "unknown", "reason": "the run was started without runlog"},
        "caller": caller,
        "aws": {"region": arn.region if arn else None, "endpoint_url": endpoint_url, "profile": None},
        "warnings": [],
        "source_run": {m: run[m] for m in STABLE_MEMBERS if run.get(m) not in (None, "", {})},
        "outcome": {"status": "submitted", "response": {
            k: run[k] for k in ("id", "uuid", "arn", "runOutputUri", "tags") if run.get(k) is not None}},
    }
    record["fingerprint"] = rec.fingerprint(record)
    return record


def uuid_problem(run: dict[str, Any]) -> str | None:
    """Why runlog cannot tell this run (a GetRun answer) from others, or None: its uuid is what
    a record names it by and what the ledger looks it up by, as text; SQLite would take a
    number 1 for the text "1" of another run."""
    value = run.get("uuid")
    if isinstance(value, str) and value:
        return None
    if value is None:
        return "GetRun gave no uuid"
    if value == "":
        return "GetRun's uuid is empty"
    from runlog.startrun import _json_kind

    return f"GetRun's uuid is {_json_kind(value)} ({json.dumps(value)[:40]}), not text"


def not_importable(run: dict[str, Any], problem: str) -> str:
    """The line saying that a run is not imported, and why."""
    from runlog.textsafe import terminal_safe

    return (f"run {terminal_safe(str(run.get('id')))[:40]} not imported: {problem}; runlog tells runs apart by "
            "their uuid and cannot record this one")


def _pending_run(intents: list[dict], run: dict[str, Any]) -> bool:
    """Whether a pending StartRun attempt may have started this run: one made before the run
    was created, asking for the same workflow (or source run), role, output location and, if
    it named one, name (GetRun does not give the requestId). `runlog recover` settles the
    attempt with its own requestId and records the run; importing it too would record it twice."""
    created = as_time(run.get("creationTime"))
    for intent in intents:
        request = intent.get("request") or {}
        made = as_time(intent.get("created"))
        if created is not None and made is not None and made - created > timedelta(minutes=5):  # clock skew
            continue
        source = "runId" if request.get("runId") else "workflowId"
        if all(request.get(m) == run.get(m) for m in (source, "roleArn", "outputUri")) and \
                (not request.get("name") or request["name"] == run.get("name")):
            return True
    return False


def import_run(ledger: Ledger, run: dict[str, Any], endpoint_url: str | None = None) -> tuple[Entry, bool]:
    """Record a run (GetRun body, fetched from endpoint_url) unless its uuid is already in the
    ledger. Returns (entry, added); a new record also gets the GetRun body as its first
    observation. A run whose uuid is not text is refused (LedgerError), never looked up."""
    problem = uuid_problem(run)
    if problem:
        raise LedgerError(not_importable(run, problem))
    existing = ledger.by_run_uuid(run["uuid"])
    if existing is not None:
        return existing, False
    record = import_record(run, endpoint_url)
    if not rec.is_valid(record):  # GetRun's members are copied as given, never made to fit
        from runlog.textsafe import terminal_safe

        raise LedgerError(f"run {terminal_safe(str(run.get('id')))} not recorded: GetRun answered what a StartRun "
                          f"request cannot hold ({'; '.join(rec.schema_errors(record)[:3])}); runlog records the "
                          "service's answer as given or not at all")
    entry, added = ledger.add_record(record)
    if added:
        ledger.observe(entry.address, SOURCE, run, run_uuid=run["uuid"], status=run.get("status"))
    return entry, added


# -- the use case: list the runs, leave out those the ledger holds, fetch and record the rest ----

# A run whose ARN is in the ledger is the recorded run when its creation time matches; for a
# record that never saw the service's creationTime, when it was submitted within this long of it.
SUBMIT_TO_CREATION = timedelta(hours=1)


@dataclass
class ImportResult:
    """What `import_runs` did: how many runs ListRuns listed, the runs recorded (record,
    run_id, run_uuid, status, name), how many the ledger already held, and the error that
    stopped the fetching part way (what was fetched before it is recorded); `batches`, what
    import_batches did before it, when it was asked to."""

    listed: int
    imported: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    failure: RunlogError | None = None
    batches: BatchImportResult | None = None  # the batches recorded first (import_batches)
    # runs GetRun described so that runlog cannot record them (uuid_problem): run_id, reason, line
    not_imported: list[dict[str, str]] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # run ids left to `runlog recover` (_pending_run)

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"listed": self.listed, "imported": self.imported, "skipped": self.skipped}
        if self.not_imported:
            found["not_imported"] = [{"run_id": n["run_id"], "reason": n["reason"]} for n in self.not_imported]
        if self.pending:
            found["pending"] = self.pending
        return found if self.batches is None else {**found, "batches": self.batches.as_dict()}


def as_time(value: Any) -> datetime | None:
    """A ListRuns/GetRun time (datetime or ISO 8601 text) as an aware datetime; None if unreadable."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not value:
        return None
    try:
        return rec.parse_timestamp(value)
    except (TypeError, ValueError, AttributeError):
        return None


def is_known(item: dict, times: dict) -> bool:
    """Whether the ledger already holds the run a ListRuns item describes, without GetRun.
    Run ids (and so ARNs) are reused after a deletion: the creation time tells them apart.
    `times` is Ledger.run_creation_times()."""
    created = as_time(item.get("creationTime"))
    for record_created, service_created in times.get(item.get("arn"), ()):
        recorded = as_time(service_created)
        if created is None:
            return True
        if recorded is not None:
            if abs(recorded - created) < timedelta(seconds=1):
                return True
        elif (submitted := as_time(record_created)) and abs(submitted - created) <= SUBMIT_TO_CREATION:
            return True
    return False


def list_runs(omics, *, status: str | None = None, run_group_id: str | None = None,
              since: datetime | None = None) -> list[dict]:
    """Every ListRuns item (all pages), filtered by status, run group and creation time."""
    filters = {k: v for k, v in (("status", status), ("runGroupId", run_group_id)) if v}
    return _list_all(omics, "list_runs", "ListRuns", filters, since, "creationTime")


def _list_all(omics, method: str, operation: str, filters: dict, since: datetime | None, created: str) -> list[dict]:
    """Every item of a paged List call, those created since `since` (items without the time kept)."""
    from runlog import aws

    try:
        items = [item for page in aws.pages(omics.get_paginator(method).paginate(**filters), operation)
                 for item in page["items"]]
    except Exception as exc:
        raise aws.error_from(exc, operation) from None
    if since:
        items = [item for item in items if (as_time(item.get(created)) or since) >= since]
    return items


def import_runs(ledger: Ledger, omics, items: list[dict], *, endpoint_url: str | None = None, jobs: int = 16,
                progress=None, skip_batches: set[str] | frozenset[str] = frozenset()) -> ImportResult:
    """Record the listed runs the ledger does not hold (GetRun for each, `jobs` at a time),
    oldest first; a finished run also gets its tasks (ListRunTasks). Runs of a batch the
    ledger records, or of a batch in `skip_batches`, are left out. A failure while
    fetching is kept in the result's `failure`: what was fetched before it is recorded, and
    a rerun fetches the rest. `endpoint_url` is the HealthOmics endpoint to record."""
    from runlog.errors import ServiceError
    from runlog.observe import TERMINAL, get_run, observe_tasks
    from runlog.sync import no_progress, run_concurrently

    def fetch(item):
        try:
            return get_run(omics, item["id"])
        except ServiceError as exc:
            if exc.code == "ResourceNotFoundException":  # deleted since it was listed
                return None
            raise

    result = ImportResult(listed=len(items))
    times = ledger.run_creation_times()
    # runs of a batch in the ledger are its members: refreshing the batch records them
    batches = ledger.batch_ids() | set(skip_batches)
    unseen = [item for item in items if not is_known(item, times) and item.get("batchId") not in batches]
    result.skipped = len(items) - len(unseen)
    runs = []
    try:
        for _, run in run_concurrently(unseen, fetch, jobs=jobs, progress=progress or no_progress, label="importing"):
            if run is not None:
                runs.append(run)
    except RunlogError as exc:  # keep what was fetched: a rerun fetches the rest
        result.failure = exc
    told_apart = []
    intents = [i for i in ledger.pending() if i.get("kind") != "batch"]
    for run in runs:
        if problem := uuid_problem(run):  # never looked up by such a uuid, nor sorted with the others
            result.not_imported.append({"run_id": str(run.get("id")), "reason": problem,
                                        "line": not_importable(run, problem)})
        elif intents and _pending_run(intents, run) and ledger.by_run_uuid(run["uuid"]) is None:
            result.pending.append(str(run.get("id")))
        else:
            told_apart.append(run)
    for run in sorted(told_apart, key=lambda r: (r.get("creationTime") or "", r["uuid"])):
        entry, added = import_run(ledger, run, endpoint_url)
        if added and run.get("status") in TERMINAL:
            observe_tasks(ledger, entry, omics, run)
        if added:
            result.imported.append({"record": entry.address, "run_id": entry.run_id, "run_uuid": entry.run_uuid,
                                    "status": run.get("status"), "name": run.get("name")})
        else:
            result.skipped += 1
    return result


# -- batches started without runlog (ListBatch) ---------------------------------------------------

# GetBatch members that are fixed once the batch exists (status, summaries and times change:
# they are observations).
BATCH_STABLE_MEMBERS = ("id", "arn", "uuid", "name", "tags", "totalRuns", "defaultRunSetting", "creationTime")
BATCH_UNSEEN = ("the batch was started without runlog: its StartRunBatch request was not seen, so its requestId "
                "and run settings (batchRunSettings) are unknown and left out; each member records the default "
                "setting only")  # each member's own settings, from GetRun, are observations (runlog.membersettings)


def import_batch_record(batch: dict[str, Any], endpoint_url: str | None = None) -> dict[str, Any]:
    """A batch record for a batch GetBatch describes (as plain JSON), started without runlog:
    what GetBatch tells of its request (batchName, tags, defaultRunSetting), nothing invented.
    Its requestId and run settings were never seen and are absent; `source_batch` holds what
    does not change of GetBatch, `warnings` says what is not known. A pure function of
    GetBatch's stable members: two ledgers importing the same batch write the same record."""
    arn = batch.get("arn") or ""
    parts = arn.split(":")
    region = parts[3] if len(parts) > 5 and parts[3] else None
    request: dict[str, Any] = {"defaultRunSetting": batch.get("defaultRunSetting") or {}}
    if batch.get("name"):
        request["batchName"] = batch["name"]
    if batch.get("tags"):
        request["tags"] = batch["tags"]
    record: dict[str, Any] = {
        "format": rec.FORMAT,
        "kind": "batch",
        "created": _timestamp(batch.get("creationTime")),
        "runlog_version": __version__,
        "request": request,
        "parameters": {"source": "service", "argument": None},
        "git": {"state": "unknown", "reason": "the batch was started without runlog"},
        "caller": {"unknown": "the batch was started without runlog; GetBatch does not say by whom"},
        "aws": {"region": region, "endpoint_url": endpoint_url, "profile": None},
        "warnings": [BATCH_UNSEEN],
        "source_batch": {m: batch[m] for m in BATCH_STABLE_MEMBERS if batch.get(m) not in (None, "", {})},
        "batch": {"runs": int(batch.get("totalRuns") or 0)},
        "outcome": {"status": "submitted", "response": {
            k: batch[k] for k in ("id", "arn", "uuid", "tags") if batch.get(k) is not None}},
    }
    record["fingerprint"] = rec.fingerprint(record)
    return record


def list_batches(omics, *, run_group_id: str | None = None, since: datetime | None = None) -> list[dict]:
    """Every ListBatch item (all pages), of this run group and created since `since`."""
    filters = {"runGroupId": run_group_id} if run_group_id else {}
    return _list_all(omics, "list_batch", "ListBatch", filters, since, "createdAt")


@dataclass
class BatchImportResult:
    """What `import_batches` did: how many batches ListBatch listed, the batches recorded
    (record, batch_id, status, runs, members_added), how many the ledger already held, how
    many were left for `runlog recover` (a pending submit-batch may be them), and the error
    that stopped it part way (what was recorded before it stays)."""

    listed: int
    imported: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    pending: list[str] = field(default_factory=list)  # batch ids left to `runlog recover`
    failure: RunlogError | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"listed": self.listed, "imported": self.imported, "skipped": self.skipped,
                "pending": len(self.pending)}


def _pending_batch(intents: list[dict], batch: dict) -> bool:
    """Whether a pending submit-batch attempt may have started this batch (same name and
    default workflow; GetBatch does not give the requestId). `runlog recover` settles the
    attempt with its own requestId; importing the batch too would record it twice."""
    workflow = (batch.get("defaultRunSetting") or {}).get("workflowId")
    return any((i.get("request") or {}).get("batchName") == batch.get("name")
               and ((i.get("request") or {}).get("defaultRunSetting") or {}).get("workflowId") == workflow
               for i in intents)


def import_batches(ledger: Ledger, omics, items: list[dict], *, endpoint_url: str | None = None,
                   jobs: int = 16) -> BatchImportResult:
    """Record the listed batches the ledger does not hold (by id and uuid: GetBatch each),
    oldest first, each as an imported batch record followed by what refresh records: GetBatch
    as an observation, a member record per ListRunsInBatch item, the members' statuses
    (runlog.batch.refresh_batch), and each member's own settings from GetRun, `jobs` calls at
    a time (runlog.membersettings). A batch a pending submit-batch may have started is left to
    `runlog recover`. A failure is kept in the result's `failure`: what was recorded stays,
    and `runlog refresh BATCH` records the rest of a batch's members."""
    from runlog.batch import refresh_batch
    from runlog.errors import ServiceError

    result = BatchImportResult(listed=len(items))
    known_ids = ledger.batch_ids()
    intents = [i for i in ledger.pending() if i.get("kind") == "batch"]
    try:
        found = []
        for item in items:
            try:
                answer = omics.get_batch(batchId=item["id"])
            except Exception as exc:
                from runlog import aws

                error = aws.error_from(exc, "GetBatch")
                if isinstance(error, ServiceError) and error.code == "ResourceNotFoundException":
                    continue  # deleted since it was listed
                raise error from None
            answer.pop("ResponseMetadata", None)
            batch = rec.jsonable(answer)
            recorded = item["id"] in known_ids and any(
                e.kind == "batch" for e in ledger.candidates(batch.get("uuid") or ""))
            if recorded:
                result.skipped += 1
            elif _pending_batch(intents, batch):
                result.pending.append(item["id"])
            else:
                found.append(batch)
        for batch in sorted(found, key=lambda b: (b.get("creationTime") or "", b.get("uuid") or "")):
            entry, added = ledger.add_record(import_batch_record(batch, endpoint_url))
            if not added:
                result.skipped += 1
                continue
            change = refresh_batch(ledger, entry, omics, jobs=jobs)
            result.imported.append({"record": entry.address, "batch_id": entry.batch_id, "name": batch.get("name"),
                                    "status": change["status"], "runs": batch.get("totalRuns"),
                                    "members_added": change["members_added"],
                                    "settings_observed": change.get("settings_observed", 0),
                                    "settings_unknown": change.get("settings_unknown", 0)})
    except RunlogError as exc:  # keep what was recorded
        result.failure = exc
    return result
