"""What a pull receives is checked once, a pack's items at a time (runlog/syncreceive.py): the
fast checks accept and refuse exactly what the reference checks (one object, named reasons)
do, item by item; a pulled cohort waits on disk, not in memory; push writes each
observation's object from its stored text with the bytes observation_object gives."""

from __future__ import annotations

import hashlib
import json
import tracemalloc

import pytest

from conftest import TEAM_BUCKET
from recordfactory import make_record
from runlog import record as rec
from runlog import spool, sync, syncinsert
from runlog.ledger import INDEX_COLUMNS, Ledger, index_columns, observation_object, stored_observation_object
from runlog.spool import Spool
from runlog.syncreceive import (
    check_observations,
    check_records,
    verify_observation_object,
    verify_record_object,
)

RECORD = make_record(run_id="7654321", name="ünïcode ✓", parameters={"sample_name": "NA12878", "depth": 30,
                                                                     "ratio": 0.25})
DATA = rec.canonical_json(RECORD)


def _record_variants() -> dict[str, bytes]:
    """A good record, and what a hostile or broken remote could hold in its place."""
    text = DATA.decode("utf-8")
    deep = json.loads(text)
    nested: dict = {}
    inner = nested
    for _ in range(120):
        inner["x"] = {}
        inner = inner["x"]
    deep["request"]["parameters"]["deep"] = nested
    tiny = json.loads(text)
    tiny["request"]["parameters"]["tiny"] = 1e-7  # canonical as the json module writes it (1e-07), not as orjson
    big = json.loads(text)
    big["request"]["parameters"]["big"] = 10 ** 25  # beyond 64 bits: orjson reads a float
    unsorted = "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v, sort_keys=True, separators=(',', ':'), ensure_ascii=False)}"
                              for k, v in reversed(sorted(RECORD.items()))) + "}"
    no_fingerprint = {k: v for k, v in RECORD.items() if k != "fingerprint"}
    return {
        "good": DATA,
        "spaced": json.dumps(RECORD, sort_keys=True, ensure_ascii=False).encode(),
        "ascii-escaped": json.dumps(RECORD, sort_keys=True, separators=(",", ":")).encode(),
        "unsorted": unsorted.encode(),
        "duplicate key": b'{"kind":"run",' + DATA[1:],
        "lone surrogate": DATA.replace(b'"NA12878"', b'"NA\\ud800"'),
        "NaN": DATA.replace(b'"depth":30', b'"depth":NaN'),
        "not UTF-8": DATA.replace("ü".encode(), b"\xfc"),
        "trailing data": DATA + b" ",
        "a list": b"[" + DATA + b"]",
        "too deep": rec.canonical_json(deep),
        "an exponent float": rec.canonical_json(tiny),
        "a long integer": rec.canonical_json(big),
        "breaks the schema": rec.canonical_json(no_fingerprint),
        "not JSON": DATA[:-1],
    }


RECORD_VARIANTS = _record_variants()


@pytest.mark.parametrize("name", sorted(RECORD_VARIANTS))
def test_the_fast_record_check_decides_as_the_reference_check(name):
    data = RECORD_VARIANTS[name]
    address = hashlib.sha256(data).hexdigest()
    for named, hashed in ((address, False), (address, True), ("0" * 64, False)):
        (found, why), = check_records([(named, data)], len(DATA) * 4, hashed=hashed)
        expected, reason = verify_record_object(address if hashed else named, data, len(DATA) * 4)
        assert why == reason
        assert (found is None) == (expected is None)
        if expected is not None:
            assert found == (expected["created"], expected["request"]["requestId"],
                             (named, data, tuple(index_columns(expected)[c] for c in INDEX_COLUMNS)))
    accepted = {n for n, d in RECORD_VARIANTS.items()
                if check_records([(hashlib.sha256(d).hexdigest(), d)], len(DATA) * 4)[0][0] is not None}
    assert accepted == {"good", "an exponent float", "a long integer"}  # the rest: refused, each with its reason


def test_a_record_over_the_size_limit_is_refused_by_both_checks():
    address = hashlib.sha256(DATA).hexdigest()
    (found, why), = check_records([(address, DATA)], len(DATA) - 1, hashed=True)
    assert found is None and why == verify_record_object(address, DATA, len(DATA) - 1)[1]
    assert why.startswith("too large")


def _observation(**change) -> dict:
    item = {"record": "a" * 64, "run_uuid": "9b4c6f1e-0000-4000-8000-000000000001",
            "observed_at": "2024-05-01T12:00:00.123Z", "source": "GetRun", "status": "COMPLETED",
            "body": {"status": "COMPLETED", "stopTime": "2024-05-01T11:59:00Z", "ratio": 0.5, "note": "ü✓"}}
    item.update(change)
    return item


OBSERVATION_VARIANTS = {
    "good": observation_object(*_observation().values()),
    "no run uuid, no status": rec.canonical_json(_observation(run_uuid=None, status=None, body={"stopTime": "x"})),
    "a status not its answer's": rec.canonical_json(_observation(status="FAILED")),
    "a status from a source that gives none": rec.canonical_json(_observation(source="ListRunTasks")),
    "filed under another record": rec.canonical_json(_observation(record="b" * 64)),
    "made in the future": rec.canonical_json(_observation(observed_at="2999-01-01T00:00:00Z")),
    "observed_at without a zone": rec.canonical_json(_observation(observed_at="2024-05-01T12:00:00")),
    "observed_at not a time": rec.canonical_json(_observation(observed_at="2024-13-45T12:00:00Z")),
    "a member too many": rec.canonical_json({**_observation(), "extra": 1}),
    "a member missing": rec.canonical_json({k: v for k, v in _observation().items() if k != "source"}),
    "body not an object": rec.canonical_json(_observation(body=["COMPLETED"])),
    "status not text": rec.canonical_json(_observation(status=3)),
    "source not text": rec.canonical_json(_observation(source=None)),
    "spaced": json.dumps(_observation(), sort_keys=True).encode(),
    "an exponent float": rec.canonical_json(_observation(body={"ratio": 1e-9, "status": "COMPLETED"})),
    "duplicate key": b'{"body":{},' + observation_object(*_observation().values())[1:],
}


@pytest.mark.parametrize("name", sorted(OBSERVATION_VARIANTS))
def test_the_fast_observation_check_decides_as_the_reference_check(name):
    data = OBSERVATION_VARIANTS[name]
    address = hashlib.sha256(data).hexdigest()
    (row, why), = check_observations([(address, "a" * 64, data)], hashed=True)
    expected, reason = verify_observation_object("a" * 64, address, data)
    assert why == reason
    if expected is None or reason:
        assert row is None
    else:  # what Ledger.add_received_observations would have written for it
        body = rec.canonical_json(expected["body"])
        assert row == (address, "a" * 64, expected["run_uuid"], expected["observed_at"], expected["source"],
                       expected["status"], body, hashlib.sha256(body).hexdigest())
    assert check_observations([("0" * 64, "a" * 64, data)])[0] == (None, verify_observation_object(
        "a" * 64, "0" * 64, data)[1])  # not hashed by the caller: the address is checked


def test_only_good_observations_pass():
    passed = {name for name, data in OBSERVATION_VARIANTS.items()
              if check_observations([(hashlib.sha256(data).hexdigest(), "a" * 64, data)])[0][0] is not None}
    assert passed == {"good", "no run uuid, no status", "an exponent float"}


@pytest.mark.parametrize("body", [{"status": "RUNNING", "n": [1, 2.5, None, True], "é": "\u2028✓"}, {},
                                  {"big": 10 ** 30, "f": 1e16, "tiny": 1e-7}])
def test_push_writes_a_stored_observation_as_observation_object_does(body):
    fields = ("c" * 64, "run-uuid", "2024-05-01T12:00:00Z", "GetRun", None)
    expected = observation_object(*fields, body)
    for stored in (rec.canonical_json(body).decode(), json.dumps(body)):  # runlog's text, and any other
        assert stored_observation_object(*fields, stored) == expected


@pytest.mark.parametrize("memory", [0, 300 * 1024, 1 << 30])  # on disk, in memory then on disk, in memory
def test_the_spool_gives_back_each_row_put_from_many_threads(memory):
    from concurrent.futures import ThreadPoolExecutor

    rows = [("a" * 64, b"x" * (i * 37), (None, "run", i, "é✓")) for i in range(300)]
    with Spool(memory) as spool, ThreadPoolExecutor(8) as pool:
        places = list(pool.map(spool.put, rows))
        assert len({at for at, _ in places}) == len(rows)
        assert [spool.get(where) for where in reversed(places)] == list(reversed(rows))
        total, on_disk = sum(length for _, length in places), spool.on_disk()
    if memory == 0:
        assert on_disk == total
    elif memory > total:
        assert on_disk == 0
    else:  # the first rows (up to `memory` bytes) in memory, the rest on disk
        assert total - memory <= on_disk < total


@pytest.mark.parametrize("lowered", ["spool.SPOOL_MEMORY", "sync.PULL_SPOOL_MEMORY"])
def test_a_pulled_cohort_waits_on_disk_and_is_inserted_a_page_at_a_time(bucket, tmp_path, monkeypatch, lowered):
    """48 MiB of records arrive; pull holds less than half of that at any time (the spool
    keeps them; what it holds is a pack being checked and a page being inserted, and, here,
    what moto allocates in this process to answer), and the pulled ledger holds exactly the
    records pushed. The spool keeps in memory the lesser of its own budget and the pull's
    (sync.PULL_SPOOL_MEMORY), whichever is lowered."""
    pad = "p" * (96 * 1024)
    source = tmp_path / "alice.db"
    with Ledger.open(source) as ledger:
        ledger.add_records([make_record(run_id=str(6000000 + i), name=f"r{i}", parameters={"pad": f"{i}{pad}"})
                            for i in range(512)])
        for entry in ledger.entries(limit=40):
            ledger.observe(entry.address, "GetRun", {"status": "COMPLETED"}, run_uuid=entry.run_uuid,
                           status="COMPLETED")
        remote = sync.Remote.parse(f"s3://{TEAM_BUCKET}/runlog")
        pushed = sync.push(ledger, bucket, remote, jobs=4)
        total = ledger.conn.execute("SELECT sum(length(body)) FROM records").fetchone()[0]
    assert (pushed.records_sent, pushed.observations_sent) == (512, 40) and total > 48 * 2**20
    monkeypatch.setattr(syncinsert, "INSERT_PAGE_BYTES", 2 * 2**20)
    monkeypatch.setattr(spool if lowered.startswith("spool.") else sync, lowered.split(".")[1],
                        2**20)  # the rest waits on disk
    with Ledger.open(tmp_path / "bob.db") as ledger:
        # listed first: moto answers in this process, and its listing is not what is measured
        listing = sync.survey(bucket, remote, jobs=1, expect_ledger=True)
        tracemalloc.start()
        try:
            pulled = sync.pull(ledger, bucket, remote, jobs=1, listing=listing)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert (pulled.records_received, pulled.observations_received, pulled.refused) == (512, 40, [])
        assert peak < total / 2, f"pull held {peak / 2**20:.1f} MiB of {total / 2**20:.1f} MiB received"
        got = ledger.conn.execute("SELECT address, body FROM records ORDER BY seq").fetchall()
    with Ledger.open(source) as ledger:
        sent = ledger.conn.execute("SELECT address, body FROM records").fetchall()
    assert sorted(got) == sorted(sent)


def test_a_pack_index_is_read_fast_when_canonical_and_decided_as_before_otherwise():
    from runlog.safejson import UntrustedJSONError, loads_untrusted
    from runlog.syncpack import INDEX_FORMAT, _index_of, parse_index

    digest = "d" * 64
    records = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(300)]  # runs of 19 digits among them
    index = {"format": INDEX_FORMAT, "pack": digest, "size": 4096, "records": records,
             "observations": [[hashlib.sha256(r.encode()).hexdigest(), r] for r in records[:50]]}
    canonical = rec.canonical_json(index)
    variants = {
        "canonical": canonical,
        "spaced": json.dumps(index, sort_keys=True).encode(),
        "duplicate key": b'{"size":1,' + canonical[1:],
        "too deep": rec.canonical_json({**index, "observations": [[[["x"]]]]}),
        "another pack": rec.canonical_json({**index, "pack": "e" * 64}),
        "a record twice": rec.canonical_json({**index, "records": records + records[:1]}),
        "size not an integer": rec.canonical_json({**index, "size": 4096.0}),
        "not JSON": canonical[:-1],
    }
    for name, data in variants.items():
        try:
            expected = _index_of(digest, loads_untrusted(data, max_bytes=len(data), max_depth=4))
        except UntrustedJSONError as exc:
            expected = (None, f"pack index: {exc.reason}")
        assert parse_index(digest, data, len(data)) == expected, name
        assert (expected[0] is not None) == (name in ("canonical", "spaced")), name
    assert parse_index(digest, canonical, len(canonical) - 1)[1].startswith("pack index: too large")
