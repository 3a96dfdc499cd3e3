"""Session 17's review of cohorts (issue 14), walked as a user through the CLI against the
emulator: what a user saw that was not true or not said, each as a failing test first."""

from __future__ import annotations

import json

from helpers import submit_cohort


def dry_run_selection(run_cli, *args) -> tuple[list[str], dict]:
    """The runSettingIds a `replay --dry-run` would start, and its whole answer."""
    replayed = run_cli("replay", *args, "--dry-run", "--allow-drift")
    assert replayed.exit_code == 0, replayed.output
    plan = json.loads(replayed.stdout)
    return [s["runSettingId"] for s in plan["request"]["batchRunSettings"]["inlineSettings"]], plan


def test_replay_only_failed_still_selects_runs_that_failed_before_their_runs_were_deleted(
        aws_env, ledger_path, git_repo, run_cli):
    """A lab cleans up a finished batch with `runlog cancel B --delete-runs` (DeleteRunBatch),
    then starts its failures again with `runlog replay B --only failed`. Before: the runs that
    had FAILED (or were CANCELLED) now had DELETED as their latest status, so only the failed
    submissions were selected and the failed runs silently left out. Now they are selected, as
    `export` already calls them FAILED."""
    aws_env.batch_rate = 100
    aws_env.batch_fault("run", run_setting_ids=["S2"], reason="OUT_OF_MEMORY")
    aws_env.batch_fault("start", run_setting_ids=["S3"], reason="ServiceQuotaExceededException")
    batch_id = submit_cohort(run_cli, "S1", "S2", "S3")
    aws_env.advance(300)
    assert run_cli("refresh", batch_id).exit_code == 0
    assert dry_run_selection(run_cli, batch_id, "--only", "failed")[0] == ["S2", "S3"]
    deleted = run_cli("cancel", batch_id, "--delete-runs")
    assert deleted.exit_code == 0, deleted.output
    aws_env.advance(30)
    assert run_cli("refresh", batch_id).exit_code == 0
    assert json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]["run_status"] == {"DELETED": 2}
    selected, _ = dry_run_selection(run_cli, batch_id, "--only", "failed")
    assert sorted(selected) == ["S2", "S3"]
