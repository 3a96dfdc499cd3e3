"""A cache of botocore data that runlog trims for speed (today: endpoints.json restricted to
the services runlog calls, 1.2 MB parsed on every submit otherwise).

Data only, never code: entries are JSON, parsed with json.loads, and an entry is used only
when it is a regular file (not a link) owned by the user and not writable by group or
others, in a directory that is the same; anything else is ignored and the data is made
from botocore's own file (see docs/reliability.md, "Caches"). Each entry is named after the
identity of the file it was made from (path, size, modification time) and what was kept, so
a new botocore is a new entry; a damaged entry is made again."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

FORMAT = 1
ENTRY_LIMIT = 8 * 1024 * 1024  # bytes of one entry read at most


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "runlog" / "botocore"


def cached(source: str, variant: str, build: Callable[[], Any]) -> Any:
    """build()'s result for `source` (a botocore data file) and `variant` (what build keeps):
    read from the cache when a safe, current entry exists, else made and written."""
    try:
        info = os.stat(source)
    except OSError:
        return build()
    identity = {"format": FORMAT, "source": os.path.realpath(source), "size": info.st_size,
                "mtime_ns": info.st_mtime_ns, "variant": variant}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]
    path = cache_dir() / f"{key}.json"
    found = read_entry(path)
    if isinstance(found, dict) and found.get("identity") == identity and "data" in found:
        return found["data"]
    data = build()
    _write(path, {"identity": identity, "data": data})
    return data


def safe_dir(path: Path) -> bool:
    """A real directory (not a link) owned by this user that no one else can write (never
    where ownership cannot be checked: no cache there)."""
    if not hasattr(os, "getuid"):
        return False
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022


def read_entry(path: Path) -> Any:
    """The entry's JSON, or None when it is missing, unsafe (see the module) or not JSON."""
    if not safe_dir(path.parent):
        return None
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if (not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022
                or info.st_size > ENTRY_LIMIT):
            return None
        data = file.read(ENTRY_LIMIT + 1)
    try:
        return json.loads(data)
    except ValueError:  # also a UnicodeDecodeError
        return None


def _write(path: Path, content: dict) -> None:
    """Write an entry atomically (mode 0600 in a 0700 directory); a cache that cannot be
    written is only slower, never an error."""
    tmp = None
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not safe_dir(path.parent):
            return
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".partial-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(content, file, separators=(",", ":"))
        os.replace(tmp, path)
        tmp = None
    except (OSError, TypeError, ValueError):
        pass
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
