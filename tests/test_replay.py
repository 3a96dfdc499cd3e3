"""`runlog replay`: the replayed StartRun body, drift refusals, overrides, dry runs, native duplication."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys

import boto3
import pytest
from botocore.config import Config

from helpers import ROLE, SEED_1, records
from runlog.record import address
from runlog.replay import REPLAY_TAG

NF_PARAMS = {"input": "s3://lab-data/pbmc/samplesheet.csv", "protocol": "10XV3",
             "genome": {"name": "GRCh38", "annotation": "gencode.v44"}}


def starts(emulator):
    return [r["params"] for r in emulator.requests if r["operation"] == "StartRun" and r["status"] == 201]


def without_identity(body: dict) -> dict:
    """The body without what a replay changes on purpose: requestId and the replay-of tag."""
    body = dict(body)
    body.pop("requestId", None)
    tags = {k: v for k, v in (body.pop("tags", None) or {}).items() if k != REPLAY_TAG}
    if tags:
        body["tags"] = tags
    return body


def assert_same_but_identity(original: dict, replayed: dict, replay_of: str) -> None:
    assert REPLAY_TAG not in (original.get("tags") or {})
    assert replayed["tags"][REPLAY_TAG] == replay_of
    assert replayed["requestId"] != original["requestId"]
    assert without_identity(replayed) == without_identity(original)


def ledger_rows(path) -> dict[str, int]:
    """What is in the ledger (the file's bytes may change with WAL checkpoints alone)."""
    with sqlite3.connect(path) as conn:
        return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("records", "attempts", "observations")}


def submit_nf(run_cli, emulator, *extra):
    result = run_cli("submit", "--workflow-id", "7206765", "--role-arn", ROLE, "--output-uri", "s3://out/r/",
                     "--name", "pbmc", "--priority", "7", "--tags", "project=pbmc", "--parameters",
                     json.dumps(NF_PARAMS), *extra, "--endpoint-url", emulator.endpoint_url)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def omics_client(emulator):
    return boto3.client("omics", endpoint_url=emulator.endpoint_url, region_name="us-west-2",
                        config=Config(inject_host_prefix=False))


def test_replay_sends_the_recorded_request(aws_env, ledger_path, git_repo, run_cli):
    original = submit_nf(run_cli, aws_env)
    result = run_cli("replay", original["id"])
    assert result.exit_code == 0, result.output
    replayed = json.loads(result.stdout)
    assert set(replayed) >= {"id", "arn", "uuid", "status"}  # StartRun's response, as submit prints it
    first, second = starts(aws_env)
    assert_same_but_identity(first, second, original["uuid"])
    assert second["tags"] == {"project": "pbmc", REPLAY_TAG: original["uuid"]}
    newest, oldest = records(ledger_path)
    assert newest["kind"] == "replay"
    assert newest["lineage"] == {
        "replay_of": {"record": address(oldest), "run_uuid": original["uuid"], "run_id": original["id"],
                      "run_arn": original["arn"]},
        "mode": "request", "overrides": {}, "drift": []}
    shown = run_cli("show", original["id"]).stdout
    assert "replayed by" in shown and replayed["id"] in shown
    assert f"(run {original['id']}, the recorded request)" in run_cli("show", replayed["id"]).stdout
    assert "(replay of " in run_cli("log").stdout


def test_seed_example_with_file_parameters_replays(aws_env, ledger_path, git_repo, run_cli):
    original = run_cli(*SEED_1, "--endpoint-url", aws_env.endpoint_url)
    assert original.exit_code == 0
    (git_repo / "workflow-inputs.json").write_text("{}")  # the file no longer matters: the record has it
    result = run_cli("replay", "@1", "--allow-drift")
    assert result.exit_code == 0, result.output
    first, second = starts(aws_env)
    assert_same_but_identity(first, second, json.loads(original.stdout)["uuid"])


@pytest.mark.parametrize("workflow_type", ["PRIVATE", "READY2RUN"])
def test_replay_a_run_started_with_boto3(workflow_type, aws_env, ledger_path, git_repo, run_cli):
    plain = {"workflowId": "7206765", "roleArn": ROLE, "outputUri": "s3://out/plain/", "name": "by-hand",
             "parameters": {"input": "s3://b/in.csv", "protocol": "10XV3"}, "logLevel": "ERROR",
             "cacheId": "1234567", "cacheBehavior": "CACHE_ALWAYS", "storageType": "DYNAMIC", "retentionMode": "RETAIN",
             "tags": {"team": "genomics"}}
    if workflow_type == "READY2RUN":  # the seeded READY2RUN workflow
        plain.update(workflowId="9500764", workflowType="READY2RUN",
                     parameters={"sample_name": "NA12878", "fastq_1": "s3://b/1.fq.gz", "fastq_2": "s3://b/2.fq.gz"})
    started = omics_client(aws_env).start_run(**plain)
    result = run_cli("replay", started["arn"])
    assert result.exit_code == 0, result.output
    assert "imported from GetRun" in result.stderr
    assert "git: not applicable" in result.stderr  # an imported run's code is unknown
    assert "workflow: not checked" not in result.stderr  # against the digest GetRun reported
    assert "inputs: not checked, no identities were pinned" in result.stderr
    first, second = starts(aws_env)
    assert_same_but_identity(first, second, started["uuid"])
    assert second.get("workflowType") == plain.get("workflowType")
    assert [r["kind"] for r in records(ledger_path)] == ["replay", "import"]


def test_replay_a_run_started_with_the_aws_cli(aws_env, ledger_path, git_repo, run_cli):
    env = {**os.environ, "AWS_DISABLE_HOST_PREFIX_INJECTION": "true"}
    out = subprocess.run([shutil.which("aws"), "omics", "start-run", "--workflow-id", "1234567",
                          "--workflow-owner-id", "123456789012", "--role-arn", ROLE, "--output-uri",
                          "s3://your-bucket/results/", "--parameters", '{"param1": "value1", "param2": "value2"}',
                          "--endpoint-url", aws_env.endpoint_url], capture_output=True, text=True, env=env, check=True)
    started = json.loads(out.stdout)
    result = run_cli("replay", started["id"])
    assert result.exit_code == 0, result.output
    first, second = starts(aws_env)
    assert_same_but_identity(first, second, started["uuid"])


def test_git_drift_refuses_then_allow_drift_records_it(aws_env, ledger_path, git_repo, run_cli, git):
    submit_nf(run_cli, aws_env)
    recorded = git(git_repo, "rev-parse", "HEAD")
    (git_repo / "pipeline.py").write_text("v2\n")
    git(git_repo, "add", ".")
    git(git_repo, "commit", "-q", "-m", "v2")
    before = ledger_rows(ledger_path)
    refused = run_cli("replay", "@1")
    assert refused.exit_code == 3
    assert f"drift: git commit changed: {recorded[:12]} -> " in refused.stderr
    assert "--allow-drift" in refused.stderr
    assert len(starts(aws_env)) == 1 and ledger_rows(ledger_path) == before
    (git_repo / "pipeline.py").write_text("v3, not committed\n")
    allowed = run_cli("replay", "@1", "--allow-drift")
    assert allowed.exit_code == 0, allowed.output
    drift = records(ledger_path)[0]["lineage"]["drift"]
    assert [d["what"] for d in drift] == ["commit", "uncommitted changes"]
    assert drift[0] == {"kind": "git", "what": "commit", "recorded": recorded,
                        "current": git(git_repo, "rev-parse", "HEAD")}
    assert drift[1]["recorded"] is None and len(drift[1]["current"]) == 64
    shown = run_cli("show", "@1").stdout
    assert f"drift        git commit changed: {recorded[:12]} -> " in shown and "(allowed)" in shown


def test_workflow_digest_drift_refuses(aws_env, ledger_path, git_repo, run_cli):
    submit_nf(run_cli, aws_env)
    aws_env.add_workflow("7206765", "nf-core-scrnaseq", engine="NEXTFLOW",
                         template={"input": {}, "protocol": {}, "genome": {"optional": True}})
    for extra in ([], ["--native"]):
        refused = run_cli("replay", "@1", *extra)
        assert refused.exit_code == 3, refused.output
        assert "drift: workflow digest changed: sha256:" in refused.stderr
    assert len(starts(aws_env)) == 1
    assert run_cli("replay", "@1", "--allow-drift").exit_code == 0
    assert [d["kind"] for d in records(ledger_path)[0]["lineage"]["drift"]] == ["workflow"]


def test_workflow_version_gone_refuses(aws_env, ledger_path, git_repo, run_cli):
    submit_nf(run_cli, aws_env, "--workflow-version-name", "2.7.1")
    aws_env.add_workflow("7206765", "nf-core-scrnaseq", engine="NEXTFLOW", versions=[],
                         template={"input": {}, "protocol": {}, "genome": {"optional": True}})
    refused = run_cli("replay", "@1")
    assert refused.exit_code == 3, refused.output
    assert "drift: workflow definition changed: sha256:" in refused.stderr
    assert "-> ResourceNotFoundException" in refused.stderr


def test_input_identity_drift_refuses(aws_env, s3_server, ledger_path, git_repo, run_cli):
    s3_server.create_bucket(Bucket="lab-data")
    s3_server.put_object(Bucket="lab-data", Key="pbmc/samplesheet.csv", Body=b"sample\nA\n")
    submit_nf(run_cli, aws_env)
    assert run_cli("replay", "@1", "--dry-run").stderr.count("drift:") == 0
    s3_server.put_object(Bucket="lab-data", Key="pbmc/samplesheet.csv", Body=b"sample\nB\n")
    refused = run_cli("replay", "@1")
    assert refused.exit_code == 3
    assert "drift: input s3://lab-data/pbmc/samplesheet.csv etag changed" in refused.stderr
    # pointing the parameter at another object is an override, not drift
    s3_server.put_object(Bucket="lab-data", Key="pbmc/other.csv", Body=b"sample\nC\n")
    moved = run_cli("replay", "@1", "--set", "input=s3://lab-data/pbmc/other.csv")
    assert moved.exit_code == 0, moved.output


def test_dry_run_sends_and_writes_nothing(aws_env, ledger_path, git_repo, run_cli, git):
    submit_nf(run_cli, aws_env)
    before = ledger_rows(ledger_path)
    result = run_cli("replay", "@1", "--dry-run", "--set", "protocol=10XV2")
    assert result.exit_code == 0
    shown = json.loads(result.stdout)
    assert shown["request"]["parameters"]["protocol"] == "10XV2" and shown["drift"] == []
    assert shown["request"]["tags"][REPLAY_TAG] == records(ledger_path)[0]["outcome"]["response"]["uuid"]
    (git_repo / "pipeline.py").write_text("changed\n")
    drifted = run_cli("replay", "@1", "--dry-run")
    assert drifted.exit_code == 0 and "would be refused (exit 3)" in drifted.stderr
    assert [d["what"] for d in json.loads(drifted.stdout)["drift"]] == ["untracked files"]
    unfit = run_cli("replay", "@1", "--dry-run", "--set", "aligner_x=star")
    assert unfit.exit_code == 0 and "would be refused (exit 2): unknown parameter(s) aligner_x" in unfit.stderr
    assert len(starts(aws_env)) == 1 and ledger_rows(ledger_path) == before


def test_set_nested_parameter_and_member_overrides(aws_env, ledger_path, git_repo, run_cli):
    submit_nf(run_cli, aws_env)
    result = run_cli("replay", "@1", "--set", "genome.annotation=gencode.v45", "--set", "skip_emptydrops=true",
                     "--name", "pbmc-v45", "--priority", "3", "--tags", "reviewer=kim")
    assert result.exit_code == 0, result.output
    sent = starts(aws_env)[-1]
    assert sent["parameters"]["genome"] == {"name": "GRCh38", "annotation": "gencode.v45"}
    assert sent["parameters"]["skip_emptydrops"] is True and sent["name"] == "pbmc-v45" and sent["priority"] == 3
    assert sent["tags"] == {"project": "pbmc", "reviewer": "kim",
                            REPLAY_TAG: records(ledger_path)[1]["outcome"]["response"]["uuid"]}
    overrides = records(ledger_path)[0]["lineage"]["overrides"]
    assert overrides == {"parameters": {"genome.annotation": "gencode.v45", "skip_emptydrops": True},
                         "members": {"name": "pbmc-v45", "priority": 3, "tags": {"reviewer": "kim"}}}
    shown = run_cli("show", "@1").stdout
    assert 'override     --set genome.annotation="gencode.v45"' in shown and "override     --priority 3" in shown
    changes = json.loads(run_cli("diff", "@2", "@1", "--json").stdout)["changes"]
    paths = {(c["section"], c["path"]) for c in changes}
    assert {("parameters", "genome.annotation"), ("parameters", "skip_emptydrops"),
            ("run settings", "priority")} <= paths


def test_set_into_lists_and_values(aws_env, ledger_path, git_repo, run_cli):
    params = {**NF_PARAMS, "genome": {"files": [{"fasta": "s3://ref/a.fa", "qc": {"min": 1}}]}}
    assert run_cli("submit", "--workflow-id", "7206765", "--role-arn", ROLE, "--output-uri", "s3://o/",
                   "--parameters", json.dumps(params)).exit_code == 0
    sets = ["--set", "genome.files[0].fasta=s3://ref/b.fa", "--set", "genome.files[0].qc.min=30",
            "--set", 'protocol="10"', "--set", "genome.extra.deep=[1, 2]"]
    missing = run_cli("replay", "@1", "--dry-run", *sets, "--set", "genome.files[1].fasta=x")
    assert missing.exit_code == 2 and "--set genome.files[1].fasta: no item [1] at genome.files" in missing.stderr
    result = run_cli("replay", "@1", *sets)
    assert result.exit_code == 0, result.output
    assert starts(aws_env)[-1]["parameters"] == {
        "input": NF_PARAMS["input"], "protocol": "10",
        "genome": {"files": [{"fasta": "s3://ref/b.fa", "qc": {"min": 30}}], "extra": {"deep": [1, 2]}}}


@pytest.mark.parametrize("bad, message", [("novalue", "PATH=VALUE"), ("=3", "path before '=' is empty"),
                                          ("input.x=1", "input is not an object"),
                                          ("input[0]=1", "no item [0] at input"),
                                          ("a..b=1", "cannot read the path 'a..b'"),
                                          (".a=1", "cannot read the path '.a'"),
                                          ("a[0]b=1", "cannot read the path 'a[0]b'")])
def test_bad_set_is_exit_2(bad, message, aws_env, ledger_path, git_repo, run_cli):
    submit_nf(run_cli, aws_env)
    result = run_cli("replay", "@1", "--set", bad)
    assert result.exit_code == 2 and message in result.stderr and bad.split("=")[0] in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert len(starts(aws_env)) == 1 and len(records(ledger_path)) == 1


def test_template_check_applies_and_no_check_sends(aws_env, ledger_path, git_repo, run_cli):
    assert run_cli(*SEED_1).exit_code == 0
    refused = run_cli("replay", "@1", "--set", "extra=1")
    assert refused.exit_code == 2 and "unknown parameter(s) extra" in refused.stderr
    assert len(starts(aws_env)) == 1 and ledger_rows(ledger_path)["attempts"] == 1
    sent = run_cli("replay", "@1", "--set", "extra=1", "--no-check")  # sent: the emulator refuses it
    assert sent.exit_code == 1 and "ValidationException: Unknown parameter(s)" in sent.stderr
    assert [r["params"]["parameters"].get("extra") for r in aws_env.requests if r["operation"] == "StartRun"] \
        == [None, 1]


def test_native_uses_the_service_duplication(aws_env, ledger_path, git_repo, run_cli):
    original = submit_nf(run_cli, aws_env)
    result = run_cli("replay", "@1", "--native", "--output-uri", "s3://out/native/")
    assert result.exit_code == 0, result.output
    assert "--native" in result.stderr and "not carried over" in result.stderr
    sent = starts(aws_env)[-1]
    assert sent["runId"] == original["id"] and sent["outputUri"] == "s3://out/native/" and sent["roleArn"] == ROLE
    assert "parameters" not in sent and "workflowId" not in sent
    assert sent["tags"] == {REPLAY_TAG: original["uuid"]}
    lineage = records(ledger_path)[0]["lineage"]
    assert lineage["mode"] == "native" and lineage["overrides"] == {"members": {"outputUri": "s3://out/native/"}}
    assert "StartRun --run-id" in run_cli("show", "@1").stdout
    bad = run_cli("replay", "@2", "--native", "--set", "x=1")
    assert bad.exit_code == 2 and "--native cannot change parameters" in bad.stderr


def test_failed_attempt_replays_its_request(aws_env, ledger_path, git_repo, run_cli):
    aws_env.inject("error", operation="StartRun", count=1, code="AccessDeniedException")  # not retried
    failed = run_cli("submit", "--workflow-id", "7206765", "--role-arn", ROLE, "--output-uri", "s3://out/f/",
                     "--parameters", json.dumps(NF_PARAMS), "--endpoint-url", aws_env.endpoint_url)
    assert failed.exit_code == 1
    result = run_cli("replay", "@1")
    assert result.exit_code == 0, result.output
    assert "failed attempt that never ran: replaying its request" in result.stderr
    rejected = [r["params"] for r in aws_env.requests if r["operation"] == "StartRun" and r["status"] != 201]
    lineage = records(ledger_path)[0]["lineage"]["replay_of"]
    assert lineage["run_uuid"] is None  # it never ran: the tag names the failed attempt's record
    assert_same_but_identity(rejected[0], starts(aws_env)[-1], lineage["record"])
    assert run_cli("replay", "@2", "--native").exit_code == 2


@pytest.mark.parametrize("code", ["ResourceNotFoundException", "AccessDeniedException"])
def test_run_getrun_cannot_fetch_is_one_line_exit_2(code, aws_env, ledger_path, git_repo, run_cli):
    if code != "ResourceNotFoundException":
        aws_env.inject("error", operation="GetRun", count=1, code=code)
    result = run_cli("replay", "7777777", "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 2
    assert code in result.stderr and "7777777" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not ledger_path.exists() and starts(aws_env) == []
    submit_nf(run_cli, aws_env)
    if code != "ResourceNotFoundException":
        aws_env.inject("error", operation="GetRun", count=1, code=code)
    before = ledger_rows(ledger_path)
    assert run_cli("replay", "arn:aws:omics:us-west-2:111122223333:run/7777777").exit_code == 2
    assert ledger_rows(ledger_path) == before


def test_unknown_ref_without_a_ledger_writes_nothing(aws_env, ledger_path, git_repo, run_cli):
    result = run_cli("replay", "abcdef0123")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert not ledger_path.exists()
    submit_nf(run_cli, aws_env)
    unknown = run_cli("replay", "abcdef0123")
    assert unknown.exit_code == 2 and "no record matches 'abcdef0123'" in unknown.stderr


def test_show_of_a_replay_stays_free_of_boto3(aws_env, ledger_path, git_repo, run_cli):
    submit_nf(run_cli, aws_env)
    assert run_cli("replay", "@1", "--set", "protocol=10XV2").exit_code == 0
    code = ("import runpy, sys\nsys.argv = ['runlog', 'show', '@1']\n"
            "try:\n    runpy.run_module('runlog', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "override     --set protocol=\"10XV2\"" in done.stdout
    assert done.stderr.strip().splitlines()[-1] == "[]"
