"""Records for runs started without runlog, reconstructed from GetRun.

An imported record holds the StartRun request that would start the same run (members
copied from GetRun), `git.state = "unknown"`, the caller from GetRun's `startedBy`, and in
`source_run` the parts of GetRun that never change. What does change (status, times,
digests) is appended as an observation. Two people importing the same run therefore
write the same record, so shared ledgers merge without duplicates."""

from __future__ import annotations

from typing import Any

from runlog import __version__
from runlog import record as rec
from runlog.arn import parse_run_arn
from runlog.ledger import Entry, Ledger
from runlog.observe import SOURCE

# GetRun member -> StartRun member, for every setting StartRun takes.
REQUEST_MEMBERS = (
    "workflowId", "workflowType", "workflowOwnerId", "workflowVersionName", "roleArn", "name", "runGroupId",
    "priority", "parameters", "storageCapacity", "storageType", "outputUri", "logLevel", "retentionMode",
    "cacheId", "cacheBehavior", "networkingMode", "tags",
)
# GetRun members that are fixed once the run exists.
STABLE_MEMBERS = REQUEST_MEMBERS + (
    "id", "arn", "uuid", "runId", "creationTime", "startedBy", "runOutputUri", "configuration", "batchId",
)


def request_from_run(run: dict[str, Any]) -> dict[str, Any]:
    """The StartRun request that starts the same computation as the run GetRun describes.
    READY2RUN runs keep workflowType READY2RUN (PRIVATE, the default, is left out); storage
    capacity is kept only for STATIC storage."""
    request = {m: run[m] for m in REQUEST_MEMBERS if run.get(m) not in (None, "", {})}
    if request.get("workflowType") == "PRIVATE":
        del request["workflowType"]  # the default: StartRun without it means the same
    if request.get("storageType") == "DYNAMIC":
        request.pop("storageCapacity", None)
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


def import_run(ledger: Ledger, run: dict[str, Any], endpoint_url: str | None = None) -> tuple[Entry, bool]:
    """Record a run (GetRun body, fetched from endpoint_url) unless its uuid is already in the
    ledger. Returns (entry, added); a new record also gets the GetRun body as its first observation."""
    existing = ledger.by_run_uuid(run["uuid"])
    if existing is not None:
        return existing, False
    entry, added = ledger.add_record(import_record(run, endpoint_url))
    if added:
        ledger.observe(entry.address, SOURCE, run, run_uuid=run["uuid"], status=run.get("status"))
    return entry, added
