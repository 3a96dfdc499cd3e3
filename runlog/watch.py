"""Following a run to its end, and checking that it ran on the inputs pinned at submission."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runlog.batchread import SHOWN_FAILURES
from runlog.errors import OperationError, RunlogError, UsageError
from runlog.ledger import Entry, Ledger
from runlog.observe import NOT_ASKED, TERMINAL, observe


@dataclass
class Outcome:
    status: str
    run: dict[str, Any]
    input_changes: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "COMPLETED" and not self.input_changes


def input_changes(pinned: dict[str, dict], run: dict) -> list[dict]:
    """S3 inputs whose ETag as the service read them (GetRun resourceDigests) differs from
    the ETag pinned at submission (batchread.pinned_inputs: the record's resolution, or a
    member's batch record's)."""
    seen = run.get("resourceDigests") or {}
    changes = []
    for uri, identity in pinned.items():
        if identity.get("kind") != "s3-object" or "etag" not in identity or uri not in seen:
            continue
        used = seen[uri].split(":", 1)[1] if seen[uri].startswith("etag:") else seen[uri]
        if used != identity["etag"]:
            changes.append({"uri": uri, "pinned_etag": identity["etag"], "run_etag": used})
    return changes


def watch(ledger: Ledger, entry: Entry, omics, *, interval: float = 30.0, timeout: float | None = None,
          on_poll: Callable[[dict], None] = lambda run: None, sleep=time.sleep,
          on_failure: Callable[[RunlogError], None] = lambda exc: None) -> Outcome:
    """Poll GetRun until the run is terminal, appending an observation at each status change;
    then compare the inputs it read with those pinned at submission. A failure that says
    nothing about the run (aws.passing_failure) is handed to `on_failure` and the run asked
    about again at the next interval; any other failure is raised."""
    from runlog.aws import passing_failure
    from runlog.batchread import pinned_inputs

    if entry.kind == "batch":
        raise UsageError(f"record {entry.address[:12]} is a batch: `watch_batch()` follows a batch and its runs")
    if not entry.run_id:
        raise UsageError(f"record {entry.address[:12]} has no run to watch (it was {entry.outcome})")
    ledger.check_writable(NOT_ASKED)  # what it asks is recorded at each poll, or nothing is asked
    started = time.monotonic()
    status = None  # the first answer is always recorded
    while True:
        try:
            run: dict | None = observe(ledger, entry, omics, unless_status=status) or {}
        except RunlogError as exc:
            if not passing_failure(exc, "GetRun"):
                raise
            on_failure(exc)
            run = None
        if run is not None:
            status = run.get("status")
            on_poll(run)
            if status in TERMINAL:
                return Outcome(status, run, input_changes(pinned_inputs(ledger, entry), run))
        if timeout is not None and time.monotonic() - started + interval > timeout:
            still = status or "unknown (GetRun did not answer)"
            raise OperationError(f"run {entry.run_id} is still {still} after {timeout:g} s; "
                                 f"`watch('{entry.run_id}')` again to keep following it")
        sleep(interval)


@dataclass
class BatchOutcome:
    """How a watched batch ended: its status and `facts` (batch.summary: counts by
    submission and run status, failures with reasons)."""

    status: str
    facts: dict[str, Any]

    @property
    def ok(self) -> bool:
        """PROCESSED, every run submitted and COMPLETED."""
        return (self.facts["batch_status"] == "PROCESSED" and not self.facts["failures"]
                and set(self.facts["run_status"]) <= {"COMPLETED"})


# What a refresh of a batch asks HealthOmics (runlog.batch.refresh_batch)
BATCH_OPERATIONS = ("GetBatch", "ListRunsInBatch", "ListRuns", "GetRun")


def watch_batch(ledger: Ledger, entry: Entry, omics, *, interval: float = 30.0, timeout: float | None = None,
                on_poll: Callable[[dict], None] = lambda change: None, sleep=time.sleep, s3=None,
                on_failure: Callable[[RunlogError], None] = lambda exc: None,
                failures: int | None = SHOWN_FAILURES) -> BatchOutcome:
    """Refresh the batch (GetBatch, its members and their statuses, recorded as refresh
    records them) every `interval` seconds until it is finished; `on_poll` sees each
    refresh's change. With an S3 client `s3`, each refresh checks the batch's settings file
    as refresh does (batch.check_settings_file; S3 not reached: not asked again). A failure
    that says nothing about the batch (aws.passing_failure of one of BATCH_OPERATIONS: a
    throttle, a 5xx, a lost answer) is handed to `on_failure` and the batch refreshed again
    at the next interval, as watch does for a run (what the refresh recorded before it
    stays: whole pages, each member and status once); any other failure is raised. Raises
    OperationError when `timeout` seconds pass first. The outcome's facts are batch.summary's,
    with the first `failures` failures (None: all) and their count."""
    from runlog.aws import passing_failure
    from runlog.batch import FINISHED, refresh_batch, summary

    if not entry.batch_id:
        raise UsageError(f"record {entry.address[:12]} has no batch to watch (it was {entry.outcome})")
    ledger.check_writable(NOT_ASKED)  # what it asks is recorded at each poll, or nothing is asked
    started = time.monotonic()
    unreachable: list[str] = []
    status = None
    lost: dict | None = None
    while True:
        try:
            change: dict | None = refresh_batch(ledger, entry, omics, s3=None if unreachable else s3,
                                                unreachable=unreachable)
        except RunlogError as exc:
            if not passing_failure(exc, BATCH_OPERATIONS):
                raise
            on_failure(exc)
            change = None
        if change is not None:
            status = change["status"]
            lost = change.get("not_found")  # GetBatch did not find it (batch.observe_batch): no status
            on_poll(change)
            if status in FINISHED:
                return BatchOutcome(status, summary(ledger, entry, failures=failures))
        if timeout is not None and time.monotonic() - started + interval > timeout:
            still = status or (f"not found by GetBatch (last seen {lost.get('last_seen') or 'never'})" if lost
                               else "unknown (it could not be refreshed)")
            raise OperationError(f"batch {entry.batch_id} is still {still} after {timeout:g} s; "
                                 f"`watch('{entry.batch_id}')` again to keep following it")
        sleep(interval)
