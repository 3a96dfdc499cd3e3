"""Run batches in the HealthOmics emulator: StartRunBatch, GetBatch, ListBatch, ListRunsInBatch,
CancelRunBatch, DeleteRunBatch, DeleteBatch and ListRuns' batchId filter, over HTTP with the
real boto3 and the real aws CLI, on the emulator's manual clock."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import urllib.error
import urllib.request
from datetime import timedelta

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
    counts: list[tuple[int, int]] = []
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


def test_list_batch_filters_and_pages(emulator, omics):
    first = start_batch(omics, request_id="a", batchName="cohort-2025")["id"]
    second = start_batch(omics, request_id="b", batchName="cohort-2026",
                         defaultRunSetting={**DEFAULT, "runGroupId": "1234567"})["id"]
    third = start_batch(omics, request_id="c", batchName="pilot")["id"]
    items = omics.list_batch()["items"]
    assert [i["id"] for i in items] == [third, second, first]  # newest first
    assert items[0] == {"id": third, "name": "pilot", "status": "CREATING", "createdAt": items[0]["createdAt"],
                        "totalRuns": 3, "workflowId": "1234567"}
    assert [i["id"] for i in omics.list_batch(name="cohort")["items"]] == [second, first]
    assert [i["id"] for i in omics.list_batch(runGroupId="1234567")["items"]] == [second]
    pages = list(omics.get_paginator("list_batch").paginate(PaginationConfig={"PageSize": 2}))
    assert [[i["id"] for i in p["items"]] for p in pages] == [[third, second], [first]]
    emulator.advance(5)
    assert len(omics.list_batch(status="PENDING")["items"]) == 3
    assert omics.list_batch(status="CREATING")["items"] == []


# -- what StartRunBatch refuses --------------------------------------------------------------------

def test_start_run_batch_validates_settings(emulator, omics):
    too_many = error_of(start_batch, omics, inline(101))
    assert too_many["Code"] == "ValidationException" and "at most 100" in too_many["Message"]
    twice = inline(3)
    twice[2]["runSettingId"] = "sample-0"
    duplicate = error_of(start_batch, omics, twice)
    assert duplicate["Code"] == "ValidationException" and "'sample-0' is used more than once" in duplicate["Message"]
    bad_priority = error_of(start_batch, omics, [{"runSettingId": "a", "priority": 100001}])
    assert "priority" in bad_priority["Message"] and "maximum 100000" in bad_priority["Message"]
    unknown = error_of(start_batch, omics, defaultRunSetting={**DEFAULT, "workflowId": "999"})
    assert (unknown["Code"], unknown["status"]) == ("ResourceNotFoundException", 404)
    ready2run = error_of(start_batch, omics, defaultRunSetting={"workflowId": "9500764", "workflowType": "READY2RUN",
                                                                "roleArn": ROLE, "outputUri": "s3://b/o/"})
    assert ready2run["Code"] == "ValidationException" and "READY2RUN" in ready2run["Message"]
    no_group = error_of(start_batch, omics, defaultRunSetting={**DEFAULT, "runGroupId": "42"})
    assert no_group["Code"] == "ResourceNotFoundException"
    too_many_tags = error_of(start_batch, omics, tags={f"k{i}": "v" for i in range(51)})
    assert too_many_tags["Code"] == "ValidationException"
    assert omics.list_batch()["items"] == []  # nothing was started


def test_start_run_batch_needs_exactly_one_kind_of_settings(emulator):
    """botocore refuses both or neither itself; the service does too, for any other client."""
    body = {"requestId": "raw", "defaultRunSetting": DEFAULT,
            "batchRunSettings": {"inlineSettings": inline(1), "s3UriSettings": "s3://b/settings.json"}}
    for settings in (body["batchRunSettings"], {}):
        status, headers, answer = raw(emulator, "POST", "/runBatch", {**body, "batchRunSettings": settings})
        assert (status, headers["x-amzn-ErrorType"]) == (400, "ValidationException")
        assert "exactly one of inlineSettings or s3UriSettings" in answer["message"]
    status, _, answer = raw(emulator, "POST", "/runBatch", {**body, "defaultRunSetting": {"roleArn": ROLE},
                                                            "batchRunSettings": {"inlineSettings": inline(1)}})
    assert status == 400 and "workflowId" in answer["message"]
    status, _, answer = raw(emulator, "POST", "/runBatch", {**body, "batchRunSettings": {"inlineSettings": [{}]}})
    assert status == 400 and "runSettingId" in answer["message"]
    assert raw(emulator, "GET", "/runBatch")[2]["items"] == []


def test_runs_failing_their_own_checks_fail_to_start(emulator, omics):
    settings = [{"runSettingId": "ok", "parameters": {"param2": "x"}},
                {"runSettingId": "extra", "parameters": {"param2": "x", "nope": 1}},
                {"runSettingId": "tags", "parameters": {"param2": "x"}, "runTags": {f"t{i}": "v" for i in range(50)}}]
    batch_id = start_batch(omics, settings)["id"]
    emulator.advance(11)
    members = {m["runSettingId"]: m for m in all_members(omics, batch_id)}
    assert members["ok"]["submissionStatus"] == "SUCCESS"
    assert members["extra"]["submissionStatus"] == "FAILED"
    assert members["extra"]["submissionFailureMessage"] == "Unknown parameter(s) for workflow 1234567: nope"
    assert members["tags"]["submissionStatus"] == "FAILED" and "tags" in members["tags"]["submissionFailureMessage"]
    summary = omics.get_batch(batchId=batch_id)["submissionSummary"]
    assert (summary["successfulStartSubmissionCount"], summary["failedStartSubmissionCount"]) == (1, 2)
    assert len(omics.list_runs(batchId=batch_id)["items"]) == 1


# -- s3UriSettings, read from S3 (moto) -------------------------------------------------------------

@pytest.fixture
def s3_emulator(s3_server):
    from runlog.emulator import Emulator

    s3_server.create_bucket(Bucket="cohorts")
    with Emulator(port=0, s3_endpoint_url=s3_server.endpoint) as emu:
        yield emu


def put_settings(s3, settings, key="run-settings.json") -> str:
    body = settings if isinstance(settings, bytes) else json.dumps(settings).encode()
    s3.put_object(Bucket="cohorts", Key=key, Body=body)
    return f"s3://cohorts/{key}"


def test_s3_uri_settings_are_read_from_s3(s3_server, s3_emulator):
    omics = boto3.client("omics", endpoint_url=s3_emulator.endpoint_url, region_name="us-west-2",
                         config=Config(inject_host_prefix=False, retries={"total_max_attempts": 1}))
    uri = put_settings(s3_server, inline(150))
    s3_emulator.batch_rate = 1000
    batch_id = omics.start_run_batch(requestId="s3", defaultRunSetting=DEFAULT,
                                     batchRunSettings={"s3UriSettings": uri})["id"]
    s3_emulator.advance(11)
    members = all_members(omics, batch_id)
    assert [m["runSettingId"] for m in members] == [f"sample-{i}" for i in range(150)]
    run = omics.get_run(id=members[149]["runId"])
    assert run["parameters"] == {"param1": "shared", "param2": "v149"} and run["batchId"] == batch_id
    assert omics.get_batch(batchId=batch_id)["totalRuns"] == 150
    # the file changing afterwards changes nothing: the batch holds what was read
    put_settings(s3_server, inline(2))
    assert omics.get_batch(batchId=batch_id)["totalRuns"] == 150


def test_s3_uri_settings_are_read_without_credentials_in_the_emulators_environment(s3_server, monkeypatch):
    """`runlog emulator --s3-endpoint-url` started before the variables it prints are
    exported: its S3 client uses dummy credentials, as a client of the emulator does."""
    from runlog.emulator import Emulator

    s3_server.create_bucket(Bucket="cohorts")
    uri = put_settings(s3_server, inline(2))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # not one that resolved credentials before
    with Emulator(port=0, s3_endpoint_url=s3_server.endpoint) as emu:
        omics = boto3.client("omics", endpoint_url=emu.endpoint_url, region_name="us-west-2",
                             aws_access_key_id="emulator", aws_secret_access_key="emulator",
                             config=Config(inject_host_prefix=False, retries={"total_max_attempts": 1}))
        batch_id = omics.start_run_batch(requestId="no-creds", defaultRunSetting=DEFAULT,
                                         batchRunSettings={"s3UriSettings": uri})["id"]
        assert omics.get_batch(batchId=batch_id)["totalRuns"] == 2


@pytest.mark.parametrize("content, message", [
    (b'{"runSettingId": "a"}', "is not a JSON list of run settings"),
    (b"[{\"runSettingId\": \"a\"}", "is not a JSON list of run settings: not JSON"),
    (b"[]", "holds 0 run settings"),
    (json.dumps([{"runSettingId": "a"}, {"runSettingId": "a"}]).encode(), "'a' is used more than once"),
    (json.dumps([{"runSettingId": "a", "colour": "red"}]).encode(), "unknown member 'colour'"),
    (json.dumps([{"runSettingId": 7}]).encode(), "runSettingId: must be a string"),
    (json.dumps(["a"]).encode(), "a run setting is a JSON object"),
    (json.dumps([{"name": "no id"}]).encode(), "missing required member runSettingId"),
])
def test_s3_uri_settings_that_are_not_settings_are_refused(s3_server, s3_emulator, content, message):
    omics = boto3.client("omics", endpoint_url=s3_emulator.endpoint_url, region_name="us-west-2",
                         config=Config(inject_host_prefix=False, retries={"total_max_attempts": 1}))
    uri = put_settings(s3_server, content)
    refused = error_of(omics.start_run_batch, requestId="bad", defaultRunSetting=DEFAULT,
                       batchRunSettings={"s3UriSettings": uri})
    assert refused["Code"] == "ValidationException" and message in refused["Message"], refused
    assert omics.list_batch()["items"] == []


def test_s3_uri_settings_limits(s3_server, s3_emulator):
    omics = boto3.client("omics", endpoint_url=s3_emulator.endpoint_url, region_name="us-west-2",
                         config=Config(inject_host_prefix=False, retries={"total_max_attempts": 1}))
    missing = error_of(omics.start_run_batch, requestId="m", defaultRunSetting=DEFAULT,
                       batchRunSettings={"s3UriSettings": "s3://cohorts/nothing-here.json"})
    assert missing["Code"] == "ValidationException" and "cannot read s3://cohorts/nothing-here.json" in missing["Message"]
    not_s3 = error_of(omics.start_run_batch, requestId="n", defaultRunSetting=DEFAULT,
                      batchRunSettings={"s3UriSettings": "https://cohorts/x.json"})
    assert "is not an s3://bucket/key URI" in not_s3["Message"]
    over = put_settings(s3_server, [{"runSettingId": str(i)} for i in range(100_001)], "over.json")
    too_many = error_of(omics.start_run_batch, requestId="o", defaultRunSetting=DEFAULT,
                        batchRunSettings={"s3UriSettings": over})
    assert "holds 100001 run settings; between 1 and 100000 allowed" in too_many["Message"]


def test_s3_uri_settings_need_an_s3_endpoint(emulator, omics):
    refused = error_of(omics.start_run_batch, requestId="x", defaultRunSetting=DEFAULT,
                       batchRunSettings={"s3UriSettings": "s3://cohorts/run-settings.json"})
    assert refused["Code"] == "ValidationException" and "RUNLOG_EMULATOR_S3_ENDPOINT_URL" in refused["Message"]


def test_a_batch_of_100000_runs_pages_by_position(s3_server, s3_emulator):
    """The largest batch the service takes: started from S3, every run submitted, paged through
    from any token (a page's cost does not depend on where it starts)."""
    omics = boto3.client("omics", endpoint_url=s3_emulator.endpoint_url, region_name="us-west-2",
                         config=Config(inject_host_prefix=False, retries={"total_max_attempts": 1}))
    settings = [{"runSettingId": f"S{i:06d}", "parameters": {"param2": f"s3://cohorts/in/{i}.cram"}}
                for i in range(100_000)]
    uri = put_settings(s3_server, settings)
    s3_emulator.batch_rate = 100_000
    batch_id = omics.start_run_batch(requestId="big", defaultRunSetting=DEFAULT,
                                     batchRunSettings={"s3UriSettings": uri})["id"]
    s3_emulator.advance(11)
    summary = omics.get_batch(batchId=batch_id)["submissionSummary"]
    assert summary["successfulStartSubmissionCount"] == 100_000
    last = omics.list_runs_in_batch(batchId=batch_id, maxItems=100, startingToken="99950")
    assert [m["runSettingId"] for m in last["runs"]] == [f"S{i:06d}" for i in range(99_950, 100_000)]
    assert "nextToken" not in last
    newest = omics.list_runs(batchId=batch_id, maxResults=3)["items"]
    assert [omics.get_run(id=item["id"])["parameters"]["param2"] for item in newest] == [
        f"s3://cohorts/in/{i}.cram" for i in (99_999, 99_998, 99_997)]
    one = omics.list_runs_in_batch(batchId=batch_id, runSettingId="S054321")["runs"]
    assert omics.get_run(id=one[0]["runId"])["parameters"]["param2"] == "s3://cohorts/in/54321.cram"


# -- CancelRunBatch, DeleteRunBatch, DeleteBatch ---------------------------------------------------

def member_statuses(omics, batch_id) -> dict[str, str]:
    return {m["runSettingId"]: m["submissionStatus"] for m in all_members(omics, batch_id)}


def test_cancel_run_batch_stops_submitting_and_cancels_what_runs(emulator, omics):
    emulator.batch_rate = 1
    batch_id = start_batch(omics, inline(60))["id"]  # one run a second from 11 s on
    emulator.advance(62)  # 52 runs started; those of sample-0 (at 11 s) and sample-1 (12 s) have ended
    answer = omics.cancel_run_batch(batchId=batch_id)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 202
    got = omics.get_batch(batchId=batch_id)
    assert got["status"] == "STOPPING"
    statuses = member_statuses(omics, batch_id)
    assert statuses == {"sample-0": "SUCCESS", "sample-1": "SUCCESS",
                        **{f"sample-{i}": "CANCEL_SUCCESS" for i in range(2, 52)}}
    assert got["submissionSummary"]["pendingStartSubmissionCount"] == 0
    assert got["submissionSummary"]["successfulCancelSubmissionCount"] == 50
    assert (got["runSummary"]["completedRunCount"], got["runSummary"]["cancelledRunCount"]) == (2, 50)
    cancelled = all_members(omics, batch_id, runSettingId="sample-2")[0]["runId"]
    assert omics.get_run(id=cancelled)["status"] == "CANCELLED"
    emulator.advance(10)
    assert omics.get_batch(batchId=batch_id)["status"] == "CANCELLED"
    emulator.advance(100)
    assert len(all_members(omics, batch_id)) == 52  # nothing more was submitted
    again = error_of(omics.cancel_run_batch, batchId=batch_id)
    assert (again["Code"], again["status"]) == ("ConflictException", 409)
    assert error_of(omics.cancel_run_batch, batchId="424242")["status"] == 404


def test_delete_run_batch_deletes_the_finished_runs(emulator, omics):
    emulator.batch_rate = 10
    batch_id = start_batch(omics, inline(3))["id"]
    emulator.advance(12)
    early = error_of(omics.delete_run_batch, batchId=batch_id)
    assert early["Code"] == "ConflictException" and "INPROGRESS" in early["Message"]
    run_ids = [m["runId"] for m in all_members(omics, batch_id)]
    emulator.advance(60)
    assert omics.get_batch(batchId=batch_id)["status"] == "PROCESSED"
    assert omics.delete_run_batch(batchId=batch_id)["ResponseMetadata"]["HTTPStatusCode"] == 202
    got = omics.get_batch(batchId=batch_id)
    assert got["status"] == "RUNS_DELETING"
    assert got["submissionSummary"]["successfulDeleteSubmissionCount"] == 3
    assert got["runSummary"]["deletedRunCount"] == 3
    assert set(member_statuses(omics, batch_id).values()) == {"DELETE_SUCCESS"}
    assert all(error_of(omics.get_run, id=run_id)["status"] == 404 for run_id in run_ids)
    assert omics.list_runs(batchId=batch_id)["items"] == []
    emulator.advance(10)
    assert omics.get_batch(batchId=batch_id)["status"] == "RUNS_DELETED"
    # the service hands out deleted runs' ids again
    reused = omics.start_run(workflowId="1234567", workflowOwnerId="123456789012", roleArn=ROLE,
                             outputUri="s3://b/o/", parameters={"param1": "a", "param2": "b"})["id"]
    assert reused == run_ids[0]
    assert error_of(omics.delete_run_batch, batchId="424242")["Code"] == "ResourceNotFoundException"
    malformed = error_of(omics.get_batch, batchId="not-a-number")
    assert malformed["Code"] == "ValidationException" and "batchId" in malformed["Message"]


def test_delete_batch_forgets_the_batch_not_its_runs(emulator, omics):
    answer = start_batch(omics, inline(2))
    batch_id = answer["id"]
    emulator.advance(11)
    busy = error_of(omics.delete_batch, batchId=batch_id)
    assert busy["Code"] == "ConflictException"
    emulator.advance(60)
    run_id = all_members(omics, batch_id)[0]["runId"]
    assert omics.delete_batch(batchId=batch_id)["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert error_of(omics.get_batch, batchId=batch_id)["Code"] == "ResourceNotFoundException"
    assert error_of(omics.list_runs_in_batch, batchId=batch_id)["status"] == 404
    assert error_of(omics.list_tags_for_resource, resourceArn=answer["arn"])["status"] == 404
    assert omics.list_batch()["items"] == []
    assert omics.get_run(id=run_id)["batchId"] == batch_id
    assert len(omics.list_runs(batchId=batch_id)["items"]) == 2
    assert error_of(omics.delete_batch, batchId=batch_id)["status"] == 404


# -- faults ---------------------------------------------------------------------------------------

def test_start_faults_fail_named_submissions_of_the_next_batch(emulator, omics):
    emulator.batch_fault("start", reason="ServiceQuotaExceededException", message="too many concurrent runs",
                         run_setting_ids=["sample-1"])
    batch_id = start_batch(omics, inline(3))["id"]
    later = start_batch(omics, inline(3), request_id="later")["id"]
    emulator.advance(11)
    failed = omics.list_runs_in_batch(batchId=batch_id, submissionStatus="FAILED")["runs"]
    assert failed == [{"runSettingId": "sample-1", "submissionStatus": "FAILED",
                       "submissionFailureReason": "ServiceQuotaExceededException",
                       "submissionFailureMessage": "too many concurrent runs"}]
    assert set(member_statuses(omics, later).values()) == {"SUCCESS"}  # the fault was the first batch's


def test_run_faults_make_runs_fail_while_running(emulator, omics):
    admin = raw(emulator, "POST", "/_emulator/batch-faults", {"phase": "run", "reason": "OUT_OF_MEMORY", "every": 2})
    assert admin[0] == 200
    batch_id = start_batch(omics, inline(4))["id"]
    emulator.advance(71)
    got = omics.get_batch(batchId=batch_id)
    assert got["status"] == "PROCESSED"
    assert (got["runSummary"]["completedRunCount"], got["runSummary"]["failedRunCount"]) == (2, 2)
    assert set(member_statuses(omics, batch_id).values()) == {"SUCCESS"}  # they started fine
    runs = {m["runSettingId"]: omics.get_run(id=m["runId"]) for m in all_members(omics, batch_id)}
    assert [runs[f"sample-{i}"]["status"] for i in range(4)] == ["COMPLETED", "FAILED", "COMPLETED", "FAILED"]
    assert runs["sample-3"]["failureReason"] == "OUT_OF_MEMORY"


def test_a_batch_fault_fails_the_whole_batch(emulator, omics):
    raw(emulator, "POST", "/_emulator/batch-faults", {"phase": "batch", "reason": "ValidationException",
                                                       "message": "role cannot be assumed"})
    batch_id = start_batch(omics)["id"]
    emulator.advance(5)
    assert omics.get_batch(batchId=batch_id)["status"] == "PENDING"
    emulator.advance(50)
    got = omics.get_batch(batchId=batch_id)
    assert got["status"] == "FAILED"
    assert got["failureReason"] == "ValidationException: role cannot be assumed"
    assert got["failedTime"] == got["creationTime"] + timedelta(seconds=10)
    assert got["submissionSummary"]["pendingStartSubmissionCount"] == 0
    assert all_members(omics, batch_id) == [] and omics.list_runs(batchId=batch_id)["items"] == []
    assert omics.list_batch(status="FAILED")["items"][0]["id"] == batch_id
    omics.delete_batch(batchId=batch_id)


def test_cancel_and_delete_faults(emulator, omics):
    emulator.batch_rate = 10
    batch_id = start_batch(omics, inline(2))["id"]
    emulator.batch_fault("cancel", batch_id=batch_id, run_setting_ids=["sample-0"])
    emulator.advance(20)
    omics.cancel_run_batch(batchId=batch_id)
    assert member_statuses(omics, batch_id) == {"sample-0": "CANCEL_FAILED", "sample-1": "CANCEL_SUCCESS"}
    still = all_members(omics, batch_id, runSettingId="sample-0")[0]
    assert still["submissionFailureReason"] == "InternalServerException"
    assert omics.get_run(id=still["runId"])["status"] == "PENDING"  # not cancelled
    emulator.advance(10)
    assert omics.get_batch(batchId=batch_id)["status"] == "CANCELLED"
    omics.delete_run_batch(batchId=batch_id)  # sample-0's run is still going: it cannot be deleted
    assert member_statuses(omics, batch_id) == {"sample-0": "DELETE_FAILED", "sample-1": "DELETE_SUCCESS"}
    emulator.advance(10)
    got = omics.get_batch(batchId=batch_id)
    assert got["status"] == "RUNS_DELETE_FAILED"
    assert got["submissionSummary"]["failedDeleteSubmissionCount"] == 1
    emulator.advance(60)  # it has ended now: deleting again succeeds
    omics.delete_run_batch(batchId=batch_id)
    emulator.advance(10)
    got = omics.get_batch(batchId=batch_id)
    assert got["status"] == "RUNS_DELETED"
    assert (got["submissionSummary"]["failedDeleteSubmissionCount"],
            got["submissionSummary"]["successfulDeleteSubmissionCount"]) == (0, 2)


def test_batch_admin_api(emulator, monkeypatch):
    assert raw(emulator, "POST", "/_emulator/batch-rate", {"rate": 25})[0] == 200
    assert emulator.batch_rate == 25
    assert raw(emulator, "POST", "/_emulator/batch-rate", {"rate": 0})[0] == 400
    bad = raw(emulator, "POST", "/_emulator/batch-faults", {"phase": "sometimes"})
    assert bad[0] == 400 and "unknown batch fault phase" in bad[2]["message"]
    assert raw(emulator, "POST", "/_emulator/batch-faults", {"phase": "run", "batchId": "123"})[0] == 404
    monkeypatch.setenv("RUNLOG_EMULATOR_BATCH_RATE", "7")
    from runlog.emulator import Emulator

    assert Emulator(port=0).batch_rate == 7


# -- the real aws CLI ------------------------------------------------------------------------------

def aws_cli(emulator, *args):
    aws = shutil.which("aws")
    assert aws, "the aws CLI (awscli) is a test dependency"
    env = {**os.environ, "AWS_DISABLE_HOST_PREFIX_INJECTION": "true", "AWS_DEFAULT_REGION": "us-west-2"}
    return subprocess.run([aws, "omics", *args, "--endpoint-url", emulator.endpoint_url, "--output", "json"],
                          capture_output=True, text=True, env=env, timeout=120)


def test_the_aws_cli_drives_batches(emulator, tmp_path):
    (tmp_path / "settings.json").write_text(json.dumps({"inlineSettings": inline(3)}))
    started = aws_cli(emulator, "start-run-batch", "--request-id", "cli-1", "--batch-name", "cohort",
                      "--default-run-setting", json.dumps(DEFAULT),
                      "--batch-run-settings", f"file://{tmp_path / 'settings.json'}", "--tags", "team=genomics")
    assert started.returncode == 0, started.stderr
    batch = json.loads(started.stdout)
    assert batch["status"] == "CREATING" and batch["tags"] == {"team": "genomics"}
    raw(emulator, "POST", "/_emulator/advance", {"seconds": 11})
    listed = aws_cli(emulator, "list-runs-in-batch", "--batch-id", batch["id"], "--page-size", "2")
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)["runs"]
    assert [r["runSettingId"] for r in runs] == ["sample-0", "sample-1", "sample-2"]  # the CLI pages through
    got = json.loads(aws_cli(emulator, "get-batch", "--batch-id", batch["id"]).stdout)
    assert got["status"] == "INPROGRESS" and got["submissionSummary"]["successfulStartSubmissionCount"] == 3
    in_list_runs = json.loads(aws_cli(emulator, "list-runs", "--batch-id", batch["id"]).stdout)["items"]
    assert {item["batchId"] for item in in_list_runs} == {batch["id"]}
    conflict = aws_cli(emulator, "start-run-batch", "--request-id", "cli-1", "--default-run-setting",
                       json.dumps(DEFAULT), "--batch-run-settings", json.dumps({"inlineSettings": inline(1)}))
    assert conflict.returncode == 255 and "ConflictException" in conflict.stderr
    assert aws_cli(emulator, "cancel-run-batch", "--batch-id", batch["id"]).returncode == 0
    assert json.loads(aws_cli(emulator, "get-batch", "--batch-id", batch["id"]).stdout)["status"] == "STOPPING"


def test_a_batch_started_by_a_dropped_request_is_returned_by_its_request_id(emulator, omics):
    from botocore.exceptions import ConnectionClosedError

    emulator.inject("drop", operation="StartRunBatch", phase="after")
    with pytest.raises(ConnectionClosedError):
        start_batch(omics, request_id="lost")
    [started] = omics.list_batch()["items"]
    again = start_batch(omics, request_id="lost")
    assert again["id"] == started["id"] and len(omics.list_batch()["items"]) == 1
    assert [e["status"] for e in emulator.requests if e["operation"] == "StartRunBatch"] == ["dropped", 201]


def test_batches_are_taggable_resources(emulator, omics):
    arn = start_batch(omics)["arn"]
    omics.tag_resource(resourceArn=arn, tags={"cohort": "2026"})
    assert omics.get_batch(batchId=arn.rsplit("/", 1)[1])["tags"] == {"cohort": "2026"}
    omics.untag_resource(resourceArn=arn, tagKeys=["cohort"])
    assert omics.list_tags_for_resource(resourceArn=arn)["tags"] == {}


# -- batch ids: where they start -------------------------------------------------------------------

def client_of(emulator):
    return boto3.client("omics", endpoint_url=emulator.endpoint_url, region_name="us-west-2",
                        config=Config(inject_host_prefix=False, retries={"total_max_attempts": 1}))


def test_each_emulator_starts_its_batch_ids_elsewhere_unless_told_where():
    """An emulator's batch ids start at a random 7-digit number above the run ids, another
    for each emulator and each reset; `first_batch_id` makes them the same every time."""
    from runlog.emulator import Emulator

    starts = []
    for _ in range(3):
        random.seed(7)  # as a test runner seeds `random` for each test: the start does not follow it
        with Emulator(port=0) as emulator:
            omics = client_of(emulator)
            first = int(start_batch(omics)["id"])
            assert int(start_batch(omics, request_id="batch-2")["id"]) == first + 1
            emulator.reset()
            starts += [first, int(start_batch(omics)["id"])]
    assert len(set(starts)) == len(starts) and all(8100001 <= s < 9900000 for s in starts), starts
    with Emulator(port=0, first_batch_id=5550001) as emulator:
        omics = client_of(emulator)
        assert [start_batch(omics, request_id=r)["id"] for r in ("a", "b")] == ["5550001", "5550002"]
        emulator.reset()
        assert start_batch(omics)["id"] == "5550001"

