"""Capture the analysis repository's git state for a record.

The capture never follows a symbolic link and never opens anything but a regular file: an
untracked symlink is recorded as a link (its target path string goes into the digest), and a
FIFO, socket or device is never opened. It is bounded: untracked files are looked at within a
time budget, a byte budget and a count limit, and what was left out is said in `notes`
(which `submit` copies into the record's warnings). See docs/reliability.md."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from runlog.config import environment_number

# Untracked files larger than this are identified by name and size only.
UNTRACKED_HASH_LIMIT = 64 * 1024 * 1024
# Content hashed across all untracked files; past it, files are identified by name and size.
UNTRACKED_BYTES_BUDGET = 256 * 1024 * 1024
# Untracked entries examined at all (name, kind, size); past it the listing stops.
UNTRACKED_ENTRY_LIMIT = 100_000
# Untracked names listed in the record (the digest covers every entry examined).
UNTRACKED_NAMES_LIMIT = 1000
# Seconds for the whole capture (git diff, listing and hashing).
TIME_BUDGET = 10.0

BLOCK = 1 << 20


@dataclass
class Budget:
    seconds: float = TIME_BUDGET
    bytes: int = UNTRACKED_BYTES_BUDGET
    file_bytes: int = UNTRACKED_HASH_LIMIT
    entries: int = UNTRACKED_ENTRY_LIMIT
    names: int = UNTRACKED_NAMES_LIMIT

    @classmethod
    def from_environment(cls) -> Budget:
        """The defaults, or RUNLOG_GIT_TIMEOUT (seconds) and RUNLOG_GIT_MAX_BYTES (content hashed
        in all) when set; config.load() refuses bad values before anything runs."""
        budget = cls()
        for var, attribute in (("RUNLOG_GIT_TIMEOUT", "seconds"), ("RUNLOG_GIT_MAX_BYTES", "bytes")):
            value = environment_number(var)
            if value is not None:
                setattr(budget, attribute, value)
        return budget


def strip_credentials(url: str | None) -> str | None:
    """Remove user:password (or a token) from a remote URL such as https://TOKEN@host/path;
    scp-style remotes (git@host:path) and an ssh:// login with no password (ssh://git@host/...)
    carry no secret and are kept as they are. Works on the text, so that a URL Python's
    parser refuses (an unclosed "[", a port that is no number: a remote is whatever the
    repository's config says) loses its secret too instead of stopping the capture."""
    if not url or "://" not in url:
        return url
    scheme, _, rest = url.partition("://")
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    userinfo, at, host = rest[:end].rpartition("@")
    if not at or (scheme.lower() == "ssh" and ":" not in userinfo):
        return url
    return f"{scheme}://{host}{rest[end:]}"


def capture(path: str | Path) -> dict:
    """The git state of the repository containing `path`:
    {state: clean|dirty|none|unknown, commit, branch, remote, workdir, diff_sha256, untracked, untracked_sha256}."""
    return capture_with_notes(path)["git"]


def capture_with_notes(path: str | Path, budget: Budget | None = None) -> dict:
    """{"git": the record's git object, "notes": what the capture left out, as sentences}.

    Asks git itself, in a few short commands: importing gitpython cost more than all of them
    together, on every submit."""
    budget = budget or Budget.from_environment()
    deadline = time.monotonic() + budget.seconds
    path = Path(path)
    where = path if path.is_dir() else path.parent
    if not where.is_dir():
        return {"git": {"state": "none", "reason": "not inside a git repository"}, "notes": []}
    try:
        code, top, errors = _git(where, "rev-parse", "--show-toplevel")
    except FileNotFoundError:
        return {"git": {"state": "none", "reason": "git is not installed"}, "notes": []}
    except (OSError, subprocess.TimeoutExpired) as exc:
        return _refused(f"{type(exc).__name__}: {exc}")
    if code != 0:
        if "not a git repository" in errors:
            return {"git": {"state": "none", "reason": "not inside a git repository"}, "notes": []}
        return _refused(_first_line(errors))  # e.g. "detected dubious ownership in repository at ..."
    root = Path(os.fsdecode(top))
    notes: list[str] = []
    try:
        code, head, _ = _git(root, "rev-parse", "-q", "--verify", "HEAD^{commit}")
        commit = head.decode("ascii") if code == 0 else None  # None: a repository with no commits yet
        code, ref, _ = _git(root, "symbolic-ref", "-q", "HEAD")
        branch = _branch_name(ref) if code == 0 else None  # None: a detached HEAD
        remote = strip_credentials(_remote_url(root))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return _refused(f"{type(exc).__name__}: {exc}")
    try:
        diff_sha256 = _diff_digest(root, deadline, notes) if commit else None
        untracked, untracked_sha256, complete = _untracked(root, budget, deadline, notes)
    except GitFailed as exc:  # e.g. "detected dubious ownership in repository"
        return _refused(str(exc))
    dirty = diff_sha256 is not None or untracked_sha256 is not None or commit is None or not complete
    return {"git": {
        "state": "dirty" if dirty else "clean",
        "commit": commit,
        "branch": branch,
        "remote": remote,
        "workdir": _relative(path, root),
        "diff_sha256": diff_sha256,
        "untracked": untracked,
        "untracked_sha256": untracked_sha256,
    }, "notes": notes}


def _git(cwd: Path, *args: str) -> tuple[int, bytes, str]:
    """(exit code, stdout without its final newline, stderr as text) of one short git command."""
    done = subprocess.run(["git", *args], cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=TIME_BUDGET)
    return done.returncode, done.stdout.rstrip(b"\n"), done.stderr.decode("utf-8", "replace")


def _text(raw: bytes) -> str:
    return os.fsdecode(raw).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _branch_name(ref: bytes) -> str:
    """refs/heads/feature/x -> feature/x (a reference's name without refs/<kind>/)."""
    name = _text(ref)
    return name.split("/", 2)[2] if name.startswith("refs/") and name.count("/") >= 2 else name


def _refused(message: str) -> dict:
    reason = f"git refused the repository: {message}"
    return {"git": {"state": "unknown", "reason": reason}, "notes": [f"git capture: {reason}; git state not recorded"]}


def _first_line(text) -> str:
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"


def _remote_url(root: Path) -> str | None:
    """The URL of the remote named origin, else of the first remote configured (in the
    configuration's order); None without one."""
    code, keys, _ = _git(root, "config", "--name-only", "--get-regexp", r"^remote\.")
    if code != 0:
        return None
    names: dict[str, None] = {}
    for key in _text(keys).splitlines():
        name = key[len("remote."):].rpartition(".")[0]
        if name:
            names.setdefault(name, None)
    chosen = "origin" if "origin" in names else next(iter(names), None)
    if chosen is None:
        return None
    code, urls, _ = _git(root, "remote", "get-url", "--all", chosen)  # as git reads it (insteadOf applied)
    if code != 0 or not urls:
        return None
    return _text(urls.split(b"\n", 1)[0])


def _relative(path: Path, root: Path) -> str:
    try:
        rel = os.path.relpath(Path(path).resolve(), Path(root).resolve())
    except ValueError:
        return "."
    return "." if rel == "." else Path(rel).as_posix()


class GitFailed(Exception):
    """git itself refused (e.g. "detected dubious ownership"): the state cannot be known."""


class _Stream:
    """A git command's output read as a stream, ended at the deadline (a timer kills git even
    when it prints nothing, e.g. while walking a slow file system)."""

    def __init__(self, root: Path, args: list[str], deadline: float):
        self.errors = tempfile.TemporaryFile()
        self.process = subprocess.Popen(["git", *args], cwd=root, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=self.errors)
        assert self.process.stdout is not None  # stdout=PIPE
        self.stdout: io.BufferedReader = self.process.stdout  # type: ignore[assignment]  # unbuffered=no: a BufferedReader
        self.expired = False
        self.stopped = False
        self.timer = threading.Timer(min(max(0.0, deadline - time.monotonic()), threading.TIMEOUT_MAX), self._expire)
        self.timer.daemon = True
        self.timer.start()

    def _expire(self) -> None:
        self.expired = True
        self.process.kill()

    def blocks(self) -> Iterator[bytes]:
        return iter(lambda: self.stdout.read1(BLOCK), b"")

    def close(self, early: bool) -> None:
        """End git: stop it if the reader stopped `early`, else wait for it (until the deadline).
        Raise GitFailed when git failed on its own (not stopped by us)."""
        if early and self.process.poll() is None:
            self.stopped = True
            self.process.kill()
        self.stdout.close()
        code = self.process.wait()
        self.timer.cancel()
        self.errors.seek(0)
        message = self.errors.read(4096)
        self.errors.close()
        if code != 0 and not self.expired and not self.stopped:
            raise GitFailed(_first_line(message))


def _diff_digest(root: Path, deadline: float, notes: list[str]) -> str | None:
    """SHA-256 of `git diff HEAD --binary` (tracked changes; git stores symlinks as links),
    read as a stream so a huge diff costs no memory; None when nothing changed."""
    digest, size = hashlib.sha256(), 0
    stream = _Stream(root, ["diff", "HEAD", "--binary"], deadline)
    early = True
    try:
        for block in stream.blocks():
            digest.update(block)
            size += len(block)
            if time.monotonic() > deadline:
                break
        else:
            early = False
    finally:
        stream.close(early)
    if stream.expired or stream.stopped:
        notes.append(f"git capture: `git diff HEAD` outlived the time budget; diff_sha256 covers its "
                     f"first {size} bytes only")
        digest.update(b"\0incomplete\0")
        return digest.hexdigest()
    return digest.hexdigest() if size else None


def _untracked(root: Path, budget: Budget, deadline: float, notes: list[str]) -> tuple[list[str], str | None, bool]:
    """(names listed in the record, digest, complete). The digest covers, for every entry
    examined: its name, its kind, its size, and its content (regular files within the
    budgets) or its target (symlinks)."""
    names, complete = _list_untracked(root, budget, deadline, notes)
    names = _without_ledgers(root, names, notes)
    if not names:
        return [], (hashlib.sha256(b"incomplete\0").hexdigest() if not complete else None), complete
    digest = hashlib.sha256()
    hashed_bytes = 0
    by_size = by_budget = by_time = special = 0
    for raw in names:
        file = root / os.fsdecode(raw)
        try:
            info = file.lstat()
        except OSError:
            digest.update(raw + b"\0gone\0")
            continue
        if stat.S_ISLNK(info.st_mode):
            try:
                target = os.readlink(file)
            except OSError:
                target = ""
            digest.update(raw + b"\0link\0" + os.fsencode(target) + b"\0")
            continue
        if not stat.S_ISREG(info.st_mode):  # never opened: a FIFO would block, a device never ends
            special += 1
            digest.update(raw + b"\0special\0" + oct(stat.S_IFMT(info.st_mode)).encode() + b"\0")
            continue
        digest.update(raw + b"\0" + str(info.st_size).encode() + b"\0")
        if info.st_size > budget.file_bytes:
            by_size += 1
            continue
        if hashed_bytes + info.st_size > budget.bytes:
            by_budget += 1
            continue
        if time.monotonic() > deadline:
            by_time += 1
            continue
        read, finished = _hash_file(file, info, digest, deadline)
        hashed_bytes += read
        if not finished:
            by_time += 1
            digest.update(b"\0cut\0")
    if by_size:
        notes.append(f"git capture: {by_size} untracked file(s) over {budget.file_bytes // (1 << 20)} MiB "
                     "identified by name and size only")
    if by_budget:
        notes.append(f"git capture: {by_budget} untracked file(s) identified by name and size only: the "
                     f"{_mib(budget.bytes)} budget for hashing untracked content was used up")
    if by_time:
        notes.append(f"git capture: {by_time} untracked file(s) identified by name and size only: the "
                     f"{budget.seconds:g} s time budget ran out")
    if special:
        notes.append(f"git capture: {special} untracked special file(s) (FIFO, socket or device) identified "
                     "by name and type only, never opened")
    if not complete:
        digest.update(b"incomplete\0")
    shown = [os.fsdecode(raw).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
             for raw in names[:budget.names]]
    if len(names) > budget.names:
        notes.append(f"git capture: {len(names)} untracked files; the record lists the first {budget.names} "
                     "names, untracked_sha256 covers all of them")
    return shown, digest.hexdigest(), complete


def _without_ledgers(root: Path, names: list[bytes], notes: list[str]) -> list[bytes]:
    """`names` without the ledger files this process uses (ledger.is_claimed): never opened
    here, never part of the analysis's state."""
    from runlog.ledger import is_claimed

    kept = [raw for raw in names if not is_claimed(root / os.fsdecode(raw))]
    if len(kept) < len(names):
        left = sorted(set(names) - set(kept))
        notes.append(f"git capture: runlog's ledger ({_text(left[0])}) is an untracked file of the repository: "
                     "left out of the untracked files (add it to .gitignore)")
    return kept


def _mib(size: int) -> str:
    return f"{size // (1 << 20)} MiB" if size >= 1 << 20 else f"{size} bytes"


def _list_untracked(root: Path, budget: Budget, deadline: float, notes: list[str]) -> tuple[list[bytes], bool]:
    """Untracked, not ignored paths as git names them (it lists a symlink as a file and never
    descends into it), sorted, up to the entry limit and the deadline; and whether the
    listing is complete."""
    stream = _Stream(root, ["ls-files", "-z", "--others", "--exclude-standard"], deadline)
    names: list[bytes] = []
    rest = b""
    too_many = ended = False
    try:
        for block in stream.blocks():
            *found, rest = (rest + block).split(b"\0")
            names.extend(found)
            if len(names) >= budget.entries:
                too_many = len(names) > budget.entries or bool(rest) or bool(stream.stdout.peek(1))
                ended = not too_many
                del names[budget.entries:]
                break
            if time.monotonic() > deadline:
                break
        else:
            ended = True
    finally:
        stream.close(early=not ended)
    ended = ended and not stream.expired
    if too_many:
        notes.append(f"git capture: the untracked listing stopped after {budget.entries} entries (the limit); "
                     "more untracked files exist and are not in the record")
    elif not ended:
        notes.append(f"git capture: the untracked listing stopped after {len(names)} entries: the "
                     f"{budget.seconds:g} s time budget ran out; more untracked files may exist and are not "
                     "in the record")
    return sorted(names), ended


def _hash_file(file: Path, info: os.stat_result, digest, deadline: float) -> tuple[int, bool]:
    """Hash a regular file's content, without following a link or blocking on a FIFO put in
    its place since it was listed. Returns (bytes read, whether the whole file was read)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(file, flags)
    except OSError:
        digest.update(b"\0unreadable\0")
        return 0, True
    read = 0
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
            digest.update(b"\0replaced\0")
            return 0, True
        while read < info.st_size:
            block = os.read(fd, min(BLOCK, info.st_size - read))
            if not block:
                break
            digest.update(block)
            read += len(block)
            if read < info.st_size and time.monotonic() > deadline:
                return read, False
    except OSError:
        digest.update(b"\0unreadable\0")
    finally:
        os.close(fd)
    return read, True
