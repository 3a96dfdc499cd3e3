"""Session 20: the cohort commands (refresh, watch, import, cancel, show, export, …) against
answers that never come, come twice or lie, through the CLI against the emulator. Each test
failed before the fix it names."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import (
    COHORT_DEFAULT,
    COHORT_RUNS,
    S3Proxy,
    answer_through,
    cohort_setting,
    ended_batch,
    finished_cohort,
    pages_changed,
    proxy_in_front,
    shared_run_cohort,
    submit_cohort,
)


def _status_observations(ledger_path) -> list[tuple]:
    with sqlite3.connect(ledger_path) as conn:
        return conn.execute("SELECT record, status FROM observations WHERE source IN ('ListRuns', 'GetRun') "
                            "ORDER BY record, status").fetchall()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("operation", ["ListRunsInBatch", "ListRuns"])
def test_a_listing_whose_page_tokens_loop_stops_in_one_line_instead_of_paging_for_ever(
        operation, aws_env, ledger_path, git_repo, run_cli):
    """A service whose nextToken goes 1, 2, 1, 2, … (botocore stops only the same token twice
    in a row). Before: refresh paged for ever (ListRuns' pages spooled to a file without end).
    Now: exit 1, one line naming the call and the token; what was recorded is true (verify),
    and a refresh once the service answers right records each member and status once."""
    batch_id = ended_batch(aws_env, run_cli, "S1", "S2", "S3")
    size = "maxItems" if operation == "ListRunsInBatch" else "maxResults"

    def looping(handler, params, region):
        page = handler(dict(params, **{size: 1}), region)
        page["nextToken"] = {None: "1", "1": "2", "2": "1"}[params.get("startingToken")]
        return page

    original = aws_env.handlers[operation]
    answer_through(aws_env, operation, looping)
    refreshed = run_cli("refresh", batch_id)
    assert refreshed.exit_code == 1, refreshed.output
    (line,) = refreshed.output.strip().splitlines()
    assert f"{operation} failed: the service gave page token '1' a second time" in line, line
    assert run_cli("verify").exit_code == 0
    aws_env.handlers[operation] = original
    again = run_cli("refresh", batch_id)
    assert again.exit_code == 0, again.output
    members = json.loads(run_cli("log", "--batch", batch_id, "--json").stdout)
    assert sorted(m["name"] for m in members) == ["align-S1", "align-S2", "align-S3"]
    assert [status for _, status in _status_observations(ledger_path)] == ["COMPLETED"] * 3


@pytest.mark.timeout(60)
def test_a_listing_that_hands_out_a_new_token_for_ever_stops(aws_env, ledger_path, git_repo, run_cli):
    """ListRuns answering the same runs again and again, each time with a new nextToken.
    Before: refresh never ended. Now it stops after a page per run of the batch and 100 more
    (exit 1, one line), each status recorded once."""
    batch_id = ended_batch(aws_env, run_cli, "S1", "S2", "S3")
    asked = []

    def endless(handler, params, region):
        asked.append(params.get("startingToken"))
        page = handler(dict(params, startingToken=None), region)
        page["nextToken"] = f"t{len(asked)}"
        return page

    answer_through(aws_env, "ListRuns", endless)
    refreshed = run_cli("refresh", batch_id)
    assert refreshed.exit_code == 1, refreshed.output
    assert "ListRuns failed: the listing had not ended after 103 pages (at most 103 expected)" in refreshed.output
    assert len(asked) <= 103 + 3  # the pages fetched ahead at most
    assert [status for _, status in _status_observations(ledger_path)] == ["COMPLETED"] * 3
    assert run_cli("verify").exit_code == 0


def test_a_run_listed_again_on_a_later_page_gets_one_status_observation(aws_env, ledger_path, git_repo, run_cli):
    """ListRuns pages that overlap (each repeats the last run of the page before, as an
    offset-paged listing does when runs are added while it is paged). Before: the repeated
    run's status change was recorded twice (the ledger did not show the first yet: its
    transaction was still open). Now each status once."""
    batch_id = ended_batch(aws_env, run_cli, *[f"S{i}" for i in range(1, 8)])

    def overlapping(handler, params, region):
        token = int(params.get("startingToken") or 0)
        page = handler(dict(params, maxResults=2, startingToken=str(token - 1) if token else None), region)
        if "nextToken" in page:
            page["nextToken"] = str(token + 2)
        return page

    answer_through(aws_env, "ListRuns", overlapping)
    refreshed = run_cli("refresh", batch_id)
    assert refreshed.exit_code == 0, refreshed.output
    assert "7 status change(s)" in refreshed.stdout, refreshed.stdout
    observed = _status_observations(ledger_path)
    assert len(observed) == len(set(observed)) == 7, observed
    assert run_cli("verify").exit_code == 0


def test_a_getrun_failure_for_a_failed_member_is_named_as_getruns(aws_env, ledger_path, git_repo, run_cli):
    """refresh asks GetRun for each run ListRuns says FAILED (for its reason). Before: its
    failure read `ListRuns failed: …`, naming the call that had worked. Now the line names
    GetRun and the run; a rerun once GetRun answers records the reason."""
    aws_env.batch_rate = 100
    aws_env.batch_fault("run", run_setting_ids=["S2"], reason="OUT_OF_MEMORY")
    batch_id = submit_cohort(run_cli, "S1", "S2")
    aws_env.advance(200)
    aws_env.inject("error", operation="GetRun", count=10)
    refreshed = run_cli("refresh", batch_id)
    assert refreshed.exit_code == 1, refreshed.output
    (line,) = refreshed.output.strip().splitlines()
    failed = [m for m in json.loads(run_cli("log", "--batch", batch_id, "--json").stdout) if m["name"] == "align-S2"]
    assert f"GetRun of failed run {failed[0]['run_id']} failed: InternalServerException" in line, line
    assert "ListRuns" not in line
    aws_env.faults.clear()
    assert run_cli("refresh", batch_id).exit_code == 0
    facts = json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]
    assert [(f["run_setting_id"], f["reason"]) for f in facts["failures"]] == [("S2", "OUT_OF_MEMORY")], facts


@pytest.mark.parametrize("action", [[], ["--delete-runs"]])
def test_a_cancel_the_service_accepted_is_said_accepted_when_the_getbatch_after_it_fails(
        action, aws_env, ledger_path, git_repo, run_cli):
    """`runlog cancel B` (or --delete-runs) is followed by GetBatch. Before: when that GetBatch
    failed, the only line was `GetBatch failed: …` (exit 1): the user could not tell that the
    batch had been cancelled (its runs deleted), which was recorded. Now the line says the
    action was accepted and recorded, then why the status is not known yet."""
    aws_env.batch_rate = 1
    batch_id = submit_cohort(run_cli, "S1", "S2", "S3")
    aws_env.advance(12 if not action else 300)
    aws_env.inject("error", operation="GetBatch", count=10)
    acted = run_cli("cancel", batch_id, *action)
    assert acted.exit_code == 1, acted.output
    (line,) = acted.stderr.strip().splitlines()
    operation = "DeleteRunBatch" if action else "CancelRunBatch"
    assert f"{operation} of batch {batch_id} was accepted (recorded), but the GetBatch after it failed " \
           "(GetBatch failed: InternalServerException" in line, line
    observed = json.loads(run_cli("show", batch_id, "--json").stdout)["observations"]
    assert [o["body"].get("answer") for o in observed if o["source"] == operation] == [{}]
    aws_env.faults.clear()
    assert run_cli("refresh", batch_id).exit_code == 0
    assert run_cli("verify").exit_code == 0


def test_a_run_listed_for_two_run_settings_is_said_and_each_member_gets_its_status(
        aws_env, ledger_path, git_repo, run_cli):
    """ListRunsInBatch giving S1's run to S2 as well (a faulty or hostile answer). Before: both
    member records named the run, but only one got its statuses (the other read PENDING for
    ever in `show B`'s counts), and nothing said anything was odd. Now each gets the run's
    statuses, and refresh and `show B` say which run was given to which run settings
    (observed once)."""
    batch_id, refreshed = shared_run_cohort(aws_env, run_cli)
    assert refreshed.exit_code == 0, refreshed.output
    run_id = [m for m in json.loads(run_cli("log", "--batch", batch_id, "--json").stdout)
              if m["name"] == "align-S1"][0]["run_id"]
    said = f"1 run(s) have the member records of more than one run setting (run {run_id}: S1, S2)"
    assert said in refreshed.stderr, refreshed.output
    assert run_cli("refresh", batch_id).exit_code == 0
    shown = json.loads(run_cli("show", batch_id, "--json").stdout)
    assert shown["batch"]["run_status"] == {"FAILED": 2, "COMPLETED": 1}, shown["batch"]
    assert [o["source"] for o in shown["observations"]].count("ListRunsInBatch:shared-run") == 1
    assert said in run_cli("show", batch_id).stdout
    with sqlite3.connect(ledger_path) as conn:  # GetRun asked once for the run, its answer on each member
        assert conn.execute("SELECT count(*) FROM observations WHERE source = 'GetRun'").fetchone()[0] == 2
    assert sum(r["operation"] == "GetRun" for r in aws_env.requests) == 1
    assert run_cli("verify").exit_code == 0


def test_prov_n_of_a_cohort_holds_no_terminal_escape_from_a_failure_reason(aws_env, ledger_path, git_repo, run_cli,
                                                                          tmp_path):
    """A run's failureReason is the service's text (a hostile one: ESC sequences, BEL, a
    carriage return). Before: `export B` wrote it raw into prov.provn, so `cat prov.provn`
    set the terminal's title and colours, where methods.md and samples.csv show escapes. Now
    prov.provn shows them as visible escapes (PROV-N's escaped backslash), and prov.json
    keeps the exact text."""
    reason = "OOM\x1b]0;pwned\x07\x1b[31m\rRED"
    aws_env.batch_rate = 100
    aws_env.batch_fault("run", run_setting_ids=["S1"], reason=reason)
    batch_id = submit_cohort(run_cli, "S1", "S2")
    aws_env.advance(200)
    assert run_cli("refresh", batch_id).exit_code == 0
    for form, name in (("prov-n", "prov.provn"), ("prov-json", "prov.json")):
        exported = run_cli("export", batch_id, "-f", form, "-o", str(tmp_path / name))
        assert exported.exit_code == 0, exported.output
    provn = (tmp_path / "prov.provn").read_text()
    assert not any(c in provn for c in "\x1b\x07\r"), [line for line in provn.splitlines() if "OOM" in line]
    assert 'runlog:failureReason="OOM\\\\x1b]0;pwned\\\\x07\\\\x1b[31m\\rRED"' in provn
    texts: list = []
    json.loads((tmp_path / "prov.json").read_text(), object_hook=lambda o: texts.extend(o.values()) or o)
    assert reason in texts  # the exact value, in the JSON


class _FailingHead(S3Proxy):
    """moto behind a proxy that answers HeadObject of a settings file with `status` (S3's error)."""

    status: int | None = None

    def forward(self, handler) -> None:
        if self.status and handler.command == "HEAD" and "settings.json" in handler.path:
            handler.send_response_only(self.status)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        super().forward(handler)


@pytest.mark.parametrize("status", [500, 503])
def test_a_settings_file_s3_fails_to_describe_is_said_not_checked(status, s3_emulator, bucket, ledger_path, git_repo,
                                                                  run_cli, monkeypatch):
    """refresh asks S3 (HeadObject) whether a batch's settings file is still the one pinned.
    Before: a 5xx (after botocore's retries) was taken as a file runlog may not read, and
    nothing was said: the user could not tell the check was not made. Now it is said, as when
    S3 cannot be reached, and the change carries settings_file_unchecked; nothing is observed."""
    bucket.create_bucket(Bucket="cohort-bucket")
    bucket.put_object(Bucket="cohort-bucket", Key="cohort/settings.json",
                      Body=json.dumps([cohort_setting("S1")]).encode())
    s3_emulator.batch_rate = 100
    with proxy_in_front(_FailingHead, bucket, monkeypatch) as front:
        submitted = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT), "--batch-run-settings",
                            json.dumps({"s3UriSettings": "s3://cohort-bucket/cohort/settings.json"}))
        assert submitted.exit_code == 0, submitted.output
        batch_id = json.loads(submitted.stdout)["id"]
        s3_emulator.advance(200)
        front.status = status
        refreshed = run_cli("refresh", batch_id, "--json")
    assert refreshed.exit_code == 0, refreshed.output
    assert "the settings files of 1 batch(es) were not checked" in refreshed.stderr, refreshed.stderr
    assert f"(HTTP {status})" in refreshed.stderr
    (change,) = json.loads(refreshed.stdout)
    assert f"(HTTP {status})" in change["settings_file_unchecked"]
    observed = json.loads(run_cli("show", batch_id, "--json").stdout)["observations"]
    assert "HeadObject:settings-file" not in [o["source"] for o in observed]


def test_a_status_that_is_not_text_is_no_status_change_at_every_refresh(aws_env, ledger_path, git_repo, run_cli):
    """ListRuns answering a run's status as a number or an object (outside the model: a
    faulty or hostile answer). Before: each refresh appended another status-less observation
    for each such run and counted it a status change, for ever. Now such a status says
    nothing (no observation); the run's status is recorded once it is text again."""
    batch_id = ended_batch(aws_env, run_cli, "S1", "S2")
    original = aws_env.handlers["ListRuns"]

    def odd(page):
        page["items"][0]["status"], page["items"][1]["status"] = 5, {"status": "COMPLETED"}

    pages_changed(aws_env, "ListRuns", odd)
    for _ in range(2):
        refreshed = run_cli("refresh", batch_id)
        assert refreshed.exit_code == 0 and "0 status change(s)" in refreshed.stdout, refreshed.output
    assert _status_observations(ledger_path) == []
    aws_env.handlers["ListRuns"] = original
    refreshed = run_cli("refresh", batch_id)
    assert "2 status change(s)" in refreshed.stdout, refreshed.output
    assert [status for _, status in _status_observations(ledger_path)] == ["COMPLETED"] * 2
    assert run_cli("verify").exit_code == 0


def test_watch_says_what_refresh_says_of_a_listing_that_gives_runs_twice(aws_env, ledger_path, git_repo, run_cli):
    """`runlog watch B` refreshes as `runlog refresh B` does, but said nothing of run settings
    listed with two runs, nor of a run listed for two run settings (refresh warns of both).
    Now watch warns of each finding once, however many times it refreshes."""
    batch_id = ended_batch(aws_env, run_cli, "S1", "S2", "S3")

    def twice(page):
        first, second, third = page["runs"]
        second.update({k: first[k] for k in ("runId", "runInternalUuid", "runArn")})  # S1's run, for S2 too
        third["runSettingId"] = "S1"  # S3's run, listed as S1's

    pages_changed(aws_env, "ListRunsInBatch", twice)
    watched = run_cli("watch", batch_id, "--interval", "0.1", "--timeout", "1")
    assert watched.exit_code == 0, watched.output
    assert watched.stderr.count("run(s) have the member records of more than one run setting") == 1, watched.stderr
    assert watched.stderr.count("run setting(s) have more than one member record") == 1, watched.stderr



@pytest.mark.parametrize("attempt", range(3))  # the child's answer is cut short at a moment that varies
@pytest.mark.parametrize("call", [2, 3])
def test_ctrl_c_while_the_writer_process_answers_is_one_line(call, attempt, s3_server, monkeypatch, ledger_path, git_repo,
                                                               run_cli, tmp_path):
    """Ctrl-C (SIGINT) of a refresh whose members a writer process writes (runlog/writerproc.py),
    once the listing has been handed over. Before: the child, its answer cut short when the
    parent stopped listening, made Python print `Exception ignored in: <_io.TextIOWrapper
    name='<stdout>'> BrokenPipeError` on the terminal both share, before the parent's line.
    Now the one line `runlog: error: interrupted`, and a rerun records each member once."""
    with finished_cohort(s3_server, monkeypatch, run_cli) as (_, batch_id):
        listing = tmp_path / "children.txt"
        interrupted = subprocess.run(
            [sys.executable, str(Path(__file__).resolve().parent / "killers.py"),
             f"child-at-call:ListRuns:{call}:interrupt:{listing}", "refresh", batch_id], cwd=git_repo,
            capture_output=True, text=True, timeout=240, env={**os.environ, "RUNLOG_WRITER_PROCESS": "1"})
        assert interrupted.returncode == 130, interrupted.stderr
        assert interrupted.stderr.strip().splitlines() == ["runlog: error: interrupted"]
        again = run_cli("refresh", batch_id)
        assert again.exit_code == 0, again.output
        with sqlite3.connect(ledger_path) as conn:
            assert conn.execute("SELECT count(*), count(DISTINCT address) FROM records WHERE kind = 'member'"
                                ).fetchone() == (COHORT_RUNS, COHORT_RUNS)
        assert run_cli("verify").exit_code == 0


@pytest.mark.parametrize("lie", [{"submissionStatus": "PENDING"}, {"submissionStatus": "DELETE_SUCCESS"}, {}])
def test_a_submission_listed_without_a_run_or_a_failure_is_not_recorded_as_rejected(
        lie, aws_env, ledger_path, git_repo, run_cli):
    """ListRunsInBatch listing a submission with no run and a status other than FAILED (outside
    the model, DELETE_SUCCESS without its run, or no status). Before: a member record said the
    submission was `rejected` (SubmissionFailed), for good (records are never changed), and
    once the service listed the run, the run setting had two member records, one false. Now
    it is not recorded (refresh says how many), and the next refresh records the run once."""
    batch_id = ended_batch(aws_env, run_cli, "S1", "S2")
    original = aws_env.handlers["ListRunsInBatch"]

    def runless(page):
        for member in ("runId", "runInternalUuid", "runArn", "submissionStatus"):
            page["runs"][0].pop(member, None)
        page["runs"][0].update(lie)

    pages_changed(aws_env, "ListRunsInBatch", runless)
    refreshed = run_cli("refresh", batch_id)
    assert refreshed.exit_code == 0, refreshed.output
    assert "1 new member record(s)" in refreshed.stdout, refreshed.stdout
    assert f"batch {batch_id}: 1 submission(s) ListRunsInBatch listed with neither a run nor the status FAILED were " \
           "not recorded" in refreshed.stderr, refreshed.stderr
    aws_env.handlers["ListRunsInBatch"] = original
    assert run_cli("refresh", batch_id).exit_code == 0
    facts = json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]
    assert (facts["submission"], facts["members_recorded"], facts["failures_count"]) == ({"SUCCESS": 2}, 2, 0), facts
    assert run_cli("verify").exit_code == 0


class _FailingReplayGet(S3Proxy):
    """moto behind a proxy that answers GetObject of a replay's settings file with a 500."""

    def forward(self, handler) -> None:
        if handler.command == "GET" and ".replay-" in handler.path:
            handler.send_response_only(500)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        super().forward(handler)


def test_a_replay_whose_settings_file_cannot_be_read_back_pins_it_as_written(s3_emulator, bucket, ledger_path,
                                                                            git_repo, run_cli, monkeypatch):
    """`replay B --only failed` of more than 100 runs writes a new settings file, then
    submit-batch reads it back to pin it. Before: when that read failed (a 5xx), the replay's
    batch record said the file was not read and held no cohort, though runlog had just written
    its bytes: its runs' settings unknown, the replay itself never replayable. Now the file is
    pinned as written (PutObject's ETag, the bytes' size and SHA-256, the selection), said on
    stderr."""
    import hashlib

    bucket.create_bucket(Bucket="cohort-bucket")
    samples = [f"S{i:03d}" for i in range(120)]
    bucket.put_object(Bucket="cohort-bucket", Key="cohort/settings.json",
                      Body=json.dumps([cohort_setting(s) for s in samples]).encode())
    s3_emulator.batch_rate = 1000
    s3_emulator.batch_fault("run", reason="OUT_OF_MEMORY")
    with proxy_in_front(_FailingReplayGet, bucket, monkeypatch):
        submitted = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT), "--batch-run-settings",
                            json.dumps({"s3UriSettings": "s3://cohort-bucket/cohort/settings.json"}))
        batch_id = json.loads(submitted.stdout)["id"]
        s3_emulator.advance(300)
        assert run_cli("refresh", batch_id).exit_code == 0
        replayed = run_cli("replay", batch_id, "--only", "failed", "--allow-drift")
    assert replayed.exit_code == 0, replayed.output
    assert "not read back (500: " in replayed.stderr and "pinned as runlog wrote it" in replayed.stderr
    replay_id = json.loads(replayed.stdout)["id"]
    record = json.loads(run_cli("show", replay_id, "--json").stdout)["record"]
    pinned = record["batch"]["settings_file"]
    key = pinned["uri"].removeprefix("s3://cohort-bucket/")
    stored = bucket.get_object(Bucket="cohort-bucket", Key=key)
    body = stored["Body"].read()
    assert "error" not in pinned and record["batch"]["runs"] == 120, pinned
    assert (pinned["sha256"], pinned["size"], pinned["etag"]) == (hashlib.sha256(body).hexdigest(), len(body),
                                                                  stored["ETag"].strip('"'))
    again = run_cli("replay", replay_id, "--dry-run", "--allow-drift")  # its cohort is known: replayable
    assert again.exit_code == 0, again.output
    assert run_cli("verify").exit_code == 0
