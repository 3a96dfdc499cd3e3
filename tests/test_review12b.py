"""Review 12b findings (what runlog does after a submission: watch, refresh, recover, import,
and the emulator's fidelity): each test fails on 4ea436f and shows one bug. The emulator over
HTTP, real ledger files, the CLI."""

from __future__ import annotations

import json

from helpers import SEED_1
from runlog.ledger import Ledger


def _submitted(run_cli) -> dict:
    submitted = run_cli(*SEED_1)
    assert submitted.exit_code == 0, submitted.output
    return json.loads(submitted.stdout)


# -- watch prints what GetRun says as text, escaped ------------------------------------------------

HOSTILE = "disk full\x1b]0;owned\x07\x1b[2J\u202elive\rFORGED"


def test_review12b_watch_escapes_the_status_and_failure_reason_it_prints(aws_env, ledger_path, git_repo, run_cli):
    """`runlog watch` printed GetRun's status (in its status line) and failureReason (in its
    last line) as the service sent them: an OSC sequence retitles the terminal, ESC[2J clears
    it, U+202E reverses what follows and a CR overwrites the line with a forged one. `refresh`,
    `log` and `show` escape them; watch now does too. The ledger keeps the text as sent."""
    run = _submitted(run_cli)
    aws_env.answer_run(run["id"], status="FAILED", failureReason=HOSTILE, statusMessage=HOSTILE)
    watched = run_cli("watch", run["id"], "--interval", "0.1", "--timeout", "5")
    assert watched.exit_code == 1, watched.output
    escaped = "disk full\\x1b]0;owned\\x07\\x1b[2J\\u202elive\\rFORGED"
    assert watched.stdout == f"run {run['id']} FAILED ({escaped})\n"
    assert watched.stderr == f"run {run['id']}: FAILED\n"
    aws_env.answer_run(run["id"], status="FAILED\x1b[2J\u202e")
    rewatched = run_cli("watch", run["id"], "--interval", "0.1", "--timeout", "0.1")
    assert rewatched.exit_code == 1
    assert rewatched.stderr.splitlines()[0] == f"run {run['id']}: FAILED\\x1b[2J\\u202e"
    assert "\x1b" not in rewatched.output and "\u202e" not in rewatched.output
    with Ledger.open(ledger_path, create=False) as ledger:
        bodies = [o["body"] for o in ledger.observations(ledger.resolve(run["id"]).address) if o["source"] == "GetRun"]
    assert bodies[0]["failureReason"] == HOSTILE  # recorded as the service said it

