"""Run the runlog CLI in this process, dying with SIGKILL at a chosen point.

    python tests/killers.py before-send ARGS...   # killed just before StartRun's bytes leave
    python tests/killers.py before-call:ListRuns:2 ARGS...   # just before the 2nd ListRuns request

Used by tests/test_reliability.py to prove no kill point loses a submission. The kill is
made at botocore's send boundary, outside runlog's own code."""

from __future__ import annotations

import os
import signal
import sys

import botocore.endpoint


def _install(point: str) -> None:
    if point.startswith("before-call:"):
        _, operation, nth = point.split(":")
        _kill_before_call(operation, int(nth))
        return
    original = botocore.endpoint.Endpoint._send

    def send(self, request):
        if point == "before-send" and request.method == "POST" and request.url.split("?")[0].endswith("/run"):
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, request)

    botocore.endpoint.Endpoint._send = send


def _kill_before_call(operation: str, nth: int) -> None:
    """SIGKILL just before the nth request of `operation` is made (from any thread)."""
    import threading

    original = botocore.endpoint.Endpoint.make_request
    lock = threading.Lock()
    made = [0]

    def make_request(self, operation_model, request_dict):
        if operation_model.name == operation:
            with lock:
                made[0] += 1
                if made[0] == nth:
                    os.kill(os.getpid(), signal.SIGKILL)
        return original(self, operation_model, request_dict)

    botocore.endpoint.Endpoint.make_request = make_request


if __name__ == "__main__":
    _install(sys.argv[1])
    from runlog.cli import main

    main(sys.argv[2:])
