"""Session 28: `runlog cancel --json` says a refusal and an unknown outcome on stdout, as it
records them, instead of printing nothing a script could read. Each test failed before."""

from __future__ import annotations

import json
import os

import pytest

from helpers import submit_cohort


def test_cancel_json_prints_what_it_recorded_when_the_service_refuses(aws_env, ledger_path, git_repo, run_cli):
    aws_env.batch_rate = 1
    batch_id = submit_cohort(run_cli, "S1", "S2", "S3")
    aws_env.advance(6)
    first = run_cli("cancel", batch_id, "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["action"] == "CancelRunBatch"
    refused = run_cli("cancel", batch_id, "--json")  # the batch is no longer running: the service refuses
    assert refused.exit_code == 1
    told = json.loads(refused.stdout)
    assert told["batch_id"] == batch_id and told["action"] == "CancelRunBatch" and told["outcome"] == "refused"
    assert told["status"] is None and "ConflictException" in told["error"]
    assert refused.stderr.startswith("runlog: error: ")  # the one line, as without --json
    observed = json.loads(run_cli("show", batch_id, "--json").stdout)["observations"]
    assert [o["body"].get("outcome") for o in observed if o["source"] == "CancelRunBatch"] == [None, "refused"]


def test_cancel_json_says_an_unknown_outcome_as_unknown(aws_env, ledger_path, git_repo, run_cli):
    aws_env.batch_rate = 1
    batch_id = submit_cohort(run_cli, "S1", "S2", "S3")
    aws_env.advance(6)
    aws_env.inject("error", operation="CancelRunBatch", phase="after", count=3)  # carried out, every answer lost
    lost = run_cli("cancel", batch_id, "--json")
    assert lost.exit_code == 1
    told = json.loads(lost.stdout)
    assert told["outcome"] == "unknown" and "InternalServerException" in told["error"]
    assert "outcome is unknown" in lost.stderr


def test_cancel_json_prints_nothing_for_what_it_did_not_ask(aws_env, ledger_path, git_repo, run_cli):
    aws_env.batch_rate = 1
    batch_id = submit_cohort(run_cli, "S1", "S2")
    aws_env.advance(12)
    assert run_cli("refresh", batch_id).exit_code == 0
    member = json.loads(run_cli("log", "--batch", batch_id, "--json").stdout)[0]["run_id"]
    not_batch = run_cli("cancel", member, "--json")
    assert not_batch.exit_code == 2 and not_batch.stdout == "" and "not a batch" in not_batch.stderr


def test_cancel_json_tells_its_own_outcome_not_a_concurrent_cancels(aws_env, ledger_path, git_repo, run_cli):
    """Review: `cancel --json` read back the newest observation of the action, which may be
    another process's. Here another `runlog cancel` is refused (and records it) while this
    one, accepted, waits on the GetBatch after it, which then fails: this one says accepted."""
    import os
    import subprocess
    import sys
    import threading
    import time

    aws_env.batch_rate = 1
    batch_id = submit_cohort(run_cli, "S1", "S2", "S3")
    aws_env.advance(6)
    aws_env.inject("latency", operation="GetBatch", seconds=3.0)
    aws_env.inject("error", operation="GetBatch", count=10)
    other: list[subprocess.CompletedProcess] = []

    def cancel_elsewhere() -> None:
        time.sleep(1.0)  # this cancel is accepted by then, and waits on its GetBatch
        other.append(subprocess.run([sys.executable, "-m", "runlog", "cancel", batch_id], capture_output=True,
                                    text=True, env=dict(os.environ), cwd=git_repo, timeout=60))

    elsewhere = threading.Thread(target=cancel_elsewhere)
    elsewhere.start()
    ours = run_cli("cancel", batch_id, "--json")
    elsewhere.join()
    assert other[0].returncode == 1 and "ConflictException" in other[0].stderr  # refused, and recorded
    assert ours.exit_code == 1
    told = json.loads(ours.stdout)
    assert told["outcome"] == "accepted" and "GetBatch" in told["error"] and "ConflictException" not in told["error"]
    observed = json.loads(run_cli("show", batch_id, "--json").stdout)["observations"]
    assert sorted(str(o["body"].get("outcome")) for o in observed if o["source"] == "CancelRunBatch") == \
        ["None", "refused"]


def test_the_emulator_writes_two_local_moments_that_compare_equal_apart():
    """Review: the emulator's timestamps, written once per moment, were cached by the
    datetime given; two local times of the repeated DST hour compare equal (fold aside) but
    are an hour apart, and the second was written as the first."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from runlog.emulator.protocol import _timestamp

    write = _timestamp(True)
    zone = ZoneInfo("America/New_York")
    first, second = (datetime(2026, 11, 1, 1, 30, tzinfo=zone, fold=fold) for fold in (0, 1))
    assert first == second  # as Python compares them
    assert (write(first), write(second)) == ("2026-11-01T05:30:00.000Z", "2026-11-01T06:30:00.000Z")


WRITE_COMMANDS = [("refresh",), ("recover",), ("cancel", "1234567"), ("watch", "1234567"), ("replay", "@1")]


@pytest.mark.parametrize("args", WRITE_COMMANDS, ids=[a[0] for a in WRITE_COMMANDS])
def test_commands_that_need_a_ledger_leave_an_empty_file_alone(tmp_path, run_cli, args, monkeypatch):
    """An empty file where the ledger should be (a truncated ledger, a wrong path) was made
    into a new, empty ledger by refresh and recover, which then said there was nothing to
    do (exit 0): the loss was hidden. Now they refuse it as the read commands do."""
    monkeypatch.chdir(tmp_path.parent)
    ledger = tmp_path / "ledger.db"
    ledger.write_bytes(b"")
    result = run_cli("--ledger", ledger, *args)
    assert result.exit_code == 2, result.output
    assert "is empty (0 bytes)" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert ledger.read_bytes() == b"" and sorted(os.listdir(tmp_path)) == ["ledger.db"]


def test_an_endless_resolve_timeout_is_refused_in_one_line(tmp_path, run_cli, monkeypatch):
    """Found by the fuzz: `--resolve-timeout 1e999` (infinity) passed the option's check and
    overflowed when the deadline was made (exit 70, internal error). The configuration
    file's numbers had no check at all (inf, nan, a negative number)."""
    monkeypatch.chdir(tmp_path)
    result = run_cli("submit", "--workflow-id", "1234567", "--resolve-timeout", "1e999")
    assert result.exit_code == 2 and "--resolve-timeout" in result.stderr and "3600" in result.stderr
    for line in ("resolve_timeout = inf", "resolve_timeout = nan", "resolve_timeout = -1",
                 "resolve_timeout = 7200", "max_object_mib = inf"):
        (tmp_path / ".runlog.toml").write_text(line + "\n")
        said = run_cli("log")
        assert said.exit_code == 2, (line, said.output)
        assert f"configuration key '{line.split()[0]}'" in said.stderr and "finite number" in said.stderr
        assert len(said.stderr.strip().splitlines()) == 1
