"""Resolved provenance at submit: workflow identity, the parameter template, input identities
(moto's S3 server and the emulator's read sets and references), failures and the time budget."""

from __future__ import annotations

import json

import pytest

from helpers import ROLE, records
from runlog.resolve import identity_changes

READ_SET = "omics://123456789012.storage.us-west-2.amazonaws.com/1234567890/readSet/1234567890/source1"
REFERENCE = "omics://123456789012.storage.us-west-2.amazonaws.com/1234567890/reference/9876543210"


@pytest.fixture
def bucket(s3_server):
    s3_server.create_bucket(Bucket="lab-data")
    s3_server.put_bucket_versioning(Bucket="lab-data", VersioningConfiguration={"Status": "Enabled"})
    s3_server.put_object(Bucket="lab-data", Key="pbmc/samplesheet.csv", Body=b"sample,fastq\nA,a.fq\n")
    for i in range(3):
        s3_server.put_object(Bucket="lab-data", Key=f"refs/chunk{i}.fa", Body=f">c{i}\nACGT\n".encode())
    return s3_server


def nextflow(run_cli, emulator, params, *extra):
    return run_cli("submit", "--workflow-id", "7206765", "--role-arn", ROLE, "--output-uri", "s3://out/x/",
                   "--parameters", json.dumps(params), *extra, "--endpoint-url", emulator.endpoint_url)


def test_inputs_pinned_by_etag_and_version(aws_env, bucket, ledger_path, git_repo, run_cli):
    result = nextflow(run_cli, aws_env, {"input": "s3://lab-data/pbmc/samplesheet.csv", "protocol": "10XV3",
                                         "genome": "s3://lab-data/refs/"})
    assert result.exit_code == 0, result.output
    resolution = records(ledger_path)[0]["resolution"]
    head = bucket.head_object(Bucket="lab-data", Key="pbmc/samplesheet.csv")
    pinned = resolution["inputs"]["s3://lab-data/pbmc/samplesheet.csv"]
    assert pinned["kind"] == "s3-object"
    assert pinned["etag"] == head["ETag"].strip('"') and pinned["version_id"] == head["VersionId"]
    assert pinned["size"] == head["ContentLength"]
    prefix = resolution["inputs"]["s3://lab-data/refs/"]
    assert prefix["kind"] == "s3-prefix" and prefix["objects"] == 3 and len(prefix["digest"]) == 64
    workflow = resolution["workflow"]
    assert workflow["id"] == "7206765" and workflow["engine"] == "NEXTFLOW" and workflow["digest"].startswith("sha256:")
    assert resolution["template_checked"] is True


def test_changed_content_is_an_identity_change_and_shows_in_diff(aws_env, bucket, ledger_path, git_repo, run_cli):
    params = {"input": "s3://lab-data/pbmc/samplesheet.csv", "protocol": "10XV3"}
    assert nextflow(run_cli, aws_env, params).exit_code == 0
    bucket.put_object(Bucket="lab-data", Key="pbmc/samplesheet.csv", Body=b"sample,fastq\nB,b.fq\n")
    assert nextflow(run_cli, aws_env, params).exit_code == 0
    first, second = records(ledger_path)[::-1]
    changes = identity_changes(first["resolution"]["inputs"], second["resolution"]["inputs"])
    assert {c["field"] for c in changes} >= {"etag", "version_id"}
    report = json.loads(run_cli("diff", "@2", "@1", "--json").stdout)
    assert {(c["section"], c["path"].split(".")[-1]) for c in report["changes"]} >= {("inputs", "etag")}
    assert first["fingerprint"] == second["fingerprint"]  # same URIs; the identities tell them apart


def test_omics_read_set_and_reference_pinned(aws_env, ledger_path, git_repo, run_cli):
    params = {"sample_name": "NA12878", "input_cram": READ_SET, "ref_dict": REFERENCE,
              "ref_fasta": REFERENCE, "ref_fasta_index": REFERENCE}
    result = run_cli("submit", "--workflow-id", "1234567", "--role-arn", ROLE, "--output-uri", "s3://out/x/",
                     "--parameters", json.dumps(params), "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 0, result.output
    inputs = records(ledger_path)[0]["resolution"]["inputs"]
    assert inputs[READ_SET]["kind"] == "read-set" and inputs[READ_SET]["status"] == "ACTIVE"
    assert inputs[READ_SET]["file_type"] == "CRAM" and inputs[READ_SET]["etag"]
    assert inputs[REFERENCE]["kind"] == "reference" and len(inputs[REFERENCE]["md5"]) == 32


def test_failures_are_recorded_not_fatal_unless_strict(aws_env, bucket, ledger_path, git_repo, run_cli):
    params = {"input": "s3://lab-data/pbmc/missing.csv", "protocol": "10XV3", "genome": "s3://no-such-bucket-x/g.fa",
              "aligner": "omics://123456789012.storage.us-west-2.amazonaws.com/1234567890/readSet/5555555555"}
    result = nextflow(run_cli, aws_env, params)
    assert result.exit_code == 0, result.output
    assert "not resolved" in result.stderr
    inputs = records(ledger_path)[0]["resolution"]["inputs"]
    assert inputs["s3://lab-data/pbmc/missing.csv"]["error"]["code"] == "NotFound"
    assert inputs["s3://no-such-bucket-x/g.fa"]["error"]["code"] in ("NotFound", "NoSuchBucket")
    assert inputs[params["aligner"]]["error"]["code"] == "ResourceNotFoundException"
    strict = nextflow(run_cli, aws_env, params, "--strict")
    assert strict.exit_code == 2 and "--strict" in strict.stderr
    assert len(records(ledger_path)) == 1


def test_uri_shape_warnings(aws_env, ledger_path, git_repo, run_cli):
    result = nextflow(run_cli, aws_env, {"input": "s3://Bad_Bucket/x.csv", "protocol": "10XV3",
                                         "genome": "omics://nope/readSet"}, "--no-resolve")
    assert result.exit_code == 0
    assert "'Bad_Bucket' is not a valid S3 bucket name" in result.stderr
    assert "is not of the form omics://" in result.stderr
    assert "resolution" not in records(ledger_path)[0]


def test_time_budget_is_honoured(aws_env, bucket, ledger_path, git_repo, run_cli):
    aws_env.inject("latency", operation="GetWorkflow", seconds=3.0)
    result = nextflow(run_cli, aws_env, {"input": "s3://lab-data/pbmc/samplesheet.csv", "protocol": "10XV3"},
                      "--resolve-timeout", "0.5")
    assert result.exit_code == 0, result.output
    resolution = records(ledger_path)[0]["resolution"]
    assert resolution["workflow"]["error"]["code"] == "Timeout"
    assert resolution["inputs"]["s3://lab-data/pbmc/samplesheet.csv"]["etag"]
    assert "workflow not resolved" in result.stderr


def test_run_id_duplicate_resolves_the_source_workflow(aws_env, ledger_path, git_repo, run_cli):
    result = run_cli("submit", "--role-arn", ROLE, "--output-uri", "s3://out/x/", "--run-id", "3282892",
                     "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 0, result.output
    assert records(ledger_path)[0]["resolution"]["workflow"]["id"] == "1234567"


def test_an_endpoint_that_does_not_serve_s3_is_named_as_such(aws_env, ledger_path, git_repo, run_cli):
    """AWS_ENDPOINT_URL points S3 at the emulator too, which answers HeadObject but no listing:
    the record and the warning say the endpoint does not serve S3, not a bare '501'."""
    import json as _json

    from helpers import records

    result = run_cli("submit", "--workflow-id", "1234567", "--workflow-owner-id", "123456789012", "--role-arn",
                     "arn:aws:iam::123456789012:role/R", "--output-uri", "s3://b/o/", "--parameters",
                     _json.dumps({"param1": "s3://lab-data/reads/", "param2": "x"}))
    assert result.exit_code == 0, result.output
    (record,) = records(ledger_path)
    error = record["resolution"]["inputs"]["s3://lab-data/reads/"]["error"]
    assert error["code"] == "NotS3" and "AWS_ENDPOINT_URL_S3" in error["message"]
    assert "NotS3" in result.stderr
    assert "point AWS_ENDPOINT_URL_S3 at one; recorded as such" in result.stderr  # the warning names the fix
    batch = run_cli("submit-batch", "--default-run-setting", _json.dumps(
        {"workflowId": "1234567", "workflowOwnerId": "123456789012", "roleArn": "arn:aws:iam::123456789012:role/R",
         "outputUri": "s3://b/o/", "parameters": {"param2": "x"}}), "--batch-run-settings", _json.dumps(
        {"inlineSettings": [{"runSettingId": "a", "parameters": {"param1": "s3://lab-data/reads/a/"}}]}))
    assert batch.exit_code == 0, batch.output
    assert "(NotS3); NotS3: the S3 calls went to an endpoint that is not S3, point AWS_ENDPOINT_URL_S3 at one" in batch.stderr
