"""Run the runlog CLI in this process, dying with SIGKILL at a chosen point.

    python tests/killers.py before-send ARGS...   # killed just before StartRun's bytes leave
    python tests/killers.py before-call:ListRuns:2 ARGS...   # just before the 2nd ListRuns request
    python tests/killers.py child-at-call:ListRunsInBatch:3:kill:FILE ARGS...   # SIGKILL runlog's child processes
    python tests/killers.py child-at-call:ListRunsInBatch:3:interrupt:FILE ARGS...   # SIGINT to this process
    python tests/killers.py child-at-call:ListRunsInBatch:3:list:FILE ARGS...   # only list them

The child-at-call points write each child process's pid and command line to FILE first.

Used by tests/test_reliability.py to prove no kill point loses a submission. The kill is
made at botocore's send boundary, outside runlog's own code."""

from __future__ import annotations

import os
import signal
import sys

import botocore.endpoint


def _install(point: str) -> None:
    if point.startswith("child-at-call:"):
        _, operation, nth, action, listing = point.split(":", 4)
        _at_call(operation, int(nth), lambda: _children_then(action, listing))
        return
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
    _at_call(operation, nth, lambda: os.kill(os.getpid(), signal.SIGKILL))


def _children_then(action: str, listing: str) -> None:
    """Write this process's children (pid, command line) to `listing`, then `action` them:
    kill (SIGKILL each child), interrupt (SIGINT to this process, as Ctrl-C), list (nothing)."""
    import time

    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            children.append((int(entry), command))
    with open(listing, "w") as out:
        out.writelines(f"{pid} {command}\n" for pid, command in children)
    if action == "kill":
        for pid, _ in children:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)  # the child is gone before the next page is handed to it
    elif action == "interrupt":
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5)


def _at_call(operation: str, nth: int, act) -> None:
    """`act()` just before the nth request of `operation` is made (from any thread)."""
    import threading

    original = botocore.endpoint.Endpoint.make_request
    lock = threading.Lock()
    made = [0]

    def make_request(self, operation_model, request_dict):
        if operation_model.name == operation:
            with lock:
                made[0] += 1
                if made[0] == nth:
                    act()
        return original(self, operation_model, request_dict)

    botocore.endpoint.Endpoint.make_request = make_request


if __name__ == "__main__":
    _install(sys.argv[1])
    from runlog.cli import main

    main(sys.argv[2:])
