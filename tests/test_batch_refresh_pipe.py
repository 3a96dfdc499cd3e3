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
                    [(rec.address(record), None, rec.utc_now(), "ListRuns", "COMPLETED", {"id": str(at), "n": at})]))
        assert writer.added == 5
        assert [o["body"] for r in records for o in ledger.observations(rec.address(r))] == \
            [{"id": str(at), "n": at} for at in range(5)]
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
