"""Session 20: the cohort commands (refresh, watch, import, cancel, show, export, …) against
answers that never come, come twice or lie, through the CLI against the emulator. Each test
failed before the fix it names."""

from __future__ import annotations

import sqlite3

from helpers import submit_cohort


def _answer(emulator, operation: str, change) -> None:
    """The emulator's `operation` answered through `change(handler, params, region)`: a
    service whose answers lie."""
    handler = emulator.handlers[operation]
    emulator.handlers[operation] = lambda params, region: change(handler, params, region)


def _status_observations(ledger_path) -> list[tuple]:
    with sqlite3.connect(ledger_path) as conn:
        return conn.execute("SELECT record, status FROM observations WHERE source IN ('ListRuns', 'GetRun') "
                            "ORDER BY record, status").fetchall()


def test_a_run_listed_again_on_a_later_page_gets_one_status_observation(aws_env, ledger_path, git_repo, run_cli):
    """ListRuns pages that overlap (each repeats the last run of the page before, as an
    offset-paged listing does when runs are added while it is paged). Before: the repeated
    run's status change was recorded twice (the ledger did not show the first yet: its
    transaction was still open). Now each status once."""
    aws_env.batch_rate = 100
    batch_id = submit_cohort(run_cli, *[f"S{i}" for i in range(1, 8)])
    aws_env.advance(200)

    def overlapping(handler, params, region):
        token = int(params.get("startingToken") or 0)
        page = handler(dict(params, maxResults=2, startingToken=str(token - 1) if token else None), region)
        if "nextToken" in page:
            page["nextToken"] = str(token + 2)
        return page

    _answer(aws_env, "ListRuns", overlapping)
    refreshed = run_cli("refresh", batch_id)
    assert refreshed.exit_code == 0, refreshed.output
    assert "7 status change(s)" in refreshed.stdout, refreshed.stdout
    observed = _status_observations(ledger_path)
    assert len(observed) == len(set(observed)) == 7, observed
    assert run_cli("verify").exit_code == 0
