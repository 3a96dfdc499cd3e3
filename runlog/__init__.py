"""runlog: a reproducible, auditable ledger of AWS HealthOmics workflow runs.

The Python API (docs/python-api.md):

    import runlog

    with runlog.Runlog() as rl:
        response = rl.start_run(workflowId="1234567", roleArn=ROLE, outputUri="s3://bucket/out/",
                                parameters={"sample": "NA12878"})

    omics = runlog.wrap(boto3.client("omics"))   # start_run records itself; other calls pass through

Runlog and wrap are imported on first use, so `import runlog` (and the command line) stays light."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runlog.errors import (
    BlobLost,
    DriftError,
    DuplicateAttemptError,
    InternalError,
    Interrupted,
    LedgerError,
    OperationError,
    PendingError,
    RunlogError,
    ServiceError,
    TemplateMismatch,
    Unresolved,
    UsageError,
)

__version__ = "0.1.0"

__all__ = [
    "Runlog", "wrap", "RecordingClient",
    "RunlogError", "UsageError", "DuplicateAttemptError", "LedgerError", "BlobLost", "ServiceError", "PendingError",
    "TemplateMismatch", "Unresolved", "DriftError", "OperationError", "InternalError", "Interrupted",
    "__version__",
]

if TYPE_CHECKING:  # pragma: no cover
    from runlog.api import RecordingClient, Runlog, wrap

_LAZY = {"Runlog", "wrap", "RecordingClient"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from runlog import api

        return getattr(api, name)
    raise AttributeError(f"module 'runlog' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY)
