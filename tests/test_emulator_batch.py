"""Run batches in the HealthOmics emulator: StartRunBatch, GetBatch, ListBatch, ListRunsInBatch,
CancelRunBatch, DeleteRunBatch, DeleteBatch and ListRuns' batchId filter, over HTTP with the
real boto3 and the real aws CLI, on the emulator's manual clock."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"
# The shared seed workflow: two required parameters, param1 and param2.
DEFAULT = {"workflowId": "1234567", "workflowOwnerId": "123456789012", "roleArn": ROLE,
           "outputUri": "s3://bucket/out/", "parameters": {"param1": "shared"}, "runTags": {"project": "cohort"}}


@pytest.fixture(autouse=True)
def _credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "emulator")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "emulator")


@pytest.fixture
def omics(emulator):
    return boto3.client("omics", endpoint_url=emulator.endpoint_url, region_name="us-west-2",
                        config=Config(inject_host_prefix=False, retries={"total_max_attempts": 1}))


def inline(count: int, prefix: str = "sample") -> list[dict]:
    return [{"runSettingId": f"{prefix}-{i}", "name": f"{prefix}-{i}", "parameters": {"param2": f"v{i}"}}
            for i in range(count)]


def start_batch(omics, settings=None, request_id="batch-1", **extra) -> dict:
    request = {"requestId": request_id, "batchName": "cohort", "defaultRunSetting": DEFAULT,
               "batchRunSettings": {"inlineSettings": settings if settings is not None else inline(3)}, **extra}
    return omics.start_run_batch(**request)


def error_of(call, *args, **kwargs) -> dict:
    with pytest.raises(ClientError) as info:
        call(*args, **kwargs)
    response = info.value.response
    return {**response["Error"], "status": response["ResponseMetadata"]["HTTPStatusCode"]}


def all_members(omics, batch_id: str, **filters) -> list[dict]:
    pages = omics.get_paginator("list_runs_in_batch").paginate(batchId=batch_id, **filters)
    return [run for page in pages for run in page["runs"]]


def raw(emulator, method: str, path: str, body=None) -> tuple[int, dict, dict]:
    """An unsigned HTTP request, for what botocore would refuse to send."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(emulator.endpoint_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"{}")


# -- StartRunBatch, GetBatch, ListRunsInBatch ------------------------------------------------------

def test_start_run_batch_answers_201_with_the_batch(emulator, omics):
    answer = start_batch(omics, tags={"team": "genomics"})
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert answer["id"].isdigit() and answer["status"] == "CREATING"
    assert answer["arn"] == f"arn:aws:omics:us-west-2:111122223333:runBatch/{answer['id']}"
    assert answer["tags"] == {"team": "genomics"}
    batch = omics.get_batch(batchId=answer["id"])
    assert (batch["name"], batch["uuid"], batch["totalRuns"]) == ("cohort", answer["uuid"], 3)
    assert batch["defaultRunSetting"]["parameters"] == {"param1": "shared"}
    assert batch["submissionSummary"]["pendingStartSubmissionCount"] == 3
    assert omics.list_tags_for_resource(resourceArn=answer["arn"])["tags"] == {"team": "genomics"}


def test_batch_status_follows_the_clock(emulator, omics):
    emulator.batch_rate = 2
    batch_id = start_batch(omics, inline(5))["id"]

    def status():
        return omics.get_batch(batchId=batch_id)["status"]

    seen = [status()]
    for seconds in (5, 5, 1, 2, 1, 48, 2):
        emulator.advance(seconds)
        seen.append(status())
    # 0 s CREATING, 5 s PENDING, 10 s SUBMITTING (nothing yet), 11 s 2 runs, 13 s all 5 started,
    # 14 s running, 62 s the last run (started at 13 s) still running, 64 s all ended
    assert seen == ["CREATING", "PENDING", "SUBMITTING", "SUBMITTING", "INPROGRESS", "INPROGRESS",
                    "INPROGRESS", "PROCESSED"]
    got = omics.get_batch(batchId=batch_id)
    assert got["runSummary"]["completedRunCount"] == 5
    assert got["submissionSummary"]["successfulStartSubmissionCount"] == 5
    assert got["creationTime"] < got["submittedTime"] < got["processedTime"]


def test_runs_are_submitted_at_the_configured_rate(emulator, omics):
    emulator.batch_rate = 3
    batch_id = start_batch(omics, inline(7))["id"]
    counts = []
    for _ in range(4):
        emulator.advance(10 if not counts else 1)
        summary = omics.get_batch(batchId=batch_id)["submissionSummary"]
        counts.append((summary["successfulStartSubmissionCount"], summary["pendingStartSubmissionCount"]))
    assert counts == [(0, 7), (3, 4), (6, 1), (7, 0)]


def test_member_runs_are_real_runs_with_merged_settings(emulator, omics):
    settings = inline(2)
    settings[1].update(outputUri="s3://other/out/", priority=7, runTags={"sample": "S1", "project": "own"},
                       parameters={"param2": "x", "param1": "overridden"})
    batch_id = start_batch(omics, settings)["id"]
    emulator.advance(11)
    members = all_members(omics, batch_id)
    assert [m["runSettingId"] for m in members] == ["sample-0", "sample-1"]
    assert all(m["submissionStatus"] == "SUCCESS" for m in members)
    first, second = (omics.get_run(id=m["runId"]) for m in members)
    assert first["batchId"] == second["batchId"] == batch_id
    assert first["parameters"] == {"param1": "shared", "param2": "v0"}
    assert first["tags"] == {"project": "cohort"} and first["name"] == "sample-0"
    assert first["outputUri"] == "s3://bucket/out/" and first["roleArn"] == ROLE
    assert second["parameters"] == {"param1": "overridden", "param2": "x"}
    assert second["tags"] == {"sample": "S1", "project": "own"}
    assert (second["outputUri"], second["priority"]) == ("s3://other/out/", 7)
    assert members[1]["runArn"] == second["arn"] and members[1]["runInternalUuid"] == second["uuid"]
    assert first["status"] == "PENDING" and first["workflowOwnerId"] == "123456789012"
    # the batch's own tags are not the runs'
    assert "team" not in omics.list_tags_for_resource(resourceArn=second["arn"])["tags"]


def test_list_runs_in_batch_pages_and_filters(emulator, omics):
    emulator.batch_rate = 100
    settings = inline(25)
    del settings[4]["parameters"]  # misses param2: its submission fails
    batch_id = start_batch(omics, settings)["id"]
    emulator.advance(11)
    first = omics.list_runs_in_batch(batchId=batch_id, maxItems=10)
    assert len(first["runs"]) == 10 and first["nextToken"]
    members = all_members(omics, batch_id, PaginationConfig={"PageSize": 7})
    assert [m["runSettingId"] for m in members] == [f"sample-{i}" for i in range(25)]
    failed = omics.list_runs_in_batch(batchId=batch_id, submissionStatus="FAILED")["runs"]
    assert failed == [{"runSettingId": "sample-4", "submissionStatus": "FAILED",
                       "submissionFailureReason": "ValidationException",
                       "submissionFailureMessage": "Missing required parameter(s) for workflow 1234567: param2"}]
    by_setting = omics.list_runs_in_batch(batchId=batch_id, runSettingId="sample-9")["runs"]
    assert [m["runSettingId"] for m in by_setting] == ["sample-9"]
    by_run = omics.list_runs_in_batch(batchId=batch_id, runId=by_setting[0]["runId"])["runs"]
    assert by_run == by_setting
    assert omics.list_runs_in_batch(batchId=batch_id, runSettingId="no-such")["runs"] == []
    both = error_of(omics.list_runs_in_batch, batchId=batch_id, runSettingId="sample-9", submissionStatus="SUCCESS")
    assert both["Code"] == "ValidationException" and "one filter" in both["Message"]
    assert error_of(omics.list_runs_in_batch, batchId="999")["status"] == 404


def test_list_runs_filters_by_batch(emulator, omics):
    emulator.batch_rate = 100
    omics.start_run(workflowId="1234567", workflowOwnerId="123456789012", roleArn=ROLE, outputUri="s3://b/o/",
                    parameters={"param1": "a", "param2": "b"})
    batch_id = start_batch(omics, inline(12))["id"]
    other_id = start_batch(omics, inline(2, "other"), request_id="batch-2")["id"]
    emulator.advance(11)
    pages = omics.get_paginator("list_runs").paginate(batchId=batch_id, PaginationConfig={"PageSize": 5})
    items = [item for page in pages for item in page["items"]]
    assert len(items) == 12 and {item["batchId"] for item in items} == {batch_id}
    assert [item["name"] for item in items] == [f"sample-{i}" for i in reversed(range(12))]  # newest first
    assert {i["batchId"] for i in omics.list_runs(batchId=other_id)["items"]} == {other_id}
    everything = omics.list_runs()["items"]
    assert len(everything) == 1 + 12 + 2 + 1  # the seeded run too
    emulator.advance(60)
    assert omics.list_runs(batchId=batch_id, status="COMPLETED", maxResults=100)["items"].__len__() == 12
    assert omics.list_runs(batchId=batch_id, status="RUNNING")["items"] == []


def test_start_run_batch_is_idempotent_on_request_id(emulator, omics):
    first = start_batch(omics, request_id="same")
    again = start_batch(omics, request_id="same")
    assert (again["id"], again["uuid"], again["arn"]) == (first["id"], first["uuid"], first["arn"])
    assert len(omics.list_batch()["items"]) == 1
    conflict = error_of(start_batch, omics, inline(4), request_id="same")
    assert conflict["Code"] == "ConflictException" and conflict["status"] == 409
    assert "same" in conflict["Message"]
    assert len(omics.list_batch()["items"]) == 1
