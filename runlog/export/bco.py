"""IEEE 2791-2020 BioCompute Object for one run or a set of runs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from runlog import record as rec
from runlog.export.cohort import BatchFacts
from runlog.export.terms import RunFacts, input_ids, published, value_text

SPEC_VERSION = "https://w3id.org/ieee/ieee-2791-schema/2791object.json"
# The BioCompute community's source-code-management extension (published), for the git details.
SCM_EXTENSION = "https://w3id.org/biocompute/extension_domain/1.1.0/scm/scm_extension.json"
BCO_VERSION = "1.0"  # the version of the BCO itself (provenance_domain.version), not of a workflow


def etag(bco: dict) -> str:
    """SHA-256 hex of the canonical JSON of the object without object_id, spec_version, etag."""
    body = {k: v for k, v in bco.items() if k not in ("object_id", "spec_version", "etag")}
    return rec.sha256_hex(rec.canonical_json(body))


def build(runs: list[RunFacts], *, usability: str | None, license: str | None,
          authors: Sequence[dict] = (), ids: dict | None = None, batch: BatchFacts | None = None) -> dict[str, Any]:
    """One BioCompute Object (call it with one run: a BCO describes one pipeline execution).
    `ids` are the input identifiers of the whole export (runlog.export.terms.input_ids), so
    the same input reads the same in every BCO of it. A batch member's BCO names its batch
    (`batch`) in its usability statement, keywords and parametric domain."""
    ids = ids or input_ids(runs)
    workflows = sorted({(r.workflow["name"], r.workflow.get("version") or "") for r in runs})
    created = min(r.created for r in runs)
    callers = sorted({r.caller_arn for r in runs if r.caller_arn})
    contributors = [{"name": a["name"], "contribution": ["authoredBy"],
                     **({"orcid": a["id"]} if (a.get("id") or "").startswith("https://orcid.org/") else {})}
                    for a in authors]
    contributors += [{"name": arn, "contribution": ["createdBy"]} for arn in callers]
    if not contributors:
        contributors = [{"name": "unknown submitter", "contribution": ["createdBy"]}]
    bco: dict[str, Any] = {
        "object_id": "",
        "spec_version": SPEC_VERSION,
        "etag": "",
        "provenance_domain": {
            "name": ", ".join(name for name, _ in workflows),
            "version": BCO_VERSION,
            "created": created,
            "modified": max(r.created for r in runs),
            "contributors": contributors,
            "license": license or "not stated",
        },
        "usability_domain": [usability or (
            f"AWS HealthOmics run(s) of {', '.join(name for name, _ in workflows)}, recorded by runlog; "
            f"published {published(runs)}.")] + ([
            f"Run setting {runs[0].run_setting_id} of AWS HealthOmics run {batch.label}, one of its "
            f"{batch.declared} run setting(s) ({len(batch.runs)} started as runs, {len(batch.not_started)} failed "
            f"to start): each run of the cohort has its own BioCompute Object."] if batch else [])
        + [f"Run {r.label}: {r.settings_note}." for r in runs if r.settings_note],
        "description_domain": {
            "keywords": ["AWS HealthOmics", "workflow run"] + (["run batch", "cohort"] if batch else [])
            + sorted({r.workflow["language"] for r in runs if r.workflow.get("language")}),
            "pipeline_steps": _steps(runs, ids),
        },
        "execution_domain": {
            "script": [{"uri": {"uri": r.workflow["arn"] or r.address}} for r in _distinct_workflows(runs)],
            "script_driver": "AWS HealthOmics",
            "software_prerequisites": _software(runs),
            "external_data_endpoints": [{"name": "AWS HealthOmics", "url": "https://aws.amazon.com/healthomics/"},
                                        {"name": "Amazon S3", "url": "https://aws.amazon.com/s3/"}],
            "environment_variables": {},
        },
        "parametric_domain": [{"param": name, "value": value, "step": "1"} for name, value in (
            [("StartRunBatch batch", batch.arn or batch.batch_id), ("runSettingId", runs[0].run_setting_id or "")]
            if batch else [])]
        + [{"param": "settings source", "value": r.settings_note, "step": str(n)}
           for n, r in enumerate(runs, start=1) if r.settings_note]
        + [{"param": path, "value": value_text(value), "step": str(n)}
                              for n, r in enumerate(runs, start=1) for path, value in r.stated_leaves]
        + [{"param": f"StartRun {member}", "value": value_text(value), "step": str(n)}
           for n, r in enumerate(runs, start=1) for member, value in sorted(r.settings.items())]
        + [{"param": f"replay override {key}", "value": value_text(value), "step": str(n)}
           for n, r in enumerate(runs, start=1) for group in ("members", "parameters")
           for key, value in sorted((r.overrides.get(group) or {}).items())]
        + [{"param": f"accepted drift: {d['kind']} {d['what']}",
            "value": f"recorded {value_text(d['recorded'])}, found {value_text(d['current'])}", "step": str(n)}
           for n, r in enumerate(runs, start=1) for d in r.drift],
        "io_domain": {
            "input_subdomain": [{"uri": {"uri": ids[(r.address, i.path)], "filename": i.path}}
                                for r in runs if r.ran for i in r.stated_inputs],
            "output_subdomain": [{"mediatype": "application/octet-stream", "uri": {"uri": r.output_uri}}
                                 for r in runs if r.status == "COMPLETED" and r.output_uri],
        },
        "extension_domain": [_scm(r) for r in runs if r.git.get("commit")],
    }
    errors = [{"run": r.run_id or r.address, "status": r.status, "error": r.failure_reason or r.error}
              for r in runs if (r.failure_reason or r.error) and not r.sent_unknown]
    # abandoned while runlog did not know whether HealthOmics received them: not said to have failed
    unknown = [{"run": r.address, "status": r.status, "note": r.error} for r in runs if r.sent_unknown]
    if errors or unknown:
        empirical = {"runs_that_did_not_complete": errors} if errors else {}
        if unknown:
            empirical["requests_whose_outcome_is_unknown"] = unknown
        bco["error_domain"] = {"empirical_error": empirical, "algorithmic_error": {}}
    if not bco["extension_domain"]:
        del bco["extension_domain"]
    bco["etag"] = etag(bco)
    # the object id is derived from the content, so the same content always gets the same id
    bco["object_id"] = "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, "runlog-bco:" + bco["etag"]))
    return bco


def _distinct_workflows(runs: list[RunFacts]) -> list[RunFacts]:
    seen, out = set(), []
    for run in runs:
        if run.workflow["arn"] not in seen:
            seen.add(run.workflow["arn"])
            out.append(run)
    return out


def _steps(runs: list[RunFacts], ids: dict) -> list[dict]:
    """The pipeline's steps: each run's tasks as HealthOmics reported them, else the run as one step."""
    steps: list[dict] = []
    for run in runs:
        if not run.tasks:
            steps.append(_step(len(steps) + 1, run, ids))
            continue
        for task in sorted(run.tasks, key=lambda t: (t.get("creationTime") or "", t["taskId"])):
            image = task.get("imageDetails") or {}
            description = (f"task {task.get('name')} of run {run.run_id}, status {task.get('status')}"
                           + (f", container {image['image']}" if image.get("image") else "")
                           + (f" ({image['imageDigest']})" if image.get("imageDigest") else "")
                           + (", result reused from the run cache" if task.get("cacheHit") else ""))
            steps.append({"step_number": len(steps) + 1, "name": task.get("name") or task["taskId"],
                          "description": description, "version": image.get("imageDigest") or "",
                          "input_list": [], "output_list": []})
    return steps


def _step(number: int, run: RunFacts, ids: dict) -> dict:
    wf = run.workflow
    description = f"{wf['name']} on AWS HealthOmics ({wf.get('language') or 'engine unknown'}), " \
                  f"run {run.run_id or 'not run'}, {run.status_words}" \
                  + ("" if run.finished else " at export time (not finished)") \
                  + (f" ({run.error})" if run.error else "")
    if wf.get("digest"):
        description += f", workflow digest {wf['digest']}"
    return {
        "step_number": number,
        "name": run.label,
        "description": description,
        "version": wf.get("version") or wf.get("digest") or "",
        "input_list": [{"uri": ids[(run.address, i.path)], "filename": i.path} for i in run.stated_inputs] if run.ran else [],
        "output_list": [{"uri": run.output_uri}] if run.status == "COMPLETED" and run.output_uri else [],
    }


def _software(runs: list[RunFacts]) -> list[dict]:
    found: dict[tuple[str, str], dict] = {}
    for run in runs:
        wf = run.workflow
        if wf.get("language"):
            found[(wf["language"], wf.get("engine_version") or "unknown")] = {
                "name": wf["language"], "version": wf.get("engine_version") or "unknown",
                "uri": {"uri": "https://aws.amazon.com/healthomics/"}}
        for image, digest in run.images():
            found[(image, digest or "")] = {"name": image, "version": digest or "unknown",
                                            "uri": {"uri": f"docker://{image}"}}
    return [found[key] for key in sorted(found)]


def _scm(run: RunFacts) -> dict:
    """The analysis code's git state, in the community SCM extension's terms."""
    git = run.git
    scm = {"scm_repository": git.get("remote") or "local repository (no remote)", "scm_type": "git",
           "scm_commit": git["commit"], "scm_path": git.get("workdir") or ".",
           "scm_preview": f"run {run.run_id or run.address[:12]}, working tree {git.get('state')}"}
    return {"extension_schema": SCM_EXTENSION, "scm_extension": scm}
