"""`runlog refresh` records what GetRun says when it changes, compared with what GetRun said
last time (not with the status that ranks first: a final one). The emulator over HTTP, a
real ledger file, the CLI."""

from __future__ import annotations

import json

from helpers import SEED_1
from runlog.ledger import Ledger


def _getrun_statuses(ledger_path, address: str) -> list[str]:
    with Ledger.open(ledger_path, create=False) as ledger:
        return [o["status"] for o in ledger.observations(address) if o["source"] == "GetRun"]


def test_a_service_going_back_from_completed_is_recorded_once_per_change(aws_env, ledger_path, git_repo, run_cli):
    """A service that answers RUNNING after COMPLETED (a bug on its side) was recorded again at
    every `refresh --all`: the record's status stays COMPLETED (a final status ranks first), and
    each RUNNING answer differed from it. Now each answer is compared with GetRun's last one."""
    submitted = run_cli(*SEED_1)
    assert submitted.exit_code == 0, submitted.output
    run_id = json.loads(submitted.stdout)["id"]
    aws_env.advance(3600)
    assert run_cli("refresh", "--all").exit_code == 0
    with Ledger.open(ledger_path, create=False) as ledger:
        address = ledger.resolve(run_id).address
    assert _getrun_statuses(ledger_path, address) == ["COMPLETED"]
    aws_env.answer_run(run_id, status="RUNNING")
    for _ in range(3):
        assert run_cli("refresh", "--all").exit_code == 0
    assert _getrun_statuses(ledger_path, address) == ["COMPLETED", "RUNNING"]
    aws_env.answer_run(run_id, status="COMPLETED")
    for _ in range(2):
        assert run_cli("refresh", "--all").exit_code == 0
    assert _getrun_statuses(ledger_path, address) == ["COMPLETED", "RUNNING", "COMPLETED"]
    assert run_cli("verify", "--no-remote").exit_code == 0
