"""Records: canonical JSON, content addresses, configuration fingerprints and schema checks.

A record is a JSON object describing one submission (see docs/record.md and
schema/record.schema.json). Its *content address* is the SHA-256 of its canonical JSON:
keys sorted, no insignificant white space (separators "," and ":"), UTF-8, non-ASCII
characters written as themselves, NaN and infinities refused.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

FORMAT = "runlog.record/1"
FINGERPRINT_VERSION = 1
# How an abandoned record's `outcome.reason` begins when botocore refused to send the request
# (submit.settle_failure): then runlog knows it never left this machine (export/terms.py).
NOT_SENT = "not sent: "
SCHEMA_PATH = Path(__file__).parent / "schemas" / "record.schema.json"

# StartRun members that decide what is computed (for the configuration fingerprint).
WORKFLOW_MEMBERS = ("workflowId", "workflowType", "workflowVersionName", "workflowOwnerId", "runId")
CACHE_MEMBERS = ("cacheId", "cacheBehavior")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
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
    import hashlib  # here: the read commands never hash, and its import loads OpenSSL

    return hashlib.sha256(data).hexdigest()


def effective_parameters(request: dict, resolution: dict | None) -> Any:
    """The parameters a run gets: the request's own, or the content of its parametersUri
    object as resolved at submission (None when it could not be read). Here, not in
    runlog.resolve, so that `runlog diff` compares parameters without importing resolution."""
    if "parameters" in request or not request.get("parametersUri"):
        return request.get("parameters")
    return ((resolution or {}).get("parameters_file") or {}).get("content")


def address(record: dict) -> str:
    """The content address: hex SHA-256 of the record's canonical JSON."""
    return sha256_hex(canonical_json(record))


def fingerprint_material(record: dict, *, engine: bool = True) -> dict:
    """What decides a computation: workflow, parameters, cache settings, the engine's settings
    (engineSettings, when given) and the code's git state. engine=False: the material of
    runlog before engineSettings counted (legacy_fingerprint_material)."""
    request = record.get("request", {})
    git = record.get("git") or {}
    if record.get("kind") == "batch":
        return _batch_material(record, git, engine)
    material = {
        "v": FINGERPRINT_VERSION,
        "workflow": {k: request[k] for k in WORKFLOW_MEMBERS if k in request},
        "parameters": request.get("parameters"),
        "cache": {k: request[k] for k in CACHE_MEMBERS if k in request},
        "git": {"commit": git.get("commit"), "diff_sha256": git.get("diff_sha256"),
                "untracked_sha256": git.get("untracked_sha256")},
    }
    if engine and "engineSettings" in request:  # a Nextflow profile or configuration: what is run
        material["engine"] = request["engineSettings"]
    if request.get("parametersUri"):  # the parameters are the object's bytes, whatever its name
        found = (record.get("resolution") or {}).get("parameters_file") or {}
        material["parameters_file"] = {"uri": request["parametersUri"], "sha256": found.get("sha256"),
                                       "etag": found.get("etag"), "version_id": found.get("version_id")}
    return material


def _batch_material(record: dict, git: dict, engine: bool) -> dict:
    """A batch's configuration: its default setting's workflow, parameters, cache and engine
    settings, and its run settings (inline, or the settings file's bytes as pinned), with the
    git state."""
    request = record["request"]
    default = request.get("defaultRunSetting") or {}
    settings = request.get("batchRunSettings") or {}
    pinned = (record.get("batch") or {}).get("settings_file") or {}
    batch = {"workflow": {k: default[k] for k in WORKFLOW_MEMBERS if k in default},
             "parameters": default.get("parameters"),
             "cache": {k: default[k] for k in CACHE_MEMBERS if k in default},
             "settings": settings.get("inlineSettings") if "inlineSettings" in settings else
             {"uri": settings.get("s3UriSettings"), "sha256": pinned.get("sha256")}}
    if engine and isinstance(default, dict) and "engineSettings" in default:
        batch["engine"] = default["engineSettings"]
    return {
        "v": FINGERPRINT_VERSION,
        "batch": batch,
        "git": {"commit": git.get("commit"), "diff_sha256": git.get("diff_sha256"),
                "untracked_sha256": git.get("untracked_sha256")},
    }


def legacy_fingerprint_material(record: dict) -> dict | None:
    """The material a record's fingerprint was made of before engineSettings counted
    (runlog 0.1.0, and later builds until the
    CHANGELOG says it changed: the same without `engine`), for a record that gives engineSettings;
    None for any other (its two materials are one). Fingerprints are never made of it now;
    verify and the member check accept it, so that records written then stay valid."""
    request = record.get("request") if isinstance(record, dict) else None
    if not isinstance(request, dict):
        return None
    default = request.get("defaultRunSetting") if record.get("kind") == "batch" else request
    if not isinstance(default, dict) or "engineSettings" not in default:
        return None
    return fingerprint_material(record, engine=False)


def fingerprint(record: dict) -> str:
    return sha256_hex(canonical_json(fingerprint_material(record)))


def timestamp(moment: datetime) -> str:
    """runlog's one timestamp format (records' `created`, observations' `observed_at`, the
    ledger's own times): ISO 8601 in UTC with milliseconds, e.g. 2026-11-24T19:40:00.123Z.
    The text sorts in time order, which `created` ordering relies on."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 time with a zone (Z or an offset), as AWS and runlog write them; a time
    without a zone is taken as UTC. Raises ValueError for anything else."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def utc_now() -> str:
    """The current time in runlog's timestamp format."""
    return timestamp(datetime.now(UTC))


@lru_cache(maxsize=1)
def _validator():
    from jsonschema import Draft202012Validator, FormatChecker

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


@lru_cache(maxsize=1)
def fast_validator():
    """The record schema compiled in memory by jsonschema-rs (JSON Schema 2020-12 in Rust;
    on the benchmark ledger's records about 5x faster than fastjsonschema's generated Python,
    which runlog used before). Nothing is generated, cached on disk or exec'd, so no file a
    user can write is ever run as code (docs/reliability.md, "Configuration and caches")."""
    import jsonschema_rs

    return jsonschema_rs.Draft202012Validator(json.loads(SCHEMA_PATH.read_bytes()))


def is_valid(record: Any) -> bool:
    """True when the record passes the schema (fast; use schema_errors for the reasons).
    Should the fast validator not take a value (it never has for decoded JSON), the
    reference validator decides."""
    try:
        return bool(fast_validator().is_valid(record))
    except (ValueError, TypeError, OverflowError):
        return bool(_validator().is_valid(record))


# The places a record may hold by reference (runlog/blobs.py PLACES), each with the path of its
# value's schema in the record schema.
_HELD_SCHEMAS = {"resolution.inputs": ("properties", "resolution", "properties", "inputs"),
                 "batch.settings_file.content": ("$defs", "settingsFile", "properties", "content")}


def _held_schema(place: str) -> dict:
    """The record schema's part for the value at `place` (a dotted path of _HELD_SCHEMAS), standing alone."""
    schema = json.loads(SCHEMA_PATH.read_bytes())
    part = schema
    for key in _HELD_SCHEMAS[place]:
        part = part[key]
    return {"$defs": schema["$defs"], **part}


@lru_cache(maxsize=len(_HELD_SCHEMAS))
def _held_validator(place: str):
    import jsonschema_rs

    return jsonschema_rs.Draft202012Validator(_held_schema(place))


def held_errors(place: str, value: Any) -> list[str]:
    """schema_errors of the value a record holds by reference at `place` (runlog/blobs.py:
    "resolution.inputs", "batch.settings_file.content"), alone, as `resolution/inputs/...`
    lines: for a batch's intent, whose cohort is held by reference when it is checked, and
    for a blob read, pulled or pushed (blobs.check; about 0.03 s for 200 000 inputs)."""
    try:
        if _held_validator(place).is_valid(value):
            return []
    except (ValueError, TypeError, OverflowError):
        pass  # the reference validator decides
    from jsonschema import Draft202012Validator  # (imported only then: ~50 ms)

    where = place.replace(".", "/")
    return [f"{where}/{'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
            for error in sorted(Draft202012Validator(_held_schema(place)).iter_errors(value),
                                key=lambda e: list(e.absolute_path))]


def inputs_errors(inputs: Any) -> list[str]:
    """held_errors of a record's `resolution.inputs`."""
    return held_errors("resolution.inputs", inputs)


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
