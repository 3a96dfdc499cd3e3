"""Workflow Run RO-Crate (profile 0.5, RO-Crate 1.1), built with ro-crate-py."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runlog.export.cohort import BatchFacts
from runlog.export.terms import RunFacts, input_ids, licence_is_url, published, uri_id, value_text

PROCESS = ("https://w3id.org/ro/wfrun/process/0.5", "Process Run Crate", "0.5")
WORKFLOW = ("https://w3id.org/ro/wfrun/workflow/0.5", "Workflow Run Crate", "0.5")
PROVENANCE = ("https://w3id.org/ro/wfrun/provenance/0.5", "Provenance Run Crate", "0.5")
WROC = ("https://w3id.org/workflowhub/workflow-ro-crate/1.0", "Workflow RO-Crate", "1.0")
PROFILES = [PROCESS, WORKFLOW]  # a Provenance Run Crate too when every run's tasks are known
# Terms of the Workflow Run profiles, plus runlog's own for object-store identities.
EXTRA_TERMS = {
    "ContainerImage": "https://w3id.org/ro/terms/workflow-run#ContainerImage",
    "containerImage": "https://w3id.org/ro/terms/workflow-run#containerImage",
    "registry": "https://w3id.org/ro/terms/workflow-run#registry",
    "tag": "https://w3id.org/ro/terms/workflow-run#tag",
    "sha256": "https://w3id.org/ro/terms/workflow-run#sha256",
    "resourceUsage": "https://w3id.org/ro/terms/workflow-run#resourceUsage",
    "etag": "https://w3id.org/runlog/terms#etag",
    "versionId": "https://w3id.org/runlog/terms#versionId",
}
HAND_BUILT_LANGUAGES = {
    "WDL": ("https://w3id.org/workflowhub/workflow-ro-crate#wdl", "Workflow Description Language",
            "https://openwdl.org/"),
}
ACTION_STATUS = {"COMPLETED": "http://schema.org/CompletedActionStatus", "FAILED": "http://schema.org/FailedActionStatus",
                 "CANCELLED": "http://schema.org/FailedActionStatus",
                 "NOT_RUN": "http://schema.org/FailedActionStatus",
                 "ABANDONED": "http://schema.org/FailedActionStatus"}
SPDX = "https://spdx.org/licenses/"
NO_LICENCE = "No licence was stated for this metadata when it was exported; ask its authors."
DOCKER_IMAGE = "https://w3id.org/ro/terms/workflow-run#DockerImage"


def _get(crate, ident: str):
    """The crate's entity `ident`, or None. ro-crate-py's get() looks through every entity
    for a subcrate when the id is absent (seconds at a thousand runs): ask its map first."""
    return crate.get(ident) if ident in crate else None


def _agent(crate, arn: str):
    """The caller (an IAM ARN) as the agent of actions: a Person for an IAM user, else an Organization."""
    from rocrate.model import ContextEntity

    return _get(crate, arn) or crate.add(ContextEntity(crate, arn, properties={
        "@type": "Person" if ":user/" in arn else "Organization", "name": arn}))


def license_id(text: str | None) -> str | None:
    """The licence as a URL (an SPDX id becomes its spdx.org URL); None when none is given."""
    if not text:
        return None
    return text if licence_is_url(text) else SPDX + text


def profiles(runs: list[RunFacts]) -> list[tuple[str, str, str]]:
    """The run-crate profiles a crate of these runs meets."""
    ran = [r for r in runs if r.ran]
    if ran and all(r.tasks for r in ran):
        return [PROCESS, WORKFLOW, PROVENANCE]
    return list(PROFILES)


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
    properties: dict[str, Any] = {"name": full, "alternateName": name}
    if url:
        properties["url"] = {"@id": url}
    return crate.add(ComputerLanguage(crate, ident, properties=properties))


def _person(crate, person: dict, index: int, role: str, kind: str = "Person"):
    from rocrate.model import ContextEntity

    ident = person.get("id") or f"#{role}-{index}"
    found = _get(crate, ident)
    if found is not None:
        return found
    return crate.add(ContextEntity(crate, ident, properties={"@type": kind, "name": person["name"]}))


def build(runs: list[RunFacts], *, license: str | None, title: str | None = None, description: str | None = None,
          attachments: Sequence[tuple[str, str, str | None, str | None]] = (), authors: Sequence[dict] = (),
          publisher: dict | None = None, batches: Sequence[BatchFacts] = ()):
    """The crate object for some runs. `attachments` are (path in crate, name, conformsTo URL
    or None, text): the other formats' files, with --format all. Each of `batches` becomes an
    action whose result is its members' actions (runlog.export.cohort)."""
    import io

    from rocrate.model import ContextEntity
    from rocrate.rocrate import ROCrate

    crate = ROCrate(gen_preview=False, version="1.1")
    crate.metadata.extra_terms.update(EXTRA_TERMS)
    crate.metadata["conformsTo"] = [{"@id": "https://w3id.org/ro/crate/1.1"}, {"@id": WROC[0]}]
    root = crate.root_dataset
    names = ", ".join(sorted({r.workflow["name"] for r in runs}))
    root["name"] = title or f"HealthOmics runs: {names}"
    root["description"] = description or (
        f"Provenance of {len(runs)} AWS HealthOmics workflow run(s) of {names}, recorded by runlog "
        f"and exported as a Workflow Run RO-Crate."
        + "".join(f" {b.label[0].upper()}{b.label[1:]}: {b.counts_text()}." for b in batches))
    licence = license_id(license)
    if licence and license is not None:
        root["license"] = crate.add(ContextEntity(crate, licence, properties={
            "@type": "CreativeWork", "name": licence if licence_is_url(license) else license,
            "identifier": license}))
    else:  # Workflow RO-Crate requires a licence; say truthfully that none was given
        root["license"] = NO_LICENCE
    root["datePublished"] = published(runs)
    met = profiles(runs)
    root["conformsTo"] = [crate.add(ContextEntity(crate, uri, properties={"@type": "CreativeWork", "name": name,
                                                                          "version": version}))
                          for uri, name, version in met + [WROC]]
    if authors:
        root["author"] = [_person(crate, a, n, "author") for n, a in enumerate(authors, start=1)]
    if publisher:
        root["publisher"] = _person(crate, publisher, 1, "publisher", "Organization")
    ids = input_ids(runs)
    provenance = PROVENANCE in met
    workflows: dict[str, Any] = {}
    for run in runs:
        key = run.workflow["arn"] or f"urn:runlog:workflow-of:{run.address}"
        if key not in workflows:
            workflows[key] = _workflow(crate, run, key, main=not workflows, runs=runs, steps=provenance)
    repositories: dict[str, Any] = {}
    actions, organized = [], []
    made: dict[str, Any] = {}  # action id -> action: one run, one action
    for run in runs:
        if run.action_id in made:  # a run ListRunsInBatch gave to another run setting too (cohort.note_shared_runs)
            actions.append(made[run.action_id])
            continue
        workflow = workflows[run.workflow["arn"] or f"urn:runlog:workflow-of:{run.address}"]
        made[run.action_id] = _action(crate, run, workflow, repositories, ids)
        actions.append(made[run.action_id])
        if provenance and run.ran:
            organized.extend(_tasks(crate, run, workflow, actions[-1]))
    by_address = {run.address: action for run, action in zip(runs, actions, strict=True)}
    for run, action in zip(runs, actions, strict=True):
        if run.replay_of in by_address:
            action["isBasedOn"] = by_address[run.replay_of]
        elif run.replay_of_uuid:
            action["isBasedOn"] = {"@id": f"urn:uuid:{run.replay_of_uuid}"}
    cohorts = [_batch_action(crate, batch, by_address) for batch in batches]
    by_batch = {batch.address: action for batch, action in zip(batches, cohorts, strict=True)}
    for batch, action in zip(batches, cohorts, strict=True):  # a replayed batch is based on its original
        if batch.replay_of.get("record") in by_batch:
            action["isBasedOn"] = by_batch[batch.replay_of["record"]]
        elif batch.replay_of.get("run_uuid"):
            action["isBasedOn"] = {"@id": f"urn:uuid:{batch.replay_of['run_uuid']}"}
    root["mentions"] = cohorts + list(made.values()) + organized
    if repositories:
        root["isBasedOn"] = list(repositories.values())
    crate.add_file(source=io.StringIO(_readme(runs, root["name"], licence, batches)), dest_path="README.md",
                   properties={"name": "README", "encodingFormat": "text/markdown", "about": {"@id": "./"}})
    for path, name, conforms, text in attachments:
        properties: dict[str, Any] = {"name": name, "encodingFormat": _format(path)}
        if conforms:
            properties["conformsTo"] = {"@id": conforms}
        # text None: the file is already written beside the crate (a cohort's BCOs are streamed)
        crate.add_file(source=None if text is None else io.StringIO(text), dest_path=path, properties=properties)
    return crate


def _readme(runs: list[RunFacts], name: str, licence: str | None, batches: Sequence[BatchFacts] = ()) -> str:
    """README.md of the crate; every name and value from a record is Markdown-escaped."""
    from runlog.export.escape import markdown as md

    lines = [f"# {md(name)}", "",
             "An RO-Crate (Workflow Run Crate 0.5) describing AWS HealthOmics workflow runs, exported by runlog "
             "from its ledger. `ro-crate-metadata.json` holds the description; inputs and outputs on S3 or in "
             "HealthOmics storage are referenced, not included.", "",
             f"Licence of this metadata: {md(licence or 'not stated')}.", ""]
    for batch in batches:
        lines += [f"Run {md(batch.label)}, status {md(batch.status)}: {md(batch.counts_text())}. "
                  f"Its cohort definition is {md(_settings_path(batch), code=True)}; one row per run setting in "
                  "methods/samples.csv when exported with `--format all`.", ""]
    lines += ["Runs:", ""]
    for run in runs:
        lines.append(f"- {md(run.label)}: {md(run.workflow['name'])}"
                     + (f" version {md(run.workflow['version'])}" if run.workflow.get("version") else "")
                     + (f", run {md(run.run_id)}" if run.run_id else "") + f", status {md(run.status)}"
                     + ("" if run.finished else " at export time (not finished)"))
    return "\n".join(lines) + "\n"


MEDIA_TYPES = {"csv": "text/csv", "tsv": "text/tab-separated-values", "json": "application/json",
               "txt": "text/plain", "gz": "application/gzip", "zip": "application/zip", "yaml": "application/x-yaml",
               "yml": "application/x-yaml", "html": "text/html", "pdf": "application/pdf"}


def _remote_format(uri: str) -> str:
    """A referenced file's media type from its name where one is registered, else
    application/octet-stream (bytes of a format IANA has no type for: CRAM, FASTA, ...)."""
    name = uri.split("?", 1)[0].split("#", 1)[0].rsplit("/", 1)[-1]
    return MEDIA_TYPES.get(name.rsplit(".", 1)[-1].lower() if "." in name else "", "application/octet-stream")


def _format(path: str) -> str:
    return {"json": "application/json", "md": "text/markdown", "csv": "text/csv", "cff": "application/x-yaml",
            "provn": "text/provenance-notation"}.get(path.rsplit(".", 1)[-1], "application/octet-stream")


def _workflow(crate, run: RunFacts, ident: str, *, main: bool, runs: list[RunFacts], steps: bool = False):
    """The workflow as a data entity. Its definition lives in HealthOmics, so the crate carries
    the workflow's registration (ARN, HealthOmics digest, engine, version, parameters) as a
    small JSON file, `workflows/<id>.json`, whose `identifier` and `sameAs` are the workflow
    (version) ARN. The HealthOmics digest is an identifier of the definition held by the
    service, not a checksum of this file, so it is given as a PropertyValue, never `sha256`."""
    import io

    from rocrate.model import ContextEntity

    wf = run.workflow
    types = ["File", "SoftwareSourceCode", "ComputationalWorkflow"] + (["HowTo"] if steps else [])
    properties: dict[str, Any] = {"@type": types, "name": wf["name"],
                  "encodingFormat": "application/json",
                  "description": "The workflow's registration in AWS HealthOmics (ARN, digest, engine, version): "
                                 "HealthOmics holds the definition itself."}
    identifiers = [ident]
    if wf.get("digest"):
        identifiers.append(crate.add(ContextEntity(crate, f"#digest-{wf['digest'].replace(':', '-')}", properties={
            "@type": "PropertyValue", "propertyID": "AWS HealthOmics workflow digest", "value": wf["digest"]})))
    properties["identifier"] = identifiers
    if ident.startswith("arn:"):
        properties["sameAs"] = {"@id": ident}
    properties["programmingLanguage"] = _language(crate, wf.get("language"))
    if wf.get("version"):
        properties["version"] = wf["version"]
    # one file per workflow ARN: a private and a shared workflow can have the same id
    path = "workflows/" + re.sub(r"[^A-Za-z0-9._-]+", "-", ident.split(":", 4)[-1]).strip("-") + ".json"
    names = sorted({p for r in runs if (r.workflow["arn"] or f"urn:runlog:workflow-of:{r.address}") == ident
                    for p in r.parameters})
    parameters = []
    for name in names:
        is_file = any(i.path == name or i.path.startswith(name + "[") or i.path.startswith(name + ".")
                      for r in runs for i in r.inputs)
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


def _engine(crate, run: RunFacts):
    """The engine HealthOmics ran the workflow with, as a SoftwareApplication."""
    from rocrate.model import ContextEntity

    wf = run.workflow
    name = f"AWS HealthOmics {wf.get('language') or 'workflow'} engine"
    version = wf.get("engine_version")
    ident = "#engine-" + re.sub(r"[^A-Za-z0-9.]+", "-", f"{name}-{version or 'unversioned'}").lower()
    properties: dict[str, Any] = {"@type": "SoftwareApplication", "name": name, "url": {"@id": "https://aws.amazon.com/healthomics/"}}
    if version:
        properties["version"] = version
    return _get(crate, ident) or crate.add(ContextEntity(crate, ident, properties=properties))


def _container(crate, image: str, digest: str | None):
    """A ContainerImage as the Workflow Run Crate spec shows it: registry, name, tag, sha256."""
    from rocrate.model import ContextEntity

    reference = image.split("@", 1)[0]
    first, _, rest = reference.partition("/")
    registry, path = (first, rest) if rest and ("." in first or ":" in first or first == "localhost") \
        else ("docker.io", reference)
    name, _, tag = path.rpartition(":") if ":" in path.rsplit("/", 1)[-1] else (path, "", "")
    ident = "#container-" + re.sub(r"[^A-Za-z0-9._-]+", "-", image + ("@" + digest if digest else ""))
    found = _get(crate, ident)
    if found is not None:
        return found
    properties: dict[str, Any] = {"@type": "ContainerImage", "additionalType": {"@id": DOCKER_IMAGE}, "registry": registry,
                  "name": name}
    if tag:
        properties["tag"] = tag
    if digest:
        properties["sha256"] = digest.split(":", 1)[-1]
    return crate.add(ContextEntity(crate, ident, properties=properties))


def _settings_values(crate, run: RunFacts) -> list:
    from rocrate.model import ContextEntity

    out = []
    items = [(f"setting {k}", v) for k, v in sorted(run.settings.items())]
    if run.batch_id:
        items += [("batch", run.batch_id), ("runSettingId", run.run_setting_id or "")]
    if run.settings_note:  # a member of a batch started without runlog: observed, or unknown
        items.append(("settings source", run.settings_note))
    items += [(f"replay override {k}", v) for group in ("members", "parameters")
              for k, v in sorted((run.overrides.get(group) or {}).items())]
    items += [(f"accepted drift: {d['kind']} {d['what']}", f"recorded {value_text(d['recorded'])}, "
               f"found {value_text(d['current'])}") for d in run.drift]
    for n, (name, value) in enumerate(items):
        out.append(crate.add(ContextEntity(crate, f"{run.action_id}#setting-{n}", properties={
            "@type": "PropertyValue", "name": name, "value": value_text(value)})))
    return out


def _action(crate, run: RunFacts, workflow, repositories: dict, ids: dict):
    from rocrate.model import ContextEntity

    objects = []
    formal = {p["name"]: p for p in workflow.get("input", []) if hasattr(p, "get")}
    for inp in run.stated_inputs:
        ident = ids[(run.address, inp.path)]
        properties: dict[str, Any] = {"name": inp.path}
        top = inp.path.split(".")[0].split("[")[0]
        if top in formal:
            properties["exampleOfWork"] = formal[top]
        if inp.etag:
            properties["etag"] = inp.etag
        if inp.identity.get("version_id"):
            properties["versionId"] = inp.identity["version_id"]
        if inp.identity.get("size") is not None:
            properties["contentSize"] = str(inp.identity["size"])
        # a digest of the bytes, under its own algorithm (md5 of a reference, CRAM_MD5up of a read set)
        checksums = [crate.add(ContextEntity(crate, f"#checksum-{algorithm}-{value}", properties={
            "@type": "PropertyValue", "propertyID": algorithm, "name": f"{algorithm} checksum", "value": value}))
            for algorithm, value in inp.checksums]
        if checksums:
            properties["identifier"] = checksums
        if ident != uri_id(inp.uri):  # a version of the object: linked to the object's URI
            properties["sameAs"] = {"@id": uri_id(inp.uri)}
        if not inp.is_prefix:
            properties["encodingFormat"] = _remote_format(inp.uri)
        existing = _get(crate, ident)
        if existing is not None:
            objects.append(existing)
        elif inp.is_prefix:
            objects.append(crate.add_dataset(source=ident, fetch_remote=False, validate_url=False,
                                             properties=properties))
        else:
            objects.append(crate.add_file(source=ident, fetch_remote=False, validate_url=False,
                                          properties=properties))
    uris = {i.path for i in run.stated_inputs}
    for path, value in run.stated_leaves:
        if path in uris:
            continue
        top = path.split(".")[0].split("[")[0]
        properties = {"@type": "PropertyValue", "name": path, "value": value_text(value)}
        if top in formal:
            properties["exampleOfWork"] = formal[top]
        objects.append(crate.add(ContextEntity(crate, f"{run.action_id}#param-{path}", properties=properties)))
    status = {"submitted": "HealthOmics run", "rejected": "StartRun rejected",
              "abandoned": "StartRun abandoned"}[run.outcome]
    if run.batch_id and run.outcome == "rejected":
        status = f"run not started by batch {run.batch_id}"
    properties = {"@type": "CreateAction", "name": f"{status}: {run.label}", "instrument": workflow,
                  "object": objects, "actionStatus": {"@id": ACTION_STATUS.get(run.status,
                                                                              "http://schema.org/ActiveActionStatus")}}
    if not run.ran:  # it never ran (nothing was read), or whether it ran is unknown (nothing is claimed)
        properties["object"] = []
    if run.ending_unknown or run.sent_unknown:
        # how it ended is unknown (deleted unseen; abandoned while its outcome was unknown): no status is claimed
        del properties["actionStatus"]
    if run.sent_unknown or run.settings_unknown:  # nor what it read: it may have run, reading what the request named
        del properties["object"]
    if run.run_arn:
        properties["identifier"] = run.run_arn
    if run.start:
        properties["startTime"] = run.start
    if run.end:
        properties["endTime"] = run.end
    if (run.failure_reason or run.error) and not run.sent_unknown:  # (`error` is said of a failed action)
        properties["error"] = run.failure_reason or run.error
    if run.status == "COMPLETED" and run.output_uri:
        output = crate.add_dataset(source=run.output_uri.rstrip("/") + "/", fetch_remote=False, validate_url=False,
                                   properties={"name": f"output of {run.label}",
                                               "exampleOfWork": workflow["output"][0]})
        properties["result"] = [output]
    if run.caller_arn:
        properties["agent"] = _agent(crate, run.caller_arn)
    images = [_container(crate, image, digest) for image, digest in run.images()]
    if images:
        properties["containerImage"] = sorted({i.id: i for i in images}.values(), key=lambda i: i.id)
    settings = _settings_values(crate, run)
    if settings:
        properties["additionalProperty"] = settings
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
    text = {"submitted": "", "rejected": " (the service rejected the request: it never ran)",
            "abandoned": " (abandoned by the user, its outcome unknown: runlog never learned whether the service "
                         "received it)" if run.sent_unknown
            else " (abandoned before it was sent: the service never received it)"}[run.outcome]
    if run.batch_id:
        text = "" if run.ran else " (it never ran)"
        text += (f"; run setting {run.run_setting_id} of batch {run.batch_id}"
                 + (" (its submission failed: no run exists)" if not run.ran else ""))
        if run.settings_note:
            text += f"; {run.settings_note}"
    if run.workflow.get("source_run"):
        text += (f"; it duplicates run {run.workflow['source_run']} (StartRun runId): HealthOmics took the workflow "
                 "and parameters from its copy of that run")
    properties["description"] = (f"runlog record {run.address}; {run.status_words}"
                                 + ("" if run.finished else " at export time (the run had not finished)")
                                 + (f"; analysis code at commit {git['commit']}" if git.get("commit") else "")
                                 + text)
    return crate.add(ContextEntity(crate, run.action_id, properties=properties))


BATCH_STATUS = {"PROCESSED": "http://schema.org/CompletedActionStatus", "FAILED": "http://schema.org/FailedActionStatus",
                "CANCELLED": "http://schema.org/FailedActionStatus"}
RUN_BATCHES = "#aws-healthomics-run-batches"


def _settings_path(batch: BatchFacts) -> str:
    return f"batches/{re.sub(r'[^A-Za-z0-9._-]+', '-', batch.batch_id or batch.address[:16])}/run-settings.json"


def _batch_action(crate, batch: BatchFacts, by_address: dict):
    """The batch as one execution of HealthOmics' StartRunBatch (a Process Run Crate
    CreateAction): its object the cohort definition and the shared default setting, its
    result the member runs' actions (a member that failed to start is a FailedActionStatus
    action with no input and no output)."""
    import hashlib
    import io

    from rocrate.model import ContextEntity

    from runlog.export.jsontext import escape_controls

    service = _get(crate, RUN_BATCHES) or crate.add(ContextEntity(crate, RUN_BATCHES, properties={
        "@type": "SoftwareApplication", "name": "AWS HealthOmics run batches (StartRunBatch)",
        "url": {"@id": "https://docs.aws.amazon.com/omics/latest/api/API_StartRunBatch.html"}}))
    objects = []
    pinned = batch.settings_file
    text = escape_controls(json.dumps(batch.run_settings, indent=1, sort_keys=True, ensure_ascii=False)) + "\n"
    recorded: dict[str, Any] = {"name": f"cohort definition of {batch.label} ({batch.settings_source})",
                                "encodingFormat": "application/json",
                                "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                                "contentSize": str(len(text.encode("utf-8")))}
    if pinned:
        ident = batch.settings_file_id
        properties: dict[str, Any] = {"name": f"cohort definition of {batch.label} (s3UriSettings)",
                                      "encodingFormat": "application/json",
                                      "description": "The run-settings file as StartRunBatch read it, pinned when the "
                                                     "batch was submitted; runlog stored its content in the record."}
        if ident != pinned["uri"]:
            properties["sameAs"] = {"@id": pinned["uri"]}
        for key, prop in (("sha256", "sha256"), ("etag", "etag"), ("version_id", "versionId"),
                          ("last_modified", "dateModified")):
            if pinned.get(key):
                properties[prop] = pinned[key]
        if pinned.get("size") is not None:
            properties["contentSize"] = str(pinned["size"])
        remote = _get(crate, ident) or crate.add_file(source=ident, fetch_remote=False, validate_url=False,
                                                    properties=properties)
        objects.append(remote)
        recorded["description"] = ("The run settings of the file beside, as runlog recorded them, written out "
                                   "again as JSON: the same settings, not the same bytes (the original's SHA-256 "
                                   "is on the S3 object).")
        recorded["isBasedOn"] = remote
    else:
        recorded["description"] = "The batch's inlineSettings exactly as sent (JSON)."
    objects.append(crate.add_file(source=io.StringIO(text), dest_path=_settings_path(batch), properties=recorded))
    for n, (name, value) in enumerate(batch.default_items()):
        shared = _get(crate, value) if value.startswith(("s3://", "omics://")) else None
        objects.append(shared if shared is not None else crate.add(ContextEntity(
            crate, f"{batch.action_id}#default-{n}", properties={
                "@type": "PropertyValue", "name": f"default {name}", "value": value})))
    counts = [("run settings", batch.declared), ("runs started", len(batch.runs)),
              ("runs that failed to start", len(batch.not_started)),
              ("run settings not yet recorded", batch.unrecorded),
              ("run settings never submitted", batch.never_submitted)]
    counts += [(f"runs {status}", n) for status, n in batch.status_counts().items()]
    properties = {"@type": "CreateAction", "name": f"AWS HealthOmics run {batch.label}", "instrument": service,
                  "object": objects, "result": list({by_address[m.address].id: by_address[m.address] for m in batch.members}.values()),
                  "actionStatus": {"@id": BATCH_STATUS.get(batch.status, "http://schema.org/ActiveActionStatus")},
                  "startTime": batch.start or batch.created,
                  "description": (f"runlog record {batch.address}; batch status {batch.status}"
                                  + ("" if batch.finished else " at export time (not finished)")
                                  + f"; {batch.counts_text()}"
                                  + (f"; it {batch.replay_text}" if batch.replay_of else "")),
                  "additionalProperty": [crate.add(ContextEntity(crate, f"{batch.action_id}#count-{n}", properties={
                      "@type": "PropertyValue", "name": name, "value": str(value)}))
                      for n, (name, value) in enumerate(counts)]}
    if batch.arn:
        properties["identifier"] = batch.arn
    if batch.end:
        properties["endTime"] = batch.end
    if batch.failure_reason and BATCH_STATUS.get(batch.status) == "http://schema.org/FailedActionStatus":
        properties["error"] = batch.failure_reason
    caller = (batch.record.get("caller") or {}).get("arn")
    if caller:
        properties["agent"] = _agent(crate, caller)
    return crate.add(ContextEntity(crate, batch.action_id, properties=properties))


TASK_STATUS = {"COMPLETED": "http://schema.org/CompletedActionStatus", "FAILED": "http://schema.org/FailedActionStatus",
               "CANCELLED": "http://schema.org/FailedActionStatus"}
# HealthOmics reports cpus and gpus as counts and memory in GiB (QUDT units)
RESOURCES = (("cpus", "cpus", "http://qudt.org/vocab/unit/NUM"), ("memory", "memory", "http://qudt.org/vocab/unit/GibiBYTE"),
             ("gpus", "gpus", "http://qudt.org/vocab/unit/NUM"))


def _tasks(crate, run: RunFacts, workflow, run_action):
    """Provenance Run Crate: each task HealthOmics ran as a tool run (CreateAction), its step
    (HowToStep, with the tool as a SoftwareApplication in the workflow's hasPart), a
    ControlAction linking them, and one OrganizeAction whose instrument is the engine."""
    from rocrate.model import ContextEntity

    controls, task_actions = [], []
    for task in sorted(run.tasks, key=lambda t: (t.get("creationTime") or "", t["taskId"])):
        name = task.get("name") or task["taskId"]
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", name)
        tool = _get(crate, f"#tool-{base}") or crate.add(ContextEntity(crate, f"#tool-{base}", properties={
            "@type": "SoftwareApplication", "name": name}))
        step = _get(crate, f"#step-{base}")
        if step is None:
            step = crate.add(ContextEntity(crate, f"#step-{base}", properties={
                "@type": "HowToStep", "name": name, "workExample": tool}))
            workflow.append_to("hasPart", tool)
            workflow.append_to("step", step)
        ident = f"{run.action_id}#task-{task['taskId']}"
        properties: dict[str, Any] = {"@type": "CreateAction", "name": f"task {name} of run {run.run_id}", "instrument": tool,
                      "identifier": task["taskId"],
                      "actionStatus": {"@id": TASK_STATUS.get(task.get("status") or "", "http://schema.org/ActiveActionStatus")}}
        for key, member in (("startTime", "startTime"), ("endTime", "stopTime")):
            if task.get(member):
                properties[key] = task[member]
        if task.get("failureReason"):
            properties["error"] = task["failureReason"]
        properties["description"] = (f"HealthOmics task {task['taskId']} of run {run.run_id}, status "
                                     f"{task.get('status')}" + (", served from the run cache" if task.get("cacheHit")
                                                                else ""))
        if run_action.get("agent"):
            properties["agent"] = run_action["agent"]
        image = task.get("imageDetails") or {}
        if image.get("image"):
            properties["containerImage"] = _container(crate, image["image"], image.get("imageDigest"))
        usage = []
        for member, prop, unit in RESOURCES:
            if task.get(member) is not None:
                pv: dict[str, Any] = {"@type": "PropertyValue", "name": member, "propertyID": prop,
                      "value": str(task[member])}
                if unit:
                    pv["unitCode"] = {"@id": unit}
                usage.append(crate.add(ContextEntity(crate, f"{ident}-{member}", properties=pv)))
        if usage:
            properties["resourceUsage"] = usage
        extra = []
        if task.get("instanceType"):
            extra.append(("instanceType", task["instanceType"]))
        if task.get("cacheHit") is not None:
            extra.append(("cacheHit", "true" if task["cacheHit"] else "false"))
        if task.get("cacheS3Uri"):
            extra.append(("cacheS3Uri", task["cacheS3Uri"]))
        if extra:
            properties["additionalProperty"] = [crate.add(ContextEntity(crate, f"{ident}-{k}", properties={
                "@type": "PropertyValue", "name": k, "value": v})) for k, v in extra]
        action = crate.add(ContextEntity(crate, ident, properties=properties))
        task_actions.append(action)
        controls.append(crate.add(ContextEntity(crate, f"{ident}-control", properties={
            "@type": "ControlAction", "name": f"orchestrate {name}", "instrument": step, "object": action})))
    organize = crate.add(ContextEntity(crate, f"{run.action_id}#organize", properties={
        "@type": "OrganizeAction", "name": f"AWS HealthOmics orchestration of run {run.run_id}",
        "instrument": _engine(crate, run), "object": controls, "result": run_action}))
    return [organize] + task_actions


def write(crate, target: Path) -> None:
    """Write the crate as a directory (which may already hold files the crate describes), or a
    zip when target ends in .zip; sorted, stable JSON.

    The metadata is generated once and written once (ro-crate-py's own writer dumps it with
    the json module's pretty printer, which a cohort's graph of tens of megabytes made the
    slowest step), and the files the crate carries (README.md, workflows/, batches/, the
    other formats' text) are written from their text."""
    import tempfile
    from io import StringIO
    from urllib.parse import unquote

    from runlog.export.jsontext import pretty

    document = crate.metadata.generate()
    document["@graph"].sort(key=lambda e: (e["@id"] != "ro-crate-metadata.json", e["@id"] != "./", e["@id"]))
    files = {"ro-crate-metadata.json": pretty(document) + "\n"}
    del document
    for entity in crate.data_entities:
        source = getattr(entity, "source", None)
        if isinstance(source, StringIO):
            files[unquote(entity.id)] = source.getvalue()

    def put(base: Path) -> None:
        for name, text in files.items():
            path = base / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")

    if target.suffix != ".zip":
        put(target)
        return
    with tempfile.TemporaryDirectory() as staging:
        put(Path(staging))
        _zip(Path(staging), target)


def _zip(source: Path, target: Path) -> None:
    import zipfile

    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(str(path.relative_to(source)), date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
