"""A large refresh's member records built, checked and written by a child process (issue 14).

`runlog refresh BATCH` at 100 000 members used about as much CPU as wall time on a 2-core
machine: its threads (the two pagings, botocore's requests and parses; the member records
built, schema-checked and encoded; the writer's seals and chain) all run Python, and Python
runs one thread at a time. A process of its own has its own interpreter lock. So, from
CHILD_FROM_RUNS runs on, the parent only pages the service (ListRunsInBatch, ListRuns) and
hands each page of ListRunsInBatch items, as they came, to a child (a fresh interpreter
running runlog.writerproc from the parent's runlog: never a fork of the threaded parent). The child
opens the ledger itself, builds, checks and encodes the member records
(batch.MemberPages: every member against the schema) and writes them as before
(refreshpipe.PageWriter: whole pages a transaction, in order, each member once). The statuses'
rows (Ledger.encode_observations, made by the parent, which asks GetRun for the failed) go
the same way. Nothing else changes: the same records, byte for byte, the same transactions.

The child is started, talked to and stopped by runlog/childproc.py (marshal messages on its
pipes; a session of its own, Ctrl-C ignored). Parent to child: ("open", ledger path, batch address, batch outline, the
ledger file's identity as the parent opened it: Ledger.file_identity), then
("members", items), ("observations", rows), ("flush",) (answered ("flushed", rows added since
the last flush, items so far naming a run setting the batch record lacks: MemberPages.unknown)
once all before it is committed), ("end",). Child to parent: the answers, or
("error", class name, message, exit code): the child's RunlogError, raised again in the
parent as the same class, so the user sees the same one line and exit code.

What can go wrong, and what the user sees:
- the child fails (schema refusal, ledger error): its error, once, as above; the pages
  handed over before it are written (as refreshpipe.page_writer does);
- the child dies (killed, out of memory): one line naming it and the fix (run the refresh
  again: what it committed is whole transactions, and a rerun adds each member once);
- the parent fails or is interrupted: the child's input ends; it writes the whole pages it
  was given and exits; the parent waits for it (SIGKILL after STOP_WAIT seconds), so no
  process is left behind. The child ignores SIGINT, in a session of its own: Ctrl-C is the
  parent's to handle.
- the parent dies (SIGKILL): the child reads the end of its input, as above.

Small refreshes keep the threads (refreshpipe): the child costs ~0.25 s to start. The
environment variable RUNLOG_WRITER_PROCESS=1 always uses the child, =0 never."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from runlog import childproc, errors
from runlog.errors import LedgerError, RunlogError
from runlog.ledger import Ledger

CHILD_FROM_RUNS = 2000  # a batch of at least this many runs is written by a child process
ENV = "RUNLOG_WRITER_PROCESS"
STOP_WAIT = 30.0  # seconds the parent waits for the child to write what it was given, on an error
# The child's transactions: up to 100 pages (10 000 members or statuses) each, every page
# appended as it comes (refreshpipe.PageWriter: no pages held in Python while a transaction
# fills; committed early once it waited 3 s for its pages), on a connection with a 64 MiB page
# cache. Each COMMIT writes every index leaf its transaction touched, and the indexes on
# random keys (address, uuid, fingerprint; the observations' record) are read back from the
# file when the cache cannot hold them. The writer thread's CPU at 100 000 members and their
# statuses (offline, the child's work alone): 17.0 s in transactions of 30 pages on 16 MiB,
# 13.1-14.4 s with 50 pages on 24 MiB, 12.9 s with 100 pages on 24 MiB (docs/performance.md).
# Those indexes outgrow 24 MiB once the ledger holds another such batch: refreshing a second
# 100 000-member batch took 14.6 s on 64 MiB against 16.1 s on 24 MiB (medians of six
# alternated rounds, session 18), at a peak of 120 MiB against 78 (the aws CLI's listing: 113).
# The cache is SQLite's, filled only as pages are read: it does not grow with the batch.
# A refresh killed midway keeps whole transactions; a rerun adds the rest, each member once.
PAGES_A_TRANSACTION = 100
CACHE_KIB = 64 * 1024
# Pages handed to the writer thread with one call, of the AHEAD the child's main thread may
# build before the writer takes them: its statements then take Python's lock back from the
# building thread once for four pages rather than once a page (PageWriter's `gather`).
GATHER, AHEAD = 4, 8
_MEMBER = {"kind": "member"}
_PIPE_BYTES = 1 << 20  # the pipe's kernel buffer (Linux: F_SETPIPE_SZ): ~50 pages of items ahead


def wanted(ledger: Ledger, runs: Any) -> bool:
    """Whether a refresh of a batch of `runs` runs (GetBatch's totalRuns) should use the child."""
    if ledger.snapshot:  # an in-memory copy: no other connection can see it
        return False
    setting = os.environ.get(ENV, "").strip()
    if setting in ("0", "1"):
        return setting == "1"
    return type(runs) is int and runs >= CHILD_FROM_RUNS


class WriterProcess:
    """The parent's end: `members(items)` / `observations(rows)` hand over a page, `flush()`
    waits until all handed over is written and returns how many rows that added, `close()`
    ends the child; `abort()` (on an error) lets it write what it has and waits for it."""

    def __init__(self, ledger: Ledger, batch_address: str, outline: dict, batch_id: str | None = None):
        self._batch_id = batch_id
        self._path = ledger.file_path
        self._identity = ledger.file_identity
        self._address = batch_address
        self._outline = outline
        self._proc: subprocess.Popen | None = None
        # the child's MemberPages.unknown at its last flush: items naming a run setting the
        # batch record does not hold
        self.unknown_settings = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        try:
            self._proc = childproc.start("runlog.writerproc", "serve")
        except OSError as exc:
            raise LedgerError(f"cannot start the ledger's writer process: {exc}; "
                              f"set {ENV}=0 to write from this process") from None
        _grow(self._proc.stdin)
        self._send(("open", self._path, self._address, self._outline, self._identity))

    def members(self, items: list[dict]) -> None:
        """One page of ListRunsInBatch items, made into member records by the child."""
        self._send(("members", items))

    def observations(self, rows: list[tuple]) -> None:
        """One page of observation rows from Ledger.encode_observations."""
        if rows:
            self._send(("observations", rows))

    def flush(self) -> int:
        self._send(("flush",))
        return self._answer("flushed")

    def close(self) -> None:
        self._send(("end",))
        self._answer("done")
        self._wait()

    def abort(self) -> None:
        """The caller failed: end the child's input, let it write the pages it has, wait."""
        self._wait()

    # -- the pipe --------------------------------------------------------------------------

    def _send(self, message: tuple) -> None:
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        try:
            childproc.send(proc.stdin, message)
        except (ValueError, OSError):  # the child has ended: it says why, or died
            self._answer("done")
            raise self._died() from None

    def _answer(self, expected: str) -> int:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        try:
            message = childproc.receive(proc.stdout)
        except (OSError, ValueError, EOFError):
            message = None
        if message is None:
            raise self._died()
        if message[0] == "error":
            self._wait()
            raise _rebuilt(*message[1:])
        if message[0] != expected:
            raise errors.InternalError(f"the ledger's writer process answered {message[0]!r} where {expected!r} "
                                       "was due")
        if expected == "flushed":
            self.unknown_settings = int(message[2])
        return int(message[1])

    def _died(self) -> RunlogError:
        proc = self._proc
        assert proc is not None
        pid = proc.pid
        self._proc = None
        code = childproc.stop(proc, STOP_WAIT)
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        again = f"`refresh([{self._batch_id!r}])`" if self._batch_id else "the refresh"
        return LedgerError(f"the ledger's writer process (pid {pid}) ended before it finished ({how}); what it "
                           f"wrote is whole pages of members: run {again} again to record the rest")

    def _wait(self) -> None:
        """Let the child write what it was given and end (killed after STOP_WAIT seconds)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            childproc.stop(proc, STOP_WAIT)


@contextmanager
def writer_for(ledger: Ledger, batch_address: str, outline: dict, runs: Any,
               batch_id: str | None = None) -> Iterator[WriterProcess | None]:
    """A started WriterProcess when `wanted`, else None (the caller writes with its threads);
    closed on leaving, or aborted when the block raised (its error is the one reported)."""
    if not wanted(ledger, runs):
        yield None
        return
    writer = WriterProcess(ledger, batch_address, outline, batch_id)
    writer.start()
    try:
        yield writer
    except BaseException:
        try:
            writer.abort()
        except RunlogError:
            pass
        raise
    writer.close()


def _rebuilt(name: str, message: str, exit_code: int) -> RunlogError:
    """The child's error as the same class here (its exit code is the class's), else as
    RunlogError with the child's exit code."""
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, RunlogError) and cls.__init__ is RunlogError.__init__:
        return cls(message)
    return RunlogError(message, exit_code)


def _grow(pipe: IO[bytes] | None) -> None:
    """A larger pipe buffer where the system allows it (Linux), so that the parent's pages
    wait in the kernel while the child starts and copies the batch's settings."""
    try:
        import fcntl
    except ImportError:  # Windows
        return
    setting = getattr(fcntl, "F_SETPIPE_SZ", None)
    if pipe is None or setting is None:
        return
    try:
        fcntl.fcntl(pipe.fileno(), setting, _PIPE_BYTES)
    except OSError:
        pass


# -- the child's end -------------------------------------------------------------------------

# SQLite's sqlite3_config option that turns its memory statistics on or off
_SQLITE_CONFIG_MEMSTATUS = 9


def sqlite_without_memory_statistics() -> bool:
    """Turn off SQLite's memory statistics in this process, which must have no connection
    open (the child, before it opens the ledger). With them on (SQLite's default), every
    allocation and free of SQLite's takes one mutex for the whole process, and the child's
    two threads both run SQLite (the writer thread its inserts, this one the run settings'
    lookups): at 100 000 members a tenth of the main thread's profile samples were waits for
    that mutex (docs/performance.md, session 28). runlog reads no statistic. Done the way SQLite
    documents (sqlite3_shutdown, sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0),
    sqlite3_initialize) on the library Python's sqlite3 module uses, and only while SQLite
    holds no memory (with its statistics on, an open connection holds some). Returns whether
    they are off; False, and nothing changed, where that library cannot be reached (ctypes,
    the symbols), holds memory or refuses."""
    try:
        import _sqlite3
        import ctypes

        library = ctypes.CDLL(_sqlite3.__file__)
        shutdown, config, initialize = library.sqlite3_shutdown, library.sqlite3_config, library.sqlite3_initialize
        used = library.sqlite3_memory_used
    except (ImportError, OSError, AttributeError):
        return False
    used.restype = ctypes.c_int64
    config.argtypes = [ctypes.c_int]  # the fixed argument: the option's value goes as a variadic one
    if used() != 0:  # SQLite holds memory: a connection may be open, which a shutdown would break
        return False
    if shutdown() != 0:
        initialize()
        return False
    off = config(_SQLITE_CONFIG_MEMSTATUS, ctypes.c_int(0)) == 0
    return initialize() == 0 and off


def serve(source: IO[bytes], sink: IO[bytes]) -> int:
    """The child (started by childproc): read the pages from `source` and write them; answers
    to `sink`."""
    from runlog.batch import MemberPages
    from runlog.refreshpipe import PageWriter, open_same_ledger

    sqlite_without_memory_statistics()  # before the ledger is opened: no connection yet

    def answer(message: tuple) -> None:
        childproc.send(sink, message)

    opening = childproc.receive(source)
    if opening is None:
        return 0
    _, path, address, outline, identity = opening
    try:
        # another file renamed into the ledger's place since the parent opened it (checked before
        # it is opened, which may write to it, and after): the members would go where the
        # parent's own writes do not
        ledger = open_same_ledger(path, tuple(identity) if identity is not None else None)
        with ledger, ledger.bulk_writes(), ledger.file_run_settings(address) as from_file:
            maker = MemberPages(outline, address)
            writer = PageWriter(ledger, most=PAGES_A_TRANSACTION, cache_kib=CACHE_KIB, gather=GATHER, ahead=AHEAD)
            writer.start()
            counted = 0
            try:
                while True:
                    message = childproc.receive(source)
                    if message is None:  # the parent failed or died: the pages it gave are written
                        writer.close()
                        return 0
                    kind = message[0]
                    if kind == "members":  # of a member record the writer needs only its kind: the rest is in its body
                        writer.records([(_MEMBER, body, member, columns)
                                        for _, body, member, columns in maker.encode(message[1], from_file)],
                                       batch=address)  # made by MemberPages: each names this batch
                    elif kind == "observations":
                        writer.observations(message[1])
                    elif kind == "flush":
                        writer.close()
                        answer(("flushed", writer.added - counted, maker.unknown))
                        counted = writer.added
                        writer.start()
                    elif kind == "end":
                        writer.close()
                        answer(("done", writer.added))
                        return 0
            except BaseException:
                try:
                    writer.close()  # the pages handed over before the error are whole: written
                except RunlogError:
                    pass
                raise
    except RunlogError as exc:
        failed: tuple = ("error", type(exc).__name__, exc.message, exc.exit_code)
    except Exception as exc:
        failed = ("error", "LedgerError", f"cannot write to ledger {path}: {type(exc).__name__}: {exc}", 2)
    try:
        answer(failed)
    except OSError:  # the parent has gone (or stopped listening: Ctrl-C): nobody to tell
        _discard(sink)
    return 1


def _discard(sink: IO[bytes]) -> None:
    """Point `sink`'s file at /dev/null: what an answer cut short left in its buffer is
    flushed there when the child exits, instead of Python printing `Exception ignored …
    BrokenPipeError` on the terminal the child shares with its parent."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sink.fileno())
        os.close(null)
    except (OSError, ValueError):  # a sink that is no file (a test's): nothing to flush at exit
        pass

