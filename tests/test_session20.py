"""Session 20's changes, each as a user sees it through the CLI against the emulator."""

from __future__ import annotations

import json

from helpers import COHORT_DEFAULT, ROLE, cohort_setting, records

MISSING = "s3://lab-data/pbmc/missing.csv"


def test_a_dry_run_says_its_warnings_are_what_the_record_would_hold(aws_env, bucket, ledger_path, git_repo,
                                                                    run_cli):
    """A warning is the record's own words ("…; recorded as such"). Before, `--dry-run`
    printed it as a real submission does, "recorded as such", just above "nothing was
    written". Now a dry run's line says it is what the record would hold; a real submission's
    line is unchanged, and the record keeps the same words either way."""
    params = {"input": MISSING, "protocol": "10XV3", "genome": "s3://lab-data/refs/"}
    args = ("submit", "--workflow-id", "7206765", "--role-arn", ROLE, "--output-uri", "s3://out/x/",
            "--parameters", json.dumps(params), "--endpoint-url", aws_env.endpoint_url)
    dry = run_cli(*args, "--dry-run")
    assert dry.exit_code == 0, dry.output
    (line,) = [line for line in dry.stderr.splitlines() if "not resolved" in line]
    assert line.startswith("runlog: warning the record would hold (dry run, not written): "), line
    assert MISSING in line
    planned = json.loads(dry.stdout)["record"]["warnings"]
    assert not ledger_path.exists()
    sent = run_cli(*args)
    assert sent.exit_code == 0, sent.output
    (line,) = [line for line in sent.stderr.splitlines() if "not resolved" in line]
    assert line.startswith("runlog: warning: ") and line.endswith("recorded as such"), line
    assert records(ledger_path)[0]["warnings"] == planned


def test_a_batch_dry_run_says_its_warnings_are_what_the_record_would_hold(aws_env, s3_server, ledger_path,
                                                                          git_repo, run_cli):
    """The same for `submit-batch --dry-run`: its inputs (absent from S3) are warned of as
    what the batch record would hold."""
    s3_server.create_bucket(Bucket="cohort-bucket")
    args = ("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT), "--batch-run-settings",
            json.dumps({"inlineSettings": [cohort_setting("S1"), cohort_setting("S2")]}))
    dry = run_cli(*args, "--dry-run")
    assert dry.exit_code == 0, dry.output
    (line,) = [line for line in dry.stderr.splitlines() if "not resolved" in line]
    assert line.startswith("runlog: warning the record would hold (dry run, not written): 5 input(s)"), line
    assert "nothing was written" in dry.stderr and not ledger_path.exists()
    sent = run_cli(*args)
    assert sent.exit_code == 0, sent.output
    assert any(line.startswith("runlog: warning: 5 input(s)") for line in sent.stderr.splitlines()), sent.stderr
