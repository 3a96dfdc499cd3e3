"""A pull's packs checked in worker processes, on the cores the fetch threads leave idle.

Checking a pulled item (runlog/syncreceive.py: the pack against its name and its index,
each item's canonical form, the record schema, its row) is pure Python work under the
interpreter lock: in one process a cohort's pull checks on one core, however many threads
fetch. `Checkers` runs `check_pack` either in the calling thread or, for a pull with enough
to check (PARALLEL_FROM bytes of packs), in a pool of worker processes. The checks are the
same function either way, so a forged or tampered item is refused in a worker with the
reason it gets in the main process; the worker sends back only what its rows need.

A worker is a child interpreter started by runlog/childproc.py (isolated, the pulling
process's module path, a session of its own, marshal messages on its pipes) running `serve`:
Ctrl-C reaches the pulling process alone, which stops its workers by closing their pipes
when the pull ends, fails or is interrupted; a worker whose pulling process died ends at
the end of its requests. A worker that dies (out of memory, killed) fails the pull with
one line before anything is inserted; an exception in a worker (a bug) is an internal
error, as it would be in the pulling process.

Nothing here talks to S3 or the ledger."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future
from typing import IO, Any

from runlog import childproc
from runlog.errors import InternalError, RunlogError
from runlog.syncpack import PackIndex, split_pack
from runlog.syncreceive import ObservationRow, Row, check_observations, check_records

# Below this many bytes of packs to check, a pull checks them itself: starting workers
# (an interpreter each, about a fifth of a second) costs more than the second core saves.
PARALLEL_FROM = 8 * 1024 * 1024
MAX_WORKERS = 4
WORKERS_VARIABLE = "RUNLOG_PULL_WORKERS"  # how many, whatever the size (0: none)

# What check_pack gives back for a pack that can be used: its good records as (created,
# address, request id, row), its good observations' rows, and one line per refused item.
Checked = tuple[list[tuple[str, str, str | None, Row]], list[ObservationRow], list[str]]


class WorkerError(RunlogError):
    """A worker process checking packs ended without an answer; nothing was inserted."""

    exit_code = 1


def check_pack(digest: str, data: bytes, index: PackIndex, want_records: Collection[str],
               want_observations: Collection[str], max_bytes: int) -> tuple[Checked | None, str | None]:
    """The pack `digest` (its bytes) checked against its name and `index`, then the items
    of it wanted (record and observation addresses) checked one by one (check_records,
    check_observations). (None, why) when the pack as a whole cannot be used."""
    items, why = split_pack(digest, data, index)
    if why:
        return None, why
    del data
    records, observations = set(want_records), set(want_observations)
    filed = dict(index.observations)
    # split_pack named each item by the SHA-256 of its bytes: the address is not hashed again
    wanted_records = [(address, body) for kind, address, body in items if kind == "record" and address in records]
    wanted_observations = [(address, filed[address], body) for kind, address, body in items
                           if kind == "observation" and address in observations]
    del items
    good_records: list[tuple[str, str, str | None, Row]] = []
    good_observations: list[ObservationRow] = []
    bad: list[str] = []
    for (address, _), (found, why) in zip(wanted_records, check_records(wanted_records, max_bytes, hashed=True),
                                          strict=True):
        if found is None:
            bad.append(f"record {address}: {why}")
        else:
            created, request_id, row = found
            good_records.append((created, address, request_id, row))
    for (address, _, _), (observed, why) in zip(wanted_observations, check_observations(
            wanted_observations, max_bytes, hashed=True), strict=True):
        if observed is None:
            bad.append(f"observation {address}: {why}")
        else:
            good_observations.append(observed)
    return (good_records, good_observations, bad), None


def worker_count(pack_bytes: int, workers: int | None = None) -> int:
    """How many worker processes check `pack_bytes` of packs: `workers` when given, else the
    environment's RUNLOG_PULL_WORKERS (a number; 0: none), else none below PARALLEL_FROM
    bytes or on one core, else one per core (at most MAX_WORKERS)."""
    return childproc.worker_count(WORKERS_VARIABLE, pack_bytes, PARALLEL_FROM, most=MAX_WORKERS, workers=workers,
                                  what="check a pull's packs")


def batch_check(body: bytes, batch_address: str, received: bool, cohort: dict[str, bytes] | None = None
                ) -> Callable[[str, bytes], str | None]:
    """batch.member_check of the batch record `body` (its canonical JSON): decoded as pull
    always decoded it, by fastjson when it was `received` in this pull, by the json module
    when it is the local ledger's (Entry.record). `cohort`: the blobs it names {sha256:
    canonical JSON}, when it holds its cohort by reference: put back in place first
    (blobs.inflate), as every reader of the record sees it."""
    from runlog import blobs, fastjson
    from runlog.batch import member_check

    batch = fastjson.loads(body) if received else json.loads(body)
    if cohort:
        batch = blobs.inflate(batch, cohort.__getitem__)
    return member_check(batch, batch_address)


def unmade(check: Callable[[str, bytes], str | None], members: Sequence[tuple[str, bytes]]) -> list[tuple[str, str]]:
    """(address, why) of each member record (address, canonical JSON) that `check` refuses."""
    return [(address, why) for address, data in members if (why := check(address, data)) is not None]


# -- the worker's side ------------------------------------------------------------------------------

def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """Answer check requests until the pulling process closes the pipe: each request is
    check_pack's arguments (the index as its fields), or ("members", batch address, the batch
    record's canonical JSON (None: the one this worker was last sent), the blobs it names
    (batch_check's `cohort`), whether it was received, member records as (address, canonical JSON)); each answer ("ok", check_pack's answer or the
    members refused, as unmade gives them) or ("error", what went wrong) for an exception, which
    is a bug. A worker keeps the check of the last batch record it was sent."""
    held: tuple[str, Callable[[str, bytes], str | None]] | None = None
    while (request := childproc.receive(requests)) is not None:
        try:
            if request[0] == "members":
                _, batch_address, body, cohort, received, members = request
                if body is not None or held is None or held[0] != batch_address:
                    held = None  # one batch record at a time
                    held = (batch_address, batch_check(body, batch_address, received, cohort))
                    del cohort
                answer: tuple = ("ok", unmade(held[1], members))
            else:
                digest, data, size, records, observations, want_records, want_observations, max_bytes = request
                answer = ("ok", check_pack(digest, data, PackIndex(digest, size, records, observations),
                                           want_records, want_observations, max_bytes))
        except Exception as exc:  # a bug: the pulling process says so in one line
            answer = ("error", f"{type(exc).__name__}: {exc}")
        del request
        childproc.send(answers, answer)


# -- the pulling process's side -------------------------------------------------------------------


class _Worker:
    def __init__(self) -> None:
        self.process = childproc.start("runlog.syncworker", "serve")
        self.batch: str | None = None  # the batch record whose check this worker holds

    def ask(self, request: tuple, died: str = "checking the pulled packs") -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            childproc.send(self.process.stdin, request)
            answer = childproc.receive(self.process.stdout)
        except (BrokenPipeError, OSError, ValueError):
            answer = None
        if answer is None:
            raise WorkerError(f"a worker process {died} ended without an answer (out of memory, or killed?); "
                              "nothing was inserted: run the pull again (it resumes)")
        return answer

    def stop(self) -> None:
        childproc.stop(self.process, 10)


class Checkers:
    """check_pack here, or in `workers` worker processes (started when the context is
    entered); a context manager: leaving it stops the workers, also on an error or Ctrl-C."""

    def __init__(self, workers: int = 0) -> None:
        self.workers = workers
        self._idle: list[_Worker] = []  # the last one used taken first
        self._freed = threading.Condition()
        self._all: list[_Worker] = []
        self._waiting: Any = None  # the threads that wait for the workers' member checks
        self._held: tuple[str, Callable[[str, bytes], str | None]] | None = None  # without workers

    def __enter__(self) -> Checkers:
        try:
            for _ in range(self.workers):
                worker = _Worker()
                self._all.append(worker)
                self._put(worker)
        except (OSError, ValueError):  # no interpreter to start (an embedded Python): checked here
            self.__exit__()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        workers, self._all = self._all, []
        for worker in workers:
            worker.stop()
        if self._waiting is not None:
            self._waiting.shutdown(wait=True, cancel_futures=True)

    def check(self, digest: str, data: bytes, index: PackIndex, want_records: Collection[str],
              want_observations: Collection[str], max_bytes: int) -> tuple[Checked | None, str | None]:
        """check_pack's answer, from the calling thread or (when there are workers) from the
        first worker free; the calling thread (a fetch thread) waits for it."""
        if not self._all:
            return check_pack(digest, data, index, want_records, want_observations, max_bytes)
        worker = self._take()
        try:
            status, answer = worker.ask((digest, data, index.size, list(index.records),
                                         [list(pair) for pair in index.observations], list(want_records),
                                         list(want_observations), max_bytes))
        finally:
            self._put(worker)
        if status != "ok":
            raise InternalError(f"checking a pulled pack failed in a worker process: {answer} (please report it)")
        found, why = answer
        return (tuple(found) if found is not None else None), why

    def members(self, batch_address: str, body: bytes, received: bool, members: list[tuple[str, bytes]],
                cohort: dict[str, bytes] | None = None) -> Future[list[tuple[str, str]]]:
        """The member records (address, canonical JSON) of the batch record `body` (at
        `batch_address`; `received` in this pull, else the local ledger's) that are not what it
        makes of their runs, as (address, why): unmade(batch_check(...), members), as a future
        (`cohort`: the blobs the batch record names, batch_check's):
        in a worker (the one that checked the last members, which holds the batch record's check
        already; a thread of its own waits for it), or here, done, when there are none. Meant
        for a pull's inserts: a worker checks the next page while this process inserts one."""
        if not self._all:
            if self._held is None or self._held[0] != batch_address:
                self._held = None  # one batch record at a time
                self._held = (batch_address, batch_check(body, batch_address, received, cohort))
            done: Future[list[tuple[str, str]]] = Future()
            done.set_result(unmade(self._held[1], members))
            return done
        if self._waiting is None:
            from concurrent.futures import ThreadPoolExecutor

            self._waiting = ThreadPoolExecutor(max_workers=1, thread_name_prefix="runlog-pull-members")
        return self._waiting.submit(self._members, batch_address, body, received, members, cohort)

    def _take(self, batch: str | None = None) -> _Worker:
        """An idle worker, the last one used first; with `batch`, the worker holding that batch
        record's check when there is one (waiting for it to be free: the pulls that append
        while packs are still checked would otherwise have each worker decode the cohort)."""
        with self._freed:
            while True:
                holding = [w for w in self._all if batch is not None and w.batch == batch]
                pool = [w for w in self._idle if w in holding] if holding else self._idle
                if pool:
                    worker = pool[-1]
                    self._idle.remove(worker)
                    return worker
                self._freed.wait()

    def _put(self, worker: _Worker) -> None:
        with self._freed:
            self._idle.append(worker)
            self._freed.notify_all()

    def _members(self, batch_address: str, body: bytes, received: bool, members: list[tuple[str, bytes]],
                 cohort: dict[str, bytes] | None = None) -> list[tuple[str, str]]:
        worker = self._take(batch_address)
        try:
            again = worker.batch == batch_address  # the worker holds its check already
            status, answer = worker.ask(("members", batch_address, None if again else body,
                                         None if again else cohort, received, members),
                                        "checking the pulled member records")
            worker.batch = batch_address
        finally:
            self._put(worker)
        if status != "ok":
            raise InternalError(f"checking pulled member records failed in a worker process: {answer} (please "
                                "report it)")
        return [tuple(pair) for pair in answer]

