"""`runlog watch` follows runs to the end on a fast emulator clock, with inputs in moto's S3."""

from __future__ import annotations

import json

import pytest

from helpers import ROLE
from runlog.emulator import Emulator
from runlog.ledger import Ledger

INPUT = "s3://lab-data/pbmc/samplesheet.csv"


@pytest.fixture
def fast(s3_server, monkeypatch):
    """An emulator whose runs finish in about a second of real time, reading ETags from moto."""
    s3_server.create_bucket(Bucket="lab-data")
    s3_server.put_object(Bucket="lab-data", Key="pbmc/samplesheet.csv", Body=b"sample\nA\n")
    with Emulator(port=0, clock=50.0, s3_endpoint_url=s3_server.endpoint) as emu:
        monkeypatch.setenv("AWS_ENDPOINT_URL", emu.endpoint_url)
        yield emu


def submit(run_cli, ledger_path):
    result = run_cli("submit", "--workflow-id", "7206765", "--role-arn", ROLE, "--output-uri", "s3://out/x/",
                     "--parameters", json.dumps({"input": INPUT, "protocol": "10XV3"}))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["id"]


def test_watch_records_a_run_through_to_completed(fast, ledger_path, git_repo, run_cli):
    run_id = submit(run_cli, ledger_path)
    assert not [r for r in fast.requests if r["operation"] in ("ListRunTasks", "GetRunTask")]  # submit never waits
    result = run_cli("watch", run_id, "--interval", "0.2", "--timeout", "30")
    assert result.exit_code == 0, result.output
    assert f"run {run_id} COMPLETED" in result.stdout
    assert f"run {run_id}: COMPLETED" in result.stderr  # plain status lines when not a terminal
    with Ledger.open(ledger_path) as ledger:
        entry = ledger.resolve(run_id)
        statuses = [o["status"] for o in ledger.observations(entry.address) if o["source"] == "GetRun"]
        final = [o for o in ledger.observations(entry.address) if o["source"] == "GetRun"][-1]["body"]
        tasks = [o["body"] for o in ledger.observations(entry.address) if o["source"] == "ListRunTasks"]
    assert statuses[-1] == "COMPLETED" and len(statuses) == len(set(statuses))  # one per change
    # the run's tasks, recorded once when it ended, with their containers and digests
    (observed,) = tasks
    assert observed["run_status"] == "COMPLETED" and len(observed["tasks"]) == 3
    assert all(t["status"] == "COMPLETED" and t["imageDetails"]["imageDigest"].startswith("sha256:")
               for t in observed["tasks"])
    assert final["digest"].startswith("sha256:") and final["engineVersion"] and final["stopTime"]
    assert final["resourceDigests"][INPUT].startswith("etag:")
    assert entry.status == "COMPLETED"
    log = json.loads(run_cli("log", "--json").stdout)
    assert log[0]["status"] == "COMPLETED"


def test_watch_flags_an_input_changed_after_submission(fast, s3_server, ledger_path, git_repo, run_cli):
    run_id = submit(run_cli, ledger_path)
    s3_server.put_object(Bucket="lab-data", Key="pbmc/samplesheet.csv", Body=b"sample\nB\n")
    result = run_cli("watch", run_id, "--interval", "0.2", "--timeout", "30", "--json")
    assert result.exit_code == 1
    assert "input changed between submission and execution" in result.stderr and INPUT in result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "COMPLETED"
    assert report["input_changes"][0]["uri"] == INPUT


def test_watch_a_failed_run(fast, ledger_path, git_repo, run_cli):
    run_id = submit(run_cli, ledger_path)
    fast.fail_run(run_id, "OUT_OF_MEMORY")
    result = run_cli("watch", run_id, "--interval", "0.2", "--timeout", "30")
    assert result.exit_code == 1
    assert "FAILED (OUT_OF_MEMORY)" in result.stdout


def test_watch_timeout_and_bad_refs(aws_env, ledger_path, git_repo, run_cli):
    result = run_cli("submit", "--workflow-id", "1234567", "--workflow-owner-id", "123456789012",
                     "--role-arn", ROLE, "--output-uri", "s3://out/x/", "--parameters",
                     '{"param1": "a", "param2": "b"}', "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 0
    stuck = run_cli("watch", "@1", "--interval", "0.1", "--timeout", "0.3")  # the manual clock never moves
    assert stuck.exit_code == 1 and "still PENDING" in stuck.stderr
    assert run_cli("watch", "9999999").exit_code == 2


def test_a_failed_run_records_its_failed_task(fast, ledger_path, git_repo, run_cli):
    run_id = submit(run_cli, ledger_path)
    fast.service.fail_run(run_id, "OUT_OF_MEMORY")
    result = run_cli("watch", run_id, "--interval", "0.2", "--timeout", "30")
    assert result.exit_code == 1, result.output
    with Ledger.open(ledger_path) as ledger:
        entry = ledger.resolve(run_id)
        (observed,) = [o["body"] for o in ledger.observations(entry.address) if o["source"] == "ListRunTasks"]
    assert observed["run_status"] == "FAILED"
    assert [t["status"] for t in observed["tasks"]][-1] == "FAILED"
    assert observed["tasks"][-1]["failureReason"] == "OUT_OF_MEMORY"
