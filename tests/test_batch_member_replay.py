"""`runlog replay MEMBER` of a batch started without runlog: the member's record holds only
the batch's default setting, so the run is started again from the settings GetRun reported
for it (its member-settings observation), with drift checks and lineage to the member; when
those settings are unknown the replay is refused with the reason and the fixes, unless
--default-only asks for the default setting alone. An imported batch itself is not replayed.
The aws CLI and boto3 start the batches against the emulator over HTTP; real ledgers."""

from __future__ import annotations

import json

from helpers import COHORT_DEFAULT, aws_cli, cohort_setting, omics_client
from runlog.emulator.seed import WORKFLOWS
from runlog.ledger import Ledger

DEFAULT = {**COHORT_DEFAULT, "runTags": {"project": "cohort"}}
SOURCE = "MemberSettings"


# a default that is a whole run by itself (the per-sample parameters too): --default-only can start it
WHOLE_DEFAULT = {**DEFAULT, "parameters": {**DEFAULT["parameters"], "sample_name": "pooled",
                                           "input_cram": "s3://cohort-bucket/crams/pooled.cram"}}


def start_outside(emulator, tmp_path, settings: list[dict], default: dict = DEFAULT) -> str:
    """A batch started with the aws CLI, runlog not involved; returns its id once its runs exist."""
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"inlineSettings": settings}))
    emulator.batch_rate = 100
    started = aws_cli(emulator, "omics", "start-run-batch", "--batch-name", "outside", "--default-run-setting",
                      json.dumps(default), "--batch-run-settings", f"file://{path}")
    assert started.returncode == 0, started.stderr
    emulator.advance(200)
    return json.loads(started.stdout)["id"]


def two_samples() -> list[dict]:
    s0 = cohort_setting("S0")
    s1 = {**cohort_setting("S1"), "priority": 7, "runTags": {"sample": "S1"}}
    s1["parameters"] = {**s1["parameters"], "ref_fasta": "s3://cohort-bucket/ref/other.fasta"}
    return [s0, s1]


def run_ids(emulator, batch_id: str) -> dict[str, str]:
    return {r["runSettingId"]: r["runId"] for r in omics_client(emulator).list_runs_in_batch(batchId=batch_id)["runs"]}


def starts(emulator) -> list[dict]:
    """The StartRun requests the emulator received (their parameters as sent)."""
    return [r["params"] for r in emulator.requests if r["operation"] == "StartRun"]


def state(ledger_path) -> tuple[int, int, int]:
    with Ledger.open(ledger_path, create=False) as ledger:
        conn = ledger.conn
        return ledger.count(), *(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                                 for t in ("observations", "attempts"))


def member(ledger_path, run_id: str):
    with Ledger.open(ledger_path, create=False) as ledger:
        entry = ledger.resolve(run_id)
        return entry, [o for o in ledger.observations(entry.address) if o["source"] == SOURCE]


def replays(ledger_path) -> list[dict]:
    with Ledger.open(ledger_path, create=False) as ledger:
        return [e.record for e in ledger.entries() if e.kind == "replay"]


def one_line_error(result) -> str:
    assert result.stderr.startswith("runlog: error: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def test_a_member_of_an_imported_batch_replays_what_it_ran_with(aws_env, ledger_path, git_repo, run_cli, tmp_path):
    batch_id = start_outside(aws_env, tmp_path, two_samples())
    runs = run_ids(aws_env, batch_id)
    assert run_cli("import").exit_code == 0
    entry, (seen,) = member(ledger_path, runs["S1"])
    assert entry.record["request"]["parameters"] == DEFAULT["parameters"]  # the record: the default alone
    assert seen["body"]["run"]["digest"].startswith("sha256:")  # kept for the drift check

    result = run_cli("replay", runs["S1"], "--query", "id", "--output", "text")
    assert result.exit_code == 0, result.output
    new_id = result.stdout.strip()
    assert f"replaying the settings observed from GetRun at {seen['observed_at']}" in result.stderr
    assert "git: not applicable, the run's batch was started without runlog" in result.stderr
    assert "inputs: not checked, neither this member's record nor its batch's pins input identities" \
        in result.stderr
    assert "workflow: not checked" not in result.stderr  # against the digest GetRun reported
    assert "drift" not in result.stderr

    # what the emulator received: S1's own settings, not the batch's default
    (sent,) = starts(aws_env)
    assert sent["parameters"] == {**DEFAULT["parameters"], "sample_name": "S1",
                                  "input_cram": "s3://cohort-bucket/crams/S1.cram",
                                  "ref_fasta": "s3://cohort-bucket/ref/other.fasta"}
    assert sent["name"] == "align-S1" and sent["priority"] == 7 and sent["outputUri"] == DEFAULT["outputUri"]
    assert sent["roleArn"] == DEFAULT["roleArn"] and sent["workflowId"] == DEFAULT["workflowId"]
    assert sent["tags"] == {"project": "cohort", "sample": "S1", "runlog:replay-of": entry.run_uuid}
    assert sent["requestId"] and "runId" not in sent

    (replayed,) = replays(ledger_path)
    assert replayed["outcome"]["response"]["id"] == new_id
    assert replayed["lineage"]["replay_of"] == {"record": entry.address, "run_uuid": entry.run_uuid,
                                                "run_id": runs["S1"], "run_arn": entry.record["outcome"]["response"]["arn"]}
    assert replayed["lineage"]["mode"] == "request" and replayed["lineage"]["overrides"] == {}
    assert replayed["lineage"]["settings"] == {"from": "GetRun", "observed_at": seen["observed_at"],
                                               "digest": seen["body"]["run"]["digest"]}
    assert replayed["request"]["parameters"] == sent["parameters"]

    shown = run_cli("show", new_id)
    assert f"run {runs['S1']}, the settings observed from GetRun at {seen['observed_at']})" in shown.stdout
    assert f"(run {new_id})" in run_cli("show", runs["S1"]).stdout  # replayed by, on the member's side
    assert run_cli("verify", "--no-remote").exit_code == 0  # the record (lineage.settings) fits the schema


def test_set_dry_run_and_json_work_for_an_imported_member(aws_env, ledger_path, git_repo, run_cli, tmp_path):
    batch_id = start_outside(aws_env, tmp_path, two_samples())
    runs = run_ids(aws_env, batch_id)
    assert run_cli("import").exit_code == 0
    before = state(ledger_path)

    dry = run_cli("replay", runs["S1"], "--dry-run", "--set", "sample_name=S1-retry", "--priority", "9")
    assert dry.exit_code == 0, dry.output
    plan = json.loads(dry.stdout)
    assert plan["request"]["parameters"]["sample_name"] == "S1-retry"
    assert plan["request"]["parameters"]["ref_fasta"] == "s3://cohort-bucket/ref/other.fasta"  # its own
    assert plan["request"]["priority"] == 9 and plan["request"]["name"] == "align-S1"
    assert plan["overrides"] == {"parameters": {"sample_name": "S1-retry"}, "members": {"priority": 9}}
    assert plan["settings"]["from"] == "GetRun"
    assert any("settings observed from GetRun" in n for n in plan["notes"])
    assert starts(aws_env) == [] and state(ledger_path) == before  # nothing sent, nothing written

    sent = run_cli("replay", runs["S1"], "--set", "sample_name=S1-retry", "--json")
    assert sent.exit_code == 0, sent.output
    printed = json.loads(sent.stdout)
    (replayed,) = replays(ledger_path)
    assert printed["response"]["id"] == replayed["outcome"]["response"]["id"]
    with Ledger.open(ledger_path, create=False) as ledger:
        assert ledger.resolve(printed["record"]).record == replayed
    (call,) = starts(aws_env)
    assert call["parameters"]["sample_name"] == "S1-retry" and call["parameters"]["input_cram"].endswith("S1.cram")
    assert replayed["lineage"]["overrides"] == {"parameters": {"sample_name": "S1-retry"}}


def test_a_changed_workflow_is_drift_against_the_digest_get_run_reported(aws_env, ledger_path, git_repo, run_cli,
                                                                        tmp_path):
    batch_id = start_outside(aws_env, tmp_path, two_samples())
    runs = run_ids(aws_env, batch_id)
    assert run_cli("import").exit_code == 0
    (seed,) = [w for w in WORKFLOWS if w["owner"] is None and w["id"] == DEFAULT["workflowId"]]
    aws_env.add_workflow(seed["id"], "cram-to-bam-v2", template=seed["template"], versions=seed["versions"])

    refused = run_cli("replay", runs["S0"])
    assert refused.exit_code == 3, refused.output
    assert "runlog: warning: drift: workflow digest changed: sha256:" in refused.stderr
    assert starts(aws_env) == [] and replays(ledger_path) == []
    allowed = run_cli("replay", runs["S0"], "--allow-drift")
    assert allowed.exit_code == 0, allowed.output
    (replayed,) = replays(ledger_path)
    assert [d["kind"] for d in replayed["lineage"]["drift"]] == ["workflow"]
    assert replayed["lineage"]["drift"][0]["recorded"] == replayed["lineage"]["settings"]["digest"]


def test_unknown_settings_are_refused_with_why_and_the_fixes(aws_env, ledger_path, git_repo, run_cli, tmp_path):
    batch_id = start_outside(aws_env, tmp_path, two_samples(), WHOLE_DEFAULT)
    runs = run_ids(aws_env, batch_id)
    aws_env.inject("error", "GetRun", count=2, code="AccessDeniedException")
    assert run_cli("import").exit_code == 0
    before = state(ledger_path)

    for extra in ([], ["--dry-run"]):
        refused = run_cli("replay", runs["S1"], *extra)
        assert refused.exit_code == 2, refused.output
        line = one_line_error(refused)
        assert f"run {runs['S1']} (run setting 'S1' of batch {batch_id})" in line
        assert "own settings are unknown (GetRun: AccessDeniedException: injected fault: error)" in line
        assert f"`runlog refresh {batch_id}` asks GetRun again" in line
        assert f"`runlog replay {runs['S1']} --native`" in line
        assert f"`runlog replay {runs['S1']} --default-only`" in line
    assert starts(aws_env) == [] and state(ledger_path) == before

    # asked for explicitly: the record's default setting alone, and the record says so
    chosen = run_cli("replay", runs["S1"], "--default-only", "--query", "id", "--output", "text")
    assert chosen.exit_code == 0, chosen.output
    assert "replaying its batch's default setting alone, as asked" in chosen.stderr
    (sent,) = starts(aws_env)
    assert sent["parameters"] == WHOLE_DEFAULT["parameters"] and "priority" not in sent and "name" not in sent
    (replayed,) = replays(ledger_path)
    assert replayed["lineage"]["settings"] == {
        "from": "default", "reason": "its own settings are unknown: GetRun: AccessDeniedException: injected fault: error"}
    shown = run_cli("show", chosen.stdout.strip())
    assert "its batch's default setting alone (--default-only)" in shown.stdout

    # once refresh has learned them, the plain replay sends what the run ran with
    assert run_cli("refresh", batch_id).exit_code == 0
    again = run_cli("replay", runs["S1"])
    assert again.exit_code == 0, again.output
    assert starts(aws_env)[-1]["parameters"]["ref_fasta"] == "s3://cohort-bucket/ref/other.fasta"
    assert run_cli("verify", "--no-remote").exit_code == 0


def test_a_deleted_run_offers_only_the_default_setting(aws_env, ledger_path, git_repo, run_cli, tmp_path):
    batch_id = start_outside(aws_env, tmp_path, two_samples())
    runs = run_ids(aws_env, batch_id)
    omics_client(aws_env).delete_run(id=runs["S0"])
    assert run_cli("import").exit_code == 0
    refused = run_cli("replay", runs["S0"])
    assert refused.exit_code == 2, refused.output
    line = one_line_error(refused)
    assert "GetRun: ResourceNotFoundException" in line and "--default-only" in line
    assert "--native" not in line and "runlog refresh" not in line  # the run is gone: neither can help
    assert starts(aws_env) == []


def test_a_member_whose_submission_failed_offers_only_the_default_setting(aws_env, ledger_path, git_repo, run_cli,
                                                                         tmp_path):
    aws_env.batch_fault("start", reason="ValidationException", message="bad input", run_setting_ids=["S1"])
    batch_id = start_outside(aws_env, tmp_path, two_samples(), WHOLE_DEFAULT)
    assert run_cli("import").exit_code == 0
    with Ledger.open(ledger_path, create=False) as ledger:
        (failed,) = [e for e in ledger.entries() if e.kind == "member" and not e.run_id]
    refused = run_cli("replay", failed.address[:12])
    assert refused.exit_code == 2, refused.output
    line = one_line_error(refused)
    assert f"run (none) (run setting 'S1' of batch {batch_id})" in line
    assert "its submission failed: no run, so GetRun cannot tell" in line
    assert f"`runlog replay {failed.address[:12]} --default-only`" in line
    assert "--native" not in line and "runlog refresh" not in line
    chosen = run_cli("replay", failed.address[:12], "--default-only")
    assert chosen.exit_code == 0, chosen.output
    (sent,) = starts(aws_env)
    assert sent["parameters"] == WHOLE_DEFAULT["parameters"]
    (replayed,) = replays(ledger_path)
    assert replayed["lineage"]["replay_of"]["record"] == failed.address
    assert replayed["lineage"]["replay_of"]["run_id"] is None


def test_default_only_where_it_does_not_apply_is_refused(aws_env, ledger_path, git_repo, run_cli, tmp_path):
    batch_id = start_outside(aws_env, tmp_path, two_samples())
    runs = run_ids(aws_env, batch_id)
    assert run_cli("import").exit_code == 0
    both = run_cli("replay", runs["S0"], "--default-only", "--native")
    assert both.exit_code == 2 and "--default-only and --native" in one_line_error(both)
    whole = run_cli("replay", batch_id, "--default-only")
    assert whole.exit_code == 2 and "REF names a batch" in one_line_error(whole)

    submitted = run_cli("submit-batch", "--batch-name", "ours", "--default-run-setting", json.dumps(DEFAULT),
                        "--batch-run-settings", json.dumps({"inlineSettings": [cohort_setting("T0")]}),
                        "--query", "id", "--output", "text")
    assert submitted.exit_code == 0, submitted.output
    aws_env.advance(200)
    assert run_cli("refresh", submitted.stdout.strip()).exit_code == 0
    ours = run_ids(aws_env, submitted.stdout.strip())["T0"]
    refused = run_cli("replay", ours, "--default-only")
    assert refused.exit_code == 2 and "holds its own settings" in one_line_error(refused)
    assert starts(aws_env) == []


def test_an_imported_batch_is_not_replayed_whole_or_in_part(aws_env, ledger_path, git_repo, run_cli, tmp_path):
    batch_id = start_outside(aws_env, tmp_path, two_samples())
    assert run_cli("import").exit_code == 0
    for extra in ([], ["--only", "S1"], ["--only", "failed"]):
        refused = run_cli("replay", batch_id, "--allow-drift", *extra)
        assert refused.exit_code == 2, refused.output
        line = one_line_error(refused)
        assert f"batch {batch_id} was imported (started without runlog)" in line
        assert "does not rebuild a cohort from what GetRun reported" in line
        assert "`runlog replay RUN_ID` replays one of its runs" in line
    assert len([r for r in aws_env.requests if r["operation"] == "StartRunBatch"]) == 1  # the aws CLI's
    assert starts(aws_env) == []


def test_the_python_api_replays_an_imported_member(aws_env, ledger_path, git_repo, tmp_path):
    import runlog
    from runlog.errors import UsageError

    batch_id = start_outside(aws_env, tmp_path, two_samples())
    runs = run_ids(aws_env, batch_id)
    aws_env.inject("error", "GetRun", count=1, code="AccessDeniedException")
    with runlog.Runlog(ledger_path) as rl:
        rl.import_runs()
        (missing,) = [s for s in ("S0", "S1") if not _known(ledger_path, runs[s])]  # one GetRun was refused
        (present,) = {"S0", "S1"} - {missing}
        observed = rl.replay(runs[present], dry_run=True).plan
        try:
            rl.replay(runs[missing], dry_run=True)
        except UsageError as exc:
            assert f"`replay('{runs[missing]}', default_only=True)`" in exc.message
        else:
            raise AssertionError("an unknown member's replay was not refused")
        plan = rl.replay(runs[missing], dry_run=True, default_only=True).plan
    assert observed.request["parameters"]["sample_name"] == present and observed.lineage["settings"]["from"] == "GetRun"
    assert plan.request["parameters"] == DEFAULT["parameters"] and plan.lineage["settings"]["from"] == "default"
    assert starts(aws_env) == []


def _known(ledger_path, run_id: str) -> bool:
    _, seen = member(ledger_path, run_id)
    return any("settings" in o["body"] for o in seen)


def test_the_services_text_in_a_refusal_and_a_note_is_made_safe(tmp_path):
    from runlog import batch, membersettings
    from runlog.errors import UsageError
    from runlog.replay import make_plan

    hostile = "S1\u202eevil\x1b[2J"
    response = {"id": "9", "arn": "arn:aws:omics:us-west-2:123456789012:runBatch/9", "uuid": "b-uuid"}
    outline = {"created": "2026-11-26T00:00:00.000Z", "runlog_version": "0", "caller": {"unknown": "x"},
               "git": {"state": "unknown", "reason": "started without runlog"},
               "aws": {"region": "us-west-2", "profile": None, "endpoint_url": None},
               "request": {"defaultRunSetting": DEFAULT}, "outcome": {"status": "submitted", "response": response}}
    item = {"runSettingId": hostile, "runId": "1001", "runInternalUuid": "r-uuid",
            "runArn": "arn:aws:omics:us-west-2:123456789012:run/1001"}
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        entry, _ = ledger.add_record(batch._member(outline, "a" * 64, item, None))
        entry = ledger.resolve(entry.address)
    refused = [{"source": membersettings.SOURCE, "observed_at": "2026-11-26T01:00:00Z",
                "body": {"from": "GetRun", "run": {"id": "1001", "uuid": "r-uuid"},
                         "unknown": {"code": "AccessDeniedException", "message": "no\nforged line\x9b"}}}]
    try:
        make_plan(entry, observations=refused)
    except UsageError as exc:
        message = exc.message
    else:
        raise AssertionError("an unknown member's replay was not refused")
    assert not any(ch in message for ch in "\u202e\x1b\x9b\n")
    assert "S1\\u202eevil\\x1b[2J" in message and "no\\nforged line\\x9b" in message
    plan = make_plan(entry, observations=refused, default_only=True)
    assert plan.lineage["settings"]["reason"].endswith("no\nforged line\x9b")  # recorded as it is
    assert not any(ch in "".join(plan.notes) for ch in "\u202e\x1b\x9b\n")
