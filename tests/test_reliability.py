"""Nothing is lost: concurrent writers, kills at every point, faults, full and read-only disks, fuzzing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from helpers import SEED_1, SEED_2, read_only, records
from recordfactory import make_record
from runlog import record as rec
from runlog.errors import UsageError
from runlog.ledger import Ledger
from runlog.replay import make_plan

TESTS = Path(__file__).resolve().parent


def _starts(emulator):
    return [r for r in emulator.requests if r["operation"] == "StartRun"]


def _runs(emulator):
    return sorted(r["id"] for r in emulator.runs.values() if r["id"] != "3282892")


def test_sixteen_concurrent_submits_on_one_ledger(aws_env, ledger_path, git_repo):
    def one(i):
        return subprocess.run(
            [sys.executable, "-m", "runlog", *SEED_2, "--name", f"parallel-{i}", "--endpoint-url",
             aws_env.endpoint_url], cwd=git_repo, capture_output=True, text=True, timeout=240)

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, range(16)))
    for result in results:
        assert result.returncode == 0, result.stderr
        assert "locked" not in result.stderr
    found = records(ledger_path)
    assert len(found) == 16
    assert sorted(r["request"]["name"] for r in found) == sorted(f"parallel-{i}" for i in range(16))
    assert len(_runs(aws_env)) == 16
    check = subprocess.run([sys.executable, "-m", "runlog", "verify"], cwd=git_repo, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


def test_killed_before_the_request_leaves(aws_env, ledger_path, git_repo, run_proc):
    killed = subprocess.run([sys.executable, str(TESTS / "killers.py"), "before-send", *SEED_1,
                             "--endpoint-url", aws_env.endpoint_url], cwd=git_repo, capture_output=True, text=True,
                            timeout=120)
    assert killed.returncode == -9
    assert _starts(aws_env) == []
    with Ledger.open(ledger_path) as ledger:
        assert len(ledger.pending()) == 1
    result = run_proc("recover", cwd=git_repo)
    assert result.returncode == 0, result.stderr
    assert len(_runs(aws_env)) == 1
    assert records(ledger_path)[0]["outcome"]["response"]["id"] == _runs(aws_env)[0]


def test_server_errors_are_retried_and_recorded_once(aws_env, ledger_path, git_repo, run_cli):
    aws_env.inject("error", operation="StartRun", count=2)
    result = run_cli(*SEED_2, "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 0, result.output
    assert len(records(ledger_path)) == 1 and len(_runs(aws_env)) == 1
    assert len(_starts(aws_env)) == 3


def test_permanent_error_is_a_failed_attempt_with_its_code(aws_env, ledger_path, git_repo, run_cli):
    aws_env.inject("error", operation="StartRun", count=10, code="AccessDeniedException")
    result = run_cli(*SEED_2, "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 1
    assert "AccessDeniedException" in result.stderr
    (record,) = records(ledger_path)
    assert record["outcome"]["error"]["code"] == "AccessDeniedException"
    assert _runs(aws_env) == []


def test_read_only_ledger_sends_nothing(aws_env, ledger_path, git_repo, run_cli):
    assert run_cli(*SEED_2, "--endpoint-url", aws_env.endpoint_url).exit_code == 0
    with Ledger.open(ledger_path) as ledger:  # fold the WAL into the main file first
        ledger.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = ledger_path.read_bytes()
    with read_only(ledger_path):
        result = run_cli(*SEED_2, "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 2
    assert "cannot write to ledger" in result.stderr
    assert len(_starts(aws_env)) == 1
    assert ledger_path.read_bytes() == before


def test_full_disk_sends_nothing_and_keeps_the_ledger(aws_env, ledger_path, git_repo):
    """A file-size limit makes every write past it fail as on a full disk."""
    env = dict(os.environ)
    ok = subprocess.run([sys.executable, "-m", "runlog", *SEED_2, "--endpoint-url", aws_env.endpoint_url],
                        cwd=git_repo, capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    subprocess.run([sys.executable, "-m", "runlog", "verify"], cwd=git_repo, check=True, capture_output=True)
    size = max(p.stat().st_size for p in ledger_path.parent.glob("ledger.db*"))
    limit = size  # no file may grow at all
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
        "from runlog.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    big_file = ledger_path.parent.parent / "big-inputs.json"
    big_file.write_text(json.dumps({"param1": "x" * 200_000, "param2": "y"}))
    big = SEED_2[:-1] + [f"file://{big_file}"]
    full = subprocess.run([sys.executable, "-c", code, *big, "--endpoint-url", aws_env.endpoint_url],
                          cwd=git_repo, capture_output=True, text=True, env=env)
    # nothing was sent and nothing written: the one-line "cannot write" error, exit 2 (not 70)
    assert full.returncode == 2, full.stderr
    assert "Traceback" not in full.stderr and "internal error" not in full.stderr
    assert full.stderr.startswith("runlog: error: cannot write to ledger")
    assert len(full.stderr.strip().splitlines()) == 1
    assert len(_starts(aws_env)) == 1, "no unrecorded run may be started"
    check = subprocess.run([sys.executable, "-m", "runlog", "verify"], cwd=git_repo, capture_output=True, text=True)
    assert check.returncode == 0 and "verified 1 record, " in check.stdout


def test_secrets_never_reach_a_record(aws_env, ledger_path, git_repo, run_cli, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SUPERSECRETKEYVALUE")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "SESSIONTOKENVALUE")
    result = run_cli("submit", "--workflow-id", "7206765", "--role-arn", "arn:aws:iam::1:role/R",
                     "--output-uri", "s3://b/o/", "--parameters",
                     '{"input": "s3://b/in.csv", "protocol": "10XV3", "genome": "GRCh38"}',
                     "--endpoint-url", aws_env.endpoint_url.replace("http://", "http://user:pw@"))
    assert result.exit_code == 0, result.output
    # every file of the ledger: with WAL the records sit in ledger.db-wal until a checkpoint
    files = sorted(p for p in ledger_path.parent.rglob("*") if p.is_file())  # the WAL and lock files too
    assert ledger_path in files
    text = b"".join(f.read_bytes() for f in files)
    assert b"10XV3" in text and json.loads(result.stdout)["id"].encode() in text  # the record is in what is scanned
    for secret in (b"SUPERSECRETKEYVALUE", b"SESSIONTOKENVALUE", b"s3cret", b"user:pw"):
        assert secret not in text
    with Ledger.open(ledger_path, create=False) as ledger:
        (entry,) = ledger.entries()
    assert entry.record["aws"]["endpoint_url"] == aws_env.endpoint_url  # recorded without user:pw


def test_secret_looking_parameters_are_flagged(aws_env, ledger_path, git_repo, run_cli):
    aws_env.add_workflow("5550001", "with-token", template={"input": {}, "api_token": {"optional": True}})
    result = run_cli("submit", "--workflow-id", "5550001", "--role-arn", "arn:aws:iam::1:role/R",
                     "--output-uri", "s3://b/o/", "--parameters", '{"input": "s3://b/x", "api_token": "abc"}',
                     "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 0, result.output
    assert "api_token looks like a secret" in result.stderr


def test_lookups_use_indexes(tmp_path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        for i in range(50):
            ledger.add_record(make_record(run_id=str(1000000 + i)))
        queries = [
            ("run_id = ?", ("1000001",)), ("run_uuid = ?", ("x",)), ("run_arn = ? AND kind != 'member'", ("arn",)),
            ("run_id = ? AND +run_arn = ? AND kind = 'member'", ("1000001", "arn")),  # a member's ARN (m006)
            ("address >= ? AND address < ?", ("abc", "abcg")), (Ledger._SAME_FINGERPRINT, ("f" * 8, "f" * 64)),
            ("replay_of = ?", ("r",)), ("created >= ?", ("2026",)),
        ]
        for where, params in queries:
            plan = " ".join(r[-1] for r in ledger.conn.execute(
                f"EXPLAIN QUERY PLAN SELECT * FROM records WHERE {where}", params))
            assert "USING" in plan and "SCAN records" not in plan, (where, plan)
        plan = " ".join(r[-1] for r in ledger.conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM observations WHERE record = ? ORDER BY seq", ("a",)))
        assert "SCAN observations" not in plan


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63) |
    st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.dictionaries(st.text(min_size=1, max_size=20), json_values, max_size=8)
       | st.dictionaries(st.text(min_size=1, max_size=8), st.text(min_size=1000, max_size=6000), min_size=8, max_size=9))
def test_any_parameters_round_trip_byte_identically(params, tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "l.db"
    record = make_record(parameters=params)
    with Ledger.open(path) as ledger:
        entry, _ = ledger.add_record(record)
    with Ledger.open(path, create=False) as ledger:
        again = ledger.resolve(entry.address)
    assert rec.canonical_json(again.record["request"]["parameters"]) == rec.canonical_json(params)
    assert again.address == rec.address(record)
    shown = json.loads(json.dumps(again.record))  # what `runlog show --json` prints
    assert rec.canonical_json(shown["request"]["parameters"]) == rec.canonical_json(params)
    replayed = make_plan(again).request  # what `runlog replay` would send
    assert rec.canonical_json(replayed["parameters"]) == rec.canonical_json(params)


@settings(max_examples=200, deadline=None)
@given(ref=st.one_of(st.text(max_size=80), st.integers(min_value=-1, max_value=10**40).map(lambda n: f"@{n}"),
                     st.from_regex(r"[0-9a-f]{6,64}", fullmatch=True)))
@example(ref="@99999999999999999999999")
@example(ref="@9223372036854775808")
def test_arbitrary_refs_never_crash(ref, tmp_path_factory):
    path = tmp_path_factory.mktemp("refs") / "l.db"
    with Ledger.open(path) as ledger:
        ledger.add_record(make_record())
        try:
            ledger.resolve(ref)
        except UsageError as exc:
            assert "\n" not in exc.message  # one line, whatever the ref holds (it is quoted with repr)


def test_a_refusal_after_a_retried_server_error_is_not_proof_nothing_started(aws_env, ledger_path, git_repo,
                                                                            run_cli):
    """The first try starts the run and is answered 500; botocore retries with the same
    requestId and the retry is refused (409, as a service answers a token still in use). The
    refusal says nothing of the first try: the attempt stays pending (never a rejected record
    for a run that started), and `recover` records the run that did start, once."""
    aws_env.inject("error", operation="StartRun", phase="after")  # started, answered 500
    aws_env.inject("error", operation="StartRun", code="ConflictException", skip=1)  # the retry: 409
    result = run_cli(*SEED_2, "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 1
    assert "outcome is unknown" in result.stderr and "ConflictException" in result.stderr
    assert "runlog recover" in result.stderr
    assert records(ledger_path) == []  # nothing recorded as rejected
    (started,) = _runs(aws_env)
    recovered = run_cli("recover", "--endpoint-url", aws_env.endpoint_url)
    assert recovered.exit_code == 0, recovered.output
    (record,) = records(ledger_path)
    assert record["outcome"]["status"] == "submitted" and record["outcome"]["response"]["id"] == started
    assert _runs(aws_env) == [started]


def test_a_refused_resend_by_recover_is_no_proof_that_the_first_send_started_nothing(aws_env, ledger_path,
                                                                                    git_repo, run_cli):
    """The first send started the run and every try was answered 500: pending. `recover`
    re-sends it days later, when the service refuses it (here AccessDenied: other credentials,
    a deleted workflow or a full quota are as likely). That refusal is about the re-sent
    request now, not about the first send: the attempt stays pending, never a rejected record
    for a run that exists; a later `recover` records the run."""
    aws_env.inject("error", operation="StartRun", phase="after", count=3)  # every try answered 500; one run
    first = run_cli(*SEED_2, "--endpoint-url", aws_env.endpoint_url)
    assert first.exit_code == 1 and "outcome is unknown" in first.stderr
    (started,) = _runs(aws_env)
    aws_env.inject("error", operation="StartRun", code="AccessDeniedException")
    refused = run_cli("recover", "--endpoint-url", aws_env.endpoint_url)
    assert refused.exit_code == 1
    assert "AccessDeniedException" in refused.stdout and "pending" in refused.stdout
    assert records(ledger_path) == []
    again = run_cli("recover", "--endpoint-url", aws_env.endpoint_url)
    assert again.exit_code == 0, again.output
    (record,) = records(ledger_path)
    assert record["outcome"]["status"] == "submitted" and record["outcome"]["response"]["id"] == started
    assert _runs(aws_env) == [started]
