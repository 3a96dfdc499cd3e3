"""`runlog replay`: the replayed StartRun body, drift refusals, overrides, dry runs, native duplication."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import boto3
import pytest
from botocore.config import Config

from test_submit import ROLE, SEED_1, records
from runlog.ledger import Ledger

NF_PARAMS = {"input": "s3://lab-data/pbmc/samplesheet.csv", "protocol": "10XV3",
             "genome": {"name": "GRCh38", "annotation": "gencode.v44"}}


def starts(emulator):
    return [r["params"] for r in emulator.requests if r["operation"] == "StartRun" and r["status"] == 201]


def without_identity(body: dict) -> dict:
    body = dict(body)
    body.pop("requestId", None)
    tags = {k: v for k, v in (body.pop("tags", None) or {}).items() if not k.startswith("runlog:")}
    if tags:
        body["tags"] = tags
    return body


def submit_nf(run_cli, emulator, *extra):
    result = run_cli("submit", "--workflow-id", "7206765", "--role-arn", ROLE, "--output-uri", "s3://out/r/",
                     "--name", "pbmc", "--priority", "7", "--tags", "project=pbmc", "--parameters",
                     json.dumps(NF_PARAMS), *extra, "--endpoint-url", emulator.endpoint_url)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_replay_sends_the_recorded_request(aws_env, ledger_path, git_repo, run_cli):
    original = submit_nf(run_cli, aws_env)
    result = run_cli("replay", original["id"])
    assert result.exit_code == 0, result.output
    replayed = json.loads(result.stdout)
    first, second = starts(aws_env)
    assert without_identity(second) == without_identity(first)
    assert second["requestId"] != first["requestId"]
    assert second["tags"] == {"project": "pbmc", "runlog:replay-of": original["uuid"]}
    record = records(ledger_path)[0]
    assert record["kind"] == "replay"
    assert record["lineage"]["replay_of"]["run_uuid"] == original["uuid"]
    assert record["lineage"]["drift"] == [] and record["lineage"]["mode"] == "request"
    shown = run_cli("show", original["id"]).stdout
    assert "replayed by" in shown and replayed["id"] in shown
    assert "replay of" in run_cli("show", replayed["id"]).stdout


def test_seed_example_with_file_parameters_replays(aws_env, ledger_path, git_repo, run_cli):
    assert run_cli(*SEED_1, "--endpoint-url", aws_env.endpoint_url).exit_code == 0
    (git_repo / "workflow-inputs.json").write_text("{}")  # the file no longer matters: the record has it
    result = run_cli("replay", "@1", "--allow-drift")
    assert result.exit_code == 0, result.output
    first, second = starts(aws_env)
    assert without_identity(first) == without_identity(second)


def test_replay_a_run_started_without_runlog(aws_env, ledger_path, git_repo, run_cli):
    client = boto3.client("omics", endpoint_url=aws_env.endpoint_url, region_name="us-west-2",
                          config=Config(inject_host_prefix=False))
    plain = {"workflowId": "7206765", "roleArn": ROLE, "outputUri": "s3://out/plain/", "name": "by-hand",
             "parameters": {"input": "s3://b/in.csv", "protocol": "10XV3"}, "logLevel": "ERROR",
             "cacheId": "1234567", "cacheBehavior": "CACHE_ALWAYS", "storageType": "DYNAMIC", "retentionMode": "RETAIN"}
    started = client.start_run(**plain)
    result = run_cli("replay", started["arn"])
    assert result.exit_code == 0, result.output
    assert "imported from GetRun" in result.stderr
    first, second = starts(aws_env)
    assert without_identity(second) == without_identity(first)
    kinds = [r["kind"] for r in records(ledger_path)]
    assert kinds == ["replay", "import"]


def test_replay_a_run_started_with_the_aws_cli(aws_env, ledger_path, git_repo, run_cli, tmp_path):
    aws = shutil.which("aws")
    env = {**os.environ, "AWS_DISABLE_HOST_PREFIX_INJECTION": "true"}
    out = subprocess.run([aws, "omics", "start-run", "--workflow-id", "1234567", "--workflow-owner-id",
                          "123456789012", "--role-arn", ROLE, "--output-uri", "s3://your-bucket/results/",
                          "--parameters", '{"param1": "value1", "param2": "value2"}', "--endpoint-url",
                          aws_env.endpoint_url], capture_output=True, text=True, env=env, check=True)
    run_id = json.loads(out.stdout)["id"]
    result = run_cli("replay", run_id)
    assert result.exit_code == 0, result.output
    first, second = starts(aws_env)
    assert without_identity(second) == without_identity(first)


def test_git_drift_refuses_then_allow_drift_records_it(aws_env, ledger_path, git_repo, run_cli, git):
    submit_nf(run_cli, aws_env)
    (git_repo / "pipeline.py").write_text("v2\n")
    git(git_repo, "add", ".")
    git(git_repo, "commit", "-q", "-m", "v2")
    refused = run_cli("replay", "@1")
    assert refused.exit_code == 3
    assert "drift: git commit changed" in refused.stderr and "--allow-drift" in refused.stderr
    assert len(starts(aws_env)) == 1 and len(records(ledger_path)) == 1
    allowed = run_cli("replay", "@1", "--allow-drift")
    assert allowed.exit_code == 0, allowed.output
    drift = records(ledger_path)[0]["lineage"]["drift"]
    assert [d["what"] for d in drift] == ["commit"]
    assert drift[0]["current"] == git(git_repo, "rev-parse", "HEAD")


def test_workflow_digest_drift_refuses(aws_env, ledger_path, git_repo, run_cli):
    submit_nf(run_cli, aws_env)
    aws_env.add_workflow("7206765", "nf-core-scrnaseq", engine="NEXTFLOW",
                         template={"input": {}, "protocol": {}, "genome": {"optional": True}})
    refused = run_cli("replay", "@1")
    assert refused.exit_code == 3
    assert "drift: workflow digest changed" in refused.stderr


def test_input_identity_drift_refuses(aws_env, s3_server, ledger_path, git_repo, run_cli):
    s3_server.create_bucket(Bucket="lab-data")
    s3_server.put_object(Bucket="lab-data", Key="pbmc/samplesheet.csv", Body=b"sample\nA\n")
    submit_nf(run_cli, aws_env)
    assert run_cli("replay", "@1", "--dry-run").exit_code == 0
    s3_server.put_object(Bucket="lab-data", Key="pbmc/samplesheet.csv", Body=b"sample\nB\n")
    refused = run_cli("replay", "@1")
    assert refused.exit_code == 3
    assert "drift: input s3://lab-data/pbmc/samplesheet.csv etag changed" in refused.stderr


def test_dry_run_sends_and_writes_nothing(aws_env, ledger_path, git_repo, run_cli):
    submit_nf(run_cli, aws_env)
    before = ledger_path.read_bytes()
    result = run_cli("replay", "@1", "--dry-run", "--set", "protocol=10XV2")
    assert result.exit_code == 0
    shown = json.loads(result.stdout)
    assert shown["request"]["parameters"]["protocol"] == "10XV2" and shown["drift"] == []
    assert len(starts(aws_env)) == 1
    assert len(records(ledger_path)) == 1


def test_set_nested_parameter_and_member_overrides(aws_env, ledger_path, git_repo, run_cli):
    submit_nf(run_cli, aws_env)
    result = run_cli("replay", "@1", "--set", "genome.annotation=gencode.v45", "--set", "skip_emptydrops=true",
                     "--name", "pbmc-v45", "--priority", "3")
    assert result.exit_code == 0, result.output
    sent = starts(aws_env)[-1]
    assert sent["parameters"]["genome"] == {"name": "GRCh38", "annotation": "gencode.v45"}
    assert sent["parameters"]["skip_emptydrops"] is True and sent["name"] == "pbmc-v45" and sent["priority"] == 3
    overrides = records(ledger_path)[0]["lineage"]["overrides"]
    assert overrides == {"parameters": {"genome.annotation": "gencode.v45", "skip_emptydrops": True},
                         "members": {"name": "pbmc-v45", "priority": 3}}
    changes = json.loads(run_cli("diff", "@2", "@1", "--json").stdout)["changes"]
    assert {(c["section"], c["path"]) for c in changes} == {
        ("parameters", "genome.annotation"), ("parameters", "skip_emptydrops"), ("run settings", "priority")}


@pytest.mark.parametrize("bad, message", [("novalue", "PATH=VALUE"), ("=3", "path before '=' is empty"),
                                          ("input.x=1", "input is not an object"), ("a..b=1", "cannot read")])
def test_bad_set_is_exit_2(bad, message, aws_env, ledger_path, git_repo, run_cli):
    submit_nf(run_cli, aws_env)
    result = run_cli("replay", "@1", "--set", bad)
    assert result.exit_code == 2 and message in result.stderr
    assert len(starts(aws_env)) == 1


def test_native_uses_the_service_duplication(aws_env, ledger_path, git_repo, run_cli):
    original = submit_nf(run_cli, aws_env)
    result = run_cli("replay", "@1", "--native", "--output-uri", "s3://out/native/")
    assert result.exit_code == 0, result.output
    assert "--native" in result.stderr and "not carried over" in result.stderr
    sent = starts(aws_env)[-1]
    assert sent["runId"] == original["id"] and sent["outputUri"] == "s3://out/native/"
    assert "parameters" not in sent
    assert records(ledger_path)[0]["lineage"]["mode"] == "native"
    assert run_cli("replay", "@2", "--native", "--set", "x=1").exit_code == 2


def test_failed_attempt_replays_its_request(aws_env, ledger_path, git_repo, run_cli):
    rejected = run_cli("submit", "--workflow-id", "7206765", "--role-arn", ROLE, "--output-uri", "s3://out/r/",
                       "--parameters", json.dumps(NF_PARAMS), "--cache-id", "1234567", "--endpoint-url",
                       aws_env.endpoint_url)
    assert rejected.exit_code == 0
    aws_env.inject("error", operation="StartRun", count=1, code="AccessDeniedException")  # not retried
    failed = run_cli("submit", "--workflow-id", "7206765", "--role-arn", ROLE, "--output-uri", "s3://out/f/",
                     "--parameters", json.dumps(NF_PARAMS), "--endpoint-url", aws_env.endpoint_url)
    assert failed.exit_code == 1
    result = run_cli("replay", "@1")
    assert result.exit_code == 0, result.output
    assert "failed attempt that never ran" in result.stderr
    assert starts(aws_env)[-1]["outputUri"] == "s3://out/f/"


def test_unknown_or_deleted_run_is_one_line_exit_2(aws_env, ledger_path, git_repo, run_cli):
    result = run_cli("replay", "7777777", "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 2
    assert "ResourceNotFoundException" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert run_cli("replay", "abcdef0123").exit_code == 2
