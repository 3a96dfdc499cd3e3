"""Run a function in a forked child process, for work that can overlap the parent's own
CPU-bound start-up (importing boto3, loading service models) on another core.

Used by `submit` for the git capture: the git commands run beside botocore's import
instead of after it. Where fork is unavailable, or other threads are running
(as in an application embedding runlog), the function runs inline."""

from __future__ import annotations

import json
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any


def _reap(pid: int) -> None:
    """Wait for the child `pid` to end. In a process that ignores SIGCHLD (a program embedding
    runlog may) the kernel reaps it itself, and waitpid fails with ECHILD once it has ended:
    the child is gone all the same."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _discard(pid: int, read_fd: int) -> None:
    """A child whose result was never asked for (its caller failed first: a bad request, say):
    its pipe closed (its write fails, and it leaves) and it reaped, so that a program calling
    runlog again and again keeps neither a process nor a descriptor per failure."""
    try:
        os.close(read_fd)
    except OSError:
        pass
    _reap(pid)


class Pending:
    def __init__(self, pid: int | None, read_fd: int | None, value: Any = None, error: BaseException | None = None):
        self._pid, self._fd, self._value, self._error = pid, read_fd, value, error
        # run when the Pending is let go of with its result never asked for
        self._unasked = weakref.finalize(self, _discard, pid, read_fd) if pid is not None and read_fd is not None \
            else None

    def result(self) -> Any:
        if self._fd is not None and self._pid is not None:
            if self._unasked is not None:
                self._unasked.detach()
            with os.fdopen(self._fd, "rb") as pipe:
                data = pipe.read()
            _reap(self._pid)
            self._fd = None
            try:
                message = json.loads(data)
            except ValueError:
                message = {"error": "the background process died"}
            if "error" in message:
                self._error = RuntimeError(message["error"])
            else:
                self._value = message["value"]
        if self._error is not None:
            raise self._error
        return self._value


def start(function: Callable[..., Any], *args: Any) -> Pending:
    """Start function(*args) in a child; its JSON-serialisable result comes from .result()."""
    # Forking a process with other threads can copy locks those threads hold: run inline then.
    if not hasattr(os, "fork") or threading.active_count() > 1 or os.environ.get("RUNLOG_NO_FORK"):
        try:
            return Pending(None, None, value=function(*args))
        except Exception as exc:  # reported when the result is asked for, as in the forked case
            return Pending(None, None, error=exc)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compute, write one JSON message, leave without cleanup handlers
        try:
            os.close(read_fd)
            try:
                message = {"value": function(*args)}
            except BaseException as exc:  # everything must reach the parent
                message = {"error": f"{type(exc).__name__}: {exc}"}
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(json.dumps(message).encode("utf-8"))
        finally:  # never back into the caller's code, whatever happened (a parent gone: a broken pipe)
            os._exit(0)
    os.close(write_fd)
    return Pending(pid, read_fd)
