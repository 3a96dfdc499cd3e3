"""verify checks records a chunk at a time the fast way (verify._clean) and looks closer
(check_record) only at rows the fast way does not pass. Whatever a ledger holds, the problems
verify names must be exactly those the one-by-one reference check names; and gaps and broken
chain links must be found across the slices worker processes check."""

from __future__ import annotations

import json
import sqlite3

import pytest

from helpers import tamper
from recordfactory import make_record
from runlog import record as rec
from runlog import verify as verify_module
from runlog.ledger import INDEX_COLUMNS, Ledger, index_columns
from runlog.verify import verify


def _ledger(path, count=12):
    """Records as `runlog submit` writes them: an attempt (the intent) first, then the record,
    and an observation of each run."""
    with Ledger.open(path) as ledger:
        for i in range(count):
            record = make_record(run_id=str(5000000 + i), parameters={"sample_name": f"S{i}", "depth": i})
            intent = {k: v for k, v in record.items() if k not in ("outcome", "fingerprint")}
            intent["fingerprint"] = record["fingerprint"]
            ledger.add_attempt(intent)
            entry = ledger.complete(intent, record["outcome"])
            ledger.observe(entry.address, "GetRun", {"status": "COMPLETED"}, run_uuid=entry.run_uuid,
                           status="COMPLETED")
    return path


def _body(path, seq):
    return sqlite3.connect(path).execute("SELECT body FROM records WHERE seq = ?", (seq,)).fetchone()[0]


def _rewritten(path, seq, change):
    """The record's body changed and written back in canonical form, its address recomputed."""
    body = json.loads(_body(path, seq))
    change(body)
    text = rec.canonical_json(body).decode()
    return text, rec.sha256_hex(text.encode())


def _float_exponent(path):  # a float orjson writes otherwise than the json module (1e-07)
    text, address = _rewritten(path, 4, lambda b: b["request"]["parameters"].update(depth=1e-07))
    tamper(path, "UPDATE records SET body = ?, address = ? WHERE seq = 4", params=(text, address))


def _spaced(path):  # not canonical: a space after a colon, address recomputed
    text = _body(path, 4).replace('"kind":', '"kind": ', 1)
    tamper(path, "UPDATE records SET body = ?, address = ? WHERE seq = 4", params=(text, rec.sha256_hex(text.encode())))


def _fingerprint(path):
    text, address = _rewritten(path, 5, lambda b: b.update(fingerprint="0" * 64))
    tamper(path, "UPDATE records SET body = ?, address = ? WHERE seq = 5", params=(text, address))


def _schema(path):
    text, address = _rewritten(path, 6, lambda b: b.update(kind="forged"))
    tamper(path, "UPDATE records SET body = ?, address = ? WHERE seq = 6", params=(text, address))


def _not_an_object(path):
    tamper(path, "UPDATE records SET body = '[1]', address = ? WHERE seq = 6", params=(rec.sha256_hex(b"[1]"),))


def _not_json(path):
    tamper(path, "UPDATE records SET body = '{x', address = ? WHERE seq = 6", params=(rec.sha256_hex(b"{x"),))


def _deep(path):
    text = "[" * 5000 + "]" * 5000
    tamper(path, "UPDATE records SET body = ?, address = ? WHERE seq = 6", params=(text, rec.sha256_hex(text.encode())))


def _intent(path):  # the record no longer its intent plus an outcome: a parameter changed everywhere
    text, address = _rewritten(path, 7, lambda b: b["request"]["parameters"].update(sample_name="forged"))
    tamper(path, "UPDATE records SET body = ?, address = ? WHERE seq = 7", params=(text, address))


TAMPERINGS = {
    "intact": None,
    "body-edited": "UPDATE records SET body = replace(body, 'S3', 'S9') WHERE seq = 4",
    "column-name": "UPDATE records SET name = 'forged' WHERE seq = 3",
    "column-batch_id": "UPDATE records SET batch_id = 'x' WHERE seq = 3",
    "column-run_id-null": "UPDATE records SET run_id = NULL WHERE seq = 2",
    "column-seq-as-text": "UPDATE records SET inserted_at = 7 WHERE seq = 2",
    "blob-column": "UPDATE records SET inserted_at = x'00ff' WHERE seq = 2",
    "record-seal-gone": "DELETE FROM row_seals WHERE tbl = 'records' AND id = '3'",
    "record-seal-changed": "UPDATE row_seals SET sha256 = 'x' WHERE tbl = 'records' AND id = '8'",
    "attempt-seal-gone": "DELETE FROM row_seals WHERE tbl = 'attempts' AND id = '3'",
    "attempt-created": "UPDATE attempts SET created = '2020-01-01T00:00:00.000Z' WHERE seq = 9",
    "attempt-intent": "UPDATE attempts SET intent = replace(intent, 'S9', 'S1') WHERE seq = 9",
    "attempt-digest": "UPDATE attempts SET intent_sha256 = 'x' WHERE seq = 9",
    "attempt-gone": "DELETE FROM attempts WHERE seq = 10",
    "record-gone": "DELETE FROM records WHERE seq = 6",
    "chain": "UPDATE records SET chain = 'x' WHERE seq = 5",
    "observation-gone": "DELETE FROM observations WHERE seq = 4",
    "observation-record": "UPDATE observations SET record = 'nothing' WHERE seq = 4",
    "float-exponent": _float_exponent,
    "not-canonical": _spaced,
    "fingerprint": _fingerprint,
    "schema": _schema,
    "not-an-object": _not_an_object,
    "not-json": _not_json,
    "deep": _deep,
    "intent": _intent,
}


@pytest.mark.parametrize("tampering", TAMPERINGS.values(), ids=TAMPERINGS.keys())
def test_the_fast_way_names_exactly_what_the_reference_check_names(tmp_path, monkeypatch, tampering):
    path = _ledger(tmp_path / "ledger.db")
    if isinstance(tampering, str):
        tamper(path, tampering)
    elif tampering is not None:
        tampering(path)
    with Ledger.open(path, readonly=True) as ledger:
        fast = [p.as_dict() for p in verify(ledger).problems]
        looked = []
        original = verify_module._look_closer

        def counted(values, at, sealed, tally):
            looked.append(values[at.seq])
            original(values, at, sealed, tally)

        monkeypatch.setattr(verify_module, "_look_closer", counted)
        fast_again = [p.as_dict() for p in verify(ledger).problems]
        looked_at = list(looked)
        monkeypatch.setattr(verify_module, "_clean", lambda rows, at, sealed: [False] * len(rows))  # the reference
        reference = [p.as_dict() for p in verify(ledger).problems]
    assert fast == fast_again == reference
    assert (fast == []) == (tampering is None)
    if tampering is None:
        assert looked_at == []  # an intact ledger never needs the closer look


def test_lookup_columns_are_compared_in_index_columns_order():
    assert tuple(index_columns(make_record())) == INDEX_COLUMNS


@pytest.mark.parametrize("statement, expected", [
    ("DELETE FROM records WHERE seq IN (9, 10)", "record #9-#10 missing"),
    ("DELETE FROM records WHERE seq = 1", "record #1 missing"),
    ("DELETE FROM records WHERE seq = 40", "record #40 missing"),
    ("DELETE FROM observations WHERE seq = 21", "observation #21 missing"),
])
def test_gaps_and_broken_links_are_found_across_the_slices_of_worker_processes(tmp_path, monkeypatch, statement,
                                                                               expected):
    path = _ledger(tmp_path / "ledger.db", count=40)
    tamper(path, statement)
    with Ledger.open(path, readonly=True) as ledger:
        serial = [p.as_dict() for p in verify(ledger).problems]
        monkeypatch.setattr(verify_module, "PARALLEL_FROM", 1)  # slices of ~10 rows, in worker processes
        parallel = [p.as_dict() for p in verify(ledger).problems]
    assert serial == parallel
    gaps = [p["message"] for p in parallel if p["kind"] == "gap"]
    assert len(gaps) == 1 and expected in gaps[0]
    if "FROM records" in statement and "= 40" not in statement:  # the record after the hole names it
        assert [p["kind"] for p in parallel].count("chain") == 1


def test_the_expected_ledger_schema_in_the_package_is_the_migrations_one():
    """verify compares a ledger's tables, indexes and triggers with runlog/schemas/ledger-schema.json;
    after a new migration, regenerate it with `python -m runlog.verify`."""
    assert verify_module.expected_schema() == verify_module.fresh_schema(), "run `python -m runlog.verify`"


@pytest.mark.parametrize("statement", [
    "DELETE FROM pending_attempts",  # the warning about the pending attempt would vanish
    "INSERT INTO pending_attempts (request_id) SELECT request_id FROM attempts WHERE seq = 2",  # completed
    "INSERT INTO pending_attempts (request_id) VALUES ('never-made')",
])
def test_a_changed_list_of_pending_attempts_is_named(tmp_path, statement):
    path = _ledger(tmp_path / "ledger.db", count=3)
    with Ledger.open(path) as ledger:
        record = make_record(run_id="6000000")
        ledger.add_attempt({k: v for k, v in record.items() if k != "outcome"})  # sent, never answered
    with Ledger.open(path, readonly=True) as ledger:
        report = verify(ledger)
        assert report.ok and report.pending == 1
    conn = sqlite3.connect(path)  # no trigger guards this derived table: nothing else is touched
    conn.execute(statement)
    conn.commit()
    conn.close()
    with Ledger.open(path, readonly=True) as ledger:
        report = verify(ledger)
    assert [p.kind for p in report.problems] == ["attempt"]
    assert "list of pending attempts was changed" in report.problems[0].message
