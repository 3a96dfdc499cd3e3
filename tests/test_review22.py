"""Review 22 (a hostile-user trial of cohorts), walked through the CLI against the emulator:
each problem found, as a test that failed before its fix."""

from __future__ import annotations

import json

import pytest

from helpers import COHORT_DEFAULT, cohort_setting, submit_cohort

# Characters HealthOmics' pattern for run names, runSettingIds and batch names refuses
# ([\p{L}||\p{M}||\p{Z}||\p{S}||\p{N}||\p{P}]+: every Unicode category but C, "Other"), beyond
# the C0 controls that were refused already: C1 controls (CSI, NEL), a bidi override, a
# private-use character and an unassigned code point.
REFUSED = {"x\x9b31m": "\\x9b", "x\x85y": "\\x85", "x\u202ey": "\\u202e", "x\ue000y": "\\ue000",
           "x\u0378y": "\\u0378"}


def _sent(emulator, operation: str) -> list:
    return [r for r in emulator.requests if r["operation"] == operation]


@pytest.mark.parametrize("where", ["runSettingId", "name", "--batch-name"])
@pytest.mark.parametrize("bad", list(REFUSED))
def test_a_c1_control_or_format_character_in_a_batch_is_refused_before_sending(
        bad, where, aws_env, ledger_path, git_repo, run_cli):
    """`submit-batch` refused a C0 control (ESC) in a runSettingId, a run's name or the batch's
    name with exit 2, as docs/batch.md promises for "a control character"; but a C1 control
    (`\\x9b`, the one-byte CSI; `\\x85`), a bidi override (`\\u202e`, category Cf) and the rest of
    Unicode's category C, which the model's pattern refuses as well, were sent (exit 0). Now
    every one is refused before anything is sent or written, in one line naming the run
    setting by its id (escaped) and the character, and saying to remove it."""
    setting = {**cohort_setting("S1"), **({where: bad} if where != "--batch-name" else {})}
    extra = ("--batch-name", bad) if where == "--batch-name" else ()
    refused = run_cli("submit-batch", *extra, "--default-run-setting", json.dumps(COHORT_DEFAULT),
                      "--batch-run-settings", json.dumps({"inlineSettings": [cohort_setting("S0"), setting]}))
    assert refused.exit_code == 2, refused.output
    (line,) = refused.stderr.strip().splitlines()
    assert bad not in line and REFUSED[bad] in line and "remove it" in line, line
    if where == "--batch-name":
        assert line.startswith("runlog: error: --batch-name:"), line
    else:
        ident = repr(setting["runSettingId"])[1:-1]  # as escaped in the message
        assert f"inlineSettings[1] (runSettingId '{ident}'): {where}:" in line, line
    assert not _sent(aws_env, "StartRunBatch") and not ledger_path.exists()


def test_a_c1_control_in_a_settings_file_and_a_run_name_is_refused(s3_server, s3_emulator, ledger_path, git_repo,
                                                                  run_cli):
    """The same rule for a settings file's run settings (checked by runlog: botocore never sees
    the file) and for a single run's `submit --name`."""
    s3_server.create_bucket(Bucket="cohort-bucket")
    for bad, shown in REFUSED.items():
        settings = [cohort_setting("S0"), {**cohort_setting("S1"), "name": bad}]
        s3_server.put_object(Bucket="cohort-bucket", Key="cohort/settings.json", Body=json.dumps(settings).encode())
        refused = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT), "--batch-run-settings",
                          json.dumps({"s3UriSettings": "s3://cohort-bucket/cohort/settings.json"}))
        assert refused.exit_code == 2, refused.output
        (line,) = refused.stderr.strip().splitlines()
        assert "item[1] (runSettingId 'S1'): name:" in line and shown in line and bad not in line, line
        single = run_cli("submit", "--workflow-id", "1234567", "--role-arn", COHORT_DEFAULT["roleArn"],
                         "--name", bad, "--output-uri", "s3://cohort-bucket/out/", "--parameters",
                         json.dumps({**COHORT_DEFAULT["parameters"], "sample_name": "S1",
                                     "input_cram": "s3://cohort-bucket/crams/S1.cram"}))
        assert single.exit_code == 2, single.output
        (line,) = single.stderr.strip().splitlines()
        assert line.startswith("runlog: error: --name:") and shown in line and bad not in line, line
    assert not _sent(s3_emulator, "StartRunBatch") and not _sent(s3_emulator, "StartRun")
    assert not ledger_path.exists()


def test_separators_and_marks_the_pattern_takes_are_still_sent(aws_env, ledger_path, git_repo, run_cli):
    """Category Z (a no-break space, an ideographic space) and marks are in the model's
    pattern: a name holding them is sent as before."""
    setting = {**cohort_setting("S1"), "name": "align\xa0S1\u3000e\u0301"}
    sent = run_cli("submit-batch", "--batch-name", "cohort\xa0one", "--default-run-setting",
                   json.dumps(COHORT_DEFAULT), "--batch-run-settings", json.dumps({"inlineSettings": [setting]}))
    assert sent.exit_code == 0, sent.output
    assert len(_sent(aws_env, "StartRunBatch")) == 1


REASON = "role cannot read s3://cohort-bucket/cohort/settings.json"


def test_a_batch_that_failed_as_a_whole_says_why(aws_env, ledger_path, git_repo, run_cli, tmp_path):
    """A batch GetBatch reports FAILED as a whole (its failureReason: the role cannot read the
    settings file, say) starts no runs. Before: `show B` said "GetBatch all counts 0" and no
    reason, `watch B` "FAILED: no runs", `watch --json` failures_count 0 with the reason only in
    get_batch; `export B` and `replay B --only failed` told to `runlog refresh B`, which can never
    help. Now `show` and `watch` print the reason on a line of their own (`batch_failure` in
    --json, beside the keys as they were), and `export` and `replay --only failed` say the batch
    itself FAILED, with the reason, instead of suggesting refresh."""
    aws_env.batch_rate = 100
    aws_env.batch_fault("batch", message=REASON)
    submitted = run_cli("submit-batch", "--batch-name", "cohort", "--default-run-setting", json.dumps(COHORT_DEFAULT),
                        "--batch-run-settings", json.dumps({"inlineSettings": [cohort_setting("S1"),
                                                                               cohort_setting("S2")]}))
    assert submitted.exit_code == 0, submitted.output
    batch_id = json.loads(submitted.stdout)["id"]
    aws_env.advance(200)
    watched = run_cli("watch", batch_id, "--interval", "0.1", "--timeout", "10")
    assert watched.exit_code == 1, watched.output
    assert f"  batch failed: ValidationException: {REASON}" in watched.stdout.splitlines(), watched.stdout
    as_json = json.loads(run_cli("watch", batch_id, "--json", "--timeout", "10").stdout)
    assert as_json["batch_failure"]["reason"] == f"ValidationException: {REASON}"
    assert as_json["failures_count"] == 0 and as_json["batch_status"] == "FAILED"  # the keys as they were
    shown = run_cli("show", batch_id)
    assert shown.exit_code == 0, shown.output
    (line,) = [line for line in shown.stdout.splitlines() if line.startswith("batch failed")]
    assert f"ValidationException: {REASON} (GetBatch at " in line, line
    facts = json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]
    assert facts["batch_failure"]["reason"] == f"ValidationException: {REASON}"
    for args in (("export", batch_id, "-o", tmp_path / "out", "--license", "CC-BY-4.0"),
                 ("replay", batch_id, "--only", "failed", "--dry-run")):
        refused = run_cli(*args)
        assert refused.exit_code == 2, refused.output
        (line,) = refused.stderr.strip().splitlines()
        assert f"batch {batch_id} itself FAILED" in line and REASON in line and "refresh" not in line, line
    assert not _sent(aws_env, "StartRunBatch")[1:]  # the one submit-batch sent


@pytest.mark.parametrize("code", ["ThrottlingException", "InternalServerException"])
def test_watching_a_batch_outlives_a_throttle_or_a_5xx(code, aws_env, ledger_path, git_repo, run_cli):
    """`runlog watch B`: one ListRuns poll throttled (or a 5xx) through botocore's retries ended
    the watch, exit 1, "ListRuns failed: ThrottlingException", where a single run's watch warns
    and asks again, as `watch --help` promises. Now a batch's watch does the same: one warning
    for the poll, the batch refreshed again at the next interval, and the watch ends as the
    batch does (every run COMPLETED: exit 0, each member recorded once)."""
    aws_env.batch_rate = 100
    batch_id = submit_cohort(run_cli, "S1", "S2")
    aws_env.advance(300)
    aws_env.faults.add("error", "ListRuns", code=code, count=3)  # every try of one poll (AWS_MAX_ATTEMPTS=3)
    watched = run_cli("watch", batch_id, "--interval", "0.1", "--timeout", "60")
    assert watched.exit_code == 0, watched.output
    warnings = [line for line in watched.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and f"ListRuns failed: {code}" in warnings[0] and "asking again" in warnings[0], \
        watched.stderr
    assert watched.stdout.splitlines()[0] == f"batch {batch_id} PROCESSED: COMPLETED 2", watched.stdout
    listed = run_cli("log", "--batch", batch_id, "--json")
    assert sorted(m["status"] for m in json.loads(listed.stdout)) == ["COMPLETED", "COMPLETED"]


def test_watching_a_batch_still_ends_on_a_refusal(aws_env, ledger_path, git_repo, run_cli):
    """A failure that does say something (AccessDenied) still ends the watch, exit 1, as before."""
    aws_env.batch_rate = 100
    batch_id = submit_cohort(run_cli, "S1")
    aws_env.advance(300)
    aws_env.faults.add("error", "ListRuns", code="AccessDeniedException")
    watched = run_cli("watch", batch_id, "--interval", "0.1", "--timeout", "60")
    assert watched.exit_code == 1, watched.output
    assert watched.stderr.strip().splitlines()[-1].startswith("runlog: error: ListRuns failed: AccessDeniedException")
    assert "asking again" not in watched.stderr
