"""Run a function in a forked child process, for work that can overlap the parent's own
CPU-bound work on another core.

Used by `submit` for the git capture (the git commands run beside botocore's import instead
of after it), by `export` for PROV, and by `submit-batch` for a cohort's inputs (resolved
while the parent checks and encodes the settings file: runlog/batch.py). Where fork is
unavailable, or other threads are running (as in an application embedding runlog), the
function runs inline. The child's result comes back through a pipe as JSON, or with
`binary` as marshal (bytes, str, numbers, lists and dicts of them: what a forked copy of
this process writes, never what another user can)."""

from __future__ import annotations

import atexit
import json
import marshal
import os
import signal
import sys
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


_ending: list[int] = []  # children whose answer was read while they were still ending
_ending_registered: list[Any] = []  # the exit handler that reaps them, once registered


def _reap_later(pid: int) -> None:
    """Reap the child `pid` if it has ended; else leave it to _reap_ended. A child that has
    written its answer still has to end, and the end of a large one (the kernel freeing a
    cohort's worth of memory) is not worth waiting for on the way to the call."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return
    if done == 0:
        if not _ending_registered:
            _ending_registered.append(atexit.register(_reap_ended, False))  # by then they have ended
        _ending.append(pid)


def _reap_ended(now: bool = True) -> None:
    """Reap the children left to end (_reap_later): those that have (`now`), or all of them."""
    for pid in list(_ending):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG if now else 0)
        except ChildProcessError:
            done = pid
        if done:
            _ending.remove(pid)


def _discard(pid: int, read_fd: int, stop: bool = False) -> None:
    """A child whose result was never asked for (its caller failed first: a bad request, say):
    its pipe closed (its write fails, and it leaves), killed first with `stop` (its work is
    long and of no use now), and reaped, so that a program calling runlog again and again
    keeps neither a process nor a descriptor per failure."""
    try:
        os.close(read_fd)
    except OSError:
        pass
    _end(pid, stop)


def _end(pid: int, stop: bool) -> None:
    """The child `pid` killed (with `stop`) and reaped."""
    if stop:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _reap(pid)


class Pending:
    def __init__(self, pid: int | None, read_fd: int | None, value: Any = None, error: BaseException | None = None,
                 binary: bool = False, stop: bool = False):
        self._pid, self._fd, self._value, self._error, self._binary = pid, read_fd, value, error, binary
        self._stop = stop
        # run when the Pending is let go of with its result never asked for (or by discard())
        self._unasked = weakref.finalize(self, _discard, pid, read_fd, stop) \
            if pid is not None and read_fd is not None else None

    def discard(self) -> None:
        """Give up the result (the child is stopped if start() was asked to, and reaped)."""
        if self._unasked is not None:
            self._unasked()
        self._fd = None

    def result(self) -> Any:
        if self._fd is not None and self._pid is not None:
            if self._unasked is not None:
                self._unasked.detach()
            try:
                with os.fdopen(self._fd, "rb") as pipe:
                    data = pipe.read()
            except BaseException:  # Ctrl-C while the answer is awaited: the child stopped (with stop) and reaped
                self._fd = None
                _end(self._pid, self._stop)
                raise
            _reap_later(self._pid)
            self._fd = None
            try:
                message = marshal.loads(data) if self._binary else json.loads(data)
            except (ValueError, EOFError, TypeError):
                message = {"error": "the background process died"}
            if "error" in message:
                self._error = RuntimeError(message["error"])
            else:
                self._value = message["value"]
        if self._error is not None:
            raise self._error
        return self._value


def _inline(function: Callable[..., Any], args: tuple) -> Pending:
    try:
        return Pending(None, None, value=function(*args))
    except Exception as exc:  # reported when the result is asked for, as in the forked case
        return Pending(None, None, error=exc)


_in_child = False  # set in a child start() forked: it ends with os._exit once its answer is written


def in_child() -> bool:
    """Whether this is a child start() forked (whose memory is freed by its end, at once)."""
    return _in_child


def may_fork() -> bool:
    """Whether start() may ever fork in this process: fork exists and RUNLOG_NO_FORK is unset
    (a caller can tell before it waits for its threads to end)."""
    return hasattr(os, "fork") and not os.environ.get("RUNLOG_NO_FORK")


def forkable() -> bool:
    """Whether start() would fork now (else it runs the function inline): it may (may_fork),
    and no other thread is running (forking a process with other threads can copy locks those
    threads hold: Python's threads, and on Linux those a native library started, which
    `threading` does not know of)."""
    return may_fork() and threading.active_count() == 1 and _alone()


# How long a thread `threading` has seen joined may still be listed by the kernel: join()
# returns before the thread has quite left (Python 3.11 and 3.12: up to ~6 ms seen)
_LEAVING = 0.05


def _alone() -> bool:
    """Whether the kernel lists this process's thread alone (Linux: /proc/self/task; True
    where it cannot be told), once the threads just joined have had _LEAVING seconds to go."""
    import time

    waited_until = time.monotonic() + _LEAVING
    while True:
        try:
            if len(os.listdir("/proc/self/task")) <= 1:
                return True
        except OSError:
            return True
        if time.monotonic() >= waited_until:
            return False
        time.sleep(0.001)


# Linux's prctl option that sends the calling process a signal when the thread that forked it ends
_PR_SET_PDEATHSIG = 1


def _end_with_parent(parent: int) -> None:
    """In a child whose work is of no use once its parent has gone (start's `stop`): killed
    when the parent dies (a SIGTERM or SIGKILL to it would otherwise leave the child working
    on, its S3 requests and all, until it found no one reading its answer). Linux only; a
    parent that died before this was set is seen by getppid."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (ImportError, OSError, AttributeError):  # no ctypes, no prctl: the work goes on unguarded
        return
    if os.getppid() != parent:
        os._exit(0)


def start(function: Callable[..., Any], *args: Any, binary: bool = False, stop: bool = False) -> Pending:
    """Start function(*args) in a child; its result (JSON-serialisable, or with `binary`
    marshal-serialisable) comes from .result(). `stop`: a child whose result is not asked
    for is killed rather than waited for."""
    if not forkable():
        return _inline(function, args)
    _reap_ended()  # (a program calling runlog again and again keeps no ended child)
    try:
        read_fd, write_fd = os.pipe()
    except OSError:  # no descriptor to be had (EMFILE: a program holding many files): run inline
        return _inline(function, args)
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError:  # no process to be had (memory, a process limit): run inline after all
        os.close(read_fd)
        os.close(write_fd)
        return _inline(function, args)
    if pid == 0:  # the child: compute, write one JSON message, leave without cleanup handlers
        global _in_child
        _in_child = True
        try:
            os.close(read_fd)
            if stop:
                _end_with_parent(parent)
            try:
                message = {"value": function(*args)}
            except BaseException as exc:  # everything must reach the parent
                message = {"error": f"{type(exc).__name__}: {exc}"}
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(marshal.dumps(message) if binary else json.dumps(message).encode("utf-8"))
        finally:  # never back into the caller's code, whatever happened (a parent gone: a broken pipe)
            os._exit(0)
    os.close(write_fd)
    return Pending(pid, read_fd, binary=binary, stop=stop)
