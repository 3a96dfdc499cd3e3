"""One mapping from a record (and its observations) to the terms every export uses."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from runlog.ledger import Entry, Ledger
from runlog.observe import latest_run_facts

ENGINE_NAMES = {"WDL": "WDL", "WDL_LENIENT": "WDL", "NEXTFLOW": "Nextflow", "CWL": "CWL"}
STATUS_OF_REJECTED = "NOT_RUN"


@dataclass
class Input:
    path: str  # JSON path of the parameter (name for top-level ones)
    uri: str
    identity: dict  # what was pinned at submission ({} when not resolved)
    seen_etag: str | None  # the ETag the service reported reading (GetRun resourceDigests)

    @property
    def is_prefix(self) -> bool:
        return self.uri.endswith("/")

    @property
    def checksum(self) -> str | None:
        return self.identity.get("md5") or self.identity.get("etag") or self.seen_etag


@dataclass
class RunFacts:
    address: str
    record: dict
    kind: str
    created: str
    ran: bool
    status: str
    run_id: str | None
    run_uuid: str | None
    run_arn: str | None
    start: str | None
    end: str | None
    failure_reason: str | None
    output_uri: str | None
    workflow: dict[str, Any]
    parameters: dict[str, Any]
    leaves: list[tuple[str, Any]]  # every parameter value at any depth, by JSON path
    inputs: list[Input]
    containers: dict[str, str]  # image -> digest, from GetRun resourceDigests
    git: dict[str, Any]
    caller_arn: str | None
    replay_of: str | None  # the original's record address
    replay_of_uuid: str | None
    runlog_version: str
    observations: list[dict] = field(default_factory=list)

    @property
    def action_id(self) -> str:
        return f"urn:uuid:{self.run_uuid}" if self.run_uuid else f"#attempt-{self.address[:16]}"

    @property
    def label(self) -> str:
        return self.record["request"].get("name") or (f"run {self.run_id}" if self.run_id else "attempt")


def _leaves(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        out = []
        for key in sorted(value):
            out.extend(_leaves(value[key], f"{path}.{key}" if path else str(key)))
        return out
    if isinstance(value, list):
        out = []
        for index, item in enumerate(value):
            out.extend(_leaves(item, f"{path}[{index}]"))
        return out
    return [(path, value)]


def _workflow(record: dict, facts: dict, region: str | None, account: str | None) -> dict[str, Any]:
    request = record["request"]
    resolved = dict((record.get("resolution") or {}).get("workflow") or {})
    resolved.pop("error", None)
    source = record.get("source_run") or {}
    workflow_id = request.get("workflowId") or resolved.get("id") or facts.get("workflowId") or source.get("workflowId")
    version = request.get("workflowVersionName") or resolved.get("version_name") or facts.get("workflowVersionName")
    owner = request.get("workflowOwnerId") or account
    arn = resolved.get("arn")
    if not arn and workflow_id:
        arn = f"arn:aws:omics:{region or 'unknown'}:{owner or 'unknown'}:workflow/{workflow_id}"
        if version:
            arn += f"/version/{version}"
    engine = resolved.get("engine")
    return {
        "id": workflow_id, "arn": arn, "name": resolved.get("name") or (f"workflow {workflow_id}" if workflow_id
                                                                          else "workflow"),
        "type": request.get("workflowType") or resolved.get("type") or facts.get("workflowType") or "PRIVATE",
        "version": version, "engine": engine, "language": ENGINE_NAMES.get(engine or "", engine),
        "engine_version": facts.get("engineVersion"), "digest": resolved.get("digest") or facts.get("digest"),
        "uuid": resolved.get("uuid") or facts.get("workflowUuid"), "owner": request.get("workflowOwnerId"),
        "source_run": request.get("runId"),
    }


def run_facts(entry: Entry, observations: list[dict]) -> RunFacts:
    record = entry.record
    facts = latest_run_facts_from(observations)
    response = record["outcome"].get("response") or {}
    arn = response.get("arn")
    region = account = None
    if arn and arn.count(":") >= 5:
        region, account = arn.split(":")[3], arn.split(":")[4]
    region = region or (record.get("aws") or {}).get("region")
    ran = record["outcome"]["status"] == "submitted"
    resolution_inputs = (record.get("resolution") or {}).get("inputs") or {}
    seen = facts.get("resourceDigests") or {}
    parameters = record["request"].get("parameters") or facts.get("parameters") or {}
    leaves = _leaves(parameters)
    inputs = []
    for path, value in leaves:
        if isinstance(value, str) and value.startswith(("s3://", "omics://")):
            identity = {k: v for k, v in (resolution_inputs.get(value) or {}).items() if k != "error"}
            digest = seen.get(value)
            inputs.append(Input(path, value, identity, digest.split(":", 1)[1] if digest and ":" in digest else None))
    containers = {k: v for k, v in sorted(seen.items()) if not k.startswith(("s3://", "omics://"))}
    lineage = (record.get("lineage") or {}).get("replay_of") or {}
    status = entry.status or response.get("status") or "UNKNOWN"
    return RunFacts(
        address=entry.address, record=record, kind=record["kind"], created=record["created"], ran=ran,
        status=status if ran else STATUS_OF_REJECTED, run_id=response.get("id"), run_uuid=response.get("uuid"),
        run_arn=arn, start=facts.get("startTime") or facts.get("creationTime"), end=facts.get("stopTime"),
        failure_reason=facts.get("failureReason"),
        output_uri=response.get("runOutputUri") or facts.get("runOutputUri") or record["request"].get("outputUri"),
        workflow=_workflow(record, facts, region, account), parameters=parameters, leaves=leaves, inputs=inputs,
        containers=containers, git=record.get("git") or {}, caller_arn=(record.get("caller") or {}).get("arn"),
        replay_of=lineage.get("record"), replay_of_uuid=lineage.get("run_uuid"),
        runlog_version=record.get("runlog_version", ""), observations=observations,
    )


def latest_run_facts_from(observations: list[dict]) -> dict:
    for observation in reversed(observations):
        if observation["source"] == "GetRun" and "uuid" in observation["body"]:
            return observation["body"]
    return {}


def collect(ledger: Ledger, refs: list[str], *, runs_only: bool = False) -> list[RunFacts]:
    """RunFacts for each REF (duplicates once, in the order given)."""
    from runlog.errors import UsageError

    seen, out = set(), []
    for ref in refs:
        entry = ledger.resolve(ref)
        if entry.address in seen:
            continue
        seen.add(entry.address)
        if runs_only and entry.outcome != "submitted":
            raise UsageError(f"{ref!r} is a failed attempt that never ran (record {entry.address[:12]}); "
                             "leave out --runs-only to export it with status NOT_RUN")
        out.append(run_facts(entry, ledger.observations(entry.address)))
    return out


def value_text(value: Any) -> str:
    """A parameter value as text (JSON for anything that is not a string)."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def published(runs: list[RunFacts]) -> str:
    """The export's date: the newest record's (never the wall clock, so exports are reproducible)."""
    return max(r.created for r in runs)[:10]


__all__ = ["Input", "RunFacts", "collect", "latest_run_facts", "published", "run_facts", "value_text"]
