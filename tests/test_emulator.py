"""The HealthOmics emulator speaks the real protocol: real boto3 and the real aws CLI over HTTP."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"
INPUTS = {
    "sample_name": "NA12878",
    "input_cram": "s3://omics-artifacts-01d6xmpl4e72dd32/NA12878.cram",
    "ref_dict": "s3://omics-artifacts-01d6xmpl4e72dd32/Homo_sapiens_assembly38.dict",
    "ref_fasta": "s3://omics-artifacts-01d6xmpl4e72dd32/Homo_sapiens_assembly38.fasta",
    "ref_fasta_index": "omics-artifacts-01d6xmpl4e72dd32/Homo_sapiens_assembly38.fasta.fai",
}
SEED_COMMANDS = [
    "aws omics start-run --workflow-id 1234567 --role-arn arn:aws:iam::123456789012:role/omics-service-role-serviceRole-W8O1XMPL7QZ --name 'cram-to-bam' --output-uri s3://omics-artifacts-01d6xmpl4e72dd32/workflow-output/ --run-group-id 1234567 --priority 1 --storage-capacity 10 --log-level ALL --parameters file://workflow-inputs.json",
    "aws omics start-run --workflow-id 1234567 --workflow-owner-id 123456789012 --role-arn arn:aws:iam::123456789012:role/HealthOmicsServiceRole --output-uri s3://your-bucket/results/ --parameters '{\"param1\": \"value1\", \"param2\": \"value2\"}'",
    "aws omics start-run --workflow-id 7206765 --role-arn arn:aws:iam::123456789012:role/HealthOmicsServiceRole --output-uri s3://healthomics-output-bucket-demo/results/ --parameters '{\"input\": \"s3://healthomics-output-bucket-demo/input/samplesheet.csv\", \"protocol\": \"10XV3\", \"aligner\": \"star\", \"skip_emptydrops\": \"true\"}' --cache-id 1234567 --cache-behavior \"CACHE_ALWAYS\"",
    "aws omics start-run --role-arn arn:aws:iam::713632817814:role/HealthOmicsServiceRole --output-uri s3://healthomics-output-bucket-demo/results/ --run-id 3282892",
]


@pytest.fixture
def omics(emulator):
    return boto3.client("omics", endpoint_url=emulator.endpoint_url, region_name="us-west-2",
                        config=Config(inject_host_prefix=False, retries={"total_max_attempts": 1}))


def start(omics, **extra):
    request = {"workflowId": "1234567", "workflowOwnerId": "123456789012", "roleArn": ROLE,
               "outputUri": "s3://bucket/out/", "parameters": {"param1": "a", "param2": "b"}, **extra}
    return omics.start_run(**request)


def code_of(info) -> str:
    return info.value.response["Error"]["Code"]


def aws_cli(emulator, *args, cwd=None):
    aws = shutil.which("aws")
    assert aws, "the aws CLI (awscli) is a test dependency"
    env = {**os.environ, "AWS_DISABLE_HOST_PREFIX_INJECTION": "true"}
    return subprocess.run([aws, *args, "--endpoint-url", emulator.endpoint_url], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


def test_seed_commands_verbatim_with_the_real_aws_cli(emulator, tmp_path):
    (tmp_path / "workflow-inputs.json").write_text(json.dumps(INPUTS))
    ids = []
    for command in SEED_COMMANDS:
        result = aws_cli(emulator, *shlex.split(command)[1:], cwd=tmp_path)
        assert result.returncode == 0, (command, result.stderr)
        out = json.loads(result.stdout)
        assert out["status"] == "PENDING" and out["arn"].endswith("/" + out["id"])
        ids.append(out["id"])
    got = json.loads(aws_cli(emulator, "omics", "get-run", "--id", ids[3]).stdout)
    assert got["runId"] == "3282892" and got["workflowId"] == "1234567"
    assert got["parameters"]["sample_name"] == "NA12878"
    listed = json.loads(aws_cli(emulator, "omics", "list-runs").stdout)
    assert set(ids) <= {item["id"] for item in listed["items"]}
    missing = aws_cli(emulator, "omics", "get-run", "--id", "9999999")
    assert missing.returncode != 0 and "ResourceNotFoundException" in missing.stderr


def test_start_run_is_idempotent_on_request_id(omics):
    first = start(omics, requestId="token-1")
    again = start(omics, requestId="token-1")
    assert (again["id"], again["uuid"]) == (first["id"], first["uuid"])
    with pytest.raises(ClientError) as info:
        start(omics, requestId="token-1", name="different")
    assert code_of(info) == "ConflictException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409


@pytest.mark.parametrize("extra, needle", [
    ({"logLevel": "LOUD"}, "logLevel"),
    ({"workflowType": "PUBLIC"}, "workflowType"),
    ({"runGroupId": "abc"}, "runGroupId"),
    ({"name": "n" * 129}, "name"),
    ({"priority": 100001}, "priority"),
    ({"tags": {f"k{i}": "v" for i in range(51)}}, "50"),
    ({"parameters": {"param1": "a"}}, "param2"),
    ({"parameters": {"param1": "a", "param2": "b", "param3": "c"}}, "param3"),
], ids=["enum", "type-enum", "pattern", "max-length", "max-value", "tag-limit", "missing-param", "unknown-param"])
def test_validation_the_service_does(omics, extra, needle):
    with pytest.raises(ClientError) as info:
        start(omics, **extra)
    assert code_of(info) == "ValidationException"
    assert needle in info.value.response["Error"]["Message"]


@pytest.mark.parametrize("extra", [{"workflowId": "999"}, {"runGroupId": "999"}, {"cacheId": "999"},
                                   {"workflowVersionName": "v9"}])
def test_unknown_resources_are_404(omics, extra):
    with pytest.raises(ClientError) as info:
        start(omics, **extra)
    assert code_of(info) == "ResourceNotFoundException"


def test_lifecycle_on_the_clock(emulator, omics):
    run = start(omics)
    assert omics.get_run(id=run["id"])["status"] == "PENDING"
    for seconds, status in ((10, "STARTING"), (10, "RUNNING"), (30, "COMPLETED")):
        emulator.advance(seconds)
        assert omics.get_run(id=run["id"])["status"] == status
    got = omics.get_run(id=run["id"])
    assert got["stopTime"] > got["startTime"] > got["creationTime"]
    assert got["digest"].startswith("sha256:") and got["workflowUuid"]
    failing = start(omics)
    emulator.fail_run(failing["id"], "OUT_OF_MEMORY")
    emulator.advance(60)
    failed = omics.get_run(id=failing["id"])
    assert failed["status"] == "FAILED" and failed["failureReason"] == "OUT_OF_MEMORY"


def test_get_run_details(emulator, omics):
    nextflow = omics.start_run(workflowId="7206765", roleArn=ROLE, outputUri="s3://b/o/",
                               parameters={"input": "s3://b/in.csv", "protocol": "10XV3",
                                           "genome": "omics://123456789012.storage.us-west-2.amazonaws.com/1234567890/readSet/1234567890/source1"})
    got = omics.get_run(id=nextflow["id"])
    assert got["engineVersion"]
    assert set(got["resourceDigests"]) == {"s3://b/in.csv", "omics://123456789012.storage.us-west-2.amazonaws.com/1234567890/readSet/1234567890/source1"}
    assert all(v.startswith("etag:") for v in got["resourceDigests"].values())
    assert got["runOutputUri"] == f"s3://b/o/{nextflow['id']}"
    assert got["arn"].startswith("arn:aws:omics:us-west-2:")


def test_list_runs_filters_and_pages(emulator, omics):
    for i in range(5):
        start(omics, name=f"batch-{i}", runGroupId="1234567")
    start(omics, name="other")
    pages = list(omics.get_paginator("list_runs").paginate(name="batch-", PaginationConfig={"PageSize": 2}))
    assert [len(p["items"]) for p in pages] == [2, 2, 1]
    assert len(omics.list_runs(runGroupId="1234567")["items"]) == 5 + 1  # the seeded run is in that group
    emulator.advance(100)
    assert {i["status"] for i in omics.list_runs(status="COMPLETED")["items"]} == {"COMPLETED"}


def test_tags(omics):
    run = start(omics, tags={"project": "wgs"})
    omics.tag_resource(resourceArn=run["arn"], tags={"owner": "alice"})
    assert omics.list_tags_for_resource(resourceArn=run["arn"])["tags"] == {"project": "wgs", "owner": "alice"}
    omics.untag_resource(resourceArn=run["arn"], tagKeys=["project"])
    assert omics.list_tags_for_resource(resourceArn=run["arn"])["tags"] == {"owner": "alice"}
    with pytest.raises(ClientError) as info:
        omics.tag_resource(resourceArn=run["arn"], tags={f"k{i}": "v" for i in range(50)})
    assert code_of(info) == "ValidationException"


def test_workflows_read_sets_references(omics):
    workflow = omics.get_workflow(id="1234567")
    assert set(workflow["parameterTemplate"]) == set(INPUTS) and workflow["engine"] == "WDL"
    shared = omics.get_workflow(id="1234567", workflowOwnerId="123456789012")
    assert set(shared["parameterTemplate"]) == {"param1", "param2"}
    version = omics.get_workflow_version(workflowId="7206765", versionName="2.7.1")
    assert version["digest"].startswith("sha256:") and version["digest"] != omics.get_workflow(id="7206765")["digest"]
    assert omics.get_workflow(id="9500764", type="READY2RUN")["type"] == "READY2RUN"
    read_set = omics.get_read_set_metadata(sequenceStoreId="1234567890", id="1234567890")
    assert read_set["status"] == "ACTIVE" and read_set["fileType"] == "CRAM"
    reference = omics.get_reference_metadata(referenceStoreId="1234567890", id="9876543210")
    assert len(reference["md5"]) == 32
    with pytest.raises(ClientError) as info:
        omics.get_reference_metadata(referenceStoreId="1234567890", id="1111111111")
    assert code_of(info) == "ResourceNotFoundException"


def test_run_ids_are_reused_after_delete(emulator, omics):
    run = start(omics)
    with pytest.raises(ClientError):
        omics.delete_run(id=run["id"])  # still active
    emulator.advance(100)
    omics.delete_run(id=run["id"])
    with pytest.raises(ClientError):
        omics.get_run(id=run["id"])
    reused = start(omics)
    assert reused["id"] == run["id"] and reused["uuid"] != run["uuid"]


def test_faults(emulator, omics):
    emulator.inject("throttle", operation="GetRun")
    with pytest.raises(ClientError) as info:
        omics.get_run(id="3282892")
    assert code_of(info) == "ThrottlingException"
    emulator.inject("error")
    with pytest.raises(ClientError) as info:
        omics.get_run(id="3282892")
    assert code_of(info) == "InternalServerException"
    assert omics.get_run(id="3282892")["id"] == "3282892"  # faults are used up
    emulator.inject("drop", operation="StartRun", phase="after")
    with pytest.raises(Exception):
        start(omics, requestId="dropped-1")
    assert start(omics, requestId="dropped-1")["id"]  # the run was started; the retry finds it
    assert sum(1 for r in emulator.runs.values() if r.get("name") is None and r["id"] != "3282892") == 1


def test_sts_and_admin_api(emulator):
    sts = boto3.client("sts", endpoint_url=emulator.endpoint_url, region_name="us-west-2")
    assert sts.get_caller_identity()["Account"] == "111122223333"

    def admin(path, payload=None):
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(emulator.endpoint_url + "/_emulator/" + path, data=data,
                                         method="POST" if data is not None else "GET")
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())

    admin("faults", {"kind": "throttle", "operation": "GetRun", "count": 1})
    omics = boto3.client("omics", endpoint_url=emulator.endpoint_url, region_name="us-west-2",
                         config=Config(inject_host_prefix=False, retries={"total_max_attempts": 1}))
    with pytest.raises(ClientError):
        omics.get_run(id="3282892")
    run = start(omics)
    admin("advance", {"seconds": 25})
    assert omics.get_run(id=run["id"])["status"] == "RUNNING"
    assert [r["operation"] for r in admin("requests")][-2:] == ["StartRun", "GetRun"]
    admin("reset", {})
    with pytest.raises(ClientError):
        omics.get_run(id=run["id"])
