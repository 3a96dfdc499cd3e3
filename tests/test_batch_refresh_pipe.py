"""runlog/refreshpipe.py: the writer thread that writes a refresh's pages while the next is
built, and the spool that pages ListRuns into a file while the members are recorded. What
must hold: pages written whole, in order, each record once, with valid seals (verify);
a writer's error reaches the caller as one LedgerError; a spool gives back every page in
order, raises a paging's error where its page would have been, and stops when left."""

from __future__ import annotations

import threading
import time

import pytest

from recordfactory import make_record
from runlog import record as rec
from runlog import refreshpipe
from runlog.errors import LedgerError
from runlog.ledger import Ledger
from runlog.refreshpipe import page_writer
from runlog.spool import spooled


def _pages(count: int, size: int, start: int = 0) -> list[list[dict]]:
    return [[make_record(run_id=str(5000000 + start + page * size + at), name=f"r{page}-{at}") for at in range(size)]
            for page in range(count)]


def test_pages_are_written_in_order_once_each_and_verify(tmp_path, run_cli):
    path = tmp_path / "l.db"
    pages = _pages(12, 7)
    with Ledger.open(path) as ledger:
        ledger.add_records(pages[3])  # already held: not written again
        with page_writer(ledger, ahead=3, most=4) as writer:
            for page in pages:
                writer.records(ledger.encode_records(page))
            writer.records(ledger.encode_records(pages[0]))  # given twice: once
        assert writer.added == 11 * 7
        assert writer.transactions == 4  # 13 pages handed over: 4 + 4 + 4 + the last
        order = [row[0] for row in ledger.conn.execute("SELECT address FROM records ORDER BY seq")]
    expected = [rec.address(r) for r in pages[3]] + [rec.address(r) for i, p in enumerate(pages) if i != 3 for r in p]
    assert order == expected
    verify = run_cli("verify", "--no-remote", env={"RUNLOG_LEDGER": str(path)})
    assert verify.exit_code == 0, verify.output


def test_observations_are_written_by_the_thread_and_read_back(tmp_path, run_cli):
    path = tmp_path / "l.db"
    records = _pages(1, 5)[0]
    with Ledger.open(path) as ledger:
        ledger.add_records(records)
        with page_writer(ledger) as writer:
            for at, record in enumerate(records):
                writer.observations(ledger.encode_observations(
                    [(rec.address(record), None, rec.utc_now(), "ListRuns", "COMPLETED",
                      {"id": record["outcome"]["response"]["id"], "n": at, "status": "COMPLETED"})]))
        assert writer.added == 5
        assert [o["body"] for r in records for o in ledger.observations(rec.address(r))] == \
            [{"id": r["outcome"]["response"]["id"], "n": at, "status": "COMPLETED"} for at, r in enumerate(records)]
    verify = run_cli("verify", "--no-remote", env={"RUNLOG_LEDGER": str(path)})
    assert verify.exit_code == 0, verify.output


def test_a_writer_that_fails_raises_one_ledger_error_and_writes_nothing_more(tmp_path):
    path = tmp_path / "l.db"
    good, bad, after = _pages(3, 4)
    with Ledger.open(path) as ledger:
        broken = ledger.encode_records(bad)
        broken[1] = (*broken[1][:3], (object(),) * len(broken[1][3]))  # a value SQLite cannot store
        with pytest.raises(LedgerError, match="cannot write to ledger"):
            with page_writer(ledger, ahead=1, most=1) as writer:
                writer.records(ledger.encode_records(good))
                writer.records(broken)
                for _ in range(50):  # the error surfaces at a later hand-over, or on leaving
                    writer.records(ledger.encode_records(after))
                    time.sleep(0.01)
        assert ledger.count() == 4  # the good page; nothing of the broken one, nothing after it


def test_the_callers_error_wins_and_the_pages_handed_over_are_written(tmp_path):
    path = tmp_path / "l.db"
    first, second = _pages(2, 3)
    with Ledger.open(path) as ledger:
        with pytest.raises(KeyError, match="the page after"):
            with page_writer(ledger) as writer:
                writer.records(ledger.encode_records(first))
                writer.records(ledger.encode_records(second))
                raise KeyError("the page after")
        assert ledger.count() == 6


def test_members_and_statuses_interleaved_go_in_order_in_transactions_of_whole_pages(tmp_path, run_cli):
    path = tmp_path / "l.db"
    pages = _pages(6, 5)
    with Ledger.open(path) as ledger:
        with page_writer(ledger, ahead=8, most=3) as writer:
            for at, page in enumerate(pages):
                writer.records(ledger.encode_records(page))
                if at:  # the statuses of the page before, as the child hands them over after its members
                    writer.observations(ledger.encode_observations(
                        [(rec.address(r), None, rec.utc_now(), "ListRuns", "RUNNING",
                          {"page": at - 1, "status": "RUNNING"})
                         for r in pages[at - 1]]))
        assert writer.added == 6 * 5 + 5 * 5
        assert writer.transactions == 4  # 11 pages handed over: 3 + 3 + 3 + the last two
        order = [row[0] for row in ledger.conn.execute("SELECT address FROM records ORDER BY seq")]
        seen = [ledger.observations(rec.address(r)) for page in pages for r in page]
    assert order == [rec.address(r) for page in pages for r in page]
    assert [[o["body"] for o in found] for found in seen] == [[{"page": n, "status": "RUNNING"}] for n in range(5) for _ in range(5)] + \
        [[]] * 5
    verify = run_cli("verify", "--no-remote", env={"RUNLOG_LEDGER": str(path)})
    assert verify.exit_code == 0, verify.output


def test_a_writer_waiting_for_its_next_page_commits_and_lets_go_of_the_write_lock(tmp_path, monkeypatch):
    """A slow service must not keep other runlog commands from writing: a transaction that
    waited OPEN_AT_MOST seconds for its next page commits what it has."""
    monkeypatch.setattr(refreshpipe, "OPEN_AT_MOST", 0.2)
    path = tmp_path / "l.db"
    first, second = _pages(2, 4)
    with Ledger.open(path) as ledger:
        with page_writer(ledger, ahead=4, most=100) as writer:
            writer.records(ledger.encode_records(first))
            with Ledger.open(path) as other:
                deadline = time.monotonic() + 10
                while other.count() < 4 and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert other.count() == 4  # committed, though the transaction could take 100 pages
                other.add_records(_pages(1, 1, start=900)[0])  # the write lock is free
            writer.records(ledger.encode_records(second))
        assert writer.added == 8 and writer.transactions == 2
        assert ledger.count() == 9


def test_a_page_larger_than_one_seal_statement_is_sealed_whole(tmp_path, run_cli):
    """The seals go in as multi-row statements of a few hundred rows: a page of 700 records
    (and one of 700 observations) needs three of each, and every row gets its seal."""
    path = tmp_path / "l.db"
    records = _pages(1, 700)[0]
    with Ledger.open(path) as ledger:
        assert ledger.write_records(ledger.encode_records(records)) == 700
        assert ledger.write_observations(ledger.encode_observations(
            [(rec.address(r), None, rec.utc_now(), "ListRuns", "COMPLETED", {"n": n, "status": "COMPLETED"})
             for n, r in enumerate(records)]
        )) == 700
        sealed = dict(ledger.conn.execute("SELECT tbl, count(*) FROM row_seals GROUP BY tbl").fetchall())
    assert sealed["records"] == 700 and sealed["observations"] == 700
    verify = run_cli("verify", "--no-remote", env={"RUNLOG_LEDGER": str(path)})
    assert verify.exit_code == 0, verify.output


def test_a_spool_gives_back_every_page_in_order():
    pages = [(f"t{n}", n, [(str(n * 10 + i), "COMPLETED", b'{"x":1}') for i in range(n % 4)]) for n in range(300)]
    with spooled(iter(pages)) as spool:
        assert list(spool.pages()) == pages


def test_a_spool_raises_the_pagings_error_after_the_pages_before_it():
    def paging():
        yield ("a", 1, [])
        yield ("b", 2, [])
        raise ConnectionError("page 3 lost")

    with spooled(paging()) as spool:
        got = []
        with pytest.raises(ConnectionError, match="page 3 lost"):
            for page in spool.pages():
                got.append(page)
    assert got == [("a", 1, []), ("b", 2, [])]


def test_a_spool_left_early_stops_its_paging():
    asked = []
    stopped = threading.Event()

    def endless():
        try:
            n = 0
            while True:
                asked.append(n)
                yield ("t", n, [])
                n += 1
                time.sleep(0.001)
        finally:
            stopped.set()

    with spooled(endless()) as spool:
        for page in spool.pages():
            if page[1] == 5:
                break
    assert stopped.wait(5), "the paging went on after the spool was left"
    count = len(asked)
    time.sleep(0.05)
    assert len(asked) == count
