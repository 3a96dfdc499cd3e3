"""W3C PROV (PROV-JSON, and PROV-N for reading) through the reference `prov` package.

What is stated, and only that:
- a run that HealthOmics ran is an activity associated with HealthOmics (a software agent
  acting on behalf of the caller) following the workflow as its plan; it used each input as
  that run read it (`prov:role` the parameter) and its other parameter values;
- only a COMPLETED run generated its output, derived from its inputs;
- a request the service rejected, or an attempt abandoned before it was sent, is an activity
  of the caller that used nothing and generated nothing;
- a replay was informed by its original, and its request was derived from the original's;
- each task HealthOmics reports is an activity informed by the run, associated with
  HealthOmics under the plan of its container image;
- a run batch (StartRunBatch) is an activity of HealthOmics on behalf of the caller that used
  its request (the shared default setting) and its cohort definition (the s3UriSettings file,
  with its SHA-256, ETag and version); it generated each member's effective setting (derived
  from both), every member activity was informed by it (it used that setting), and the batch
  started each member that ran (`wasStartedBy`, the batch as starter). A member whose
  submission failed is an activity that used its setting and nothing else, and started no run."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from runlog.export.cohort import BatchFacts
from runlog.export.terms import RunFacts, input_ids, uri_id, value_text

NAMESPACES = {
    "runlog": "https://w3id.org/runlog/terms#",
    "omicsarn": "arn:aws:omics:",  # workflow and run ARNs
    "omicsuri": "omics://",  # read sets and references in HealthOmics storage
    "s3": "s3://",
    "git": "https://w3id.org/runlog/git#",
    "urn_uuid": "urn:uuid:",
    "orcid": "https://orcid.org/",
}
_PLAIN = re.compile(r"[^A-Za-z0-9_./-]")


def _qualified(uri: str) -> str:
    """A URI as a PROV qualified name under the one prefix whose namespace it starts with;
    characters PROV-N would need escaped are percent-encoded in the local part."""
    for prefix, base in (("s3", "s3://"), ("omicsuri", "omics://"), ("omicsarn", "arn:aws:omics:"),
                         ("orcid", "https://orcid.org/")):
        if uri.startswith(base):
            local = uri[len(base):]
            return f"{prefix}:" + _PLAIN.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), local)
    return "runlog:" + _PLAIN.sub("-", uri)


def build(runs: list[RunFacts], *, authors: list[dict] | None = None, batches: Sequence[BatchFacts] = (),
          fast: bool = False):
    """A prov.model.ProvDocument describing the runs (and the batches among them); with
    `fast`, the same statements as runlog.export.provtext.Records, which write the same text
    at a fraction of the cost (what the exports use)."""
    from prov.identifier import Namespace
    from prov.model import PROV, PROV_ROLE, PROV_TYPE, PROV_VALUE, ProvDocument

    from runlog.export.provtext import Records

    doc: Any = Records() if fast else ProvDocument()
    for prefix, uri in NAMESPACES.items():
        doc.add_namespace(prefix, uri)
    runlog = Namespace("runlog", NAMESPACES["runlog"])
    declared: dict[Any, Any] = {}  # identifier (or (relation, identifier)) -> its PROV record

    def once(kind, identifier, attributes):
        """Declare each entity or agent once, however many runs share it (PROV-JSON allows one)."""
        if identifier not in declared:
            declared[identifier] = getattr(doc, kind)(identifier, attributes)
        return declared[identifier]

    omics_service = None
    ids = input_ids(runs)
    activities = {}
    requests = {}
    by_identifier: dict[str, Any] = {}  # one activity per run (cohort.note_shared_runs)
    for run in runs:
        identifier = _activity_id(run)
        kind = {"submitted": "HealthOmicsRun", "rejected": "RejectedStartRun",
                "abandoned": "AbandonedStartRun"}[run.outcome]
        if run.batch_id and run.outcome == "rejected":
            kind = "FailedRunSubmission"  # the batch could not start this run setting
        attributes: dict[Any, Any] = {PROV_TYPE: runlog[kind], "runlog:status": run.status, "runlog:record": run.address}
        if run.run_arn:
            attributes["runlog:arn"] = run.run_arn
        if run.run_id:
            attributes["runlog:runId"] = run.run_id
        if run.error:
            attributes["runlog:error"] = run.error
        if run.failure_reason:
            attributes["runlog:failureReason"] = run.failure_reason
        if run.batch_id:
            attributes["runlog:batchId"] = run.batch_id
            # a run ListRunsInBatch gave to several run settings names them all (cohort.note_shared_runs)
            attributes["runlog:runSettingId"] = ", ".join(run.listed_for) or run.run_setting_id or ""
        if run.settings_note:  # observed from GetRun (started without runlog), or unknown
            attributes["runlog:settingsSource"] = run.settings_note
        if run.deleted:
            attributes["runlog:deleted"] = run.status_words
        if not run.finished:
            attributes["runlog:statusAtExport"] = f"{run.status} (not finished when exported)"
        for member, value in sorted(run.settings.items()):
            attributes[f"runlog:{member}"] = value_text(value)
        shared = by_identifier.get(identifier)
        activity = shared if shared is not None else doc.activity(
            identifier, run.start if run.ran else None, run.end if run.ran else None, attributes)
        by_identifier[identifier] = activities[run.address] = activity
        request_attributes: dict[Any, Any] = {
            PROV_TYPE: runlog["StartRunRequest"], "runlog:kind": run.kind,
            **{f"runlog:override-{_PLAIN.sub('-', k)}": value_text(v)
               for group in ("members", "parameters") for k, v in sorted((run.overrides.get(group) or {}).items())},
            **{f"runlog:acceptedDrift{i}": f"{d['kind']} {d['what']}: recorded {value_text(d['recorded'])}, "
                                          f"then {value_text(d['current'])}" for i, d in enumerate(run.drift)}}
        request = doc.entity(f"runlog:record-{run.address}", request_attributes)
        requests[run.address] = request
        if shared is not None:  # its run is declared once, with the first member that names it
            continue
        caller = None
        if run.caller_arn:
            caller = _caller(once, run.caller_arn)
            doc.wasAssociatedWith(activity, caller)
        if not run.ran:
            continue  # the service never ran it: it used and generated nothing
        doc.used(activity, request)
        wf = run.workflow
        plan_attrs = {PROV_TYPE: PROV["Plan"], "runlog:name": wf["name"]}
        for key in ("digest", "engine", "version", "engine_version"):
            if wf.get(key):
                plan_attrs[f"runlog:{key}"] = wf[key]
        plan = once("entity", _qualified(wf["arn"]) if wf.get("arn") else f"runlog:workflow-{run.address[:16]}",
                    plan_attrs)
        if omics_service is None:
            omics_service = doc.agent("runlog:aws-healthomics", {PROV_TYPE: PROV["SoftwareAgent"],
                                                                 "runlog:name": "AWS HealthOmics"})
        doc.wasAssociatedWith(activity, omics_service, plan)
        if caller is not None:
            doc.actedOnBehalfOf(omics_service, caller, activity)
        if run.git.get("commit"):
            commit = once("entity", f"git:{run.git['commit']}", {
                PROV_TYPE: runlog["GitCommit"], "runlog:remote": run.git.get("remote") or "unknown",
                "runlog:state": run.git.get("state")})
            doc.used(activity, commit)
        for inp in run.stated_inputs:
            ident = ids[(run.address, inp.path)]
            attrs = {"runlog:uri": inp.uri}
            if inp.etag:
                attrs["runlog:etag"] = inp.etag
            for algorithm, value in inp.checksums:
                attrs[f"runlog:{_PLAIN.sub('_', algorithm)}"] = value
            if inp.identity.get("version_id"):
                attrs["runlog:versionId"] = inp.identity["version_id"]
            entity = once("entity", _qualified(ident), attrs)
            if ident != uri_id(inp.uri):  # a version of the object: a specialization of the object
                general = once("entity", _qualified(uri_id(inp.uri)), {"runlog:uri": inp.uri})
                relation = ("specialization", ident)
                if relation not in declared:
                    declared[relation] = doc.specializationOf(entity, general)
            doc.used(activity, entity, None, None, {PROV_ROLE: inp.path})
        uris = {i.path for i in run.stated_inputs}
        for path, value in run.stated_leaves:
            if path in uris:
                continue
            entity = doc.entity(f"runlog:parameter-{run.address[:16]}-{_PLAIN.sub('-', path)}",
                                {PROV_TYPE: runlog["ParameterValue"], PROV_VALUE: value_text(value)})
            doc.used(activity, entity, None, None, {PROV_ROLE: path})
        if run.status == "COMPLETED" and run.output_uri:
            output = once("entity", _qualified(run.output_uri), {PROV_TYPE: PROV["Collection"]})
            doc.wasGeneratedBy(output, activity, run.end)
            for inp in run.inputs:
                doc.wasDerivedFrom(output, _qualified(ids[(run.address, inp.path)]), activity)
        _tasks(doc, run, activity, omics_service, once, runlog)
    for run in runs:
        original = requests.get(run.replay_of) if run.replay_of else None
        if run.replay_of in activities:
            doc.wasInformedBy(activities[run.address], activities[run.replay_of])
        elif run.replay_of_uuid:
            doc.wasInformedBy(activities[run.address], f"urn_uuid:{run.replay_of_uuid}")
        if run.replay_of:
            doc.wasDerivedFrom(requests[run.address], original or f"runlog:record-{run.replay_of}",
                               other_attributes={PROV_TYPE: PROV["Revision"]})
    batch_activities: dict[str, Any] = {}
    for batch in batches:
        omics_service = _batch(doc, batch, activities, requests, once, runlog, omics_service)
        batch_activities[batch.address] = activities[batch.address]
    for batch in batches:  # a replayed batch: informed by its original, its request a revision of the original's
        original = batch.replay_of.get("record")
        if not original:
            continue
        if original in batch_activities:
            doc.wasInformedBy(batch_activities[batch.address], batch_activities[original])
        elif batch.replay_of.get("run_uuid"):
            doc.wasInformedBy(batch_activities[batch.address], f"urn_uuid:{batch.replay_of['run_uuid']}")
        doc.wasDerivedFrom(requests[batch.address], requests.get(original) or f"runlog:record-{original}",
                           other_attributes={PROV_TYPE: PROV["Revision"]})
    for author in authors or []:
        person = once("agent", _qualified(author["id"]) if author.get("id") else
                      "runlog:author-" + _PLAIN.sub("-", author["name"]),
                      {PROV_TYPE: PROV["Person"], "runlog:name": author["name"]})
        for request in requests.values():
            doc.wasAttributedTo(request, person)
    return doc


def _caller(once, arn: str):
    """The caller (an IAM ARN) as an agent, declared once: a Person for an IAM user."""
    from prov.model import PROV, PROV_TYPE

    return once("agent", f"runlog:caller-{_PLAIN.sub('-', arn.rsplit(':', 1)[-1])}",
                {PROV_TYPE: PROV["Person"] if ":user/" in arn else PROV["Agent"], "runlog:arn": arn})


def _activity_id(run: RunFacts) -> str:
    """The run's activity, named as the run's action is (RunFacts.action_id: one per run):
    `urn_uuid:` its uuid, else `runlog:run-` its id, else `runlog:attempt-` its record."""
    if run.action_id.startswith("urn:uuid:"):
        return "urn_uuid:" + run.action_id.removeprefix("urn:uuid:")
    return "runlog:" + _PLAIN.sub("-", run.action_id.removeprefix("#"))


def _batch(doc, batch: BatchFacts, activities: dict, requests: dict, once, runlog, omics_service):
    """The batch activity, what it used, and how each member relates to it (module docstring)."""
    from prov.model import PROV, PROV_ROLE, PROV_TYPE

    attrs: dict[Any, Any] = {PROV_TYPE: runlog["HealthOmicsRunBatch"], "runlog:batchId": batch.batch_id,
                             "runlog:status": batch.status, "runlog:record": batch.address,
                             "runlog:runSettings": batch.declared, "runlog:runsStarted": len(batch.runs),
                             "runlog:runsNotStarted": len(batch.not_started),
                             "runlog:runSettingsNotRecorded": batch.unrecorded,
                             "runlog:runSettingsNeverSubmitted": batch.never_submitted}
    if batch.arn:
        attrs["runlog:arn"] = batch.arn
    if batch.name:
        attrs["runlog:name"] = batch.name
    if not batch.finished:
        attrs["runlog:statusAtExport"] = f"{batch.status} (not finished when exported)"
    for status, n in batch.status_counts().items():
        attrs[f"runlog:runs{status.title()}"] = n
    identifier = f"urn_uuid:{batch.uuid}" if batch.uuid else f"runlog:batch-{batch.address[:16]}"
    if batch.replay_of:
        attrs["runlog:replay"] = batch.replay_text
    activity = doc.activity(identifier, batch.start, batch.end, attrs)
    activities[batch.address] = activity
    request_attrs: dict[Any, Any] = {PROV_TYPE: runlog["StartRunBatchRequest"],
                                     "runlog:settingsSource": batch.settings_source}
    for name, value in batch.default_items():
        request_attrs[f"runlog:default-{_PLAIN.sub('-', name)}"] = value
    request = doc.entity(f"runlog:record-{batch.address}", request_attrs)
    requests[batch.address] = request
    doc.used(activity, request, None, None, {PROV_ROLE: "defaultRunSetting"})
    definition = None
    if batch.settings_file:
        pinned = batch.settings_file
        ident = batch.settings_file_id
        file_attrs: dict[Any, Any] = {PROV_TYPE: runlog["RunSettingsFile"], "runlog:uri": pinned["uri"]}
        for key, name in (("sha256", "sha256"), ("etag", "etag"), ("version_id", "versionId"), ("size", "size")):
            if pinned.get(key) is not None:
                file_attrs[f"runlog:{name}"] = pinned[key]
        definition = once("entity", _qualified(ident), file_attrs)
        doc.used(activity, definition, None, None, {PROV_ROLE: "s3UriSettings"})
    if omics_service is None:
        omics_service = doc.agent("runlog:aws-healthomics", {PROV_TYPE: PROV["SoftwareAgent"],
                                                             "runlog:name": "AWS HealthOmics"})
    doc.wasAssociatedWith(activity, omics_service)
    caller_arn = (batch.record.get("caller") or {}).get("arn")
    if caller_arn:
        caller = _caller(once, caller_arn)
        doc.wasAssociatedWith(activity, caller)
        doc.actedOnBehalfOf(omics_service, caller, activity)
    for member in batch.members:
        setting = requests[member.address]
        doc.wasGeneratedBy(setting, activity)
        doc.wasDerivedFrom(setting, request)
        if definition is not None:
            doc.wasDerivedFrom(setting, definition)
        if not member.ran:
            doc.used(activities[member.address], setting)  # the failed submission read its setting, nothing else
        doc.wasInformedBy(activities[member.address], activity)
        if member.ran:
            doc.wasStartedBy(activities[member.address], setting, activity, member.start)
    return omics_service


def _tasks(doc, run: RunFacts, activity, omics_service, once, runlog) -> None:
    """Tasks as activities informed by the run; container images as their plans."""
    from prov.model import PROV, PROV_TYPE

    for task in run.tasks:
        attrs = {PROV_TYPE: runlog["HealthOmicsTask"], "runlog:name": task.get("name") or task["taskId"],
                 "runlog:status": task.get("status") or "UNKNOWN", "runlog:taskId": task["taskId"]}
        for member in ("cpus", "memory", "gpus", "instanceType", "cacheHit", "cacheS3Uri", "failureReason"):
            if task.get(member) is not None:
                attrs[f"runlog:{member}"] = value_text(task[member])
        task_activity = doc.activity(f"runlog:task-{run.run_uuid}-{task['taskId']}", task.get("startTime"),
                                     task.get("stopTime"), attrs)
        doc.wasInformedBy(task_activity, activity)
        image = (task.get("imageDetails") or {})
        if image.get("image"):
            plan_attrs = {PROV_TYPE: PROV["Plan"], "runlog:image": image["image"]}
            if image.get("imageDigest"):
                plan_attrs["runlog:imageDigest"] = image["imageDigest"]
            plan = once("entity", "runlog:container-" + _PLAIN.sub("-", image["image"] + "@" +
                                                                   (image.get("imageDigest") or "")), plan_attrs)
            doc.wasAssociatedWith(task_activity, omics_service, plan)


def prov_json(runs: list[RunFacts], *, authors: list[dict] | None = None, batches: Sequence[BatchFacts] = ()) -> str:
    from runlog.export.provtext import prov_json_text

    return prov_json_text(build(runs, authors=authors, batches=batches, fast=True))


def prov_both(runs: list[RunFacts], *, authors: list[dict] | None = None,
              batches: Sequence[BatchFacts] = ()) -> tuple[str, str]:
    """(PROV-JSON, PROV-N) of one document, built once (a cohort's document is large)."""
    from runlog.export.escape import provn
    from runlog.export.provtext import prov_json_text, provn_text

    doc = build(runs, authors=authors, batches=batches, fast=True)
    return prov_json_text(doc), provn(provn_text(doc)) + "\n"


def prov_n(runs: list[RunFacts], *, authors: list[dict] | None = None, batches: Sequence[BatchFacts] = ()) -> str:
    from runlog.export.escape import provn
    from runlog.export.provtext import provn_text

    return provn(provn_text(build(runs, authors=authors, batches=batches, fast=True))) + "\n"
