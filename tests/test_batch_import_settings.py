"""Members of a batch started without runlog: `runlog import` (and `runlog refresh B`) learn
each member's own settings from GetRun and append them as member-settings observations (the
member records, a pure function of GetBatch and ListRunsInBatch, hold the default setting
alone); show, diff and export then use what was observed, marked as observed from the
service. Runs of a batch deleted before it was imported are single imports that name their
batch. The aws CLI and boto3 start the batches against the emulator over HTTP; real ledgers."""

from __future__ import annotations

import json

from helpers import aws_cli, cohort_setting, omics_client
from runlog.ledger import Ledger

ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"
WORKFLOW = "1234567"  # cram-to-bam in the emulator's seed
DEFAULT = {"workflowId": WORKFLOW, "roleArn": ROLE, "outputUri": "s3://cohort-bucket/out/",
           "parameters": {"ref_dict": "s3://cohort-bucket/ref/genome.dict",
                          "ref_fasta": "s3://cohort-bucket/ref/genome.fasta",
                          "ref_fasta_index": "s3://cohort-bucket/ref/genome.fasta.fai"},
           "runTags": {"project": "cohort"}}
SOURCE = "MemberSettings"


def start_outside(emulator, tmp_path, name: str, settings: list[dict]) -> str:
    """A batch started with the aws CLI, runlog not involved."""
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"inlineSettings": settings}))
    started = aws_cli(emulator, "omics", "start-run-batch", "--batch-name", name, "--default-run-setting",
                      json.dumps(DEFAULT), "--batch-run-settings", f"file://{path}")
    assert started.returncode == 0, started.stderr
    return json.loads(started.stdout)["id"]


def members(ledger_path) -> dict[str, tuple]:
    """runSettingId -> (entry, its observations) of every member record."""
    with Ledger.open(ledger_path, create=False) as ledger:
        return {e.record["batch"]["run_setting_id"]: (e, ledger.observations(e.address))
                for e in ledger.entries() if e.kind == "member"}


def counts(ledger_path) -> tuple[int, int]:
    with Ledger.open(ledger_path, create=False) as ledger:
        return ledger.count(), ledger.conn.execute("SELECT count(*) FROM observations").fetchone()[0]


def two_samples() -> list[dict]:
    s0 = cohort_setting("S0")
    s1 = {**cohort_setting("S1"), "priority": 7, "runTags": {"sample": "S1"}}
    s1["parameters"] = {**s1["parameters"], "ref_fasta": "s3://cohort-bucket/ref/other.fasta"}
    return [s0, s1]


def test_import_observes_each_members_own_settings_from_get_run(aws_env, ledger_path, git_repo, run_cli, tmp_path):
    aws_env.batch_rate = 100
    batch_id = start_outside(aws_env, tmp_path, "outside", two_samples())
    aws_env.advance(200)
    runs = {r["runSettingId"]: r["runId"] for r in omics_client(aws_env).list_runs_in_batch(batchId=batch_id)["runs"]}

    result = run_cli("import", "--json")
    assert result.exit_code == 0, result.output
    (item,) = json.loads(result.stdout)["batches"]["imported"]
    assert item["settings_observed"] == 2 and item["settings_unknown"] == 0

    found = members(ledger_path)
    for setting_id, (entry, observations) in found.items():
        # the record stays what it was: the default alone, with its warning
        assert entry.record["request"]["parameters"] == DEFAULT["parameters"]
        (seen,) = [o for o in observations if o["source"] == SOURCE]
        assert seen["status"] is None and seen["body"]["from"] == "GetRun"
        assert seen["body"]["run"]["id"] == runs[setting_id] and seen["body"]["run"]["uuid"] == entry.run_uuid
        assert seen["body"]["run"]["batchId"] == batch_id
        settings = seen["body"]["settings"]
        assert settings["parameters"]["sample_name"] == setting_id and settings["name"] == f"align-{setting_id}"
        assert settings["outputUri"] == DEFAULT["outputUri"]
    s1 = [o for o in found["S1"][1] if o["source"] == SOURCE][0]["body"]["settings"]
    assert s1["priority"] == 7 and s1["runTags"] == {"project": "cohort", "sample": "S1"}
    assert s1["parameters"]["ref_fasta"] == "s3://cohort-bucket/ref/other.fasta"
