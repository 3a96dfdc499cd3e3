"""Records: canonical JSON, content addresses, configuration fingerprints and schema checks.

A record is a JSON object describing one submission (see docs/record.md and
schema/record.schema.json). Its *content address* is the SHA-256 of its canonical JSON:
keys sorted, no insignificant white space (separators "," and ":"), UTF-8, non-ASCII
characters written as themselves, NaN and infinities refused.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

FORMAT = "runlog.record/1"
FINGERPRINT_VERSION = 1
SCHEMA_PATH = Path(__file__).parent / "schemas" / "record.schema.json"

# StartRun members that decide what is computed (for the configuration fingerprint).
WORKFLOW_MEMBERS = ("workflowId", "workflowType", "workflowVersionName", "workflowOwnerId", "runId")
CACHE_MEMBERS = ("cacheId", "cacheBehavior")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    raise TypeError(f"cannot store a {type(value).__name__} in a record")


def canonical_json(obj: Any) -> bytes:
    """The one byte form of a JSON value that runlog hashes."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default
    ).encode("utf-8")


def jsonable(obj: Any) -> Any:
    """A deep copy of obj with only JSON types (datetimes become ISO 8601 UTC strings)."""
    return json.loads(canonical_json(obj))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def address(record: dict) -> str:
    """The content address: hex SHA-256 of the record's canonical JSON."""
    return sha256_hex(canonical_json(record))


def fingerprint_material(record: dict) -> dict:
    """What decides a computation: workflow, parameters, cache settings and the code's git state."""
    request = record.get("request", {})
    git = record.get("git") or {}
    if record.get("kind") == "batch":
        return _batch_material(record, git)
    material = {
        "v": FINGERPRINT_VERSION,
        "workflow": {k: request[k] for k in WORKFLOW_MEMBERS if k in request},
        "parameters": request.get("parameters"),
        "cache": {k: request[k] for k in CACHE_MEMBERS if k in request},
        "git": {"commit": git.get("commit"), "diff_sha256": git.get("diff_sha256"),
                "untracked_sha256": git.get("untracked_sha256")},
    }
    if request.get("parametersUri"):  # the parameters are the object's bytes, whatever its name
        found = (record.get("resolution") or {}).get("parameters_file") or {}
        material["parameters_file"] = {"uri": request["parametersUri"], "sha256": found.get("sha256"),
                                       "etag": found.get("etag"), "version_id": found.get("version_id")}
    return material


def _batch_material(record: dict, git: dict) -> dict:
    """A batch's configuration: its default setting's workflow, parameters and cache, and
    its run settings (inline, or the settings file's bytes as pinned), with the git state."""
    request = record["request"]
    default = request.get("defaultRunSetting") or {}
    settings = request.get("batchRunSettings") or {}
    pinned = (record.get("batch") or {}).get("settings_file") or {}
    return {
        "v": FINGERPRINT_VERSION,
        "batch": {"workflow": {k: default[k] for k in WORKFLOW_MEMBERS if k in default},
                  "parameters": default.get("parameters"),
                  "cache": {k: default[k] for k in CACHE_MEMBERS if k in default},
                  "settings": settings.get("inlineSettings") if "inlineSettings" in settings else
                  {"uri": settings.get("s3UriSettings"), "sha256": pinned.get("sha256")}},
        "git": {"commit": git.get("commit"), "diff_sha256": git.get("diff_sha256"),
                "untracked_sha256": git.get("untracked_sha256")},
    }


def fingerprint(record: dict) -> str:
    return sha256_hex(canonical_json(fingerprint_material(record)))


def utc_now() -> str:
    """Current time as ISO 8601 UTC with milliseconds, e.g. 2026-11-24T19:40:00.123Z."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


@lru_cache(maxsize=1)
def _validator():
    from jsonschema import Draft202012Validator, FormatChecker

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


GENERATED_VALIDATOR = Path(__file__).parent / "_record_validator.py"


def generate_validator_source() -> str:
    """The record schema compiled to Python by fastjsonschema (about 15x faster than
    jsonschema), as the text of runlog/_record_validator.py. The schema uses only keywords
    draft-07 already had, so it is compiled as draft-07; tests/test_ledger.py checks both
    validators agree. The module is generated at development time and checked in, never
    written at run time: regenerate it with `python -m runlog.record` after editing the
    schema (tests/test_schema_validator.py fails while it is out of date)."""
    import fastjsonschema

    text = SCHEMA_PATH.read_bytes()
    schema = json.loads(text)
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    schema.pop("$id", None)  # the root function is then named `validate`; $refs are local
    code = fastjsonschema.compile_to_code(schema)
    header = (
        "# Generated by `python -m runlog.record` from schema/record.schema.json: do not edit.\n"
        f"# schema sha256: {sha256_hex(text)}\n"
        f"# fastjsonschema: {fastjsonschema.VERSION}\n"
        "# fmt: off\n"
        "# ruff: noqa\n"
    )
    return header + code


def generated_schema_digest() -> str | None:
    """The schema SHA-256 the checked-in validator was generated from (None if absent)."""
    try:
        with GENERATED_VALIDATOR.open(encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("# schema sha256: "):
                    return line.split(":", 1)[1].strip()
                if not line.startswith("#"):
                    break
    except OSError:
        return None
    return None


@lru_cache(maxsize=1)
def _fast_check():
    """The compiled schema check: the module shipped in the package (code is never loaded
    from a cache directory). Should the module not match the schema file beside it (an edited
    schema not yet regenerated), the schema is compiled in memory instead."""
    if generated_schema_digest() == sha256_hex(SCHEMA_PATH.read_bytes()):
        from runlog._record_validator import validate

        return validate
    namespace: dict = {}
    exec(compile(generate_validator_source(), "<record schema>", "exec"), namespace)
    return namespace["validate"]


def is_valid(record: dict) -> bool:
    """True when the record passes the schema (fast; use schema_errors for the reasons)."""
    import fastjsonschema

    try:
        _fast_check()(record)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


def schema_errors(record: dict) -> list[str]:
    """Every way the record breaks schema/record.schema.json, as readable lines (empty if valid).
    The fast compiled check runs first; jsonschema, the reference validator, explains failures."""
    if is_valid(record):
        return []
    errors = []
    for error in sorted(_validator().iter_errors(record), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(record)"
        errors.append(f"{where}: {error.message}")
    return errors



if __name__ == "__main__":  # python -m runlog.record: regenerate runlog/_record_validator.py
    GENERATED_VALIDATOR.write_text(generate_validator_source(), encoding="utf-8")
    print(f"wrote {GENERATED_VALIDATOR}")
