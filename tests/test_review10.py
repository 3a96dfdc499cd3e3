"""Review 10 findings: each test fails on 3672d07 and shows one bug."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from runlog.ledger import Ledger

ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"
BUCKET = "cohort-bucket"


def _open_in_child(path, readonly: bool) -> subprocess.CompletedProcess:
    code = ("import sys\nfrom runlog.ledger import Ledger, LedgerError\n"
            "try:\n    Ledger.open(sys.argv[1], readonly=sys.argv[2] == '1')\n"
            "except LedgerError as exc:\n    print(exc)\n    sys.exit(2)\nprint('opened')\n")
    return subprocess.run([sys.executable, "-c", code, str(path), "1" if readonly else "0"],
                          capture_output=True, text=True, timeout=20)


@pytest.mark.parametrize("readonly", [False, True])
def test_review10_a_fifo_given_as_ledger_is_refused_as_not_a_ledger(tmp_path, readonly):
    """_check_header returns for any 0-size path before its S_ISREG check: a FIFO (size 0)
    is handed to SQLite, which blocks forever reading it (writable), or is called an
    "empty (0 bytes)" ledger to restore from a backup (read-only)."""
    fifo = tmp_path / "ledger.db"
    os.mkfifo(fifo)
    try:
        done = _open_in_child(fifo, readonly)
    except subprocess.TimeoutExpired:
        pytest.fail("Ledger.open of a FIFO hangs")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is not a runlog ledger (not an SQLite database); it was left untouched" in done.stdout
    assert sorted(os.listdir(tmp_path)) == ["ledger.db"]


def _count_in_another_process(path) -> str:
    code = ("import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\n"
            "print(c.execute('SELECT count(*) FROM records').fetchone()[0])\nc.close()\n")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_review10_git_capture_of_a_ledger_untracked_in_the_repository_keeps_its_locks(git_repo, tmp_path):
    """A ledger inside the analysis repository that git does not ignore (`ledger = "runs.db"`,
    RUNLOG_LEDGER=./runs.db) is an untracked file: git capture (replay's prepare, a batch
    replay's, a submit's) opens and hashes it, and its -shm, in the process that holds it
    open, and closing those descriptors drops that process's POSIX locks: what 643c6a7 fixed
    for Ledger.open. Another process closing the ledger then deletes the WAL and the next
    record written here is lost to every other process."""
    from recordfactory import make_record
    from runlog import gitcapture

    path = git_repo / "runs.db"
    first = Ledger.open(path)
    first.add_record(make_record())
    captured = gitcapture.capture_with_notes(git_repo)
    assert captured["git"]["state"] == "clean" and not captured["git"].get("untracked")  # runlog's, not the analysis's
    assert any("runlog's ledger (runs.db" in note for note in captured["notes"])
    assert _count_in_another_process(path) == "1"
    first.add_record(make_record(name="written-after"))
    assert _count_in_another_process(path) == "2"
    first.close()


DEFAULT = {"workflowId": "1234567", "roleArn": ROLE, "outputUri": f"s3://{BUCKET}/out/",
           "parameters": {"ref_dict": f"s3://{BUCKET}/ref/genome.dict",
                          "ref_fasta": f"s3://{BUCKET}/ref/genome.fasta",
                          "ref_fasta_index": f"s3://{BUCKET}/ref/genome.fasta.fai"}}


def _setting(sample: str) -> dict:
    return {"runSettingId": sample, "name": f"align-{sample}",
            "parameters": {"sample_name": sample, "input_cram": f"s3://{BUCKET}/crams/{sample}.cram"}}


def test_review10_an_input_missing_at_submission_and_present_now_is_drift(s3_server, s3_emulator, ledger_path,
                                                                          git_repo, run_cli):
    """The batch record pinned S2's cram as NotFound (submit-batch warned and sent it). The
    object is there now, with bytes nobody recorded: the replay would run S2 on an input its
    original never had, yet replay.input_drift skips every input recorded with an error
    (resolve.identity_changes does, and the "found then, not now" branch needs the reverse):
    no drift, no note, the replay is sent. docs/batch.md promises a replay never starts
    unverified inputs unless drift is allowed."""
    s3_server.create_bucket(Bucket=BUCKET)
    for key in ["ref/genome.dict", "ref/genome.fasta", "ref/genome.fasta.fai", "crams/S1.cram", "crams/S3.cram"]:
        s3_server.put_object(Bucket=BUCKET, Key=key, Body=f"bytes of {key}".encode())
    s3_emulator.batch_rate = 100
    sent = run_cli("submit-batch", "--batch-name", "cohort", "--default-run-setting", json.dumps(DEFAULT),
                   "--batch-run-settings", json.dumps({"inlineSettings": [_setting(s) for s in ("S1", "S2", "S3")]}))
    assert sent.exit_code == 0, sent.output
    batch_id = json.loads(sent.stdout)["id"]
    with Ledger.open(ledger_path, create=False) as ledger:
        (batch,) = ledger.entries(where="kind = 'batch'")
        assert batch.record["resolution"]["inputs"][f"s3://{BUCKET}/crams/S2.cram"]["error"]["code"] == "NotFound"
    s3_server.put_object(Bucket=BUCKET, Key="crams/S2.cram", Body=b"bytes that appeared after submission")
    plan = run_cli("replay", batch_id, "--dry-run", "--json")
    assert plan.exit_code == 0, plan.output
    found = json.loads(plan.stdout)["drift"]
    assert any(d["what"].startswith(f"s3://{BUCKET}/crams/S2.cram") for d in found), (found, plan.stderr)


def test_review10_a_batch_replay_is_sent_with_the_session_handed_to_runlog(aws_env, ledger_path, git_repo,
                                                                          monkeypatch):
    """Runlog(session=...) is "the session whose credentials every AWS call uses": start_run,
    start_run_batch and a run's replay send with it, and batchreplay.prepare checks drift with
    it, but batchreplay.send calls batch.submit_batch without `session=`, which then makes a
    session of its own from the environment: the replayed StartRunBatch goes out with other
    credentials (here: none, so it fails)."""
    import boto3

    import runlog

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    session = boto3.Session(aws_access_key_id="mine", aws_secret_access_key="mine", region_name="us-west-2")
    settings = {"inlineSettings": [_setting(s) for s in ("S1", "S2")]}
    default = DEFAULT
    with runlog.Runlog(ledger_path, session=session) as rl:
        batch = rl.start_run_batch(defaultRunSetting=default, batchRunSettings=settings)
        assert rl.replay(batch["id"], dry_run=True).drift == []
        again = rl.replay(batch["id"])
        assert again.response["id"] != batch["id"]


def test_review10_report_with_force_never_replaces_the_ledger_itself(three_runs, ledger_path):
    """report.output.check_target refuses links, directories and (without force) existing
    files, but not the ledger it is reading: `rl.report(rl.ledger_path, force=True)` (or
    `runlog report -o .runlog/ledger.db --force`, a slip of the tab key) renames the HTML page
    over the ledger, and every record is gone from that path."""
    import runlog

    with runlog.Runlog(ledger_path) as rl:
        with pytest.raises(runlog.UsageError, match="ledger"):
            rl.report(rl.ledger_path, force=True)
    with Ledger.open(ledger_path, readonly=True) as ledger:
        assert ledger.count() == 3


def test_review10_a_ledger_kept_untracked_in_the_repository_is_not_the_analysiss_state(aws_env, git_repo, run_cli,
                                                                                       monkeypatch):
    """`RUNLOG_LEDGER=./runs.db` in the analysis repository, not ignored: each submit changes
    the ledger, and were it hashed as an untracked file every record would say the code
    changed, and every replay would find git drift."""
    from helpers import SEED_2

    monkeypatch.setenv("RUNLOG_LEDGER", str(git_repo / "runs.db"))
    for name in ("first", "second"):
        result = run_cli(*SEED_2, "--name", name, "--endpoint-url", aws_env.endpoint_url)
        assert result.exit_code == 0, result.output
    with Ledger.open(git_repo / "runs.db", create=False) as ledger:
        states = [e.record["git"] for e in ledger.entries()]
    assert [g["state"] for g in states] == ["clean", "clean"] and all(not g.get("untracked") for g in states)
    replay = run_cli("replay", "@1", "--dry-run", "--endpoint-url", aws_env.endpoint_url)
    assert replay.exit_code == 0, replay.output
    assert not [d for d in json.loads(replay.stdout)["drift"] if d["kind"] == "git"]
