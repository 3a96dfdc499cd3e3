"""`runlog log`, `show`, `verify` and `recover` through the CLI, against real ledgers and the emulator."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from helpers import SEED_1, SEED_2, SEED_3, records
from runlog.ledger import Ledger


def test_log_lists_newest_first(three_runs, run_cli):
    result = run_cli("log")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["RECORD", "CREATED", "(UTC)"]
    assert [line.split()[0] for line in lines[1:]] == [e.address[:12] for e in three_runs]
    assert "cram-to-bam" in lines[3] and "7206765" in lines[1]
    as_json = json.loads(run_cli("log", "--json").stdout)
    assert [r["address"] for r in as_json] == [e.address for e in three_runs]
    assert {"run_id", "run_uuid", "status", "workflow_id", "name", "git_commit", "created"} <= set(as_json[0])
    assert len(json.loads(run_cli("log", "--json", "-n", "1").stdout)) == 1


def test_log_same_as_lists_identical_configurations(aws_env, ledger_path, git_repo, run_cli):
    for args in (SEED_2, SEED_3, SEED_2):
        assert run_cli(*args, "--endpoint-url", aws_env.endpoint_url).exit_code == 0
    same = json.loads(run_cli("log", "--json", "--same-as", "@1").stdout)
    assert len(same) == 2 and all(r["workflow_id"] == "1234567" for r in same)


def test_log_on_missing_ledger_is_empty_and_creates_nothing(ledger_path, run_cli):
    result = run_cli("log", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    assert not ledger_path.exists()
    assert "no ledger" in run_cli("log").stderr


def test_show_by_every_ref_form(three_runs, run_cli):
    entry = three_runs[1]
    response = entry.record["outcome"]["response"]
    for ref in (response["id"], response["uuid"], response["arn"], entry.address[:10], "@2"):
        result = run_cli("show", ref, "--json")
        assert result.exit_code == 0, (ref, result.output)
        shown = json.loads(result.stdout)
        assert shown["address"] == entry.address
        assert shown["record"] == entry.record
    text = run_cli("show", "@2").stdout
    assert entry.address in text and response["uuid"] in text and '"requestId"' in text


def test_show_unknown_ref_is_one_line_exit_2(three_runs, run_cli):
    for ref in ("7777777", "deadbeefdead", "@9", "not-a-ref"):
        result = run_cli("show", ref)
        assert result.exit_code == 2
        assert ref in result.stderr and "no record matches" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_show_includes_observations(three_runs, ledger_path, run_cli):
    with Ledger.open(ledger_path) as ledger:
        ledger.observe(three_runs[0].address, "test", {"status": "COMPLETED"}, status="COMPLETED")
    shown = json.loads(run_cli("show", "@1", "--json").stdout)
    assert shown["status"] == "COMPLETED"
    assert shown["observations"][0]["body"] == {"status": "COMPLETED"}


def test_verify_clean_then_tampered(three_runs, ledger_path, run_cli):
    result = run_cli("verify")
    assert result.exit_code == 0
    assert "verified 3 records" in result.stdout and "OK" in result.stdout
    conn = sqlite3.connect(ledger_path)
    conn.execute("DROP TRIGGER records_no_update")
    body = json.loads(conn.execute("SELECT body FROM records WHERE seq = 2").fetchone()[0])
    body["request"]["parameters"]["param1"] = "edited"
    conn.execute("UPDATE records SET body = ? WHERE seq = 2", (json.dumps(body, sort_keys=True, separators=(",", ":")),))
    conn.execute("DROP TRIGGER records_no_delete")
    conn.execute("DELETE FROM records WHERE seq = 3")
    conn.commit()
    conn.close()
    result = run_cli("verify")
    assert result.exit_code == 1
    assert three_runs[1].address[:12] in result.stdout
    assert "#3" in result.stdout and "missing" in result.stdout
    report = json.loads(run_cli("verify", "--json").stdout)
    assert not report["ok"] and {p["kind"] for p in report["problems"]} >= {"altered", "gap", "triggers"}


def _started_runs(emulator):
    """Run ids the emulator started during the test (the seeded run excluded)."""
    return sorted(run["id"] for run in emulator.runs.values() if run["id"] != "3282892")


def _starts(emulator):
    return [r for r in emulator.requests if r["operation"] == "StartRun"]


def test_unreachable_service_leaves_pending_then_recover(aws_env, ledger_path, git_repo, run_cli, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    dead = "http://127.0.0.1:9"  # discard port: connection refused
    result = run_cli(*SEED_2, "--endpoint-url", dead)
    assert result.exit_code == 1
    assert "pending" in result.stderr and "runlog recover" in result.stderr
    assert records(ledger_path) == []
    noticed = run_cli("log")
    assert "1 pending attempt" in noticed.stderr
    result = run_cli("recover", "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 0, result.output
    (record,) = records(ledger_path)
    assert record["outcome"]["recovered"] is True
    assert len(_starts(aws_env)) == 1
    assert "pending" not in run_cli("log").stderr


@pytest.mark.parametrize("phase", ["before", "after"])
def test_killed_submit_is_recovered_without_a_second_run(phase, aws_env, ledger_path, git_repo, run_proc):
    """SIGKILL while StartRun is in flight: before the service acts, or after it started the run."""
    aws_env.inject("latency", operation="StartRun", seconds=5.0, phase=phase)
    proc = subprocess.Popen([sys.executable, "-m", "runlog", *SEED_1, "--endpoint-url", aws_env.endpoint_url],
                            cwd=git_repo, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not _starts(aws_env) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _starts(aws_env), "the submit never reached the service"
    if phase == "after":
        while not _started_runs(aws_env) and time.monotonic() < deadline:
            time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(5.5 if phase == "before" else 0)  # let the delayed request finish on the emulator side
    with Ledger.open(ledger_path) as ledger:
        assert len(ledger.pending()) == 1 and ledger.count() == 0
    result = run_proc("recover", "--json", cwd=git_repo)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["still_pending"] == 0
    (record,) = records(ledger_path)
    run_ids = {r["outcome"]["response"]["id"] for r in [record]}
    started = _started_runs(aws_env)
    assert len(started) == 1, started
    assert run_ids == {started[0]}
    verify = run_proc("verify", cwd=git_repo)
    assert verify.returncode == 0, verify.stdout


def test_verify_named_records_only(three_runs, ledger_path, run_cli):
    result = run_cli("verify", "@1", three_runs[2].address[:10])
    assert result.exit_code == 0 and "verified 2 records" in result.stdout
    conn = sqlite3.connect(ledger_path)
    conn.execute("DROP TRIGGER records_no_update")
    conn.execute("UPDATE records SET body = replace(body, 'PENDING', 'COMPLETED') WHERE seq = 1")
    conn.commit()
    conn.close()
    assert run_cli("verify", "@1").exit_code == 0
    bad = run_cli("verify", "@3")
    assert bad.exit_code == 1 and three_runs[2].address[:12] in bad.stdout


def test_log_says_when_a_status_that_may_change_was_seen_and_refresh_asks_again(aws_env, ledger_path, git_repo,
                                                                               run_cli):
    import json as _json

    from helpers import SEED_2

    assert run_cli(*SEED_2).exit_code == 0
    listed = run_cli("log")
    assert "PENDING (as of " in listed.stdout
    summary = _json.loads(run_cli("log", "--json").stdout)[0]
    assert summary["status"] == "PENDING" and summary["status_final"] is False and summary["status_as_of"]
    assert not [r for r in aws_env.requests if r["operation"] == "GetRun"], "plain log never reaches AWS"

    aws_env.advance(3600)  # the run has finished meanwhile
    assert "PENDING (as of " in run_cli("log").stdout, "without --refresh, log says what it last saw"
    refreshed = run_cli("log", "--refresh")
    assert refreshed.exit_code == 0, refreshed.output
    assert "COMPLETED" in refreshed.stdout and "(as of" not in refreshed.stdout
    assert [r for r in aws_env.requests if r["operation"] == "GetRun"]
    assert "COMPLETED" in run_cli("log").stdout  # recorded as an observation
