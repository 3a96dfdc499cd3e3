"""`runlog import` (runs started without runlog, via ListRuns + GetRun) and `runlog refresh`
(GetRun observations of unfinished runs), against the HealthOmics emulator over HTTP."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config

from runlog.ledger import Ledger
from runlog.verify import verify

ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"
SEEDED_RUNS = 1  # the emulator starts with completed run 3282892


@pytest.fixture
def omics(aws_env):
    """A plain boto3 client on the emulator: how runs get started without runlog."""
    return boto3.client("omics", endpoint_url=aws_env.endpoint_url, region_name="us-west-2",
                        config=Config(inject_host_prefix=False))


def start_plain(omics, name, group="1234567"):
    extra = {"runGroupId": group} if group else {}
    return omics.start_run(workflowId="7206765", roleArn=ROLE, outputUri="s3://b/o/", name=name,
                           parameters={"input": f"s3://b/{name}.csv", "protocol": "10XV3"}, **extra)


def calls(emulator, operation):
    return sum(1 for r in emulator.requests if r["operation"] == operation)


def import_json(run_cli, *args):
    result = run_cli("import", "--json", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_import_runs_started_with_plain_boto3_is_idempotent(aws_env, omics, ledger_path, run_cli):
    started = [start_plain(omics, f"plain-{i}") for i in range(3)]
    first = import_json(run_cli)
    assert first["listed"] == 3 + SEEDED_RUNS and first["skipped"] == 0
    assert {i["run_id"] for i in first["imported"]} == {s["id"] for s in started} | {"3282892"}
    assert calls(aws_env, "GetRun") == 3 + SEEDED_RUNS

    log = json.loads(run_cli("log", "--json").stdout)
    assert {e["kind"] for e in log} == {"import"} and len(log) == 4
    shown = json.loads(run_cli("show", started[1]["id"], "--json").stdout)
    record = shown["record"]
    assert record["request"]["name"] == "plain-1" and record["request"]["runGroupId"] == "1234567"
    assert record["request"]["parameters"] == {"input": "s3://b/plain-1.csv", "protocol": "10XV3"}
    assert record["git"]["state"] == "unknown"
    assert record["outcome"]["response"]["uuid"] == started[1]["uuid"]
    assert shown["observations"][0]["status"] == "PENDING"

    again = import_json(run_cli)
    assert again == {"listed": 4, "imported": [], "skipped": 4,
                     "batches": {"listed": 0, "imported": [], "skipped": 0, "pending": 0}}
    assert calls(aws_env, "GetRun") == 4  # runs in the ledger are not fetched again
    with Ledger.open(ledger_path) as ledger:
        assert ledger.count() == 4 and verify(ledger).ok

    text = run_cli("import")
    assert text.exit_code == 0 and "0 run(s) imported, 4 already in the ledger" in text.stdout


def test_import_filters(aws_env, omics, ledger_path, run_cli):
    start_plain(omics, "grouped")
    start_plain(omics, "loose", group=None)
    grouped = import_json(run_cli, "--run-group-id", "1234567", "--status", "PENDING")
    assert [i["name"] for i in grouped["imported"]] == ["grouped"]
    assert import_json(run_cli, "--since", "2999-01-01")["listed"] == 0
    everything = import_json(run_cli, "--since", "2000-01-01T00:00:00Z")
    names = [i["name"] for i in everything["imported"]]
    assert "loose" in names and len(names) == 1 + SEEDED_RUNS and everything["skipped"] == 1
    bad = run_cli("import", "--since", "yesterday")
    assert bad.exit_code == 2 and "--since 'yesterday'" in bad.stderr
    assert run_cli("import", "--status", "DONE").exit_code == 2


def test_import_tells_a_reused_run_id_from_the_recorded_run(aws_env, omics, ledger_path, run_cli):
    first = start_plain(omics, "first", group=None)
    import_json(run_cli)
    aws_env.advance(3600)
    omics.delete_run(id=first["id"])
    second = start_plain(omics, "second", group=None)
    assert second["id"] == first["id"] and second["uuid"] != first["uuid"]  # same id, same ARN, another run
    result = import_json(run_cli)
    assert [(i["run_id"], i["run_uuid"]) for i in result["imported"]] == [(second["id"], second["uuid"])]
    assert import_json(run_cli)["imported"] == []


def test_import_rides_out_throttling_with_botocore_retries(aws_env, omics, ledger_path, run_cli):
    start_plain(omics, "busy")
    aws_env.inject("throttle", operation="GetRun", count=2)
    aws_env.inject("throttle", operation="ListRuns", count=1)
    result = import_json(run_cli, "--jobs", "1")
    assert len(result["imported"]) == 1 + SEEDED_RUNS
    throttled = [r for r in aws_env.requests if r["status"] == 429]
    assert len(throttled) == 3


def test_import_failure_is_one_line_and_a_rerun_completes(aws_env, omics, ledger_path, run_cli):
    start_plain(omics, "ok")
    aws_env.inject("error", operation="GetRun", count=1, code="AccessDeniedException")
    result = run_cli("import", "--jobs", "1")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "GetRun failed: AccessDeniedException" in result.stderr
    assert "run it again" in result.stderr
    assert len(import_json(run_cli)["imported"]) == 1 + SEEDED_RUNS


# -- refresh -----------------------------------------------------------------------------------------

def submit(run_cli, aws_env, name):
    result = run_cli("submit", "--workflow-id", "7206765", "--role-arn", ROLE, "--output-uri", "s3://b/o/",
                     "--name", name, "--parameters", json.dumps({"input": f"s3://b/{name}.csv", "protocol": "10XV3"}))
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["id"]


def refresh_json(run_cli, *args):
    result = run_cli("refresh", "--json", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_refresh_records_a_run_that_completed(aws_env, ledger_path, git_repo, run_cli):
    run_id = submit(run_cli, aws_env, "sample-a")
    first = refresh_json(run_cli)
    assert [(c["run_id"], c["old"], c["new"]) for c in first] == [(run_id, "PENDING", "PENDING")]

    aws_env.advance(3600)
    text = run_cli("refresh")
    assert text.exit_code == 0 and f"run {run_id}: PENDING -> COMPLETED" in text.stdout
    assert json.loads(run_cli("log", "--json").stdout)[0]["status"] == "COMPLETED"

    nothing = run_cli("refresh")
    assert nothing.exit_code == 0 and nothing.stdout == "" and "no unfinished runs" in nothing.stderr
    calls_before = calls(aws_env, "GetRun")
    assert refresh_json(run_cli, "--active") == [] and calls(aws_env, "GetRun") == calls_before

    again = refresh_json(run_cli, "--all")
    assert [(c["old"], c["new"]) for c in again] == [("COMPLETED", "COMPLETED")]
    observations = json.loads(run_cli("show", run_id, "--json").stdout)["observations"]
    assert [o["status"] for o in observations if o["source"] == "GetRun"] == ["PENDING", "COMPLETED"]  # unchanged answers add nothing
    assert [o["source"] for o in observations] == ["GetRun", "GetRun", "ListRunTasks"]  # tasks once, at the end
    assert observations[-2]["body"]["digest"].startswith("sha256:")


def test_refresh_refs_failed_and_deleted_runs(aws_env, omics, ledger_path, git_repo, run_cli):
    failing = submit(run_cli, aws_env, "will-fail")
    running = submit(run_cli, aws_env, "keeps-running")
    gone = submit(run_cli, aws_env, "will-vanish")
    aws_env.advance(25)
    aws_env.fail_run(failing, reason="OUT_OF_MEMORY")
    aws_env.advance(60)
    omics.delete_run(id=gone)
    only = refresh_json(run_cli, failing)
    assert [(c["run_id"], c["new"]) for c in only] == [(failing, "FAILED")]
    result = {c["run_id"]: c["new"] for c in refresh_json(run_cli)}  # the two still unfinished
    assert result == {running: "COMPLETED", gone: "DELETED"}
    statuses = {e["run_id"]: e["status"] for e in json.loads(run_cli("log", "--json").stdout)}
    assert statuses == {failing: "FAILED", running: "COMPLETED", gone: "DELETED"}


def test_refresh_bad_input(aws_env, ledger_path, git_repo, run_cli):
    assert "no ledger" in run_cli("refresh").stderr
    submit(run_cli, aws_env, "x")
    both = run_cli("refresh", "@1", "--all")
    assert both.exit_code == 2 and "not both" in both.stderr
    unknown = run_cli("refresh", "9999999")
    assert unknown.exit_code == 2 and "no record matches '9999999'" in unknown.stderr


def test_a_run_whose_uuid_is_not_text_is_not_taken_for_the_run_whose_uuid_is_that_text(
        aws_env, omics, ledger_path, git_repo, run_cli):
    """GetRun answers `uuid: 1` (a number) for a run while the ledger holds a run whose uuid is
    the text "1": the ledger's lookup column is text, and SQLite compares 1 with '1' as equal.
    The run must not be taken for the recorded one ("already in the ledger"): it is not
    recorded (a record holds a run's uuid as text), with a one-line warning naming it."""
    first = start_plain(omics, "first")
    aws_env.answer_run(first["id"], uuid="1")
    assert import_json(run_cli)["imported"][-1]["run_uuid"] == "1"
    aws_env.advance(1)
    second = start_plain(omics, "second")
    aws_env.answer_run(second["id"], uuid=1)
    result = run_cli("import")
    assert result.exit_code == 1, result.output
    assert result.stderr == (f"runlog: warning: run {second['id']} not imported: GetRun's uuid is a number (1), "
                             "not text; runlog tells runs apart by their uuid and cannot record this one\n")
    assert result.stdout.splitlines()[-1] == "0 run(s) imported, 2 already in the ledger, 1 not imported"
    with Ledger.open(ledger_path, create=False) as ledger:
        assert [e.run_id for e in ledger.entries() if e.run_uuid == "1"] == [first["id"]]
        assert ledger.observations(ledger.by_run_uuid("1").address)[-1]["body"]["id"] == first["id"]
    as_json = run_cli("import", "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["not_imported"] == [
        {"run_id": second["id"], "reason": "GetRun's uuid is a number (1), not text"}]
    replayed = run_cli("replay", second["id"], "--dry-run")  # an unrecorded run: GetRun, then import_run
    assert replayed.exit_code == 2, replayed.output  # not the recorded run whose uuid is "1"
    assert replayed.stderr == ("runlog: error: " + result.stderr.removeprefix("runlog: warning: "))


def test_runs_of_the_same_instant_whose_uuids_are_text_and_not_are_imported_or_refused_alone(
        aws_env, omics, ledger_path, run_cli):
    """Two runs created at the same instant, one with a text uuid, one without a uuid at all:
    the one is imported, the other refused with its line (the import used to stop with an
    internal error, KeyError, sorting them by uuid)."""
    runs = [start_plain(omics, f"same-{i}") for i in range(2)]
    aws_env.answer_run(runs[1]["id"], uuid=None)
    result = run_cli("import")
    assert result.exit_code == 1, result.output
    assert f"run {runs[1]['id']} not imported: GetRun gave no uuid; runlog tells" in result.stderr
    assert f"imported run {runs[0]['id']} " in result.stdout
