"""Child processes that give runlog's pure-Python work a core of its own (issue 14).

Python runs one thread at a time, so a refresh's member records (runlog/writerproc.py) and a
pull's pack checks (runlog/syncworker.py) go to child processes, each with its own
interpreter lock. This module is the one way they are started, talked to and stopped:

- `start(module, entry)`: a fresh interpreter, never a fork of the threaded parent (a fork
  copies the locks its threads hold) and not multiprocessing (which imports the caller's
  main module again). Isolated (`-I`: neither the working directory nor PYTHON* variables on
  its path) and given the parent's module path instead, so it imports the parent's runlog.
  In a session of its own, ignoring SIGINT: Ctrl-C at the terminal reaches the parent alone,
  which decides and stops its children. The child runs `entry(requests, answers)` on its
  stdin and stdout; when the parent dies, its requests end.
- `send` / `receive`: length-prefixed `marshal` values (None, bool, numbers, str, bytes,
  tuples, lists, dicts): they are C speed and, unlike pickle, cannot run code when read.
  The pipes are private to the parent and its own children.
- `stop(process, wait)`: the pipes closed, then wait; killed after `wait` seconds."""

from __future__ import annotations

import marshal
import os
import struct
import subprocess
import sys
from typing import IO, Any

_LENGTH = struct.Struct(">Q")

# The child's first statement ignores Ctrl-C; its module path is the parent's.
_BOOT = ("import signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); sys.path[:] = {path!r}; "
         "from {module} import {entry}; sys.exit({entry}(sys.stdin.buffer, sys.stdout.buffer) or 0)")


def start(module: str, entry: str) -> subprocess.Popen:
    """`module.entry(requests, answers)` in a child process; OSError when no interpreter can
    be started (an embedded Python)."""
    return subprocess.Popen([sys.executable, "-I", "-c", _BOOT.format(path=list(sys.path), module=module,
                                                                     entry=entry)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True, start_new_session=True)


def worker_count(variable: str, work: int, enough: int, *, most: int, workers: int | None = None,
                 what: str) -> int:
    """How many worker processes take `work` (bytes, items: the caller's measure): `workers`
    when given, else the environment's `variable` (a number; 0: none), else none below
    `enough` or on one core, else one per core (at most `most`). `what` says in the error
    for a variable that is not a number what the workers do ("check a pull's packs")."""
    from runlog.errors import UsageError
    from runlog.textsafe import terminal_safe

    if workers is None and os.environ.get(variable, "").strip():
        text = os.environ[variable].strip()
        if not text.isdecimal():
            raise UsageError(f"{variable}={terminal_safe(text)[:40]!r} is not a number of 0 or more: set it to how "
                             f"many worker processes {what} (0: none), or unset it")
        workers = int(text)
    if workers is not None:
        return max(0, workers)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if work < enough or cores < 2:
        return 0
    return min(cores, most)


def send(pipe: IO[bytes], value: Any) -> None:
    """One message on `pipe` (BrokenPipeError/OSError when the other end has gone)."""
    data = marshal.dumps(value)
    pipe.write(_LENGTH.pack(len(data)))
    pipe.write(data)  # not joined to its length: a message of tens of MB is not copied again
    pipe.flush()


def receive(pipe: IO[bytes]) -> Any:
    """The next message, or None at the end of the pipe (also when cut short)."""
    head = pipe.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    size, = _LENGTH.unpack(head)
    data = pipe.read(size)
    return marshal.loads(data) if len(data) == size else None


def stop(process: subprocess.Popen, wait: float) -> int:
    """Close the child's pipes (its requests end), wait for it to finish what it has, kill it
    after `wait` seconds; its exit status (negative: the signal that ended it)."""
    for pipe in (process.stdin, process.stdout):
        try:
            if pipe is not None:
                pipe.close()
        except OSError:
            pass
    try:
        return process.wait(wait)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()
    except BaseException:  # a second Ctrl-C while waiting: no process left behind, then that
        process.kill()
        process.wait()
        raise
