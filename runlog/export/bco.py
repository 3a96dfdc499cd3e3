"""IEEE 2791-2020 BioCompute Object for one run or a set of runs."""

from __future__ import annotations

import uuid
from typing import Any

from runlog import record as rec
from runlog.export.terms import RunFacts, published, value_text

SPEC_VERSION = "https://w3id.org/ieee/ieee-2791-schema/2791object.json"
GIT_EXTENSION = "https://w3id.org/runlog/bco/git-extension.json"


def etag(bco: dict) -> str:
    """SHA-256 hex of the canonical JSON of the object without object_id, spec_version, etag."""
    body = {k: v for k, v in bco.items() if k not in ("object_id", "spec_version", "etag")}
    return rec.sha256_hex(rec.canonical_json(body))


def build(runs: list[RunFacts], *, usability: str | None, license: str | None) -> dict[str, Any]:
    first = runs[0]
    if len(runs) == 1 and first.run_uuid:
        object_id = f"urn:uuid:{first.run_uuid}"
    else:  # a set: a uuid derived from the records it describes, so the export stays reproducible
        object_id = "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, "runlog:" + ",".join(r.address for r in runs)))
    workflows = sorted({(r.workflow["name"], r.workflow.get("version") or "") for r in runs})
    created = min(r.created for r in runs)
    contributors = sorted({r.caller_arn for r in runs if r.caller_arn}) or ["unknown submitter"]
    bco: dict[str, Any] = {
        "object_id": object_id,
        "spec_version": SPEC_VERSION,
        "etag": "",
        "provenance_domain": {
            "name": ", ".join(name for name, _ in workflows),
            "version": ", ".join(version or "unversioned" for _, version in workflows),
            "created": created,
            "modified": max(r.created for r in runs),
            "contributors": [{"name": arn, "contribution": ["createdBy"]} for arn in contributors],
            "license": license or "not stated",
        },
        "usability_domain": [usability or (
            f"AWS HealthOmics run(s) of {', '.join(name for name, _ in workflows)}, recorded by runlog; "
            f"published {published(runs)}.")],
        "description_domain": {
            "keywords": ["AWS HealthOmics", "workflow run"] + sorted({r.workflow["language"] for r in runs
                                                                     if r.workflow.get("language")}),
            "pipeline_steps": [_step(n, r) for n, r in enumerate(runs, start=1)],
        },
        "execution_domain": {
            "script": [{"uri": {"uri": r.workflow["arn"] or r.address}} for r in _distinct_workflows(runs)],
            "script_driver": "AWS HealthOmics",
            "software_prerequisites": _software(runs),
            "external_data_endpoints": [{"name": "AWS HealthOmics", "url": "https://aws.amazon.com/healthomics/"},
                                        {"name": "Amazon S3", "url": "https://aws.amazon.com/s3/"}],
            "environment_variables": {},
        },
        "parametric_domain": [{"param": path, "value": value_text(value), "step": str(n)}
                              for n, r in enumerate(runs, start=1) for path, value in r.leaves],
        "io_domain": {
            "input_subdomain": [{"uri": {"uri": i.uri, "filename": i.path}}
                                for r in runs for i in r.inputs],
            "output_subdomain": [{"mediatype": "application/octet-stream", "uri": {"uri": r.output_uri}}
                                 for r in runs if r.ran and r.output_uri],
        },
        "extension_domain": [{"extension_schema": GIT_EXTENSION, "runlog": [_extension(r) for r in runs]}],
    }
    bco["etag"] = etag(bco)
    return bco


def _distinct_workflows(runs: list[RunFacts]) -> list[RunFacts]:
    seen, out = set(), []
    for run in runs:
        if run.workflow["arn"] not in seen:
            seen.add(run.workflow["arn"])
            out.append(run)
    return out


def _step(number: int, run: RunFacts) -> dict:
    wf = run.workflow
    description = f"{wf['name']} on AWS HealthOmics ({wf.get('language') or 'engine unknown'}), " \
                  f"run {run.run_id or 'not run'}, status {run.status}"
    if wf.get("digest"):
        description += f", workflow digest {wf['digest']}"
    return {
        "step_number": number,
        "name": run.label,
        "description": description,
        "version": wf.get("version") or wf.get("digest") or "",
        "input_list": [{"uri": i.uri, "filename": i.path} for i in run.inputs],
        "output_list": [{"uri": run.output_uri}] if run.ran and run.output_uri else [],
    }


def _software(runs: list[RunFacts]) -> list[dict]:
    found = {}
    for run in runs:
        wf = run.workflow
        if wf.get("language"):
            found[(wf["language"], wf.get("engine_version") or "unknown")] = {
                "name": wf["language"], "version": wf.get("engine_version") or "unknown",
                "uri": {"uri": "https://aws.amazon.com/healthomics/"}}
        for image, digest in run.containers.items():
            found[(image, digest)] = {"name": image, "version": digest, "uri": {"uri": f"docker://{image}"}}
    return [found[key] for key in sorted(found)]


def _extension(run: RunFacts) -> dict:
    git = run.git
    return {"record": run.address, "run_uuid": run.run_uuid, "run_arn": run.run_arn, "status": run.status,
            "git_commit": git.get("commit"), "git_remote": git.get("remote"), "git_branch": git.get("branch"),
            "git_state": git.get("state"), "runlog_version": run.runlog_version,
            "replay_of": run.replay_of}
