"""`runlog replay B --only …` of more than 100 runs of an s3UriSettings batch: runlog writes
the selected run settings as a new settings file in S3 (never over an existing object), the
new batch record pins it as submit-batch pins a user's file, and the batch starts from it.
moto's S3 over HTTP and the emulator (reading its settings files from that S3)."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config

from runlog import record as rec
from runlog.ledger import Ledger

ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"
BUCKET = "cohort-bucket"
DEFAULT = {"workflowId": "1234567", "roleArn": ROLE, "outputUri": "s3://cohort-bucket/out/",
           "parameters": {"ref_dict": "s3://cohort-bucket/ref/genome.dict",
                          "ref_fasta": "s3://cohort-bucket/ref/genome.fasta",
                          "ref_fasta_index": "s3://cohort-bucket/ref/genome.fasta.fai"}}
SAMPLES = [f"S{i:03d}" for i in range(150)]
ORIGINAL = f"s3://{BUCKET}/cohort/settings.json"


def setting(sample: str) -> dict:
    return {"runSettingId": sample, "name": f"align-{sample}",
            "parameters": {"sample_name": sample, "input_cram": f"s3://cohort-bucket/crams/{sample}.cram"}}



def batches(ledger_path) -> list:
    with Ledger.open(ledger_path, create=False) as ledger:
        return ledger.entries(where="kind = 'batch'")


def started(emulator) -> list[dict]:
    return [r for r in emulator.requests if r["operation"] == "StartRunBatch"]


@pytest.fixture
def cohort(s3_server, s3_emulator, ledger_path, git_repo, run_cli):
    """A 150-run s3UriSettings batch submitted with runlog, run to the end, refreshed; the
    runs of the first 120 samples FAILED."""
    s3_server.create_bucket(Bucket=BUCKET)
    s3_server.put_object(Bucket=BUCKET, Key="cohort/settings.json",
                         Body=json.dumps([setting(s) for s in SAMPLES]).encode())
    s3_emulator.batch_rate = 100
    s3_emulator.batch_fault("run", reason="OUT_OF_MEMORY", run_setting_ids=SAMPLES[:120])
    result = run_cli("submit-batch", "--batch-name", "cohort", "--default-run-setting", json.dumps(DEFAULT),
                     "--batch-run-settings", json.dumps({"s3UriSettings": ORIGINAL}), "--no-resolve")
    assert result.exit_code == 0, result.output
    batch_id = json.loads(result.stdout)["id"]
    s3_emulator.advance(400)
    refreshed = run_cli("refresh", batch_id)
    assert refreshed.exit_code == 0, refreshed.output
    return batch_id


def test_replay_of_120_failed_runs_writes_a_new_settings_file_and_pins_it(cohort, s3_server, s3_emulator,
                                                                          ledger_path, run_cli):
    batch_id = cohort
    (original,) = batches(ledger_path)
    result = run_cli("replay", cohort, "--only", "failed", "--no-resolve")
    assert result.exit_code == 0, result.output
    new_id = json.loads(result.stdout)["id"]
    assert new_id != batch_id
    (replayed,) = [e.record for e in batches(ledger_path) if e.batch_id == new_id]
    uri = replayed["request"]["batchRunSettings"]["s3UriSettings"]
    request_id = replayed["request"]["requestId"]
    # the default: beside the original, named after it and the replay's requestId
    assert uri == f"s3://{BUCKET}/cohort/settings.replay-{request_id}.json"
    assert f"wrote the 120 selected run settings to {uri}" in result.stderr
    key = uri.removeprefix(f"s3://{BUCKET}/")
    obj = s3_server.get_object(Bucket=BUCKET, Key=key)
    body = obj["Body"].read()
    assert json.loads(body) == [setting(s) for s in SAMPLES[:120]]  # exactly the selected settings, in order
    # pinned as submit-batch pins a user's file
    pinned = replayed["batch"]["settings_file"]
    assert pinned["uri"] == uri and pinned["etag"] == obj["ETag"].strip('"')
    assert pinned["sha256"] == rec.sha256_hex(body) and pinned["content"] == json.loads(body)
    assert replayed["batch"]["runs"] == 120
    # linked to the original, with what was selected and where it was written
    assert replayed["lineage"]["replay_of"]["record"] == original.address
    assert replayed["lineage"]["replay_of"]["run_id"] == batch_id
    assert replayed["lineage"]["overrides"] == {"runs": SAMPLES[:120], "settings_uri": uri}
    assert not rec.schema_errors(replayed)
    # the service started the 120 runs from that file
    (call,) = started(s3_emulator)[1:]
    assert call["params"]["batchRunSettings"] == {"s3UriSettings": uri}
    service = boto3.client("omics", endpoint_url=s3_emulator.endpoint_url, region_name="us-west-2",
                           config=Config(inject_host_prefix=False))
    assert service.get_batch(batchId=new_id)["totalRuns"] == 120
    # the original file is untouched
    assert json.loads(s3_server.get_object(Bucket=BUCKET, Key="cohort/settings.json")["Body"].read()) == [
        setting(s) for s in SAMPLES]
    assert run_cli("verify", "--no-remote").exit_code == 0


def test_replay_of_explicit_ids_to_a_named_file_never_overwrites(cohort, s3_server, s3_emulator, ledger_path,
                                                                run_cli):
    chosen = SAMPLES[10:140]  # 130 runs, by runSettingId
    wanted = [arg for s in chosen for arg in ("--only", s)]
    target = f"s3://{BUCKET}/reruns/batch-2.json"
    s3_server.put_object(Bucket=BUCKET, Key="reruns/batch-2.json", Body=b"[]")
    refused = run_cli("replay", cohort, *wanted, "--settings-uri", target, "--no-resolve")
    assert refused.exit_code == 2, refused.output
    assert refused.stderr.startswith("runlog: error: ") and len(refused.stderr.strip().splitlines()) == 1
    assert target in refused.stderr and "never overwrites" in refused.stderr
    assert s3_server.get_object(Bucket=BUCKET, Key="reruns/batch-2.json")["Body"].read() == b"[]"
    assert len(started(s3_emulator)) == 1 and len(batches(ledger_path)) == 1

    # a dry run says where it would write, and writes nothing
    fresh = f"s3://{BUCKET}/reruns/batch-3.json"
    dry = run_cli("replay", cohort, *wanted, "--settings-uri", fresh, "--no-resolve", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["request"]["batchRunSettings"] == {"s3UriSettings": fresh}
    assert "reruns/batch-3.json" not in {o["Key"] for o in s3_server.list_objects_v2(Bucket=BUCKET)["Contents"]}

    result = run_cli("replay", cohort, *wanted, "--settings-uri", fresh, "--no-resolve")
    assert result.exit_code == 0, result.output
    body = s3_server.get_object(Bucket=BUCKET, Key="reruns/batch-3.json")["Body"].read()
    assert json.loads(body) == [setting(s) for s in chosen]
    (replayed,) = [e.record for e in batches(ledger_path) if e.batch_id == json.loads(result.stdout)["id"]]
    assert replayed["batch"]["settings_file"]["sha256"] == rec.sha256_hex(body)
    assert replayed["lineage"]["overrides"]["runs"] == chosen


def test_a_bad_settings_uri_or_one_without_only_is_refused_before_anything(cohort, s3_emulator, run_cli):
    for uri in ("s3://cohort-bucket/", "https://example.org/x.json", "s3://cohort-bucket/dir/"):
        result = run_cli("replay", cohort, "--only", "failed", "--settings-uri", uri, "--no-resolve")
        assert result.exit_code == 2 and "--settings-uri" in result.stderr and "s3://BUCKET/KEY" in result.stderr
    alone = run_cli("replay", cohort, "--settings-uri", f"s3://{BUCKET}/x.json", "--no-resolve")
    assert alone.exit_code == 2 and "--only" in alone.stderr
    assert len(started(s3_emulator)) == 1
