"""A batch record holding its cohort by reference (runlog/blobs.py) travels with its blobs:
push sends each blob once, as blobs/<sha256>.json.zlib, after checking it as verify does;
pull fetches the blobs of the batch records it takes, checks each as hostile input, and
leaves out a record whose blob is missing or bad (its members with it). moto's S3 server,
the emulator, real ledger files, the CLI."""

from __future__ import annotations

import json
import zlib

import pytest

from helpers import COHORT_DEFAULT, REMOTE, cohort_setting, pull_json, push_json, refreshed_cohort, tamper
from runlog import blobs, syncblobs
from runlog.ledger import Ledger

BLOBS = "runlog/blobs/"


def _batch(path) -> tuple[str, dict, list[str]]:
    """The batch record's address, its references by place, and its members' addresses."""
    with Ledger.open(path, create=False) as ledger:
        (batch,) = ledger.entries(where="kind = 'batch'")
        members = sorted(entry.address for entry in ledger.entries(where="kind = 'member'"))
        return batch.address, {place: ref for place, _, ref in blobs.refs(batch.stored)}, members


def _keys(s3, prefix: str) -> list[str]:
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket="lab-provenance", Prefix=prefix).get("Contents", []))


def _refused(result) -> list[str]:
    return sorted(line for line in result.stderr.splitlines() if line.startswith("runlog: refused "))


@pytest.mark.parametrize("objects", [False, True], ids=["packs", "objects"])
def test_a_cohort_held_by_reference_is_pushed_and_pulled_with_its_blobs(s3_emulator, bucket, ledger_path, git_repo,
                                                                        run_cli, tmp_path, objects):
    batch_id = refreshed_cohort(run_cli, s3_emulator, bucket, ["S1", "S2", "S3"])
    address, refs, members = _batch(ledger_path)
    assert set(refs) == {blobs.CONTENT, blobs.INPUTS}  # an s3UriSettings batch: both parts by reference
    pushed = push_json(run_cli, ledger_path, *(["--objects"] if objects else []))
    assert pushed["blobs_sent"] == 2
    assert _keys(bucket, BLOBS) == sorted(f"{BLOBS}{ref['sha256']}.json.zlib" for ref in refs.values())
    with Ledger.open(ledger_path, create=False) as ledger:
        for ref in refs.values():  # zlib's compression of the canonical JSON named by its SHA-256
            sent = bucket.get_object(Bucket="lab-provenance", Key=f"{BLOBS}{ref['sha256']}.json.zlib")["Body"].read()
            assert zlib.decompress(sent) == ledger.blob(ref["sha256"])
    assert push_json(run_cli, ledger_path)["blobs_sent"] == 0  # once

    other = tmp_path / "other.db"
    code, pulled = pull_json(run_cli, other)
    assert (code, pulled["refused"], pulled["blobs_received"]) == (0, [], 2)
    assert _batch(other) == (address, refs, members)
    assert run_cli("--ledger", other, "verify", "--no-remote").exit_code == 0
    shown = json.loads(run_cli("--ledger", other, "show", batch_id, "--json").stdout)
    assert [s["runSettingId"] for s in shown["record"]["batch"]["settings_file"]["content"]] == ["S1", "S2", "S3"]
    assert shown["batch"]["run_status"] == {"COMPLETED": 3}
    listed = run_cli("--ledger", other, "log", "--batch", batch_id, "--json")
    assert listed.exit_code == 0 and len(json.loads(listed.stdout)) == 3
    assert run_cli("--ledger", other, "diff", batch_id, batch_id).exit_code == 0
    refreshed = run_cli("--ledger", other, "refresh", batch_id)
    assert refreshed.exit_code == 0, refreshed.output
    code, again = pull_json(run_cli, other)
    assert (code, again["records_received"], again["blobs_received"]) == (0, 0, 0)


def _bomb(ref: dict) -> bytes:
    return zlib.compress(b" " * (64 * 1024 * 1024), 9)  # 64 MiB of spaces in about 64 KiB


def _other_bytes(ref: dict) -> bytes:
    return zlib.compress(b'[{"runSettingId":"FORGED"}]')


def _truncated(ref: dict) -> bytes:
    return zlib.compress(b" " * ref["bytes"])[:-6]


HOSTILE = {
    "other bytes": (_other_bytes, "does not hold the bytes its name is the digest of"),
    "zlib bomb": (_bomb, "decompresses to more than {bytes} bytes (a zlib bomb?)"),
    "not zlib": (lambda ref: b"not zlib at all", "is not zlib data"),
    "truncated": (_truncated, "is not one whole zlib stream (truncated, or bytes after it)"),
    "missing": (None, None),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_batch_record_whose_blob_is_bad_or_missing_is_left_out_with_its_members(case, s3_emulator, bucket,
                                                                                   ledger_path, git_repo, run_cli,
                                                                                   tmp_path):
    refreshed_cohort(run_cli, s3_emulator, bucket, ["S1", "S2"])
    address, refs, members = _batch(ledger_path)
    push_json(run_cli, ledger_path)
    ref = refs[blobs.CONTENT]
    key = f"{BLOBS}{ref['sha256']}.json.zlib"
    make, why = HOSTILE[case]
    if make is None:
        bucket.delete_object(Bucket="lab-provenance", Key=key)
        why = f"the remote does not hold blob {ref['sha256']} ({key.removeprefix('runlog/')})"
    else:
        bucket.put_object(Bucket="lab-provenance", Key=key, Body=make(ref))  # someone who may write the bucket
        why = f"s3://lab-provenance/{key} was refused: blob {ref['sha256']} " + why.format(bytes=ref["bytes"])

    other = tmp_path / "other.db"
    result = run_cli("--ledger", other, "pull", REMOTE)
    assert result.exit_code == 1, result.output
    refused = _refused(result)
    (line,) = [line for line in refused if f"record {address} " in line]
    pack = line.split(": ")[1].removeprefix("refused ")
    assert line == (f"runlog: refused {pack}: record {address} is left out: its batch.settings_file.content is held "
                    f"by reference, and {why}")
    others = [other for other in refused if other != line]  # each member, for want of its batch record
    assert len(others) == len(members)
    assert all("which this pull does not take and this ledger does not hold" in other for other in others)
    with Ledger.open(other, create=False) as ledger:
        assert ledger.addresses().isdisjoint({address, *members})
        assert ledger.conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 0  # nothing of it is kept
    assert run_cli("--ledger", other, "verify", "--no-remote").exit_code == 0

    bucket.delete_object(Bucket="lab-provenance", Key=key)  # the good blob again (the record itself is intact)
    assert push_json(run_cli, ledger_path)["blobs_sent"] == 1
    code, pulled = pull_json(run_cli, other)
    assert (code, pulled["records_received"], pulled["refused"]) == (0, 1 + len(members), [])
    assert run_cli("--ledger", other, "verify", "--no-remote").exit_code == 0


def test_a_blob_is_never_decompressed_beyond_its_reference_or_the_limit():
    data = b'[{"runSettingId":"S1"}]'
    ref = blobs.Blob(data).ref
    bomb = zlib.compress(b" " * (64 * 1024 * 1024), 9)
    assert syncblobs.received(ref, zlib.compress(data), blobs.CONTENT, 1, 1024) == (data, None)
    assert syncblobs.received(ref, bomb, blobs.CONTENT, 1, 1024) == (
        None, f"blob {ref['sha256']} decompresses to more than {len(data)} bytes (a zlib bomb?)")
    claimed = {**ref, "bytes": 64 * 1024 * 1024}  # a reference that claims the bomb's size
    assert syncblobs.received(claimed, bomb, blobs.CONTENT, 1, 1024 * 1024) == (
        None, "too large: its reference says 67108864 bytes, more than the limit of 1048576 (`max_bytes`, or "
              "max_object_mib in the configuration)")
    assert syncblobs.received(ref, zlib.compress(data), blobs.CONTENT, 2, 1024)[1] == (
        f"blob {ref['sha256']} holds 1 run settings, the record says 2")


def test_push_refuses_a_ledger_whose_blob_was_changed_and_sends_nothing(s3_emulator, bucket, ledger_path, git_repo,
                                                                        run_cli):
    refreshed_cohort(run_cli, s3_emulator, bucket, ["S1", "S2"])
    address, refs, _ = _batch(ledger_path)
    sha = refs[blobs.CONTENT]["sha256"]
    tamper(ledger_path, "UPDATE blobs SET data = ? WHERE sha256 = ?",
           params=(zlib.compress(b'[{"runSettingId":"S1"},{"runSettingId":"FORGED"}]'), sha))
    result = run_cli("--ledger", ledger_path, "push", REMOTE)
    assert result.exit_code == 2, result.output  # as for an edited record (test_verify_trust)
    assert result.stderr.startswith(f"runlog: error: refusing to push: record {address}: its "
                                    f"batch.settings_file.content (held by reference) cannot be trusted: blob {sha} "
                                    "does not hold the bytes its name is the digest of; nothing was sent")
    assert _keys(bucket, "runlog/") in ([], ["runlog/runlog-remote.json"])


def test_a_pending_attempts_blobs_are_pushed_with_it_and_checked_first(s3_emulator, bucket, ledger_path, git_repo,
                                                                       run_cli):
    bucket.create_bucket(Bucket="cohort-bucket")
    bucket.put_object(Bucket="cohort-bucket", Key="cohort/settings.json",
                      Body=json.dumps([cohort_setting(s) for s in ("S1", "S2")]).encode())
    s3_emulator.inject("error", operation="StartRunBatch", count=3, phase="after")  # started, 500 answered
    sent = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT), "--batch-run-settings",
                   json.dumps({"s3UriSettings": "s3://cohort-bucket/cohort/settings.json"}))
    assert sent.exit_code == 1 and "pending" in sent.stderr, sent.output
    with Ledger.open(ledger_path, create=False) as ledger:
        (intent,) = ledger.pending()
        refs = {place: ref for place, _, ref in blobs.refs(intent)}
        sha = refs[blobs.CONTENT]["sha256"]
        _, original = ledger.packed_blob(sha)
    assert set(refs) == {blobs.CONTENT, blobs.INPUTS}
    tamper(ledger_path, "UPDATE blobs SET data = ? WHERE sha256 = ?", params=(zlib.compress(b"[]"), sha))
    refused = run_cli("--ledger", ledger_path, "push", REMOTE)
    request_id = intent["request"]["requestId"]
    assert refused.exit_code == 2 and refused.stderr.splitlines()[-1].startswith(  # after the pending warning
        f"runlog: error: refusing to push: pending attempt {request_id}: its batch.settings_file.content (held by "
        f"reference) cannot be trusted: blob {sha} does not hold the bytes its name is the digest of"), refused.output
    assert _keys(bucket, BLOBS) == []

    tamper(ledger_path, "UPDATE blobs SET data = ? WHERE sha256 = ?", params=(original, sha))  # as it was
    pushed = push_json(run_cli, ledger_path)
    assert (pushed["attempts_sent"], pushed["blobs_sent"]) == (1, 2)
    assert _keys(bucket, BLOBS) == sorted(f"{BLOBS}{ref['sha256']}.json.zlib" for ref in refs.values())
