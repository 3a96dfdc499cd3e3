"""Values kept out of memory until they are used: one place for the two kinds of waiting that
a cohort's work needs (issue 14).

- `Spool`: rows put from any thread, each read back by the place `put` returned. The first
  `memory` bytes stay in memory, the rest go to a private temporary file (removed as it is
  made: nothing is left behind). A pull keeps its checked rows here until they are inserted
  (runlog.sync).
- `Prefetch` (started by `spooled`): a paging run by a thread of its own from the moment it
  starts, its pages put in a Spool that holds nothing in memory, read back in order by
  `pages()`. A refresh pages ListRuns for the statuses this way while it records the members
  from ListRunsInBatch, so that the two pagings' round trips overlap and memory holds one
  page whatever how far the paging got ahead.

Values are runlog's own (strings, bytes, numbers, None, tuples, lists, dicts of them),
written with marshal: never anything read back from a file another user can write."""

from __future__ import annotations

import marshal
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

# How many bytes of rows a pull's spool keeps in memory before it writes the rest to a
# temporary file: a 10 000-member cohort (about 25 MiB of rows) never touches the disk, a
# 100 000-member one (about 220 MiB) holds this much and writes the rest.
SPOOL_MEMORY = 64 * 1024 * 1024


class Spool:
    """Where values wait: `put` (from any thread) returns where a value is, `get` reads it
    back once its put has returned (SPOOL_MEMORY bytes in memory unless `memory` says how many)."""

    def __init__(self, memory: int | None = None, *, prefix: str = "runlog-") -> None:
        self._budget = SPOOL_MEMORY if memory is None else memory
        self._prefix = prefix
        self._memory = bytearray()
        self._file: Any = None
        self._base = 0  # where the file's first byte is in the spool
        self._lock = threading.Lock()
        self._end = 0
        self._flushed = True

    def put(self, value: Any) -> tuple[int, int]:
        data = marshal.dumps(value)
        with self._lock:
            at = self._end
            if self._file is None and len(self._memory) + len(data) <= self._budget:
                self._memory += data
            else:
                if self._file is None:
                    self._file = tempfile.TemporaryFile(prefix=self._prefix)
                    self._base = at
                self._file.write(data)
                self._flushed = False
            self._end += len(data)
        return at, len(data)

    def get(self, where: tuple[int, int]) -> Any:
        at, length = where
        if at < self._base or self._file is None:
            return marshal.loads(self._memory[at:at + length])
        if hasattr(os, "pread"):
            if not self._flushed:
                with self._lock:
                    self._file.flush()
                    self._flushed = True
            return marshal.loads(os.pread(self._file.fileno(), length, at - self._base))
        with self._lock:  # no pread (Windows): through the file's position
            self._file.seek(at - self._base)
            data = self._file.read(length)
            self._file.seek(self._end - self._base)
        return marshal.loads(data)

    def on_disk(self) -> int:
        """How many bytes of values went to the temporary file."""
        return self._end - self._base if self._file is not None else 0

    def close(self) -> None:
        self._memory = bytearray()
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Prefetch:
    """The pages of a paging, fetched by a thread of their own from `start()` and kept in a
    Spool on disk, read back in order by `pages()`. An error of the paging is raised by
    `pages()` where its page would have been."""

    def __init__(self, pages: Iterable[Any]):
        self._pages = pages
        self._spool = Spool(0, prefix="runlog-pages-")
        self._places: list[tuple[int, int]] = []
        self._changed = threading.Condition()
        self._done = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fetch, name="runlog-prefetch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _fetch(self) -> None:
        try:
            for page in self._pages:
                if self._stop.is_set():
                    return
                where = self._spool.put(page)
                with self._changed:
                    self._places.append(where)
                    self._changed.notify_all()
        except BaseException as exc:  # handed to the reader, raised there
            with self._changed:
                self._error = exc
        finally:
            close = getattr(self._pages, "close", None)  # a generator: its own clean-up, in its thread
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: S110 (the paging is abandoned; its error is of no use)
                    pass
            with self._changed:
                self._done = True
                self._changed.notify_all()
                if self._stop.is_set():  # the reader has left: the file is this thread's to close
                    self._spool.close()

    def pages(self) -> Iterator[Any]:
        """The pages, in the paging's order, as they come (waiting for the next)."""
        taken = 0
        while True:
            with self._changed:
                while len(self._places) <= taken and not self._done:
                    self._changed.wait()
                if len(self._places) <= taken:
                    error = self._error
                    if error is not None:
                        raise error
                    return
                where = self._places[taken]
            yield self._spool.get(where)
            taken += 1

    def close(self) -> None:
        """Stop the paging after the page it is on (not waited for) and drop the file: here
        when the paging has ended, else by its thread when it does (never while it writes)."""
        with self._changed:
            self._stop.set()
            if self._done:
                self._spool.close()


@contextmanager
def spooled(pages: Iterable[Any]) -> Iterator[Prefetch]:
    """A started Prefetch of `pages`, closed on leaving."""
    prefetch = Prefetch(pages)
    prefetch.start()
    try:
        yield prefetch
    finally:
        prefetch.close()
