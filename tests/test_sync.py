"""A team ledger on moto's S3 server: push, pull, tampering, resuming; import and refresh via the emulator."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config

from recordfactory import make_record
from runlog.ledger import Ledger
from runlog.verify import verify

REMOTE = "s3://lab-provenance/runlog"


@pytest.fixture
def bucket(s3_server):
    s3_server.create_bucket(Bucket="lab-provenance")
    return s3_server


def fill(path, count, start=0):
    with Ledger.open(path) as ledger:
        entries = [ledger.add_record(make_record(run_id=str(5000000 + start + i)))[0] for i in range(count)]
        ledger.observe(entries[0].address, "GetRun", {"status": "COMPLETED"}, run_uuid=entries[0].run_uuid,
                       status="COMPLETED")
        return [e.address for e in entries]


def addresses(path):
    with Ledger.open(path) as ledger:
        return {e.address for e in ledger.entries()}


def test_push_pull_both_ways_and_second_push_is_a_noop(bucket, tmp_path, run_cli):
    alice, bob = tmp_path / "alice.db", tmp_path / "bob.db"
    fill(alice, 5)
    fill(bob, 3, start=100)
    pushed = json.loads(run_cli("--ledger", alice, "push", REMOTE, "--json").stdout)
    assert pushed["sent"] == 5 and pushed["observations_sent"] == 1
    again = json.loads(run_cli("--ledger", alice, "push", REMOTE, "--json").stdout)
    assert again["sent"] == 0 and again["present"] == 5 and again["observations_sent"] == 0
    keys = [o["Key"] for o in bucket.list_objects_v2(Bucket="lab-provenance")["Contents"]]
    assert "runlog/runlog-remote.json" in keys and sum("/records/" in k for k in keys) == 5
    assert run_cli("--ledger", bob, "push", REMOTE).exit_code == 0
    pulled = json.loads(run_cli("--ledger", alice, "pull", REMOTE, "--json").stdout)
    assert pulled["received"] == 3 and pulled["refused"] == []
    assert run_cli("--ledger", bob, "pull", REMOTE).exit_code == 0
    assert addresses(alice) == addresses(bob) and len(addresses(alice)) == 8
    with Ledger.open(alice) as a, Ledger.open(bob) as b:
        assert verify(a).ok and verify(b).ok
        assert len(b.conn.execute("SELECT * FROM observations").fetchall()) == 2
    record = bucket.get_object(Bucket="lab-provenance", Key=f"runlog/records/{next(iter(addresses(bob)))[:2]}/"
                                                               f"{next(iter(addresses(bob)))}.json")
    assert record["ContentType"] == "application/json"
    assert record["Metadata"]["runlog-address"] == next(iter(addresses(bob)))


def test_tampered_objects_are_refused_and_the_good_ones_imported(bucket, tmp_path, run_cli):
    alice, carol = tmp_path / "alice.db", tmp_path / "carol.db"
    made = fill(alice, 4)
    run_cli("--ledger", alice, "push", REMOTE)
    key = f"runlog/records/{made[1][:2]}/{made[1]}.json"
    body = json.loads(bucket.get_object(Bucket="lab-provenance", Key=key)["Body"].read())
    body["request"]["name"] = "forged"
    bucket.put_object(Bucket="lab-provenance", Key=key, Body=json.dumps(body).encode())
    truncated = f"runlog/records/{made[2][:2]}/{made[2]}.json"
    data = bucket.get_object(Bucket="lab-provenance", Key=truncated)["Body"].read()
    bucket.put_object(Bucket="lab-provenance", Key=truncated, Body=data[:100])
    junk = "runlog/records/ab/" + "ab" * 32 + ".json"
    bucket.put_object(Bucket="lab-provenance", Key=junk, Body=b"hello")
    result = run_cli("--ledger", carol, "pull", REMOTE)
    assert result.exit_code == 1
    assert made[1] in result.stderr and made[2] in result.stderr and "ab" * 32 in result.stderr
    assert "tampered or truncated" in result.stderr
    assert addresses(carol) == {made[0], made[3]}


def test_interrupted_push_resumes(bucket, tmp_path, run_cli):
    alice = tmp_path / "alice.db"
    made = fill(alice, 6)
    # half the records are already there (an earlier push died half way)
    with Ledger.open(alice) as ledger:
        for address in made[:3]:
            body = ledger.get(address).body.encode()
            bucket.put_object(Bucket="lab-provenance", Key=f"runlog/records/{address[:2]}/{address}.json", Body=body)
    result = json.loads(run_cli("--ledger", alice, "push", REMOTE, "--json").stdout)
    assert result["sent"] == 3 and result["present"] == 3


def test_push_failure_is_one_line_and_changes_nothing(s3_server, tmp_path, run_cli):
    alice = tmp_path / "alice.db"
    fill(alice, 2)
    before = alice.read_bytes()
    result = run_cli("--ledger", alice, "push", "s3://no-such-bucket-here/x")
    assert result.exit_code == 1
    assert "no-such-bucket-here does not exist" in result.stderr and "run it again" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert alice.read_bytes() == before
    bad = run_cli("--ledger", alice, "push", "https://example.org/x")
    assert bad.exit_code == 2 and "s3://BUCKET" in bad.stderr


def test_newer_remote_format_is_refused(bucket, tmp_path, run_cli):
    bucket.put_object(Bucket="lab-provenance", Key="runlog/runlog-remote.json", Body=b'{"format": "runlog.remote/2"}')
    result = run_cli("--ledger", tmp_path / "x.db", "pull", REMOTE)
    assert result.exit_code == 2 and "runlog.remote/2" in result.stderr


def test_remote_from_config(bucket, tmp_path, run_cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".runlog.toml").write_text(f'remote = "{REMOTE}"\nledger = "l.db"\n')
    fill(tmp_path / "l.db", 2)
    assert "sent 2 record(s)" in run_cli("push").stdout


ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"


def test_import_runs_started_without_runlog_is_idempotent(aws_env, ledger_path, git_repo, run_cli):
    client = boto3.client("omics", endpoint_url=aws_env.endpoint_url, region_name="us-west-2",
                          config=Config(inject_host_prefix=False))
    for i in range(3):
        client.start_run(workflowId="7206765", roleArn=ROLE, outputUri="s3://b/o/", name=f"plain-{i}",
                         parameters={"input": f"s3://b/{i}.csv", "protocol": "10XV3"}, runGroupId="1234567")
    first = json.loads(run_cli("import", "--json").stdout)
    assert len(first["imported"]) == 4  # three new runs and the emulator's seeded one
    again = json.loads(run_cli("import", "--json").stdout)
    assert again == {"imported": [], "skipped": 4}
    log = json.loads(run_cli("log", "--json").stdout)
    assert {e["kind"] for e in log} == {"import"}
    grouped = json.loads(run_cli("import", "--run-group-id", "1234567", "--status", "PENDING", "--json").stdout)
    assert grouped == {"imported": [], "skipped": 3}
    assert run_cli("import", "--since", "yesterday").exit_code == 2


def test_refresh_records_a_run_that_completed(aws_env, ledger_path, git_repo, run_cli):
    result = run_cli("submit", "--workflow-id", "7206765", "--role-arn", ROLE, "--output-uri", "s3://b/o/",
                     "--parameters", '{"input": "s3://b/in.csv", "protocol": "10XV3"}', "--endpoint-url",
                     aws_env.endpoint_url)
    run_id = json.loads(result.stdout)["id"]
    first = json.loads(run_cli("refresh", "--json", "--endpoint-url", aws_env.endpoint_url).stdout)
    assert first == [{"record": first[0]["record"], "run_id": run_id, "old": "PENDING", "new": "PENDING"}]
    aws_env.advance(3600)
    text = run_cli("refresh", "--endpoint-url", aws_env.endpoint_url).stdout
    assert f"run {run_id}: PENDING -> COMPLETED" in text
    assert json.loads(run_cli("log", "--json").stdout)[0]["status"] == "COMPLETED"
    assert json.loads(run_cli("refresh", "--json", "--endpoint-url", aws_env.endpoint_url).stdout) == []
    observations = json.loads(run_cli("show", run_id, "--json").stdout)["observations"]
    assert [o["status"] for o in observations] == ["PENDING", "COMPLETED"]
    assert observations[-1]["body"]["digest"].startswith("sha256:")
