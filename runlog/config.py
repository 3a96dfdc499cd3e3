"""Configuration: files, environment and flags, merged in a fixed order.

Sources, later wins:
  1. `.runlog.toml` at the root of the analysis repository (a project's shared defaults): the git
     work tree containing `git_repo` (RUNLOG_GIT_REPO or the user file) or else the current
     directory; outside any repository, the current directory's own `.runlog.toml` only.
     Never a directory above the repository: a parent directory may be shared with other people.
  2. `$XDG_CONFIG_HOME/runlog/config.toml` (default `~/.config/runlog/config.toml`; personal settings)
  3. `RUNLOG_<KEY>` environment variables (e.g. RUNLOG_LEDGER, RUNLOG_REGION)
  4. command-line flags

Relative paths in a file (`ledger`, `git_repo`) are relative to that file's directory.

A configuration file is read only when it is yours: owned by the current user (or root) and
not writable by other users (group-writable only through your own private group), as git
refuses repositories owned by someone else. Anything else is refused with an error naming the
file and the fix.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runlog.errors import UsageError

PROJECT_FILE = ".runlog.toml"

# key -> (type, description). The description is what `.runlog.example.toml` explains in more words.
KEYS: dict[str, tuple[type, str]] = {
    "ledger": (str, "path of the SQLite ledger"),
    "region": (str, "AWS region"),
    "profile": (str, "AWS named profile"),
    "endpoint_url": (str, "HealthOmics endpoint URL (e.g. the local emulator)"),
    "role_arn": (str, "default --role-arn for submit"),
    "output_uri": (str, "default --output-uri for submit"),
    "tags": (dict, "tags added to every submission (flags win per key)"),
    "git_repo": (str, "the analysis repository whose git state is recorded"),
    "remote": (str, "team ledger location, s3://bucket/prefix"),
    "max_object_mib": (float, "largest team-ledger object `runlog pull` accepts, in MiB (default 256)"),
    "license": (str, "licence of exported provenance (SPDX id or URL)"),
    "usability": (str, "usability statement for BioCompute Object exports"),
    "authors": (list, "authors of exports: 'Name <https://orcid.org/...>' strings"),
    "publisher": (str, "publisher of exports: 'Name <URL>'"),
    "caller_identity": (bool, "look up the caller with STS GetCallerIdentity"),
    "resolve_timeout": (float, "seconds allowed for resolving inputs at submit"),
}
PATH_KEYS = ("ledger", "git_repo")


def user_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "runlog" / "config.toml"


def user_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "runlog"


def project_root(start: Path) -> Path:
    """The directory whose `.runlog.toml` counts for `start`: the root of the git work tree
    containing it, or `start` itself outside any repository (never a directory above)."""
    return find_git_root(start) or start


def find_project_file(start: Path) -> Path | None:
    candidate = project_root(start) / PROJECT_FILE
    return candidate if candidate.is_file() else None


def find_git_root(start: Path) -> Path | None:
    """The enclosing git work tree's root, found without starting git. A `.git` owned by
    another user is not a repository of yours (git refuses it too): the search stops there
    and finds none, so a stranger's `.git` in a shared directory cannot choose your ledger
    or configuration."""
    for directory in (start, *start.parents):
        dot_git = directory / ".git"
        try:
            info = dot_git.lstat()
        except OSError:
            continue
        return directory if _trusted_owner(info.st_uid) else None
    return None


def _trusted_owner(uid: int) -> bool:
    if not hasattr(os, "geteuid"):  # no POSIX owners (Windows)
        return True
    return uid in (os.geteuid(), 0)


def _user_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}"


def _private_group(gid: int) -> bool:
    """A group only the current user can be in (the 'user private group' of most Linux
    systems: same name as the user, no other members), so group-writable is still yours."""
    try:
        import grp
        import pwd

        me = pwd.getpwuid(os.geteuid()).pw_name
        group = grp.getgrgid(gid)
    except (ImportError, KeyError):
        return False
    return group.gr_name == me and set(group.gr_mem) <= {me}


def check_owned(path: Path, info: os.stat_result) -> None:
    """Refuse a configuration file that someone other than the current user could have
    written: owned by another user, or writable by others or by a shared group."""
    if not hasattr(os, "geteuid"):
        return
    shown = printable(path)
    if not _trusted_owner(info.st_uid):
        raise UsageError(f"refusing {shown}: it is owned by {_user_name(info.st_uid)}, not by you, so anyone "
                         f"who controls that account decides your settings; if you trust it, take it over "
                         f"(chown {_user_name(os.geteuid())} {shown}), otherwise remove it")
    if info.st_mode & stat.S_IWOTH:
        raise UsageError(f"refusing {shown}: every user can write it; fix with chmod o-w {shown}")
    if info.st_mode & stat.S_IWGRP and not _private_group(info.st_gid):
        raise UsageError(f"refusing {shown}: group {_group_name(info.st_gid)} can write it; "
                         f"fix with chmod g-w {shown}")


def _group_name(gid: int) -> str:
    try:
        import grp

        return grp.getgrgid(gid).gr_name
    except (ImportError, KeyError):
        return f"gid {gid}"


def printable(value: object) -> str:
    """A path or name for a one-line message: control characters escaped."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


@dataclass
class Config:
    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    cwd: Path = field(default_factory=Path.cwd)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any, source: str) -> None:
        """A later source wins; for maps (tags) it wins per key, as --tags does."""
        if value is None:
            return
        earlier = self.values.get(key)
        if isinstance(value, dict) and isinstance(earlier, dict):
            value = {**earlier, **value}
            source = f"{self.sources[key]}, {source}"
        self.values[key] = value
        self.sources[key] = source

    @property
    def git_repo(self) -> Path:
        return Path(self.values["git_repo"]) if "git_repo" in self.values else self.cwd

    def ledger_path(self) -> Path:
        """`ledger` if set, else `.runlog/ledger.db` at the analysis repository's root,
        else the user's data directory."""
        if "ledger" in self.values:
            if "\0" in str(self.values["ledger"]):
                raise UsageError(f"ledger path {self.values['ledger']!r} contains a NUL character")
            return Path(self.values["ledger"]).expanduser()
        root = find_git_root(self.git_repo.resolve())
        if root is not None:
            return root / ".runlog" / "ledger.db"
        return user_data_dir() / "ledger.db"


# The most seconds submit and replay may spend resolving the workflow and inputs
# (--resolve-timeout, resolve_timeout): an hour; more is a mistake, and infinity overflows
RESOLVE_TIMEOUT_MAX = 3600.0
FLOAT_MAX = {"resolve_timeout": RESOLVE_TIMEOUT_MAX}


def _check(key: str, value: Any, where: str) -> Any:
    if isinstance(value, str) and "\0" in value:
        raise UsageError(f"configuration key {key!r} in {where} contains a NUL character; no path or name may")
    if key not in KEYS:
        known = ", ".join(sorted(KEYS))
        raise UsageError(f"unknown configuration key {key!r} in {where} (known keys: {known})")
    expected = KEYS[key][0]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, expected):
        raise UsageError(f"configuration key {key!r} in {where} must be a {expected.__name__}, got {value!r}")
    if isinstance(value, float):
        limit = FLOAT_MAX.get(key, float("inf"))
        if not (0 < value < float("inf") and value <= limit):  # NaN fails this too
            raise UsageError(f"configuration key {key!r} in {where} must be a finite number of more than 0"
                             + (f" and at most {limit:g}" if key in FLOAT_MAX else "") + f", got {value!r}")
    if key == "tags" and isinstance(value, dict) and not all(isinstance(v, str) for v in value.values()):
        raise UsageError(f"configuration key 'tags' in {where} must map names to strings")
    return value


MAX_FILE_SIZE = 1 << 20  # a configuration file is a few lines; more is not one


def _read_file(path: Path) -> dict[str, Any]:
    shown = printable(path)
    try:
        # O_NONBLOCK: a FIFO put in place of the file cannot make runlog wait forever
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UsageError(f"cannot read {shown}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"cannot read {shown}: not a regular file")
        check_owned(path, info)
        try:
            raw = fh.read(MAX_FILE_SIZE + 1)
        except OSError as exc:
            raise UsageError(f"cannot read {shown}: {exc.strerror}") from None
    if len(raw) > MAX_FILE_SIZE:
        raise UsageError(f"cannot read {shown}: larger than {MAX_FILE_SIZE // 1024} KiB, not a configuration file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise UsageError(f"cannot read {shown}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); "
                         "save it as UTF-8") from None
    import tomllib  # here: most commands find no configuration file to parse

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"cannot parse {shown}: {exc}") from None
    out = {}
    for key, value in data.items():
        value = _check(key, value, shown)
        if key in PATH_KEYS:
            value = str((path.parent / Path(value).expanduser()).resolve())
        out[key] = value
    return out


def _env_value(key: str, raw: str) -> Any:
    expected = KEYS[key][0]
    var = f"RUNLOG_{key.upper()}"
    if expected is dict:
        raw = raw.strip()
        if raw.startswith("{"):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise UsageError(f"{var} is not valid JSON: {exc}") from None
        else:
            value = parse_key_values(raw, var)
        return _check(key, value, var)
    if expected is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise UsageError(f"{var} must be true or false, got {raw!r}")
    if expected is float:
        try:
            return float(raw)
        except ValueError:
            raise UsageError(f"{var} must be a number, got {raw!r}") from None
    return raw


# The git capture's budgets (runlog.gitcapture), set in the environment only.
CAPTURE_BUDGET = {"RUNLOG_GIT_TIMEOUT": float, "RUNLOG_GIT_MAX_BYTES": int}


def environment_number(var: str) -> float | int | None:
    """The value of a CAPTURE_BUDGET variable; None when unset; ValueError unless a number >= 0."""
    raw = os.environ.get(var, "").strip()
    if not raw:
        return None
    value = CAPTURE_BUDGET[var](raw)
    if not value >= 0 or value == float("inf"):
        raise ValueError(raw)
    return value


def _check_capture_budget() -> None:
    """RUNLOG_GIT_TIMEOUT / RUNLOG_GIT_MAX_BYTES (the git capture's budgets, environment only)."""
    for var, kind in CAPTURE_BUDGET.items():
        try:
            environment_number(var)
        except (ValueError, OverflowError):
            what = "a number of seconds" if kind is float else "a whole number of bytes"
            raise UsageError(f"{var} must be {what} (0 or more), got {os.environ[var]!r}") from None


def parse_key_values(text: str, what: str) -> dict[str, str]:
    """`a=1,b=2` (the aws CLI shorthand for a map of strings)."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        if "=" not in item:
            raise UsageError(f"{what}: expected KEY=VALUE pairs separated by commas, got {item!r}")
        name, value = item.split("=", 1)
        out[name.strip()] = value
    return out


def load(cwd: Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Merge every source into one Config. `overrides` are the flags (None values are ignored)."""
    cwd = (cwd or Path.cwd()).resolve()
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    config = Config(cwd=cwd)
    user = user_config_path()
    personal = _read_file(user) if user.is_file() else {}
    environment = {}
    for key in KEYS:
        raw = os.environ.get(f"RUNLOG_{key.upper()}")
        if raw is not None and raw != "":
            environment[key] = _env_value(key, raw)
    _check_capture_budget()
    # The project file belongs to the analysis repository: the configured one if any, else
    # the one containing the current directory. Its own `git_repo` cannot move it.
    repo = overrides.get("git_repo") or environment.get("git_repo") or personal.get("git_repo")
    start = (cwd / Path(repo).expanduser()).resolve() if repo else cwd
    project = find_project_file(start)
    if project is not None:
        for key, value in _read_file(project).items():
            config.set(key, value, str(project))
    for key, value in personal.items():
        config.set(key, value, str(user))
    for key, value in environment.items():
        config.set(key, value, f"RUNLOG_{key.upper()}")
    for key, value in overrides.items():
        config.set(key, value, "command line")
    return config
