"""Recording a batch's members at scale (issue 14): pages written with executemany, pages
fetched ahead by a thread, and the guarantees that must survive it: a refresh killed midway
and run again records each member, and each status, exactly once; a second refresh adds
nothing; what is written is what the one-by-one path wrote (verify checks every seal and the
chain). Small sizes here; the speed itself is measured by benchmarks/batch_bench.py."""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import COHORT_BUCKET as BUCKET
from helpers import COHORT_FAILING as FAILING
from helpers import COHORT_NOT_STARTED as NOT_STARTED
from helpers import COHORT_RUNS as RUNS
from helpers import finished_cohort
from recordfactory import make_record
from runlog import fastjson
from runlog import record as rec
from runlog.ledger import Ledger

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def cohort(s3_server, monkeypatch, ledger_path, git_repo, run_cli):
    """A finished batch (helpers.finished_cohort); yields (emulator, batch id)."""
    with finished_cohort(s3_server, monkeypatch, run_cli) as found:
        yield found


def killed_refresh(batch_id: str, point: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TESTS / "killers.py"), point, "refresh", batch_id], cwd=cwd,
                          capture_output=True, text=True, timeout=240)


def members(path: Path) -> dict[str, str]:
    """{runSettingId: member record address}; fails if a runSettingId has two records."""
    with Ledger.open(path, create=False) as ledger:
        rows = ledger.conn.execute("SELECT address, body FROM records WHERE kind = 'member'").fetchall()
    found: dict[str, str] = {}
    for address, body in rows:
        setting_id = json.loads(body)["batch"]["run_setting_id"]
        assert setting_id not in found, f"{setting_id} recorded twice"
        found[setting_id] = address
    return found


def status_observations(path: Path) -> dict[str, list[str]]:
    """{member record address: [status, ...]} of the status observations, in order."""
    with Ledger.open(path, create=False) as ledger:
        rows = ledger.conn.execute(
            "SELECT o.record, o.status FROM observations o JOIN records r ON r.address = o.record "
            "WHERE r.kind = 'member' ORDER BY o.seq").fetchall()
    found: dict[str, list[str]] = {}
    for address, status in rows:
        found.setdefault(address, []).append(status)
    return found


@pytest.mark.parametrize("point", ["before-call:ListRunsInBatch:3", "before-call:ListRuns:2", "before-call:GetRun:2"],
                         ids=["while-recording-members", "while-paging-statuses", "while-recording-statuses"])
def test_refresh_killed_midway_and_run_again_records_each_member_once(cohort, point, ledger_path, git_repo,
                                                                      run_cli, tmp_path):
    emulator, batch_id = cohort
    untouched = tmp_path / "untouched.db"  # the same ledger, refreshed without a kill, to compare with
    source, copy = sqlite3.connect(ledger_path), sqlite3.connect(untouched)
    source.backup(copy)  # (the last writes may still be in the WAL file)
    source.close()
    copy.close()

    killed = killed_refresh(batch_id, point, git_repo)
    assert killed.returncode == -9, killed.stderr
    early = members(ledger_path)
    # one transaction a page: what the kill left is whole pages of 100 members
    assert len(early) in (0, 100, 200, RUNS)
    if "GetRun:" in point:  # (for the failed runs' reasons) the statuses are written after every member is
        assert len(early) == RUNS
    statuses = status_observations(ledger_path)
    assert len(statuses) < RUNS - len(NOT_STARTED)

    again = run_cli("refresh", batch_id)
    assert again.exit_code == 0, again.output
    recorded = members(ledger_path)
    assert sorted(recorded) == [f"S{i:04d}" for i in range(RUNS)]
    # each member exactly once, with one status observation: its final one
    statuses = status_observations(ledger_path)
    started = {address for ident, address in recorded.items() if ident not in NOT_STARTED}
    assert set(statuses) == started
    assert all(len(seen) == 1 for seen in statuses.values()), [s for s in statuses.values() if len(s) > 1]
    failed = {recorded[ident] for ident in FAILING}
    assert {a for a, seen in statuses.items() if seen == ["FAILED"]} == failed
    assert all(seen == ["COMPLETED"] for a, seen in statuses.items() if a not in failed)

    # the same records (addresses) as a refresh that was never interrupted
    clean = run_cli("refresh", batch_id, env={"RUNLOG_LEDGER": str(untouched)})
    assert clean.exit_code == 0 and f"{RUNS} new member record(s)" in clean.stdout, clean.output
    assert members(untouched) == recorded

    third = run_cli("refresh", batch_id)
    assert third.exit_code == 0 and "0 new member record(s), 0 status change(s)" in third.stdout, third.output
    for path in (ledger_path, untouched):  # every seal, the chain, each body's canonical form
        verify = run_cli("verify", "--no-remote", env={"RUNLOG_LEDGER": str(path)})
        assert verify.exit_code == 0, verify.output


def test_refresh_shows_the_batch_as_recorded_member_by_member(cohort, ledger_path, run_cli):
    emulator, batch_id = cohort
    first = run_cli("refresh", batch_id)
    assert first.exit_code == 0, first.output
    assert (f"{RUNS} run(s) listed, {RUNS} new member record(s), {RUNS - len(NOT_STARTED)} status change(s)"
            in first.stdout)
    facts = json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]
    assert facts["submission"] == {"SUCCESS": RUNS - len(NOT_STARTED), "FAILED": len(NOT_STARTED)}
    assert facts["run_status"] == {"COMPLETED": RUNS - len(NOT_STARTED) - len(FAILING), "FAILED": len(FAILING)}
    reasons = {f["run_setting_id"]: f["reason"] for f in facts["failures"]}
    assert reasons["S0007"] == "ServiceQuotaExceeded: too many runs" and "OUT_OF_MEMORY" in reasons["S0120"]
    # each member record is the pure function of the batch record and its listing item
    from runlog.batch import member_record

    with Ledger.open(ledger_path, create=False) as ledger:
        batch = ledger.resolve(batch_id)
        bodies = dict(ledger.conn.execute("SELECT address, body FROM records WHERE kind = 'member'").fetchall())
    omics = boto3.client("omics", endpoint_url=emulator.endpoint_url, region_name="us-west-2",
                         config=Config(inject_host_prefix=False))
    item = omics.list_runs_in_batch(batchId=batch_id, runSettingId="S0042")["runs"][0]
    expected = member_record(batch.record, batch.address, item)
    address = rec.address(expected)
    assert bodies[address] == rec.canonical_json(expected).decode("utf-8")


def test_a_page_that_cannot_be_fetched_is_one_line_and_nothing_half_written(cohort, ledger_path, run_cli):
    emulator, batch_id = cohort
    emulator.inject("error", operation="ListRunsInBatch", count=3)  # every attempt (AWS_MAX_ATTEMPTS=3)
    failed = run_cli("refresh", batch_id)
    assert failed.exit_code == 1, failed.output
    (line,) = [li for li in failed.stdout.splitlines() if li.startswith(f"batch {batch_id} ")]
    assert "ListRunsInBatch" in line and "InternalServerException" in line, line
    assert members(ledger_path) == {}
    assert run_cli("refresh", batch_id).exit_code == 0
    assert len(members(ledger_path)) == RUNS


def test_statuses_that_cannot_be_paged_leave_every_member_recorded_and_no_status(cohort, ledger_path, run_cli):
    """ListRuns is paged while the members are recorded (spool.Prefetch): its failure is
    still reported once, as ListRuns', after every member is written, and nothing of the
    statuses is; the next refresh records them."""
    emulator, batch_id = cohort
    emulator.inject("error", operation="ListRuns", count=3)  # every attempt of the first page
    failed = run_cli("refresh", batch_id)
    assert failed.exit_code == 1, failed.output
    (line,) = [li for li in failed.stdout.splitlines() if li.startswith(f"batch {batch_id} ")]
    assert "ListRuns" in line and "ListRunsInBatch" not in line and "InternalServerException" in line, line
    assert len(members(ledger_path)) == RUNS
    assert status_observations(ledger_path) == {}
    again = run_cli("refresh", batch_id)
    assert again.exit_code == 0 and "0 new member record(s)" in again.stdout, again.output
    assert len(status_observations(ledger_path)) == RUNS - len(NOT_STARTED)


def test_member_statuses_are_looked_up_by_run_id(tmp_path):
    """A page of ListRuns is matched to its members through the run id index: through the
    batch's index it read every member of the batch for each page (quadratic at 100 000)."""
    with Ledger.open(tmp_path / "l.db") as ledger:
        statements: list[str] = []
        ledger.conn.set_trace_callback(statements.append)  # the SQL as run, parameters in place
        assert ledger.member_runs("1", ["111", "222"]) == []
        ledger.conn.set_trace_callback(None)
        (query,) = [s for s in statements if "run_id IN" in s]
        plan = " ".join(r[-1] for r in ledger.conn.execute(f"EXPLAIN QUERY PLAN {query}"))
    assert "records_run_id" in plan and "records_batch_id" not in plan, plan


def test_add_records_writes_a_page_once_with_valid_seals(tmp_path, run_cli):
    path = tmp_path / "l.db"
    first, second = make_record(run_id="1111111"), make_record(run_id="2222222")
    with Ledger.open(path) as ledger:
        assert ledger.add_records([first, second, first]) == 2  # a record given twice is added once
        assert ledger.add_records([second, make_record(run_id="3333333", name="ünïcode ✓")]) == 1
        assert ledger.count() == 3
        ledger.add_observations([(rec.address(first), None, rec.utc_now(), "ListRuns", "RUNNING",
                                  {"id": "1111111", "status": "RUNNING", "ratio": 1e-07, "big": 2**70})])
        body = ledger.observations(rec.address(first))[0]["body"]
        assert body == {"id": "1111111", "status": "RUNNING", "ratio": 1e-07, "big": 2**70}
    verify = run_cli("verify", "--no-remote", env={"RUNLOG_LEDGER": str(path)})
    assert verify.exit_code == 0, verify.output
    assert "3 record(s)" in verify.output or "3 records" in verify.output, verify.output


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(JSON)
def test_fast_canonical_json_is_the_json_modules(value):
    assert fastjson.dumps(value) == rec.canonical_json(value)


@pytest.mark.parametrize("value", [
    {"b": 1, "a": [1e16, 1e-05, 0.0001, 123456789.123, -0.0, 2**64, -(2**63)]},
    {"z": "\U0001f600", "é": "\x00\x1f\u2028"},
    {"when": datetime(2026, 11, 26, 2, 50, tzinfo=UTC)}, {1: "integer key"}, [True, False, None],
])
def test_fast_canonical_json_edge_cases(value):
    assert fastjson.dumps(value) == rec.canonical_json(value)


def test_fast_canonical_json_refuses_what_the_json_module_refuses():
    for bad in ({"x": math.nan}, {"x": None, "y": [math.inf]}, {"x": b"bytes"}, {"x": object()},
                {"\ud800": "lone surrogate"}):
        with pytest.raises((ValueError, TypeError)):
            rec.canonical_json(bad)
        with pytest.raises((ValueError, TypeError)):
            fastjson.dumps(bad)


def test_response_items_become_json_as_record_jsonable_makes_them():
    from runlog.batch import _json_value

    item = {"id": "1", "status": "COMPLETED", "priority": 5, "storageCapacity": 1200,
            "creationTime": datetime(2026, 11, 26, 1, 2, 3, 456000, tzinfo=UTC),
            "startTime": datetime(2026, 11, 26, 4, 2, 3, tzinfo=timezone(timedelta(hours=2))),
            "logLocation": {"runLogStream": "x", "times": [datetime(2026, 1, 1, tzinfo=UTC)]}, "ratio": 0.5}
    assert _json_value(item) == rec.jsonable(item)
    assert fastjson.dumps(_json_value(item)) == rec.canonical_json(item)
    for odd in ({**item, "absent": None, "big": 2**70, "tiny": 1e-300}, [item, (1, 2)]):
        assert _json_value(odd) == rec.jsonable(odd)
    for bad in ({"x": math.nan}, {"x": b"bytes"}):
        with pytest.raises((ValueError, TypeError)):
            _json_value(bad)


RESPONSE = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text()
    | st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-7))])),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(RESPONSE)
def test_a_status_observation_is_written_as_the_canonical_json_of_the_answer(value):
    """refresh writes ListRuns items and GetRun answers (with datetimes) once, through orjson
    (fastjson.dumps):
    the bytes must be what record.canonical_json writes, which verify recomputes."""
    from runlog.fastjson import dumps

    assert dumps(value) == rec.canonical_json(value)


def test_a_status_observation_written_once_is_stored_and_read_back_as_before(tmp_path):
    from runlog.fastjson import dumps

    item = {"id": "1", "status": "COMPLETED", "creationTime": datetime(2026, 11, 26, 1, 2, 3, 456000, tzinfo=UTC),
            "startTime": datetime(2026, 11, 26, 4, 2, 3, tzinfo=timezone(timedelta(hours=2))), "big": 2**70,
            "tiny": 1e-7, "none": None}
    run = make_record(run_id="1")
    with Ledger.open(tmp_path / "l.db") as ledger:
        ledger.add_record(run)
        ledger.add_observations([(rec.address(run), None, rec.utc_now(), "ListRuns", "COMPLETED",
                                  dumps(item))])
        (seen,) = ledger.observations(rec.address(run))
        sha = ledger.conn.execute("SELECT sha256 FROM observations").fetchone()[0]
    assert seen["body"] == rec.jsonable(item) and seen["status"] == "COMPLETED"
    assert sha == rec.sha256_hex(rec.canonical_json(item))
    for bad in ({"x": math.nan}, {"x": b"bytes"}):
        with pytest.raises((ValueError, TypeError)):
            dumps(bad)


def test_bulk_writes_checkpoint_less_often_and_restore_the_setting(tmp_path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        before = ledger.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        with ledger.bulk_writes(pages=5000):
            assert ledger.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 5000
            assert ledger.add_records([make_record(run_id="4444444")]) == 1
        assert ledger.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == before == 1000
        with pytest.raises(RuntimeError), ledger.bulk_writes():
            raise RuntimeError("a refresh that fails midway")
        assert ledger.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000


def test_every_ref_form_names_a_member_with_its_arn_left_out_of_the_arn_index(cohort, ledger_path, run_cli):
    """m006: member runs carry no entry in the ARN index (nor their statuses in a run uuid
    index); `show` still finds a member by its run id, uuid, ARN and address prefix."""
    emulator, batch_id = cohort
    assert run_cli("refresh", batch_id).exit_code == 0
    with Ledger.open(ledger_path, create=False) as ledger:
        (member,) = [e for e in ledger.members(ledger.resolve(batch_id).batch_id, ledger.resolve(batch_id).address)
                     if e.record["batch"]["run_setting_id"] == "S0042"]
        in_arn_index = ledger.conn.execute("SELECT count(*) FROM records INDEXED BY records_run_arn "
                                           "WHERE run_arn = ? AND kind != 'member'", (member.run_arn,)).fetchone()[0]
        indexes = {row[0] for row in ledger.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert in_arn_index == 0 and "observations_run_uuid" not in indexes
    assert member.run_arn.endswith("run/" + member.run_id)
    for ref in (member.run_id, member.run_uuid, member.run_arn, member.run_uuid.upper(), member.address[:10]):
        shown = run_cli("show", ref)
        assert shown.exit_code == 0, (ref, shown.output)
        assert shown.stdout.splitlines()[0].split() == ["record", member.address], ref
    account = member.run_arn.split(":")[4]
    other = member.run_arn.replace(f":{account}:", ":210987654321:")  # the same run id in another account
    missing = run_cli("show", other)
    assert missing.exit_code == 2 and "no record matches" in missing.output, missing.output


def test_a_format_5_ledger_gets_the_lighter_indexes_and_still_finds_its_runs(tmp_path, run_cli):
    from runlog.migrations import MIGRATIONS

    path = tmp_path / "old.db"
    run = make_record(run_id="5555555")
    run["outcome"]["response"]["arn"] = "arn:aws:omics:us-west-2:123456789012:run/5555555"
    with Ledger.open(path) as ledger:
        ledger.add_record(run)
        ledger.observe(rec.address(run), "GetRun", {"id": "5555555", "status": "RUNNING"},
                       run_uuid=run["outcome"]["response"]["uuid"], status="RUNNING")
    conn = sqlite3.connect(path)  # back to format 5: the indexes m006 replaces, as m001 made them
    conn.executescript("DROP INDEX records_run_arn; CREATE INDEX records_run_arn ON records(run_arn); "
                       "DROP INDEX records_replay_of; CREATE INDEX records_replay_of ON records(replay_of); "
                       "CREATE INDEX observations_run_uuid ON observations(run_uuid); PRAGMA user_version = 5;")
    conn.close()
    assert MIGRATIONS[5].__name__ == "m006_lighter_member_indexes"
    shown = run_cli("show", run["outcome"]["response"]["arn"], env={"RUNLOG_LEDGER": str(path)})  # read-only
    assert shown.exit_code == 0 and shown.stdout.splitlines()[0].split() == ["record", rec.address(run)], shown.output
    Ledger.open(path).close()  # as any writing command opens it: migrated in place
    conn = sqlite3.connect(path)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    arn_index = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'records_run_arn'").fetchone()[0]
    conn.close()
    assert version == len(MIGRATIONS) and "WHERE kind != 'member'" in arn_index
    verify = run_cli("verify", "--no-remote", env={"RUNLOG_LEDGER": str(path)})
    assert verify.exit_code == 0, verify.output


def output_locations(path: Path) -> dict[str, list[str]]:
    """{member record address: [runOutputUri of each observation that holds one]}."""
    with Ledger.open(path, create=False) as ledger:
        rows = ledger.conn.execute(
            "SELECT o.record, json_extract(o.body, '$.runOutputUri') FROM observations o JOIN records r "
            "ON r.address = o.record WHERE r.kind = 'member' AND json_extract(o.body, '$.runOutputUri') IS NOT NULL "
            "ORDER BY o.seq").fetchall()
    found: dict[str, list[str]] = {}
    for address, uri in rows:
        found.setdefault(address, []).append(uri)
    return found


def test_refresh_outputs_records_each_ended_members_output_location_once(cohort, ledger_path, run_cli):
    emulator, batch_id = cohort
    plain = run_cli("refresh", batch_id)
    assert plain.exit_code == 0 and "output location" not in plain.stdout, plain.output
    recorded = members(ledger_path)
    failed = {recorded[ident] for ident in FAILING}
    assert set(output_locations(ledger_path)) == failed  # GetRun only for the failed, by default

    first = run_cli("refresh", batch_id, "--outputs", "--jobs", "4")
    completed = RUNS - len(NOT_STARTED) - len(FAILING)
    assert first.exit_code == 0 and f"{completed} output location(s) recorded" in first.stdout, first.output
    locations = output_locations(ledger_path)
    started = {address for ident, address in recorded.items() if ident not in NOT_STARTED}
    assert set(locations) == started and all(len(uris) == 1 for uris in locations.values())
    with Ledger.open(ledger_path, create=False) as ledger:
        runs = dict(ledger.conn.execute("SELECT address, run_id FROM records WHERE kind = 'member'").fetchall())
    assert all(uris == [f"s3://{BUCKET}/out/{runs[address]}"] for address, uris in locations.items())

    again = run_cli("refresh", batch_id, "--outputs", "--json")
    assert again.exit_code == 0, again.output
    (change,) = json.loads(again.stdout)
    assert change["outputs_recorded"] == 0 and change["statuses_changed"] == 0
    assert output_locations(ledger_path) == locations
    verify = run_cli("verify", "--no-remote")
    assert verify.exit_code == 0, verify.output


def test_refresh_outputs_rerun_after_a_failed_getrun_asks_only_for_what_is_missing(cohort, ledger_path, run_cli):
    emulator, batch_id = cohort
    assert run_cli("refresh", batch_id).exit_code == 0
    emulator.inject("error", operation="GetRun", count=3)  # one run's every attempt fails
    failed = run_cli("refresh", batch_id, "--outputs", "--jobs", "1")
    assert failed.exit_code == 1 and "GetRun" in failed.stdout, failed.output
    partial = len(output_locations(ledger_path)) - len(FAILING)
    assert 0 <= partial < RUNS - len(NOT_STARTED) - len(FAILING)
    rerun = run_cli("refresh", batch_id, "--outputs")
    missing = RUNS - len(NOT_STARTED) - len(FAILING) - partial
    assert rerun.exit_code == 0 and f"{missing} output location(s) recorded" in rerun.stdout, rerun.output
    assert all(len(uris) == 1 for uris in output_locations(ledger_path).values())


def test_settings_read_page_by_page_are_the_records_own(cohort, ledger_path):
    """What refresh reads from the ledger a page at a time (a temporary table filled by
    SQLite) is the batch record's settings, value for value; the outline is the record
    without the cohort; the temporary table is emptied afterwards and never in the ledger."""
    from runlog.batch import _settings, run_settings

    emulator, batch_id = cohort
    with Ledger.open(ledger_path) as ledger:
        batch = ledger.resolve(batch_id)
        record = batch.record
        outline = ledger.batch_outline(batch.address)
        with ledger.file_run_settings(batch.address) as from_file:
            ids = [s["runSettingId"] for s in run_settings(record)]
            read = _settings(from_file([*ids, "S9999"]))
            assert read == {s["runSettingId"]: s for s in run_settings(record)}
            assert len(read) == RUNS
        assert ledger.conn.execute("SELECT count(*) FROM temp.runlog_file_run_settings").fetchone()[0] == 0
        tables = {row[0] for row in ledger.conn.execute("SELECT name FROM main.sqlite_master")}
    assert "runlog_file_run_settings" not in tables
    assert "content" not in outline["batch"]["settings_file"] and "resolution" not in outline
    assert {k: v for k, v in outline.items() if k not in ("batch", "resolution")} == \
        {k: v for k, v in record.items() if k not in ("batch", "resolution")}
    pinned = {k: v for k, v in record["batch"]["settings_file"].items() if k != "content"}
    assert outline["batch"] == {**record["batch"], "settings_file": {  # the content by reference (runlog/blobs.py)
        **pinned, "content_blob": batch.stored["batch"]["settings_file"]["content_blob"]}}
    assert _settings({"x": '{"n": 123456789012345678901234567890, "f": 1e-07, "s": "\\u00e9\\n"}'}) == \
        {"x": {"n": 123456789012345678901234567890, "f": 1e-07, "s": "é\n"}}
