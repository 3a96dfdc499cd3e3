"""Whether this process ends as soon as its one command is done, and what it then need not do.

The `runlog` program (runlog.cli.run) runs one command and ends the process at once
(os._exit, after flushing its output, running the exit handlers and closing every ledger:
docs/architecture.md). A command that made a large value (a cohort's 100 000 run settings,
their digests) would otherwise free it object by object when it returns, and the garbage
collector it had paused would walk whatever is still alive once more when resumed: at
100 000 runs, 0.03-0.05 s of a submit-batch, after the answer, that tell nobody anything.
In such a process `keep` holds the values until the end and `collector_paused` leaves the
collector paused. In any other (a program calling runlog's library or runlog.cli.main, which
goes on) both do the usual thing: the values are freed when let go of, the collector
resumes."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_ends_at_once = False
_kept: list[Any] = []


def ending_at_once() -> None:
    """Called by runlog.cli.run, before its one command: the process ends when it is done."""
    global _ends_at_once
    _ends_at_once = True


def keep(*values: Any) -> None:
    """Hold `values` until the process ends, when it ends at once; otherwise nothing."""
    if _ends_at_once:
        _kept.append(values)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused, then restored (left paused in a process
    that ends at once: see above)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled and not _ends_at_once:
            gc.enable()
