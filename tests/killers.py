"""Run the runlog CLI in this process, dying with SIGKILL at a chosen point.

    python tests/killers.py before-send ARGS...   # killed just before StartRun's bytes leave

Used by tests/test_reliability.py to prove no kill point loses a submission. The kill is
made at botocore's send boundary, outside runlog's own code."""

from __future__ import annotations

import os
import signal
import sys

import botocore.endpoint


def _install(point: str) -> None:
    original = botocore.endpoint.Endpoint._send

    def send(self, request):
        if point == "before-send" and request.method == "POST" and request.url.split("?")[0].endswith("/run"):
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, request)

    botocore.endpoint.Endpoint._send = send


if __name__ == "__main__":
    _install(sys.argv[1])
    from runlog.cli import main

    main(sys.argv[2:])
