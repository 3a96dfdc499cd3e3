"""W3C PROV (PROV-JSON, and PROV-N for reading) through the reference `prov` package."""

from __future__ import annotations

from runlog.export.terms import RunFacts, value_text

NAMESPACES = {
    "runlog": "https://w3id.org/runlog/terms#",
    "omics": "arn:aws:omics:",
    "s3": "s3://",
    "git": "https://w3id.org/runlog/git#",
}


def _qualified(uri: str) -> str:
    """Identifiers as PROV qualified names: s3:// and arn:aws:omics: URIs get prefixes."""
    for prefix, base in (("s3", "s3://"), ("omics", "arn:aws:omics:")):
        if uri.startswith(base):
            return f"{prefix}:{uri[len(base):]}"
    return uri


def build(runs: list[RunFacts]):
    """A prov.model.ProvDocument describing the runs."""
    from prov.identifier import Namespace
    from prov.model import PROV_TYPE, ProvDocument

    doc = ProvDocument()
    for prefix, uri in NAMESPACES.items():
        doc.add_namespace(prefix, uri)
    doc.add_namespace("urn_uuid", "urn:uuid:")
    runlog = Namespace("runlog", NAMESPACES["runlog"])
    omics_service = doc.agent("runlog:aws-healthomics", {PROV_TYPE: "prov:SoftwareAgent",
                                                         "runlog:name": "AWS HealthOmics"})
    declared: dict[str, object] = {}

    def once(kind, identifier, attributes):
        """Declare each entity or agent once, however many runs share it (PROV-JSON allows one)."""
        if identifier not in declared:
            declared[identifier] = getattr(doc, kind)(identifier, attributes)
        return declared[identifier]

    activities = {}
    for run in runs:
        identifier = f"urn_uuid:{run.run_uuid}" if run.run_uuid else f"runlog:attempt-{run.address[:16]}"
        attributes = {PROV_TYPE: runlog["HealthOmicsRun"], "runlog:status": run.status,
                      "runlog:record": run.address}
        if run.run_arn:
            attributes["runlog:arn"] = run.run_arn
        if run.run_id:
            attributes["runlog:runId"] = run.run_id
        activity = doc.activity(identifier, run.start, run.end if run.ran else None, attributes)
        activities[run.address] = activity
        wf = run.workflow
        plan_attrs = {PROV_TYPE: "prov:Plan", "runlog:name": wf["name"]}
        for key in ("digest", "engine", "version", "engine_version"):
            if wf.get(key):
                plan_attrs[f"runlog:{key}"] = wf[key]
        plan = once("entity", _qualified(wf["arn"]) if wf.get("arn") else f"runlog:workflow-{run.address[:16]}",
                    plan_attrs)
        doc.wasAssociatedWith(activity, omics_service, plan)
        if run.caller_arn:
            person = once("agent", f"runlog:caller-{run.caller_arn.rsplit(':', 1)[-1].replace('/', '-')}",
                          {PROV_TYPE: "prov:Person", "runlog:arn": run.caller_arn})
            doc.wasAssociatedWith(activity, person)
        if run.git.get("commit"):
            commit = once("entity", f"git:{run.git['commit']}", {
                PROV_TYPE: runlog["GitCommit"], "runlog:remote": run.git.get("remote") or "unknown",
                "runlog:state": run.git.get("state")})
            doc.used(activity, commit)
        for inp in run.inputs:
            attrs = {"runlog:parameter": inp.path}
            if inp.checksum:
                attrs["runlog:etag"] = inp.checksum
            if inp.identity.get("version_id"):
                attrs["runlog:versionId"] = inp.identity["version_id"]
            doc.used(activity, once("entity", _qualified(inp.uri), attrs))
        uris = {i.path for i in run.inputs}
        parameters = {path: value_text(value) for path, value in run.leaves if path not in uris}
        if parameters:
            entity = doc.entity(f"runlog:parameters-{run.address[:16]}",
                                {PROV_TYPE: runlog["Parameters"],
                                 **{f"runlog:param_{i}": f"{k}={v}" for i, (k, v) in enumerate(parameters.items())}})
            doc.used(activity, entity)
        if run.ran and run.output_uri:
            output = once("entity", _qualified(run.output_uri), {PROV_TYPE: "prov:Collection"})
            doc.wasGeneratedBy(output, activity, run.end)
            for inp in run.inputs:
                doc.wasDerivedFrom(output, _qualified(inp.uri), activity)
    for run in runs:
        if run.replay_of in activities:
            doc.wasInformedBy(activities[run.address], activities[run.replay_of])
        elif run.replay_of_uuid:
            doc.wasInformedBy(activities[run.address], f"urn_uuid:{run.replay_of_uuid}")
    return doc


def prov_json(runs: list[RunFacts]) -> str:
    import json

    return json.dumps(json.loads(build(runs).serialize(format="json")), indent=2, sort_keys=True) + "\n"


def prov_n(runs: list[RunFacts]) -> str:
    return build(runs).get_provn() + "\n"
