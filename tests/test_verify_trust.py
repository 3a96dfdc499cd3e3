"""`runlog verify` proves what it claims: every column of every table, each record against its
attempt's intent, triggers by their SQL, the head against a witness; read commands never
create or write a ledger; odd ledger paths; unreadable ledgers give one line."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from helpers import TRIGGERS, tamper
from recordfactory import make_record
from runlog import record as rec
from runlog.ledger import Ledger, chain_next, index_columns, row_seal


def restore_triggers(path):
    """Put the append-only triggers back exactly as runlog creates them (a careful forger)."""
    import sqlite_utils

    from runlog.migrations import MIGRATIONS

    conn = sqlite3.connect(path)
    fresh = sqlite3.connect(":memory:")
    db = sqlite_utils.Database(fresh)
    for migration in MIGRATIONS:
        migration(db)
    for name, sql in fresh.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"):
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        conn.execute(sql)
    conn.commit()
    conn.close()


def verify_json(run_cli, *args):
    result = run_cli("verify", "--json", *args)
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture
def runs(three_runs, ledger_path):  # noqa: F811
    with Ledger.open(ledger_path) as ledger:
        ledger.observe(three_runs[0].address, "GetRun", {"status": "RUNNING"}, run_uuid=three_runs[0].run_uuid,
                       status="RUNNING")
        ledger.index_observations()
    return three_runs


# -- every column of every table ---------------------------------------------------------------------

COLUMN_EDITS = {
    "observation-status": "UPDATE observations SET status = 'FAILED'",
    "observation-observed_at": "UPDATE observations SET observed_at = '2020-01-01T00:00:00.000Z'",
    "observation-source": "UPDATE observations SET source = 'forged'",
    "observation-record": "UPDATE observations SET record = (SELECT address FROM records WHERE seq = 1)",
    "observation-run_uuid": "UPDATE observations SET run_uuid = '00000000-0000-0000-0000-000000000000'",
    "attempt-created": "UPDATE attempts SET created = '2020-01-01T00:00:00.000Z' WHERE seq = 2",
    "attempt-request_id": "UPDATE attempts SET request_id = 'other' WHERE seq = 2",
    "record-inserted_at": "UPDATE records SET inserted_at = '2020-01-01T00:00:00.000Z' WHERE seq = 2",
    "meta-ledger_id": "UPDATE meta SET value = 'another-ledger' WHERE key = 'ledger_id'",
    "observation-deleted": "DELETE FROM observations",
    "attempt-deleted-with-its-seal": "DELETE FROM attempts WHERE seq = 1",
}


@pytest.mark.parametrize("statement", COLUMN_EDITS.values(), ids=COLUMN_EDITS.keys())
def test_a_change_to_any_column_is_named(runs, ledger_path, run_cli, statement):
    assert run_cli("verify").exit_code == 0
    tamper(ledger_path, statement)
    restore_triggers(ledger_path)
    code, report = verify_json(run_cli)
    assert code == 1 and not report["ok"], report
    result = run_cli("verify")
    assert result.exit_code == 1 and "FAIL " in result.stdout


def test_a_changed_observation_status_is_named_with_its_row(runs, ledger_path, run_cli):
    tamper(ledger_path, "UPDATE observations SET status = 'FAILED'")
    result = run_cli("verify")
    assert result.exit_code == 1
    assert "FAIL observation #1: a column of its row was changed" in result.stdout


def test_rows_added_outside_runlog_are_named(runs, ledger_path, run_cli):
    tamper(ledger_path, "INSERT INTO observations (record, observed_at, source, status, body, sha256) "
                        "SELECT address, '2030-01-01T00:00:00.000Z', 'GetRun', 'COMPLETED', '{}', "
                        "'44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a' FROM records WHERE seq = 3")
    result = run_cli("verify")
    assert result.exit_code == 1 and "observation #2 has no seal (inserted outside runlog)" in result.stdout


# -- each record against its attempt's intent ----------------------------------------------------------

def test_a_rewritten_record_with_everything_recomputed_differs_from_its_intent(runs, ledger_path, run_cli):
    """The forger recomputes the address, fingerprint, lookup columns, chain and seals; the
    intent committed before StartRun still tells."""
    conn = sqlite3.connect(ledger_path)
    rows = conn.execute("SELECT seq, body FROM records ORDER BY seq").fetchall()
    conn.close()
    statements, chain = [], None
    for seq, body in rows:
        record = json.loads(body)
        if seq == 2:
            record["request"]["parameters"] = {"forged": "value"}
            record["fingerprint"] = rec.fingerprint(record)
        data = rec.canonical_json(record)
        address = rec.sha256_hex(data)
        chain = chain_next(chain, address)
        statements.append((seq, address, data.decode(), chain, index_columns(record)))
    conn = sqlite3.connect(ledger_path)
    for name in TRIGGERS:
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
    for seq, address, body, chain, columns in statements:
        sets = ", ".join(f"{k} = ?" for k in columns)
        old = conn.execute("SELECT address FROM records WHERE seq = ?", (seq,)).fetchone()[0]
        conn.execute("UPDATE observations SET record = ? WHERE record = ?", (address, old))
        conn.execute(f"UPDATE records SET address = ?, body = ?, chain = ?, {sets} WHERE seq = ?",
                     (address, body, chain, *columns.values(), seq))
    conn.execute("DELETE FROM observation_addresses")
    for table, key in (("records", "seq"), ("observations", "seq")):
        cursor = conn.execute(f"SELECT * FROM {table}")
        names = [d[0] for d in cursor.description]
        for values in cursor.fetchall():
            row = dict(zip(names, values, strict=True))
            conn.execute("UPDATE row_seals SET sha256 = ? WHERE tbl = ? AND id = ?",
                         (row_seal(table, row), table, str(row[key])))
    conn.commit()
    conn.close()
    restore_triggers(ledger_path)
    code, report = verify_json(run_cli)
    assert code == 1
    assert [p["kind"] for p in report["problems"]] == ["intent"], report["problems"]
    assert "differs from the intent its attempt committed before StartRun" in report["problems"][0]["message"]


# -- triggers by their SQL ------------------------------------------------------------------------------

@pytest.mark.parametrize("statements, expected", [
    (["DROP TRIGGER records_no_update",
      "CREATE TRIGGER records_no_update BEFORE UPDATE ON records WHEN 0 "
      "BEGIN SELECT RAISE(ABORT, 'records are append-only'); END"], "records_no_update altered"),
    (["DROP TRIGGER observation_addresses_no_update", "DROP TRIGGER observation_addresses_no_delete"],
     "observation_addresses_no_delete removed"),
    (["CREATE TRIGGER sneaky AFTER INSERT ON observations BEGIN SELECT 1; END"], "sneaky added"),
], ids=["no-op-when-0", "observation-addresses-dropped", "extra-trigger"])
def test_triggers_are_compared_by_their_sql(runs, ledger_path, run_cli, statements, expected):
    conn = sqlite3.connect(ledger_path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()
    result = run_cli("verify")
    assert result.exit_code == 1
    assert "append-only triggers were tampered with" in result.stdout and expected in result.stdout


# -- the head and its witnesses ------------------------------------------------------------------------

def _drop_newest(path):
    """Delete the newest record as a careful forger would: its seal, its attempt, the counters."""
    tamper(path,
           "DELETE FROM row_seals WHERE tbl = 'records' AND id = (SELECT max(seq) FROM records)",
           "DELETE FROM row_seals WHERE tbl = 'attempts' AND id = (SELECT max(seq) FROM attempts)",
           "DELETE FROM attempts WHERE seq = (SELECT max(seq) FROM attempts)",
           "DELETE FROM row_seals WHERE tbl = 'observations' AND id IN (SELECT CAST(seq AS TEXT) FROM observations "
           " WHERE record = (SELECT address FROM records WHERE seq = (SELECT max(seq) FROM records)))",
           "DELETE FROM observation_addresses",
           "DELETE FROM observations WHERE record = (SELECT address FROM records WHERE seq = (SELECT max(seq) FROM records))",
           "UPDATE sqlite_sequence SET seq = (SELECT coalesce(max(seq), 0) FROM observations) WHERE name = 'observations'",
           "DELETE FROM records WHERE seq = (SELECT max(seq) FROM records)",
           "UPDATE sqlite_sequence SET seq = seq - 1 WHERE name IN ('records', 'attempts')")
    restore_triggers(path)


def test_verify_prints_the_head_and_expect_detects_records_removed_from_the_end(runs, ledger_path, run_cli):
    result = run_cli("verify")
    head = result.stdout.splitlines()[-1]
    assert head.startswith("head 3:") and len(head.split(":")[1]) == 64
    assert head.split()[1].split(":")[1] == runs[0].chain
    code, report = verify_json(run_cli)
    assert report["head"] == {"records": 3, "chain": runs[0].chain, "text": f"3:{runs[0].chain}"}
    kept = head.split()[1]
    assert run_cli("verify", "--expect", kept).exit_code == 0

    _drop_newest(ledger_path)
    assert run_cli("verify").exit_code == 0  # no witness: a clean deletion of the newest record
    result = run_cli("verify", "--expect", kept[:20])
    assert result.exit_code == 1
    assert "the expected head saw 3 records, the ledger has 2" in result.stdout


@pytest.mark.parametrize("bad", ["3", "x:abc", "3:abc", "-1:" + "a" * 64])
def test_expect_that_is_no_head_is_bad_input(runs, run_cli, bad):
    result = run_cli("verify", "--expect", bad)
    assert result.exit_code == 2 and "--expect" in result.stderr and "N:CHAIN" in result.stderr


def test_push_leaves_the_head_and_verify_checks_the_remote(runs, ledger_path, s3_server, tmp_path, run_cli,
                                                            run_proc):
    s3_server.create_bucket(Bucket="lab-provenance")
    remote = "s3://lab-provenance/runlog"
    assert run_cli("push", remote).exit_code == 0
    with Ledger.open(ledger_path, readonly=True) as ledger:
        ledger_id = ledger.meta()["ledger_id"]
    keys = [o["Key"] for o in s3_server.list_objects_v2(Bucket="lab-provenance", Prefix="runlog/heads/")["Contents"]]
    assert keys == [f"runlog/heads/{ledger_id}/000000000003.json"]
    head = json.loads(s3_server.get_object(Bucket="lab-provenance", Key=keys[0])["Body"].read())
    assert head == {"format": "runlog.head/1", "ledger": ledger_id, "records": 3, "chain": runs[0].chain}

    (Path.cwd() / ".runlog.toml").write_text(f'remote = "{remote}"\n')  # the analysis repository's
    result = run_cli("verify")
    assert result.exit_code == 0, result.output
    assert f"checked against {remote}" in result.stdout

    _drop_newest(ledger_path)
    result = run_cli("verify")
    assert result.exit_code == 1
    assert f"the head pushed to {remote}/ saw 3 records, the ledger has 2" in result.stdout
    assert run_cli("verify", "--no-remote").exit_code == 0


def test_verify_without_a_remote_does_not_import_boto3(runs, run_proc, ledger_path):
    code = ("import sys, runlog.cli as c\n"
            "try:\n    c.main(['verify'])\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
            "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules\n")
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "RUNLOG_LEDGER": str(ledger_path)})
    assert done.returncode == 0, done.stderr


# -- read commands never create or write a ledger ---------------------------------------------------------

READ_COMMANDS = [("verify",), ("log",), ("show", "@1"), ("diff", "@1", "@2"),
                 ("export", "--format", "bco", "-o", "run.bco.json", "@1")]


@pytest.mark.parametrize("args", READ_COMMANDS, ids=[a[0] for a in READ_COMMANDS])
def test_read_commands_refuse_an_empty_ledger_and_leave_it_alone(tmp_path, run_cli, args, monkeypatch):
    monkeypatch.chdir(tmp_path.parent)
    ledger = tmp_path / "ledger.db"
    ledger.write_bytes(b"")
    result = run_cli("--ledger", ledger, *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("runlog: error: ledger ") and "is empty (0 bytes)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert ledger.read_bytes() == b"" and sorted(os.listdir(tmp_path)) == ["ledger.db"]


@pytest.mark.parametrize("args", READ_COMMANDS, ids=[a[0] for a in READ_COMMANDS])
def test_read_commands_refuse_a_foreign_file(tmp_path, run_cli, args, monkeypatch):
    monkeypatch.chdir(tmp_path.parent)
    text = tmp_path / "notes.db"
    text.write_text("not a database\n")
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE people (name TEXT)")
    conn.commit()
    conn.close()
    empty = tmp_path / "empty-sqlite.db"  # an SQLite database with nothing in it: not a ledger either
    conn = sqlite3.connect(empty)
    conn.executescript("CREATE TABLE t (x); DROP TABLE t;")
    conn.close()
    for path in (text, other, empty):
        before = path.read_bytes()
        result = run_cli("--ledger", path, *args)
        assert result.exit_code == 2 and "not a runlog ledger" in result.stderr, result.output
        assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["empty-sqlite.db", "notes.db", "other.db"]


def test_verify_on_a_missing_ledger_creates_nothing(tmp_path, run_cli):
    missing = tmp_path / "sub" / "ledger.db"
    result = run_cli("--ledger", missing, "verify")
    assert result.exit_code == 2 and "no ledger at" in result.stderr
    assert not (tmp_path / "sub").exists()


def test_dev_null_as_ledger_is_refused_and_leaves_no_journal(run_proc):
    existed = os.path.exists("/dev/null-journal")
    result = run_proc("log", env={"RUNLOG_LEDGER": "/dev/null"})
    assert result.returncode == 2 and "is not a runlog ledger" in result.stderr
    assert os.path.exists("/dev/null-journal") == existed


def test_read_commands_leave_the_ledger_file_unwritten(runs, ledger_path, run_cli):
    import gc

    gc.collect()  # connections the in-process submits left for the collector: closed (and checkpointed) now
    Ledger.open(ledger_path).close()
    before = ledger_path.read_bytes()
    mtime = ledger_path.stat().st_mtime_ns
    for args in READ_COMMANDS:
        assert run_cli(*args).exit_code in (0, 1), args
        assert ledger_path.read_bytes() == before and ledger_path.stat().st_mtime_ns == mtime, args


def _format_2_ledger(path):
    """A ledger as runlog wrote it before migration m003 (no row seals), with one record."""
    with Ledger.open(path) as ledger:
        ledger.add_record(make_record())
    conn = sqlite3.connect(path)
    conn.executescript("DROP TRIGGER row_seals_no_update; DROP TRIGGER row_seals_no_delete; DROP TABLE row_seals;"
                       "PRAGMA user_version = 2;")
    conn.close()


def test_an_older_ledger_is_read_without_being_migrated_then_migrated_by_a_write(tmp_path, run_cli):
    old = tmp_path / "old.db"
    _format_2_ledger(old)
    before = old.read_bytes()
    result = run_cli("--ledger", old, "verify")
    assert result.exit_code == 0 and "verified 1 record," in result.stdout, result.output
    assert json.loads(run_cli("--ledger", old, "log", "--json").stdout)[0]["run_id"] == "1234567"
    assert old.read_bytes() == before
    with Ledger.open(old) as ledger:  # a writing command migrates it
        from runlog.migrations import LEDGER_FORMAT

        assert ledger.conn.execute("PRAGMA user_version").fetchone()[0] == LEDGER_FORMAT
        assert ledger.conn.execute("SELECT count(*) FROM row_seals").fetchone()[0] == 1 + 2  # record, meta
    assert run_cli("--ledger", old, "verify").exit_code == 0
    tamper(old, "UPDATE records SET inserted_at = 'x'")
    restore_triggers(old)
    assert run_cli("--ledger", old, "verify").exit_code == 1


# -- paths and unreadable ledgers ------------------------------------------------------------------------

def _ledger_with(path, count):
    path.parent.mkdir(parents=True, exist_ok=True)
    with Ledger.open(path) as ledger:
        for i in range(count):
            ledger.add_record(make_record(run_id=str(7000000 + i)))


@pytest.mark.parametrize("relative", ["proj#1/ledger.db", "what?/ledger.db", "pct/a%2Edb", "sp ace/l%20.db"])
def test_ledger_paths_with_uri_characters(tmp_path, run_cli, relative, monkeypatch):
    import runlog.verify as verify_module

    path = tmp_path / relative
    _ledger_with(path, 2)
    decoy = tmp_path / "pct" / "a.db"  # what `pct/a%2Edb` means unescaped: a tampered ledger
    _ledger_with(decoy, 5)
    tamper(decoy, "UPDATE records SET body = replace(body, 'NA12878', 'forged')")
    result = run_cli("--ledger", path, "verify")
    assert result.exit_code == 0, result.output
    assert "verified 2 records" in result.stdout
    monkeypatch.setattr(verify_module, "PARALLEL_FROM", 1)  # worker processes open the path themselves
    result = run_cli("--ledger", path, "verify")
    assert result.exit_code == 0 and "verified 2 records" in result.stdout, result.output
    assert len(json.loads(run_cli("--ledger", path, "log", "--json").stdout)) == 2


def test_a_nul_in_the_ledger_path_is_one_line(tmp_path):
    from runlog.errors import LedgerError

    for readonly in (True, False):
        with pytest.raises(LedgerError, match="cannot read ledger .*contains a NUL character"):
            Ledger.open(f"{tmp_path}/a\0b.db", readonly=readonly)
    assert os.listdir(tmp_path) == []


def test_a_corrupt_page_is_the_one_line_cannot_read_error(tmp_path, run_cli):
    path = tmp_path / "ledger.db"
    _ledger_with(path, 40)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'records'").fetchone()[0]
    conn.close()
    with open(path, "r+b") as fh:  # garble the records table's root page (and so its b-tree)
        fh.seek((root - 1) * page)
        fh.write(b"\xff" * page)
    for args in (("verify",), ("log", "-n", "0"), ("show", "@1")):
        result = run_cli("--ledger", path, *args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.startswith(f"runlog: error: cannot read ledger {path}")
        assert len(result.stderr.strip().splitlines()) == 1
    for args in (("diff", "@1", "@2"), ("export", "@1", "-o", str(tmp_path / "out"))):
        result = run_cli("--ledger", path, *args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.startswith("runlog: error: cannot read") and "internal error" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_push_refuses_what_verify_refuses(runs, ledger_path, s3_server, run_cli):
    """An observation edited behind runlog's back never becomes a valid object on the remote."""
    s3_server.create_bucket(Bucket="lab-provenance")
    tamper(ledger_path, "UPDATE observations SET status = 'FAILED'")
    restore_triggers(ledger_path)
    result = run_cli("push", "s3://lab-provenance/runlog")
    assert result.exit_code == 2
    assert "refusing to push: observation #1: a column of its row was changed" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    listed = s3_server.list_objects_v2(Bucket="lab-provenance", Prefix="runlog/observations/")
    assert listed.get("KeyCount", 0) == 0


def test_verify_never_reads_a_file_renamed_into_the_ledgers_place_while_it_runs(tmp_path, monkeypatch):
    """verify's worker processes open the ledger again by its path: a clean file renamed into
    its place after the ledger was opened is not checked as the ledger (which was tampered
    with); verify stops with one line instead."""
    import runlog.verify as verify_module
    from runlog.errors import LedgerError

    path, clean = tmp_path / "ledger.db", tmp_path / "clean.db"
    _ledger_with(path, 6)
    tamper(path, "UPDATE records SET body = replace(body, 'NA12878', 'forged')")
    _ledger_with(clean, 6)
    monkeypatch.setattr(verify_module, "PARALLEL_FROM", 1)  # worker processes open the path themselves
    with Ledger.open(path) as ledger:
        assert not verify_module.verify(ledger).ok  # the tampered rows found, by the workers too
        os.replace(clean, path)
        with pytest.raises(LedgerError, match=r"^the ledger file .*ledger\.db was replaced while it was verified"):
            verify_module.verify(ledger)
