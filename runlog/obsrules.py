"""What an observation runlog writes can hold: the one place for the rules that `pull` applies
to the observations it receives and `verify` to those the ledger holds.

An observation's `status` column is what the ledger's reads go by (a run's or a batch's
latest status, a batch's counts, `replay --only failed`); its `body` is the service's answer.
runlog takes the status from the answer and from nowhere else, and files an answer under the
record of the run it is about:

- a status comes only from GetRun, ListRuns, ListRunsInBatch (a run: DELETED after
  DeleteRunBatch, the body written so) or GetBatch (a batch), and it is the body's own
  `status` when that is text, else none (GetBatch not finding a batch); every
  other source (a task list, run settings, a cancel's answer, runlog's notes on a settings
  file) has no status;
- a run's observation names the record's run: its `run_uuid` is the record's, and a GetRun
  or ListRuns body that names a run (`id`, `uuid`) names the record's.

So an observation that breaks one of them was not written by runlog: someone with write
access to a team ledger's bucket, or to the ledger file. Such an observation could make a
failed run count as COMPLETED, or one run's failure another's (docs/reliability.md,
"Observations")."""

from __future__ import annotations

from typing import Any

STATUS_SOURCES = frozenset({"GetRun", "ListRuns", "ListRunsInBatch", "GetBatch"})
RUN_SOURCES = frozenset({"GetRun", "ListRuns", "ListRunsInBatch"})


def status_problem(source: str, status: str | None, body: Any) -> str | None:
    """Why an observation's status cannot be runlog's (see the module), or None."""
    said = body.get("status") if isinstance(body, dict) else None
    expected = said if source in STATUS_SOURCES and isinstance(said, str) else None
    if status == expected:
        return None
    if source not in STATUS_SOURCES:
        return f"a {source[:40]!r} observation has status {str(status)[:40]!r}; runlog gives none to such an answer"
    return (f"its status {str(status)[:40]!r} is not its {source} answer's ({str(expected)[:40]!r}); runlog "
            "records the answer's")


def run_problem(source: str, run_uuid: str | None, body: Any, record_uuid: str | None,
                record_run_id: str | None) -> str | None:
    """Why an observation cannot be of its record's run (see the module), or None. The
    record's run uuid and run id as its lookup columns hold them."""
    if run_uuid is not None and run_uuid != record_uuid:
        return f"it is of run uuid {run_uuid[:40]!r}, its record's run is {str(record_uuid)[:40]!r}"
    if source in RUN_SOURCES and isinstance(body, dict):
        said_id, said_uuid = body.get("id"), body.get("uuid")
        if isinstance(said_id, str) and record_run_id is not None and said_id != record_run_id:
            return f"its {source} answer is of run {said_id[:40]!r}, its record's run is {record_run_id!r}"
        if isinstance(said_uuid, str) and record_uuid and said_uuid != record_uuid:
            return f"its {source} answer is of run uuid {said_uuid[:40]!r}, its record's run is {record_uuid!r}"
    return None
