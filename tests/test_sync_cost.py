"""What pull and push do to cost less CPU (docs/performance.md, "A cohort on the team ledger")
without checking less: the collector run less often and restored, each distinct observed_at
of a pack checked once (a future one still refused wherever it appears), inserts in one
transaction (indexes built after the rows in an empty ledger) that a pull stopped part way
undoes whole and run again adds once."""

from __future__ import annotations

import gc
import sqlite3

import pytest

from conftest import TEAM_BUCKET
from helpers import fill
from runlog import sync, syncinsert
from runlog.ledger import Ledger
from runlog.verify import verify

REMOTE = sync.Remote.parse(f"s3://{TEAM_BUCKET}/runlog")


def test_push_and_pull_run_the_collector_less_often_and_then_as_before(bucket, tmp_path):
    fill(tmp_path / "alice.db", 3)
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    seen = []

    def progress(items, total, label):
        seen.append((label, gc.get_threshold(), gc.get_freeze_count()))
        return items

    with Ledger.open(tmp_path / "alice.db") as ledger:
        pushed = sync.push(ledger, bucket, REMOTE, jobs=2, progress=progress)
    assert (gc.get_threshold(), gc.get_freeze_count()) == (before, frozen)
    with Ledger.open(tmp_path / "bob.db") as ledger:
        pulled = sync.pull(ledger, bucket, REMOTE, jobs=2, progress=progress)
    assert (gc.get_threshold(), gc.get_freeze_count()) == (before, frozen)
    assert (pushed.records_sent, pulled.records_received, pulled.observations_received) == (3, 3, 1)
    labels = {label for label, _, _ in seen}
    assert {"pushing", "pulling packs"} <= labels
    assert all(threshold[0] == max(before[0], sync.COLLECT_AFTER) and threshold[1:] == before[1:]
               and held > frozen for _, threshold, held in seen)  # what was made before is left alone
    # and after a failure too
    with Ledger.open(tmp_path / "carol.db") as ledger, pytest.raises(sync.TransferError):
        sync.pull(ledger, bucket, sync.Remote.parse("s3://no-such-bucket-here/x"), jobs=2)
    assert (gc.get_threshold(), gc.get_freeze_count()) == (before, frozen)


def test_a_future_observed_at_shared_by_observations_of_one_pack_refuses_each_of_them(bucket, tmp_path):
    alice = tmp_path / "alice.db"
    first, second = fill(alice, 2, observe=False)
    future = "2999-01-01T00:00:00Z"
    with Ledger.open(alice) as ledger:
        for address in (first, second):  # the same future moment twice, between good ones
            ledger.add_observation(address, "GetRun", {"status": "RUNNING"}, observed_at="2026-11-20T09:00:00Z",
                                   status="RUNNING")
            ledger.add_observation(address, "GetRun", {"status": "COMPLETED"}, observed_at=future,
                                   status="COMPLETED")
        sync.push(ledger, bucket, REMOTE, jobs=2)
    with Ledger.open(tmp_path / "bob.db") as ledger:
        pulled = sync.pull(ledger, bucket, REMOTE, jobs=2)
        held = ledger.conn.execute("SELECT record, observed_at, status FROM observations ORDER BY record").fetchall()
    assert pulled.records_received == 2 and pulled.observations_received == 2
    assert sorted(held) == sorted([(first, "2026-11-20T09:00:00Z", "RUNNING"),
                                   (second, "2026-11-20T09:00:00Z", "RUNNING")])
    reasons = [why for _, why in pulled.refused]
    assert len(reasons) == 2 and all(why.endswith(f"observed_at {future} is in the future") for why in reasons)


def _schema(path) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("held", [0, 9], ids=["into an empty ledger", "into a ledger holding more"])
def test_a_pull_stopped_part_way_through_its_inserts_adds_nothing_and_run_again_adds_each_record_once(
        bucket, tmp_path, monkeypatch, held):
    alice = tmp_path / "alice.db"
    sent = fill(alice, 7)
    with Ledger.open(alice) as ledger:
        sync.push(ledger, bucket, REMOTE, jobs=2)
    monkeypatch.setattr(syncinsert, "INSERT_PAGE", 3)  # pages of 3, 3 and 1 records
    with Ledger.open(alice) as ledger:
        last = max((entry.created, entry.address) for entry in ledger.entries())[1]  # pulled last
    bob = tmp_path / "bob.db"
    if held:  # more records than the pull brings: the indexes are kept as they are
        fill(bob, held, start=100)
    Ledger.open(bob).close()
    conn = sqlite3.connect(bob)  # the disk "fills" when the last record is written
    conn.execute(f"CREATE TRIGGER stop_here BEFORE INSERT ON records WHEN NEW.address = '{last}' "
                 "BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END")
    conn.commit()
    conn.close()
    schema = _schema(bob)
    with Ledger.open(bob) as ledger, pytest.raises(Exception, match="disk is full"):
        sync.pull(ledger, bucket, REMOTE, jobs=2)
    assert _schema(bob) == schema  # every index as it was (an empty ledger's were dropped for the inserts)
    with Ledger.open(bob) as ledger:
        assert ledger.count() == held  # the pages inserted before the failure were undone with it
        assert ledger.conn.execute("SELECT count(*) FROM observations").fetchone()[0] == (1 if held else 0)
        ledger.conn.execute("DROP TRIGGER stop_here")
    with Ledger.open(bob) as ledger:
        statements: list[str] = []
        ledger.conn.set_trace_callback(statements.append)
        again = sync.pull(ledger, bucket, REMOTE, jobs=2)
        ledger.conn.set_trace_callback(None)
        dropped = sorted(sql.split('"')[1] for sql in statements if sql.startswith("DROP INDEX"))
        # 9 records held and 7 pulled: the records' indexes are kept (batch_members holds no row, observations one)
        assert dropped == (["batch_members_state", "observations_record"] if held else
                           ["batch_members_state", "observations_record", "records_batch_id", "records_created",
                            "records_created_no_members", "records_fingerprint", "records_replay_of", "records_run_arn",
                            "records_run_id", "records_run_uuid"])
        assert (again.records_received, again.records_present, again.observations_received) == (7, 0, 1)
        assert set(sent) <= set(ledger.addresses()) and ledger.count() == 7 + held
        assert ledger.conn.execute("SELECT count(DISTINCT address) FROM records").fetchone()[0] == 7 + held
        assert not verify(ledger).problems
    assert _schema(bob) == [row for row in schema if row[1] != "stop_here"]


def test_a_push_stores_the_observation_addresses_it_computed_and_they_are_those_of_their_objects(bucket, tmp_path):
    import hashlib

    from runlog.ledger import observation_object

    made = fill(tmp_path / "alice.db", 3)
    with Ledger.open(tmp_path / "alice.db") as ledger:
        ledger.observe(made[1], "GetRun", {"status": "RUNNING"}, status="RUNNING")
        assert ledger.conn.execute("SELECT count(*) FROM observation_addresses").fetchone()[0] == 0
        sync.push(ledger, bucket, REMOTE)
        stored = dict(ledger.conn.execute("SELECT observation, address FROM observation_addresses"))
        rows = ledger.conn.execute("SELECT seq, record, run_uuid, observed_at, source, status, body "
                                   "FROM observations").fetchall()
        assert verify(ledger).ok
    import json

    assert stored == {seq: hashlib.sha256(observation_object(record, uuid, at, source, status, json.loads(body)))
                      .hexdigest() for seq, record, uuid, at, source, status, body in rows}
    assert len(stored) == 2
    with Ledger.open(tmp_path / "bob.db") as other:  # and they are the names the remote gave them
        assert sync.pull(other, bucket, REMOTE).observations_received == 2
        assert other.observation_addresses() == set(stored.values())


@pytest.mark.parametrize("stored", [False, True], ids=["address-not-stored", "address-stored"])
def test_push_reads_only_the_observations_it_sends_and_still_refuses_an_edited_one(bucket, tmp_path, stored):
    from helpers import tamper
    from runlog.errors import LedgerError

    path = tmp_path / "alice.db"
    made = fill(path, 2)  # and one observation of the first
    with Ledger.open(path) as ledger:
        if stored:
            ledger.index_observations()
    tamper(path, "UPDATE observations SET status = 'FAILED'")
    remote = sync.Remote.parse(f"s3://{TEAM_BUCKET}/edited-{stored}")
    with Ledger.open(path) as ledger:
        with pytest.raises(LedgerError, match="^refusing to push: observation #1: a column of its row was changed"):
            sync.push(ledger, bucket, remote)
    assert bucket.list_objects_v2(Bucket=TEAM_BUCKET, Prefix=f"edited-{stored}/packs/").get("KeyCount", 0) == 0
    assert made


def test_a_host_programs_frozen_objects_stay_frozen_after_a_pull_or_push():
    """push and pull relax the collector (sync.collector_relaxed); a program using the Python
    API that froze its own objects (gc.freeze, as before forking) finds them frozen after."""
    import gc

    from runlog.sync import collector_relaxed

    assert gc.get_freeze_count() == 0
    with collector_relaxed():
        assert gc.get_freeze_count() > 0  # runlog's own freeze, nothing being frozen before
    assert gc.get_freeze_count() == 0
    hosts = [object() for _ in range(1000)]
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        threshold = gc.get_threshold()
        with collector_relaxed():
            pass
        assert gc.get_freeze_count() == frozen and gc.get_threshold() == threshold
    finally:
        gc.unfreeze()
    del hosts


def test_pull_inserts_with_a_larger_page_cache_then_gives_the_connection_back_as_it_was(bucket, tmp_path,
                                                                                          monkeypatch):
    """The pulled rows go in with SQLite's page cache at INSERT_CACHE_KIB_PER_ROW KiB a row, at
    most syncinsert.INSERT_CACHE_KIB (the records' and observations' indexes on random keys stay in
    memory between pages); the connection's own setting is back once the pull is done, also
    when it fails part way."""
    monkeypatch.setattr(syncinsert, "INSERT_CACHE_KIB_PER_ROW", 1000)  # 5 rows: 5 000 KiB, more than the most
    monkeypatch.setattr(syncinsert, "INSERT_CACHE_KIB", 4096)
    fill(tmp_path / "alice.db", 4)
    with Ledger.open(tmp_path / "alice.db") as ledger:
        sync.push(ledger, bucket, REMOTE, jobs=2)
    statements: list[str] = []
    with Ledger.open(tmp_path / "bob.db") as ledger:
        ledger.conn.execute("PRAGMA cache_size = -3000")
        ledger.conn.set_trace_callback(statements.append)
        pulled = sync.pull(ledger, bucket, REMOTE, jobs=2)
        ledger.conn.set_trace_callback(None)
        assert ledger.conn.execute("PRAGMA cache_size").fetchone()[0] == -3000
        assert not verify(ledger).problems
    assert (pulled.records_received, pulled.observations_received) == (4, 1)
    grown = statements.index("PRAGMA cache_size = -4096")
    first_insert = next(at for at, sql in enumerate(statements) if sql.startswith("INSERT INTO records"))
    assert grown < first_insert < statements.index("PRAGMA cache_size = -3000")
    # a smaller pull, a smaller cache: 1 KiB a row by default (here 4 records and an observation)
    monkeypatch.setattr(syncinsert, "INSERT_CACHE_KIB_PER_ROW", 1000 // 2)
    statements.clear()
    with Ledger.open(tmp_path / "dave.db") as ledger:
        ledger.conn.set_trace_callback(statements.append)
        sync.pull(ledger, bucket, REMOTE, jobs=2)
        ledger.conn.set_trace_callback(None)
    assert "PRAGMA cache_size = -2500" in statements  # under the 4096 most, over SQLite's 2000
    # a pull whose inserts fail leaves the connection's setting as it was too
    bob = tmp_path / "carol.db"
    Ledger.open(bob).close()
    conn = sqlite3.connect(bob)
    conn.execute("CREATE TRIGGER stop_here BEFORE INSERT ON records BEGIN SELECT RAISE(FAIL, 'disk is full'); END")
    conn.commit()
    conn.close()
    with Ledger.open(bob) as ledger:
        ledger.conn.execute("PRAGMA cache_size = 500")  # in pages, not KiB
        with pytest.raises(Exception, match="disk is full"):
            sync.pull(ledger, bucket, REMOTE, jobs=2)
        assert ledger.conn.execute("PRAGMA cache_size").fetchone()[0] == 500
        assert ledger.count() == 0




def test_a_pull_with_nothing_new_does_not_wait_for_another_writer_of_the_ledger(bucket, tmp_path):
    fill(tmp_path / "alice.db", 3)
    with Ledger.open(tmp_path / "alice.db") as ledger:
        sync.push(ledger, bucket, REMOTE, jobs=2)
    bob = tmp_path / "bob.db"
    with Ledger.open(bob) as ledger:
        assert sync.pull(ledger, bucket, REMOTE, jobs=2).records_received == 3
    other = sqlite3.connect(bob, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing: a submit's intent, a refresh
    try:
        with Ledger.open(bob) as ledger:
            ledger.conn.execute("PRAGMA busy_timeout = 100")  # would wait, then fail, if it took the lock
            again = sync.pull(ledger, bucket, REMOTE, jobs=2)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert (again.records_received, again.records_present, again.observations_received) == (0, 3, 0)
