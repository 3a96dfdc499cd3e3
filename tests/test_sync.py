"""A team ledger on moto's S3 server (the real S3 protocol over HTTP on loopback): push and
pull in both directions, conditional writes, verification of every pulled object, faults
(cut connections, access denied, missing buckets, stores without conditional writes), and
resuming. An HTTP proxy in front of moto counts requests and injects the faults."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys

import pytest

from helpers import BUCKET, REMOTE, addresses, fill, pull_json, push_json, record_key
from recordfactory import make_record
from runlog import record as rec
from runlog.ledger import Ledger
from runlog.migrations import LEDGER_FORMAT
from runlog.verify import verify

# -- helpers --------------------------------------------------------------------------------------

def observations(path):
    with Ledger.open(path) as ledger:
        rows = ledger.conn.execute("SELECT record, observed_at, source, status, body FROM observations")
        return sorted(rows.fetchall())


def remote_keys(s3, under=""):
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="runlog/" + under)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


# -- push and pull ----------------------------------------------------------------------------------

def test_push_pull_both_ways_and_a_second_push_is_a_noop(proxy, bucket, tmp_path, run_cli):
    alice, bob = tmp_path / "alice.db", tmp_path / "bob.db"
    alice_records = fill(alice, 5)
    bob_records = fill(bob, 3, start=100)

    pushed = push_json(run_cli, alice, "--objects")  # runlog.remote/1: one object each (packs: test_sync_packs)
    assert (pushed["records_sent"], pushed["observations_sent"], pushed["records_present"]) == (5, 1, 0)
    assert proxy.count("PUT") == 1 + 5 + 1 + 1  # the format marker, the records, the observation, the head
    assert proxy.count("PUT", "/records/") == 5

    proxy.reset()
    again = push_json(run_cli, alice, "--objects")
    assert (again["records_sent"], again["observations_sent"], again["records_present"]) == (0, 0, 5)
    assert proxy.count("PUT") == 0 and proxy.count("HEAD") == 0  # listed, nothing written

    marker = json.loads(bucket.get_object(Bucket=BUCKET, Key="runlog/runlog-remote.json")["Body"].read())
    assert marker == {"format": "runlog.remote/1"}
    with Ledger.open(alice) as ledger:
        body = ledger.get(alice_records[2]).body
    stored = bucket.get_object(Bucket=BUCKET, Key=record_key(alice_records[2]))
    assert stored["Body"].read() == body.encode("utf-8")
    assert stored["ContentType"] == "application/json"
    assert stored["Metadata"]["runlog-address"] == alice_records[2]

    assert push_json(run_cli, bob, "--objects")["records_sent"] == 3
    proxy.reset()
    code, pulled = pull_json(run_cli, alice)
    assert code == 0 and pulled["refused"] == []
    assert (pulled["records_received"], pulled["observations_received"], pulled["records_present"]) == (3, 1, 5)
    assert proxy.count("GET", "/records/") == 3  # only what alice lacked was downloaded
    code, pulled = pull_json(run_cli, bob)
    assert (code, pulled["records_received"], pulled["observations_received"]) == (0, 5, 1)

    assert addresses(alice) == addresses(bob) == set(alice_records) | set(bob_records)
    assert observations(alice) == observations(bob) and len(observations(alice)) == 2  # observed_at, source kept
    with Ledger.open(alice) as a, Ledger.open(bob) as b:
        assert verify(a).ok and verify(b).ok
        # pulled records land at the end of the local chain, oldest first
        for ledger, own, theirs in ((a, alice_records, bob_records), (b, bob_records, alice_records)):
            chain = sorted(ledger.entries(), key=lambda e: e.seq)  # ledger (chain) order
            assert [e.address for e in chain[:len(own)]] == own
            pulled = chain[len(own):]
            assert {e.address for e in pulled} == set(theirs)
            assert [e.created for e in pulled] == sorted(e.created for e in pulled)

    proxy.reset()
    code, pulled = pull_json(run_cli, alice)
    assert (code, pulled["records_received"], pulled["observations_received"]) == (0, 0, 0)
    assert proxy.count("GET", "/records/") == 0 and proxy.count("GET", "/observations/") == 0
    assert push_json(run_cli, alice)["observations_sent"] == 0  # bob's observation is on the remote already


def test_pulled_observations_are_not_pushed_back_or_duplicated(bucket, tmp_path, run_cli):
    alice, bob = tmp_path / "alice.db", tmp_path / "bob.db"
    made = fill(alice, 2)
    push_json(run_cli, alice)
    pull_json(run_cli, bob)
    with Ledger.open(bob) as ledger:  # bob learns something new about alice's run
        ledger.observe(made[0], "GetRun", {"status": "FAILED"}, status="FAILED")
    assert push_json(run_cli, bob)["observations_sent"] == 1
    code, pulled = pull_json(run_cli, alice)
    assert (code, pulled["observations_received"]) == (0, 1)
    assert json.loads(run_cli("--ledger", alice, "log", "--json").stdout)[-1]["status"] == "FAILED"
    assert pull_json(run_cli, alice)[1]["observations_received"] == 0
    assert len(observations(alice)) == 2 and observations(alice) == observations(bob)


def test_transfers_run_concurrently(proxy, tmp_path, run_cli):
    source = tmp_path / "source.db"
    fill(source, 12, observe=False)
    proxy.latency = 0.03  # each request waits on "the network"
    push_json(run_cli, source, "--jobs", "8", "--objects")  # twelve objects (packs: test_sync_packs)
    assert proxy.max_in_flight > 1
    proxy.reset()
    code, pulled = pull_json(run_cli, tmp_path / "one.db", "--jobs", "1")
    assert code == 0 and pulled["records_received"] == 12 and proxy.max_in_flight == 1
    proxy.reset()
    code, pulled = pull_json(run_cli, tmp_path / "many.db", "--jobs", "16")
    assert code == 0 and pulled["records_received"] == 12 and proxy.max_in_flight > 4


# -- verification ------------------------------------------------------------------------------------

def test_tampered_truncated_and_foreign_objects_are_refused_while_good_ones_import(bucket, tmp_path, run_cli):
    alice, carol = tmp_path / "alice.db", tmp_path / "carol.db"
    made = fill(alice, 5)
    push_json(run_cli, alice, "--objects")  # runlog.remote/1 objects (tampered packs: test_sync_packs)

    def put(key, data):
        bucket.put_object(Bucket=BUCKET, Key=key, Body=data)

    forged = json.loads(bucket.get_object(Bucket=BUCKET, Key=record_key(made[1]))["Body"].read())
    forged["request"]["name"] = "forged"
    put(record_key(made[1]), rec.canonical_json(forged))
    whole = bucket.get_object(Bucket=BUCKET, Key=record_key(made[2]))["Body"].read()
    put(record_key(made[2]), whole[:100])
    not_a_record = rec.canonical_json({"hello": "world"})
    put(record_key(rec.sha256_hex(not_a_record)), not_a_record)
    loose = json.dumps(json.loads(whole), indent=1).encode()  # right hash for its bytes, not canonical
    put(record_key(rec.sha256_hex(loose)), loose)
    misfiled = f"runlog/records/00/{made[3]}.json"
    put(misfiled, whole)
    [observation_key] = remote_keys(bucket, "observations/")
    put(observation_key, bucket.get_object(Bucket=BUCKET, Key=observation_key)["Body"].read().replace(
        b"COMPLETED", b"RUNNING"))

    result = run_cli("--ledger", carol, "pull", REMOTE)
    assert result.exit_code == 1
    refused = {line.split()[2].rstrip(":"): line for line in result.stderr.splitlines()
               if line.startswith("runlog: refused")}
    assert set(refused) == {f"s3://{BUCKET}/{k}" for k in (
        record_key(made[1]), record_key(made[2]), record_key(rec.sha256_hex(not_a_record)),
        record_key(rec.sha256_hex(loose)), misfiled, observation_key)}
    assert "tampered or truncated" in refused[f"s3://{BUCKET}/{record_key(made[1])}"]
    assert "not a valid record" in refused[f"s3://{BUCKET}/{record_key(rec.sha256_hex(not_a_record))}"]
    assert "canonical" in refused[f"s3://{BUCKET}/{record_key(rec.sha256_hex(loose))}"]
    assert "received 3 record(s) and 0 observation(s)" in result.stdout
    assert addresses(carol) == {made[0], made[3], made[4]}  # nothing unverified entered
    assert observations(carol) == []
    with Ledger.open(carol) as ledger:
        assert verify(ledger).ok


# -- faults ---------------------------------------------------------------------------------------------

def test_a_push_cut_off_half_way_changes_nothing_locally_and_a_rerun_completes(proxy, bucket, tmp_path,
                                                                                run_cli, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    alice = tmp_path / "alice.db"
    fill(alice, 12)
    before = alice.read_bytes()
    proxy.cut_puts_after = 4  # the marker and three objects, then the network goes

    result = run_cli("--ledger", alice, "push", REMOTE, "--objects")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("runlog: error: push to s3://")
    assert "cannot reach S3" in result.stderr and "run it again to resume" in result.stderr
    assert alice.read_bytes() == before
    written = [k for k in remote_keys(bucket) if not k.endswith("runlog-remote.json")]
    assert len(written) == 3

    proxy.cut_puts_after = None
    proxy.reset()
    resumed = push_json(run_cli, alice, "--objects")
    assert resumed["records_sent"] + resumed["observations_sent"] == 13 - 3
    assert proxy.count("PUT") == 10 + 1  # only what was missing, and the head
    assert len(remote_keys(bucket, "records/")) == 12 and len(remote_keys(bucket, "observations/")) == 1
    code, pulled = pull_json(run_cli, tmp_path / "bob.db")
    assert (code, pulled["records_received"], pulled["observations_received"]) == (0, 12, 1)


def test_access_denied_is_one_line_and_creates_nothing(proxy, tmp_path, run_cli):
    alice = tmp_path / "alice.db"
    fill(alice, 2)
    before = alice.read_bytes()
    proxy.deny = True
    for command, ledger in (("push", alice), ("pull", tmp_path / "new.db")):
        result = run_cli("--ledger", ledger, command, REMOTE)
        assert result.exit_code == 1, command
        assert result.stderr.count("\n") == 1
        assert "access denied" in result.stderr and REMOTE in result.stderr
    assert alice.read_bytes() == before
    assert not (tmp_path / "new.db").exists()


def test_missing_bucket_is_one_line_and_changes_nothing(s3_server, tmp_path, run_cli):
    alice = tmp_path / "alice.db"
    fill(alice, 2)
    before = alice.read_bytes()
    for command, ledger in (("push", alice), ("pull", tmp_path / "new.db")):
        result = run_cli("--ledger", ledger, command, "s3://no-such-bucket-here/x")
        assert result.exit_code == 1
        assert "bucket no-such-bucket-here does not exist" in result.stderr
        assert result.stderr.count("\n") == 1
    assert alice.read_bytes() == before
    assert not (tmp_path / "new.db").exists()


def test_store_without_conditional_writes_falls_back_to_head_then_put(proxy, bucket, tmp_path, run_cli):
    alice = tmp_path / "alice.db"
    fill(alice, 3)
    proxy.no_conditional = True
    result = run_cli("--ledger", alice, "push", REMOTE, "--json")
    assert result.exit_code == 0
    assert "does not support conditional writes" in result.stderr
    assert json.loads(result.stdout)["records_sent"] == 3
    assert len(remote_keys(bucket, "packs/")) == 2 and proxy.count("HEAD") >= 2  # a pack and its index
    proxy.reset()
    assert push_json(run_cli, alice)["records_sent"] == 0 and proxy.count("PUT") == 0


@pytest.mark.parametrize("remote", ["https://example.org/x", "s3://", "s3://Bad_Bucket/x", "lab-provenance"])
def test_a_remote_that_is_not_s3_is_a_usage_error(remote, tmp_path, run_cli):
    fill(tmp_path / "a.db", 1)
    for command in ("push", "pull"):
        result = run_cli("--ledger", tmp_path / "a.db", command, remote)
        assert result.exit_code == 2 and "is not s3://BUCKET[/PREFIX]" in result.stderr


def test_no_remote_configured(tmp_path, run_cli):
    fill(tmp_path / "a.db", 1)
    result = run_cli("--ledger", tmp_path / "a.db", "push")
    assert result.exit_code == 2 and "no remote" in result.stderr and ".runlog.toml" in result.stderr


def test_a_remote_in_a_newer_format_is_refused(bucket, tmp_path, run_cli):
    bucket.put_object(Bucket=BUCKET, Key="runlog/runlog-remote.json", Body=b'{"format": "runlog.remote/3"}')
    fill(tmp_path / "a.db", 2)
    for command, ledger in (("pull", tmp_path / "x.db"), ("push", tmp_path / "a.db")):
        result = run_cli("--ledger", ledger, command, REMOTE)
        assert result.exit_code == 2 and "runlog.remote/3" in result.stderr and "upgrade runlog" in result.stderr
    assert remote_keys(bucket) == ["runlog/runlog-remote.json"]  # push wrote nothing
    assert not (tmp_path / "x.db").exists()


def test_pull_from_a_prefix_with_no_team_ledger(bucket, tmp_path, run_cli):
    result = run_cli("--ledger", tmp_path / "x.db", "pull", "s3://lab-provenance/typo")
    assert result.exit_code == 1 and "holds no team ledger" in result.stderr
    assert not (tmp_path / "x.db").exists()


# -- buckets, configuration, attempts, progress --------------------------------------------------------

def test_a_versioned_object_lock_bucket_is_written_once(s3_server, tmp_path, run_cli):
    s3_server.create_bucket(Bucket="audit-ledger", ObjectLockEnabledForBucket=True)
    s3_server.put_object_lock_configuration(Bucket="audit-ledger", ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}})
    alice = tmp_path / "alice.db"
    fill(alice, 3)
    remote = "s3://audit-ledger/lab"
    for _ in range(2):
        assert run_cli("--ledger", alice, "push", remote).exit_code == 0
    versions = s3_server.list_object_versions(Bucket="audit-ledger")["Versions"]
    assert len(versions) == 1 + 2 + 1  # one version per object (marker, a pack and its index, head)
    with pytest.raises(Exception, match="AccessDenied"):  # compliance mode: not even the owner may delete it
        s3_server.delete_object(Bucket="audit-ledger", Key=versions[0]["Key"], VersionId=versions[0]["VersionId"])
    result = run_cli("--ledger", tmp_path / "bob.db", "pull", remote)
    assert result.exit_code == 0 and addresses(tmp_path / "bob.db") == addresses(alice)


def test_remote_and_profile_from_the_usual_configuration(bucket, tmp_path, run_cli, monkeypatch):
    """`remote` from .runlog.toml; region and S3 endpoint from an AWS profile's services section."""
    endpoint = os.environ["AWS_ENDPOINT_URL_S3"]
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    config = tmp_path / "aws-config"
    config.write_text(f"[profile lab]\nregion = eu-west-1\nservices = lab-s3\n"
                      "aws_access_key_id = lab\naws_secret_access_key = lab\n\n"
                      f"[services lab-s3]\ns3 =\n  endpoint_url = {endpoint}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".runlog.toml").write_text(f'remote = "{REMOTE}"\nledger = "l.db"\n')
    fill(tmp_path / "l.db", 2)
    result = run_cli("push", "--profile", "lab")
    assert result.exit_code == 0, result.stderr
    assert "sent 2 record(s), 1 observation(s) in 1 pack(s)" in result.stdout
    assert len(remote_keys(bucket, "packs/")) == 2
    missing = run_cli("push", "--profile", "nobody")
    assert missing.exit_code == 2 and "profile 'nobody' not found" in missing.stderr


def test_pending_attempts_are_shared_not_imported(bucket, tmp_path, run_cli):
    alice, bob = tmp_path / "alice.db", tmp_path / "bob.db"
    fill(alice, 1)
    intent = make_record(run_id="5100000")
    del intent["outcome"]
    request_id = intent["request"]["requestId"]
    with Ledger.open(alice) as ledger:
        ledger.add_attempt(intent)
    pushed = run_cli("--ledger", alice, "push", REMOTE, "--json")
    assert json.loads(pushed.stdout)["attempts_sent"] == 1
    assert remote_keys(bucket, "attempts/") == [
        f"runlog/attempts/{request_id}/{rec.sha256_hex(rec.canonical_json(intent))}.json"]
    assert push_json(run_cli, alice)["attempts_sent"] == 0
    result = run_cli("--ledger", bob, "pull", REMOTE)
    assert result.exit_code == 0
    assert f"1 attempt(s) pending in other ledgers ({request_id})" in result.stderr
    with Ledger.open(bob) as ledger:
        assert ledger.pending() == []


def test_progress_bar_only_on_a_terminal(bucket, tmp_path):
    fill(tmp_path / "a.db", 40, observe=False)

    def stderr_on_a_tty(*args):
        leader, follower = pty.openpty()
        proc = subprocess.Popen([sys.executable, "-m", "runlog", "--ledger", str(tmp_path / "a.db"),
                                 *map(str, args)],
                                stdout=subprocess.PIPE, stderr=follower, env=dict(os.environ))
        os.close(follower)
        seen = b""
        while True:
            ready, _, _ = select.select([leader], [], [], 60)
            try:
                chunk = os.read(leader, 4096) if ready else b""
            except OSError:  # the child closed the terminal
                chunk = b""
            if not chunk:
                break
            seen += chunk
        os.close(leader)
        assert proc.wait(timeout=60) == 0, seen
        return seen.decode(errors="replace")

    assert "pushing" in stderr_on_a_tty("push", REMOTE)
    assert "pulling packs" not in stderr_on_a_tty("--ledger", tmp_path / "b.db", "pull", REMOTE, "--quiet")
    assert "pulling packs" in stderr_on_a_tty("--ledger", tmp_path / "c.db", "pull", REMOTE)


def test_a_ledger_written_before_migration_2_is_upgraded_and_shares_its_observations(bucket, tmp_path, run_cli):
    import sqlite3

    old = tmp_path / "old.db"
    made = fill(old, 2)
    with sqlite3.connect(old) as conn:  # what a ledger of format 1 looks like
        conn.executescript("DROP TRIGGER observation_addresses_no_update; DROP TRIGGER observation_addresses_no_delete;"
                           "DROP TABLE observation_addresses; DROP TRIGGER row_seals_no_update;"
                           "DROP TRIGGER row_seals_no_delete; DROP TABLE row_seals; PRAGMA user_version = 1;")
    pushed = push_json(run_cli, old, "--objects")
    assert (pushed["records_sent"], pushed["observations_sent"]) == (2, 1)
    with Ledger.open(old) as ledger:
        assert ledger.conn.execute("PRAGMA user_version").fetchone()[0] == LEDGER_FORMAT
        [(address,)] = ledger.conn.execute("SELECT address FROM observation_addresses").fetchall()
        assert verify(ledger).ok
    assert remote_keys(bucket, "observations/") == [f"runlog/observations/{made[0]}/{address}.json"]
    with Ledger.open(old) as ledger:  # pulling its own observation back adds nothing
        ledger.observe(made[1], "GetRun", {"status": "RUNNING"}, status="RUNNING")
    assert pull_json(run_cli, old)[1]["observations_received"] == 0
    assert push_json(run_cli, old)["observations_sent"] == 1
