"""A push's items checked in worker processes (runlog/pushworker.py): the same packs, item for
item, as a push that checks them itself; an item changed behind runlog's back refused with
the same line and nothing after it sent; a worker that dies fails the push in one line, and
the next push resumes. moto's S3 server, real ledger files, the CLI in process and as a
subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers import (
    BUCKET,
    REMOTE,
    HoldRequests,
    fill,
    interrupt_held,
    kill_held,
    proxy_in_front,
    refreshed_cohort,
    tamper,
    workers_of,
)
from runlog import pushworker
from runlog.ledger import Ledger
from runlog.verify import verify

PACKS = "runlog/packs/"


def _observe_all(path: Path) -> None:
    """A status observation of each record (two of the first), so that both kinds span slices."""
    with Ledger.open(path, create=False) as ledger:
        for entry in ledger.entries():
            ledger.observe(entry.address, "GetRun", {"status": "RUNNING", "id": entry.run_id},
                           run_uuid=entry.run_uuid, status="RUNNING")


def _remote(s3, prefix: str) -> dict[str, tuple[bytes, dict]]:
    """Every object under `prefix`: key (less the prefix) -> (bytes, user metadata)."""
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for item in page.get("Contents", []):
            answer = s3.get_object(Bucket=BUCKET, Key=item["Key"])
            found[item["Key"][len(prefix):]] = (answer["Body"].read(), answer["Metadata"])
    return found


def _push(run_cli, ledger: Path, remote: str, workers: str, monkeypatch):
    monkeypatch.setenv("RUNLOG_PUSH_WORKERS", workers)
    return run_cli("--ledger", ledger, "push", remote, "--json")


def test_a_push_checked_in_workers_sends_the_same_packs_item_for_item(bucket, tmp_path, run_cli, monkeypatch):
    alice = tmp_path / "alice.db"
    fill(alice, 60)
    _observe_all(alice)
    # small slices, several asked ahead: the items come back from two workers in many pieces
    monkeypatch.setattr(pushworker, "SLICE", {"records": 7, "observations": 5})
    monkeypatch.setattr("runlog.syncpack.PACK_ITEMS", 25)  # several packs, cut where a slice is not
    sent = {}
    for workers in ("0", "2"):
        result = _push(run_cli, alice, f"s3://{BUCKET}/w{workers}/", workers, monkeypatch)
        assert result.exit_code == 0, result.stderr
        sent[workers] = (json.loads(result.stdout), _remote(bucket, f"w{workers}/packs/"))
    counts = {k: v for k, v in sent["2"][0].items() if k != "remote"}
    assert counts == {k: v for k, v in sent["0"][0].items() if k != "remote"}
    assert counts["records_sent"] == 60 and counts["observations_sent"] == 61 and counts["packs_sent"] == 5
    assert len(sent["0"][1]) == 10  # five packs, each with its index
    assert sent["2"][1] == sent["0"][1]  # the same packs and indexes, byte for byte, with the same claims
    monkeypatch.setenv("RUNLOG_PUSH_WORKERS", "0")
    for workers in ("0", "2"):
        bob = tmp_path / f"bob-{workers}.db"
        assert run_cli("--ledger", bob, "pull", f"s3://{BUCKET}/w{workers}/").exit_code == 0
        with Ledger.open(bob, create=False) as ledger, Ledger.open(alice, create=False) as original:
            assert ledger.addresses() == original.addresses() and verify(ledger).ok
            assert ledger.observation_addresses() == original.observation_addresses()


@pytest.mark.parametrize("table", ["records", "observations"])
def test_an_item_changed_behind_runlogs_back_is_refused_by_a_worker_with_the_same_line(
        table, bucket, tmp_path, run_cli, monkeypatch):
    monkeypatch.setattr(pushworker, "SLICE", {"records": 4, "observations": 4})
    monkeypatch.setattr("runlog.syncpack.PACK_ITEMS", 10)
    original = tmp_path / "alice.db"
    fill(original, 30)
    _observe_all(original)
    with Ledger.open(original, create=False) as ledger:
        if table == "records":
            [(bad,)] = ledger.conn.execute("SELECT address FROM records WHERE seq = 20")
        else:  # the address the observation had before it was changed: what a pack's index would name
            found: list = []
            ledger.observation_addresses(unindexed=found)
            [bad] = [address for seq, address in found if seq == 20]
    if table == "records":  # the 20th record's name changed in place: its bytes no longer match its address
        tamper(original, "UPDATE records SET body = replace(body, '\"run-19\"', '\"run-91\"') WHERE seq = 20")
    else:
        tamper(original, "UPDATE observations SET body = replace(body, 'RUNNING', 'FAILED') WHERE seq = 20")
    refusals = set()
    for workers in ("0", "2"):
        ledger = tmp_path / f"alice-{workers}.db"
        shutil.copy(original, ledger)
        result = _push(run_cli, ledger, f"s3://{BUCKET}/w{workers}/", workers, monkeypatch)
        assert result.exit_code == 2 and result.stderr.startswith("runlog: error: refusing to push: ")
        problem, _, sent = result.stderr.partition("; ")
        refusals.add(problem)
        # what the line says was sent is what the remote holds (the packs being sent when the
        # item was found are finished: how many depends on timing), and none holds the item
        indexes = [json.loads(body) for key, (body, _) in _remote(bucket, f"w{workers}/packs/").items()
                   if key.endswith(".index.json")]
        records = sum(len(index["records"]) for index in indexes)
        observations = sum(len(index["observations"]) for index in indexes)
        said = ", ".join(f"{count} {what}" for count, what in ((records, "record(s)"), (observations, "observation(s)"))
                         if count)
        assert sent.startswith(f"{said} checked before it were sent, nothing after" if said else "nothing was sent")
        assert not any(bad in json.dumps(index) for index in indexes)
    [line] = refusals  # the same problem named, with workers or without
    assert (f"record #20 {bad[:12]} no longer matches its content address" if table == "records"
            else "observation #20 was edited") in line


class HoldBlobs(HoldRequests):
    """Holds every PUT of a blob (sent before the first pack) until `release` is set."""

    def holds(self, handler) -> bool:
        return handler.command == "PUT" and "/blobs/" in handler.path


@contextmanager
def _cohort_push_held(s3_emulator, bucket, ledger: Path, run_cli, monkeypatch
                      ) -> Iterator[tuple[HoldBlobs, subprocess.Popen, list[int]]]:
    """A refreshed cohort of three in `ledger`, then `runlog push` of it with two workers in a
    process of its own, stopped at its blobs' PUTs: the workers are started, and have checked
    nothing. Yields the proxy holding the PUTs, the process and its workers' pids."""
    refreshed_cohort(run_cli, s3_emulator, bucket, ["S1", "S2", "S3"])
    with proxy_in_front(HoldBlobs, bucket, monkeypatch) as front:
        proc, workers = _push_held(front, ledger)
        yield front, proc, workers


def _push_held(front: HoldBlobs, ledger: Path) -> tuple[subprocess.Popen, list[int]]:
    env = {**os.environ, "RUNLOG_PUSH_WORKERS": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "runlog", "--ledger", str(ledger), "push", REMOTE],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (front.held and len(workers := workers_of(proc.pid, "runlog.pushworker")) == 2) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert front.held and len(workers) == 2, proc.communicate(timeout=60)
    return proc, workers


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from Linux's /proc")
def test_a_worker_that_dies_fails_the_push_in_one_line_and_the_next_push_resumes(
        s3_emulator, bucket, ledger_path, git_repo, run_cli, tmp_path, monkeypatch):
    with _cohort_push_held(s3_emulator, bucket, ledger_path, run_cli, monkeypatch) as (front, proc, workers):
        assert kill_held(proc, front, workers) == [
            "runlog: error: a worker process checking the records to push ended without an answer (out of memory, "
            "or killed?); the packs sent before it are on the remote: run the push again (it resumes)"]
        assert not [key for key in _remote(bucket, "runlog/") if key.startswith("packs/")]
        again = run_cli("--ledger", ledger_path, "push", REMOTE, "--json")
        assert again.exit_code == 0, again.stderr
        assert json.loads(again.stdout)["records_sent"] == 4  # the batch record and its three members
        other = tmp_path / "other.db"
        assert run_cli("--ledger", other, "pull", REMOTE).exit_code == 0
    with Ledger.open(other, create=False) as pulled, Ledger.open(ledger_path, create=False) as original:
        assert pulled.addresses() == original.addresses() and verify(pulled).ok


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from Linux's /proc")
def test_ctrl_c_during_a_push_with_workers_leaves_no_process_and_the_next_push_completes(
        s3_emulator, bucket, ledger_path, git_repo, run_cli, tmp_path, monkeypatch):
    with _cohort_push_held(s3_emulator, bucket, ledger_path, run_cli, monkeypatch) as (front, proc, workers):
        interrupt_held(proc, front, workers)
        again = run_cli("--ledger", ledger_path, "push", REMOTE, "--json")
        assert again.exit_code == 0, again.stderr
        assert json.loads(again.stdout)["records_sent"] == 4


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from Linux's /proc")
def test_a_ledger_file_replaced_during_a_push_is_never_read_by_its_workers(
        s3_emulator, bucket, ledger_path, git_repo, run_cli, tmp_path, monkeypatch):
    intruder = tmp_path / "intruder.db"
    planted = set(fill(intruder, 5))  # well-formed records that are not the ledger's
    with _cohort_push_held(s3_emulator, bucket, ledger_path, run_cli, monkeypatch) as (front, proc, _):
        os.replace(intruder, ledger_path)  # renamed into the ledger's place while the push runs
        front.release.set()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert err.strip().splitlines() == [
        f"runlog: error: the ledger file {ledger_path} was replaced while it was pushed (another file renamed into "
        "its place): nothing of it was sent after the packs before; check which file is the ledger, then run the "
        "push again"]
    sent = _remote(bucket, "runlog/")
    assert not [key for key in sent if key.startswith("packs/")]
    assert not any(address.encode() in body for address in planted for body, _ in sent.values())


def test_the_number_of_push_workers_follows_the_size_and_the_variable(bucket, tmp_path, run_cli, monkeypatch):
    monkeypatch.delenv("RUNLOG_PUSH_WORKERS", raising=False)
    assert pushworker.worker_count(1000) == 0  # a small push checks its items itself
    cores = len(os.sched_getaffinity(0))
    assert pushworker.worker_count(1_000_000) == (min(cores, 4) if cores > 1 else 0)
    monkeypatch.setenv("RUNLOG_PUSH_WORKERS", "3")
    assert pushworker.worker_count(10) == 3
    fill(tmp_path / "alice.db", 2)
    monkeypatch.setenv("RUNLOG_PUSH_WORKERS", "many")
    result = run_cli("--ledger", tmp_path / "alice.db", "push", REMOTE)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "runlog: error: RUNLOG_PUSH_WORKERS='many' is not a number of 0 or more: set it to how many worker processes "
        "check a push's items (0: none), or unset it"]
    assert not _remote(bucket, "")  # said before anything was sent
