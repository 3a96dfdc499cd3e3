"""Every recorded outcome is true: only the service's proof of a refusal makes a rejected
record; an unknown outcome stays pending until `recover`; no run is lost or started twice,
whether the answer never comes, comes late, or the process is interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import botocore.session
import pytest

from helpers import SEED_2, records
from runlog import aws
from runlog.ledger import Ledger

TESTS = Path(__file__).resolve().parent


def starts(emulator):
    return [r for r in emulator.requests if r["operation"] == "StartRun"]


def runs(emulator):
    return sorted(r["id"] for r in emulator.runs.values() if r["id"] != "3282892")


def pending(ledger_path):
    with Ledger.open(ledger_path, create=False) as ledger:
        return ledger.pending()


def leave_pending(git_repo):
    """A submit killed just before StartRun's bytes leave: one pending attempt, nothing sent."""
    killed = subprocess.run([sys.executable, str(TESTS / "killers.py"), "before-send", *SEED_2], cwd=git_repo,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9


def named(*extra):
    """SEED_2 with its own run name, so several submissions in one test are not identical."""
    return [*SEED_2, *extra]


def start_run_model():
    return botocore.session.get_session().get_service_model("omics").operation_model("StartRun")


def test_refusing_errors_come_from_the_model():
    refusing = aws.refusing_errors(start_run_model())
    assert {"ValidationException", "AccessDeniedException", "ResourceNotFoundException", "ConflictException",
            "ServiceQuotaExceededException"} <= set(refusing)
    assert not {"InternalServerException", "ThrottlingException", "RequestTimeoutException"} & set(refusing)
    assert all(400 <= status < 500 for status in refusing.values())


@pytest.mark.parametrize("code", sorted(aws.refusing_errors(start_run_model())))
def test_each_modelled_refusal_is_a_rejected_record(code, aws_env, ledger_path, git_repo, run_cli):
    aws_env.inject("error", operation="StartRun", count=5, code=code)
    result = run_cli(*SEED_2)
    assert result.exit_code == 1
    assert code in result.stderr and "failed attempt" in result.stderr
    (record,) = records(ledger_path)
    assert record["outcome"]["status"] == "rejected"
    assert record["outcome"]["error"]["code"] == code
    assert pending(ledger_path) == []


@pytest.mark.parametrize("fault", [
    {"kind": "error", "phase": "after"},  # the service started the run, every answer was a 500
    {"kind": "error", "phase": "after", "code": "RequestTimeoutException"},
    {"kind": "throttle", "phase": "after"},
    {"kind": "drop", "phase": "after"},  # the connection closed after the service took the request
])
def test_an_unknown_outcome_stays_pending_and_recover_records_the_run(fault, aws_env, ledger_path, git_repo,
                                                                      run_cli):
    aws_env.inject(operation="StartRun", count=3, **fault)
    result = run_cli(*SEED_2)
    assert result.exit_code == 1, result.output
    assert "outcome is unknown" in result.stderr and "runlog recover" in result.stderr
    assert "rejected" not in result.stderr and "failed attempt" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert records(ledger_path) == []
    (intent,) = pending(ledger_path)
    assert len(runs(aws_env)) == 1, "the service did start the run"

    recovered = run_cli("recover")
    assert recovered.exit_code == 0, recovered.output
    assert "recovered" in recovered.stdout
    (record,) = records(ledger_path)
    assert record["outcome"]["status"] == "submitted" and record["outcome"]["recovered"] is True
    assert record["request"]["requestId"] == intent["request"]["requestId"]
    assert [record["outcome"]["response"]["id"]] == runs(aws_env), "recover found the same run, started none"
    assert run_cli("verify").exit_code == 0


@pytest.mark.parametrize("query", ["[[", "length(`1`)", "not_a_function(id)"],
                         ids=["syntax", "wrong type", "unknown function"])
def test_bad_query_is_refused_before_anything_is_sent(query, aws_env, ledger_path, git_repo, run_cli):
    result = run_cli(*SEED_2, "--query", query)
    assert result.exit_code == 2
    assert "--query" in result.stderr and "nothing was sent" in result.stderr
    assert starts(aws_env) == []
    assert not ledger_path.exists() or pending(ledger_path) == [] and records(ledger_path) == []


def test_a_run_id_reaches_stderr_when_printing_fails(aws_env, ledger_path, git_repo):
    read_end, write_end = os.pipe()
    os.close(read_end)  # whoever reads our output has gone away before we print
    try:
        result = subprocess.run([sys.executable, "-m", "runlog", *SEED_2], cwd=git_repo, stdout=write_end,
                                stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    (record,) = records(ledger_path)
    run_id = record["outcome"]["response"]["id"]
    assert f"run {run_id} was started and recorded" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_identical_request_to_a_pending_attempt_is_refused(aws_env, ledger_path, git_repo, run_cli):
    aws_env.inject("error", operation="StartRun", count=3, phase="after")
    assert run_cli(*SEED_2).exit_code == 1
    (intent,) = pending(ledger_path)
    request_id = intent["request"]["requestId"]

    again = run_cli(*SEED_2)
    assert again.exit_code == 2
    assert request_id in again.stderr and "runlog recover" in again.stderr
    assert "--allow-duplicate" in again.stderr
    assert len(starts(aws_env)) == 3, "the refused duplicate sent nothing"
    assert len(pending(ledger_path)) == 1

    different = run_cli(*named("--name", "another-sample"))
    assert different.exit_code == 0, different.output

    forced = run_cli(*SEED_2, "--allow-duplicate")
    assert forced.exit_code == 0, forced.output
    assert len(runs(aws_env)) == 3


def _submit_in_background(git_repo, *args):
    return subprocess.Popen([sys.executable, "-m", "runlog", *args], cwd=git_repo, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def test_recover_leaves_in_flight_submits_alone(aws_env, ledger_path, git_repo, run_proc):
    count = 6
    # recover must look while senders are waiting on StartRun. Waiting for all six to be pending
    # at once failed on a loaded 2-core machine (CI runs two test workers): six interpreters can
    # start further apart than StartRun's delay (seen with 4 s and with 8 s). So each StartRun is
    # held 20 s, and recover looks once every sender has committed its attempt while one at
    # least is still pending: the last to commit is then in flight for about 20 s more.
    aws_env.inject("latency", operation="StartRun", count=count, seconds=20, phase="before")
    procs = [_submit_in_background(git_repo, *named("--name", f"in-flight-{i}")) for i in range(count)]

    def all_committed_one_in_flight() -> bool:
        if not ledger_path.exists():
            return False
        waiting = len(pending(ledger_path))
        return waiting >= 1 and waiting + len(records(ledger_path)) == count

    outputs = None
    try:
        _wait_for(all_committed_one_in_flight, timeout=90.0)
        recovered = run_proc("recover", "--json", cwd=git_repo)
    except AssertionError:  # say what the senders did: how they ended, and their last words
        outputs = [p.communicate(timeout=120) for p in procs]
        ended = [(p.returncode, err[-400:]) for p, (_, err) in zip(procs, outputs, strict=True)]
        raise AssertionError(f"senders never all committed with one in flight: {len(pending(ledger_path))} "
                             f"pending, {len(records(ledger_path))} recorded; senders: {ended}") from None
    finally:
        if outputs is None:
            outputs = [p.communicate(timeout=120) for p in procs]
    report = json.loads(recovered.stdout)
    left_alone = [item for item in report["recovered"] if "in_flight" in item]
    # On a loaded machine a sender may finish before recover lists the pending attempts (it is
    # then not in the report) or before it takes the lock (completed elsewhere); what must never
    # happen is recover sending, or failing, an attempt a live process is sending.
    assert left_alone, report  # at least one was still being sent while recover looked
    assert recovered.returncode == 1  # attempts were still pending while it looked
    assert all("in_flight" in item or item.get("completed_elsewhere") for item in report["recovered"]), report
    assert all(item["in_flight"]["pid"] in {p.pid for p in procs} for item in left_alone)
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert json.loads(out)["id"]
        assert "IntegrityError" not in err
    assert len(records(ledger_path)) == count and pending(ledger_path) == []
    assert len(runs(aws_env)) == count
    assert run_proc("verify", cwd=git_repo).returncode == 0


def test_a_record_written_meanwhile_by_recover_is_reported_as_is(aws_env, ledger_path, git_repo, run_cli):
    """The same attempt completed twice (by a recover that could not see the sender's lock, say):
    the second completion reports the first record, no IntegrityError, no second record."""
    from runlog.submit import send

    aws_env.inject("error", operation="StartRun", count=3, phase="after")
    run_cli(*SEED_2)
    (intent,) = pending(ledger_path)
    assert run_cli("recover").exit_code == 0
    (first,) = records(ledger_path)
    client = aws.client(aws.AwsSettings(endpoint_url=aws_env.endpoint_url, region="us-west-2"), "omics")
    with Ledger.open(ledger_path) as ledger:
        late = send(ledger, intent, client)  # the original sender's answer arriving after recover
    assert late.entry.address == rec_address(first)
    assert late.response["id"] == first["outcome"]["response"]["id"]
    assert len(records(ledger_path)) == 1 and len(runs(aws_env)) == 1


def rec_address(record):
    from runlog.record import address

    return address(record)


def test_recover_goes_where_the_attempt_was_recorded(aws_env, ledger_path, git_repo, run_proc, monkeypatch):
    """Not to the region or endpoint of today's .runlog.toml or environment."""
    from runlog.emulator import Emulator

    leave_pending(git_repo)
    other = Emulator(port=0)
    other.start()
    try:
        (git_repo / ".runlog.toml").write_text(f'region = "eu-west-1"\nendpoint_url = "{other.endpoint_url}"\n')
        os.chmod(git_repo / ".runlog.toml", 0o644)
        monkeypatch.setenv("AWS_ENDPOINT_URL", other.endpoint_url)
        monkeypatch.setenv("AWS_REGION", "eu-central-1")
        result = run_proc("recover", cwd=git_repo)
        assert result.returncode == 0, result.stderr
        assert starts(other) == [] and len(starts(aws_env)) == 1
        (record,) = records(ledger_path)
        assert record["aws"]["region"] == "us-west-2"
        assert record["outcome"]["response"]["arn"].startswith("arn:aws:omics:us-west-2:")
    finally:
        other.stop()


def test_recover_flags_override_the_recorded_endpoint(aws_env, ledger_path, git_repo, run_proc):
    from runlog.emulator import Emulator

    leave_pending(git_repo)
    other = Emulator(port=0)
    other.start()
    try:
        result = run_proc("recover", "--endpoint-url", other.endpoint_url, cwd=git_repo)
        assert result.returncode == 0, result.stderr
        assert len(starts(other)) == 1 and starts(aws_env) == []
    finally:
        other.stop()


def test_abandon_keeps_the_attempt_and_never_sends_it(aws_env, ledger_path, git_repo, run_cli):
    leave_pending(git_repo)
    (intent,) = pending(ledger_path)
    request_id = intent["request"]["requestId"]

    unknown = run_cli("recover", "--abandon", "no-such-request")
    assert unknown.exit_code == 2 and "no-such-request" in unknown.stderr

    result = run_cli("recover", "--abandon", request_id, "--reason", "wrong account")
    assert result.exit_code == 0, result.output
    (record,) = records(ledger_path)
    assert record["outcome"] == {"status": "abandoned", "reason": "wrong account",
                                 "abandoned_at": record["outcome"]["abandoned_at"]}
    assert run_cli("recover").exit_code == 0
    assert starts(aws_env) == []
    log = json.loads(run_cli("log", "--json").stdout)
    assert log[0]["status"] == "ABANDONED"
    assert run_cli("verify").exit_code == 0
    again = run_cli("recover", "--abandon", request_id)
    assert again.exit_code == 2


def test_disk_full_between_intent_and_record_names_the_run(aws_env, ledger_path, git_repo, run_proc):
    """The intent fits, the record does not: the run id and `recover` are named, and recover
    records that run once the disk has room."""
    assert run_proc(*SEED_2, cwd=git_repo).returncode == 0
    with Ledger.open(ledger_path) as ledger:
        ledger.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    big = git_repo / "big-inputs.json"
    big.write_text(json.dumps({"param1": "x" * 300_000, "param2": "y"}))
    limit = ledger_path.stat().st_size + 450_000  # room for the intent (~300 kB), not for the record too
    code = ("import resource, signal, sys\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
            "from runlog.cli import main\n"
            "main(sys.argv[1:])\n")
    full = subprocess.run([sys.executable, "-c", code, *SEED_2[:-1], f"file://{big}", "--name", "full"],
                          cwd=git_repo, capture_output=True, text=True, timeout=120)
    assert full.returncode == 1, full.stderr
    assert full.stderr.startswith("runlog: error: the run was started (id ")
    assert "runlog recover" in full.stderr and "Traceback" not in full.stderr
    assert "restore it from a backup" not in full.stderr
    started = full.stderr.split("(id ", 1)[1].split(")", 1)[0]
    assert len(pending(ledger_path)) == 1

    recovered = run_proc("recover", cwd=git_repo)
    assert recovered.returncode == 0, recovered.stderr
    assert f"run {started}" in recovered.stdout
    assert len(runs(aws_env)) == 2 and len(records(ledger_path)) == 2
    assert run_proc("verify", cwd=git_repo).returncode == 0


def test_ctrl_c_while_sending_names_recover(aws_env, ledger_path, git_repo, run_proc):
    aws_env.inject("latency", operation="StartRun", count=1, seconds=30, phase="before")
    proc = _submit_in_background(git_repo, *SEED_2)
    try:
        _wait_for(lambda: len(starts(aws_env)) == 1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted while StartRun was being sent" in err and "runlog recover" in err
    assert "Traceback" not in err
    assert len(pending(ledger_path)) == 1
    aws_env.faults.clear()
    recovered = run_proc("recover", cwd=git_repo)
    assert recovered.returncode == 0, recovered.stderr
    assert len(runs(aws_env)) == 1 and len(records(ledger_path)) == 1


def test_ctrl_c_before_sending_says_nothing_was_sent(aws_env, ledger_path, git_repo):
    aws_env.inject("latency", operation="GetWorkflow", count=1, seconds=30, phase="before")
    proc = _submit_in_background(git_repo, *SEED_2)
    try:
        _wait_for(lambda: any(r["operation"] == "GetWorkflow" for r in aws_env.requests))
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted before the request was sent; nothing was written" in err
    assert starts(aws_env) == []
    assert not ledger_path.exists() or pending(ledger_path) == []


def test_one_rule_for_where_calls_go(monkeypatch):
    """flag > recorded > config > environment, for everything acting on a record."""
    from runlog.aws import settings_for
    from runlog.config import Config

    config = Config(values={"region": "eu-west-1", "endpoint_url": "http://config.invalid", "profile": "cfg"})
    recorded = {"region": "us-west-2", "endpoint_url": None, "profile": None}
    here = settings_for(config, recorded=recorded)
    assert (here.region, here.endpoint_url, here.pinned, here.profile) == ("us-west-2", None, True, "cfg")
    flagged = settings_for(config, region="ap-south-1", endpoint_url="http://flag.invalid", recorded=recorded)
    assert (flagged.region, flagged.endpoint_url, flagged.pinned) == ("ap-south-1", "http://flag.invalid", False)
    new = settings_for(config)
    assert (new.region, new.endpoint_url, new.pinned) == ("eu-west-1", "http://config.invalid", False)
    assert settings_for(None).region is None  # the environment decides, through boto's own chain

    # a record made against AWS stays with AWS, whatever AWS_ENDPOINT_URL says today
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    client = aws.client(settings_for(None, recorded=recorded), "omics")
    assert client.meta.endpoint_url == "https://omics.us-west-2.amazonaws.com"
    assert aws.client(settings_for(None, region="us-west-2"), "omics").meta.endpoint_url == "http://127.0.0.1:9"


def test_an_unknown_caller_is_recorded_with_the_reason(aws_env, ledger_path, git_repo, run_cli):
    aws_env.inject("error", operation="GetCallerIdentity", count=5, code="AccessDenied")
    result = run_cli(*SEED_2)
    assert result.exit_code == 0, result.output
    (record,) = records(ledger_path)
    assert "GetCallerIdentity failed" in record["caller"]["unknown"]
    assert "AccessDenied" in record["caller"]["unknown"]
    assert "caller not recorded: STS GetCallerIdentity failed" in result.stderr


@pytest.mark.parametrize("query", ["nothere", "tags", "id", "[id, status]", "{a: id, b: nothere}"])
@pytest.mark.parametrize("output", ["json", "text"])
def test_query_output_is_what_the_aws_cli_prints(query, output, aws_env, ledger_path, git_repo, run_cli):
    from helpers import aws_cli

    base = SEED_2[1:]
    theirs = aws_cli(aws_env, "omics", "start-run", *base, "--query", query, "--output", output)
    assert theirs.returncode == 0, theirs.stderr
    ours = run_cli(*SEED_2, "--name", "ours", "--query", query, "--output", output)
    assert ours.exit_code == 0, ours.stderr
    ids = {r["id"] for r in aws_env.runs.values()}
    expected = theirs.stdout
    for run_id in ids:  # the two runs differ only in their ids
        expected = expected.replace(run_id, "ID")
    got = ours.stdout
    for run_id in ids:
        got = got.replace(run_id, "ID")
    assert got == expected


def test_recover_that_still_gets_no_answer_says_what_to_do_next(aws_env, ledger_path, git_repo, run_cli):
    aws_env.inject("error", operation="StartRun", count=6, phase="after")
    assert run_cli(*SEED_2).exit_code == 1
    (intent,) = pending(ledger_path)
    again = run_cli("recover")
    assert again.exit_code == 1
    assert "again later" in again.stdout and f"--abandon {intent['request']['requestId']}" in again.stdout
    assert "run `runlog recover` to complete it" not in again.stdout
    assert len(pending(ledger_path)) == 1
    assert run_cli("recover").exit_code == 0 and len(runs(aws_env)) == 1


def test_an_attempt_abandoned_by_the_user_is_exported_with_its_outcome_unknown(aws_env, ledger_path, git_repo,
                                                                              run_cli, tmp_path):
    """A pending attempt may have reached the service (it was left pending because runlog did
    not learn the outcome): abandoning it does not make it unsent, so the exports must not say
    it never ran."""
    leave_pending(git_repo)
    (intent,) = pending(ledger_path)
    assert run_cli("recover", "--abandon", intent["request"]["requestId"], "--reason", "gave up").exit_code == 0
    out = tmp_path / "export"
    result = run_cli("export", "@1", "-f", "all", "-o", out, "--license", "MIT", "--validate")  # (roc-validator, the BCO schema, PROV)
    assert result.exit_code == 0, result.output
    methods = (out / "methods" / "methods.md").read_text()
    assert "outcome unknown" in methods and "never learned whether HealthOmics received it" in methods
    assert "never ran" not in methods and "before it was sent" not in methods
    crate = json.loads((out / "ro-crate-metadata.json").read_text())
    (action,) = [e for e in crate["@graph"] if str(e.get("@id", "")).startswith("#attempt-")
                 and e.get("@type") == "CreateAction"]
    assert "outcome unknown" in action["description"] and "never received" not in action["description"]
    # it may have run: neither failed nor done is claimed (no actionStatus, no `error`, which is a failed action's)
    assert "actionStatus" not in action and "error" not in action and "object" not in action, action
    empirical = json.loads((out / "bco.json").read_text())["error_domain"]["empirical_error"]
    assert "runs_that_did_not_complete" not in empirical, empirical
    (unknown,) = empirical["requests_whose_outcome_is_unknown"]
    assert "never learned whether HealthOmics received it" in unknown["note"]
