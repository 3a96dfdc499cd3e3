"""Session 21: the configuration fingerprint's index holds its first characters (migration m015)."""

from __future__ import annotations

import json
import sqlite3

from recordfactory import make_record
from runlog.ledger import FINGERPRINT_PREFIX, Ledger
from runlog.migrations import MIGRATIONS


def _with_fingerprint(run_id: str, fingerprint: str) -> dict:
    record = make_record(run_id=run_id)
    record["fingerprint"] = fingerprint
    return record


def test_a_fingerprint_lookup_tells_apart_fingerprints_that_share_the_indexed_prefix(tmp_path):
    shared = "abcdef12"
    assert len(shared) == FINGERPRINT_PREFIX
    first, other = shared + "0" * 56, shared + "1" * 56
    with Ledger.open(tmp_path / "l.db") as ledger:
        for run_id, fingerprint in (("1000001", first), ("1000002", other), ("1000003", first),
                                    ("1000004", "0" * 64)):
            ledger.add_record(_with_fingerprint(run_id, fingerprint))
        assert sorted(e.run_id for e in ledger.same_configuration(first)) == ["1000001", "1000003"]
        assert [e.run_id for e in ledger.same_configuration(other)] == ["1000002"]
        assert ledger.same_configuration(shared + "2" * 56) == []
        assert ledger.same_configuration(shared) == []  # a prefix alone names no configuration
        assert sorted(e.run_id for e in ledger.listing(fingerprint=first)) == ["1000001", "1000003"]
        plan = " ".join(row[-1] for row in ledger.conn.execute(
            f"EXPLAIN QUERY PLAN SELECT seq FROM records WHERE {Ledger._SAME_FINGERPRINT}", (shared, first)))
        assert "records_fingerprint" in plan and "SCAN records" not in plan, plan


def test_a_format_14_ledger_gets_the_shorter_index_and_same_as_still_lists_its_runs(tmp_path, run_cli):
    path = tmp_path / "old.db"
    records = [make_record(run_id="2000001", name="a"), make_record(run_id="2000002", name="a"),
               make_record(run_id="2000003", parameters={"sample_name": "other"})]
    with Ledger.open(path) as ledger:
        for record in records:
            ledger.add_record(record)
    conn = sqlite3.connect(path)  # back to format 14: the fingerprint's index as m001 made it
    conn.executescript("DROP INDEX records_fingerprint; CREATE INDEX records_fingerprint ON records(fingerprint); "
                       "PRAGMA user_version = 14;")
    conn.close()
    assert MIGRATIONS[14].__name__ == "m015_shorter_fingerprint_key"
    env = {"RUNLOG_LEDGER": str(path)}
    same = run_cli("log", "--same-as", "2000001", "--json", env=env)  # read-only: a migrated copy in memory
    assert same.exit_code == 0, same.output
    assert sorted(entry["run_id"] for entry in json.loads(same.stdout)) == ["2000001", "2000002"]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 14  # a read left the file as it was
    conn.close()
    Ledger.open(path).close()  # as a writing command opens it: migrated in place
    conn = sqlite3.connect(path)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    index = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'records_fingerprint'").fetchone()[0]
    conn.close()
    assert version == len(MIGRATIONS) and f"substr(fingerprint, 1, {FINGERPRINT_PREFIX})" in index
    same = run_cli("log", "--same-as", "2000002", "--json", env=env)
    assert sorted(entry["run_id"] for entry in json.loads(same.stdout)) == ["2000001", "2000002"]
    verify = run_cli("verify", "--no-remote", env=env)
    assert verify.exit_code == 0, verify.output
