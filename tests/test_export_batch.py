"""`runlog export BATCH`: a cohort exported from a real batch (runlog submit-batch against the
emulator, with the cohort's settings file in moto's S3, members recorded by refresh)."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import rdflib

from helpers import ROLE, checker
from runlog.export import validate
from runlog.ledger import Ledger

BUCKET = "cohort-bucket"
SAMPLES = ["NA12878", "NA12891", "NA12892", "HG002"]
DEFAULT = {"workflowId": "1234567", "roleArn": ROLE, "outputUri": f"s3://{BUCKET}/out/",
           "parameters": {"ref_dict": f"s3://{BUCKET}/ref/genome.dict",
                          "ref_fasta": f"s3://{BUCKET}/ref/genome.fasta",
                          "ref_fasta_index": f"s3://{BUCKET}/ref/genome.fasta.fai"},
           "runTags": {"project": "cohort"}, "cacheId": "1234567", "cacheBehavior": "CACHE_ON_FAILURE"}


def setting(sample: str) -> dict:
    return {"runSettingId": sample, "name": f"align-{sample}",
            "parameters": {"sample_name": sample, "input_cram": f"s3://{BUCKET}/crams/{sample}.cram"}}


@pytest.fixture
def cohort(s3_server, s3_emulator, ledger_path, git_repo, run_cli):
    """A batch of four samples from an s3UriSettings file: HG002 fails to start
    (ServiceQuotaExceeded), NA12892 fails while running (OUT_OF_MEMORY), two complete."""
    s3_server.create_bucket(Bucket=BUCKET)
    for name in ("genome.dict", "genome.fasta", "genome.fasta.fai"):
        s3_server.put_object(Bucket=BUCKET, Key=f"ref/{name}", Body=name.encode())
    for sample in SAMPLES:
        s3_server.put_object(Bucket=BUCKET, Key=f"crams/{sample}.cram", Body=sample.encode())
    body = json.dumps([setting(s) for s in SAMPLES]).encode()
    s3_server.put_object(Bucket=BUCKET, Key="cohort/settings.json", Body=body)
    s3_emulator.batch_rate = 100
    s3_emulator.batch_fault("start", reason="ServiceQuotaExceeded", message="too many runs", run_setting_ids=["HG002"])
    s3_emulator.batch_fault("run", reason="OUT_OF_MEMORY", run_setting_ids=["NA12892"])
    started = run_cli("submit-batch", "--batch-name", "cohort-1", "--default-run-setting", json.dumps(DEFAULT),
                      "--batch-run-settings", json.dumps({"s3UriSettings": f"s3://{BUCKET}/cohort/settings.json"}))
    assert started.exit_code == 0, started.output
    batch_id = json.loads(started.stdout)["id"]
    s3_emulator.advance(200)
    refreshed = run_cli("refresh", batch_id)
    assert refreshed.exit_code == 0, refreshed.output
    with Ledger.open(ledger_path, create=False) as ledger:
        entries = [e for e in ledger.entries() if e.kind == "member"]
    etags = {f"crams/{s}.cram": s3_server.head_object(Bucket=BUCKET, Key=f"crams/{s}.cram")["ETag"].strip('"')
             for s in SAMPLES}
    return {"batch_id": batch_id, "members": {e.record["batch"]["run_setting_id"]: e.record for e in entries},
            "addresses": {e.record["batch"]["run_setting_id"]: e.address for e in entries}, "body": body,
            "etags": etags}


SCHEMA = "http://schema.org/"
PROV = "http://www.w3.org/ns/prov#"


def export_all(run_cli, batch_id, out: Path, *more):
    result = run_cli("export", batch_id, "-f", "all", "-o", out, "--license", "CC-BY-4.0", *more)
    assert result.exit_code == 0, result.output
    return result


def crate_graph(out: Path) -> tuple[dict, rdflib.Graph]:
    """The crate as a reader sees it: its @graph by @id, and as RDF (JSON-LD parsed by rdflib
    with the RO-Crate 1.1 context shipped with runlog, offline)."""
    import runlog

    document = json.loads((out / "ro-crate-metadata.json").read_text())
    context = Path(runlog.__file__).parent / "schemas" / "ro-crate" / "ro-crate-1.1-context.jsonld"
    # ../shared beside the project root, where developers and CI have it
    shared = Path(__file__).resolve().parents[2] / "shared" / "standards" / "ro-crate" / "ro-crate-1.1-context.jsonld"
    if shared.is_file():  # the copy runlog ships is the standard's
        assert json.loads(shared.read_text()) == json.loads(context.read_text())
    shipped = json.loads(context.read_text())["@context"]
    rdf_doc = dict(document)
    rdf_doc["@context"] = [shipped if c == validate.RO_CRATE_CONTEXT else c for c in document["@context"]]
    graph = rdflib.Graph().parse(data=json.dumps(rdf_doc), format="json-ld", base="arcp://uuid,0/")
    return {e["@id"]: e for e in document["@graph"]}, graph


def ids(value) -> list[str]:
    return [v["@id"] for v in (value if isinstance(value, list) else [value])]


def test_the_crate_shows_the_batch_as_an_action_over_its_members(cohort, run_cli, tmp_path):
    out = tmp_path / "cohort"
    export_all(run_cli, cohort["batch_id"], out)
    entities, graph = crate_graph(out)
    members = cohort["members"]
    (batch,) = [e for e in entities.values() if isinstance(e.get("identifier"), str)
                and e["identifier"].endswith(f":runBatch/{cohort['batch_id']}")]
    assert batch["@type"] == "CreateAction"
    assert entities[batch["instrument"]["@id"]]["@type"] == "SoftwareApplication"
    assert batch["actionStatus"]["@id"] == SCHEMA + "CompletedActionStatus"  # the batch was PROCESSED
    # its result: one action per run setting, the three that started by their run's uuid
    started = {f"urn:uuid:{m['outcome']['response']['uuid']}" for m in members.values()
               if m["outcome"]["status"] == "submitted"}
    assert len(started) == 3 and set(ids(batch["result"])) >= started and len(ids(batch["result"])) == 4
    (failed_id,) = set(ids(batch["result"])) - started
    failed = entities[failed_id]
    assert failed["actionStatus"]["@id"] == SCHEMA + "FailedActionStatus"
    assert "ServiceQuotaExceeded" in failed["error"] and failed["object"] == [] and "result" not in failed
    assert "HG002" in failed["description"] and "no run exists" in failed["description"]
    assert "result" not in entities[f"urn:uuid:{members['NA12892']['outcome']['response']['uuid']}"]
    # the cohort definition: the S3 object with the SHA-256 of the bytes StartRunBatch read ...
    objects = ids(batch["object"])
    remote = entities[f"s3://{BUCKET}/cohort/settings.json"]
    assert remote["@id"] in objects and remote["sha256"] == hashlib.sha256(cohort["body"]).hexdigest()
    assert remote["etag"] and remote["contentSize"] == str(len(cohort["body"]))
    # ... and its recorded content inside the crate, with the digest of what was written
    copy = next(entities[i] for i in objects if i.startswith("batches/"))
    written = (out / copy["@id"]).read_bytes()
    assert copy["sha256"] == hashlib.sha256(written).hexdigest() and copy["isBasedOn"]["@id"] == remote["@id"]
    assert json.loads(written) == json.loads(cohort["body"])
    # the shared default: the reference files the members read, and its other settings
    assert {f"s3://{BUCKET}/ref/genome.fasta", f"s3://{BUCKET}/ref/genome.dict"} <= set(objects)
    defaults = {entities[i]["name"]: entities[i]["value"] for i in objects if "#default-" in i}
    assert defaults["default cacheId"] == "1234567" and defaults["default cacheBehavior"] == "CACHE_ON_FAILURE"
    counts = {entities[i]["name"]: entities[i]["value"] for i in ids(batch["additionalProperty"])}
    assert counts == {"run settings": "4", "runs started": "3", "runs that failed to start": "1",
                      "run settings not yet recorded": "0", "run settings never submitted": "0",
                      "runs COMPLETED": "2", "runs FAILED": "1"}
    # each run read its own CRAM, with the identity pinned when the batch was submitted
    na12878 = entities[f"urn:uuid:{members['NA12878']['outcome']['response']['uuid']}"]
    cram = entities[f"s3://{BUCKET}/crams/NA12878.cram"]
    assert cram["@id"] in ids(na12878["object"]) and len(cram["etag"]) == 32
    assert batch["@id"] in ids(entities["./"]["mentions"])
    # the same, read as RDF
    action = rdflib.URIRef(batch["@id"])
    assert (action, rdflib.RDF.type, rdflib.URIRef(SCHEMA + "CreateAction")) in graph
    results = set(graph.objects(action, rdflib.URIRef(SCHEMA + "result")))
    assert {str(r) for r in results} >= started and len(results) == 4
    assert (None, rdflib.URIRef(SCHEMA + "object"), rdflib.URIRef(remote["@id"])) in graph


def test_the_crate_passes_roc_validator_and_runcrate(cohort, run_cli, tmp_path):
    out = tmp_path / "cohort"
    result = export_all(run_cli, cohort["batch_id"], out, "--validate")
    assert "INVALID" not in result.stdout and "not checked" not in result.stdout, result.stdout
    assert f"valid: {out} (Workflow Run Crate 0.5)" in result.stdout
    # the process-run-crate shapes, which the batch's action (an execution of StartRunBatch) meets
    with __import__("tempfile").TemporaryDirectory() as cache:
        report = validate.crate_report(out, Path(cache) / "http-cache", profile="process-run-crate-0.5")
    assert report == ([], 0)
    runcrate = subprocess.run([checker("runcrate"), "report", str(out)], capture_output=True, text=True)
    assert runcrate.returncode == 0, runcrate.stderr
    for member in cohort["members"].values():
        if member["outcome"]["status"] == "submitted":
            assert f"action: urn:uuid:{member['outcome']['response']['uuid']}" in runcrate.stdout


def test_one_bco_per_run_that_started(cohort, run_cli, tmp_path):
    out = tmp_path / "cohort"
    export_all(run_cli, cohort["batch_id"], out)
    started = {name: m["outcome"]["response"]["id"] for name, m in cohort["members"].items()
               if m["outcome"]["status"] == "submitted"}
    files = sorted((out / "bco").glob("*.bco.json"))
    assert sorted(p.name for p in files) == sorted(f"{run_id}.bco.json" for run_id in started.values())
    assert not (out / "bco.json").exists()  # no BCO for the batch, none for HG002 (it never ran)
    for path in files:
        bco = json.loads(path.read_text())
        assert validate.bco_errors(bco) == [], path
        params = {p["param"]: p["value"] for p in bco["parametric_domain"]}
        setting_id = params["runSettingId"]
        assert started[setting_id] == path.name.split(".")[0]
        assert params["StartRunBatch batch"].endswith(f":runBatch/{cohort['batch_id']}")
        assert params["sample_name"] == setting_id
        inputs = {i["uri"]["uri"] for i in bco["io_domain"]["input_subdomain"]}
        assert f"s3://{BUCKET}/crams/{setting_id}.cram" in inputs and len(inputs) == 4
        assert (setting_id == "NA12892") == ("error_domain" in bco)
    alone = run_cli("export", cohort["batch_id"], "-f", "bco", "-o", tmp_path / "bcos", "--validate")
    assert alone.exit_code == 0 and alone.stdout.count("valid: ") == 3, alone.output


def test_prov_relates_the_batch_to_its_member_runs(cohort, run_cli, tmp_path):
    import prov

    out = tmp_path / "cohort"
    export_all(run_cli, cohort["batch_id"], out)
    text = (out / "prov.json").read_text()
    assert validate.prov_json_errors(text) == []
    document = prov.read(out / "prov.json", format="json")
    assert document.get_provn().startswith("document")  # read back and written as PROV-N
    graph = rdflib.Graph().parse(data=document.serialize(format="rdf", rdf_format="nt"), format="nt")
    members = cohort["members"]
    batches = set(graph.subjects(rdflib.RDF.type, rdflib.URIRef("https://w3id.org/runlog/terms#HealthOmicsRunBatch")))
    assert len(batches) == 1
    (batch,) = batches
    informed = set(graph.subjects(rdflib.URIRef(PROV + "wasInformedBy"), batch))
    started = {rdflib.URIRef(f"urn:uuid:{m['outcome']['response']['uuid']}") for m in members.values()
               if m["outcome"]["status"] == "submitted"}
    assert started < informed and len(informed) == 4
    # the batch started the runs that ran (a qualified prov:Start whose starter is the batch); HG002 never started
    starts = {run for run, start in graph.subject_objects(rdflib.URIRef(PROV + "qualifiedStart"))
              if (start, rdflib.URIRef(PROV + "hadActivity"), batch) in graph}
    assert starts == started
    data = json.loads(text)
    (failed,) = [k for k, a in data["activity"].items() if "FailedRunSubmission" in json.dumps(a)]
    assert data["activity"][failed]["runlog:runSettingId"] == "HG002"
    assert not [g for g in data["wasGeneratedBy"].values() if g["prov:activity"] == failed]
    used = {u["prov:entity"] for u in data["used"].values() if u["prov:activity"] == failed}
    assert used == {f"runlog:record-{a}" for a in [cohort["addresses"]["HG002"]]}  # its setting, no input
    settings = [e for e in data["entity"].values() if "RunSettingsFile" in json.dumps(e)]
    assert len(settings) == 1 and settings[0]["runlog:sha256"] == hashlib.sha256(cohort["body"]).hexdigest()
    provn = (out / "prov.provn").read_text()
    assert "wasStartedBy(" in provn and provn.count("wasInformedBy(") >= 4


def test_methods_paragraph_and_per_sample_table(cohort, run_cli, tmp_path):
    out = tmp_path / "cohort"
    export_all(run_cli, cohort["batch_id"], out)
    methods = (out / "methods" / "methods.md").read_text()
    paragraph = methods.split("\n\n")[1]
    assert f"(batch {cohort['batch_id']})" in paragraph and "s3://cohort-bucket/cohort/settings.json" in paragraph
    assert hashlib.sha256(cohort["body"]).hexdigest() in paragraph
    assert "Of its 4 run setting(s), 3 started as runs (2 COMPLETED, 1 FAILED)" in paragraph
    assert "OUT\\_OF\\_MEMORY (1)" in paragraph and "1 failed to start and never ran (ServiceQuotaExceeded: 1)" in paragraph
    assert "## align-" not in methods  # a row each in samples.csv, not a section each
    rows = list(csv.DictReader((out / "methods" / "samples.csv").open()))
    assert [r["run_setting_id"] for r in rows] == [r["run_setting_id"] for r in rows if r] and len(rows) == 4
    by_id = {r["run_setting_id"]: r for r in rows}
    assert set(by_id) == set(SAMPLES)
    hg002 = by_id["HG002"]
    assert (hg002["submission"], hg002["run_id"], hg002["run_uuid"], hg002["input_identities"]) == \
        ("FAILED", "", "", "")
    assert hg002["status"] == "never started" and "ServiceQuotaExceeded" in hg002["failure"]
    na12878 = by_id["NA12878"]
    member = cohort["members"]["NA12878"]
    assert na12878["run_id"] == member["outcome"]["response"]["id"] and na12878["status"] == "COMPLETED"
    assert json.loads(na12878["parameters"]) == member["request"]["parameters"]
    etag = cohort["etags"]["crams/NA12878.cram"]
    assert f"input_cram=s3://cohort-bucket/crams/NA12878.cram (S3 ETag {etag})" in na12878["input_identities"]
    assert by_id["NA12892"]["failure"] == "OUT_OF_MEMORY"
    crate = json.loads((out / "ro-crate-metadata.json").read_text())
    assert any(e["@id"] == "methods/samples.csv" for e in crate["@graph"])


def _inline_batch(run_cli, emulator, settings: list[dict], *, name: str = "cohort-2") -> str:
    default = {k: v for k, v in DEFAULT.items() if k not in ("cacheId", "cacheBehavior")}
    started = run_cli("submit-batch", "--batch-name", name, "--default-run-setting", json.dumps(default),
                      "--batch-run-settings", json.dumps({"inlineSettings": settings}),
                      "--endpoint-url", emulator.endpoint_url)
    assert started.exit_code == 0, started.output
    return json.loads(started.stdout)["id"]


def test_a_batch_exported_before_it_ends_counts_only_what_is_recorded(aws_env, ledger_path, git_repo, run_cli,
                                                                      tmp_path):
    """One member recorded of three: the counts say two are not recorded yet, no output is
    claimed, one warning line for the batch (not one per run), and everything still validates."""
    aws_env.batch_rate = 1  # one run submitted a clock second, from 11 s on
    batch_id = _inline_batch(run_cli, aws_env, [setting(s) for s in ("A1", "A2", "A3")])
    aws_env.advance(11.5)
    assert run_cli("refresh", batch_id).exit_code == 0
    with Ledger.open(ledger_path, create=False) as ledger:
        recorded = [e for e in ledger.entries() if e.kind == "member"]
    assert len(recorded) == 1
    out = tmp_path / "early"
    result = run_cli("export", batch_id, "-f", "all", "-o", out, "--license", "CC-BY-4.0", "--validate")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("runlog: warning:")]
    assert len(warnings) == 1 and f"batch {batch_id}" in warnings[0] and "2 run setting(s) not yet recorded" in \
        warnings[0] and f"runlog refresh {batch_id}" in warnings[0]
    assert "INVALID" not in result.stdout
    entities, _ = crate_graph(out)
    (batch,) = [e for e in entities.values() if isinstance(e.get("identifier"), str) and ":runBatch/" in e["identifier"]]
    assert batch["actionStatus"]["@id"] == SCHEMA + "ActiveActionStatus" and "endTime" not in batch
    assert len(ids(batch["result"])) == 1
    counts = {entities[i]["name"]: entities[i]["value"] for i in ids(batch["additionalProperty"])}
    assert counts["run settings"] == "3" and counts["run settings not yet recorded"] == "2"
    assert not any("result" in e for e in entities.values() if e.get("@type") == "CreateAction" and e is not batch)
    paragraph = (out / "methods" / "methods.md").read_text().split("\n\n")[1]
    assert "Of its 3 run setting(s), 2 had not been recorded when this was written, 1 started as runs" in paragraph
    assert "counts and statuses are as at export time" in paragraph
    rows = list(csv.DictReader((out / "methods" / "samples.csv").open()))
    assert [r["run_setting_id"] for r in rows] == ["A1", ""] and rows[1]["submission"] == \
        "2 run setting(s) not yet recorded"
    assert rows[0]["run_output_uri"] == ""  # not finished: no output claimed
    # the inline settings are the cohort's definition, in the crate as sent
    (copy,) = [e for e in entities.values() if e["@id"].startswith("batches/")]
    assert json.loads((out / copy["@id"]).read_text()) == [setting(s) for s in ("A1", "A2", "A3")]
    assert "isBasedOn" not in copy


def test_names_from_the_batch_stay_text_in_methods_and_tables(aws_env, ledger_path, git_repo, run_cli, tmp_path):
    aws_env.batch_rate = 100
    formula = '=HYPERLINK("http://evil.example","x")'
    name = "*cohort* <b>x</b> [link](http://evil.example)"
    batch_id = _inline_batch(run_cli, aws_env, [setting("S1"), {**setting("S2"), "runSettingId": formula}], name=name)
    aws_env.advance(200)
    assert run_cli("refresh", batch_id).exit_code == 0
    out = tmp_path / "hostile"
    export_all(run_cli, batch_id, out)
    methods = (out / "methods" / "methods.md").read_text()
    assert "<b>" not in methods and "[link](" not in methods and "\\*cohort\\*" in methods
    assert "&lt;b&gt;" in methods
    readme = (out / "README.md").read_text()
    assert "<b>" not in readme and "[link](" not in readme and "\\*cohort\\*" in readme
    rows = list(csv.DictReader((out / "methods" / "samples.csv").open()))
    assert sorted(r["run_setting_id"] for r in rows) == sorted(["S1", "'" + formula])
    assert all(not r["run_setting_id"].startswith("=") for r in rows)


def test_the_python_api_exports_a_batch_as_the_cli_does(cohort, ledger_path, run_cli, tmp_path):
    import runlog

    with runlog.Runlog(ledger_path) as rl:
        done = rl.export(cohort["batch_id"], format="all", path=tmp_path / "api", license="CC-BY-4.0")
    assert done.warnings == []
    export_all(run_cli, cohort["batch_id"], tmp_path / "cli")
    for name in ("ro-crate-metadata.json", "prov.json", "methods/samples.csv", "methods/methods.md"):
        assert (tmp_path / "api" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name


def test_a_replayed_batch_is_based_on_its_original(cohort, s3_emulator, run_cli, tmp_path):
    """`runlog replay B --only failed` starts a new batch; exported together, the new batch's
    action is based on the original's, and in PROV it is informed by it, its request a revision."""
    again = run_cli("replay", cohort["batch_id"], "--only", "failed")
    assert again.exit_code == 0, again.output
    new_id = json.loads(again.stdout)["id"]
    s3_emulator.advance(200)
    assert run_cli("refresh", new_id).exit_code == 0
    out = tmp_path / "both"
    result = run_cli("export", cohort["batch_id"], new_id, "-f", "all", "-o", out, "--license", "CC-BY-4.0",
                     "--validate")
    assert result.exit_code == 0 and "INVALID" not in result.stdout, result.output
    entities, _ = crate_graph(out)
    batches = {e["identifier"].rsplit("/", 1)[-1]: e for e in entities.values()
               if isinstance(e.get("identifier"), str) and ":runBatch/" in e["identifier"]}
    assert set(batches) == {cohort["batch_id"], new_id}
    assert batches[new_id]["isBasedOn"]["@id"] == batches[cohort["batch_id"]]["@id"]
    assert "isBasedOn" not in batches[cohort["batch_id"]]
    description = batches[new_id]["description"]
    assert f"repeats batch {cohort['batch_id']} with only run settings " in description
    assert "HG002" in description.split("repeats")[1] and "NA12892" in description.split("repeats")[1]
    assert len(ids(batches[new_id]["result"])) == 2
    data = json.loads((out / "prov.json").read_text())
    activity = {a["runlog:batchId"]: k for k, a in data["activity"].items() if "runlog:batchId" in a
                and "HealthOmicsRunBatch" in json.dumps(a)}
    assert {"prov:informed": activity[new_id], "prov:informant": activity[cohort["batch_id"]]} in [
        {k: v for k, v in i.items() if k in ("prov:informed", "prov:informant")} for i in data["wasInformedBy"].values()]
    paragraphs = (out / "methods" / "methods.md").read_text().split("\n\n")[1]
    assert f"This batch repeats batch {cohort['batch_id']} with only run settings " in paragraphs
    rows = list(csv.DictReader((out / "methods" / "samples.csv").open()))
    assert sorted(r["run_setting_id"] for r in rows if r["batch_id"] == new_id) == ["HG002", "NA12892"]


# -- at scale: the fast writers write what the libraries would have written -----------------------

AUTHOR = {"name": "Ada Lovelace", "id": "https://orcid.org/0000-0002-1825-0097"}


def _cohort_facts(ledger_path, *refs):
    from runlog.export.cohort import collect_export

    with Ledger.open(ledger_path, create=False) as ledger:
        return collect_export(ledger, list(refs))


def _assert_prov_text_is_the_prov_packages(ledger_path, *refs):
    """runlog's PROV-N and PROV-JSON writers give the prov package's own text for the same
    statements, whether made as the prov package's document or as runlog's plain records."""
    from runlog.export.prov import build
    from runlog.export.provtext import prov_json_text, provn_text

    runs, batches = _cohort_facts(ledger_path, *refs)
    doc = build(runs, authors=[AUTHOR], batches=batches)  # the prov package's document
    expected_json = json.dumps(json.loads(doc.serialize(format="json")), indent=2, sort_keys=True) + "\n"
    expected_provn = doc.get_provn()
    assert prov_json_text(doc) == expected_json
    assert provn_text(doc) == expected_provn
    fast = build(runs, authors=[AUTHOR], batches=batches, fast=True)  # runlog's plain records, what exports use
    assert prov_json_text(fast) == expected_json
    assert provn_text(fast) == expected_provn
    assert "wasStartedBy(" in expected_provn and "runlog:HealthOmicsRunBatch" in expected_provn


def test_prov_text_of_a_cohort_is_the_prov_packages_own(cohort, ledger_path):
    _assert_prov_text_is_the_prov_packages(ledger_path, cohort["batch_id"])


def test_prov_text_with_hostile_names_is_the_prov_packages_own(aws_env, ledger_path, git_repo, run_cli):
    aws_env.batch_rate = 100
    odd = {**setting("S2"), "runSettingId": "a'b\"c(d)=[e];"}
    odd["parameters"] = {**odd["parameters"], "sample_name": 'two\nlines, "quoted" \'x\' \\ é 😀 %zz'}
    batch_id = _inline_batch(run_cli, aws_env, [setting("S1"), odd], name='quote " and \\ é 😀 %41 -x.')
    aws_env.advance(200)
    assert run_cli("refresh", batch_id).exit_code == 0
    _assert_prov_text_is_the_prov_packages(ledger_path, batch_id)


def test_the_crate_is_written_as_ro_crate_py_writes_it(cohort, ledger_path, tmp_path):
    """runlog writes the crate's metadata and files itself (once, fast): the same files, byte
    for byte, as ro-crate-py's writer followed by runlog's sorting of the graph."""
    from runlog.export import rocrate

    runs, batches = _cohort_facts(ledger_path, cohort["batch_id"])
    crate = rocrate.build(runs, license="CC-BY-4.0", batches=batches, authors=[AUTHOR],
                          attachments=[("methods/samples.csv", "Per-sample table", None, "a,b\n1,2\n")])
    ours = tmp_path / "ours"
    ours.mkdir()
    rocrate.write(crate, ours)
    theirs = tmp_path / "theirs"
    crate.write(theirs)
    metadata = theirs / "ro-crate-metadata.json"
    document = json.loads(metadata.read_text(encoding="utf-8"))
    document["@graph"].sort(key=lambda e: (e["@id"] != "ro-crate-metadata.json", e["@id"] != "./", e["@id"]))
    metadata.write_text(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    files = sorted(str(p.relative_to(theirs)) for p in theirs.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(ours)) for p in ours.rglob("*") if p.is_file())
    assert {"README.md", "methods/samples.csv", "ro-crate-metadata.json"} <= set(files)
    assert any(f.startswith("batches/") for f in files) and any(f.startswith("workflows/") for f in files)
    for name in files:
        assert (ours / name).read_bytes() == (theirs / name).read_bytes(), name
    # and as a zip: the same entries
    import zipfile

    rocrate.write(crate, tmp_path / "crate.zip")
    with zipfile.ZipFile(tmp_path / "crate.zip") as archive:
        assert sorted(archive.namelist()) == files
        assert archive.read("ro-crate-metadata.json") == (ours / "ro-crate-metadata.json").read_bytes()


def test_all_written_by_two_processes_is_the_same_as_by_one(cohort, ledger_path, run_cli, run_proc, tmp_path):
    """`-f all` builds PROV in a forked child beside the rest (a real subprocess forks; the
    in-process CLI, with the emulator's threads running, does not): the same bytes either way."""
    export_all(run_cli, cohort["batch_id"], tmp_path / "inline")
    for name, env in (("forked", {}), ("no-fork", {"RUNLOG_NO_FORK": "1"})):
        done = run_proc("export", cohort["batch_id"], "-f", "all", "-o", tmp_path / name, "--license", "CC-BY-4.0",
                        env=env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"wrote {sum(1 for p in (tmp_path / 'inline').rglob('*') if p.is_file())} file")
    files = sorted(p.relative_to(tmp_path / "inline") for p in (tmp_path / "inline").rglob("*") if p.is_file())
    assert Path("prov.json") in files and Path("prov.provn") in files and len([f for f in files if f.parts[0] == "bco"]) == 3
    for name in ("forked", "no-fork"):
        assert sorted(p.relative_to(tmp_path / name) for p in (tmp_path / name).rglob("*") if p.is_file()) == files
        for f in files:
            assert (tmp_path / name / f).read_bytes() == (tmp_path / "inline" / f).read_bytes(), (name, f)
    assert not list(tmp_path.glob(".forked.*")) and not list(tmp_path.glob(".no-fork.*"))  # no staging left


def test_a_cohort_none_of_whose_runs_started_has_no_bco(aws_env, ledger_path, git_repo, run_cli, tmp_path):
    """Every submission failed: `-f bco` writes an empty directory (no execution, no BCO) and
    `-f all` an export whose crate lists no BCO; the failures are in the crate and samples.csv."""
    aws_env.batch_rate = 100
    aws_env.batch_fault("start", reason="ServiceQuotaExceeded", message="too many runs")
    batch_id = _inline_batch(run_cli, aws_env, [setting("S1"), setting("S2")])
    aws_env.advance(200)
    assert run_cli("refresh", batch_id).exit_code == 0
    result = run_cli("export", batch_id, "-f", "bco", "-o", tmp_path / "bcos", "--license", "CC-BY-4.0")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "bcos").is_dir() and list((tmp_path / "bcos").iterdir()) == []
    out = tmp_path / "all"
    export_all(run_cli, batch_id, out)
    assert not (out / "bco").exists()
    entities, _ = crate_graph(out)
    assert not [i for i in entities if i.startswith("bco/")]
    rows = list(csv.DictReader((out / "methods" / "samples.csv").open()))
    assert [r["submission"] for r in rows] == ["FAILED", "FAILED"]


def test_an_input_not_found_at_submission_is_said_so_not_called_unrecorded(aws_env, ledger_path, git_repo, run_cli,
                                                                           tmp_path):
    """The emulator is no S3: each input's identity is recorded as an error. The per-sample
    table names that error; "identity not recorded" would say runlog never looked."""
    aws_env.batch_rate = 100
    batch_id = _inline_batch(run_cli, aws_env, [setting("S1")])
    aws_env.advance(200)
    assert run_cli("refresh", batch_id).exit_code == 0
    with Ledger.open(ledger_path, create=False) as ledger:
        (batch,) = [e for e in ledger.entries() if e.kind == "batch"]
        record = ledger.get(batch.address).record
    failed = {uri: identity["error"]["code"] for uri, identity in record["resolution"]["inputs"].items()
              if "error" in identity}
    assert failed  # the references: their HEADs reach no S3
    uri, code = sorted(failed.items())[0]
    out = tmp_path / "methods"
    assert run_cli("export", batch_id, "-f", "methods", "-o", out).exit_code == 0
    (row,) = list(csv.DictReader((out / "samples.csv").open()))
    assert f"{uri} (not resolved at submission ({code}))" in row["input_identities"], row["input_identities"]
    assert "identity not recorded" not in row["input_identities"]
