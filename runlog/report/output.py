"""Where a report goes: the one file `report` writes, checked before anything is read and
written whole (beside the target, then renamed into place: never a half-written report)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from runlog.config import printable
from runlog.errors import UsageError


def check_target(target: Path, force: bool) -> None:
    """Refuse (UsageError, nothing read or written) a target the report may not be written to:
    a symbolic link (never followed), a directory, an existing file without force, something
    that is not a regular file, a directory that does not exist."""
    if "\0" in str(target):
        raise UsageError(f"`path` {printable(target)}: the path contains a NUL character; give a valid file path",
                         option="path")
    try:
        _check(target, force)
    except OSError as exc:
        raise UsageError(f"`path` {printable(target)}: {exc.strerror}; give another path", option="path") from None


def _check(target: Path, force: bool) -> None:
    shown = printable(target)
    if target.is_symlink():
        raise UsageError(f"`path` {shown}: is a symbolic link; runlog does not write through links: give another "
                         "path", option="path")
    if target.is_dir():
        raise UsageError(f"`path` {shown}: is a directory; give a file name such as {printable(target / 'report.html')}",
                         option="path")
    if target.exists() and not force:
        raise UsageError(f"`path` {shown}: already exists; add `force=True` to replace it, or give another path",
                         option="force")
    if target.exists() and not target.is_file():
        raise UsageError(f"`path` {shown}: is not a regular file; give another path", option="path")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"`path` {shown}: directory {printable(parent)} does not exist; create it first",
                         option="path")


def check_not_ledger(target: Path, ledger: Path) -> None:
    """Refuse (UsageError) a target that is the ledger being reported on, or its -wal, -shm or
    -journal file: `force` replaces a report, never the records it was made from."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            same = os.path.samefile(target, f"{ledger}{suffix}")
        except OSError:  # one of them does not exist: not the same file
            continue
        if same:
            which = f" ({suffix[1:]})" if suffix else ""
            raise UsageError(f"`path` {printable(target)}: is the ledger's own file{which}; the report never "
                             "replaces it: give another path", option="path")


def write(target: Path, text: str) -> None:
    """Write `text` to `target` as an ordinary new file would be (the umask's mode), whole."""
    parent = target.parent if str(target.parent) else Path(".")
    try:
        fd, staging = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise UsageError(f"`path` {printable(target)}: cannot write in {printable(parent)}: {exc.strerror}",
                         option="path") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o666 & ~umask)  # as an ordinary new file (mkstemp makes it 0600)
        os.replace(staging, target)
    except OSError as exc:
        raise UsageError(f"`path` {printable(target)}: cannot write: {exc.strerror}", option="path") from None
    finally:
        if os.path.exists(staging):
            os.unlink(staging)
