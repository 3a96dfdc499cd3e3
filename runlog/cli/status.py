"""Exit statuses of the runlog command, and the one table that maps library exceptions to them.

The library (runlog.*) raises the exceptions of runlog.errors and never picks an exit
status; the command line alone does, here."""

from __future__ import annotations

from runlog.errors import (
    BlobLost,
    DriftError,
    InternalError,
    LedgerError,
    OperationError,
    PendingError,
    RunlogError,
    ServiceError,
    UsageError,
)

SUCCESS = 0
FAILURE = 1  # the service refused, an outcome is unknown (pending), a check found a problem
BAD_INPUT = 2  # usage, unreadable files, unknown references, an unusable ledger
DRIFT = 3  # replay refused because something drifted
INTERNAL = 70  # a bug in runlog (EX_SOFTWARE)
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)

# Most specific first: the first class an exception is an instance of decides.
EXIT_CODES: tuple[tuple[type[RunlogError], int], ...] = (
    (DriftError, DRIFT),
    (InternalError, INTERNAL),
    (ServiceError, FAILURE),
    (PendingError, FAILURE),
    (OperationError, FAILURE),
    (BlobLost, FAILURE),  # a lost part of the ledger that verify names: what could be written was
    (UsageError, BAD_INPUT),
    (LedgerError, BAD_INPUT),
)


def exit_code_for(exc: RunlogError) -> int:
    """The exit status for a library exception: INTERRUPTED for an interruption, else the
    table's entry for its nearest class. Code that still names a status itself (an
    `exit_code=` given to the exception, or a subclass's own `exit_code`) keeps it."""
    if exc.interrupted:
        return INTERRUPTED
    if "exit_code" in vars(exc):  # given when raised
        return exc.exit_code
    table = dict(EXIT_CODES)
    for cls in type(exc).__mro__:
        if cls in table:
            return table[cls]
        if "exit_code" in vars(cls) and cls is not RunlogError:  # a subclass outside this table
            return cls.exit_code  # type: ignore[attr-defined]
    return BAD_INPUT
