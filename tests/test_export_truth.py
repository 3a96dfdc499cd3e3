"""What the exports state is true of each run: per-run input identities, checksums only for
real digests, PROV that reads as intended in RDF, rejected and abandoned attempts as such,
and the settings that change results. Records are written to a real ledger; exports go
through the CLI; every file is read back with the standard's own tools."""

from __future__ import annotations

import json

import pytest
import rdflib
from click.testing import CliRunner

from helpers import checker
from recordfactory import make_record
from runlog.cli import cli
from runlog.export import validate
from runlog.ledger import Ledger

BAM = "s3://lab-data/sample.bam"
READ_SET = "omics://111122223333.storage.us-west-2.amazonaws.com/1234567890/readSet/5550001/source1"
REFERENCE = "omics://111122223333.storage.us-west-2.amazonaws.com/1234567890/reference/9876543210"
WORKFLOW = {"id": "1234567", "type": "PRIVATE", "name": "cram-to-bam", "engine": "WDL",
            "digest": "sha256:" + "c" * 64, "arn": "arn:aws:omics:us-west-2:123456789012:workflow/1234567"}
PROV_NS = "http://www.w3.org/ns/prov#"


def _record(run_id, etag, version, *, rejected=False, status_extra=None, **extra):
    parameters = {"bam": BAM, "reads": READ_SET, "ref": REFERENCE, "ref_index": REFERENCE + "/index",
                  "sample_name": "NA12878"}
    record = make_record(run_id=run_id, parameters=parameters, rejected=rejected, resolution={
        "workflow": dict(WORKFLOW),
        "inputs": {BAM: {"kind": "s3-object", "etag": etag, "version_id": version, "size": 10},
                   READ_SET: {"kind": "read-set", "etag": "d" * 32, "etag_algorithm": "CRAM_MD5up",
                              "status": "ACTIVE"},
                   REFERENCE: {"kind": "reference", "md5": "e" * 32, "status": "ACTIVE"},
                   REFERENCE + "/index": {"kind": "reference", "md5": "e" * 32, "status": "ACTIVE"}}}, **extra)
    record["request"].update(status_extra or {})
    from runlog import record as rec

    record["fingerprint"] = rec.fingerprint(record)
    return record


def _observe(ledger, entry, status, **more):
    body = {"uuid": entry.record["outcome"]["response"]["uuid"], "id": entry.run_id, "status": status,
            "startTime": "2026-11-20T10:00:00Z", "stopTime": "2026-11-20T11:00:00Z", **more}
    ledger.add_observation(entry.address, "GetRun", body, observed_at="2026-11-20T11:00:01Z",
                           run_uuid=body["uuid"], status=status)


@pytest.fixture
def ledger_runs(tmp_path, monkeypatch):
    """Two runs that read different bytes under the same S3 URI (the first a multipart upload),
    the second with settings that change results and FAILED; a replay of the first with an
    override and accepted drift; a rejected attempt; an abandoned one."""
    path = tmp_path / "ledger.db"
    monkeypatch.setenv("RUNLOG_LEDGER", str(path))
    ledger = Ledger.open(path)
    with ledger:
        first, _ = ledger.add_record(_record("1000001", "0123abcd-3", "v1"))
        second, _ = ledger.add_record(_record("1000002", "89ef0123", "v2", status_extra={
            "cacheId": "555", "cacheBehavior": "CACHE_ALWAYS", "storageType": "STATIC", "storageCapacity": 1200,
            "runGroupId": "77", "retentionMode": "REMOVE", "networkingMode": "VPC"}))
        replay_record = _record("1000003", "0123abcd-3", "v1", kind="replay", lineage={
            "replay_of": {"record": first.address, "run_uuid": first.run_uuid, "run_id": first.run_id,
                          "run_arn": first.record["outcome"]["response"]["arn"]},
            "mode": "request", "overrides": {"members": {"storageCapacity": 2400},
                                             "parameters": {"sample_name": "NA12878-b"}},
            "drift": [{"kind": "git", "what": "commit", "recorded": "a" * 40, "current": "b" * 40}]})
        replay_record["kind"] = "replay"
        from runlog import record as rec

        replay_record["fingerprint"] = rec.fingerprint(replay_record)
        replay, _ = ledger.add_record(replay_record)
        rejected, _ = ledger.add_record(_record("x", "0123abcd-3", "v1", rejected=True))
        abandoned_record = _record("y", "0123abcd-3", "v1")
        abandoned_record["outcome"] = {"status": "abandoned", "reason": "not sent: Parameter validation failed"}
        abandoned_record["fingerprint"] = rec.fingerprint(abandoned_record)
        abandoned, _ = ledger.add_record(abandoned_record)
        _observe(ledger, first, "COMPLETED")
        _observe(ledger, second, "FAILED", failureReason="OUT_OF_MEMORY")
        _observe(ledger, replay, "COMPLETED")
    runner = CliRunner()

    def run(*args):
        return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return {"run": run, "tmp": tmp_path, "first": first, "second": second, "replay": replay,
            "rejected": rejected, "abandoned": abandoned,
            "all": [first.address, second.address, replay.address, rejected.address, abandoned.address]}


def _graph(crate_dir):
    return {e["@id"]: e for e in json.loads((crate_dir / "ro-crate-metadata.json").read_text())["@graph"]}


def _ids(value):
    return [v["@id"] for v in (value if isinstance(value, list) else [value])]


def test_each_run_points_at_the_input_identity_it_read(ledger_runs):
    out = ledger_runs["tmp"] / "crate"
    result = ledger_runs["run"]("export", *ledger_runs["all"], "-o", out, "--license", "CC-BY-4.0", "--validate")
    assert result.exit_code == 0, result.output
    graph = _graph(out)
    first = graph[f"urn:uuid:{ledger_runs['first'].run_uuid}"]
    second = graph[f"urn:uuid:{ledger_runs['second'].run_uuid}"]
    (bam_1,) = [i for i in _ids(first["object"]) if i.startswith(BAM)]
    (bam_2,) = [i for i in _ids(second["object"]) if i.startswith(BAM)]
    assert bam_1 == BAM + "?versionId=v1" and bam_2 == BAM + "?versionId=v2"
    assert graph[bam_1]["etag"] == "0123abcd-3" and graph[bam_2]["etag"] == "89ef0123"
    assert graph[bam_1]["sameAs"] == {"@id": BAM} == graph[bam_2]["sameAs"]
    assert graph[bam_1]["exampleOfWork"]["@id"].endswith("param-bam")
    # PROV: each activity used its own entity, specialising the plain URI
    prov_out = ledger_runs["tmp"] / "prov.json"
    assert ledger_runs["run"]("export", *ledger_runs["all"], "-f", "prov-json", "-o", prov_out).exit_code == 0
    document = json.loads(prov_out.read_text())
    used = {(u["prov:activity"], u["prov:entity"]) for u in document["used"].values()}
    assert (f"urn_uuid:{ledger_runs['first'].run_uuid}", "s3:lab-data/sample.bam%3FversionId%3Dv1") in used
    assert (f"urn_uuid:{ledger_runs['second'].run_uuid}", "s3:lab-data/sample.bam%3FversionId%3Dv2") in used
    assert len(document["specializationOf"]) == 2
    # BCO
    bco_out = ledger_runs["tmp"] / "bcos"
    result = ledger_runs["run"]("export", *ledger_runs["all"], "-f", "bco", "-o", bco_out, "--validate")
    assert result.exit_code == 0 and result.stdout.count("valid:") == 5, result.output  # one BCO per run
    inputs = {i["uri"]["uri"] for p in bco_out.iterdir() for i in json.loads(p.read_text())["io_domain"]["input_subdomain"]}
    assert {BAM + "?versionId=v1", BAM + "?versionId=v2"} <= inputs and BAM not in inputs
    methods = ledger_runs["tmp"] / "methods"
    assert ledger_runs["run"]("export", *ledger_runs["all"], "-f", "methods", "-o", methods).exit_code == 0
    import csv

    with open(methods / "data.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["parameter"] == "bam"]
    assert {(r["run_uuid"], r["identifier"], r["etag"]) for r in rows} >= {
        (ledger_runs["first"].run_uuid, BAM + "?versionId=v1", "0123abcd-3"),
        (ledger_runs["second"].run_uuid, BAM + "?versionId=v2", "89ef0123")}
    first_bco = json.loads((bco_out / "1000001.bco.json").read_text())
    assert [i["uri"]["uri"] for i in first_bco["io_domain"]["input_subdomain"] if i["uri"]["filename"] == "bam"] == \
        [BAM + "?versionId=v1"]


def test_checksums_only_for_real_digests(ledger_runs):
    out = ledger_runs["tmp"] / "crate"
    assert ledger_runs["run"]("export", ledger_runs["first"].address, "-o", out, "--license", "MIT").exit_code == 0
    graph = _graph(out)
    text = (out / "ro-crate-metadata.json").read_text()
    assert '"md5":' not in text  # no md5 property: a multipart ETag (0123abcd-3) is no MD5
    bam = graph[BAM]
    assert bam["etag"] == "0123abcd-3" and "identifier" not in bam
    (read_set_sum,) = [graph[i] for i in _ids(graph[READ_SET]["identifier"])]
    assert read_set_sum["propertyID"] == "CRAM_MD5up" and read_set_sum["value"] == "d" * 32
    assert "etag" not in graph[READ_SET]
    (reference_sum,) = [graph[i] for i in _ids(graph[REFERENCE]["identifier"])]
    assert reference_sum["propertyID"] == "md5" and reference_sum["value"] == "e" * 32
    assert "identifier" not in graph[REFERENCE + "/index"]  # the FASTA's md5 is not the index's
    workflow = graph[graph["./"]["mainEntity"]["@id"]]
    assert "sha256" not in workflow  # HealthOmics' digest is not a digest of the file in the crate
    assert graph[workflow["identifier"][1]["@id"]]["value"] == WORKFLOW["digest"]


def test_prov_reads_as_intended_in_rdf(ledger_runs):
    out = ledger_runs["tmp"] / "prov.json"
    result = ledger_runs["run"]("export", *ledger_runs["all"], "-f", "prov-json", "-o", out, "--validate")
    assert result.exit_code == 0, result.output
    assert validate.prov_json_errors(out.read_text()) == []
    import prov

    rdf = prov.read(out, format="json").serialize(format="rdf", rdf_format="nt")
    graph = rdflib.Graph().parse(data=rdf, format="nt")
    subjects = {str(s) for s in graph.subjects()} | {str(o) for o in graph.objects()
                                                      if isinstance(o, rdflib.URIRef)}
    assert READ_SET in subjects and not any(s.startswith("arn:aws:omics://") for s in subjects)
    for value in graph.objects(None, rdflib.URIRef(PROV_NS + "type")):
        assert isinstance(value, rdflib.URIRef), f"prov:type {value!r} is a literal"
    assert (None, rdflib.RDF.type, rdflib.URIRef(PROV_NS + "Plan")) in graph
    document = json.loads(out.read_text())
    rejected = f"runlog:attempt-{ledger_runs['rejected'].address[:16]}"
    abandoned = f"runlog:attempt-{ledger_runs['abandoned'].address[:16]}"
    assert not [u for u in document["used"].values() if u["prov:activity"] in (rejected, abandoned)]
    associations = [a for a in document["wasAssociatedWith"].values() if a["prov:activity"] in (rejected, abandoned)]
    assert all(a["prov:agent"] != "runlog:aws-healthomics" for a in associations)
    assert "runlog:error" in document["activity"][rejected]
    assert "abandoned" in document["activity"][abandoned]["runlog:error"]
    failed = f"urn_uuid:{ledger_runs['second'].run_uuid}"
    assert not [g for g in document["wasGeneratedBy"].values() if g["prov:activity"] == failed]
    assert not [d for d in document["wasDerivedFrom"].values() if d.get("prov:activity") == failed]
    derived = [d for d in document["wasDerivedFrom"].values()
               if d["prov:generatedEntity"] == f"runlog:record-{ledger_runs['replay'].address}"]
    assert derived and derived[0]["prov:usedEntity"] == f"runlog:record-{ledger_runs['first'].address}"
    # a replay's request is a revision of the original's (PROV-DM's prov:Revision derivation)
    assert derived[0].get("prov:type") == {"$": "prov:Revision", "type": "xsd:QName"}
    roles = {u.get("prov:role", {}).get("$") if isinstance(u.get("prov:role"), dict) else u.get("prov:role")
             for u in document["used"].values()}
    assert {"bam", "sample_name"} <= roles


def test_rejected_and_abandoned_attempts_are_failed_actions_that_read_nothing(ledger_runs):
    out = ledger_runs["tmp"] / "crate"
    rejected, abandoned = ledger_runs["rejected"], ledger_runs["abandoned"]
    result = ledger_runs["run"]("export", rejected.address, abandoned.address, "-o", out, "--license", "MIT",
                                "--validate")
    assert result.exit_code == 0, result.output
    graph = _graph(out)
    refused = graph[f"#attempt-{rejected.address[:16]}"]
    assert refused["actionStatus"]["@id"] == "http://schema.org/FailedActionStatus"
    assert refused["error"] == "ValidationException: no" and refused["object"] == []
    dropped = graph[f"#attempt-{abandoned.address[:16]}"]
    assert dropped["actionStatus"]["@id"] == "http://schema.org/FailedActionStatus"
    assert "abandoned before HealthOmics received it" in dropped["error"] and "rejected" not in dropped["description"]
    assert "result" not in refused and "result" not in dropped


def test_settings_that_change_results_are_in_every_format(ledger_runs):
    second, replay = ledger_runs["second"], ledger_runs["replay"]
    crate = ledger_runs["tmp"] / "crate"
    assert ledger_runs["run"]("export", second.address, replay.address, "-o", crate, "--license", "MIT").exit_code == 0
    graph = _graph(crate)
    settings = {graph[i]["name"]: graph[i]["value"]
                for i in _ids(graph[f"urn:uuid:{second.run_uuid}"]["additionalProperty"])}
    assert settings == {"setting cacheBehavior": "CACHE_ALWAYS", "setting cacheId": "555",
                        "setting networkingMode": "VPC", "setting retentionMode": "REMOVE",
                        "setting runGroupId": "77", "setting storageCapacity": "1200",
                        "setting storageType": "STATIC"}
    replayed = {graph[i]["name"]: graph[i]["value"]
                for i in _ids(graph[f"urn:uuid:{replay.run_uuid}"]["additionalProperty"])}
    assert replayed["replay override storageCapacity"] == "2400"
    assert replayed["replay override sample_name"] == "NA12878-b"
    assert replayed["accepted drift: git commit"] == f"recorded {'a' * 40}, found {'b' * 40}"
    bco_out = ledger_runs["tmp"] / "bcos"
    assert ledger_runs["run"]("export", second.address, replay.address, "-f", "bco", "-o", bco_out).exit_code == 0
    params = {p["param"]: p["value"] for path in bco_out.iterdir()
              for p in json.loads(path.read_text())["parametric_domain"]}
    assert params["StartRun cacheBehavior"] == "CACHE_ALWAYS" and params["StartRun networkingMode"] == "VPC"
    assert params["replay override storageCapacity"] == "2400" and "accepted drift: git commit" in params
    methods = ledger_runs["tmp"] / "methods"
    assert ledger_runs["run"]("export", ledger_runs["first"].address, second.address, replay.address, "-f", "methods",
                              "-o", methods).exit_code == 0
    paragraph = (methods / "methods.md").read_text().split("\n\n")[1]
    assert "Run 1000003 repeated run 1000001 with storageCapacity set to `2400`, sample\\_name set to " \
           "`NA12878-b`, accepting changes to git commit." in paragraph
    assert "Call caching was enabled for 1 run(s) (run cache 555, CACHE\\_ALWAYS)" in paragraph
    assert "1000002,setting,networkingMode,VPC" in (methods / "settings.csv").read_text()
    provn = ledger_runs["tmp"] / "prov.provn"
    assert ledger_runs["run"]("export", second.address, replay.address, "-f", "prov-n", "-o", provn).exit_code == 0
    text = provn.read_text()
    assert 'runlog:cacheBehavior="CACHE_ALWAYS"' in text and 'runlog:retentionMode="REMOVE"' in text
    assert "runlog:override-storageCapacity" in text and "runlog:acceptedDrift0" in text


# --- publishing metadata, checked with the standards' own tools --------------------------------

AUTHORS = ["Ada Lovelace <https://orcid.org/0000-0002-1825-0097>", "Grace Brewster Hopper"]


def test_publishing_metadata_in_every_format(ledger_runs, monkeypatch):
    import subprocess

    import yaml

    monkeypatch.setenv("RUNLOG_PUBLISHER", "Example Genomics Lab <https://example.org/lab>")
    first, replay = ledger_runs["first"], ledger_runs["replay"]
    out = ledger_runs["tmp"] / "all"
    args = [a for author in AUTHORS for a in ("--author", author)]
    result = ledger_runs["run"]("export", first.address, replay.address, "-f", "all", "-o", out,
                                "--license", "CC-BY-4.0", *args, "--validate")
    assert result.exit_code == 0, result.output
    graph = _graph(out)
    root = graph["./"]
    assert [graph[a["@id"]] for a in root["author"]] == [
        {"@id": "https://orcid.org/0000-0002-1825-0097", "@type": "Person", "name": "Ada Lovelace"},
        {"@id": "#author-2", "@type": "Person", "name": "Grace Brewster Hopper"}]
    assert graph[root["publisher"]["@id"]] == {"@id": "https://example.org/lab", "@type": "Organization",
                                               "name": "Example Genomics Lab"}
    assert graph[root["license"]["@id"]]["@type"] == "CreativeWork"
    assert graph["README.md"]["about"] == {"@id": "./"} and (out / "README.md").read_text().startswith("# ")
    assert {"@id": "https://w3id.org/workflowhub/workflow-ro-crate/1.0"} in graph["ro-crate-metadata.json"]["conformsTo"]
    for action in (graph[f"urn:uuid:{first.run_uuid}"], graph[f"urn:uuid:{replay.run_uuid}"]):
        assert isinstance(action["instrument"], dict)  # the one executed workflow
    # roc-validator at RECOMMENDED: none of the findings this export can avoid
    failures, skipped = validate.crate_report(out, ledger_runs["tmp"] / "cache", severity="RECOMMENDED")
    assert skipped == 0
    avoidable = ("license", "author", "publisher", "README", "conformsTo", "encodingFormat", "FormalParameter",
                 "additionalType", "ContainerImage")
    unknowable = ("affiliation",  # runlog is not told authors' affiliations
                  "workflow-run-crate-0.5_12.1")  # a parameter given as a path by one run, a URI by another
    assert not [f for f in failures if any(word in f for word in avoidable)
                and not any(word in f for word in unknowable)], failures
    runcrate = subprocess.run([checker("runcrate"), "report", str(out)], capture_output=True, text=True)
    assert runcrate.returncode == 0, runcrate.stderr
    assert f"action: urn:uuid:{first.run_uuid}" in runcrate.stdout
    citation = out / "methods" / "CITATION.cff"
    cff = subprocess.run([checker("cffconvert"), "--validate", "-i", str(citation)], capture_output=True, text=True)
    assert cff.returncode == 0, cff.stdout + cff.stderr
    document = yaml.safe_load(citation.read_text())
    assert document["authors"][0] == {"family-names": "Lovelace", "given-names": "Ada",
                                      "orcid": "https://orcid.org/0000-0002-1825-0097"}
    assert document["license"] == "CC-BY-4.0"
    assert {r["title"] for r in document["references"]} == {"cram-to-bam", "runlog"}
    bco = json.loads((out / "bco" / f"{first.run_id}.bco.json").read_text())
    assert {"name": "Ada Lovelace", "contribution": ["authoredBy"], "orcid": "https://orcid.org/0000-0002-1825-0097"} \
        in bco["provenance_domain"]["contributors"]
    assert validate.bco_errors(bco) == []
    assert bco["provenance_domain"]["version"] == "1.0"
    assert bco["extension_domain"][0]["extension_schema"] == \
        "https://w3id.org/biocompute/extension_domain/1.1.0/scm/scm_extension.json"
    prov_doc = json.loads((out / "prov.json").read_text())
    assert prov_doc["agent"]["orcid:0000-0002-1825-0097"]["runlog:name"] == "Ada Lovelace"


def test_an_unfinished_run_is_exported_with_a_warning(ledger_runs, tmp_path):
    from runlog.ledger import Ledger as L

    with L.open(ledger_runs["tmp"] / "ledger.db") as ledger:
        entry, _ = ledger.add_record(_record("1000009", "0123abcd-3", "v1"))
        body = {"uuid": entry.run_uuid, "id": entry.run_id, "status": "RUNNING", "startTime": "2026-11-20T10:00:00Z"}
        ledger.add_observation(entry.address, "GetRun", body, observed_at="2026-11-20T10:05:00Z",
                               run_uuid=entry.run_uuid, status="RUNNING")
    out = tmp_path / "crate"
    result = ledger_runs["run"]("export", entry.address, "-o", out, "--license", "MIT")
    assert result.exit_code == 0, result.output
    assert "runlog: warning: run 1000009 was RUNNING when exported (not finished)" in result.stderr
    action = _graph(out)[f"urn:uuid:{entry.run_uuid}"]
    assert "status RUNNING at export time" in action["description"]
    assert action["actionStatus"]["@id"] == "http://schema.org/ActiveActionStatus" and "result" not in action


def test_a_versioned_run_keeps_the_workflow_name_and_version(aws_env, ledger_path, git_repo, run_cli, tmp_path):
    parameters = {n: f"s3://lab-data/{n}" for n in ("input_cram", "ref_dict", "ref_fasta", "ref_fasta_index")}
    result = run_cli("submit", "--workflow-id", "1234567", "--workflow-version-name", "v1.1.0", "--role-arn",
                     "arn:aws:iam::111122223333:role/R", "--output-uri", "s3://out/x/", "--no-check",
                     "--parameters", json.dumps({**parameters, "sample_name": "S"}))
    assert result.exit_code == 0, result.output
    out = tmp_path / "crate"
    assert run_cli("export", "@1", "-o", out, "--license", "MIT").exit_code == 0
    graph = _graph(out)
    workflow = graph[graph["./"]["mainEntity"]["@id"]]
    assert workflow["name"] == "cram-to-bam" and workflow["version"] == "v1.1.0"
    assert workflow["identifier"][0].endswith("workflow/1234567/version/v1.1.0")
    bco_out = tmp_path / "bco.json"
    assert run_cli("export", "@1", "-f", "bco", "-o", bco_out).exit_code == 0
    assert json.loads(bco_out.read_text())["provenance_domain"]["name"] == "cram-to-bam"


def test_the_crate_reads_as_rdf_with_iri_types(ledger_runs):
    """Every term of the crate is defined: as RDF (the RO-Crate 1.1 context shipped with
    runlog, offline), each type is an absolute http(s) IRI, never a literal or a relative IRI."""
    from pathlib import Path

    import runlog

    out = ledger_runs["tmp"] / "crate"
    assert ledger_runs["run"]("export", *ledger_runs["all"], "-o", out, "--license", "MIT").exit_code == 0
    document = json.loads((out / "ro-crate-metadata.json").read_text())
    context_file = Path(runlog.__file__).parent / "schemas" / "ro-crate" / "ro-crate-1.1-context.jsonld"
    shipped = json.loads(context_file.read_text())["@context"]
    document["@context"] = [shipped if c == "https://w3id.org/ro/crate/1.1/context" else c
                            for c in (document["@context"] if isinstance(document["@context"], list)
                                      else [document["@context"]])]
    graph = rdflib.Graph().parse(data=json.dumps(document), format="json-ld", base="arcp://uuid,0/")
    types = set(graph.objects(None, rdflib.RDF.type))
    assert types and all(isinstance(t, rdflib.URIRef) and str(t).startswith(("http://", "https://")) for t in types), \
        sorted(map(str, types))
    assert rdflib.URIRef("http://schema.org/CreateAction") in types


def _task(task_id, name, status, image, **more):
    return {"taskId": task_id, "name": name, "status": status, "cpus": 4, "memory": 8, "gpus": 0,
            "instanceType": "omics.c.large", "creationTime": f"2026-11-20T10:0{task_id[-1]}:00Z",
            "startTime": f"2026-11-20T10:0{task_id[-1]}:00Z", "stopTime": f"2026-11-20T10:0{task_id[-1]}:30Z",
            "imageDetails": {"image": f"111122223333.dkr.ecr.us-west-2.amazonaws.com/{image}",
                             "imageDigest": "sha256:" + task_id[-1] * 64}, "cacheHit": False, **more}


def test_a_provenance_run_crate_down_to_the_task(ledger_runs, tmp_path):
    first, second = ledger_runs["first"], ledger_runs["second"]
    with Ledger.open(ledger_runs["tmp"] / "ledger.db") as ledger:
        ledger.add_observation(first.address, "ListRunTasks", {"run_status": "COMPLETED", "tasks": [
            _task("1000001", "CramToBam", "COMPLETED", "samtools:1.17", cacheHit=True,
                  cacheS3Uri="s3://cache/1/"),
            _task("1000002", "ValidateBam", "COMPLETED", "picard:3.1.0")]},
            observed_at="2026-11-20T11:00:02Z", run_uuid=first.run_uuid)
        ledger.add_observation(second.address, "ListRunTasks", {"run_status": "FAILED", "tasks": [
            _task("2000001", "CramToBam", "COMPLETED", "samtools:1.17"),
            _task("2000002", "ValidateBam", "FAILED", "picard:3.1.0", failureReason="OUT_OF_MEMORY")]},
            observed_at="2026-11-20T11:00:02Z", run_uuid=second.run_uuid)
    out = tmp_path / "crate"
    result = ledger_runs["run"]("export", first.address, second.address, "-o", out, "--license", "MIT",
                                "--validate", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["validation"] == [
        {"file": f"{out} (Provenance Run Crate 0.5)", "ok": True, "problems": []}]
    graph = _graph(out)
    failed = graph[f"urn:uuid:{second.run_uuid}#task-2000002"]
    assert failed["actionStatus"]["@id"] == "http://schema.org/FailedActionStatus"
    assert failed["error"] == "OUT_OF_MEMORY"
    assert graph[failed["instrument"]["@id"]] == {"@id": "#tool-ValidateBam", "@type": "SoftwareApplication",
                                                  "name": "ValidateBam"}
    # BCO: the run's tasks are its pipeline steps; the containers with their digests
    bcos = tmp_path / "bcos"
    assert ledger_runs["run"]("export", first.address, second.address, "-f", "bco", "-o", bcos,
                              "--validate").exit_code == 0
    bco = json.loads((bcos / "1000001.bco.json").read_text())
    assert [s["name"] for s in bco["description_domain"]["pipeline_steps"]] == ["CramToBam", "ValidateBam"]
    assert "result reused from the run cache" in bco["description_domain"]["pipeline_steps"][0]["description"]
    assert {p["version"] for p in bco["execution_domain"]["software_prerequisites"]} >= {"sha256:" + "1" * 64}
    # PROV: tasks are activities informed by the run, under their container as plan
    prov_out = tmp_path / "prov.json"
    assert ledger_runs["run"]("export", first.address, second.address, "-f", "prov-json", "-o", prov_out,
                              "--validate").exit_code == 0
    document = json.loads(prov_out.read_text())
    informed = {(i["prov:informed"], i["prov:informant"]) for i in document["wasInformedBy"].values()}
    assert (f"runlog:task-{second.run_uuid}-2000002", f"urn_uuid:{second.run_uuid}") in informed
    # methods: cache hits disclosed, tasks table
    methods = tmp_path / "methods"
    assert ledger_runs["run"]("export", first.address, second.address, "-f", "methods", "-o", methods).exit_code == 0
    assert ",2000002,ValidateBam,FAILED," in (methods / "tasks.csv").read_text()
