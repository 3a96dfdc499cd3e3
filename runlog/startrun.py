"""The StartRun request: the aws CLI's `start-run` options, how they become a request,
and the checks made before anything is written or sent."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runlog.config import parse_key_values
from runlog.errors import UsageError
from runlog.params import FILE_PREFIX, read_json_argument

MAX_TAGS = 50


@dataclass(frozen=True)
class Option:
    member: str  # StartRun member name
    flag: str  # aws CLI spelling
    kind: str  # str | int | json | map
    help: str


OPTIONS: tuple[Option, ...] = (
    Option("workflowId", "--workflow-id", "str", "The workflow's id."),
    Option("workflowType", "--workflow-type", "str", "PRIVATE or READY2RUN."),
    Option("runId", "--run-id", "str", "Duplicate this run (the service copies its workflow and parameters)."),
    Option("roleArn", "--role-arn", "str", "Service role for the run (default: role_arn in the config)."),
    Option("name", "--name", "str", "A name for the run."),
    Option("cacheId", "--cache-id", "str", "Run cache id."),
    Option("cacheBehavior", "--cache-behavior", "str", "CACHE_ON_FAILURE or CACHE_ALWAYS."),
    Option("runGroupId", "--run-group-id", "str", "Run group id."),
    Option("priority", "--priority", "int", "Run priority (0-100000)."),
    Option("parameters", "--parameters", "json", "Workflow parameters: inline JSON or file://PATH."),
    Option("storageCapacity", "--storage-capacity", "int", "Static storage in GiB."),
    Option("outputUri", "--output-uri", "str", "S3 output location (default: output_uri in the config)."),
    Option("logLevel", "--log-level", "str", "OFF, FATAL, ERROR or ALL."),
    Option("tags", "--tags", "map", "Tags: KEY=VALUE,KEY=VALUE, JSON, or file://PATH."),
    Option("requestId", "--request-id", "str", "Idempotency token (default: a new UUID)."),
    Option("retentionMode", "--retention-mode", "str", "RETAIN or REMOVE."),
    Option("storageType", "--storage-type", "str", "STATIC or DYNAMIC."),
    Option("workflowOwnerId", "--workflow-owner-id", "str", "Account id of a shared workflow's owner."),
    Option("workflowVersionName", "--workflow-version-name", "str", "Workflow version name."),
    Option("networkingMode", "--networking-mode", "str", "RESTRICTED or VPC."),
    Option("configurationName", "--configuration-name", "str", "Run configuration name."),
)
MEMBERS = {o.member: o for o in OPTIONS}


@dataclass
class Built:
    request: dict[str, Any]
    parameters: dict[str, Any]  # the record's `parameters` section


def parse_tags(value: str, option: str = "--tags", cwd: Path | None = None) -> dict[str, str]:
    text = value.strip()
    if text.startswith("{") or text.startswith(FILE_PREFIX):
        tags, _ = read_json_argument(text, option, cwd)
    else:
        tags = parse_key_values(text, option)
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise UsageError(f"{option}: expected a map of names to strings, e.g. project=wgs,owner=alice")
    return tags


def build_request(flags: dict[str, Any], *, cli_input_json: str | None = None,
                  defaults: dict[str, Any] | None = None, cwd: Path | None = None) -> Built:
    """Merge --cli-input-json, config defaults and flags (flags win) into a StartRun request.

    `flags` maps member names to the raw option values (None = not given). `defaults` may hold
    roleArn, outputUri and tags from the configuration."""
    request: dict[str, Any] = {}
    param_info: dict[str, Any] = {"source": "none", "argument": None}
    if cli_input_json is not None:
        base, _ = read_json_argument(cli_input_json, "--cli-input-json", cwd)
        if not isinstance(base, dict):
            raise UsageError("--cli-input-json: expected a JSON object of StartRun members")
        unknown = sorted(set(base) - set(MEMBERS))
        if unknown:
            raise UsageError(f"--cli-input-json: unknown StartRun member(s) {', '.join(unknown)} "
                             f"(valid: {', '.join(MEMBERS)})")
        request.update(base)
        if "parameters" in base:
            param_info = {"source": "cli-input-json", "argument": None}
    defaults = defaults or {}
    for member in ("roleArn", "outputUri"):
        if member not in request and defaults.get(member):
            request[member] = defaults[member]
    tags = dict(defaults.get("tags") or {})
    tags.update(request.get("tags") or {})

    for member, raw in flags.items():
        if raw is None:
            continue
        option = MEMBERS[member]
        if member == "parameters":
            parsed, info = read_json_argument(raw, "--parameters", cwd)
            request["parameters"] = parsed
            param_info = {"source": "file" if "file" in info else "inline", **info}
        elif member == "tags":
            tags.update(parse_tags(raw, option.flag, cwd))
        else:
            request[member] = raw
    if tags:
        request["tags"] = tags
    request.setdefault("requestId", str(uuid.uuid4()))
    check_request(request)
    return Built(request=request, parameters=param_info)


def check_request(request: dict[str, Any]) -> None:
    """Refuse (exit 2) what the service would refuse, before anything is written or sent."""
    missing = [MEMBERS[m].flag for m in ("roleArn", "outputUri") if not request.get(m)]
    if missing:
        raise UsageError(f"missing {' and '.join(missing)} (give the option, or set "
                         f"{' / '.join(_config_key(f) for f in missing)} in .runlog.toml)")
    if not request.get("workflowId") and not request.get("runId"):
        raise UsageError("give --workflow-id (the workflow to run) or --run-id (a run to duplicate)")
    if "parameters" in request and not isinstance(request["parameters"], dict):
        raise UsageError("--parameters must be a JSON object mapping parameter names to values")
    for member in ("priority", "storageCapacity"):
        if member in request and (isinstance(request[member], bool) or not isinstance(request[member], int)):
            raise UsageError(f"{MEMBERS[member].flag} must be a whole number, got {request[member]!r}")
    if len(request.get("tags") or {}) > MAX_TAGS:
        raise UsageError(f"--tags: {len(request['tags'])} tags, HealthOmics allows at most {MAX_TAGS}")


def check_against_model(request: dict[str, Any], service_model) -> None:
    """Enum values, patterns, lengths and ranges from the service model (the client's own,
    so the model is loaded once), refused with exit 2 before anything is written or sent."""
    from runlog.servicemodel import constraint_errors

    shape = service_model.operation_model("StartRun").input_shape
    problems = constraint_errors(shape, request, "")
    if problems:
        first = problems[0]
        member = first.split(":", 1)[0].split(".")[0].split(" ")[0].split("[")[0]
        flag = MEMBERS[member].flag if member in MEMBERS else member
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise UsageError(f"{flag}: {first.split(': ', 1)[1]}{more}")


def _config_key(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")
