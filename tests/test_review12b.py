"""Review 12b findings (what runlog does after a submission: watch, refresh, recover, import,
and the emulator's fidelity): each test fails on 4ea436f and shows one bug. The emulator over
HTTP, real ledger files, the CLI."""

from __future__ import annotations

import json

from helpers import SEED_1
from runlog.ledger import Ledger


def _submitted(run_cli) -> dict:
    submitted = run_cli(*SEED_1)
    assert submitted.exit_code == 0, submitted.output
    return json.loads(submitted.stdout)


# -- watch prints what GetRun says as text, escaped ------------------------------------------------

HOSTILE = "disk full\x1b]0;owned\x07\x1b[2J\u202elive\rFORGED"


def test_review12b_watch_escapes_the_status_and_failure_reason_it_prints(aws_env, ledger_path, git_repo, run_cli):
    """`runlog watch` printed GetRun's status (in its status line) and failureReason (in its
    last line) as the service sent them: an OSC sequence retitles the terminal, ESC[2J clears
    it, U+202E reverses what follows and a CR overwrites the line with a forged one. `refresh`,
    `log` and `show` escape them; watch now does too. The ledger keeps the text as sent."""
    run = _submitted(run_cli)
    aws_env.answer_run(run["id"], status="FAILED", failureReason=HOSTILE, statusMessage=HOSTILE)
    watched = run_cli("watch", run["id"], "--interval", "0.1", "--timeout", "5")
    assert watched.exit_code == 1, watched.output
    escaped = "disk full\\x1b]0;owned\\x07\\x1b[2J\\u202elive\\rFORGED"
    assert watched.stdout == f"run {run['id']} FAILED ({escaped})\n"
    assert watched.stderr == f"run {run['id']}: FAILED\n"
    aws_env.answer_run(run["id"], status="FAILED\x1b[2J\u202e")
    rewatched = run_cli("watch", run["id"], "--interval", "0.1", "--timeout", "0.1")
    assert rewatched.exit_code == 1
    assert rewatched.stderr.splitlines()[0] == f"run {run['id']}: FAILED\\x1b[2J\\u202e"
    assert "\x1b" not in rewatched.output and "\u202e" not in rewatched.output
    with Ledger.open(ledger_path, create=False) as ledger:
        bodies = [o["body"] for o in ledger.observations(ledger.resolve(run["id"]).address) if o["source"] == "GetRun"]
    assert bodies[0]["failureReason"] == HOSTILE  # recorded as the service said it


# -- a status that is not text is not recorded as text ---------------------------------------------

def test_review12b_a_status_that_is_not_text_is_refused_for_that_run_alone(aws_env, ledger_path, git_repo, run_cli):
    """GetRun answering `status: {"a": 1}` stopped `refresh` (every run after it too) with
    "cannot read the ledger … restore it from a backup", exit 2: the ledger was fine; and a
    `status: 5` was recorded as the status "5" (SQLite made text of it), a status the service
    never gave. Now that run's line says its status is not text and nothing is recorded for
    it (exit 1); the other runs are refreshed; watch says the same in one line."""
    odd, plain = _submitted(run_cli), _submitted(run_cli)
    aws_env.advance(200)
    for value, kind in (({"a": 1}, 'an object ({"a": 1})'), (5, "a number (5)")):
        aws_env.answer_run(odd["id"], status=value)
        refreshed = run_cli("refresh", "--all")
        assert refreshed.exit_code == 1, refreshed.output
        lines = refreshed.stdout.splitlines()
        assert lines[0].startswith(f"run {odd['id']} (record ")
        assert lines[0].endswith(f"GetRun's status for run {odd['id']} is {kind}, not text: not recorded; "
                                 "`runlog refresh` again once HealthOmics answers with a status")
        assert lines[1:] == [f"run {plain['id']}: " + ("PENDING -> COMPLETED" if value != 5 else "COMPLETED (unchanged)")]
        watched = run_cli("watch", odd["id"], "--interval", "0.1", "--timeout", "1")
        assert watched.exit_code == 1 and watched.stderr.startswith("runlog: error: GetRun's status for run"), \
            watched.output
    with Ledger.open(ledger_path, create=False) as ledger:
        entry = ledger.resolve(odd["id"])
        assert [o["status"] for o in ledger.observations(entry.address)] == []
        assert entry.status == "PENDING"


# -- an answer that does not say which run it is, is not taken for the recorded run ----------------

def test_review12b_an_answer_without_a_text_uuid_is_not_recorded_for_the_run(aws_env, ledger_path, git_repo,
                                                                            run_cli):
    """HealthOmics reuses run ids after a deletion, so the uuid tells whose answer GetRun gave.
    An answer with no uuid was recorded as the recorded run's status (COMPLETED, though it may
    be another run's that got the id), and one whose uuid is the number 1 recorded the run as
    DELETED (1 is not its uuid), which nobody said. Neither is recorded now: that run's line
    says why, exit 1; refresh goes on with the other runs."""
    odd, plain = _submitted(run_cli), _submitted(run_cli)
    aws_env.advance(200)
    for value, why in ((None, "GetRun gave no uuid"), (1, "GetRun's uuid is a number (1), not text")):
        aws_env.answer_run(odd["id"], uuid=value)
        refreshed = run_cli("refresh", odd["id"], plain["id"])
        assert refreshed.exit_code == 1, refreshed.output
        first, second = refreshed.stdout.splitlines()
        assert first.endswith(f": {why} for run {odd['id']}: runlog cannot tell whether it is run {odd['uuid']} or "
                              "another run that reused its id; not recorded"), first
        assert second.startswith(f"run {plain['id']}: ")
        watched = run_cli("watch", odd["id"], "--interval", "0.1", "--timeout", "1")
        assert watched.exit_code == 1 and watched.stderr == f"runlog: error: {first.split(': ', 1)[1]}\n", \
            watched.output
    with Ledger.open(ledger_path, create=False) as ledger:
        entry = ledger.resolve(odd["id"])
        assert ledger.observations(entry.address) == [] and entry.status == "PENDING"
    aws_env.answer_run(odd["id"], uuid=odd["uuid"])  # the run's own uuid again: recorded as before
    assert run_cli("refresh", odd["id"]).stdout == f"run {odd['id']}: PENDING -> COMPLETED\n"


# -- import leaves a run a pending attempt may have started to recover ----------------------------

def test_review12b_import_does_not_record_a_run_a_pending_attempt_may_have_started(aws_env, ledger_path, git_repo,
                                                                                   run_cli):
    """StartRun answers 500 after it started the run: the attempt stays pending. `runlog
    import` then recorded that run as an imported record, and `runlog recover` (the same
    requestId: the service returns the same run) recorded it again: one run, two records (two
    records for `show RUN_ID` to be ambiguous between, two runs in reports). Import now leaves
    such a run to recover, as it already left a pending submit-batch's batch; then recover
    records it once, and an unrelated run is imported as before."""
    aws_env.inject("error", operation="StartRun", count=3, phase="after")  # every try of the submit
    lost = run_cli(*SEED_1)
    assert lost.exit_code == 1 and "outcome is unknown" in lost.stderr, lost.output
    (run_id,) = [r["id"] for r in aws_env.runs.values() if r["id"] != "3282892"]  # not the seed run
    imported = run_cli("import")
    assert imported.exit_code == 0, imported.output
    assert (f"runlog: 1 run(s) may have been started by pending attempts (the first: run {run_id}): "
            "`runlog recover` records them (not imported)") in imported.stderr
    assert f"imported run {run_id} " not in imported.stdout
    assert imported.stdout.splitlines()[-1] == "1 run(s) imported, 0 already in the ledger"  # the seed run
    as_json = json.loads(run_cli("import", "--json").stdout)
    assert as_json["pending"] == [run_id] and as_json["imported"] == []
    recovered = run_cli("recover")
    assert recovered.exit_code == 0, recovered.output
    with Ledger.open(ledger_path, create=False) as ledger:
        assert [e.kind for e in ledger.entries() if e.run_id == run_id] == ["submit"]
    again = run_cli("import")
    assert again.exit_code == 0 and "pending" not in again.stderr, again.output
    assert again.stdout.splitlines()[-1] == "0 run(s) imported, 2 already in the ledger"
    assert run_cli("show", run_id).exit_code == 0


# -- watch keeps following through a throttle or a 5xx ----------------------------------------------

def test_review12b_watch_keeps_following_through_failures_that_say_nothing_about_the_run(aws_env, ledger_path,
                                                                                        git_repo, run_cli):
    """A throttle or a 500 that outlived botocore's retries ended `runlog watch` with exit 1,
    the status of a FAILED run, and a line naming no way on ("GetRun failed:
    ThrottlingException: …"): a script `runlog watch @1 && next-step` took it for a failed
    run. Such a failure says nothing about the run: watch warns and asks again at the next
    interval, until the run ends (exit 0) or --timeout passes. A refusal that will not go
    away (AccessDenied) still ends it at once."""
    run = _submitted(run_cli)
    aws_env.advance(200)
    aws_env.inject("throttle", operation="GetRun", count=3)  # every try of the first poll
    aws_env.inject("error", operation="GetRun", count=3, skip=3)  # and of the second
    watched = run_cli("watch", run["id"], "--interval", "0.1", "--timeout", "30")
    assert watched.exit_code == 0, watched.output
    assert watched.stdout == f"run {run['id']} COMPLETED\n"
    assert watched.stderr.splitlines() == [
        "runlog: warning: GetRun failed: ThrottlingException: injected fault: throttle; asking again in 0.1 s",
        "runlog: warning: GetRun failed: InternalServerException: injected fault: error; asking again in 0.1 s",
        f"run {run['id']}: COMPLETED"]
    with Ledger.open(ledger_path, create=False) as ledger:
        assert ledger.resolve(run["id"]).status == "COMPLETED"
    aws_env.inject("error", operation="GetRun", count=3, code="AccessDeniedException")
    refused = run_cli("watch", run["id"], "--interval", "0.1", "--timeout", "30")
    assert refused.exit_code == 1 and refused.stderr == (
        "runlog: error: GetRun failed: AccessDeniedException: injected fault: error\n"), refused.output


# -- the in-flight lock is held by one process at a time --------------------------------------------

OWNERS = """
import os, sys
from pathlib import Path
from runlog import inflight
ledger, marker = Path(sys.argv[1]), Path(sys.argv[1]).with_name("owner")
overlaps = taken = 0
while taken < int(sys.argv[2]):
    hold = inflight.take(ledger, "the-attempt")
    if hold is None:
        continue
    taken += 1
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))  # no other owner now
        os.unlink(marker)
    except FileExistsError:
        overlaps += 1
    hold.release()
print(overlaps)
"""


def test_review12b_the_in_flight_lock_is_owned_by_one_process_at_a_time(tmp_path):
    """`recover`, `recover --abandon` and a submit own an attempt by its lock file's flock
    (runlog/inflight.py). The owner removed the file and then let the lock go, so a process
    that had opened the file just before took the lock on a file no longer there while a
    third made a new file and locked that: two owners at once (about one take in 170 with
    three processes), e.g. a recover re-sending an attempt while an abandon records it as
    never sent. Three processes taking the same attempt's lock 1000 times each now never
    overlap."""
    import subprocess
    import sys

    ledger = tmp_path / "ledger.db"
    procs = [subprocess.Popen([sys.executable, "-c", OWNERS, str(ledger), "1000"], stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    overlaps = [int(p.communicate(timeout=300)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert overlaps == [0, 0, 0]
