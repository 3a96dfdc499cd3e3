"""A pull checks each received member record against its batch record as it inserts them, page
by page, in a worker process while the page before is inserted (runlog/sync.py _MemberCheck,
runlog/syncworker.py Checkers.members): a forged member is refused with the same line whether
the check runs in a worker or in the pulling process, against a batch record received in the
same pull or one the ledger holds. moto's S3 server, the emulator, real ledger files, the CLI."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from helpers import REMOTE, forged_member, push_json, put_forged_member, record_key, refreshed_cohort
from runlog import blobs, syncinsert
from runlog import record as rec
from runlog.batch import unmade_members
from runlog.ledger import Ledger
from runlog.syncworker import Checkers, WorkerError
from runlog.verify import verify


def _refused(result) -> list[str]:
    return sorted(line for line in result.stderr.splitlines() if line.startswith("runlog: refused "))


def _held(path) -> tuple[set[str], set[str]]:
    with Ledger.open(path, create=False) as ledger:
        assert verify(ledger).ok
        return ledger.addresses(), ledger.observation_addresses()


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_forged_member_is_refused_in_a_worker_as_in_the_pulling_process(s3_emulator, bucket, ledger_path, git_repo,
                                                                          run_cli, tmp_path, monkeypatch, workers):
    refreshed_cohort(run_cli, s3_emulator, bucket, [f"S{i}" for i in range(5)])
    push_json(run_cli, ledger_path)  # in packs
    with Ledger.open(ledger_path, create=False) as ledger:
        batch = ledger.entries(where="kind = 'batch'")[0]
        members = ledger.entries(where="kind = 'member'")
        expected = ledger.addresses()
    forged = put_forged_member(bucket, members[0].body)
    monkeypatch.setattr(syncinsert, "INSERT_PAGE", 2)  # pages of two records: several checked while others are inserted
    monkeypatch.setenv("RUNLOG_PULL_WORKERS", workers)

    other = tmp_path / "other.db"
    result = run_cli("--ledger", other, "pull", REMOTE)  # the batch record received in this pull
    assert result.exit_code == 1, result.output
    assert _refused(result) == [
        f"runlog: refused s3://lab-provenance/{record_key(forged)}: member record {forged} is not what its batch "
        f"record {batch.address} makes of run setting {json.loads(members[0].body)['batch']['run_setting_id']!r} (its settings or its batch differ): a member is made "
        "from its batch record, never written by hand"]
    assert _held(other)[0] == expected

    second = forged_member(members[1].body)
    second["request"]["parameters"]["sample_name"] = "FORGED"
    second["fingerprint"] = rec.fingerprint(second)
    body = rec.canonical_json(second)
    address = rec.sha256_hex(body)
    bucket.put_object(Bucket="lab-provenance", Key=record_key(address), Body=body)
    again = run_cli("--ledger", other, "pull", REMOTE)  # against the batch record the ledger holds
    assert again.exit_code == 1, again.output
    assert [line.split(": ")[1] for line in _refused(again)] == sorted(
        f"refused s3://lab-provenance/{record_key(a)}" for a in (forged, address))
    assert all("is not what its batch record" in line for line in _refused(again))
    assert _held(other)[0] == expected


def test_the_workers_check_members_as_the_batch_module_does(s3_emulator, bucket, ledger_path, git_repo, run_cli):
    refreshed_cohort(run_cli, s3_emulator, bucket, ["S1", "S2", "S3"])
    with Ledger.open(ledger_path, create=False) as ledger:
        batch = ledger.entries(where="kind = 'batch'")[0]
        members = [(m.address, m.body.encode()) for m in ledger.entries(where="kind = 'member'")]
        cohort = _cohort(ledger, batch)  # held by reference (runlog/blobs.py): its blobs go with it
        whole = batch.record
    forged = rec.canonical_json(forged_member(members[0][1].decode()))
    odd = json.loads(members[1][1])
    odd["batch"]["run_setting_id"] = "NOT-IN-THE-BATCH"
    items = [*members, (rec.sha256_hex(forged), forged), ("0" * 64, b"not json {"), ("1" * 64, b"[]"),
             (rec.sha256_hex(rec.canonical_json(odd)), rec.canonical_json(odd))]
    shapeless = json.loads(json.dumps(whole))  # the cohort inline
    shapeless["batch"]["settings_file"]["content"][0] = "not a run setting"  # no member can be made of it
    for record, body, received, held in ((whole, batch.body.encode(), True, cohort),
                                         (whole, batch.body.encode(), False, cohort),
                                         (shapeless, rec.canonical_json(shapeless), True, None)):
        expected = unmade_members(record, batch.address, items)
        assert set(expected) >= {items[3][0], items[4][0], items[5][0], items[6][0]} if record is whole \
            else set(expected) == {a for a, _ in items}
        for workers in (0, 1, 2):
            with Checkers(workers) as checkers:
                for _ in range(2):  # the second time from the check the worker holds
                    assert dict(checkers.members(batch.address, body, received, items, held).result()) == expected


def _cohort(ledger: Ledger, batch) -> dict[str, bytes]:
    """The blobs a batch record names, as a pull passes them to the member check."""
    return {ref["sha256"]: ledger.blob(ref["sha256"]) for _, _, ref in blobs.refs(batch.stored)}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from Linux's /proc")
def test_a_worker_that_dies_checking_members_fails_in_one_line_that_says_what_stays(s3_emulator, bucket, ledger_path,
                                                                                  git_repo, run_cli):
    refreshed_cohort(run_cli, s3_emulator, bucket, ["S1", "S2"])
    with Ledger.open(ledger_path, create=False) as ledger:
        batch = ledger.entries(where="kind = 'batch'")[0]
        members = [(m.address, m.body.encode()) for m in ledger.entries(where="kind = 'member'")]
        cohort = _cohort(ledger, batch)
    with Checkers(1) as checkers:
        [worker] = [int(stat.parent.name) for stat in Path("/proc").glob("[0-9]*/stat")
                    if stat.read_text().rsplit(")", 1)[1].split()[1] == str(os.getpid())
                    and b"runlog.syncworker" in (stat.parent / "cmdline").read_bytes()]
        assert checkers.members(batch.address, batch.body.encode(), True, members, cohort).result() == []
        os.kill(worker, signal.SIGKILL)
        with pytest.raises(WorkerError) as failed:
            checkers.members(batch.address, batch.body.encode(), True, members, cohort).result()
    assert str(failed.value) == ("a worker process checking the pulled member records ended without an answer (out "
                                 "of memory, or killed?); nothing was inserted: run the pull again (it resumes)")
