"""Reading JSON arguments (inline or file://) and linting workflow parameters."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runlog.errors import UsageError
from runlog.record import sha256_hex

FILE_PREFIX = "file://"
BUCKET_PATH_RE = re.compile(r"^(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(?P<key>\S+)$")
BUCKET_RE = re.compile(r"^(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
OMICS_RE = re.compile(
    r"^omics://(?P<account>\d{12})\.storage\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/"
    r"(?P<store>\d+)/(?P<kind>readSet|reference)/(?P<id>\d+)(?:/(?P<file>[A-Za-z0-9_.-]+))?$"
)
SECRET_NAME_RE = re.compile(r"(pass(word|wd)?|secret|token|api[_-]?key|private[_-]?key|credential)", re.I)


def _read_file_argument(value: str, option: str, cwd: Path | None) -> tuple[str, dict]:
    """The text of a file://PATH argument (relative to the current directory, as the aws CLI
    reads it), with {"argument", "file": {"path", "sha256"}}."""
    raw_path = value[len(FILE_PREFIX):]
    path = Path(raw_path).expanduser()
    if not path.is_absolute():
        path = (cwd or Path.cwd()) / path
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{option} {value}: no such file ({raw_path} is read relative to the current "
                         "directory, as the aws CLI does)") from None
    except IsADirectoryError:
        raise UsageError(f"{option} {value}: is a directory, expected a file") from None
    except OSError as exc:
        raise UsageError(f"{option} {value}: cannot read it: {exc.strerror}") from None
    info = {"argument": value, "file": {"path": raw_path, "sha256": sha256_hex(data)}}
    try:
        return data.decode("utf-8-sig"), info
    except UnicodeDecodeError as exc:
        raise UsageError(f"{option} {value}: not UTF-8 text (byte {exc.start})") from None


def read_text_argument(value: str, option: str, cwd: Path | None = None) -> tuple[str, dict]:
    """A string option given as file://PATH: the file's text, as the aws CLI passes it."""
    return _read_file_argument(value, option, cwd)


def read_json_argument(value: str, option: str, cwd: Path | None = None) -> tuple[Any, dict]:
    """Parse an option value that is inline JSON or file://PATH (relative to the current
    directory, as the aws CLI reads it). Returns (value, {"argument", "file"?})."""
    if value.startswith(FILE_PREFIX):
        text, info = _read_file_argument(value, option, cwd)
        where = f"{option} {value}"
    else:
        text, info = value, {"argument": value}
        where = option
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    return parsed, info


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def loads_strict(text: str) -> Any:
    """Strict JSON: no NaN or Infinity, no number that overflows a float, bounded nesting."""
    def number(literal: str) -> float:
        value = float(literal)
        if value in (float("inf"), float("-inf")):
            raise ValueError(f"{literal[:20]} is too large for a JSON number")
        return value

    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=number)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def walk_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string inside a JSON value, with its path (a.b[0].c)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from walk_strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk_strings(item, f"{path}[{index}]")


def walk_keys(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            yield here, str(key)
            yield from walk_keys(item, here)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk_keys(item, f"{path}[{index}]")


def looks_like_bare_s3_path(text: str) -> bool:
    match = BUCKET_PATH_RE.match(text)
    if not match or "://" in text:
        return False
    bucket = match.group("bucket")
    return ".." not in bucket and not re.fullmatch(r"\d+\.\d+\.\d+\.\d+", bucket)


def lint(parameters: Any) -> list[str]:
    """Warnings about parameter values; values are never changed."""
    warnings = []
    for path, text in walk_strings(parameters):
        if looks_like_bare_s3_path(text):
            warnings.append(f"parameter {path} = {text!r} looks like an S3 path without s3:// "
                            f"(did you mean 's3://{text}'?); sent unchanged")
        elif text.startswith("s3://"):
            bucket = text[5:].split("/", 1)[0]
            if not BUCKET_RE.match(bucket) or re.fullmatch(r"\d+\.\d+\.\d+\.\d+", bucket):
                warnings.append(f"parameter {path} = {text!r}: {bucket!r} is not a valid S3 bucket name")
        elif text.startswith("omics://") and not OMICS_RE.match(text):
            warnings.append(f"parameter {path} = {text!r} is not of the form "
                            "omics://ACCOUNT.storage.REGION.amazonaws.com/STORE/readSet|reference/ID[/FILE]")
    for path, key in walk_keys(parameters):
        if SECRET_NAME_RE.search(key):
            warnings.append(f"parameter {path} looks like a secret: its value is stored in the ledger and "
                            "sent to HealthOmics as plain text; pass a secret's ARN instead")
    return warnings
