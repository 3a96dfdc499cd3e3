"""Workflow Run RO-Crate (profile 0.5, RO-Crate 1.1), built with ro-crate-py."""

from __future__ import annotations

import json
import re
from pathlib import Path

from runlog.errors import UsageError
from runlog.export.terms import RunFacts, published, value_text

PROFILES = [
    ("https://w3id.org/ro/wfrun/process/0.5", "Process Run Crate", "0.5"),
    ("https://w3id.org/ro/wfrun/workflow/0.5", "Workflow Run Crate", "0.5"),
    ("https://w3id.org/workflowhub/workflow-ro-crate/1.0", "Workflow RO-Crate", "1.0"),
]
# Terms of the Workflow Run profiles, plus runlog's own for object-store identities.
EXTRA_TERMS = {
    "ContainerImage": "https://w3id.org/ro/terms/workflow-run#ContainerImage",
    "containerImage": "https://w3id.org/ro/terms/workflow-run#containerImage",
    "registry": "https://w3id.org/ro/terms/workflow-run#registry",
    "tag": "https://w3id.org/ro/terms/workflow-run#tag",
    "sha256": "https://w3id.org/ro/terms/workflow-run#sha256",
    "etag": "https://w3id.org/runlog/terms#etag",
    "versionId": "https://w3id.org/runlog/terms#versionId",
}
HAND_BUILT_LANGUAGES = {
    "WDL": ("https://w3id.org/workflowhub/workflow-ro-crate#wdl", "Workflow Description Language",
            "https://openwdl.org/"),
}
ACTION_STATUS = {"COMPLETED": "http://schema.org/CompletedActionStatus", "FAILED": "http://schema.org/FailedActionStatus",
                 "CANCELLED": "http://schema.org/FailedActionStatus", "DELETED": "http://schema.org/FailedActionStatus",
                 "NOT_RUN": "http://schema.org/PotentialActionStatus"}
SPDX = "https://spdx.org/licenses/"


def license_id(text: str | None) -> str:
    if not text:
        raise UsageError("an RO-Crate needs a licence: give --license (an SPDX id such as CC-BY-4.0, or a URL), "
                         "or set license in .runlog.toml")
    return text if "://" in text else SPDX + text


def _language(crate, name: str | None):
    from rocrate.model import ComputerLanguage
    from rocrate.model.computerlanguage import LANG_MAP

    if not name:
        return crate.add(ComputerLanguage(crate, "#language-unknown", properties={
            "name": "unknown: the workflow's engine was not resolved when the run was submitted"}))
    key = name.lower()
    if key in LANG_MAP:
        return crate.add(LANG_MAP[key](crate))
    ident, full, url = HAND_BUILT_LANGUAGES.get(name, (f"#language-{key}", name, None))
    properties = {"name": full, "alternateName": name}
    if url:
        properties["url"] = {"@id": url}
    return crate.add(ComputerLanguage(crate, ident, properties=properties))


def build(runs: list[RunFacts], *, license: str, title: str | None = None, description: str | None = None,
          attachments: list[tuple[str, str, str | None, str]] = ()):
    """The crate object for some runs. `attachments` are (path in crate, name, conformsTo URL
    or None, text): the other formats' files, with --format all."""
    from rocrate.model import ContextEntity
    from rocrate.rocrate import ROCrate

    crate = ROCrate(gen_preview=False, version="1.1")
    crate.metadata.extra_terms.update(EXTRA_TERMS)
    root = crate.root_dataset
    root["name"] = title or f"HealthOmics runs: {', '.join(sorted({r.workflow['name'] for r in runs}))}"
    root["description"] = description or (
        f"Provenance of {len(runs)} AWS HealthOmics workflow run(s), recorded by runlog "
        f"and exported as a Workflow Run RO-Crate.")
    root["license"] = {"@id": license_id(license)}
    root["datePublished"] = published(runs)
    root["conformsTo"] = [crate.add(ContextEntity(crate, uri, properties={"@type": "CreativeWork", "name": name,
                                                                          "version": version}))
                          for uri, name, version in PROFILES]
    workflows = {}
    for run in runs:
        key = run.workflow["arn"] or f"urn:runlog:workflow-of:{run.address}"
        if key not in workflows:
            workflows[key] = _workflow(crate, run, key, main=not workflows)
    repositories = {}
    actions = []
    for run in runs:
        workflow = workflows[run.workflow["arn"] or f"urn:runlog:workflow-of:{run.address}"]
        actions.append(_action(crate, run, workflow, repositories))
    by_address = {run.address: action for run, action in zip(runs, actions)}
    for run, action in zip(runs, actions):
        if run.replay_of in by_address:
            action["isBasedOn"] = by_address[run.replay_of]
        elif run.replay_of_uuid:
            action["isBasedOn"] = {"@id": f"urn:uuid:{run.replay_of_uuid}"}
    root["mentions"] = actions
    import io

    for path, name, conforms, text in attachments:
        properties = {"name": name, "encodingFormat": _format(path)}
        if conforms:
            properties["conformsTo"] = {"@id": conforms}
        crate.add_file(source=io.StringIO(text), dest_path=path, properties=properties)
    return crate


def _format(path: str) -> str:
    return {"json": "application/json", "md": "text/markdown", "csv": "text/csv", "cff": "application/x-yaml",
            "provn": "text/provenance-notation"}.get(path.rsplit(".", 1)[-1], "application/octet-stream")


def _workflow(crate, run: RunFacts, ident: str, *, main: bool):
    """The workflow as a data entity. Its definition lives in HealthOmics, so the crate carries
    the workflow's registration (ARN, digest, engine, version, parameters) as a small JSON
    file, `workflows/<id>.json`, whose `identifier` and `sameAs` are the workflow (version) ARN."""
    import io

    from rocrate.model import ContextEntity

    wf = run.workflow
    properties = {"@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow"], "name": wf["name"],
                  "identifier": ident, "encodingFormat": "application/json"}
    if ident.startswith("arn:"):
        properties["sameAs"] = {"@id": ident}
    properties["programmingLanguage"] = _language(crate, wf.get("language"))
    if wf.get("digest"):
        properties["sha256"] = wf["digest"].split(":", 1)[-1]
    if wf.get("version"):
        properties["version"] = wf["version"]
    # one file per workflow ARN: a private and a shared workflow can have the same id
    path = "workflows/" + re.sub(r"[^A-Za-z0-9._-]+", "-", ident.split(":", 4)[-1]).strip("-") + ".json"
    parameters = []
    for name in sorted(run.parameters):
        is_file = any(i.path == name or i.path.startswith(name + "[") or i.path.startswith(name + ".")
                      for i in run.inputs)
        parameters.append(crate.add(ContextEntity(crate, f"#{path}-param-{name}", properties={
            "@type": "FormalParameter", "name": name, "additionalType": "File" if is_file else "Text",
            "conformsTo": {"@id": "https://bioschemas.org/profiles/FormalParameter/1.0-RELEASE"}})))
    output = crate.add(ContextEntity(crate, f"#{path}-output", properties={
        "@type": "FormalParameter", "name": "runOutputUri", "additionalType": "Dataset",
        "conformsTo": {"@id": "https://bioschemas.org/profiles/FormalParameter/1.0-RELEASE"}}))
    properties["input"] = parameters
    properties["output"] = [output]
    registration = {k: v for k, v in sorted(wf.items()) if v is not None}
    registration["service"] = "AWS HealthOmics"
    text = json.dumps(registration, indent=2, sort_keys=True) + "\n"
    entity = crate.add_file(source=io.StringIO(text), dest_path=path, properties=properties)
    if main:
        crate.root_dataset["mainEntity"] = entity
    return entity


def _action(crate, run: RunFacts, workflow, repositories: dict):
    from rocrate.model import ContextEntity

    objects = []
    formal = {p["name"]: p for p in workflow.get("input", []) if hasattr(p, "get")}
    for inp in run.inputs:
        properties = {"name": inp.path}
        top = inp.path.split(".")[0].split("[")[0]
        if top in formal:
            properties["exampleOfWork"] = formal[top]
        for source, target in (("etag", "etag"), ("version_id", "versionId"), ("size", "contentSize"),
                               ("md5", "etag")):
            if inp.identity.get(source) is not None:
                properties[target] = str(inp.identity[source]) if target == "contentSize" else inp.identity[source]
        if "etag" not in properties and inp.seen_etag:
            properties["etag"] = inp.seen_etag
        if inp.is_prefix:
            objects.append(crate.add_dataset(source=inp.uri, fetch_remote=False, validate_url=False,
                                             properties=properties))
        else:
            objects.append(crate.add_file(source=inp.uri, fetch_remote=False, validate_url=False,
                                          properties=properties))
    uris = {i.path for i in run.inputs}
    for path, value in run.leaves:
        if path in uris:
            continue
        top = path.split(".")[0].split("[")[0]
        properties = {"@type": "PropertyValue", "name": path, "value": value_text(value)}
        if top in formal:
            properties["exampleOfWork"] = formal[top]
        objects.append(crate.add(ContextEntity(crate, f"{run.action_id}#param-{path}", properties=properties)))
    properties = {"@type": "CreateAction", "name": f"HealthOmics run: {run.label}", "instrument": workflow,
                  "object": objects, "actionStatus": {"@id": ACTION_STATUS.get(run.status,
                                                                              "http://schema.org/ActiveActionStatus")}}
    if run.run_arn:
        properties["identifier"] = run.run_arn
    if run.start:
        properties["startTime"] = run.start
    if run.end:
        properties["endTime"] = run.end
    if run.failure_reason:
        properties["error"] = run.failure_reason
    if run.ran and run.output_uri:
        output = crate.add_dataset(source=run.output_uri.rstrip("/") + "/", fetch_remote=False, validate_url=False,
                                   properties={"name": f"output of {run.label}",
                                               "exampleOfWork": workflow["output"][0]})
        properties["result"] = [output]
    if run.caller_arn:
        properties["agent"] = crate.add(ContextEntity(crate, run.caller_arn, properties={
            "@type": "Person" if ":user/" in run.caller_arn else "Organization", "name": run.caller_arn}))
    images = []
    for image, digest in run.containers.items():
        images.append(crate.add(ContextEntity(crate, f"#container-{image}", properties={
            "@type": "ContainerImage", "name": image, "registry": image.split("/", 1)[0],
            "sha256": digest.split(":", 1)[-1]})))
    if images:
        properties["containerImage"] = images
    git = run.git
    if git.get("commit"):
        key = (git.get("remote"), git["commit"])
        if key not in repositories:
            ident = git.get("remote") or f"#repository-{git['commit'][:12]}"
            if ident in {e.id for e in crate.get_entities()}:
                ident = f"{ident}#{git['commit'][:12]}"
            repo_props = {"@type": "SoftwareSourceCode", "name": "analysis repository", "version": git["commit"]}
            if git.get("remote"):
                repo_props["codeRepository"] = git["remote"]
            repositories[key] = crate.add(ContextEntity(crate, ident, properties=repo_props))
        properties["instrument"] = [workflow, repositories[key]]
    properties["description"] = (f"runlog record {run.address}; status {run.status}"
                                 + ("" if run.ran else " (the service rejected the request: never ran)"))
    return crate.add(ContextEntity(crate, run.action_id, properties=properties))


def write(crate, target: Path) -> None:
    """Write the crate as a directory, or a zip when target ends in .zip; sorted, stable JSON."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as staging:
        crate.write(staging)
        metadata = Path(staging) / "ro-crate-metadata.json"
        document = json.loads(metadata.read_text(encoding="utf-8"))
        document["@graph"].sort(key=lambda e: (e["@id"] != "ro-crate-metadata.json", e["@id"] != "./", e["@id"]))
        metadata.write_text(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                            encoding="utf-8")
        if target.suffix == ".zip":
            _zip(Path(staging), target)
        else:
            for item in Path(staging).iterdir():
                destination = target / item.name
                if item.is_dir():
                    shutil.copytree(item, destination)
                else:
                    shutil.copy2(item, destination)


def _zip(source: Path, target: Path) -> None:
    import zipfile

    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(str(path.relative_to(source)), date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
