"""Configuration: files, environment and flags, merged in a fixed order.

Sources, later wins:
  1. `.runlog.toml`, the nearest one from the current directory upwards (a project's shared defaults)
  2. `$XDG_CONFIG_HOME/runlog/config.toml` (default `~/.config/runlog/config.toml`; personal settings)
  3. `RUNLOG_<KEY>` environment variables (e.g. RUNLOG_LEDGER, RUNLOG_REGION)
  4. command-line flags

Relative paths in a file (`ledger`, `git_repo`) are relative to that file's directory.
"""

from __future__ import annotations

import json
import os
import tomllib
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


def find_project_file(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        candidate = directory / PROJECT_FILE
        if candidate.is_file():
            return candidate
    return None


def find_git_root(start: Path) -> Path | None:
    """The enclosing git work tree's root, found without starting git."""
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory
    return None


@dataclass
class Config:
    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    cwd: Path = field(default_factory=Path.cwd)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any, source: str) -> None:
        if value is None:
            return
        self.values[key] = value
        self.sources[key] = source

    @property
    def git_repo(self) -> Path:
        return Path(self.values["git_repo"]) if "git_repo" in self.values else self.cwd

    def ledger_path(self) -> Path:
        """`ledger` if set, else `.runlog/ledger.db` at the analysis repository's root,
        else the user's data directory."""
        if "ledger" in self.values:
            return Path(self.values["ledger"]).expanduser()
        root = find_git_root(self.git_repo.resolve())
        if root is not None:
            return root / ".runlog" / "ledger.db"
        return user_data_dir() / "ledger.db"


def _check(key: str, value: Any, where: str) -> Any:
    if key not in KEYS:
        known = ", ".join(sorted(KEYS))
        raise UsageError(f"unknown configuration key {key!r} in {where} (known keys: {known})")
    expected = KEYS[key][0]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, expected):
        raise UsageError(f"configuration key {key!r} in {where} must be a {expected.__name__}, got {value!r}")
    if key == "tags" and not all(isinstance(v, str) for v in value.values()):
        raise UsageError(f"configuration key 'tags' in {where} must map names to strings")
    return value


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"cannot parse {path}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    out = {}
    for key, value in data.items():
        value = _check(key, value, str(path))
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
    config = Config(cwd=cwd)
    project = find_project_file(cwd)
    if project is not None:
        for key, value in _read_file(project).items():
            config.set(key, value, str(project))
    user = user_config_path()
    if user.is_file():
        for key, value in _read_file(user).items():
            config.set(key, value, str(user))
    for key in KEYS:
        raw = os.environ.get(f"RUNLOG_{key.upper()}")
        if raw is not None and raw != "":
            config.set(key, _env_value(key, raw), f"RUNLOG_{key.upper()}")
    for key, value in (overrides or {}).items():
        config.set(key, value, "command line")
    return config
