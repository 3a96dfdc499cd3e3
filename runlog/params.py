"""Reading JSON arguments (inline or file://) and linting workflow parameters."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runlog.errors import UsageError
from runlog.record import sha256_hex
from runlog.safejson import StrictJSONError, loads_strict

FILE_PREFIX = "file://"
BUCKET_PATH_RE = re.compile(r"^(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(?P<key>\S+)$")
BUCKET_RE = re.compile(r"^(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
OMICS_RE = re.compile(
    r"^omics://(?P<account>\d{12})\.storage\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/"
    r"(?P<store>\d+)/(?P<kind>readSet|reference)/(?P<id>\d+)(?:/(?P<file>[A-Za-z0-9_.-]+))?$"
)
SECRET_NAME_RE = re.compile(r"(pass(word|wd)?|secret|token|api[_-]?key|private[_-]?key|credential)", re.I)


# Limits on JSON arguments (--parameters, --tags, --cli-input-json): documented in
# docs/reliability.md ("Bad input and errors").
MAX_JSON_DEPTH = 32  # arrays and objects nested in each other
MAX_JSON_BYTES = 16 * 1024 * 1024  # a file:// argument larger than this is refused unread
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def parse_json_text(text: str, where: str) -> Any:
    """Strict JSON (safejson.loads_strict, the one reader): no NaN or Infinity, no numbers
    beyond float range, no lone surrogates, nesting at most MAX_JSON_DEPTH; a key given twice
    keeps its last value, as the aws CLI reads it. Refusals are UsageErrors naming `where`
    and the value's path."""
    try:
        return loads_strict(text, max_depth=MAX_JSON_DEPTH, unique_keys=False, integers_within_float=True)
    except StrictJSONError as exc:
        if exc.syntax is not None:
            raise UsageError(f"{where}: invalid JSON at line {exc.syntax.lineno}, column {exc.syntax.colno}: "
                             f"{exc.syntax.msg}") from None
        why = exc.reason
        if why.startswith("nested deeper"):
            why += f" (runlog accepts at most {MAX_JSON_DEPTH})"
        if not exc.path:
            raise UsageError(f"{where}: {why}") from None
        named = f"parameter {show(exc.path)}" if where.startswith("--parameters") else show(exc.path)
        raise UsageError(f"{where}: {named}: {why}") from None


def parse_json_or_text(raw: str, where: str) -> Any:
    """A value that is JSON when it parses as JSON, else the text itself (as replay's --set
    PATH=VALUE reads it). JSON that runlog does not take (NaN, 1e999, a lone surrogate, too
    deep: see parse_json_text) is refused with a UsageError, never silently kept as text."""
    try:
        json.loads(raw)  # JSON at all? (lenient: the strict reading below says what is wrong)
    except json.JSONDecodeError:
        if _SURROGATE_RE.search(raw):
            raise UsageError(f"{where}: the value is not valid UTF-8 text") from None
        return raw
    except (ValueError, RecursionError):
        pass
    return parse_json_text(raw, where)


def show(text: str, limit: int = 200) -> str:
    """`text` fit for a one-line message: control characters and surrogates escaped, clipped."""
    from runlog.textsafe import terminal_safe

    escaped = terminal_safe(text)
    return escaped if len(escaped) <= limit else f"{escaped[:limit]}… ({len(text)} characters)"


def read_text_argument(value: str, option: str, cwd: Path | None = None) -> tuple[str, dict]:
    """The text of a file://PATH argument, read as the aws CLI reads it (relative to the current
    directory; here at most MAX_JSON_BYTES), with {"argument", "file": {"path", "sha256"}}."""
    raw_path = value[len(FILE_PREFIX):]
    shown = show(value)
    try:
        path = Path(raw_path).expanduser()
    except RuntimeError:  # ~user of a user that does not exist
        user = show(raw_path.split("/", 1)[0])
        raise UsageError(f"{option} {shown}: cannot expand {user}: no such user (give the path "
                         "without ~user, or an absolute path)") from None
    if not path.is_absolute():
        path = (cwd or Path.cwd()) / path
    data = _read_bounded(path, option, shown, raw_path)
    info = {"argument": value, "file": {"path": raw_path, "sha256": sha256_hex(data)}}
    try:
        return data.decode("utf-8-sig"), info
    except UnicodeDecodeError as exc:
        raise UsageError(f"{option} {shown}: not UTF-8 text (byte {exc.start})") from None


def read_json_argument(value: str, option: str, cwd: Path | None = None) -> tuple[Any, dict]:
    """Parse an option value that is inline JSON or file://PATH (relative to the current
    directory, as the aws CLI reads it). Returns (value, {"argument", "file"?}). The JSON is
    read strictly (parse_json_text); every refusal is a UsageError naming the option."""
    if _SURROGATE_RE.search(value):
        raise UsageError(f"{option}: the argument is not valid UTF-8 text")
    if value.startswith(FILE_PREFIX):
        text, info = read_text_argument(value, option, cwd)
        where = f"{option} {show(value)}"
    else:
        text, info, where = value, {"argument": value}, option
    return parse_json_text(text, where), info


def _read_bounded(path: Path, option: str, shown: str, raw_path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"{option} {shown}: no such file ({show(raw_path)} is read relative to the "
                         "current directory, as the aws CLI does)") from None
    except IsADirectoryError:
        raise UsageError(f"{option} {shown}: is a directory, expected a JSON file") from None
    except OSError as exc:
        raise UsageError(f"{option} {shown}: cannot read it: {exc.strerror or exc}") from None
    except ValueError:  # a NUL in the path
        raise UsageError(f"{option} {shown}: the path contains a NUL character") from None
    if len(data) > MAX_JSON_BYTES:
        raise UsageError(f"{option} {shown}: larger than {MAX_JSON_BYTES // (1024 * 1024)} MiB; "
                         "runlog reads JSON arguments up to that size")
    return data


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
