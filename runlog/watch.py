"""Following a run to its end, and checking that it ran on the inputs pinned at submission."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runlog.errors import OperationError, UsageError
from runlog.ledger import Entry, Ledger
from runlog.observe import TERMINAL, observe


@dataclass
class Outcome:
    status: str
    run: dict[str, Any]
    input_changes: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "COMPLETED" and not self.input_changes


def input_changes(record: dict, run: dict) -> list[dict]:
    """S3 inputs whose ETag as the service read them (GetRun resourceDigests) differs from
    the ETag pinned at submission (the record's resolution)."""
    pinned = (record.get("resolution") or {}).get("inputs") or {}
    seen = run.get("resourceDigests") or {}
    changes = []
    for uri, identity in pinned.items():
        if identity.get("kind") != "s3-object" or "etag" not in identity or uri not in seen:
            continue
        used = seen[uri].split(":", 1)[1] if seen[uri].startswith("etag:") else seen[uri]
        if used != identity["etag"]:
            changes.append({"uri": uri, "pinned_etag": identity["etag"], "run_etag": used})
    return changes


def watch(ledger: Ledger, entry: Entry, omics, *, interval: float = 30.0, timeout: float | None = None,
          on_poll: Callable[[dict], None] = lambda run: None, sleep=time.sleep) -> Outcome:
    """Poll GetRun until the run is terminal, appending an observation at each status change."""
    if not entry.run_id:
        raise UsageError(f"record {entry.address[:12]} has no run to watch (the service rejected it)")
    started = time.monotonic()
    status = None  # the first answer is always recorded
    while True:
        run = observe(ledger, entry, omics, unless_status=status) or {}
        status = run.get("status")
        on_poll(run)
        if status in TERMINAL:
            return Outcome(status, run, input_changes(entry.record, run))
        if timeout is not None and time.monotonic() - started + interval > timeout:
            raise OperationError(f"run {entry.run_id} is still {status} after {timeout:g} s; "
                              "`watch()` again to keep following it")
        sleep(interval)
