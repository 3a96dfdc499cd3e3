"""Session 22's changes, each as a user sees it through the CLI against the emulator."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from helpers import omics_client, submit_cohort
from runlog.ledger import Ledger

NOT_FOUND = "ResourceNotFoundException"


def _log_status(run_cli, batch_id):
    (row,) = [row for row in json.loads(run_cli("log", "--json").stdout) if row.get("batch_id") == batch_id]
    return row["status"]


def test_a_batch_not_found_right_after_submission_is_not_recorded_deleted_and_its_members_come(
        aws_env, ledger_path, git_repo, run_cli):
    """GetBatch answering ResourceNotFound for a batch runlog has just submitted (never seen
    since: a fault here, or a service that does not yet find what it created) was recorded as
    DELETED, and `runlog refresh` without REFs then said "no unfinished runs to refresh" for
    good: the batch's runs were never recorded. DeleteBatch refuses a batch that has not
    finished, so a not-found now is recorded as what it is (no status, the status last seen),
    and the next plain `refresh` asks again and records the members."""
    aws_env.batch_rate = 1
    batch_id = submit_cohort(run_cli, "S1", "S2", "S3")
    aws_env.faults.add("error", "GetBatch", code=NOT_FOUND)
    first = run_cli("refresh")
    assert first.exit_code == 0, first.output
    assert f"batch {batch_id}: GetBatch not found (last seen CREATING" in first.stdout, first.stdout
    assert "DELETED" not in first.stdout
    assert _log_status(run_cli, batch_id) == "CREATING"
    shown = run_cli("show", batch_id)
    (line,) = [line for line in shown.stdout.splitlines() if line.startswith("GetBatch") and "not found" in line]
    assert "last seen CREATING" in line, line
    facts = json.loads(run_cli("show", batch_id, "--json").stdout)
    assert facts["batch"]["not_found"]["last_seen"] == "CREATING" and facts["status"] == "CREATING", facts["batch"]
    assert facts["observations"][-1]["status"] is None

    aws_env.faults.add("error", "GetBatch", code=NOT_FOUND)
    again = json.loads(run_cli("refresh", "--json").stdout)  # the same answer: not recorded twice
    (change,) = [c for c in again if c.get("batch_id") == batch_id]
    assert change["status"] is None and change["not_found"] == {"last_seen": "CREATING"}, change
    assert len(json.loads(run_cli("show", batch_id, "--json").stdout)["observations"]) == len(facts["observations"])

    aws_env.advance(30)
    later = run_cli("refresh")
    assert later.exit_code == 0 and f"batch {batch_id}: INPROGRESS; 3 run(s) listed, 3 new member record(s)" \
        in later.stdout, later.output
    facts = json.loads(run_cli("show", batch_id, "--json").stdout)
    assert facts["batch"]["not_found"] is None and facts["batch"]["members_recorded"] == 3, facts["batch"]
    assert run_cli("verify", "--no-remote").exit_code == 0


def test_a_running_batch_not_found_keeps_its_status_and_watch_goes_on(aws_env, ledger_path, git_repo, run_cli):
    """A batch last seen INPROGRESS that GetBatch does not find once: `log` keeps INPROGRESS
    (it showed DELETED, which ranked above every status for good), `watch` says it was not
    found and goes on polling to the batch's real end."""
    aws_env.batch_rate = 1
    batch_id = submit_cohort(run_cli, "S1", "S2")
    aws_env.advance(30)
    assert f"batch {batch_id}: INPROGRESS" in run_cli("refresh").stdout
    aws_env.faults.add("error", "GetBatch", code=NOT_FOUND)
    assert "last seen INPROGRESS" in run_cli("refresh").stdout
    assert _log_status(run_cli, batch_id) == "INPROGRESS"
    aws_env.faults.add("error", "GetBatch", code=NOT_FOUND)
    answer = aws_env.handlers["GetBatch"]

    def later(params, request):  # each GetBatch that is answered finds the batch 100 s on
        aws_env.advance(100)
        return answer(params, request)

    aws_env.handlers["GetBatch"] = later
    watched = run_cli("watch", batch_id, "--interval", "0.1", "--timeout", "60")
    assert watched.exit_code == 0, watched.output
    assert "last seen INPROGRESS" in watched.stderr and f"batch {batch_id} PROCESSED" in watched.stdout, watched.output
    assert _log_status(run_cli, batch_id) == "PROCESSED"


def test_a_batch_deleted_after_it_finished_is_still_observed_deleted(aws_env, ledger_path, git_repo, run_cli):
    """DeleteBatch done elsewhere after runlog saw the batch PROCESSED: DELETED, once, and
    `refresh` without REFs leaves the batch (as before)."""
    aws_env.batch_rate = 100
    batch_id = submit_cohort(run_cli, "S1")
    aws_env.advance(300)
    assert f"batch {batch_id}: PROCESSED" in run_cli("refresh").stdout
    omics_client(aws_env).delete_batch(batchId=batch_id)
    gone = run_cli("refresh", batch_id)
    assert f"batch {batch_id}: DELETED" in gone.stdout, gone.output
    assert _log_status(run_cli, batch_id) == "DELETED"
    assert "no unfinished runs to refresh" in run_cli("refresh").output


def test_the_emulator_refuses_deletebatch_outside_its_terminal_states(aws_env, ledger_path, git_repo, run_cli):
    """DeleteBatch takes PROCESSED, FAILED, CANCELLED and RUNS_DELETED only (HealthOmics' API
    reference): a running batch is refused with ConflictException, as boto3 sees it."""
    import botocore.exceptions
    import pytest

    aws_env.batch_rate = 1
    batch_id = submit_cohort(run_cli, "S1", "S2")
    aws_env.advance(30)
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        omics_client(aws_env).delete_batch(batchId=batch_id)
    assert refused.value.response["Error"]["Code"] == "ConflictException"
    assert "RUNS_DELETED" in refused.value.response["Error"]["Message"]


def test_an_input_overwritten_after_the_run_read_it_is_not_what_getrun_reports(s3_server, ledger_path, git_repo,
                                                                              run_cli, monkeypatch):
    """The emulator's GetRun reported each input's ETag as S3 held it at that moment, so an
    object overwritten while the run was already RUNNING (its inputs read) changed the
    run's resourceDigests, and `watch` said the input changed between submission and
    execution when the run had read the bytes pinned. Now the digests are kept from the first
    GetRun past STARTING."""
    from helpers import ROLE
    from runlog.emulator import Emulator

    sheet = "s3://lab-data/pbmc/samplesheet.csv"
    s3_server.create_bucket(Bucket="lab-data")
    pinned = s3_server.put_object(Bucket="lab-data", Key="pbmc/samplesheet.csv", Body=b"sample\nA\n")["ETag"]
    with Emulator(port=0, clock="manual", s3_endpoint_url=s3_server.endpoint) as emu:
        monkeypatch.setenv("AWS_ENDPOINT_URL", emu.endpoint_url)
        submitted = run_cli("submit", "--workflow-id", "7206765", "--role-arn", ROLE, "--output-uri", "s3://out/x/",
                            "--parameters", json.dumps({"input": sheet, "protocol": "10XV3"}))
        assert submitted.exit_code == 0, submitted.output
        run_id = json.loads(submitted.stdout)["id"]
        emu.advance(25)  # PENDING 10 s, STARTING 10 s: RUNNING, its inputs read
        assert "RUNNING" in run_cli("refresh", run_id).stdout
        s3_server.put_object(Bucket="lab-data", Key="pbmc/samplesheet.csv", Body=b"sample\nB\n")
        emu.advance(3600)
        watched = run_cli("watch", run_id, "--interval", "0.1", "--timeout", "10")
        final = omics_client(emu).get_run(id=run_id)
    assert final["status"] == "COMPLETED" and final["resourceDigests"][sheet] == "etag:" + pinned.strip('"'), final
    assert watched.exit_code == 0 and "input changed" not in watched.output, watched.output


def test_a_finished_batch_whose_members_a_failed_listing_left_out_is_refreshed_again(aws_env, ledger_path,
                                                                                     git_repo, run_cli):
    """A refresh that recorded GetBatch's PROCESSED and then failed on ListRunsInBatch (a 5xx
    through botocore's retries; a refresh cut short is the same) left a finished batch with
    no member records, and `runlog refresh` without REFs said "no unfinished runs to refresh"
    for good. A finished batch whose ledger holds fewer members than GetBatch counts started
    is refreshed again, until it holds them all; then it is left."""
    aws_env.batch_rate = 100
    batch_id = submit_cohort(run_cli, "S1", "S2", "S3", "S4", "S5")
    aws_env.advance(300)
    aws_env.faults.add("error", "ListRunsInBatch", code="InternalServerException", count=3)
    failed = run_cli("refresh")
    assert f"batch {batch_id}" in failed.output and "InternalServerException" in failed.output, failed.output
    assert json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]["members_recorded"] == 0
    assert _log_status(run_cli, batch_id) == "PROCESSED"
    again = run_cli("refresh")
    assert again.exit_code == 0 and f"batch {batch_id}: PROCESSED; 5 run(s) listed, 5 new member record(s), " \
        "5 status change(s)" in again.stdout, again.output
    assert "no unfinished runs to refresh" in run_cli("refresh").output


def test_a_finished_batch_whose_statuses_a_failed_listing_left_out_is_refreshed_again(aws_env, ledger_path,
                                                                                      git_repo, run_cli):
    """The same for the members' statuses: ListRuns failing after the members were recorded
    left them with no status while GetBatch counted five COMPLETED runs."""
    aws_env.batch_rate = 100
    batch_id = submit_cohort(run_cli, "S1", "S2", "S3", "S4", "S5")
    aws_env.advance(300)
    aws_env.faults.add("error", "ListRuns", code="InternalServerException", count=3)
    failed = run_cli("refresh")
    assert "InternalServerException" in failed.output, failed.output
    shown = json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]
    assert shown["members_recorded"] == 5 and "COMPLETED" not in shown["run_status"], shown
    again = run_cli("refresh")
    assert again.exit_code == 0 and "5 status change(s)" in again.stdout, again.output
    assert json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]["run_status"] == {"COMPLETED": 5}
    assert "no unfinished runs to refresh" in run_cli("refresh").output


def test_cancel_on_a_ledger_it_cannot_write_asks_nothing(aws_env, ledger_path, git_repo, run_cli, run_proc):
    """`runlog cancel B` (and `--delete-runs`) on a ledger it could not write sent
    CancelRunBatch (the batch went STOPPING), then failed to record it and said only "cannot
    write to ledger", exit 2: an action carried out, unrecorded, reported as bad input. Now
    the ledger is checked first: nothing is asked, and the line says so. `refresh` likewise
    asks nothing (it asked GetBatch, then failed, exit 1)."""
    from helpers import read_only

    aws_env.batch_rate = 1
    batch_id = submit_cohort(run_cli, *[f"S{i}" for i in range(20)])
    aws_env.advance(15)
    with read_only(ledger_path):
        for extra in ((), ("--delete-runs",)):
            refused = run_proc("cancel", batch_id, *extra)  # a process of its own: SQLite would reuse this
            # process's own descriptors of the file, opened before it was made read-only
            assert refused.returncode == 2, refused.stderr
            assert "cannot write to ledger" in refused.stderr and "was not asked" in refused.stderr, refused.stderr
        before = len(aws_env.requests)
        refreshed = run_proc("refresh")  # GetBatch was asked, then the answers could not be recorded: exit 1
        assert refreshed.returncode == 2 and "nothing was asked of HealthOmics" in refreshed.stderr, refreshed.stderr
        assert len(aws_env.requests) == before
    asked = [r["operation"] for r in aws_env.requests]
    assert "CancelRunBatch" not in asked and "DeleteRunBatch" not in asked, asked
    assert omics_client(aws_env).get_batch(batchId=batch_id)["status"] not in ("STOPPING", "CANCELLED")
    cancelled = run_cli("cancel", batch_id)
    assert cancelled.exit_code == 0, cancelled.output
    assert "CancelRunBatch" in [r["operation"] for r in aws_env.requests]


def test_a_ledger_that_imported_runs_and_then_pulled_them_names_each_by_its_submitted_record(
        aws_env, bucket, ledger_path, git_repo, run_cli, tmp_path):
    """Ledger B imports a batch a colleague submitted through runlog (ledger A), then pulls
    A's team ledger: B holds the imported batch and members, and the submitted ones, each true.
    A run's or the batch's id then matched two records and every command given it stopped as
    ambiguous (`show RUN_ID`, `log --batch B`). The id now names the record runlog made when
    it started the run; an address prefix still names either. `refresh` asks about the batch
    once, for the submitted record (it refreshed both)."""
    from helpers import REMOTE, push_json

    batch_id = submit_cohort(run_cli, "S1", "S2")
    aws_env.batch_rate = 100
    aws_env.advance(300)
    assert run_cli("refresh", batch_id).exit_code == 0
    push_json(run_cli, ledger_path)
    (submitted,) = [row for row in json.loads(run_cli("log", "--json").stdout) if row.get("batch_id") == batch_id]
    member = json.loads(run_cli("log", "--batch", batch_id, "--json").stdout)[0]

    other = tmp_path / "other.db"
    imported = run_cli("--ledger", other, "import")
    assert imported.exit_code == 0, imported.output
    pulled = run_cli("--ledger", other, "pull", REMOTE)
    assert pulled.exit_code == 0, pulled.output
    with Ledger.open(other) as ledger:  # both held (log lists the batch once: tests/test_session23.py)
        assert len([e for e in ledger.entries() if e.batch_id == batch_id and e.kind == "batch"]) == 2

    shown = run_cli("--ledger", other, "show", batch_id, "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["address"] == submitted["address"]
    listed = run_cli("--ledger", other, "log", "--batch", batch_id, "--json")
    assert listed.exit_code == 0 and len(json.loads(listed.stdout)) == 2, listed.output
    run = run_cli("--ledger", other, "show", member["run_id"], "--json")
    assert run.exit_code == 0 and json.loads(run.stdout)["address"] == member["address"], run.output
    refreshed = json.loads(run_cli("--ledger", other, "refresh", "--all", "--json").stdout)
    assert [c["record"] for c in refreshed if c.get("batch_id") == batch_id] == [submitted["address"]], refreshed
    assert run_cli("--ledger", other, "verify", "--no-remote").exit_code == 0


def test_a_batch_cancelled_midway_exports_its_unsubmitted_settings_as_never_submitted(aws_env, ledger_path, git_repo,
                                                                                      run_cli, tmp_path):
    """A batch cancelled after it had submitted a few of its 20 run settings: the exports said
    the rest "had not been recorded when this was written" (and "not yet recorded", with
    `runlog refresh` to run), though the service had ended the batch without submitting them
    and no refresh could ever record them. They are now "never submitted (the batch ended
    CANCELLED before submitting them)", in the methods paragraph, samples.csv, the crate and
    PROV, with no warning that the batch has not finished; and `replay B --only failed` says
    they are left out."""
    import csv

    aws_env.batch_rate = 1
    batch_id = submit_cohort(run_cli, *[f"S{i:02d}" for i in range(20)])
    aws_env.advance(12)
    assert run_cli("cancel", batch_id).exit_code == 0
    aws_env.advance(3600)
    refreshed = json.loads(run_cli("refresh", batch_id, "--json").stdout)
    (change,) = [c for c in refreshed if c.get("batch_id") == batch_id]
    held = change["members_listed"]
    assert change["status"] == "CANCELLED" and 0 < held < 20, change
    out = tmp_path / "supp"
    exported = run_cli("export", batch_id, "-f", "all", "-o", out, "--license", "CC-BY-4.0")
    assert exported.exit_code == 0, exported.output
    assert "not finished" not in exported.stderr, exported.stderr
    methods = (out / "methods" / "methods.md").read_text()
    assert f"{20 - held} never submitted (the batch ended CANCELLED before submitting them)" in methods, methods
    assert "had not been recorded" not in methods
    rows = list(csv.DictReader((out / "methods" / "samples.csv").open()))
    assert not [row for row in rows if "not yet recorded" in json.dumps(row)], rows
    assert [row for row in rows if f"{20 - held} run setting(s) never submitted" in json.dumps(row)], rows
    crate = json.dumps(json.loads((out / "ro-crate-metadata.json").read_text()))
    assert "run settings never submitted" in crate and "run settings not yet recorded" in crate
    replay = run_cli("replay", batch_id, "--only", "failed", "--dry-run")
    assert f"{20 - held} run setting(s) were never submitted" in replay.stderr, replay.output


def test_a_run_listed_again_with_more_or_other_words_is_not_a_second_member(aws_env, ledger_path, git_repo, run_cli):
    """ListRunsInBatch gave S1's run without its uuid and ARN (optional in the model) at the
    first refresh and with them at the next, and S2's failed submission with a message worded
    otherwise each time: each refresh made another member record of the same run (and of the
    same failed submission), so `show B` counted 4, then 5 members for a batch of 3 runs. A
    member the batch already has for that run setting and run (or failed submission) is not
    made again."""
    from helpers import answer_through, pages_changed

    aws_env.batch_fault("start", run_setting_ids=["S2"])  # S2's submission fails
    batch_id = submit_cohort(run_cli, "S1", "S2", "S3")
    aws_env.batch_rate = 100
    aws_env.advance(300)
    words = iter(range(1000))

    def reworded(page):
        for item in page["runs"]:
            if item.get("submissionStatus") == "FAILED":
                item["submissionFailureMessage"] = f"internal error, request {next(words)}"

    pages_changed(aws_env, "ListRunsInBatch", reworded)
    listing = aws_env.handlers["ListRunsInBatch"]

    def without_uuid(handler, params, region):
        page = handler(params, region)
        for item in page["runs"]:
            if item.get("runSettingId") == "S1":
                item.pop("runInternalUuid", None)
                item.pop("runArn", None)
        return page

    answer_through(aws_env, "ListRunsInBatch", without_uuid)
    assert run_cli("refresh", batch_id).exit_code == 0
    aws_env.handlers["ListRunsInBatch"] = listing  # S1's uuid and ARN given from now on
    for _ in range(2):
        refreshed = run_cli("refresh", batch_id)
        assert refreshed.exit_code == 0 and "0 new member record(s)" in refreshed.stdout, refreshed.output
    shown = json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]
    assert shown["members_recorded"] == 3 and shown["submission"] == {"FAILED": 1, "SUCCESS": 2}, shown
    members = json.loads(run_cli("log", "--batch", batch_id, "--json").stdout)
    assert len(members) == 3 and all(run_cli("show", m["run_id"]).exit_code == 0 for m in members if m["run_id"])


def test_a_member_whose_getrun_reports_other_parameters_is_exported_with_getruns(aws_env, ledger_path, git_repo,
                                                                                 run_cli, tmp_path):
    """A settings file swapped while the service read it and put back after (its ETag check
    sees one object) gives runs other parameters than their member records hold. After
    `refresh --outputs` the ledger held GetRun's word on each run, and still exported the
    pinned parameters without a word. Now refresh warns, `show RUN_ID` says so, and the exports
    give the parameters GetRun reported, saying where they come from; the record is kept."""
    import csv

    from helpers import answer_through

    batch_id = submit_cohort(run_cli, "S1", "S2")
    aws_env.batch_rate = 100
    aws_env.advance(300)

    def swapped(handler, params, region):  # S1's run ran S2's sample
        run = handler(params, region)
        if (run.get("parameters") or {}).get("sample_name") == "S1":
            run["parameters"] = {**run["parameters"], "sample_name": "S2",
                                 "input_cram": run["parameters"]["input_cram"].replace("S1", "S2")}
        return run

    answer_through(aws_env, "GetRun", swapped)
    refreshed = run_cli("refresh", batch_id, "--outputs")
    assert refreshed.exit_code == 0, refreshed.output
    assert "1 run(s) ran with other parameters than their member records hold" in refreshed.stderr, refreshed.output
    (member,) = [m for m in json.loads(run_cli("log", "--batch", batch_id, "--json").stdout)
                 if m["name"] == "align-S1"]
    shown = run_cli("show", member["run_id"])
    assert "reported parameters other than its record holds" in shown.stdout, shown.stdout
    out = tmp_path / "supp"
    exported = run_cli("export", batch_id, "-f", "methods", "-o", out, "--license", "MIT")
    assert exported.exit_code == 0, exported.output
    (samples,) = out.rglob("samples.csv")
    (row,) = [r for r in csv.DictReader(samples.open()) if r["run_setting_id"] == "S1"]
    assert json.loads(row["parameters"])["sample_name"] == "S2", row
    assert "reported parameters other than its record holds" in row["settings_source"], row
    record = json.loads(run_cli("show", member["run_id"], "--json").stdout)["record"]
    assert record["request"]["parameters"]["sample_name"] == "S1"  # the record is kept as pinned


def test_a_ledger_in_a_directory_that_cannot_be_written_is_not_called_damaged(tmp_path, run_proc):
    """`log` of an intact ledger in a directory no one may write (SQLite cannot make its -shm
    file beside a WAL ledger) said "cannot read ledger …; restore it from a backup": advice to
    replace a file that is fine. It now names the directory as the cause."""
    import subprocess

    import pytest

    from runlog.ledger import Ledger

    folder = tmp_path / "shared"
    folder.mkdir()
    path = folder / "ledger.db"
    with Ledger.open(path):
        pass
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("cannot make a directory unwritable for this user")
    try:
        listed = run_proc("--ledger", path, "log")
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    assert listed.returncode == 2, listed.stderr
    assert "restore it from a backup" not in listed.stderr and f"its directory {folder} must be writable" \
        in listed.stderr, listed.stderr


def test_two_refreshes_of_one_batch_at_once_record_each_status_once(aws_env, ledger_path, git_repo, run_cli):
    """Two `runlog refresh B` at the same time (two shells, a cron job and a user) each read
    the members' statuses before either wrote, and each wrote every change: two observations
    of each member's status. The second now waits for the first and records only what changed
    since."""
    import os
    import subprocess
    import sys

    batch_id = submit_cohort(run_cli, *[f"S{i:03d}" for i in range(100)])
    aws_env.batch_rate = 1000
    aws_env.advance(30)
    env = {**os.environ, "RUNLOG_LEDGER": str(ledger_path)}
    both = [subprocess.Popen([sys.executable, "-m", "runlog", "refresh", batch_id], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=120) for process in both]
    assert all(process.returncode == 0 for process in both), outputs
    with Ledger.open(ledger_path, create=False) as ledger:
        counts = ledger.conn.execute(
            "SELECT count(*), count(DISTINCT record) FROM observations o JOIN records r ON r.address = o.record "
            "WHERE r.kind = 'member' AND o.source = 'ListRuns'").fetchone()
    assert counts == (100, 100), (counts, outputs)


def test_a_batch_not_found_for_an_hour_after_runlog_saw_it_running_is_taken_as_deleted(aws_env, ledger_path,
                                                                                       git_repo, run_cli):
    """A batch runlog last saw INPROGRESS that then ended and was deleted (DeleteBatch) before
    the next refresh: GetBatch no longer finds it, and runlog cannot know it ended first. It is
    not taken as deleted at once (it may not be found yet), but once GetBatch has not found it
    for an hour it is, with the reason saying since when; `refresh` then leaves it."""
    aws_env.batch_rate = 1
    batch_id = submit_cohort(run_cli, "S1", "S2")

    def ago(minutes):
        return (datetime.now(UTC) - timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    with Ledger.open(ledger_path, create=False) as ledger:  # runlog saw it running two hours ago
        entry = ledger.resolve(batch_id)
        ledger.add_observations([(entry.address, None, ago(120), "GetBatch", "INPROGRESS", {"status": "INPROGRESS"})])
    aws_env.advance(3600)
    omics_client(aws_env).delete_batch(batchId=batch_id)
    first = run_cli("refresh")
    assert "GetBatch not found (last seen INPROGRESS" in first.stdout and "taken as deleted once" in first.stdout
    assert _log_status(run_cli, batch_id) == "INPROGRESS"
    with Ledger.open(ledger_path, create=False) as ledger:  # that not-found was an hour and a minute ago
        (seen,) = [o for o in ledger.observations(entry.address) if o["status"] is None and o["source"] == "GetBatch"]
        earlier = ago(61)
        ledger.add_observations([(entry.address, None, earlier, "GetBatch", None, seen["body"])])
    settled = run_cli("refresh")
    assert f"batch {batch_id}: DELETED" in settled.stdout, settled.output
    reason = json.loads(run_cli("show", batch_id, "--json").stdout)["observations"][-1]["body"]["reason"]
    assert reason == f"GetBatch: batch {batch_id} not found since {earlier} (last seen INPROGRESS): taken as deleted"
    assert _log_status(run_cli, batch_id) == "DELETED"
    assert "no unfinished runs to refresh" in run_cli("refresh").output


def test_a_batch_last_seen_runs_delete_failed_then_not_found_is_deleted(aws_env, ledger_path, git_repo, run_cli):
    """RUNS_DELETE_FAILED is a final status: a not-found after it is DeleteBatch (after a
    retried DeleteRunBatch), not a batch to ask about again ("asks again" was untrue: plain
    refresh left it, finished)."""
    aws_env.batch_fault("delete")
    batch_id = submit_cohort(run_cli, "S1", "S2")
    aws_env.batch_rate = 100
    aws_env.advance(300)
    assert run_cli("cancel", batch_id, "--delete-runs").exit_code == 0
    aws_env.advance(300)
    assert f"batch {batch_id}: RUNS_DELETE_FAILED" in run_cli("refresh", batch_id).stdout
    aws_env.faults.add("error", "GetBatch", code=NOT_FOUND)
    assert f"batch {batch_id}: DELETED" in run_cli("refresh", batch_id).stdout


def test_a_batchs_status_counts_and_not_found_line_come_from_the_newest_observation(aws_env, ledger_path,
                                                                                     git_repo, run_cli):
    """`show B` took its status from the GetBatch observation made last but its counts and its
    not-found line from the last row: a pulled not-found made before this ledger's PROCESSED
    printed "status PROCESSED" beside "not found … `runlog refresh` asks again". And two
    observations made in the same millisecond gave `log` one status and `show` another."""
    aws_env.batch_rate = 1
    batch_id = submit_cohort(run_cli, "S1", "S2")
    aws_env.advance(30)
    run_cli("refresh")
    aws_env.advance(3600)
    run_cli("refresh")
    with Ledger.open(ledger_path, create=False) as ledger:
        entry = ledger.resolve(batch_id)
        first = [o for o in ledger.observations(entry.address) if o["source"] == "GetBatch"][0]["observed_at"]
        ledger.add_observations([(entry.address, None, first, "GetBatch", None, {
            "status": None, "reason": f"GetBatch: batch {batch_id} not found", "last_seen": "CREATING"})])
    shown = run_cli("show", batch_id).stdout
    assert "status       PROCESSED" in shown and "not found" not in shown and "completedRunCount 2" in shown, shown
    assert json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]["not_found"] is None

    tie = "2026-11-28T05:00:00.000Z"
    other = submit_cohort(run_cli, "S3")
    with Ledger.open(ledger_path, create=False) as ledger:
        entry = ledger.resolve(other)
        ledger.add_observations([(entry.address, None, tie, "GetBatch", "FAILED", {"status": "FAILED"})])
        ledger.add_observations([(entry.address, None, tie, "GetBatch", "PROCESSED", {"status": "PROCESSED"})])
    assert _log_status(run_cli, other) == "PROCESSED"
    assert json.loads(run_cli("show", other, "--json").stdout)["status"] == "PROCESSED"


def test_the_python_apis_refresh_asks_nothing_of_a_ledger_it_cannot_write(aws_env, ledger_path, git_repo, run_cli,
                                                                           tmp_path):
    """`Runlog.refresh()` (and `watch`) on a ledger it could not write asked GetBatch, then
    returned "cannot write to ledger" for the batch; the check is now in the library, before
    anything is asked."""
    import subprocess
    import sys

    from helpers import read_only

    aws_env.batch_rate = 1
    submit_cohort(run_cli, "S1", "S2")
    aws_env.advance(15)
    with read_only(ledger_path):
        before = len(aws_env.requests)
        script = (f"import runlog\ntry:\n    runlog.Runlog({str(ledger_path)!r}).refresh()\n"
                  "except runlog.RunlogError as exc:\n    print(type(exc).__name__, exc.exit_code, exc.message)\n")
        ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        assert ran.returncode == 0 and ran.stdout.startswith("LedgerError 2") and "nothing was asked" in ran.stdout, \
            (ran.stdout, ran.stderr)
        assert len(aws_env.requests) == before


def test_a_batch_cancelled_midway_then_deleted_still_exports_its_unsubmitted_settings_as_never_submitted(
        aws_env, ledger_path, git_repo, run_cli, tmp_path):
    """The same batch, then DeleteBatch: the DELETED runlog records has no counts, and the
    export went back to "not yet recorded … `runlog refresh`". The counts now come from the
    last GetBatch answer that has them, and a DELETED batch is finished."""
    aws_env.batch_rate = 1
    batch_id = submit_cohort(run_cli, *[f"S{i:02d}" for i in range(20)])
    aws_env.advance(12)
    assert run_cli("cancel", batch_id).exit_code == 0
    aws_env.advance(3600)
    (change,) = [c for c in json.loads(run_cli("refresh", batch_id, "--json").stdout) if c.get("batch_id") == batch_id]
    held = change["members_listed"]
    omics_client(aws_env).delete_batch(batchId=batch_id)
    assert f"batch {batch_id}: DELETED" in run_cli("refresh", batch_id).stdout
    out = tmp_path / "supp"
    exported = run_cli("export", batch_id, "-f", "methods", "-o", out, "--license", "CC-BY-4.0")
    assert exported.exit_code == 0 and "not yet recorded" not in exported.stderr, exported.output
    (methods,) = out.rglob("methods.md")
    assert f"{20 - held} never submitted (the batch ended DELETED" in methods.read_text()
    replay = run_cli("replay", batch_id, "--only", "failed", "--dry-run")
    assert f"{20 - held} run setting(s) were never submitted" in replay.stderr, replay.output


def test_failed_submissions_listed_without_a_run_setting_id_are_each_a_member(aws_env, ledger_path, git_repo,
                                                                              run_cli):
    """Two failed submissions the listing gave without a runSettingId (optional in the model),
    each worded otherwise: the member check took them for one (no id equals no id), so the
    batch held a member less than GetBatch counted and plain refresh asked about it forever.
    And a run the listing gives twice on one page, the second time without its uuid, was two
    members. Neither now."""
    from helpers import pages_changed

    aws_env.batch_fault("start", run_setting_ids=["S2", "S3"])
    batch_id = submit_cohort(run_cli, "S1", "S2", "S3")
    aws_env.batch_rate = 100
    aws_env.advance(300)
    words = iter(range(1000))

    def odd(page):
        for item in page["runs"]:
            if item.get("submissionStatus") == "FAILED":
                item.pop("runSettingId", None)
                item["submissionFailureMessage"] = f"internal error, request {next(words)}"
        again = [dict(item) for item in page["runs"] if item.get("runId")]
        for item in again:
            item.pop("runInternalUuid", None)
            item.pop("runArn", None)
        page["runs"] += again

    pages_changed(aws_env, "ListRunsInBatch", odd)
    assert run_cli("refresh", batch_id).exit_code == 0
    shown = json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]
    assert shown["members_recorded"] == 3 and shown["submission"] == {"FAILED": 2, "SUCCESS": 1}, shown
    assert "no unfinished runs to refresh" in run_cli("refresh").output
