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

    # the record warns, the observation holds what it ran with: show says both
    shown = run_cli("show", runs["S1"])
    assert shown.exit_code == 0, shown.output
    assert "settings observed from GetRun at " in shown.stdout and "not a submitted request" in shown.stdout
    assert '"ref_fasta": "s3://cohort-bucket/ref/other.fasta"' in shown.stdout
    as_json = json.loads(run_cli("show", runs["S1"], "--json").stdout)
    assert as_json["member_settings"]["state"] == "observed" and as_json["member_settings"]["from"] == "GetRun"
    assert as_json["member_settings"]["settings"] == s1

    # import twice adds nothing; a refresh of the batch asks nothing more either; verify passes
    before = counts(ledger_path)
    again = run_cli("import", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["batches"]["imported"] == [] and counts(ledger_path) == before
    asked = len(aws_env.requests)
    refreshed = run_cli("refresh", batch_id, "--json")
    assert refreshed.exit_code == 0, refreshed.output
    (change,) = json.loads(refreshed.stdout)
    assert change["settings_observed"] == 0 and change["settings_unknown"] == 0
    assert not [r for r in aws_env.requests[asked:] if r["operation"] == "GetRun"]
    assert counts(ledger_path) == before
    verified = run_cli("verify", "--no-remote")
    assert verified.exit_code == 0, verified.output


def test_diff_of_two_imported_members_shows_where_their_own_settings_differ(aws_env, ledger_path, git_repo,
                                                                           run_cli, tmp_path):
    aws_env.batch_rate = 100
    batch_id = start_outside(aws_env, tmp_path, "outside", two_samples())
    aws_env.advance(200)
    runs = {r["runSettingId"]: r["runId"] for r in omics_client(aws_env).list_runs_in_batch(batchId=batch_id)["runs"]}
    assert run_cli("import").exit_code == 0

    result = run_cli("diff", runs["S0"], runs["S1"], "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    changes = {(c["section"], c["path"]): (c["old"], c["new"]) for c in found["changes"]}
    assert changes[("parameters", "sample_name")] == ("S0", "S1")
    assert changes[("parameters", "input_cram")] == ("s3://cohort-bucket/crams/S0.cram",
                                                     "s3://cohort-bucket/crams/S1.cram")
    assert changes[("parameters", "ref_fasta")] == ("s3://cohort-bucket/ref/genome.fasta",
                                                    "s3://cohort-bucket/ref/other.fasta")
    assert changes[("run settings", "priority")] == (None, 7)
    assert not found["same"]
    assert found["a"]["settings"]["state"] == "observed" and found["b"]["settings"]["from"] == "GetRun"
    assert all("observed from GetRun" in n for n in found["notes"]) and len(found["notes"]) == 2

    text = run_cli("diff", runs["S0"], runs["S1"], "--exit-code")
    assert text.exit_code == 1
    assert "(A: settings observed from GetRun at " in text.stdout and "(B: settings observed from GetRun" in text.stdout
    assert "~ sample_name" in text.stdout and '"S0" -> "S1"' in text.stdout

    # the records themselves hold the default alone: without the observations they compare equal
    with Ledger.open(ledger_path, create=False) as ledger:
        a, b = ledger.resolve(runs["S0"]).record, ledger.resolve(runs["S1"]).record
    assert a["request"] == b["request"]


def test_export_states_the_observed_settings_as_observed_from_the_service(aws_env, ledger_path, git_repo, run_cli,
                                                                          tmp_path):
    import csv

    aws_env.batch_rate = 100
    batch_id = start_outside(aws_env, tmp_path, "outside", two_samples())
    aws_env.advance(200)
    runs = {r["runSettingId"]: r for r in omics_client(aws_env).list_runs_in_batch(batchId=batch_id)["runs"]}
    assert run_cli("import").exit_code == 0
    out = tmp_path / "cohort"
    result = run_cli("export", batch_id, "-f", "all", "-o", out, "--license", "CC-BY-4.0")
    assert result.exit_code == 0, result.output

    rows = {row["run_setting_id"]: row for row in csv.DictReader((out / "methods" / "samples.csv").open())}
    for setting_id in ("S0", "S1"):
        row = rows[setting_id]
        assert json.loads(row["parameters"])["sample_name"] == setting_id  # its own, not the default alone
        assert row["run_name"] == f"align-{setting_id}"
        assert row["settings_source"].startswith("settings observed from GetRun at ")
        assert row["run_output_uri"] == f"s3://cohort-bucket/out/{runs[setting_id]['runId']}"
    methods = (out / "methods" / "methods.md").read_text()
    assert "started without runlog" in methods and "GetRun" in methods and "for 2 of its 2 run(s)" in methods

    graph = {e["@id"]: e for e in json.loads((out / "ro-crate-metadata.json").read_text())["@graph"]}
    action = graph[f"urn:uuid:{runs['S1']['runInternalUuid']}"]
    assert "settings observed from GetRun" in action["description"]
    extra = {graph[v["@id"]]["name"]: graph[v["@id"]]["value"] for v in action["additionalProperty"]}
    assert extra["settings source"].startswith("settings observed from GetRun")
    assert extra["runSettingId"] == "S1"
    read = {v["@id"] for v in action["object"]}
    assert "s3://cohort-bucket/crams/S1.cram" in read  # its own input, as the run's object
    assert graph[f"{action['@id']}#param-sample_name"]["value"] == "S1"

    prov = (out / "prov.json").read_text()
    assert "runlog:settingsSource" in prov and "settings observed from GetRun" in prov
    bco_files = sorted((out).glob("**/*bco*.json"))
    assert bco_files
    bcos = [json.loads(p.read_text()) for p in bco_files]
    assert all(any("settings observed from GetRun" in u for u in b["usability_domain"]) for b in bcos)
    assert all(any(p["param"] == "settings source" for p in b["parametric_domain"]) for b in bcos)
