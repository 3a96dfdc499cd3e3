"""The ledger and records as a library: content addresses, append-only storage, verify, REFs."""

from __future__ import annotations

import json
import os
import sqlite3
import stat

import pytest

from recordfactory import make_record
from runlog import record as rec
from runlog.errors import LedgerError, UsageError
from runlog.ledger import Ledger
from runlog.verify import verify


@pytest.fixture
def ledger(tmp_path):
    with Ledger.open(tmp_path / "l" / "ledger.db") as led:
        yield led


def test_canonical_json_and_address_are_stable():
    a = {"b": [1, 2, {"z": "é", "a": None}], "a": 1.5}
    b = json.loads(json.dumps(a, indent=4))
    assert rec.canonical_json(a) == rec.canonical_json(b) == '{"a":1.5,"b":[1,2,{"a":null,"z":"é"}]}'.encode()
    assert rec.address(a) == rec.sha256_hex(rec.canonical_json(a))
    with pytest.raises(ValueError):
        rec.canonical_json({"x": float("nan")})


def test_fingerprint_ignores_identity_but_not_configuration():
    one = make_record(run_id="1111111")
    two = make_record(run_id="2222222")
    assert one["fingerprint"] == two["fingerprint"]
    assert rec.address(one) != rec.address(two)
    three = make_record(parameters={"sample_name": "NA12879"})
    assert three["fingerprint"] != one["fingerprint"]
    assert make_record(commit="b" * 40)["fingerprint"] != one["fingerprint"]
    typed = make_record(parameters={"sample_name": True})
    assert typed["fingerprint"] != make_record(parameters={"sample_name": "true"})["fingerprint"]


def test_files_are_private(tmp_path):
    path = tmp_path / "new" / "dir" / "ledger.db"
    Ledger.open(path).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


def test_records_are_append_only(ledger):
    entry, added = ledger.add_record(make_record())
    assert added
    again, added = ledger.add_record(entry.record)
    assert not added and again.address == entry.address
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        ledger.conn.execute("UPDATE records SET name = 'x'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        ledger.conn.execute("DELETE FROM records")


def test_schema_violations_are_refused(ledger):
    bad = make_record()
    del bad["request"]["roleArn"]
    with pytest.raises(LedgerError, match="roleArn"):
        ledger.add_record(bad)
    assert ledger.count() == 0


def _tamper(path, sql, *params):
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER IF EXISTS records_no_update")
    conn.execute("DROP TRIGGER IF EXISTS records_no_delete")
    conn.execute(sql, params)
    conn.commit()
    conn.close()


def test_verify_clean_and_detects_edit(tmp_path):
    path = tmp_path / "ledger.db"
    with Ledger.open(path) as ledger:
        entries = [ledger.add_record(make_record(run_id=str(1000000 + i)))[0] for i in range(3)]
        assert verify(ledger).ok
    body = entries[1].record
    body["request"]["parameters"]["sample_name"] = "forged"
    _tamper(path, "UPDATE records SET body = ? WHERE seq = 2", rec.canonical_json(body).decode())
    with Ledger.open(path) as ledger:
        report = verify(ledger)
    messages = [p.message for p in report.problems]
    assert any(entries[1].address[:12] in m and "content address" in m for m in messages)
    assert any("triggers" in m for m in messages)


def test_verify_detects_deleted_records(tmp_path):
    path = tmp_path / "ledger.db"
    with Ledger.open(path) as ledger:
        for i in range(4):
            ledger.add_record(make_record(run_id=str(2000000 + i)))
    _tamper(path, "DELETE FROM records WHERE seq = 2")
    with Ledger.open(path) as ledger:
        kinds = {p.kind for p in verify(ledger).problems}
    assert {"gap", "chain"} <= kinds
    _tamper(path, "DELETE FROM records WHERE seq = 4")
    with Ledger.open(path) as ledger:
        problems = verify(ledger).problems
    assert any(p.kind == "gap" and "#4" in p.message for p in problems)


def test_resolve_ref_forms(ledger):
    first, _ = ledger.add_record(make_record(run_id="1000001"))
    second, _ = ledger.add_record(make_record(run_id="1000002"))
    failed, _ = ledger.add_record(make_record(rejected=True))
    response = second.record["outcome"]["response"]
    assert ledger.resolve("1000002").address == second.address
    assert ledger.resolve(response["uuid"]).address == second.address
    assert ledger.resolve(response["uuid"].upper()).address == second.address
    assert ledger.resolve(response["arn"]).address == second.address
    assert ledger.resolve(first.address[:8]).address == first.address
    assert ledger.resolve("@1").address == failed.address
    assert ledger.resolve("@3").address == first.address
    for bad in ("@4", "@0", "9999999", "zzzzzz", "", "abc"):
        with pytest.raises(UsageError, match="no record matches"):
            ledger.resolve(bad)


def test_ambiguous_prefix_lists_candidates(ledger):
    added = [ledger.add_record(make_record(run_id=str(3000000 + i)))[0] for i in range(40)]
    by_prefix = {}
    for entry in added:
        by_prefix.setdefault(entry.address[:1], []).append(entry)
    prefix, group = max(by_prefix.items(), key=lambda kv: len(kv[1]))
    assert len(group) > 1
    hexes = min(e.address for e in group)[:6]
    matches = [e for e in group if e.address.startswith(hexes)]
    if len(matches) > 1:
        with pytest.raises(UsageError, match="ambiguous"):
            ledger.resolve(hexes)


def test_reused_run_id_is_ambiguous_but_uuid_is_not(ledger):
    old, _ = ledger.add_record(make_record(run_id="5555555"))
    new, _ = ledger.add_record(make_record(run_id="5555555"))
    with pytest.raises(UsageError, match="ambiguous"):
        ledger.resolve("5555555")
    assert ledger.resolve(old.run_uuid).address == old.address


def test_observations_are_appended_and_give_status(ledger):
    entry, _ = ledger.add_record(make_record())
    ledger.observe(entry.address, "GetRun", {"status": "RUNNING"}, status="RUNNING")
    ledger.observe(entry.address, "GetRun", {"status": "COMPLETED"}, status="COMPLETED")
    assert ledger.resolve("@1").status == "COMPLETED"
    assert [o["status"] for o in ledger.observations(entry.address)] == ["RUNNING", "COMPLETED"]
    assert verify(ledger).ok


def test_not_a_ledger_is_left_untouched(tmp_path):
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE people (name TEXT)")
    conn.commit()
    conn.close()
    before = other.read_bytes()
    with pytest.raises(LedgerError, match="not a runlog ledger"):
        Ledger.open(other)
    assert other.read_bytes() == before


def _in_another_process(path, sql: str) -> str:
    import subprocess
    import sys
    code = ("import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\n"
            "print(c.execute(sys.argv[2]).fetchone()[0])\nc.close()\n")
    done = subprocess.run([sys.executable, "-c", code, str(path), sql], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_opening_a_ledger_twice_in_one_process_loses_nothing_written_after(tmp_path):
    """POSIX locks are the process's, and closing any descriptor of a file drops all of them.
    Were a second open to read the ledger's file outside SQLite, the first connection's lock
    would go with it: another process closing the ledger would then take itself for the last
    reader, fold and delete the WAL, and what the first connection wrote next would go to a
    deleted file, seen by no other process."""
    path = tmp_path / "ledger.db"
    first = Ledger.open(path)
    first.add_record(make_record())
    second = Ledger.open(path, readonly=True)  # an API caller's, or a writer's second connection
    assert _in_another_process(path, "SELECT count(*) FROM records") == "1"
    first.add_record(make_record(name="written-after"))
    assert _in_another_process(path, "SELECT count(*) FROM records") == "2"
    assert second.resolve("@2").address
    second.conn.close()
    first.conn.close()
    assert verify(Ledger.open(path, readonly=True)).ok


@pytest.mark.parametrize("content", [b"x", b"not a database\n" * 100, b"SQLite format 3\x00" + b"\x01" * 600])
@pytest.mark.parametrize("readonly", [False, True])
def test_a_foreign_file_of_any_size_is_refused_and_left_as_it_was(tmp_path, content, readonly):
    """A short file SQLite would take for an empty database (and then write to), a text file
    and a file with SQLite's magic but no database behind it: each is refused unchanged."""
    path = tmp_path / "notes.db"
    path.write_bytes(content)
    with pytest.raises(LedgerError, match="is not a runlog ledger .not an SQLite database.; it was left untouched"):
        Ledger.open(path, readonly=readonly)
    assert path.read_bytes() == content and os.listdir(tmp_path) == ["notes.db"]


def _mutations():
    """Valid and invalid variants of a record, to compare the two schema validators on."""
    base = make_record()
    yield base, True
    yield make_record(rejected=True), True
    for path, value in [
        (("kind",), "resubmit"), (("created",), "yesterday"), (("request", "priority"), "1"),
        (("request", "Colour"), "red"), (("git", "state"), "muddy"), (("fingerprint",), "xyz"),
        (("outcome", "status"), "maybe"), (("caller",), {"arn": 1}), (("parameters", "source"), "ftp"),
        (("git", "commit"), "not-a-sha"), (("request", "tags"), {"a": 1}), (("warnings",), "one"),
    ]:
        record = json.loads(json.dumps(base))
        target = record
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        yield record, False
    record = json.loads(json.dumps(base))
    del record["git"]["branch"]
    yield record, False
    record = json.loads(json.dumps(base))
    del record["outcome"]["response"]["uuid"]
    yield record, False


def test_fast_and_reference_schema_validators_agree():
    for record, valid in _mutations():
        assert rec.is_valid(record) is valid
        assert rec._validator().is_valid(record) is valid  # jsonschema, the reference
        assert (rec.schema_errors(record) == []) is valid


def test_verify_in_parallel_finds_the_same_problems(tmp_path, monkeypatch):
    import runlog.verify as verify_module

    path = tmp_path / "ledger.db"
    with Ledger.open(path) as ledger:
        for i in range(30):
            ledger.add_record(make_record(run_id=str(4000000 + i)))
    body = json.loads(sqlite3.connect(path).execute("SELECT body FROM records WHERE seq = 17").fetchone()[0])
    body["request"]["name"] = "forged"
    _tamper(path, "UPDATE records SET body = ? WHERE seq = 17", rec.canonical_json(body).decode())
    with Ledger.open(path) as ledger:
        serial = [p.as_dict() for p in verify(ledger).problems]
        monkeypatch.setattr(verify_module, "PARALLEL_FROM", 5)
        parallel = [p.as_dict() for p in verify(ledger).problems]
    assert serial == parallel
    assert any(p["kind"] == "altered" and "#17" in p["message"] for p in parallel)


def test_seals_are_the_digest_of_the_rows_canonical_json():
    """ledger.sealer writes the row's JSON itself (for speed); it must be byte for byte
    record.canonical_json's, or every seal of an older ledger would stop matching."""
    import hashlib
    import random

    from runlog.ledger import SEAL_SKIPS, seal_of

    rnd = random.Random(11)

    def value():
        kind = rnd.randrange(6)
        if kind == 0:
            return None
        if kind == 1:
            return rnd.randrange(-2**70, 2**70)
        if kind == 2:
            return "".join(chr(rnd.choice([rnd.randrange(0, 0x80), rnd.randrange(0x80, 0xD800),
                                           rnd.randrange(0xE000, 0x110000)])) for _ in range(rnd.randrange(12)))
        if kind == 3:
            return rnd.uniform(-1e20, 1e20) * 10.0 ** rnd.randrange(-30, 30)
        return rnd.randrange(100)

    for _ in range(5000):
        names = rnd.sample(["seq", "address", "inserted_at", "zeta", "Alpha", "\u00e9", "body", "intent"],
                           rnd.randrange(1, 8))
        values = [value() for _ in names]
        table = rnd.choice(["records", "attempts", "observations", "meta"])
        row = {k: v for k, v in zip(names, values, strict=True) if v is not None and k not in SEAL_SKIPS.get(table, ())}
        want = hashlib.sha256(rec.canonical_json({"table": table, "row": row})).hexdigest()
        assert seal_of(table, names, values) == want, (table, names, values)
    with pytest.raises(TypeError):
        seal_of("meta", ["key", "value"], ["k", b"bytes"])
