"""Capture the analysis repository's git state for a record."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# Untracked files larger than this are identified by name and size only.
UNTRACKED_HASH_LIMIT = 64 * 1024 * 1024


def strip_credentials(url: str | None) -> str | None:
    """Remove user:password (or a token) from an https remote URL; scp-style remotes
    (git@host:path) carry no secret and are kept as they are."""
    if not url:
        return url
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    if parts.scheme == "ssh" and parts.username and parts.password is None:
        host = f"{parts.username}@{host}"  # ssh://git@host/... names a login, not a secret
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def capture(path: str | Path) -> dict:
    """The git state of the repository containing `path`:
    {state: clean|dirty|none, commit, branch, remote, workdir, diff_sha256, untracked, untracked_sha256}."""
    import git  # gitpython, imported only when a command needs it

    path = Path(path)
    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return {"state": "none", "reason": "not inside a git repository"}
    except git.GitCommandNotFound:
        return {"state": "none", "reason": "git is not installed"}
    with repo:
        root = Path(repo.working_tree_dir or path)
        try:
            commit = repo.head.commit.hexsha
        except ValueError:
            commit = None  # a repository with no commits yet
        branch = None if repo.head.is_detached else repo.head.reference.name
        diff = repo.git.execute(["git", "diff", "HEAD", "--binary"], stdout_as_string=False) if commit else b""
        untracked = sorted(repo.untracked_files)
        return {
            "state": "dirty" if diff or untracked or commit is None else "clean",
            "commit": commit,
            "branch": branch,
            "remote": strip_credentials(_remote_url(repo)),
            "workdir": _relative(path, root),
            "diff_sha256": hashlib.sha256(diff).hexdigest() if diff else None,
            "untracked": untracked,
            "untracked_sha256": _untracked_digest(root, untracked) if untracked else None,
        }


def _remote_url(repo) -> str | None:
    remotes = {r.name: r for r in repo.remotes}
    chosen = remotes.get("origin") or next(iter(remotes.values()), None)
    if chosen is None:
        return None
    try:
        return next(iter(chosen.urls), None)
    except Exception:  # a remote without a url
        return None


def _relative(path: Path, root: Path) -> str:
    try:
        rel = os.path.relpath(Path(path).resolve(), Path(root).resolve())
    except ValueError:
        return "."
    return "." if rel == "." else Path(rel).as_posix()


def _untracked_digest(root: Path, names: list[str]) -> str:
    """SHA-256 over each untracked file's name, size and content (content skipped past a limit)."""
    digest = hashlib.sha256()
    for name in names:
        file = root / name
        try:
            size = file.stat().st_size
        except OSError:
            continue
        digest.update(f"{name}\0{size}\0".encode("utf-8", "surrogateescape"))
        if size <= UNTRACKED_HASH_LIMIT:
            with file.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()

