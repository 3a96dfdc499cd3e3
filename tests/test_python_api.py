"""The Python API (runlog.Runlog, runlog.wrap, the typed errors) against the emulator over HTTP,
with real ledger files and a real git repository."""

from __future__ import annotations

import json
import sqlite3

import boto3
import pytest
from botocore.config import Config

import runlog
from runlog.cli import status
from runlog.ledger import Ledger

ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"
# The AWS CLI documentation's second start-run example, as boto3 keyword arguments.
REQUEST = {"workflowId": "1234567", "workflowOwnerId": "123456789012", "roleArn": ROLE,
           "outputUri": "s3://your-bucket/results/", "parameters": {"param1": "value1", "param2": "value2"}}
# The same request as `runlog submit` options (test_submit.SEED_2).
SUBMIT_ARGS = ["submit", "--workflow-id", "1234567", "--workflow-owner-id", "123456789012", "--role-arn", ROLE,
               "--output-uri", "s3://your-bucket/results/", "--parameters", '{"param1": "value1", "param2": "value2"}']


def omics_client(emulator, region="us-west-2"):
    return boto3.client("omics", endpoint_url=emulator.endpoint_url, region_name=region,
                        config=Config(inject_host_prefix=False))


def stored(path):
    with Ledger.open(path, create=False) as ledger:
        return [e.record for e in ledger.entries()]


def pending(path):
    with Ledger.open(path, create=False) as ledger:
        return ledger.pending()


def calls(emulator, operation):
    return [r for r in emulator.requests if r["operation"] == operation]


def test_the_package_exports_the_api():
    assert {"Runlog", "wrap", "ServiceError", "PendingError", "DriftError", "UsageError", "LedgerError"} \
        <= set(runlog.__all__)
    for name in runlog.__all__:
        assert getattr(runlog, name) is not None, name
    assert runlog.Runlog.__doc__ and runlog.wrap.__doc__ and runlog.Runlog.start_run.__doc__


def test_runlog_owns_its_ledger_and_closes_it(aws_env, ledger_path, git_repo):
    with runlog.Runlog(ledger_path) as rl:
        response = rl.start_run(**REQUEST)
        ledger = rl.ledger
        assert rl.show(response["id"]).run_id == response["id"]
        assert rl.ledger is ledger  # opened once
    with pytest.raises(sqlite3.ProgrammingError):
        ledger.conn.execute("SELECT 1")
    with pytest.raises(runlog.UsageError, match="closed"):
        rl.show("@1")
    without_with = runlog.Runlog(ledger_path)
    opened = without_with.ledger
    without_with.close()
    with pytest.raises(sqlite3.ProgrammingError):
        opened.conn.execute("SELECT 1")


def test_start_run_records_what_runlog_submit_records(aws_env, ledger_path, git_repo, tmp_path, run_cli):
    cli = run_cli(*SUBMIT_ARGS)
    assert cli.exit_code == 0, cli.output
    other = tmp_path / "api" / "ledger.db"
    with runlog.Runlog(other) as rl:
        response = rl.start_run(**REQUEST)
    (from_cli,) = stored(ledger_path)
    (from_api,) = stored(other)
    assert response["ResponseMetadata"]["HTTPStatusCode"] // 100 == 2  # boto3's response, as boto3 returns it
    assert from_api["outcome"]["response"] == {k: v for k, v in response.items() if k != "ResponseMetadata"}
    assert from_api["fingerprint"] == from_cli["fingerprint"]

    def comparable(record):
        record = json.loads(json.dumps(record))
        del record["created"], record["request"]["requestId"], record["outcome"]
        return record

    assert comparable(from_api) == comparable(from_cli)
    sent = calls(aws_env, "StartRun")
    assert [s["params"]["requestId"] for s in sent] == [from_cli["request"]["requestId"],
                                                         from_api["request"]["requestId"]]


def test_start_run_refuses_bad_python_values_before_anything_is_written(aws_env, ledger_path, git_repo):
    with runlog.Runlog(ledger_path) as rl:
        with pytest.raises(runlog.UsageError, match=r"workflowId must be a string, got a number"):
            rl.start_run(**{**REQUEST, "workflowId": 1234567})
        with pytest.raises(runlog.UsageError, match=r"unknown StartRun member\(s\) workflow_id"):
            rl.start_run(workflow_id="1234567", roleArn=ROLE, outputUri="s3://b/o/")
        with pytest.raises(runlog.UsageError, match=r"missing outputUri \(give it, or set output_uri"):
            rl.start_run(workflowId="1234567", roleArn=ROLE)
    assert not ledger_path.exists()
    assert calls(aws_env, "StartRun") == []


def test_wrap_records_start_run_and_passes_other_calls_through(aws_env, ledger_path, git_repo):
    client = omics_client(aws_env, region="eu-west-1")
    with runlog.wrap(client, ledger=ledger_path) as omics:
        response = omics.start_run(**REQUEST)
        run = omics.get_run(id=response["id"])  # not start_run: the client's own method
        assert omics.meta is client.meta
    assert run["uuid"] == response["uuid"] and run["status"] == "PENDING"
    (record,) = stored(ledger_path)
    assert record["kind"] == "submit" and record["outcome"]["response"]["arn"] == response["arn"]
    assert record["aws"]["region"] == "eu-west-1" and record["aws"]["endpoint_url"] == aws_env.endpoint_url
    assert ":eu-west-1:" in response["arn"]  # sent with the wrapped client
    assert len(calls(aws_env, "StartRun")) == 1 and len(calls(aws_env, "GetRun")) == 1


def test_a_session_handed_in_is_the_one_used(aws_env, ledger_path, git_repo):
    session = boto3.Session(aws_access_key_id="mine", aws_secret_access_key="mine", region_name="ap-southeast-2")
    with runlog.Runlog(ledger_path, session=session) as rl:
        response = rl.start_run(**REQUEST)
    (record,) = stored(ledger_path)
    assert record["aws"]["region"] == "ap-southeast-2" and ":ap-southeast-2:" in response["arn"]
    assert session.region_name == "ap-southeast-2"


def test_a_refused_run_raises_service_error_and_keeps_a_rejected_record(aws_env, ledger_path, git_repo):
    aws_env.inject("error", operation="StartRun", count=5, code="AccessDeniedException")
    with runlog.Runlog(ledger_path) as rl, pytest.raises(runlog.ServiceError) as caught:
        rl.start_run(**REQUEST)
    error = caught.value
    assert (error.code, error.http_status, error.operation) == ("AccessDeniedException", 403, "StartRun")
    assert "--" not in error.message and status.exit_code_for(error) == status.FAILURE
    (record,) = stored(ledger_path)
    assert record["outcome"]["status"] == "rejected" and record["outcome"]["error"]["code"] == "AccessDeniedException"
    with runlog.Runlog(ledger_path) as rl:
        assert rl.show(error.record[:12]).outcome == "rejected"


def test_an_unknown_outcome_raises_pending_error_and_recover_completes_it(aws_env, ledger_path, git_repo):
    runs_before = len(aws_env.runs)
    aws_env.inject("error", operation="StartRun", count=6, phase="after")  # the run started, every answer a 500
    with runlog.Runlog(ledger_path) as rl:
        with pytest.raises(runlog.PendingError) as caught:
            rl.start_run(**REQUEST)
        assert [p["request"]["requestId"] for p in pending(ledger_path)] == [caught.value.request_id]
        assert stored(ledger_path) == []
        assert status.exit_code_for(caught.value) == status.FAILURE
        aws_env.faults.clear()
        report = rl.recover()
    assert report.still_pending == 0 and len(report.results) == 1
    (done,) = report.results
    assert done.request_id == caught.value.request_id and done.error is None
    (record,) = stored(ledger_path)
    assert record["outcome"]["recovered"] is True and record["outcome"]["response"]["id"] == done.response["id"]
    assert len(aws_env.runs) == runs_before + 1  # the same requestId: one run, not two


def test_replay_diff_log_show_verify_return_data(aws_env, ledger_path, git_repo):
    with runlog.Runlog(ledger_path) as rl:
        first = rl.start_run(**REQUEST)
        planned = rl.replay("@1", set={"param1": "changed"}, dry_run=True)
        assert planned.entry is None and planned.request["parameters"]["param1"] == "changed"
        assert len(list(rl.log())) == 1  # a dry run writes nothing
        replayed = rl.replay(first["id"], set={"param1": "changed"}, name="again")
        assert replayed.entry.record["kind"] == "replay" and replayed.response["id"] != first["id"]
        assert replayed.lineage["replay_of"]["run_id"] == first["id"]
        assert replayed.lineage["overrides"] == {"parameters": {"param1": "changed"}, "members": {"name": "again"}}
        entries = list(rl.log())
        assert [e.run_id for e in entries] == [replayed.response["id"], first["id"]]
        assert [e.run_id for e in rl.log(1)] == [replayed.response["id"]]
        shown = rl.show(first["id"])
        assert shown.record["request"]["parameters"] == REQUEST["parameters"]
        found = rl.diff(first["id"], replayed.response["id"])
        assert not found.same
        assert [(c.section, c.path, c.old, c.new) for c in found.changes] == [
            ("parameters", "param1", "value1", "changed")]
        assert rl.diff(first["id"]).same  # nothing drifted since
        report = rl.verify()
        assert report.ok and report.records == 2


def test_replay_refuses_drift_with_its_items(aws_env, ledger_path, git_repo, git):
    with runlog.Runlog(ledger_path) as rl:
        rl.start_run(**REQUEST)
        (git_repo / "README.md").write_text("changed\n")
        git(git_repo, "commit", "-qam", "change the analysis")
        with pytest.raises(runlog.DriftError) as caught:
            rl.replay("@1")
        assert status.exit_code_for(caught.value) == status.DRIFT
        assert [item["what"] for item in caught.value.items] == ["commit"]
        assert len(list(rl.log())) == 1  # refused: nothing sent, nothing written
        allowed = rl.replay("@1", allow_drift=True)
        assert allowed.entry.record["lineage"]["drift"] == caught.value.items


def test_one_replay_asks_for_the_workflow_once(aws_env, ledger_path, git_repo, run_cli):
    assert run_cli(*SUBMIT_ARGS).exit_code == 0
    before = len(calls(aws_env, "GetWorkflow"))
    result = run_cli("replay", "@1")
    assert result.exit_code == 0, result.output
    assert len(calls(aws_env, "GetWorkflow")) - before == 1
    (replay,) = [r for r in stored(ledger_path) if r["kind"] == "replay"]
    assert replay["resolution"]["workflow"]["digest"]  # resolved with the answer the drift check got


def test_exit_codes_come_from_one_table():
    assert status.exit_code_for(runlog.UsageError("x")) == status.BAD_INPUT
    assert status.exit_code_for(runlog.LedgerError("x")) == status.BAD_INPUT
    assert status.exit_code_for(runlog.ServiceError("Code", "no", 400, "StartRun")) == status.FAILURE
    assert status.exit_code_for(runlog.PendingError("x", "id")) == status.FAILURE
    assert status.exit_code_for(runlog.PendingError("x", "id", interrupted=True)) == status.INTERRUPTED
    assert status.exit_code_for(runlog.DriftError("x", [])) == status.DRIFT
    assert status.exit_code_for(runlog.OperationError("x")) == status.FAILURE
    assert status.exit_code_for(runlog.InternalError("x")) == status.INTERNAL
    assert status.exit_code_for(runlog.RunlogError("x", exit_code=1)) == 1  # code that still names one keeps it


def test_replay_prepares_with_one_ledger_and_submits_s3_timeouts(aws_env, ledger_path, git_repo):
    from runlog import aws
    from runlog import replay as replaying

    with runlog.Runlog(ledger_path) as rl:  # S3 inputs: the documentation's first example's inputs file
        rl.start_run(workflowId="1234567", roleArn=ROLE, outputUri="s3://b/out/", name="cram-to-bam",
                     parameters="file://workflow-inputs.json")
    with Ledger.open(ledger_path) as ledger:
        prepared, used = replaying.prepare(
            "@1", existing=ledger, create_ledger=lambda: pytest.fail("the ledger exists: nothing is created"),
            settings_for=lambda recorded: aws.settings_for(recorded=recorded), session_for=aws.session,
            git_path=git_repo, timeout=2.5)
        assert used is ledger
    s3 = prepared.clients["s3"]
    assert (s3.meta.config.connect_timeout, s3.meta.config.read_timeout) == (2.5, 2.5)
    assert s3.meta.config.retries["total_max_attempts"] == 2
    assert prepared.git["git"]["state"] == "clean" and prepared.plan.drift == []


def test_importing_runlog_and_its_api_stays_light():
    """`import runlog` (and so every command) does not pay for the API, boto3 or botocore."""
    import subprocess
    import sys

    code = ("import sys, runlog\n"
            "assert 'runlog.api' not in sys.modules\n"
            "runlog.Runlog, runlog.wrap\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'click', 'git'))\n"
            "print(heavy)\n")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]", found.stdout


def test_push_and_pull_share_records_between_two_runlogs(aws_env, bucket, tmp_path, git_repo):
    """Alice's ledger goes to the team bucket (moto S3) and arrives, verified, in Bob's."""
    remote = "s3://lab-provenance/runlog"
    with runlog.Runlog(tmp_path / "alice.db") as alice:
        response = alice.start_run(**REQUEST)
        pushed = alice.push(remote)
        assert (pushed.records_sent, pushed.records_present) == (1, 0)
        assert alice.push(remote).records_sent == 0  # nothing twice
    with runlog.Runlog(tmp_path / "bob.db", config={"remote": remote}) as bob:
        pulled = bob.pull()  # the remote from the configuration
        assert (pulled.records_received, pulled.refused) == (1, [])
        assert bob.show(response["id"]).record["outcome"]["response"]["uuid"] == response["uuid"]
        assert bob.verify().ok
    with runlog.Runlog(tmp_path / "alice.db") as alice:
        report = alice.verify(remote=remote)  # the head Alice's push left is still hers
        assert report.ok and report.witnesses == [remote + "/"]


def test_a_request_id_is_used_once(aws_env, ledger_path, git_repo):
    with runlog.Runlog(ledger_path) as rl:
        first = rl.start_run(**REQUEST, requestId="pipeline-step-1")
        with pytest.raises(runlog.UsageError) as caught:
            rl.start_run(**REQUEST, requestId="pipeline-step-1")
        assert "'pipeline-step-1' was already used" in caught.value.message and "--" not in caught.value.message
        assert [e.run_id for e in rl.log()] == [first["id"]]


def test_watch_hands_failures_that_say_nothing_about_the_run_to_on_failure(aws_env, ledger_path, git_repo,
                                                                            run_cli):
    """Runlog.watch asks again after a throttle or a 500 that outlived botocore's retries, as
    `runlog watch` does, and tells the caller through on_failure instead of keeping quiet."""
    from helpers import SEED_1

    submitted = run_cli(*SEED_1)
    assert submitted.exit_code == 0, submitted.output
    run = json.loads(submitted.stdout)
    aws_env.advance(200)
    aws_env.inject("throttle", operation="GetRun", count=3)  # every try of the first poll
    seen: list[str] = []
    with runlog.Runlog(ledger_path) as rl:
        outcome = rl.watch(run["id"], interval=0.1, timeout=30, on_failure=lambda error: seen.append(str(error)))
    assert outcome.status == "COMPLETED"
    assert len(seen) == 1 and "ThrottlingException" in seen[0], seen
