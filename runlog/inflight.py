"""Which pending attempts a live process still owns, and which batch a live refresh is writing.

A process that commits an attempt holds an exclusive `flock` on a small file named after the
attempt's requestId, in a directory beside the ledger (`ledger.db.inflight/`), until the
attempt's record is written or the attempt is left pending. The operating system drops the
lock when the process dies, however it dies, so a lock that can be taken means nobody is
working on the attempt any more: `recover` takes the lock before it re-sends, and leaves
alone every attempt whose lock it cannot take. The file holds the owner's pid, host and
start time, for messages only; the lock, not the file, is the truth.

Locks work between processes on one machine (SQLite ledgers are local files anyway). Where
`fcntl` is missing, ownership is not tracked and every pending attempt counts as abandoned.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from runlog.record import utc_now

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]


def _directory(ledger_path: Path) -> Path:
    return ledger_path.with_name(ledger_path.name + ".inflight")


def _file(ledger_path: Path, request_id: str) -> Path:
    # requestIds are free text for the service: name the file by a digest, never by the text itself
    from runlog.record import sha256_hex

    return _directory(ledger_path) / (sha256_hex(request_id.encode("utf-8"))[:32] + ".lock")


class Hold:
    """An attempt owned by this process; `release()` (or `with`) gives it up."""

    def __init__(self, path: Path | None, fd: int | None):
        self.path = path
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            if self.path is not None:
                self.path.unlink(missing_ok=True)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> Hold:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def take(ledger_path: Path, request_id: str) -> Hold | None:
    """Own the attempt: a Hold, or None when another live process owns it. Where locks cannot
    be made (no fcntl, an unwritable directory) the Hold is empty and ownership is not tracked."""
    hold = _lock(_file(ledger_path, request_id), wait=False)
    if hold is None or hold.fd is None:
        return hold
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": utc_now()}
    try:
        os.ftruncate(hold.fd, 0)
        os.write(hold.fd, json.dumps(owner).encode("utf-8"))
    except OSError:
        pass
    return hold


def hold_batch(ledger_path: Path, batch_address: str) -> Hold:
    """Wait until no other process refreshes the batch record at `batch_address`, then hold it
    until released: two refreshes of one batch at once each read the members' statuses before
    either wrote, and each recorded every change (two observations of each). Where locks
    cannot be made, an empty Hold."""
    hold = _lock(_directory(ledger_path) / f"refresh-{batch_address[:32]}.lock", wait=True)
    return hold if hold is not None else Hold(None, None)


def _lock(path: Path, *, wait: bool) -> Hold | None:
    """An exclusive flock on the file at `path` (made if need be): a Hold; None when another
    process holds it and not `wait`; an empty Hold where locks cannot be made (no fcntl, a
    directory that cannot be written)."""
    if fcntl is None:
        return Hold(None, None)
    while True:
        try:
            path.parent.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError:
            return Hold(None, None)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None if not wait else Hold(None, None)
        # The owner before us removes the file (release) before it lets the lock go: a lock
        # taken on a file no longer at `path` guards nothing (a third process makes a new one
        # there and locks that). Hold the lock only on the file that is at `path`.
        if _same_file(fd, path):
            return Hold(path, fd)
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    """Whether the open file `fd` is the file now at `path`."""
    try:
        there = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def owner(ledger_path: Path, request_id: str) -> dict | None:
    """The live owner of an attempt ({pid, host, since}), or None when no process holds it."""
    if fcntl is None:
        return None
    path = _file(ledger_path, request_id)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = os.read(fd, 4096)
            try:
                found = json.loads(text)
            except ValueError:
                found = None
            return found if isinstance(found, dict) else {}
        return None
    finally:
        os.close(fd)
