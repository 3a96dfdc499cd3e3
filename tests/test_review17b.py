"""Review of session 17's push workers, same-file checks and refresh warnings (runlog/pushworker.py,
Ledger.file_identity, batch.check_settings_file): moto's S3 server, the emulator, real ledger
files, the library and the CLI."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from datetime import timedelta

import pytest

import runlog
from helpers import BUCKET, COHORT_DEFAULT, cohort_setting, fill, submitted_cohort
from runlog import refreshpipe, sync
from runlog.errors import LedgerError
from runlog.ledger import Ledger

REMOTE = sync.Remote.parse(f"s3://{BUCKET}/runlog")


def test_a_ledger_opened_by_a_relative_path_is_pushed_by_workers_after_the_program_changes_directory(
        bucket, tmp_path, monkeypatch):
    """A program (the library) opens its ledger as "alice.db", then changes directory: the
    ledger is the file it opened, and its push with workers sends it (it said the ledger file
    was replaced, and sent nothing)."""
    fill(tmp_path / "alice.db", 30)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("RUNLOG_PUSH_WORKERS", "2")
    monkeypatch.chdir(tmp_path)
    with Ledger.open("alice.db", create=False) as ledger:
        os.chdir(elsewhere)
        pushed = sync.push(ledger, bucket, REMOTE, jobs=2)
    assert (pushed.records_sent, pushed.observations_sent) == (30, 1)


def _members(path) -> int:
    with Ledger.open(path, create=False) as ledger:
        return ledger.conn.execute("SELECT count(*) FROM records WHERE kind != 'batch'").fetchone()[0]


@pytest.mark.parametrize("child", ["0", "1"])
def test_a_refresh_writes_the_members_to_the_ledger_opened_by_a_relative_path_after_a_change_of_directory(
        child, run_cli, s3_emulator, bucket, ledger_path, monkeypatch):
    """A program opens its ledger as "ledger.db", changes directory to one holding a copy of
    it, and refreshes a batch: the members go to the ledger it opened (they went to the copy,
    or, with the writer process, the refresh said there was no ledger)."""
    batch_id = submitted_cohort(run_cli, s3_emulator, bucket, ["S1", "S2", "S3"])
    elsewhere = ledger_path.parent / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(ledger_path, elsewhere / "ledger.db")
    monkeypatch.setenv("RUNLOG_WRITER_PROCESS", child)
    monkeypatch.chdir(ledger_path.parent)
    with runlog.Runlog("ledger.db") as rl:
        assert rl.log()  # opened here
        assert rl.ledger.file_identity is not None  # and for writing
        os.chdir(elsewhere)
        [refreshed] = rl.refresh([batch_id])
    assert "error" not in refreshed, refreshed
    assert refreshed["members_added"] == 3
    assert (_members(ledger_path), _members(elsewhere / "ledger.db")) == (3, 0)


def test_a_refresh_never_writes_the_members_to_a_file_renamed_into_the_ledgers_place(tmp_path):
    """The writing thread of a refresh (without the writer process) opens the ledger again:
    a file renamed into its place since the caller opened it is refused in one line, and left
    as it was (the members went into it)."""
    path, other = tmp_path / "ledger.db", tmp_path / "other.db"
    Ledger.open(other).close()
    with Ledger.open(path) as ledger:
        os.replace(other, path)
        before = path.read_bytes()
        with pytest.raises(LedgerError) as raised, refreshpipe.page_writer(ledger):
            pass
    assert raised.value.message == (
        f"the ledger file {path} was replaced while the refresh ran (another file renamed into its place): "
        "nothing was written to it; check which file is the ledger, then run the refresh again")
    assert path.read_bytes() == before


def test_a_settings_file_regenerated_after_the_batchs_runs_were_submitted_is_no_alarm(
        s3_server, s3_emulator, ledger_path, git_repo, run_cli, tmp_path):
    """A lab regenerates settings.json at the same key for its next cohort, after this batch's
    runs were all submitted (GetBatch's submittedTime): the service read the pinned file. A
    refresh of the old batch warned that the file "changed since submit-batch pinned it",
    recorded it, `show B` repeated it and the export's methods paragraph said the runs "may
    not have received" the settings it states; now none of them does."""
    s3_emulator.service.clock.origin -= timedelta(hours=1)  # the batch ran an hour ago
    batch_id = submitted_cohort(run_cli, s3_emulator, s3_server, ["S1"])
    first = run_cli("refresh", batch_id)
    assert first.exit_code == 0 and "warning" not in first.stderr, first.output
    s3_server.put_object(Bucket="cohort-bucket", Key="cohort/settings.json",  # the next cohort's file
                         Body=json.dumps([cohort_setting("S7"), cohort_setting("S8")]).encode())
    refreshed = run_cli("refresh", batch_id)
    assert refreshed.exit_code == 0, refreshed.output
    assert "settings file" not in refreshed.stderr, refreshed.stderr
    shown = json.loads(run_cli("show", batch_id, "--json").stdout)
    assert "HeadObject:settings-file" not in [o["source"] for o in shown["observations"]]
    exported = run_cli("export", batch_id, "-f", "methods", "-o", str(tmp_path / "methods.md"))
    assert exported.exit_code == 0 and "settings file" not in exported.stderr, exported.output
    methods = "".join(p.read_text() for p in (tmp_path / "methods.md").rglob("*.md"))
    assert "may not have received" not in methods


def test_a_refresh_of_many_batches_with_s3_unreachable_waits_once_and_says_what_it_did_not_check(
        s3_server, s3_emulator, ledger_path, git_repo, run_cli, monkeypatch):
    """S3 does not answer (a host that takes the connection and says nothing) while
    HealthOmics does: `refresh --all` of three batches with settings files waited for each
    file's HeadObject in turn (10 s a batch: 5 s twice), and said nothing of the files it
    could not check. Now it stops asking S3 after the first that could not be reached, and
    says once how many batches' files went unchecked; the members are recorded all the same."""
    s3_server.create_bucket(Bucket="cohort-bucket")
    s3_server.put_object(Bucket="cohort-bucket", Key="cohort/settings.json",
                         Body=json.dumps([cohort_setting("S1")]).encode())
    s3_emulator.batch_rate = 100
    for name in ("b1", "b2", "b3"):
        submitted = run_cli("submit-batch", "--batch-name", name, "--default-run-setting", json.dumps(COHORT_DEFAULT),
                            "--batch-run-settings",
                            json.dumps({"s3UriSettings": "s3://cohort-bucket/cohort/settings.json"}))
        assert submitted.exit_code == 0, submitted.output
    s3_emulator.advance(200)
    silent = socket.socket()  # accepts connections (the kernel's backlog), never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{silent.getsockname()[1]}")
    try:
        began = time.monotonic()
        refreshed = run_cli("refresh", "--all", "--json")
        took = time.monotonic() - began
    finally:
        silent.close()
    assert refreshed.exit_code == 0, refreshed.output
    assert took < 20, took  # one batch's wait, not three
    changes = json.loads(refreshed.stdout)
    assert [c["members_added"] for c in changes] == [1, 1, 1]
    assert sum("settings_file_unchecked" in c for c in changes) == 3
    [line] = [line for line in refreshed.stderr.splitlines() if "settings file" in line]
    assert line.startswith("runlog: warning: the settings files of 3 batch(es) were not checked (S3 could not be "
                           "reached: "), line


def test_the_same_bytes_put_again_in_a_versioned_bucket_before_the_services_read_is_no_alarm(
        s3_server, s3_emulator, ledger_path, git_repo, run_cli):
    """A versioned bucket: the settings file is uploaded again, byte for byte the same (a
    pipeline step that always copies it), between submit-batch's pin and the service's read.
    A new VersionId, the same ETag: the runs got the pinned settings. refresh warned that the
    file changed ("ETag e -> e") and recorded it; now it says nothing."""
    s3_server.create_bucket(Bucket="cohort-bucket")
    s3_server.put_bucket_versioning(Bucket="cohort-bucket", VersioningConfiguration={"Status": "Enabled"})
    body = json.dumps([cohort_setting("S1")]).encode()  # as submitted_cohort writes it
    service = s3_emulator.service
    read = service.read_object

    def copied_again_first(uri: str) -> bytes:
        s3_server.put_object(Bucket="cohort-bucket", Key="cohort/settings.json", Body=body)
        return read(uri)

    service.read_object = copied_again_first
    batch_id = submitted_cohort(run_cli, s3_emulator, s3_server, ["S1"])
    versions = s3_server.list_object_versions(Bucket="cohort-bucket", Prefix="cohort/settings.json")["Versions"]
    assert len(versions) == 2 and len({v["ETag"] for v in versions}) == 1  # two versions, one content
    refreshed = run_cli("refresh", batch_id)
    assert refreshed.exit_code == 0, refreshed.output
    assert "settings file" not in refreshed.stderr, refreshed.stderr
    shown = json.loads(run_cli("show", batch_id, "--json").stdout)
    assert "HeadObject:settings-file" not in [o["source"] for o in shown["observations"]]


def test_watch_of_a_batch_whose_settings_file_changed_before_the_services_read_says_so(
        s3_server, s3_emulator, ledger_path, git_repo, run_cli):
    """`runlog watch B` refreshes the batch until it ends, as `runlog refresh B` does, but did
    not check its settings file: a file rewritten between the pin and the service's read went
    unsaid by watch (and by `show B` after it). Now watch warns once and records it."""
    s3_server.create_bucket(Bucket="cohort-bucket")
    service = s3_emulator.service
    read = service.read_object

    def rewritten_first(uri: str) -> bytes:  # the file changes just before the service reads it
        s3_server.put_object(Bucket="cohort-bucket", Key="cohort/settings.json",
                             Body=json.dumps([cohort_setting("S1-REWRITTEN")]).encode())
        return read(uri)

    service.read_object = rewritten_first
    batch_id = submitted_cohort(run_cli, s3_emulator, s3_server, ["S1"])
    watched = run_cli("watch", batch_id, "--interval", "0.1")
    assert watched.exit_code == 0, watched.output
    warned = [line for line in watched.stderr.splitlines() if "settings file" in line]
    assert len(warned) == 1 and "changed since submit-batch pinned it" in warned[0], watched.stderr
    shown = run_cli("show", batch_id).stdout
    assert "changed since submit-batch pinned it" in shown
