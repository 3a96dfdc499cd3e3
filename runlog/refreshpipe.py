"""Writing a batch's pages of members and statuses while the next page is made (issue 14).

`runlog refresh BATCH` spends its time in two kinds of work per page: Python (each member
record built, schema-checked, encoded and hashed: Ledger.encode_records) and SQLite (the rows,
their indexes and triggers, the COMMIT). SQLite runs without Python's global lock, so a
thread of its own writing page N, on a connection of its own, while the caller encodes page
N+1, puts the two on two cores.

What stays as it was: every record is schema-checked before it is handed over, each
transaction holds whole pages (a refresh killed midway leaves whole pages, and run again
writes each member once: the writer, like Ledger.add_records, skips what the ledger holds),
and the pages are written in the order given. A transaction holds up to `most` pages (10
here, 100 in the refresh's writer process: runlog/writerproc.py) instead of one. Each COMMIT
writes every page of the ledger the transaction touched to the WAL, and a member touches a
leaf of each of its indexes on random keys (address, uuid, fingerprint; its status the
observations' record index): at 30 000 members, 170 µs of SQLite's CPU a member in
transactions of one page, 105 µs in transactions of ten (benchmarks, docs/performance.md).

The writer appends each page to its open transaction as the page comes (`gather` pages, or
more when they are waiting, of one kind, with one call), and commits after `most` pages, at
the end of the pages, or once it has waited OPEN_AT_MOST seconds: so the caller builds page
N+1 while page N is written, rather than the writer waiting for `most` pages and then
writing them while the caller, `ahead` pages ahead, waits; and a slow service does not keep
the ledger's write lock from other runlog commands. Members and statuses may share a
transaction. Memory: at most `ahead` pages waiting and as many being written (SQLite holds
what the transaction wrote), whatever the size of the batch."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from runlog.errors import LedgerError, RunlogError
from runlog.ledger import Ledger, file_identity, same_file
from runlog.textsafe import terminal_safe

_RECORDS, _OBSERVATIONS = "records", "observations"
_STOP = object()
OPEN_AT_MOST = 3.0  # seconds a transaction waits for its pages to come, then commits what it has


class PageWriter:
    """Pages of encoded records (Ledger.encode_records) or observation rows
    (Ledger.encode_observations), written in order by a thread with its own connection to
    the ledger file. Use as a context manager (`page_writer`); `added` counts the rows written.
    An error of the writer is raised by the next `records`/`observations` call, or on leaving."""

    def __init__(self, ledger: Ledger, *, ahead: int = 4, most: int = 10, cache_kib: int | None = None,
                 gather: int = 1):
        # the file the caller opened (its absolute path and identity): the thread's connection
        # writes to that file only, whatever the working directory or the file at its path now
        self._path = ledger.file_path
        self._identity = ledger.file_identity
        self._cache_kib = cache_kib  # the writing connection's page cache (Ledger.page_cache), if not SQLite's default
        self._inline = ledger if ledger.snapshot else None  # an in-memory copy: no second connection
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, ahead))
        self._most = max(1, most)
        self._gather = max(1, gather)  # pages written with one call, when that many come in time
        self._error: BaseException | None = None
        self._ready = threading.Event()
        self.added = 0
        self.transactions = 0
        self._thread: threading.Thread | None = None

    # -- the caller's side ---------------------------------------------------------------

    def start(self) -> None:
        if self._inline is not None:
            return
        self._thread = threading.Thread(target=self._run, name="runlog-writer", daemon=True)
        self._thread.start()
        self._ready.wait()
        self._raise()

    def records(self, encoded: list[tuple], batch: str | None = None) -> None:
        """Hand over one page of records from Ledger.encode_records; `batch`: the address of
        the batch record each of them is a member of, when the caller made them so
        (Ledger.append_records)."""
        self._put(_RECORDS, encoded, batch)

    def observations(self, rows: list[tuple]) -> None:
        """Hand over one page of observation rows from Ledger.encode_observations."""
        self._put(_OBSERVATIONS, rows)

    def close(self) -> None:
        """Write what is waiting, stop the thread, raise its error if it had one."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        self._raise()

    def _put(self, kind: str, page: list[tuple], batch: str | None = None) -> None:
        self._raise()
        if not page:
            return
        if self._inline is not None:
            self._write(self._inline, kind, page, batch)
            return
        self._queue.put((kind, page, batch))

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    # -- the writer's thread -------------------------------------------------------------

    def _run(self) -> None:
        try:
            ledger = open_same_ledger(self._path, self._identity)
        except BaseException as exc:  # handed to the caller
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            if self._cache_kib is not None:
                ledger.page_cache(self._cache_kib)
            ledger.statement_journals_in_memory()
            with ledger.bulk_writes():
                self._serve(ledger)
        finally:
            ledger.close()

    def _serve(self, ledger: Ledger) -> None:
        job = self._queue.get()
        while job is not _STOP:
            if self._error is not None:  # after an error nothing more is written; the caller raises it
                job = self._queue.get()
                continue
            job = self._transaction(ledger, job)  # the job it took and did not write, if any
            if job is None:
                job = self._queue.get()

    def _transaction(self, ledger: Ledger, job: Any) -> Any:
        """Write `job` and the pages handed over after it, as they come, in one transaction
        of at most `most` pages, committed when its pages stop coming for OPEN_AT_MOST
        seconds after it began (the write lock is not held long while the service is slow).
        Pages of one kind go in `gather` at a time (and any more already waiting) with one
        call: each statement lets go of Python's lock and must take it back from the thread
        building the next page, so fewer, larger statements wait less. Returns the job it
        took from the queue and did not write (_STOP, or a page for the next transaction)."""
        added = pages = 0
        deadline = time.monotonic() + OPEN_AT_MOST
        most_a_call = max(self._gather, self._queue.maxsize)  # memory: what the queue holds, at most
        try:
            with ledger.write():
                while True:
                    kind, rows, batch = job[0], list(job[1]), job[2]
                    pages += 1
                    got, job = 1, None
                    while pages < self._most and got < most_a_call:  # the next pages of the same kind
                        try:
                            more = self._queue.get_nowait() if got >= self._gather else \
                                self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                        except queue.Empty:
                            break
                        if more is _STOP or more[0] != kind or more[2] != batch:
                            job = more
                            break
                        rows += more[1]
                        pages += 1
                        got += 1
                    added += ledger.append_records(rows, batch) if kind == _RECORDS else ledger.append_observations(rows)
                    if job is None and pages < self._most:
                        try:
                            job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                        except queue.Empty:
                            break
                    if job is None or job is _STOP or pages >= self._most:
                        break
        except BaseException as exc:
            self._error = exc if isinstance(exc, RunlogError) else LedgerError(
                f"cannot write to ledger {self._path}: {exc}")
            return _STOP if job is _STOP else None  # the end of the pages, if it was taken
        self.added += added
        self.transactions += 1
        return job

    def _write(self, ledger: Ledger, kind: str, rows: list[tuple], batch: str | None = None) -> None:
        if kind == _RECORDS:
            self.added += ledger.write_records(rows, batch)
        else:
            self.added += ledger.write_observations(rows)
        self.transactions += 1


def open_same_ledger(path: str, expected: tuple[int, int] | None) -> Ledger:
    """The ledger at `path` opened for writing, only while the file there is `expected`
    (Ledger.file_identity of the caller's connection), checked before it is opened (which may
    write to it) and after: LedgerError for another file renamed into its place meanwhile."""
    gone = file_identity(path) is None  # no file there, which Ledger.open says in its own words
    ledger = Ledger.open(path, create=False) if gone or same_file(path, expected) else None
    if ledger is None or ledger.file_identity != expected:
        if ledger is not None:
            ledger.close()
        raise LedgerError(f"the ledger file {terminal_safe(path)} was replaced while the refresh ran (another "
                          "file renamed into its place): nothing was written to it; check which file is the "
                          "ledger, then run the refresh again")
    return ledger


@contextmanager
def page_writer(ledger: Ledger, *, ahead: int = 4, most: int = 10) -> Iterator[PageWriter]:
    """A started PageWriter for `ledger`'s file, closed on leaving: the pages handed over
    are all written (also when the caller's block raised: they were whole pages, as the
    serial refresh would have written them before the error), then the thread stops."""
    writer = PageWriter(ledger, ahead=ahead, most=most)
    writer.start()
    try:
        yield writer
    except BaseException:
        try:
            writer.close()
        except RunlogError:
            pass  # the caller's error is the one to report
        raise
    writer.close()
