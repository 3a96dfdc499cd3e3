"""Observations: what GetRun says about a recorded run, appended to the ledger.

Used by every command that looks at a run again (watch, refresh, import, replay)."""

from __future__ import annotations

from typing import Any

from runlog import record as rec
from runlog.errors import OperationError, RunlogError, ServiceError, UsageError
from runlog.ledger import Entry, Ledger

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "DELETED"}
SOURCE = "GetRun"
TASKS_SOURCE = "ListRunTasks"


def get_run(omics, run_id: str) -> dict[str, Any]:
    """GetRun as plain JSON (timestamps as ISO 8601 UTC strings), or a one-line error."""
    try:
        answer = omics.get_run(id=run_id)
    except Exception as exc:  # botocore errors become one-line runlog errors
        # imported here: `runlog diff` imports this module for its read queries only
        from runlog import aws

        raise aws.error_from(exc, "GetRun") from None
    answer.pop("ResponseMetadata", None)
    return rec.jsonable(answer)


def observe(ledger: Ledger, entry: Entry, omics, *, unless_status: str | None = None) -> dict[str, Any] | None:
    """Fetch the run's current state and append it as an observation of `entry` (not when
    its status is still `unless_status`: pollers record changes, not every poll).

    Returns the GetRun body, or None when the record has no run (a rejected attempt).
    HealthOmics reuses run ids after a run is deleted: an answer for another uuid means
    this run is gone, and is recorded as status DELETED instead of being mixed up."""
    if not entry.run_id:
        return None
    try:
        run = get_run(omics, entry.run_id)
    except ServiceError as exc:
        if exc.code == "ResourceNotFoundException":
            _asked_at_home(omics, entry)
            body = {"status": "DELETED", "reason": "GetRun: run not found"}
            ledger.observe(entry.address, SOURCE, body, run_uuid=entry.run_uuid, status="DELETED")
            return body
        raise
    _refuse_unknown_uuid(entry, run)
    if entry.run_uuid and run["uuid"] != entry.run_uuid:
        _asked_at_home(omics, entry)
        body = {"status": "DELETED", "reason": f"run id {entry.run_id} now belongs to run {run['uuid']}"}
        ledger.observe(entry.address, SOURCE, body, run_uuid=entry.run_uuid, status="DELETED")
        return body
    _refuse_odd_status(entry, run.get("status"))
    if run.get("status") != unless_status:
        ledger.observe(entry.address, SOURCE, run, run_uuid=entry.run_uuid, status=run.get("status"))
    if run.get("status") in TERMINAL and run.get("status") != "DELETED":
        observe_tasks(ledger, entry, omics, run)
    return run


def _refuse_unknown_uuid(entry: Entry, run: dict[str, Any]) -> None:
    """An answer whose uuid is missing or not text does not say whose it is: the recorded run's,
    or another run's that got its id after a deletion. OperationError, nothing recorded (not
    the run's status, nor DELETED: neither is known)."""
    if not entry.run_uuid:
        return
    from runlog.importer import uuid_problem

    problem = uuid_problem(run)
    if problem:
        raise OperationError(f"{problem} for run {entry.run_id}: runlog cannot tell whether it is run "
                             f"{entry.run_uuid} or another run that reused its id; not recorded")


def _refuse_odd_status(entry: Entry, status) -> None:
    """A status that is not text is no status the ledger can hold (SQLite would store 5 as the
    text "5", and cannot store an object at all): OperationError, nothing recorded."""
    if status is None or isinstance(status, str):
        return
    import json

    from runlog.startrun import _json_kind

    raise OperationError(f"GetRun's status for run {entry.run_id} is {_json_kind(status)} "
                         f"({json.dumps(status)[:40]}), not text: not recorded; `refresh()` again once "
                         "HealthOmics answers with a status")


def _asked_at_home(omics, entry: Entry) -> None:
    """A run GetRun does not know in another region or account than its ARN's is not deleted."""
    from runlog.aws import refuse_if_asked_elsewhere

    refuse_if_asked_elsewhere(omics, entry.run_arn, "GetRun", f"run {entry.run_id}")


def observe_tasks(ledger: Ledger, entry: Entry, omics, run: dict[str, Any]) -> list[dict] | None:
    """Once a run has ended, record its tasks (ListRunTasks, then GetRunTask for each task's
    container image and failure) as one observation, unless they are recorded already.

    Best effort: a run's status is what matters to the caller, so a refusal here (no
    omics:ListRunTasks permission, a throttled call) records nothing and is tried again at
    the next watch or refresh. Never called on submit."""
    if any(o["source"] == TASKS_SOURCE and o["body"].get("run_status") == run.get("status")
           for o in ledger.observations(entry.address)):
        return None
    tasks = []
    try:
        for page in omics.get_paginator("list_run_tasks").paginate(id=entry.run_id):
            for item in page.get("items") or []:
                detail = omics.get_run_task(id=entry.run_id, taskId=item["taskId"])
                detail.pop("ResponseMetadata", None)
                tasks.append(rec.jsonable({**item, **detail}))
    except Exception:  # noqa: BLE001 - best effort, see above
        return None
    body = {"run_status": run.get("status"), "tasks": sorted(tasks, key=lambda t: (t.get("creationTime") or "",
                                                                                    t["taskId"]))}
    ledger.observe(entry.address, TASKS_SOURCE, body, run_uuid=entry.run_uuid)
    return body["tasks"]


def latest_run_facts(ledger: Ledger, address: str) -> dict[str, Any]:
    """The newest GetRun body recorded for a record ({} when none)."""
    for observation in reversed(ledger.observations(address)):
        if observation["source"] == SOURCE and "uuid" in observation["body"]:
            return observation["body"]
    return {}


# Ledger.check_writable's words for a command that would only ask HealthOmics and record its answers
NOT_ASKED = "nothing was asked of HealthOmics, since its answers could not be recorded"


def refresh(ledger: Ledger, entries: list[Entry], client_for) -> list[dict[str, Any]]:
    """GetRun for each entry's run, appending what changed (see observe). `client_for(entry)`
    gives the HealthOmics client for that record (where it was recorded). Returns one change
    per entry: {record, run_id, old, new} or, when it could not be asked, {…, error}."""
    if entries:  # what HealthOmics answers is recorded, or it is not asked (exit 2)
        ledger.check_writable(NOT_ASKED)
    changes = []
    for entry in entries:
        change: dict[str, Any] = {"record": entry.address, "run_id": entry.run_id, "old": entry.status, "new": None}
        if not entry.run_id:
            change["error"] = f"no run: this submission was {entry.outcome}"
        else:
            # a change is against what GetRun said last (not the status that ranks first, a final
            # one: a service going back from COMPLETED would be recorded again at each refresh)
            said = [o["status"] for o in ledger.observations(entry.address) if o["source"] == SOURCE]
            omics = client_for(entry)  # bad settings (a region that is no region) stop everything: exit 2
            try:
                run = observe(ledger, entry, omics, unless_status=said[-1] if said else None)
                change["new"] = (run or {}).get("status")
            except RunlogError as exc:
                change["error"] = exc.message
        changes.append(change)
    return changes


def refresh_targets(ledger: Ledger, refs: list[str] | tuple[str, ...] = (), every: bool = False) -> list[Entry]:
    """The records to refresh: those REFs, else every record with a run and every started
    batch (`every`), or those that have not finished, oldest first. A finished batch whose
    members the ledger holds less of than GetBatch last counted (batchread.members_behind: a
    refresh cut short, a listing that failed) has not finished for this."""
    from runlog.batch import FINISHED
    from runlog.batchread import members_behind

    if refs:  # a batch's REF (or its id) refreshes the batch and its members
        named = [ledger.resolve(ref, outline=True) for ref in refs]  # a batch as its outline: never its cohort
        for ref, entry in zip(refs, named, strict=True):  # as `watch` does: refused before anything is asked
            if not (entry.batch_id if entry.kind == "batch" else entry.run_id):
                what = "batch" if entry.kind == "batch" else "run"
                named_as = "" if entry.address.startswith(ref.strip().lower()) else f" ({ref!r})"
                raise UsageError(f"record {entry.address[:12]}{named_as} has no {what} to refresh (it was "
                                 f"{entry.outcome}); `show('{entry.address[:12]}')` says why")
        return named
    # a batch's members are refreshed with their batch, a page at a time (runlog/batch.py); a run
    # or batch both imported and submitted (a ledger that imported, then pulled) is asked about once
    return [e for e in reversed(ledger.without_imported_twins(ledger.refreshable()))
            if every or (e.status or "PENDING") not in (FINISHED if e.kind == "batch" else TERMINAL)
            or (e.kind == "batch" and e.status != "DELETED" and members_behind(ledger, e) is not None)]


def refresh_runs(ledger: Ledger, entries: list[Entry], settings_for, session_for=None) -> list[dict[str, Any]]:
    """refresh() with one HealthOmics client per place the runs were recorded:
    `settings_for(record["aws"])` gives the settings (aws.settings_for with `recorded`),
    `session_for(settings)` the session (default: made from the settings)."""
    from runlog import aws

    clients: dict = {}

    def client_for(entry):
        settings = settings_for(entry.record.get("aws"))
        if settings not in clients:
            clients[settings] = aws.client(settings, "omics", sess=session_for(settings) if session_for else None)
        return clients[settings]

    return refresh(ledger, entries, client_for)
