"""The read side of batches: what `runlog show B` counts and `runlog diff B1 B2` compares,
from the ledger's derived tables (migration m007: `batch_members`, `batch_views`) so that a
100 000-run batch is neither read member by member nor decoded whole when it need not be.
Light to import (no hashing, no AWS, no submission code): `show` imports it.
runlog.batch re-exports these names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runlog.cohortindex import run_settings
from runlog.errors import UsageError
from runlog.ledger import Entry, Ledger

SOURCE_BATCH = "GetBatch"  # runlog.batch.SOURCE_BATCH (not imported: batch.py pulls in the submit path)
# an observation of a batch record: its s3UriSettings file is no longer the one pinned (batch.check_settings_file)
SOURCE_SETTINGS_FILE = "HeadObject:settings-file"
# ... and: run settings the service listed more than once, each time with another run (batch.check_repeated)
SOURCE_REPEATED = "ListRunsInBatch:repeated"
SOURCE_SHARED = "ListRunsInBatch:shared-run"  # one run listed for more than one run setting (batch.check_shared)


def batch_entry(ledger: Ledger, ref: str, *, whole: bool = True) -> Entry:
    """The batch record a REF names: a batch's or a member's REF, or a batch id. whole=False:
    its entry holds its view (Ledger.resolve), enough to list its members."""
    entry = ledger.resolve(ref, whole=whole)
    if entry.kind == "member":
        found = ledger.get(entry.record["batch"]["record"], whole=whole)
        if found is None:
            raise UsageError(f"{ref!r} is a member of batch record {entry.record['batch']['record'][:12]}, which "
                             "is not in this ledger (`pull()` it)")
        return found
    if entry.kind != "batch":
        raise UsageError(f"{ref!r} names a run (record {entry.address[:12]}), not a batch; `log()` lists "
                         "records, batches among them")
    return entry


def pinned_inputs(ledger: Ledger, entry: Entry) -> dict[str, dict]:
    """The input identities pinned at submission for the run `entry` records: its own
    record's (`resolution.inputs`), or for a member, those its batch record pinned (a member
    record holds none of its own). {} when nothing was pinned."""
    own = (entry.record.get("resolution") or {}).get("inputs")
    if own or entry.kind != "member":
        return own or {}
    batch = ledger.get((entry.record.get("batch") or {}).get("record") or "")
    return ((batch.record.get("resolution") or {}).get("inputs") if batch is not None else None) or {}


def pinned_workflow_digest(ledger: Ledger, entry: Entry) -> str | None:
    """The workflow digest resolved at submission for the run `entry` records: its own
    record's, or for a member, the one its batch record resolved for the default setting
    (a run setting cannot name another workflow), never decoding the cohort."""
    own = ((entry.record.get("resolution") or {}).get("workflow") or {}).get("digest")
    if own or entry.kind != "member":
        return own
    return ledger.resolved_workflow_digest((entry.record.get("batch") or {}).get("record") or "")


def batch_record_view(ledger: Ledger, batch: Entry) -> tuple[dict, int | None]:
    """(the batch record without its settings file's content, how many run settings that
    content holds or None): Ledger.batch_view, else (the record decoded whole, its count)."""
    found = ledger.batch_view(batch.address)
    if found is not None:
        return found
    record = batch.record
    pinned = (record.get("batch") or {}).get("settings_file") or {}
    if "content" not in pinned:
        return record, None
    return {**record, "batch": {**record["batch"], "settings_file": {
        k: v for k, v in pinned.items() if k != "content"}}}, len(pinned["content"])


SHOWN_FAILURES = 20  # failures `runlog show B` lists (its --json: all)


def summary(ledger: Ledger, batch: Entry, failures: int | None = SHOWN_FAILURES) -> dict[str, Any]:
    """What `runlog show B` says about a batch: counts of its member records by submission and
    by run status (what runlog recorded), the failures with their reasons (the first
    `failures`, in ledger order; None: all) and how many there are, and the latest GetBatch
    (the service's own counts). Costs one pass over an index of the batch's members."""
    submission: dict[str, int] = {}
    statuses: dict[str, int] = {}
    for outcome, status, count in ledger.member_counts(batch.address):
        shown = {"submitted": "SUCCESS", "rejected": "FAILED"}.get(outcome, outcome)
        submission[shown] = submission.get(shown, 0) + count
        if outcome == "submitted":
            statuses[status or "PENDING"] = statuses.get(status or "PENDING", 0) + count
    failed, rows = ledger.member_failures(batch.address, failures)
    found: list[dict[str, Any]] = []
    for address, run_id, setting_id, outcome, code, message, latest in rows:
        if outcome != "submitted":
            found.append({"run_setting_id": setting_id, "record": address, "stage": "submission",
                          "reason": f"{code}: {message}" if message else code})
            continue
        _, _, status_message = (latest or "").partition("\x1f")
        found.append({"run_setting_id": setting_id, "record": address, "run_id": run_id, "stage": "run",
                      "reason": status_message or "no reason given"})
    if statuses.get("DELETED"):  # runs deleted since (DeleteRunBatch): those that had FAILED are still failures
        deleted = ledger.deleted_members(batch.address, ("FAILED",))
        failed += len(deleted)
        room = None if failures is None else max(0, failures - len(found))
        found += [{"run_setting_id": setting_id, "record": address, "run_id": run_id, "stage": "run",
                   "reason": f"{reason or 'no reason given'} (FAILED, then deleted)"}
                  for address, run_id, setting_id, reason in deleted[:room]]
    observed = ledger.observations(batch.address)
    answered = last_answer(observed)  # GetBatch's last answer (or DELETED: runlog's word), by when
    latest = newest(observed)  # ... or a not-found made after it
    record = ledger.batch_outline(batch.address)  # neither the cohort nor its inputs: not read
    runs, recorded = record["batch"]["runs"], sum(submission.values())
    repeated = [body for o in observed if o["source"] == SOURCE_REPEATED and (body := _repeated(o["body"]))]
    shared = [body for o in observed if o["source"] == SOURCE_SHARED
              and (body := _repeated(o["body"], "run_id", "run_setting_ids"))]
    return {"record": batch.address, "batch_id": batch.batch_id, "runs": runs,
            "members_recorded": recorded, "submission": submission, "run_status": statuses,
            "repeated_run_settings": repeated[-1] if repeated else {"count": 0, "first": []},
            "shared_runs": shared[-1] if shared else {"count": 0, "first": []},
            "failures": found, "failures_count": failed,
            "batch_status": last_batch_status(observed, record["outcome"].get("response") or {}),
            "batch_failure": batch_failure(observed),
            "get_batch": answered["body"] if answered is not None and isinstance(answered["body"], dict) else None,
            "not_found": {"observed_at": latest["observed_at"], "last_seen": latest["body"].get("last_seen")}
            if latest is not None and not_found(latest) else None,
            "settings_file_changed": settings_changes(observed)}


def not_found(observed: dict) -> bool:
    """Whether a GetBatch observation records a ResourceNotFound that runlog did not take as
    DeleteBatch (runlog.batch.observe_batch): no status, a reason and the status last seen."""
    body = observed["body"]
    return observed["status"] is None and isinstance(body, dict) and "last_seen" in body and "reason" in body


def not_found_words(last_seen: str | None, at: str | None = None) -> str:
    """What `show B`, `refresh` and `watch` say of a batch GetBatch did not find while runlog
    last saw it unfinished (runlog.batch.observe_batch)."""
    when = f" at {at}" if at else ""
    seen = f"last seen {last_seen}" if last_seen else "its status never observed"
    return (f"not found{when} ({seen}: not found yet, or ended and deleted since; taken as deleted once "
            "GetBatch has not found it for an hour; `runlog refresh` asks again)")


def last_batch_status(observations: list[dict], response: dict[str, Any]) -> str | None:
    """A batch's status as runlog last saw it, as `log` gives it (Ledger._fill_status): of its
    GetBatch observations (`observations`: the batch record's, in row order) that have a status,
    the one observed last (a pulled observation may be older than the rows before it; one whose
    time cannot be read counts as oldest), else the status StartRunBatch answered
    (`response`), else None."""
    last = last_answer(observations)
    if last is not None:
        return last["status"]
    status = response.get("status")
    return status if isinstance(status, str) else None


def last_answer(observations: list[dict]) -> dict | None:
    """last_batch_status' observation: of the GetBatch observations with a status, the one
    observed last (ties: the later row), as Ledger._fill_status chooses it."""
    return newest([o for o in observations if o["status"] is not None])


def newest(observations: list[dict]) -> dict | None:
    """The GetBatch observation among `observations` made last: by `observed_at` (one that
    cannot be read counts as oldest), then by row, as Ledger._fill_status orders them
    (ledger.BATCH_STATUS_FIRST). None when there is none."""
    seen = [o for o in observations if o["source"] == SOURCE_BATCH]
    return max(seen, key=lambda observed: (_when(observed), observed["seq"])) if seen else None


def not_found_since(observations: list[dict]) -> str | None:
    """When GetBatch first did not find the batch, of the not-found observations made after
    its last answer (not_found), when the GetBatch observation made last is one; else None."""
    last = newest(observations)
    if last is None or not not_found(last):
        return None
    answered = last_answer(observations)
    after = _when(answered) if answered is not None else float("-inf")
    found = [o for o in observations if o["source"] == SOURCE_BATCH and not_found(o) and _when(o) > after]
    return min(found, key=lambda observed: (_when(observed), observed["seq"]))["observed_at"]


def _when(observed: dict) -> float:
    """An observation's time as a number (SQLite's julianday() of it in Ledger._fill_status);
    one that cannot be read counts as oldest."""
    from runlog.record import parse_timestamp

    try:
        return parse_timestamp(observed["observed_at"]).timestamp()
    except (TypeError, ValueError, AttributeError):
        return float("-inf")


# GetBatch's counts of the runs a batch started or failed to start (each is a member: ListRunsInBatch
# lists it), and of its runs that ended; runlog's member statuses that end a run
_SUBMITTED_COUNTS = ("successfulStartSubmissionCount", "failedStartSubmissionCount")
_ENDED_COUNTS = ("completedRunCount", "failedRunCount", "cancelledRunCount", "deletedRunCount")
ENDED = frozenset({"COMPLETED", "FAILED", "CANCELLED", "DELETED"})


def started_count(answer: dict) -> int | None:
    """How many runs a GetBatch answer counts the batch as having submitted (started or failed
    to start: each is a member): None when it has no such counts."""
    summary = answer.get("submissionSummary")
    if not isinstance(summary, dict) or not any(name in summary for name in _SUBMITTED_COUNTS):
        return None
    return _total(summary, _SUBMITTED_COUNTS)


def last_started_count(observations: list[dict]) -> int | None:
    """started_count of the GetBatch observation made last that gives submission counts (a
    DELETED runlog recorded after the batch's last answer gives none), else None."""
    counted = [o for o in observations if isinstance(o["body"], dict) and started_count(o["body"]) is not None]
    found = newest(counted)
    return started_count(found["body"]) if found is not None else None


def never_submitted(status: str | None, declared: int, started: int | None, held: int) -> int:
    """How many of a batch's `declared` run settings it never submitted: it ended (a final
    status) with the ledger holding (`held`) every member GetBatch last counted submitted
    (`started`), and the rest never became runs. 0 while it goes on, when GetBatch gave no
    counts, or while the ledger holds fewer members than it counted (they may come yet)."""
    if status not in FINISHED or started is None or held < started:
        return 0
    return max(0, declared - started)


# A batch status after which it submits nothing more (runlog.batch.FINISHED without DELETED, runlog's own)
FINAL_BATCH_STATUSES = frozenset({"PROCESSED", "CANCELLED", "FAILED", "RUNS_DELETED", "RUNS_DELETE_FAILED"})
# A batch status that never changes again (refresh leaves such batches alone): the service's final
# ones, and DELETED, runlog's own (GetBatch no longer knows the batch: DeleteBatch, done outside runlog)
FINISHED = FINAL_BATCH_STATUSES | {"DELETED"}


def _total(summary: Any, names: tuple[str, ...]) -> int:
    """The sum of a GetBatch summary's counts `names` that are whole numbers (others count 0)."""
    if not isinstance(summary, dict):
        return 0
    return sum(value for name in names if type(value := summary.get(name)) is int and 0 <= value <= 10**9)


def members_behind(ledger: Ledger, batch: Entry) -> dict[str, list[int | None]] | None:
    """Whether the ledger holds less of a batch than the service last said there is: fewer
    member records than GetBatch's last answer counts started (or failed to start) runs, or
    fewer members whose run ended than it counts ended runs. {"members": [held, counted],
    "ended": [held, counted]} when it does (a refresh cut short, a listing that failed, a
    service slow to list what it counts), else None (also when GetBatch's answer has no counts).
    A finished batch that is behind is refreshed again by `runlog refresh` without REFs. So is
    one GetBatch was never asked about ({"members": [held, None], ...}: what it holds is not
    known): a batch `recover` completed after it had finished, whose StartRunBatch answer
    (the service's answer to the same request, sent again) says PROCESSED, has no member yet."""
    observed = ledger.observations(batch.address)
    last = last_answer(observed)
    counts = ledger.member_counts(batch.address)
    held = sum(count for _, _, count in counts)
    held_ended = sum(count for outcome, status, count in counts if outcome == "submitted" and status in ENDED)
    if newest(observed) is None:
        return {"members": [held, None], "ended": [held_ended, None]}
    body = last["body"] if last is not None and isinstance(last["body"], dict) else {}
    submitted = started_count(body) or 0
    ended = _total(body.get("runSummary"), _ENDED_COUNTS)
    if not submitted and not ended:
        return None
    if held < submitted or held_ended < ended:
        return {"members": [held, submitted], "ended": [held_ended, ended]}
    return None


def batch_failure(observations: list[dict]) -> dict[str, Any] | None:
    """Why the batch itself FAILED, when its status (last_batch_status: the newest GetBatch
    observation's) is FAILED: `{reason, observed_at}`, the reason GetBatch's failureReason (None
    when it gave none, or no text). A batch that fails as a whole (its role cannot read the
    settings file, say) starts no runs: this is all there is to say of it. None otherwise."""
    newest = last_answer(observations)
    if newest is None or newest["status"] != "FAILED":
        return None
    body = newest["body"] if isinstance(newest["body"], dict) else {}
    reason = body.get("failureReason")
    return {"reason": reason if isinstance(reason, str) and reason else None, "observed_at": newest["observed_at"]}


def batch_failure_words(batch_id: str | None, failure: dict[str, Any]) -> str:
    """`batch N FAILED as a whole (GetBatch at T: REASON)`: for messages about its runs."""
    reason = failure["reason"] or "GetBatch gave no failureReason"
    return f"batch {batch_id} itself FAILED (GetBatch at {failure['observed_at']}: {reason})"


def settings_changes(observations: list[dict]) -> list[dict[str, Any]]:
    """The well-formed SOURCE_SETTINGS_FILE observations' bodies ({uri, pinned: {etag, …}, now:
    {etag, last_modified, …}}, text where text is said), in order: an observation pulled from a
    team ledger is anyone's JSON, and one of another shape is left out, never a crash."""
    def text(value: Any) -> bool:
        return value is None or isinstance(value, str)

    found = []
    for o in observations:
        body = o["body"] if o["source"] == SOURCE_SETTINGS_FILE else None
        if isinstance(body, dict) and isinstance(body.get("uri"), str) and isinstance(body.get("pinned"), dict) \
                and isinstance(body.get("now"), dict) and text(body["pinned"].get("etag")) \
                and text(body["now"].get("etag")) and text(body["now"].get("last_modified")):
            found.append(body)
    return found


def _repeated(body: Any, key: str = "run_setting_id", listed: str = "run_ids") -> dict[str, Any] | None:
    """A SOURCE_REPEATED observation's body when it has the shape check_repeated writes ({count,
    first: [{run_setting_id, run_ids: [text]}]}), else None (anyone's JSON, from a pull); with
    `key` "run_id" and `listed` "run_setting_ids", a SOURCE_SHARED one's (check_shared)."""
    if not isinstance(body, dict) or type(body.get("count")) is not int or not isinstance(body.get("first"), list):
        return None
    for item in body["first"]:
        if not (isinstance(item, dict) and isinstance(item.get(key), str)
                and isinstance(item.get(listed), list) and all(isinstance(r, str) for r in item[listed])):
            return None
    return body


def repeated_warning(found: dict[str, Any]) -> str:
    """What a reader is told of run settings listed more than once (batch.check_repeated's observation)."""
    listed = "; ".join(f"{r['run_setting_id']}: runs {', '.join(r['run_ids'])}" for r in found["first"])
    more = f"; and {found['count'] - len(found['first'])} more" if found["count"] > len(found["first"]) else ""
    return (f"{found['count']} run setting(s) have more than one member record ({listed}{more}): ListRunsInBatch "
            "listed each more than once, with another run each time; every run it listed is recorded")


def same_runs(names: list[tuple[str | None, str | None]]) -> list[int]:
    """For records naming runs as (run id, run uuid), "" or None where a record has none: the
    index of the first record that names the same run as each. Two records name one run when
    their uuids are equal, or their ids are equal and their uuids do not differ: a
    ListRunsInBatch item may come without the uuid its run's other member record has (a run
    ListRunsInBatch gave to two run settings), an imported and a pulled record of one run share
    both; one id with two uuids is two runs (ids are reused after a run is deleted). A record
    naming neither (a refused submission) is a run of its own, one that never started. The one
    rule of the report's and the exports' counts (report.select, export.cohort)."""
    by_uuid: dict[str, int] = {}
    by_id: dict[str, int] = {}
    uuid_of: dict[int, str] = {}  # a run's uuid, once a record of it has given one
    out = []
    for index, (run_id, run_uuid) in enumerate(names):
        run = by_uuid.get(run_uuid) if run_uuid else None
        if run is None and run_id and run_id in by_id and not (run_uuid and uuid_of.get(by_id[run_id])):
            run = by_id[run_id]  # the same id, and no two uuids to tell the records apart
        if run is None:
            run = index
        if run_uuid:
            by_uuid.setdefault(run_uuid, run)
            uuid_of.setdefault(run, run_uuid)
        if run_id:
            by_id.setdefault(run_id, run)
        out.append(run)
    return out


def shared_warning(found: dict[str, Any]) -> str:
    """What a reader is told of runs listed for more than one run setting (batch.check_shared's observation)."""
    listed = "; ".join(f"run {r['run_id']}: {', '.join(r['run_setting_ids'])}" for r in found["first"])
    more = f"; and {found['count'] - len(found['first'])} more" if found["count"] > len(found["first"]) else ""
    return (f"{found['count']} run(s) have the member records of more than one run setting ({listed}{more}): "
            "ListRunsInBatch gave each to more than one run setting; each of those member records names the run "
            "and gets its statuses")


def not_text_warning(found: dict[str, Any]) -> str:
    """What a reader is told of items ListRunsInBatch listed with identifiers that are not text
    (batch.refresh_batch's `listed_not_text`)."""
    return (f"{found['count']} item(s) ListRunsInBatch listed with a run setting id, run id, uuid, ARN or "
            "submission status that is not text (outside the service's model) were not recorded; a later refresh "
            "records them once the service lists them as text")


def listing_warnings(change: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """(finding, line) for what a refresh of a batch (batch.refresh_batch's `change`) found in
    ListRunsInBatch: run settings listed with more than one run, runs listed for more than one
    run setting, items whose identifiers are not text. `refresh` says each line; `watch` each
    finding once."""
    return [(change[key], f"batch {change['batch_id']}: " + words(change[key]))
            for key, words in (("repeated_run_settings", repeated_warning), ("shared_runs", shared_warning),
                               ("listed_not_text", not_text_warning), ("parameters_reported", reported_warning))
            if key in change]


def reported_warning(found: dict[str, Any]) -> str:
    """refresh --outputs: members whose GetRun reported other parameters than their record holds."""
    return (f"{found['count']} run(s) ran with other parameters than their member records hold, GetRun says "
            f"(the first: {', '.join(found['first'])}); the settings file may have changed while the service read it: "
            "`runlog show RUN_ID` and the exports give GetRun's, the records keep the pinned settings")


def settings_file_warning(found: dict[str, Any], batch_id: str | None) -> str:
    """What a reader is told of a settings file no longer the one pinned (check_settings_file's
    answer), in the library's words (runlog.cli.wording)."""
    pinned, now = found["pinned"], found["now"]
    return (f"batch {batch_id}: settings file {found['uri']} changed since submit-batch pinned it (ETag "
            f"{pinned['etag']} -> {now['etag']}, modified {now['last_modified'] or 'at an unknown time'}): if the "
            "service read it after the change, the batch record and its member records hold the pinned settings, "
            f"not those the runs got; `refresh(['{batch_id}'], outputs=True)` records each run's parameters as "
            "GetRun gives them, to compare")


# -- comparing two batches ---------------------------------------------------------------------------

def _flat(value: Any, path: str = "") -> dict[str, Any]:
    """{json.path: leaf} of a JSON value (lists by index), for key-by-key comparison."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key in sorted(value):
            out.update(_flat(value[key], f"{path}.{key}" if path else str(key)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for index, item in enumerate(value):
            out.update(_flat(item, f"{path}[{index}]"))
        return out
    return {path: value}


def _changes(section: str, old: dict, new: dict, prefix: str = "") -> list:
    from runlog.diff import Change

    # an empty section has no fields: the other side's fields are what was added or removed
    left, right = (_flat(side) if side else {} for side in (old, new))
    found = []
    for path in sorted(set(left) | set(right)):
        shown = f"{prefix}{path}" if path else prefix.rstrip(".")
        if path not in right:
            found.append(Change(section, shown, left[path], None, "removed"))
        elif path not in left:
            found.append(Change(section, shown, None, right[path], "added"))
        elif left[path] != right[path] or type(left[path]) is not type(right[path]):
            kind = "changed" if type(left[path]) is type(right[path]) else "type_changed"
            found.append(Change(section, shown, left[path], right[path], kind))
    return found


# (removed, added, changed) runs between two batches: [(runSettingId, setting)] twice, in the
# order of a's and of b's run settings, then [(runSettingId, a's setting, b's setting)] in a's
RunDifferences = tuple[list[tuple[str, Any]], list[tuple[str, Any]], list[tuple[str, Any, Any]]]


def run_differences(listed_a: list, listed_b: list) -> RunDifferences:
    """The runs added, removed and changed between two lists of run settings, keyed by
    runSettingId as a dict built from each list keys them (a runSettingId given twice: its
    first place, its last setting)."""
    from runlog.diff import same_json  # 1 and 1.0 (and true) are different settings: Python's == says equal

    runs_a = {s["runSettingId"]: s for s in listed_a}
    runs_b = {s["runSettingId"]: s for s in listed_b}
    return ([(ident, own) for ident, own in runs_a.items() if ident not in runs_b],
            [(ident, other) for ident, other in runs_b.items() if ident not in runs_a],
            [(ident, own, runs_b[ident]) for ident, own in runs_a.items()
             if ident in runs_b and not same_json(runs_b[ident], own)])


def compare_batches(a: dict, b: dict, settings: Callable[[], tuple[list, list]] | None = None,
                    differences: Callable[[], RunDifferences | None] | None = None) -> list:
    """The cohort audit between two batch records, as runlog.diff.Change items: runs added
    and removed (by runSettingId), the default setting changed, each shared run's own
    setting changed, identities of shared inputs changed, the settings file, git.

    `a` and `b` may be batch views (Ledger.batch_view: without the settings file's content);
    `settings` then gives the two lists of run settings, and is called only when they can
    differ: not when both settings files were read and have the same SHA-256 (the same bytes,
    so the same runs), nor when `differences` gives the runs that differ (from the ledger's
    per-run digests, `indexed_differences`; None: it cannot)."""
    from runlog.diff import Change, untracked_changes, view
    from runlog.resolve import identity_changes

    changes: list = []
    pinned_a, pinned_b = ((r.get("batch") or {}).get("settings_file") or {} for r in (a, b))
    same_file = bool(pinned_a.get("sha256")) and pinned_a.get("sha256") == pinned_b.get("sha256") and \
        "error" not in pinned_a and "error" not in pinned_b
    runs: RunDifferences | None
    if settings is None:
        runs = run_differences(run_settings(a), run_settings(b))
    elif same_file:
        runs = [], [], []
    else:
        runs = differences() if differences is not None else None
        if runs is None:
            runs = run_differences(*settings())
    removed, added, changed = runs
    for ident, own in removed:
        changes.append(Change("runs", ident, own, None, "removed"))
    for ident, other in added:
        changes.append(Change("runs", ident, None, other, "added"))
    bookkeeping = ("runTags",)
    default_a, default_b = (
        {k: v for k, v in r["request"]["defaultRunSetting"].items() if k not in bookkeeping} for r in (a, b))
    changes += _changes("default setting", default_a, default_b)
    tags_a, tags_b = (r["request"]["defaultRunSetting"].get("runTags") or {} for r in (a, b))
    changes += _changes("default setting", {"runTags": tags_a} if tags_a else {}, {"runTags": tags_b} if tags_b else {})
    for ident, own, other in changed:
        changes += _changes("run settings", own, other, prefix=f"{ident}.")
    inputs_a = (a.get("resolution") or {}).get("inputs") or {}
    inputs_b = (b.get("resolution") or {}).get("inputs") or {}
    for found in identity_changes(inputs_a, inputs_b):
        changes.append(Change("inputs", f"{found['uri']}.{found['field']}", found["old"], found["new"], "changed"))
    keep = ("uri", "etag", "version_id", "sha256")
    changes += _changes("settings file", {k: pinned_a[k] for k in keep if k in pinned_a},
                        {k: pinned_b[k] for k in keep if k in pinned_b})
    git_a, git_b = view({**a, "request": {}})["git"], view({**b, "request": {}})["git"]
    untracked = untracked_changes(git_a.pop("untracked", []), git_b.pop("untracked", []))  # a set of names
    changes += sorted(_changes("git", git_a, git_b) + untracked, key=lambda change: change.path)
    return changes


def compare_batch_entries(ledger: Ledger, a: Entry, b: Entry) -> tuple[list, dict, dict, list[str]]:
    """(compare_batches' changes, a's view, b's view, notes) for two batch records of the
    ledger, from their views (Ledger.batch_view): the runs that differ are found from the
    per-run digests (`indexed_differences`), else the settings files' contents are decoded,
    when their SHA-256 differ. A batch whose record holds no run settings (`_unseen`): the
    runs are not compared, and a note says why. A read command's ledger (Ledger.partial) one of
    whose cohorts' blobs cannot be read: all but the runs' settings and the inputs' identities
    compared, and a note names the blob (the command then says so, Ledger.lost)."""
    from runlog.errors import BlobLost

    lost = len(ledger.lost)
    try:
        found = _compare_batch_entries(ledger, a, b)
    except BlobLost:
        if not ledger.partial:
            raise
        found = None
    if found is not None and len(ledger.lost) == lost:
        return found
    from runlog import blobs

    view_a, view_b = (_without_inputs(blobs.without_ref(view[0] if (view := ledger.batch_view(entry.address))
                                                        else ledger.batch_outline(entry.address), blobs.INPUTS))
                      for entry in (a, b))
    notes = [f"blob {sha[:12]} (part of a cohort) cannot be read: the runs' settings and the inputs' identities "
             "are not compared" for sha in list(ledger.lost)[lost:] or list(ledger.lost)]
    return compare_batches(view_a, view_b, lambda: ([], []), lambda: ([], [], [])), view_a, view_b, notes


def _without_inputs(view: dict) -> dict:
    """A batch's view without its inputs' identities (held inline)."""
    resolution = view.get("resolution")
    if isinstance(resolution, dict) and "inputs" in resolution:
        view = {**view, "resolution": {k: v for k, v in resolution.items() if k != "inputs"}}
    return view


def _compare_batch_entries(ledger: Ledger, a: Entry, b: Entry) -> tuple[list, dict, dict, list[str]]:
    found_a, found_b = ledger.batch_view(a.address), ledger.batch_view(b.address)
    notes = [f"{side}: {why}: its runs are not compared" for side, entry, found in (("A", a, found_a), ("B", b, found_b))
             if (why := _unseen(entry, found[0] if found is not None else ledger.batch_outline(entry.address)))]
    if notes:  # its runs are unknown, not absent: comparing none would call the other's runs removed
        view_a, view_b = _with_inputs(ledger, *(found[0] if found is not None else ledger.batch_outline(entry.address)
                                                for entry, found in ((a, found_a), (b, found_b))))
        return compare_batches(view_a, view_b, lambda: ([], []), lambda: ([], [], [])), view_a, view_b, notes
    if found_a is None or found_b is None:
        a, b = ledger.get(a.address) or a, ledger.get(b.address) or b
        return compare_batches(a.record, b.record), a.record, b.record, []

    def settings() -> tuple[list, list]:
        whole_a, whole_b = ledger.get(a.address) or a, ledger.get(b.address) or b  # a, b may hold views
        return run_settings(_decoded(ledger, whole_a)), run_settings(_decoded(ledger, whole_b))

    view_a, view_b = _with_inputs(ledger, found_a[0], found_b[0])
    return compare_batches(view_a, view_b, settings,
                           lambda: indexed_differences(ledger, a.seq, b.seq)), view_a, view_b, []


def _with_inputs(ledger: Ledger, view_a: dict, view_b: dict) -> tuple[dict, dict]:
    """Two batch views with the inputs' identities compare_batches compares: those held by
    reference (runlog/blobs.py) put in place, but when both name the same blob (the same
    identities, byte for byte: nothing to compare, none is decoded)."""
    from runlog import blobs

    held_a, held_b = blobs.ref_of(view_a, blobs.INPUTS), blobs.ref_of(view_b, blobs.INPUTS)
    if held_a is not None and held_b is not None and held_a.get("sha256") == held_b.get("sha256"):
        return blobs.without_ref(view_a, blobs.INPUTS), blobs.without_ref(view_b, blobs.INPUTS)
    return blobs.inflate(view_a, ledger.blob), blobs.inflate(view_b, ledger.blob)


def _unseen(entry: Entry, outline: dict) -> str | None:
    """Why a batch's record holds no run settings (imported: never seen; a settings file not
    read at submission), None when it holds them."""
    from runlog.membersettings import settings_unknown

    if outline["outcome"]["status"] != "submitted" or not settings_unknown(outline):
        return None
    pinned = (outline.get("batch") or {}).get("settings_file") or {}
    why = (f"its settings file {pinned.get('uri')} could not be read at submission" if "error" in pinned
           else "started without runlog, recorded by import")
    return f"batch {entry.batch_id}'s run settings were never seen ({why})"


def configuration_fingerprint(ledger: Ledger, ref: str) -> str:
    """The fingerprint of REF's configuration, for listing the records that share it: UsageError
    when REF's configuration is not known whole (a batch whose record holds no run settings, a
    member whose record holds its batch's default setting alone): its fingerprint then covers
    the default alone, and what shares it is not known to be the same configuration."""
    from runlog.errors import UsageError
    from runlog.membersettings import needs_settings

    entry = ledger.resolve(ref, whole=False)
    if entry.kind == "batch":
        why = _unseen(entry, ledger.batch_outline(entry.address))
        if why:
            raise UsageError(f"{why}: its fingerprint covers its default setting alone, so the cohorts that share "
                             "it are not known to be the same configuration; `diff('RUN_ID', 'RUN_ID')` compares "
                             "two runs from the settings GetRun reported")
    elif needs_settings(entry.record):
        batch = entry.record["batch"]
        raise UsageError(f"run {entry.run_id}'s own settings were never seen (a run of batch {batch.get('batch_id')}, "
                         "started without runlog or with a settings file runlog could not read): its record and "
                         "fingerprint hold its batch's default setting alone, so the runs that share it are not "
                         f"known to be the same configuration; `diff('{entry.run_id}', 'RUN_ID')` compares it with "
                         "another run from the settings GetRun reported")
    return entry.fingerprint


def indexed_differences(ledger: Ledger, seq_a: int, seq_b: int) -> RunDifferences | None:
    """run_differences of two batch records (their seqs) from `batch_settings` (migration
    m009, runlog/cohortindex.py): the buckets of runSettingIds whose digests differ, then in
    them ([runSettingId, position, digest, start, length] each) the runs only one record has
    and those whose digests differ, whose settings alone
    are read from the bodies (by their offsets) and decoded exactly, as `_decoded` decodes a
    record; a run whose two settings decode equal (same_json: 1 and 1.0 differ) is not changed. Each setting read is checked
    against its digest. None when the ledger cannot tell (see Ledger.setting_differences) or
    a setting read is not what its row says: the caller then decodes both records."""
    import json

    from runlog import cohortindex
    from runlog.diff import same_json

    found = ledger.setting_differences(seq_a, seq_b)
    if found is None:
        return None
    try:
        rows_a = {row[0]: row for text in found[0] for row in json.loads(text)}
        rows_b = {row[0]: row for text in found[1] for row in json.loads(text)}
    except (ValueError, TypeError, IndexError, KeyError):
        return None  # not as runlog wrote them (verify says so): decode the records
    removed = sorted((row for ident, row in rows_a.items() if ident not in rows_b), key=_position)
    added = sorted((row for ident, row in rows_b.items() if ident not in rows_a), key=_position)
    changed = sorted((row for ident, row in rows_a.items() if ident in rows_b and rows_b[ident][2] != row[2]),
                     key=_position)
    wanted_a = removed + changed
    wanted_b = added + [rows_b[row[0]] for row in changed]
    pieces_a = ledger.body_pieces(seq_a, [(row[3], row[4]) for row in wanted_a])
    pieces_b = ledger.body_pieces(seq_b, [(row[3], row[4]) for row in wanted_b])
    if pieces_a is None or pieces_b is None:
        return None
    values: list[list[Any]] = [[], []]
    for side, wanted, pieces in ((0, wanted_a, pieces_a), (1, wanted_b, pieces_b)):
        for row, data in zip(wanted, pieces, strict=True):
            if cohortindex.digest(data) != row[2]:
                return None  # the row was changed outside runlog (verify says so): decode the records
            try:  # the json module (loaded already; orjson's import costs more than these few runs)
                values[side].append(json.loads(data))
            except (ValueError, RecursionError):
                return None
    own_removed, own_changed = values[0][:len(removed)], values[0][len(removed):]
    other_added, other_changed = values[1][:len(added)], values[1][len(added):]
    return ([(row[0], own) for row, own in zip(removed, own_removed, strict=True)],
            [(row[0], other) for row, other in zip(added, other_added, strict=True)],
            [(row[0], own, other) for row, own, other in zip(changed, own_changed, other_changed, strict=True)
             if not same_json(own, other)])


def _position(row: tuple) -> int:
    return row[1]


def _decoded(ledger: Ledger, entry: Entry) -> dict:
    """The record, decoded exactly by fastjson.loads (orjson, several times faster than the
    json module on a cohort of 100 000 runs; the json module for a text orjson would read
    otherwise: an integer beyond 64 bits). A cohort held by reference is put back in place
    (runlog/blobs.py)."""
    from runlog import blobs, fastjson

    return blobs.inflate(fastjson.loads(entry.body.encode("utf-8")), ledger.blob)


def member_settings_counts(ledger: Ledger, batch: Entry) -> dict[str, int] | None:
    """For a batch whose members' records hold the default setting alone (a batch started
    without runlog): how many of its runs' own settings were observed from GetRun, how many
    are unknown with a reason, how many were not asked yet (runlog.membersettings). None for
    a batch whose records hold its runs' settings."""
    from runlog.membersettings import SOURCE, settings_unknown

    if not settings_unknown(ledger.batch_outline(batch.address)):  # the cohort and its inputs are not read
        return None  # its records hold the settings: its members are not read either
    members, observed, unknown = ledger.member_settings_counts(batch.address, SOURCE)
    if not members:
        return None
    return {"runs": members, "observed": observed, "unknown": unknown, "not_asked": members - observed - unknown}
