"""A push's items checked in worker processes, on the cores the sending threads leave idle.

Push checks every record and observation it sends as verify checks it, as it reads it
(verify.checked_records, checked_observations), and sends the very bytes it checked. That
is pure Python work under the interpreter lock: in one process a push of a 100 000-member
cohort checks on one core, and the checks take most of its time, while the threads that
send the packs wait for them. `Checkers` gives those checks to worker processes started by
runlog/childproc.py (as a pull's packs go to runlog/syncworker.py): each reads the ledger
through a read-only connection of its own, a slice of seqs at a time, with the same
functions, and sends back each item with what its checks found. The items come back in the
push's order, so the packs made of them are those one process makes, item for item, and an
item that fails its checks is refused with the same line.

The ledger is append-only: the rows a push chose (by seq, from its own connection) are there
for a worker's connection too, whatever is added meanwhile. A push with fewer than
PARALLEL_FROM items to check checks them itself; RUNLOG_PUSH_WORKERS sets the number of
workers whatever the size (0: none). A worker that dies (out of memory, killed) fails the
push with one line: the packs sent before stay on the remote, and the next push resumes.

Nothing here talks to S3."""

from __future__ import annotations

import queue
import sqlite3
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any

from runlog import childproc
from runlog.errors import InternalError, LedgerError, RunlogError
from runlog.textsafe import terminal_safe

# Below this many records and observations to check, a push checks them itself: starting a
# worker (an interpreter, about a fifth of a second) costs more than a second core saves.
PARALLEL_FROM = 20_000
MAX_WORKERS = 4
WORKERS_VARIABLE = "RUNLOG_PUSH_WORKERS"  # how many, whatever the size (0: none)
# Seqs a worker checks per request (about a megabyte of records), and how many requests
# wait ahead per worker: the checks keep ahead of the packs being made, without holding more.
SLICE = {"records": 1000, "observations": 2000}
AHEAD = 2


class WorkerError(RunlogError):
    """A worker process checking a push's items ended without an answer."""

    exit_code = 1


def worker_count(items: int, workers: int | None = None) -> int:
    """How many worker processes check `items` records and observations (childproc.worker_count's
    rule, with RUNLOG_PUSH_WORKERS)."""
    return childproc.worker_count(WORKERS_VARIABLE, items, PARALLEL_FROM, most=MAX_WORKERS, workers=workers,
                                  what="check a push's items")


# -- the worker's side ------------------------------------------------------------------------------

def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """Answer check requests until the pushing process closes the pipe. A request is (kind,
    the ledger's path, the file's identity (device, inode) as the pushing process opened it,
    seqs): "records" gives verify.checked_records' items, "observations"
    checked_observations', each problem as (kind, where, message); the answer is ("ok",
    those items), ("replaced", the path) when the file at the path is no longer the one the
    pushing process reads (it never reads another), or ("error", what went wrong) for an
    exception, which is a bug."""
    from runlog import verify
    from runlog.ledger import open_same_file

    opened: dict[str, sqlite3.Connection] = {}
    while (request := childproc.receive(requests)) is not None:
        try:
            kind, path, identity, seqs = request
            conn = opened.get(path)
            if conn is None:
                # read through SQLite's own small page cache, not mapped into memory as verify's
                # workers read: a mapped ledger counts in each worker's resident memory
                conn = open_same_file(path, identity)
                if conn is not None:
                    opened[path] = conn
            if conn is None:
                answer: tuple = ("replaced", path)
            elif kind == "records":
                answer = ("ok", [(address, body, [_fields(p) for p in problems], created)
                                 for address, body, problems, created in verify.checked_records(conn, seqs)])
            else:
                answer = ("ok", [(seq, stored, address, record, data, [_fields(p) for p in problems], when)
                                 for seq, stored, address, record, data, problems, when in
                                 verify.checked_observations(conn, seqs)])
        except Exception as exc:  # a bug: the pushing process says so in one line
            answer = ("error", f"{type(exc).__name__}: {exc}")
        del request
        childproc.send(answers, answer)


def _fields(problem: Any) -> tuple[str, str, str]:
    return problem.kind, problem.where, problem.message


# -- the pushing process's side -------------------------------------------------------------------

class Checkers:
    """verify.OutgoingChecks for a push: the checks made here (`ledger`'s connection) until
    `start` is given workers, then in that many worker processes; a context manager whose
    end stops them, also on an error or Ctrl-C."""

    def __init__(self, ledger: Any) -> None:
        self.ledger = ledger
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._all: list[Any] = []
        self._asking: ThreadPoolExecutor | None = None
        self._path = ""
        self._identity: tuple[int, int] = (0, 0)

    def start(self, workers: int) -> None:
        """Start `workers` worker processes (none for a ledger that is not a file of its own,
        an in-memory copy of an older ledger, nor while the ledger's connection is inside a
        transaction, whose rows other connections do not see). No interpreter to start (an
        embedded Python): the checks stay here."""
        if workers <= 0 or self.ledger.snapshot or self.ledger.conn.in_transaction:
            return
        self._path = self.ledger.file_path
        if self.ledger.file_identity is None:  # not at its path any more: checked here, through its connection
            return
        self._identity = self.ledger.file_identity
        try:
            for _ in range(workers):
                process = childproc.start("runlog.pushworker", "serve")
                self._all.append(process)
                self._idle.put(process)
        except (OSError, ValueError):
            self._stop()
            return
        self._asking = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="runlog-push-check")

    def __enter__(self) -> Checkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        processes, self._all = self._all, []
        for process in processes:
            childproc.stop(process, 10)
        if self._asking is not None:
            self._asking.shutdown(wait=True, cancel_futures=True)
            self._asking = None

    def records(self, order: list[int]) -> Iterator[tuple]:
        from runlog.verify import Problem, checked_records

        if self._asking is None:
            yield from checked_records(self.ledger.conn, order)
            return
        for address, body, problems, created in self._in_order("records", order):
            yield address, body, [Problem(*p) for p in problems], created

    def observations(self, seqs: list[int]) -> Iterator[tuple]:
        from runlog.verify import Problem, checked_observations

        if self._asking is None:
            yield from checked_observations(self.ledger.conn, seqs)
            return
        for seq, stored, address, record, data, problems, when in self._in_order("observations", seqs):
            yield seq, stored, address, record, data, [Problem(*p) for p in problems], when

    def _in_order(self, kind: str, seqs: list[int]) -> Iterator[tuple]:
        """The items of `seqs`, checked a slice at a time by the workers (AHEAD slices a worker
        asked ahead), given back in the order of `seqs`."""
        asking = self._asking
        assert asking is not None
        size = SLICE[kind]
        slices = iter(range(0, len(seqs), size))
        waiting: deque[Future[list]] = deque()

        def ask(low: int) -> Future[list]:
            return asking.submit(self._ask, kind, seqs[low:low + size])

        try:
            for low in slices:
                waiting.append(ask(low))
                if len(waiting) >= AHEAD * len(self._all):
                    break
            while waiting:
                found = waiting.popleft().result()
                following = next(slices, None)
                if following is not None:
                    waiting.append(ask(following))
                yield from found
        finally:
            for future in waiting:
                future.cancel()

    def _ask(self, kind: str, seqs: list[int]) -> list:
        process = self._idle.get()
        try:
            assert process.stdin is not None and process.stdout is not None
            try:
                childproc.send(process.stdin, (kind, self._path, self._identity, seqs))
                answer = childproc.receive(process.stdout)
            except (BrokenPipeError, OSError, ValueError):
                answer = None
        finally:
            self._idle.put(process)
        if answer is None:
            raise WorkerError(f"a worker process checking the {kind} to push ended without an answer (out of "
                              "memory, or killed?); the packs sent before it are on the remote: run the push again "
                              "(it resumes)")
        status, found = answer
        if status == "replaced":
            raise LedgerError(f"the ledger file {terminal_safe(found)} was replaced while it was pushed (another file "
                              "renamed into its place): nothing of it was sent after the packs before; check which "
                              "file is the ledger, then run the push again")
        if status != "ok":
            raise InternalError(f"checking the {kind} to push failed in a worker process: {found} (please report it)")
        return found
