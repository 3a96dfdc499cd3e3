"""Records for runs started without runlog, and GetRun observations, against the emulator."""

from __future__ import annotations

import boto3
from botocore.config import Config

from runlog import record as rec
from runlog.importer import import_record, import_run, request_from_run
from runlog.ledger import Ledger
from runlog.observe import get_run, latest_run_facts, observe
from runlog.verify import verify

ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"


def omics(emulator):
    return boto3.client("omics", endpoint_url=emulator.endpoint_url, region_name="us-west-2",
                        config=Config(inject_host_prefix=False))


def start_plain(client, **extra):
    """A run started with plain boto3, as a scientist did before runlog."""
    request = {"workflowId": "7206765", "roleArn": ROLE, "outputUri": "s3://bucket/results/",
               "parameters": {"input": "s3://bucket/in/samplesheet.csv", "protocol": "10XV3"},
               "name": "plain", "priority": 5, "logLevel": "ERROR", "cacheId": "1234567",
               "cacheBehavior": "CACHE_ON_FAILURE", **extra}
    return request, client.start_run(**request)


def test_request_reconstructed_from_get_run(emulator, tmp_path):
    client = omics(emulator)
    request, started = start_plain(client)
    run = get_run(client, started["id"])
    rebuilt = request_from_run(run)
    for member, value in request.items():
        assert rebuilt[member] == value, member
    record = import_record(run)
    assert not rec.schema_errors(record)
    assert record["kind"] == "import" and record["git"]["state"] == "unknown"
    assert record["outcome"]["response"]["uuid"] == started["uuid"]
    assert record["caller"]["arn"] == run["startedBy"]


def test_import_is_idempotent_and_converges(emulator, tmp_path):
    client = omics(emulator)
    _, started = start_plain(client)
    run = get_run(client, started["id"])
    with Ledger.open(tmp_path / "a.db") as a, Ledger.open(tmp_path / "b.db") as b:
        first, added = import_run(a, run)
        assert added
        again, added = import_run(a, run)
        assert not added and again.address == first.address
        emulator.advance(3600)
        other, _ = import_run(b, get_run(client, started["id"]))  # later, another person
        assert other.address == first.address  # same run, same record: ledgers merge cleanly
        assert verify(a).ok and verify(b).ok


def test_ready2run_keeps_its_type(emulator):
    client = omics(emulator)
    workflows = client.list_workflows(type="READY2RUN")["items"]
    assert workflows, "the emulator seeds a READY2RUN workflow"
    workflow = client.get_workflow(id=workflows[0]["id"], type="READY2RUN")
    params = {name: "s3://bucket/x" for name, spec in workflow.get("parameterTemplate", {}).items()
              if not spec.get("optional")}
    started = client.start_run(workflowId=workflow["id"], workflowType="READY2RUN", roleArn=ROLE,
                               outputUri="s3://bucket/out/", parameters=params)
    assert request_from_run(get_run(client, started["id"]))["workflowType"] == "READY2RUN"


def test_observe_follows_status_and_detects_reused_ids(emulator, tmp_path):
    client = omics(emulator)
    _, started = start_plain(client)
    with Ledger.open(tmp_path / "l.db") as ledger:
        entry, _ = import_run(ledger, get_run(client, started["id"]))
        emulator.advance(3600)
        body = observe(ledger, entry, client)
        assert body["status"] == "COMPLETED"
        assert ledger.resolve(started["id"]).status == "COMPLETED"
        assert latest_run_facts(ledger, entry.address)["uuid"] == started["uuid"]
        client.delete_run(id=started["id"])
        _, reused = start_plain(client)
        assert reused["id"] == started["id"] and reused["uuid"] != started["uuid"]
        body = observe(ledger, entry, client)
        assert body["status"] == "DELETED" and reused["uuid"] in body["reason"]
        assert ledger.resolve(started["uuid"]).status == "DELETED"
