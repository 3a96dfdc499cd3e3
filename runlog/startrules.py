"""Which record started a run or a batch: the one place for the rule that `pull` applies to the
records it receives and `verify` to those the ledger holds.

runlog writes a "submitted" record of kind `submit` or `replay` when StartRun answered, and of
kind `batch` (without `source_batch`: not found by `import`) when StartRunBatch answered; the
answer's `uuid` names the run or batch it started. HealthOmics starts one run (one batch) for
one requestId, and a ledger holds one record per requestId. So two such records of one run uuid
(or one batch uuid) cannot both be runlog's: one was written by someone else (pushed to a team
ledger's bucket, or written into the ledger file), perhaps with another cohort, and a `refresh`
would make the batch's runs members of it too.

Records of what runlog learned of a run later are not starts, and may stand beside the record
that started it (Ledger._original_of_one_run): `import` records, imported batch records, and
member records (each checked against its batch record instead: batch.member_check)."""

from __future__ import annotations

from typing import Any

# The kinds of record that say runlog sent the StartRun that started their run.
RUN_KINDS = ("submit", "replay")

# What a record says it started: ("run", run uuid) or ("batch", batch uuid).
Started = tuple[str, str]


def started(record: dict) -> Started | None:
    """The run or batch a record says runlog started (see the module), or None."""
    outcome = record.get("outcome")
    if not isinstance(outcome, dict) or outcome.get("status") != "submitted":
        return None
    response = outcome.get("response")
    uuid = response.get("uuid") if isinstance(response, dict) else None
    if not isinstance(uuid, str):
        return None
    if record.get("kind") in RUN_KINDS:
        return ("run", uuid)
    if record.get("kind") == "batch" and record.get("source_batch") is None:
        return ("batch", uuid)
    return None


def started_by_row(columns: tuple, body: Any) -> Started | None:
    """`started` of a record given as a pull holds it: its lookup columns (Ledger's
    INDEX_COLUMNS order) and its canonical JSON, which is decoded only for a batch record."""
    from runlog.ledger import INDEX_COLUMNS

    kind = columns[0]
    if kind in RUN_KINDS:
        uuid = columns[INDEX_COLUMNS.index("run_uuid")]
        submitted = columns[INDEX_COLUMNS.index("outcome")] == "submitted"
        return ("run", uuid) if submitted and isinstance(uuid, str) else None
    if kind == "batch":
        from runlog import fastjson

        return started(fastjson.loads(body))
    return None


def form_problem(what: Started) -> str | None:
    """Why the uuid a record says it started cannot be as HealthOmics answered it (lower case,
    no white space: the form every uuid the service gives has), or None. One written in
    another form would name a run or batch already started without matching its record."""
    if what[1] != what[1].strip().lower():
        return (f"the {'StartRun' if what[0] == 'run' else 'StartRunBatch'} answer's uuid {what[1][:60]!r} is not as "
                "HealthOmics writes one (lower case, no white space)")
    return None


def second_start(what: Started, first: str, where: str) -> str:
    """Why a record that says it started `what`, already started by record `first` (found
    `where`), is not taken (pull) or is named (verify)."""
    return (f"it says it started {what[0]} uuid {what[1][:60]}, which record {first} ({where}) started; one "
            f"{'StartRun' if what[0] == 'run' else 'StartRunBatch'} answer is one request, so one of the two "
            "records was not written by runlog")
