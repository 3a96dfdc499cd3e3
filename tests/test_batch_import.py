"""`runlog import` discovers batches started without runlog (ListBatch, paged): each becomes a
batch record with imported provenance (what GetBatch tells, nothing invented) and its runs
become its members, never standalone imports. The real aws CLI or boto3 starts the batches,
against the emulator over HTTP; real ledger files."""

from __future__ import annotations

import json

from helpers import COHORT_DEFAULT, COHORT_ROLE, aws_cli, cohort_setting, omics_client
from runlog import record as rec
from runlog.ledger import Ledger

ROLE = COHORT_ROLE
WORKFLOW = COHORT_DEFAULT["workflowId"]  # cram-to-bam in the emulator's seed
DEFAULT = {**COHORT_DEFAULT, "runTags": {"project": "cohort"}}




def entries(ledger_path):
    with Ledger.open(ledger_path, create=False) as ledger:
        found = ledger.entries()
        observations = ledger.conn.execute("SELECT count(*) FROM observations").fetchone()[0]
    return found, observations


def start_with_aws_cli(emulator, tmp_path, name: str, *samples: str) -> str:
    settings = tmp_path / f"{name}.json"
    settings.write_text(json.dumps({"inlineSettings": [cohort_setting(s) for s in samples]}))
    started = aws_cli(emulator, "omics", "start-run-batch", "--batch-name", name, "--default-run-setting",
                      json.dumps(DEFAULT), "--batch-run-settings", f"file://{settings}", "--tags", "team=genomics")
    assert started.returncode == 0, started.stderr
    return json.loads(started.stdout)["id"]


def test_import_records_a_batch_started_outside_with_its_runs_as_members(aws_env, ledger_path, git_repo, run_cli,
                                                                        tmp_path):
    aws_env.batch_rate = 100
    aws_env.batch_fault("start", reason="ServiceQuotaExceeded", message="too many runs", run_setting_ids=["S2"])
    batch_id = start_with_aws_cli(aws_env, tmp_path, "cohort-outside", "S0", "S1", "S2")
    single = omics_client(aws_env).start_run(workflowId=WORKFLOW, roleArn=ROLE, outputUri="s3://cohort-bucket/single/",
                                      name="single-run", requestId="single-1", parameters={
                                          **DEFAULT["parameters"], "sample_name": "X",
                                          "input_cram": "s3://cohort-bucket/crams/X.cram"})
    aws_env.advance(200)
    service = omics_client(aws_env)
    got = service.get_batch(batchId=batch_id)
    listed = service.list_runs_in_batch(batchId=batch_id)["runs"]

    result = run_cli("import", "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["batches"]["listed"] == 1 and printed["batches"]["skipped"] == 0
    (item,) = printed["batches"]["imported"]
    assert item["batch_id"] == batch_id and item["runs"] == 3 and item["members_added"] == 3
    batch_runs = {run["runId"] for run in listed if run.get("runId")}
    imported_runs = {run["run_id"] for run in printed["imported"]}
    assert single["id"] in imported_runs and not imported_runs & batch_runs  # the batch's runs are not imports

    found, _ = entries(ledger_path)
    (batch,) = [e for e in found if e.kind == "batch"]
    record = batch.record
    # what GetBatch tells, nothing invented: no requestId, no run settings
    assert record["request"] == {"batchName": "cohort-outside", "tags": {"team": "genomics"},
                                 "defaultRunSetting": got["defaultRunSetting"]}
    assert "requestId" not in record["request"] and "batchRunSettings" not in record["request"]
    assert record["source_batch"]["uuid"] == got["uuid"] and record["source_batch"]["totalRuns"] == 3
    assert "status" not in record["source_batch"]  # what changes is an observation
    assert record["outcome"] == {"status": "submitted", "response": {
        "id": batch_id, "arn": got["arn"], "uuid": got["uuid"], "tags": {"team": "genomics"}}}
    assert record["git"]["state"] == "unknown" and "unknown" in record["caller"]
    assert any("requestId" in w and "batchRunSettings" in w for w in record["warnings"])
    assert record["batch"] == {"runs": 3}
    assert record["fingerprint"] == rec.fingerprint(record) and not rec.schema_errors(record)

    members = [e for e in found if e.kind == "member"]
    assert sorted(m.record["batch"]["run_setting_id"] for m in members) == ["S0", "S1", "S2"]
    assert all(m.record["batch"]["record"] == batch.address for m in members)
    by_setting = {m.record["batch"]["run_setting_id"]: m.record for m in members}
    for run in listed:
        member = by_setting[run["runSettingId"]]
        if run.get("runId"):
            assert member["outcome"]["response"]["id"] == run["runId"]
        else:
            assert member["outcome"]["status"] == "rejected"
            assert member["outcome"]["error"]["code"] == "ServiceQuotaExceeded"
        # its own settings were never seen: only the default is recorded, and it says so
        assert member["request"]["parameters"] == DEFAULT["parameters"]
        assert any("own settings are unknown" in w for w in member["warnings"])
    imports = [e.record for e in found if e.kind == "import"]
    assert single["id"] in {r["source_run"]["id"] for r in imports}
    assert not [r for r in imports if r["source_run"].get("batchId")]

    shown = json.loads(run_cli("show", batch_id, "--json").stdout)
    assert shown["batch"]["submission"] == {"SUCCESS": 2, "FAILED": 1}
    assert shown["batch"]["run_status"] == {"COMPLETED": 2}
    assert shown["batch"]["batch_status"] == "PROCESSED"
    assert run_cli("verify", "--no-remote").exit_code == 0

    # a second import adds nothing: no record, no observation
    before = entries(ledger_path)
    again = run_cli("import", "--json")
    assert again.exit_code == 0, again.output
    second = json.loads(again.stdout)
    assert second["batches"] == {"listed": 1, "imported": [], "skipped": 1, "pending": 0}
    assert second["imported"] == []
    after = entries(ledger_path)
    assert [e.address for e in after[0]] == [e.address for e in before[0]] and after[1] == before[1]

    text = run_cli("import")
    assert text.exit_code == 0 and "0 batch(es) imported, 1 already in the ledger" in text.stdout


def test_import_pages_through_list_batch(aws_env, ledger_path, git_repo, run_cli):
    aws_env.batch_rate = 100
    service = omics_client(aws_env)
    started = [service.start_run_batch(batchName=f"b{i:03d}", requestId=f"req-{i}", defaultRunSetting=DEFAULT,
                                       batchRunSettings={"inlineSettings": [cohort_setting(f"S{i}")]})["id"]
               for i in range(103)]
    aws_env.advance(60)
    result = run_cli("import", "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["batches"]["listed"] == 103
    assert sorted(i["batch_id"] for i in printed["batches"]["imported"]) == sorted(started)
    assert not [i for i in printed["imported"] if (i["name"] or "").startswith("align-")]
    assert len([r for r in aws_env.requests if r["operation"] == "ListBatch"]) >= 2  # more than one page
    found, _ = entries(ledger_path)
    assert sum(e.kind == "batch" for e in found) == 103 and sum(e.kind == "member" for e in found) == 103


def test_a_batch_a_pending_submit_batch_may_have_started_is_left_to_recover(aws_env, ledger_path, git_repo,
                                                                            run_cli):
    aws_env.batch_rate = 100
    aws_env.inject("error", operation="StartRunBatch", count=3, phase="after")  # started, but 500 answered
    sent = run_cli("submit-batch", "--batch-name", "cohort-pending", "--default-run-setting", json.dumps(DEFAULT),
                   "--batch-run-settings", json.dumps({"inlineSettings": [cohort_setting("P0"), cohort_setting("P1")]}))
    assert sent.exit_code == 1 and "pending" in sent.stderr
    aws_env.advance(60)
    imported = run_cli("import", "--json")
    assert imported.exit_code == 0, imported.output
    printed = json.loads(imported.stdout)
    assert printed["batches"]["pending"] == 1 and printed["batches"]["imported"] == []
    # its runs are not imported one by one either: they are the batch's, once recover records it
    assert not [i for i in printed["imported"] if (i["name"] or "").startswith("align-")]
    found, _ = entries(ledger_path)
    assert [e for e in found if e.kind == "batch"] == []
    assert run_cli("recover").exit_code == 0
    found, _ = entries(ledger_path)
    (batch,) = [e for e in found if e.kind == "batch"]
    assert "requestId" in batch.record["request"] and "source_batch" not in batch.record


def test_an_imported_batch_is_not_replayed_and_its_members_are_from_get_run(aws_env, ledger_path, git_repo, run_cli):
    aws_env.batch_rate = 100
    batch_id = omics_client(aws_env).start_run_batch(batchName="outside", requestId="r-1", defaultRunSetting=DEFAULT,
                                              batchRunSettings={"inlineSettings": [cohort_setting("A")]})["id"]
    aws_env.advance(200)
    assert run_cli("import").exit_code == 0
    refused = run_cli("replay", batch_id, "--allow-drift")
    assert refused.exit_code == 2
    assert refused.stderr.startswith("runlog: error: ") and len(refused.stderr.strip().splitlines()) == 1
    assert f"batch {batch_id} was imported" in refused.stderr and "run settings were never seen" in refused.stderr
    assert [r for r in aws_env.requests if r["operation"] == "StartRunBatch"][1:] == []
    # a member is replayed from the settings GetRun reported (tests/test_batch_member_replay.py), or natively
    (member,) = [e.record for e in entries(ledger_path)[0] if e.kind == "member"]
    run_id = member["outcome"]["response"]["id"]
    plain = run_cli("replay", run_id, "--allow-drift")
    assert plain.exit_code == 0, plain.output
    native = run_cli("replay", run_id, "--native", "--allow-drift")
    assert native.exit_code == 0, native.output
    observed, call = [r for r in aws_env.requests if r["operation"] == "StartRun"]
    assert observed["params"]["parameters"]["sample_name"] == "A" and call["params"]["runId"] == run_id


def test_the_python_api_imports_batches_first_too(aws_env, ledger_path, git_repo):
    import runlog

    aws_env.batch_rate = 100
    batch_id = omics_client(aws_env).start_run_batch(batchName="api", requestId="r-api", defaultRunSetting=DEFAULT,
                                              batchRunSettings={"inlineSettings": [cohort_setting("A"), cohort_setting("B")]})["id"]
    aws_env.advance(200)
    with runlog.Runlog(ledger_path) as rl:
        result = rl.import_runs()
    assert result.batches is not None
    assert [item["batch_id"] for item in result.batches.imported] == [batch_id]
    assert not [i for i in result.imported if (i["name"] or "").startswith("align-")]
    found, _ = entries(ledger_path)
    assert sum(e.kind == "member" for e in found) == 2
    assert result.as_dict()["batches"]["imported"][0]["members_added"] == 2


def test_a_failure_part_way_keeps_what_was_recorded_and_says_what_to_run(aws_env, ledger_path, git_repo, run_cli):
    aws_env.batch_rate = 100
    batch_id = omics_client(aws_env).start_run_batch(batchName="flaky", requestId="r-f", defaultRunSetting=DEFAULT,
                                              batchRunSettings={"inlineSettings": [cohort_setting("A"), cohort_setting("B")]})["id"]
    aws_env.advance(200)
    aws_env.inject("error", operation="ListRunsInBatch", count=10)
    failed = run_cli("import")
    assert failed.exit_code == 1, failed.output
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("runlog: error: ") and "ListRunsInBatch" in lines[0]
    assert "runlog refresh BATCH" in lines[0]
    found, _ = entries(ledger_path)
    assert [e.kind for e in found] == ["batch"]  # the batch record stays; no run was imported on its own
    aws_env.faults.clear()
    again = run_cli("import")
    assert again.exit_code == 0, again.output
    assert "0 batch(es) imported, 1 already in the ledger" in again.stdout
    assert "align-" not in again.stdout
    refreshed = run_cli("refresh", batch_id)
    assert refreshed.exit_code == 0 and "2 new member record(s)" in refreshed.stdout


def test_imported_batches_read_like_others_log_diff_export(aws_env, ledger_path, git_repo, run_cli, tmp_path):
    aws_env.batch_rate = 100
    service = omics_client(aws_env)
    first = service.start_run_batch(batchName="one", requestId="r-1", defaultRunSetting=DEFAULT,
                                    batchRunSettings={"inlineSettings": [cohort_setting("A"), cohort_setting("B")]})["id"]
    changed = {**DEFAULT, "parameters": {**DEFAULT["parameters"], "ref_dict": "s3://cohort-bucket/ref/v2.dict"}}
    second = service.start_run_batch(batchName="two", requestId="r-2", defaultRunSetting=changed,
                                     batchRunSettings={"inlineSettings": [cohort_setting("A")]})["id"]
    aws_env.advance(200)
    imported = run_cli("import")
    assert imported.exit_code == 0, imported.output
    assert f"imported batch {first} (PROCESSED, 2 run(s)) as record" in imported.stdout
    listed = json.loads(run_cli("log", "--json").stdout)
    assert {e["batch_id"] for e in listed if e["kind"] == "batch"} == {first, second}
    diff = run_cli("diff", first, second, "--json")
    assert diff.exit_code in (0, 1), diff.output
    paths = {(c["section"], c["path"]) for c in json.loads(diff.stdout)["changes"]}
    assert ("default setting", "parameters.ref_dict") in paths
    exported = run_cli("export", first, "-f", "prov-json", "-o", tmp_path / "prov.json")
    assert exported.exit_code == 0, exported.output
    text = (tmp_path / "prov.json").read_text()
    members = [e.record for e in entries(ledger_path)[0] if e.kind == "member" and e.batch_id == first]
    assert len(members) == 2 and all(m["outcome"]["response"]["id"] in text for m in members)


def test_since_and_run_group_select_batches_and_status_does_not(aws_env, ledger_path, git_repo, run_cli):
    aws_env.batch_rate = 100
    service = omics_client(aws_env)
    grouped = service.start_run_batch(batchName="grouped", requestId="r-g", defaultRunSetting={
        **DEFAULT, "runGroupId": "1234567"}, batchRunSettings={"inlineSettings": [cohort_setting("G")]})
    created = service.get_batch(batchId=grouped["id"])["creationTime"]
    plain = service.start_run_batch(batchName="plain", requestId="r-p", defaultRunSetting=DEFAULT,
                                    batchRunSettings={"inlineSettings": [cohort_setting("P")]})
    aws_env.advance(200)
    later = f"{created.year + 1:04d}-{created.month:02d}-{created.day:02d}"
    none = run_cli("import", "--since", later, "--json")
    assert none.exit_code == 0, none.output
    assert json.loads(none.stdout)["batches"] == {"listed": 0, "imported": [], "skipped": 0, "pending": 0}
    group = run_cli("import", "--run-group-id", "1234567", "--json")
    assert group.exit_code == 0, group.output
    assert [i["batch_id"] for i in json.loads(group.stdout)["batches"]["imported"]] == [grouped["id"]]
    # --status filters single runs; a batch is recorded whole, whatever its runs' statuses
    rest = run_cli("import", "--status", "FAILED", "--json")
    assert rest.exit_code == 0, rest.output
    assert [i["batch_id"] for i in json.loads(rest.stdout)["batches"]["imported"]] == [plain["id"]]
