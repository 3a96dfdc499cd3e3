"""The HealthOmics emulator speaks the real protocol: real boto3 and the real aws CLI over HTTP."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from helpers import aws_cli
from runlog.emulator.seed import EXAMPLES, example_args

ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"
READ_SET_URI = "omics://123456789012.storage.us-west-2.amazonaws.com/1234567890/readSet/1234567890/source1"
INPUTS = {
    "sample_name": "NA12878",
    "input_cram": "s3://omics-artifacts-01d6xmpl4e72dd32/NA12878.cram",
    "ref_dict": "s3://omics-artifacts-01d6xmpl4e72dd32/Homo_sapiens_assembly38.dict",
    "ref_fasta": "s3://omics-artifacts-01d6xmpl4e72dd32/Homo_sapiens_assembly38.fasta",
    "ref_fasta_index": "omics-artifacts-01d6xmpl4e72dd32/Homo_sapiens_assembly38.fasta.fai",
}
# The five start-run examples of the AWS CLI documentation, verbatim (command, workflow-inputs.json).
SEED_COMMANDS = [(command, inputs) for _title, command, inputs in EXAMPLES]


def client(emulator, service="omics", region="us-west-2", **config):
    config = {"inject_host_prefix": False, "retries": {"total_max_attempts": 1}, **config}
    return boto3.client(service, endpoint_url=emulator.endpoint_url, region_name=region, config=Config(**config))


@pytest.fixture
def omics(emulator):
    return client(emulator)


def start(omics, **extra):
    """StartRun of the shared seed workflow (two required parameters)."""
    request = {"workflowId": "1234567", "workflowOwnerId": "123456789012", "roleArn": ROLE,
               "outputUri": "s3://bucket/out/", "parameters": {"param1": "a", "param2": "b"}, **extra}
    return omics.start_run(**request)


def error_of(call, *args, **kwargs) -> dict:
    """The botocore error a call raises: Code, Message and the HTTP status."""
    with pytest.raises(ClientError) as info:
        call(*args, **kwargs)
    response = info.value.response
    return {**response["Error"], "status": response["ResponseMetadata"]["HTTPStatusCode"]}


def admin(emulator, path, payload=None):
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(emulator.endpoint_url + "/_emulator/" + path, data=data,
                                     method="POST" if data is not None else "GET")
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


# -- the AWS CLI documentation's start-run examples ------------------------------------------------

def test_seed_commands_verbatim_with_the_real_aws_cli(emulator, tmp_path):
    ids = []
    for command, inputs in SEED_COMMANDS:
        if inputs is not None:
            (tmp_path / "workflow-inputs.json").write_text(inputs)
        result = aws_cli(emulator, *shlex.split(command.replace("\\\n", " "))[1:], cwd=tmp_path)
        assert result.returncode == 0, (command, result.stderr)
        out = json.loads(result.stdout)
        assert out["status"] == "PENDING" and out["arn"].endswith(":run/" + out["id"])
        assert re.fullmatch(r"\d{7}", out["id"]) and out["runOutputUri"].endswith("/" + out["id"])
        ids.append(out["id"])
    assert len(ids) == 5
    nextflow = json.loads(aws_cli(emulator, "omics", "get-run", "--id", ids[2]).stdout)
    assert set(nextflow["parameters"]) == {"input", "protocol", "ecr_registry", "gtf", "aligner", "fasta",
                                           "skip_emptydrops"}
    from_omics = json.loads(aws_cli(emulator, "omics", "get-run", "--id", ids[4]).stdout)
    assert from_omics["parameters"]["input_cram"].startswith("omics://")
    got = json.loads(aws_cli(emulator, "omics", "get-run", "--id", ids[3]).stdout)
    assert got["runId"] == "3282892" and got["workflowId"] == "1234567"
    assert got["parameters"]["sample_name"] == "NA12878"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)", got["creationTime"])
    listed = json.loads(aws_cli(emulator, "omics", "list-runs").stdout)
    assert set(ids) <= {item["id"] for item in listed["items"]}
    missing = aws_cli(emulator, "omics", "get-run", "--id", "9999999")
    # the aws CLI (v1, from PyPI) exits 255 for an error the service answered
    assert missing.returncode == 255 and "ResourceNotFoundException" in missing.stderr


@pytest.mark.parametrize("input_cram", [INPUTS["input_cram"], READ_SET_URI], ids=["s3", "read-set"])
def test_seed_commands_as_boto3_calls(omics, input_cram):
    first = omics.start_run(workflowId="1234567", roleArn=ROLE.replace("HealthOmicsServiceRole",
                                                                       "omics-service-role-serviceRole-W8O1XMPL7QZ"),
                            name="cram-to-bam", outputUri="s3://omics-artifacts-01d6xmpl4e72dd32/workflow-output/",
                            runGroupId="1234567", priority=1, storageCapacity=10, logLevel="ALL",
                            parameters={**INPUTS, "input_cram": input_cram})
    got = omics.get_run(id=first["id"])
    assert (got["name"], got["runGroupId"], got["priority"], got["logLevel"]) == ("cram-to-bam", "1234567", 1, "ALL")
    assert got["status"] == "PENDING" and got["startedBy"] == "arn:aws:iam::111122223333:user/runlog-emulator"
    uris = {v for v in INPUTS.values() if v.startswith("s3://")} - {INPUTS["input_cram"]} | {input_cram}
    assert set(got["resourceDigests"]) == uris  # ref_fasta_index has no scheme: not a resource
    assert all(re.fullmatch(r"etag:[0-9a-f]{32}", v) for v in got["resourceDigests"].values())
    assert got["digest"] == omics.get_workflow(id="1234567")["digest"]

    shared = omics.start_run(workflowId="1234567", workflowOwnerId="123456789012", roleArn=ROLE,
                             outputUri="s3://your-bucket/results/", parameters={"param1": "value1", "param2": "value2"})
    assert omics.get_run(id=shared["id"])["workflowOwnerId"] == "123456789012"

    verbatim = example_args(EXAMPLES[2][1])
    nextflow = omics.start_run(workflowId="7206765", roleArn=ROLE, outputUri="s3://healthomics-output-bucket-demo/results/",
                               parameters=json.loads(verbatim[verbatim.index("--parameters") + 1]),
                               cacheId="1234567", cacheBehavior="CACHE_ALWAYS")
    got = omics.get_run(id=nextflow["id"])
    assert (got["engineVersion"], got["cacheId"], got["cacheBehavior"]) == ("23.10.1", "1234567", "CACHE_ALWAYS")

    role = "arn:aws:iam::713632817814:role/HealthOmicsServiceRole"
    duplicate = omics.start_run(roleArn=role, outputUri="s3://healthomics-output-bucket-demo/results/", runId="3282892")
    got, source = omics.get_run(id=duplicate["id"]), omics.get_run(id="3282892")
    assert got["runId"] == "3282892" and got["roleArn"] == role
    assert (got["workflowId"], got["parameters"], got["runGroupId"]) == (
        source["workflowId"], source["parameters"], source["runGroupId"])
    assert got["runOutputUri"] == f"s3://healthomics-output-bucket-demo/results/{duplicate['id']}"
    assert len({first["uuid"], shared["uuid"], nextflow["uuid"], duplicate["uuid"], source["uuid"]}) == 5


# -- what the service checks -----------------------------------------------------------------------

def test_start_run_is_idempotent_on_request_id(emulator, omics):
    first = start(omics, requestId="token-1")
    again = start(omics, requestId="token-1")
    assert (again["id"], again["uuid"], again["arn"]) == (first["id"], first["uuid"], first["arn"])
    assert [r["status"] for r in emulator.requests] == [201, 201]
    conflict = error_of(start, omics, requestId="token-1", name="different")
    assert (conflict["Code"], conflict["status"]) == ("ConflictException", 409)
    assert "token-1" in conflict["Message"]
    assert len(emulator.runs) == 2  # the seeded run and one new run


@pytest.mark.parametrize("extra, needle", [
    ({"logLevel": "LOUD"}, "logLevel"),
    ({"workflowType": "PUBLIC"}, "workflowType"),
    ({"runGroupId": "abc"}, "runGroupId"),
    ({"workflowOwnerId": "12345"}, "workflowOwnerId"),
    ({"name": "n" * 129}, "name"),
    ({"name": "tab\there"}, "name"),
    ({"priority": 100001}, "priority"),
    ({"tags": {f"k{i}": "v" for i in range(51)}}, "50"),
    ({"tags": {"k" * 129: "v"}}, "tags"),
    ({"parameters": {"param1": "a"}}, "param2"),
    ({"parameters": {"param1": "a", "param2": "b", "param3": "c"}}, "param3"),
], ids=["enum", "type-enum", "pattern", "owner-pattern", "max-length", "unprintable", "max-value", "tag-limit",
        "tag-key-length", "missing-param", "unknown-param"])
def test_validation_the_service_does(omics, extra, needle):
    error = error_of(start, omics, **extra)
    assert (error["Code"], error["status"]) == ("ValidationException", 400)
    assert needle in error["Message"]


def test_validation_applies_to_every_operation(omics):
    assert error_of(omics.list_runs, status="SLEEPING")["Code"] == "ValidationException"
    assert error_of(omics.list_runs, startingToken="not-a-token")["Code"] == "ValidationException"
    assert error_of(omics.get_workflow, id="1234567", type="PUBLIC")["Code"] == "ValidationException"
    assert error_of(omics.get_run, id="abc")["Code"] == "ValidationException"


@pytest.mark.parametrize("extra", [{"workflowId": "999"}, {"runGroupId": "999"}, {"cacheId": "999"},
                                   {"workflowVersionName": "v9"}, {"workflowOwnerId": "999999999999"}])
def test_unknown_resources_are_404(omics, extra):
    error = error_of(start, omics, **extra)
    assert (error["Code"], error["status"]) == ("ResourceNotFoundException", 404)


def test_other_404s(omics):
    assert error_of(omics.start_run, roleArn=ROLE, outputUri="s3://b/o/", runId="9999999")["status"] == 404
    assert error_of(omics.get_run, id="9999999")["Code"] == "ResourceNotFoundException"
    assert error_of(omics.get_run_group, id="7654321")["Code"] == "ResourceNotFoundException"
    # a READY2RUN workflow is found only when asked for by type, as in the service
    assert error_of(omics.get_workflow, id="9500764")["Code"] == "ResourceNotFoundException"


def test_protocol_errors_over_raw_http(emulator):
    def send(method, path, body=None):
        request = urllib.request.Request(emulator.endpoint_url + path, data=body, method=method)
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request)
        return info.value.code, info.value.headers["x-amzn-ErrorType"], json.loads(info.value.read())["message"]

    assert send("GET", "/no/such/operation")[:2] == (404, "UnknownOperationException")
    assert send("POST", "/run", b"[1, 2]")[:2] == (400, "ValidationException")
    status, code, message = send("POST", "/run", b'{"roleArn": "arn:x"}')
    assert (status, code) == (400, "ValidationException") and "outputUri" in message and "requestId" in message


# -- runs over time --------------------------------------------------------------------------------

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
    assert omics.get_run(id=failing["id"])["status"] == "PENDING"  # it fails at its end, not at once
    emulator.advance(60)
    failed = omics.get_run(id=failing["id"])
    assert failed["status"] == "FAILED" and failed["failureReason"] == "OUT_OF_MEMORY"
    assert emulator.get_run(failing["id"])["status"] == "FAILED"


def test_cancel(emulator, omics):
    run = start(omics)
    emulator.advance(25)
    omics.cancel_run(id=run["id"])
    stopping = omics.get_run(id=run["id"])  # as the service does: STOPPING, then CANCELLED
    assert stopping["status"] == "STOPPING" and "stopTime" not in stopping and "startTime" in stopping
    omics.cancel_run(id=run["id"])  # again while it stops: nothing changes
    emulator.advance(9)
    assert omics.get_run(id=run["id"])["status"] == "STOPPING"
    emulator.advance(1)
    got = omics.get_run(id=run["id"])
    assert got["status"] == "CANCELLED" and got["stopTime"] >= got["startTime"]
    assert (got["stopTime"] - got["startTime"]).total_seconds() == 5 + 10  # started at 20 s, cancelled at 25 s
    assert error_of(omics.cancel_run, id=run["id"])["Code"] == "ConflictException"


def test_list_runs_filters_and_pages(emulator, omics):
    for i in range(5):
        start(omics, name=f"batch-{i}", runGroupId="1234567")
    start(omics, name="other")
    pages = list(omics.get_paginator("list_runs").paginate(name="batch-", PaginationConfig={"PageSize": 2}))
    assert [len(p["items"]) for p in pages] == [2, 2, 1]
    assert [i["name"] for p in pages for i in p["items"]] == [f"batch-{i}" for i in reversed(range(5))]
    assert len(omics.list_runs(runGroupId="1234567")["items"]) == 5 + 1  # the seeded run is in that group
    assert {i["id"] for i in omics.list_runs(status="COMPLETED")["items"]} == {"3282892"}
    emulator.advance(100)
    assert len(omics.list_runs(status="COMPLETED")["items"]) == 7


def test_run_ids_are_reused_after_delete(emulator, omics):
    run = start(omics)
    assert error_of(omics.delete_run, id=run["id"])["Code"] == "ConflictException"  # still active
    emulator.advance(100)
    omics.delete_run(id=run["id"])
    assert error_of(omics.get_run, id=run["id"])["status"] == 404
    reused = start(omics)
    assert reused["id"] == run["id"] and reused["uuid"] != run["uuid"]
    assert {r["status"] for r in emulator.runs.values() if r["id"] == run["id"]} == {"DELETED", "PENDING"}


# -- other resources -------------------------------------------------------------------------------

def test_tags(omics):
    run = start(omics, tags={"project": "wgs"})
    omics.tag_resource(resourceArn=run["arn"], tags={"owner": "alice"})
    assert omics.list_tags_for_resource(resourceArn=run["arn"])["tags"] == {"project": "wgs", "owner": "alice"}
    assert omics.get_run(id=run["id"])["tags"] == {"project": "wgs", "owner": "alice"}
    omics.untag_resource(resourceArn=run["arn"], tagKeys=["project"])
    assert omics.list_tags_for_resource(resourceArn=run["arn"])["tags"] == {"owner": "alice"}
    error = error_of(omics.tag_resource, resourceArn=run["arn"], tags={f"k{i}": "v" for i in range(50)})
    assert error["Code"] == "ValidationException"
    workflow = omics.get_workflow(id="7206765")
    omics.tag_resource(resourceArn=workflow["arn"], tags={"team": "genomics"})
    assert omics.get_workflow(id="7206765")["tags"] == {"team": "genomics"}
    missing = run["arn"].rsplit("/", 1)[0] + "/9999999"
    assert error_of(omics.list_tags_for_resource, resourceArn=missing)["Code"] == "ResourceNotFoundException"


def test_workflows(omics):
    workflow = omics.get_workflow(id="1234567")
    assert set(workflow["parameterTemplate"]) == set(INPUTS) and workflow["engine"] == "WDL"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", workflow["digest"]) and workflow["uuid"]
    shared = omics.get_workflow(id="1234567", workflowOwnerId="123456789012")
    assert set(shared["parameterTemplate"]) == {"param1", "param2"} and ":123456789012:" in shared["arn"]
    version = omics.get_workflow_version(workflowId="7206765", versionName="2.7.1")
    assert version["digest"].startswith("sha256:") and version["digest"] != omics.get_workflow(id="7206765")["digest"]
    assert omics.get_workflow(id="9500764", type="READY2RUN")["type"] == "READY2RUN"
    assert {w["id"] for w in omics.list_workflows(type="READY2RUN")["items"]} == {"9500764"}
    created = omics.create_workflow(name="mine", engine="CWL", parameterTemplate={"x": {"description": "x"}})
    assert omics.get_workflow(id=created["id"])["engine"] == "CWL"
    assert created["id"] in {w["id"] for w in omics.list_workflows()["items"]}


def test_stores_run_groups_and_caches(omics):
    read_set = omics.get_read_set_metadata(sequenceStoreId="1234567890", id="1234567890")
    assert read_set["status"] == "ACTIVE" and read_set["fileType"] == "CRAM"
    assert read_set["etag"]["algorithm"] == "CRAM_MD5up" and len(read_set["etag"]["source1"]) == 32
    reference = omics.get_reference_metadata(referenceStoreId="1234567890", id="9876543210")
    assert len(reference["md5"]) == 32 and reference["status"] == "ACTIVE"
    assert error_of(omics.get_reference_metadata, referenceStoreId="1234567890", id="1111111111")["status"] == 404
    assert omics.get_run_group(id="1234567")["maxRuns"] == 10
    assert omics.get_run_cache(id="1234567")["cacheS3Uri"].startswith("s3://")


def test_seeding_helpers(emulator, omics):
    emulator.add_workflow("5550001", "tiny", engine="NEXTFLOW", template={"reads": {}, "depth": {"optional": True}})
    emulator.add_read_set("2222222222", "3333333333", name="tumour", fileType="FASTQ")
    emulator.add_reference("2222222222", "4444444444", name="T2T")
    run = omics.start_run(workflowId="5550001", roleArn=ROLE, outputUri="s3://b/o/", parameters={"reads": "s3://b/r"})
    assert omics.get_run(id=run["id"])["engineVersion"] == "23.10.1"
    assert omics.get_read_set_metadata(sequenceStoreId="2222222222", id="3333333333")["name"] == "tumour"
    assert omics.get_reference_metadata(referenceStoreId="2222222222", id="4444444444")["name"] == "T2T"
    emulator.reset()
    assert error_of(omics.get_workflow, id="5550001")["status"] == 404
    assert omics.get_run(id="3282892")["status"] == "COMPLETED"


# -- faults ----------------------------------------------------------------------------------------

def test_throttle_and_error_faults(emulator, omics):
    emulator.inject("throttle", operation="GetRun")
    error = error_of(omics.get_run, id="3282892")
    assert (error["Code"], error["status"]) == ("ThrottlingException", 429)
    emulator.inject("error")
    assert error_of(omics.get_run, id="3282892")["Code"] == "InternalServerException"
    emulator.inject("error", operation="GetRun", code="AccessDeniedException")
    assert error_of(omics.get_run, id="3282892")["status"] == 403
    assert omics.get_run(id="3282892")["id"] == "3282892"  # faults are used up
    emulator.inject("throttle", operation="StartRun", count=2)
    retrying = client(emulator, retries={"total_max_attempts": 3, "mode": "standard"})
    start(retrying)  # botocore retries the two throttled attempts
    assert [r["status"] for r in emulator.requests if r["operation"] == "StartRun"] == [429, 429, 201]


def test_drop_faults(emulator, omics):
    emulator.inject("drop", operation="StartRun")
    with pytest.raises(ConnectionClosedError):
        start(omics, requestId="dropped-before")
    assert len(emulator.runs) == 1  # nothing was started
    emulator.inject("drop", operation="StartRun", phase="after")
    with pytest.raises(ConnectionClosedError):
        start(omics, requestId="dropped-after")
    assert len(emulator.runs) == 2  # the run was started, the client never heard
    assert start(omics, requestId="dropped-after")["id"]  # the retry with that requestId finds it
    assert len(emulator.runs) == 2
    assert [r["status"] for r in emulator.requests] == ["dropped", "dropped", 201]


def test_latency_faults(emulator, omics):
    emulator.inject("latency", operation="GetRun", seconds=0.3)
    began = time.monotonic()
    omics.get_run(id="3282892")
    assert time.monotonic() - began >= 0.3
    emulator.inject("latency", operation="StartRun", seconds=1.0, phase="after")
    impatient = client(emulator, read_timeout=0.3)
    with pytest.raises(ReadTimeoutError):
        start(impatient)
    assert len(emulator.runs) == 2  # accepted before the client gave up


# -- STS, regions, the admin API and the command ---------------------------------------------------

def test_sts_and_region_from_the_signature(emulator):
    sts = client(emulator, "sts")
    identity = sts.get_caller_identity()
    assert identity["Account"] == "111122223333"
    assert identity["Arn"] == "arn:aws:iam::111122223333:user/runlog-emulator"
    assert error_of(sts.get_session_token)["Code"] == "InvalidAction"
    emulator.inject("throttle", operation="GetCallerIdentity")
    assert error_of(sts.get_caller_identity)["Code"] == "Throttling"
    frankfurt = client(emulator, region="eu-central-1")
    assert start(frankfurt)["arn"].startswith("arn:aws:omics:eu-central-1:111122223333:run/")
    assert [r["operation"] for r in emulator.requests] == ["GetCallerIdentity", "GetSessionToken",
                                                          "GetCallerIdentity", "StartRun"]


def test_admin_api(emulator, omics):
    admin(emulator, "faults", {"kind": "throttle", "operation": "GetRun", "count": 1})
    assert error_of(omics.get_run, id="3282892")["Code"] == "ThrottlingException"
    run = start(omics)
    admin(emulator, "advance", {"seconds": 25})
    assert omics.get_run(id=run["id"])["status"] == "RUNNING"
    requests = admin(emulator, "requests")
    assert [r["operation"] for r in requests][-2:] == ["StartRun", "GetRun"]
    assert requests[-2]["params"]["parameters"] == {"param1": "a", "param2": "b"} and requests[-2]["status"] == 201
    admin(emulator, f"runs/{run['id']}/fail", {"reason": "DISK_FULL"})
    admin(emulator, "advance", {"seconds": 60})
    assert omics.get_run(id=run["id"])["failureReason"] == "DISK_FULL"
    with pytest.raises(urllib.error.HTTPError) as info:
        admin(emulator, "faults", {"kind": "earthquake"})
    assert info.value.code == 400
    admin(emulator, "reset", {})
    assert error_of(omics.get_run, id=run["id"])["status"] == 404
    assert [r["operation"] for r in admin(emulator, "requests")] == ["GetRun"]  # the log started again


def test_the_runlog_emulator_command(tmp_path):
    command = [sys.executable, "-c", "from runlog.cli.emulator import emulator; emulator()", "--port", "0",
               "--speed", "0", "--first-batch-id", "5550001"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        line = server.stdout.readline()
        url = re.search(r"AWS_ENDPOINT_URL=(\S+)", line)[1]
        assert "AWS_DISABLE_HOST_PREFIX_INJECTION=true" in line
        omics = boto3.client("omics", endpoint_url=url, region_name="us-west-2",
                             config=Config(inject_host_prefix=False))
        assert omics.get_workflow(id="7206765")["name"] == "nf-core-scrnaseq"
        batch = omics.start_run_batch(defaultRunSetting={"workflowId": "1234567", "roleArn": ROLE,
                                                         "outputUri": "s3://bucket/out/"},
                                      batchRunSettings={"inlineSettings": [
                                          {"runSettingId": "a", "parameters": {"param1": "x", "param2": "y"}}]})
        assert batch["id"] == "5550001"  # where --first-batch-id said
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=10) == 0
    finally:
        if server.poll() is None:
            server.kill()
        server.stdout.close()
        server.stderr.close()


def test_concurrent_clients_get_distinct_runs(emulator):
    """One lock around the state: parallel StartRuns never share an id."""
    ids, errors = [], []

    def submit(omics):
        try:
            ids.append(start(omics)["id"])
        except Exception as exc:  # reported below
            errors.append(exc)

    # clients are made here: creating boto3 clients is not thread-safe, using them is
    threads = [threading.Thread(target=submit, args=(client(emulator),)) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(set(ids)) == 16


def test_run_tasks_follow_the_run_with_images_digests_and_cache_hits(emulator, omics):
    cached = omics.start_run(workflowId="7206765", roleArn="arn:aws:iam::1:role/R", outputUri="s3://b/o/",
                             parameters={"input": "s3://b/x", "protocol": "P"}, cacheId="1234567",
                             cacheBehavior="CACHE_ALWAYS")
    assert omics.list_run_tasks(id=cached["id"])["items"] == []  # nothing runs while PENDING
    emulator.advance(35)
    assert [t["status"] for t in omics.list_run_tasks(id=cached["id"])["items"]] == ["COMPLETED", "RUNNING"]
    emulator.advance(3600)
    page = omics.list_run_tasks(id=cached["id"], maxResults=2)
    assert len(page["items"]) == 2 and page["nextToken"]
    items = page["items"] + omics.list_run_tasks(id=cached["id"], startingToken=page["nextToken"])["items"]
    assert [t["name"] for t in items] == ["FASTQC", "STAR_ALIGN", "MULTIQC"]
    assert [t["cacheHit"] for t in items] == [True, False, False] and "imageDetails" not in items[0]
    task = omics.get_run_task(id=cached["id"], taskId=items[0]["taskId"])
    assert task["cacheS3Uri"].startswith("s3://healthomics-output-bucket-demo/run-cache/")
    assert task["imageDetails"]["imageDigest"].startswith("sha256:") and task["imageDetails"]["sourceImage"]
    assert omics.list_run_tasks(id=cached["id"], status="RUNNING")["items"] == []
    failing = omics.start_run(workflowId="1234567", roleArn="arn:aws:iam::1:role/R", outputUri="s3://b/o/",
                              parameters={n: "s3://b/x" for n in ("input_cram", "ref_dict", "ref_fasta",
                                                                   "ref_fasta_index")} | {"sample_name": "S"})
    emulator.service.fail_run(failing["id"], "OUT_OF_MEMORY")
    emulator.advance(3600)
    statuses = [(t["name"], t["status"]) for t in omics.list_run_tasks(id=failing["id"])["items"]]
    assert statuses == [("CramToBam", "COMPLETED"), ("ValidateBam", "FAILED")]
    failed = omics.get_run_task(id=failing["id"], taskId=omics.list_run_tasks(id=failing["id"])["items"][1]["taskId"])
    assert failed["failureReason"] == "OUT_OF_MEMORY"
    assert error_of(omics.get_run_task, id=failing["id"], taskId="0000000")["Code"] == "ResourceNotFoundException"
