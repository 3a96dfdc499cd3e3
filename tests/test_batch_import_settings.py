"""Members of a batch started without runlog: `runlog import` (and `runlog refresh B`) learn
each member's own settings from GetRun and append them as member-settings observations (the
member records, a pure function of GetBatch and ListRunsInBatch, hold the default setting
alone); show, diff and export then use what was observed, marked as observed from the
service. Runs of a batch deleted before it was imported are single imports that name their
batch. The aws CLI and boto3 start the batches against the emulator over HTTP; real ledgers."""

from __future__ import annotations

import csv
import json
import subprocess
import tempfile
from pathlib import Path

from helpers import COHORT_DEFAULT, COHORT_ROLE, aws_cli, checker, cohort_setting, omics_client
from runlog.export import validate
from runlog.ledger import Ledger

ROLE = COHORT_ROLE
WORKFLOW = COHORT_DEFAULT["workflowId"]  # cram-to-bam in the emulator's seed
DEFAULT = {**COHORT_DEFAULT, "runTags": {"project": "cohort"}}
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
    aws_env.batch_rate = 100
    batch_id = start_outside(aws_env, tmp_path, "outside", two_samples())
    aws_env.advance(200)
    runs = {r["runSettingId"]: r for r in omics_client(aws_env).list_runs_in_batch(batchId=batch_id)["runs"]}
    assert run_cli("import").exit_code == 0
    out = tmp_path / "cohort"
    result = run_cli("export", batch_id, "-f", "all", "-o", out, "--license", "CC-BY-4.0", "--validate")
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

    # the crate still passes the independent checkers
    with tempfile.TemporaryDirectory() as cache:
        assert validate.crate_report(out, Path(cache) / "http-cache", profile="process-run-crate-0.5") == ([], 0)
    runcrate = subprocess.run([checker("runcrate"), "report", str(out)], capture_output=True, text=True)
    assert runcrate.returncode == 0, runcrate.stderr
    assert f"action: urn:uuid:{runs['S1']['runInternalUuid']}" in runcrate.stdout


def test_a_get_run_refused_leaves_the_settings_unknown_with_the_reason(aws_env, ledger_path, git_repo, run_cli,
                                                                       tmp_path):
    aws_env.batch_rate = 100
    batch_id = start_outside(aws_env, tmp_path, "outside", two_samples())
    aws_env.advance(200)
    runs = {r["runSettingId"]: r["runId"] for r in omics_client(aws_env).list_runs_in_batch(batchId=batch_id)["runs"]}
    aws_env.inject("error", "GetRun", count=2, code="AccessDeniedException")

    result = run_cli("import")
    assert result.exit_code == 0, result.output
    assert "0 member setting(s) observed from GetRun (2 unknown" in result.stdout
    for setting_id, (entry, observations) in members(ledger_path).items():
        (seen,) = [o for o in observations if o["source"] == SOURCE]
        assert "settings" not in seen["body"]  # no guess
        assert seen["body"]["unknown"]["code"] == "AccessDeniedException"
        assert seen["body"]["run"] == {"id": runs[setting_id], "uuid": entry.run_uuid}
    shown = run_cli("show", runs["S1"])
    assert "own settings unknown (GetRun: AccessDeniedException: injected fault: error)" in shown.stdout
    assert "only the batch's default setting is recorded" in shown.stdout
    state = json.loads(run_cli("show", runs["S1"], "--json").stdout)["member_settings"]
    assert state["state"] == "unknown" and "AccessDeniedException" in state["reason"] and "settings" not in state
    assert state["from"] == "GetRun" and state["observed_at"] == [
        o for o in members(ledger_path)["S1"][1] if o["source"] == SOURCE][-1]["observed_at"]
    diff = json.loads(run_cli("diff", runs["S0"], runs["S1"], "--json").stdout)
    assert any(n.startswith("A: own settings unknown (GetRun: AccessDeniedException") for n in diff["notes"])
    assert diff["a"]["settings"]["state"] == "unknown"
    out = tmp_path / "export"
    assert run_cli("export", batch_id, "-f", "methods", "-o", out).exit_code == 0
    text = (out / "samples.csv").read_text()  # -f methods: the bundle is the directory
    assert text.count("own settings unknown (GetRun: AccessDeniedException") == 2

    assert "run settings 0 of 2 observed from GetRun, 2 unknown, 0 not asked yet" in run_cli("show", batch_id).stdout
    assert json.loads(run_cli("show", batch_id, "--json").stdout)["member_settings"] == {
        "runs": 2, "observed": 0, "unknown": 2, "not_asked": 0}

    # refused again for the same reason: nothing new is recorded
    before = counts(ledger_path)
    aws_env.inject("error", "GetRun", count=2, code="AccessDeniedException")
    again = json.loads(run_cli("refresh", batch_id, "--json").stdout)[0]
    assert again["settings_observed"] == 0 and again["settings_unknown"] == 2
    assert counts(ledger_path) == before
    # allowed now: a refresh learns them
    learned = run_cli("refresh", batch_id)
    assert learned.exit_code == 0, learned.output
    assert "2 member setting(s) observed from GetRun" in learned.stdout
    state = json.loads(run_cli("show", runs["S1"], "--json").stdout)["member_settings"]
    assert state["state"] == "observed" and state["settings"]["priority"] == 7
    assert "run settings 2 of 2 observed from GetRun, 0 unknown" in run_cli("show", batch_id).stdout
    assert run_cli("verify", "--no-remote").exit_code == 0


def test_a_deleted_run_or_throttling_is_unknown_and_a_gone_run_is_not_asked_again(aws_env, ledger_path, git_repo,
                                                                                 run_cli, tmp_path):
    aws_env.batch_rate = 100
    batch_id = start_outside(aws_env, tmp_path, "outside", [cohort_setting("S0"), cohort_setting("S1")])
    aws_env.advance(200)
    service = omics_client(aws_env)
    runs = {r["runSettingId"]: r["runId"] for r in service.list_runs_in_batch(batchId=batch_id)["runs"]}
    service.delete_run(id=runs["S0"])
    aws_env.inject("throttle", "GetRun", count=3)  # every attempt botocore makes (AWS_MAX_ATTEMPTS=3) for one run

    assert run_cli("import").exit_code == 0, "import"
    found = members(ledger_path)
    gone = [o for o in found["S0"][1] if o["source"] == SOURCE]
    assert [o["body"]["unknown"]["code"] for o in gone] == ["ResourceNotFoundException"]
    codes = [o["body"].get("unknown", {}).get("code") for o in found["S1"][1] if o["source"] == SOURCE]
    # S1's three attempts may have met the throttling, or some of them went to S0's call
    assert codes in (["ThrottlingException"], [None])

    asked = len(aws_env.requests)
    assert run_cli("refresh", batch_id).exit_code == 0
    called = [r["params"].get("id") for r in aws_env.requests[asked:] if r["operation"] == "GetRun"]
    assert runs["S0"] not in called  # deleted: asking again cannot tell more
    state = json.loads(run_cli("show", runs["S1"], "--json").stdout)["member_settings"]
    assert state["state"] == "observed" and state["settings"]["parameters"]["sample_name"] == "S1"
    state = json.loads(run_cli("show", runs["S0"], "--json").stdout)["member_settings"]
    assert state["state"] == "unknown" and "ResourceNotFoundException" in state["reason"]


def test_runs_of_a_batch_deleted_before_the_import_are_single_imports_that_name_their_batch(
        aws_env, ledger_path, git_repo, run_cli, tmp_path):
    aws_env.batch_rate = 100
    batch_id = start_outside(aws_env, tmp_path, "gone", [cohort_setting("S0"), cohort_setting("S1")])
    aws_env.advance(200)
    service = omics_client(aws_env)
    runs = {r["runSettingId"]: r["runId"] for r in service.list_runs_in_batch(batchId=batch_id)["runs"]}
    service.delete_batch(batchId=batch_id)

    result = run_cli("import", "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["batches"]["listed"] == 0
    assert set(runs.values()) <= {item["run_id"] for item in printed["imported"]}  # with the emulator's seed run
    with Ledger.open(ledger_path, create=False) as ledger:
        found = ledger.entries()
    assert {e.kind for e in found} == {"import"}
    assert {e.run_id for e in found if e.record["source_run"].get("batchId") == batch_id} == set(runs.values())

    listed = run_cli("log")
    assert listed.exit_code == 0
    lines = [line for line in listed.stdout.splitlines() if any(run in line for run in runs.values())]
    assert len(lines) == 2 and all(f"(ran in batch {batch_id})" in line for line in lines)
    as_json = json.loads(run_cli("log", "--json").stdout)
    assert {item["run_id"]: item.get("ran_in_batch") for item in as_json if item.get("ran_in_batch")} == {
        run_id: batch_id for run_id in runs.values()}
    assert [line for line in listed.stdout.splitlines() if "ran in batch" in line] == lines
    shown = run_cli("show", runs["S1"])
    assert f"ran in batch {batch_id} (GetRun's batchId); that batch is not in this ledger" in shown.stdout
    assert json.loads(run_cli("show", runs["S1"], "--json").stdout)["ran_in_batch"] == batch_id
    assert run_cli("verify", "--no-remote").exit_code == 0


def test_a_single_run_started_alone_names_no_batch(aws_env, ledger_path, git_repo, run_cli):
    alone = omics_client(aws_env).start_run(
        workflowId=WORKFLOW, roleArn=ROLE, outputUri="s3://cohort-bucket/single/", name="single", requestId="one",
        parameters={**DEFAULT["parameters"], "sample_name": "X", "input_cram": "s3://cohort-bucket/crams/X.cram"})
    assert run_cli("import").exit_code == 0
    assert "ran in batch" not in run_cli("log").stdout
    shown = json.loads(run_cli("show", alone["id"], "--json").stdout)
    assert "ran_in_batch" not in shown and "member_settings" not in shown


def test_what_get_run_says_is_untrusted_text(aws_env, ledger_path, git_repo, run_cli, tmp_path):
    hostile = "S1\u202eevil\x1b[2J\x9b"
    s1 = cohort_setting("S1")
    s1["parameters"] = {**s1["parameters"], "sample_name": hostile}
    aws_env.batch_rate = 100
    batch_id = start_outside(aws_env, tmp_path, "outside", [cohort_setting("S0"), s1])
    aws_env.advance(200)
    runs = {r["runSettingId"]: r["runId"] for r in omics_client(aws_env).list_runs_in_batch(batchId=batch_id)["runs"]}
    assert run_cli("import").exit_code == 0
    state = json.loads(run_cli("show", runs["S1"], "--json").stdout)["member_settings"]
    assert state["settings"]["parameters"]["sample_name"] == hostile  # recorded exactly

    for printed in (run_cli("show", runs["S1"]).stdout, run_cli("diff", runs["S0"], runs["S1"]).stdout):
        assert not any(ch in printed for ch in "\u202e\x1b\x9b")
    # JSON's own escape for ESC, runlog's for the bidi override and the C1 control: visible, one line
    assert '"S1\\u202eevil\\u001b[2J\\x9b"' in run_cli("diff", runs["S0"], runs["S1"]).stdout
    out = tmp_path / "export"
    assert run_cli("export", batch_id, "-f", "methods", "-o", out, "--license", "CC-BY-4.0").exit_code == 0
    assert not any(ch in (out / "methods.md").read_text() for ch in "\u202e\x1b\x9b")


def test_settings_too_large_to_keep_are_unknown_and_say_why():
    from runlog import membersettings

    run = {"id": "1", "uuid": "u", "name": "big", "parameters": {"blob": "x" * (membersettings.MAX_SETTINGS_BYTES + 1)},
           "tags": {"a": "b"}, "runOutputUri": "s3://b/out/1"}
    body = membersettings.settings_from_run(run)
    assert "settings" not in body and body["unknown"]["code"] == "TooLarge"
    assert str(membersettings.MAX_SETTINGS_BYTES) in body["unknown"]["message"]
    member = {"kind": "member", "warnings": [membersettings.unknown_warning("s1")], "request": {"name": "default"},
              "outcome": {"status": "submitted"}, "batch": {"run_setting_id": "s1"}}
    known = membersettings.known_settings(member, [{"source": membersettings.SOURCE, "observed_at": "t", "body": body}])
    assert known.state == "unknown" and "TooLarge" in (known.reason or "")
    small = membersettings.settings_from_run({**run, "parameters": {"blob": "x"}, "workflowType": "PRIVATE"})
    assert small["settings"] == {"name": "big", "parameters": {"blob": "x"}, "runTags": {"a": "b"}}
    assert small["runOutputUri"] == "s3://b/out/1"


def test_only_the_warning_of_unknown_own_settings_makes_a_member_ask_get_run():
    from runlog import batch, membersettings

    response = {"id": "9", "arn": "arn:aws:omics:us-west-2:123456789012:runBatch/9", "uuid": "b-uuid"}
    record = {"created": "2026-11-26T00:00:00+00:00", "runlog_version": "0", "git": {"unknown": "x"},
              "caller": {"unknown": "x"}, "aws": {"region": "us-west-2"}, "request": {"defaultRunSetting": DEFAULT},
              "outcome": {"status": "submitted", "response": response}}
    item = {"runSettingId": "s1", "runId": "1001", "runInternalUuid": "r-uuid", "runArn": "arn:aws:omics:run/1001"}
    unknown = batch._member(record, "a" * 64, item, None)
    known = batch._member(record, "a" * 64, item, {"runSettingId": "s1", "parameters": {"sample_name": "s1"}})
    assert membersettings.needs_settings(unknown) and not membersettings.needs_settings(known)
    # another warning on a member whose record holds its settings does not make it "unknown"
    other = {**known, "warnings": ["the settings file was listed late"]}
    assert not membersettings.needs_settings(other)
    assert membersettings.known_settings(other, []).state == "recorded"
    assert membersettings.known_settings(unknown, []).state == "unknown"
    # the warning of another run setting does not count either
    assert not membersettings.needs_settings({**unknown, "batch": {**unknown["batch"], "run_setting_id": "s2"}})


def test_refresh_observes_the_members_recorded_after_the_import(aws_env, ledger_path, git_repo, run_cli, tmp_path):
    aws_env.batch_rate = 1  # one run a second: the import sees the batch part way
    batch_id = start_outside(aws_env, tmp_path, "slow", [cohort_setting(f"S{n}") for n in range(4)])
    aws_env.advance(12.5)  # two runs submitted so far

    result = run_cli("import", "--json")
    assert result.exit_code == 0, result.output
    (item,) = json.loads(result.stdout)["batches"]["imported"]
    first = item["members_added"]
    assert 0 < first < 4 and item["settings_observed"] == first

    aws_env.advance(300)
    refreshed = run_cli("refresh", batch_id)
    assert refreshed.exit_code == 0, refreshed.output
    assert f"{4 - first} new member record(s)" in refreshed.stdout
    assert f"{4 - first} member setting(s) observed from GetRun" in refreshed.stdout
    found = members(ledger_path)
    assert sorted(found) == ["S0", "S1", "S2", "S3"]
    for setting_id, (_, observations) in found.items():
        (seen,) = [o for o in observations if o["source"] == SOURCE]
        assert seen["body"]["settings"]["parameters"]["sample_name"] == setting_id


def test_a_batch_submitted_through_runlog_asks_get_run_for_nothing(aws_env, ledger_path, git_repo, run_cli):
    aws_env.batch_rate = 100
    submitted = run_cli("submit-batch", "--batch-name", "ours", "--default-run-setting", json.dumps(DEFAULT),
                        "--batch-run-settings", json.dumps({"inlineSettings": two_samples()}), "--query", "id",
                        "--output", "text")
    assert submitted.exit_code == 0, submitted.output
    batch_id = submitted.stdout.strip()
    aws_env.advance(200)
    asked = len(aws_env.requests)
    refreshed = run_cli("refresh", batch_id, "--json")
    assert refreshed.exit_code == 0, refreshed.output
    (change,) = json.loads(refreshed.stdout)
    assert change["members_added"] == 2 and "settings_observed" not in change
    assert not [r for r in aws_env.requests[asked:] if r["operation"] == "GetRun"]
    for setting_id, (entry, observations) in members(ledger_path).items():
        assert not [o for o in observations if o["source"] == SOURCE]
        assert entry.record["request"]["parameters"]["sample_name"] == setting_id  # its record holds them
        shown = json.loads(run_cli("show", entry.run_id, "--json").stdout)
        assert "member_settings" not in shown
    assert "member_settings" not in json.loads(run_cli("show", batch_id, "--json").stdout)
    assert "run settings" not in run_cli("show", batch_id).stdout
    out = run_cli("diff", *(e.run_id for e, _ in members(ledger_path).values()), "--json")
    assert json.loads(out.stdout)["notes"] == []


def test_a_settings_file_runlog_could_not_read_is_learned_from_get_run(s3_emulator, s3_server, ledger_path,
                                                                      git_repo, run_cli, monkeypatch):
    from helpers import S3Proxy, proxy_in_front

    s3_server.create_bucket(Bucket="cohort-bucket")
    s3_server.put_object(Bucket="cohort-bucket", Key="cohort/settings.json", Body=json.dumps(two_samples()).encode())
    s3_emulator.batch_rate = 100
    uri = "s3://cohort-bucket/cohort/settings.json"
    with proxy_in_front(S3Proxy, s3_server, monkeypatch) as front:
        front.deny = True  # runlog may not read the bucket; the service (the emulator, reading moto) may
        submitted = run_cli("submit-batch", "--batch-name", "denied", "--default-run-setting", json.dumps(DEFAULT),
                            "--batch-run-settings", json.dumps({"s3UriSettings": uri}))
    assert submitted.exit_code == 0, submitted.output
    assert (f"runlog: warning: settings file {uri} not read (AccessDenied: Access Denied); the cohort is not in "
            "the record and its runs are not checked") in submitted.stderr
    batch_id = json.loads(submitted.stdout)["id"]
    with Ledger.open(ledger_path, create=False) as ledger:
        (batch,) = [e for e in ledger.entries() if e.kind == "batch"]
    assert batch.record["batch"]["settings_file"] == {"uri": uri, "error": {"code": "AccessDenied",
                                                                           "message": "Access Denied"}}

    # the members' records hold the default alone; refresh asks GetRun what each ran with
    s3_emulator.advance(200)
    refreshed = run_cli("refresh", batch_id)
    assert refreshed.exit_code == 0, refreshed.output
    assert "2 new member record(s)" in refreshed.stdout
    assert "2 member setting(s) observed from GetRun" in refreshed.stdout
    runs = {r["runSettingId"]: r["runId"] for r in omics_client(s3_emulator).list_runs_in_batch(batchId=batch_id)["runs"]}
    for setting_id, (entry, observations) in members(ledger_path).items():
        assert entry.record["request"]["parameters"] == DEFAULT["parameters"]
        (seen,) = [o for o in observations if o["source"] == SOURCE]
        assert seen["body"]["settings"]["parameters"]["sample_name"] == setting_id
    assert "run settings 2 of 2 observed from GetRun, 0 unknown, 0 not asked yet" in run_cli("show", batch_id).stdout
    assert "settings observed from GetRun at " in run_cli("show", runs["S1"]).stdout
    asked = len(s3_emulator.requests)
    assert run_cli("refresh", batch_id).exit_code == 0
    assert not [r for r in s3_emulator.requests[asked:] if r["operation"] == "GetRun"]  # all known: none asked

    # the batch cannot be replayed from a file it never read, whole or in part: one line each
    whole = run_cli("replay", batch_id)
    assert whole.exit_code == 2 and len(whole.stderr.strip().splitlines()) == 1
    assert f"batch {batch_id}'s settings file was not read at submission" in whole.stderr
    part = run_cli("replay", batch_id, "--only", "S1")
    assert part.exit_code == 2 and len(part.stderr.strip().splitlines()) == 1, part.stderr
    assert (f"runlog: error: batch {batch_id}'s settings file {uri} could not be read at submission "
            "(AccessDenied: Access Denied): its runs' settings were not recorded") in part.stderr
    assert "`runlog replay RUN_ID` replays one of its runs from the settings GetRun reported" in part.stderr
    # one member is replayed from what GetRun reported (the analysis repository is as recorded: no drift)
    single = run_cli("replay", runs["S1"])
    assert single.exit_code == 0, single.output
    (call,) = [r["params"] for r in s3_emulator.requests if r["operation"] == "StartRun"]
    assert call["parameters"]["ref_fasta"] == "s3://cohort-bucket/ref/other.fasta" and call["priority"] == 7
    assert [r for r in s3_emulator.requests if r["operation"] == "StartRunBatch"][1:] == []
    assert run_cli("verify", "--no-remote").exit_code == 0
