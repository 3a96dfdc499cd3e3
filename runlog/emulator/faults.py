"""Faults the emulator injects into the next matching requests, for tests of retries,
timeouts and clients that die after the service accepted a run."""

from __future__ import annotations

import threading

KINDS = ("throttle", "error", "latency", "drop")
PHASES = ("before", "after")
# The error each erroring kind answers with, unless the fault names another `code`.
DEFAULT_CODES = {"throttle": "ThrottlingException", "error": "InternalServerException"}


class Faults:
    """Pending faults. Each matching request uses one `count` of every pending fault that
    matches its operation (`operation=None` matches any), once the fault has let its first
    `skip` matching requests by (a fault on a retry only: skip=1)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pending: list[dict] = []

    def add(self, kind: str, operation: str | None = None, count: int = 1, seconds: float = 0.0,
            phase: str = "before", code: str | None = None, skip: int = 0) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(KINDS)}")
        if phase not in PHASES:
            raise ValueError(f"unknown fault phase {phase!r}; one of {', '.join(PHASES)}")
        if int(count) < 1 or float(seconds) < 0 or int(skip) < 0:
            raise ValueError("a fault needs count >= 1, seconds >= 0 and skip >= 0")
        with self._lock:
            self._pending.append({"kind": kind, "operation": operation, "count": int(count),
                                  "seconds": float(seconds), "phase": phase, "code": code, "skip": int(skip)})

    def take(self, operation: str | None) -> list[dict]:
        """The faults that apply to one request for `operation`, used up as they are taken."""
        with self._lock:
            taken = []
            for fault in self._pending:
                if fault["operation"] in (None, operation):
                    if fault["skip"]:  # this request is one of those the fault lets by first
                        fault["skip"] -= 1
                        continue
                    fault["count"] -= 1
                    taken.append(dict(fault))
            self._pending = [f for f in self._pending if f["count"] > 0]
            return taken

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
