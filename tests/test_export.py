"""`runlog export`: every format from the seed runs, checked offline by each standard's own
validator or schema; negative checks; determinism; bad input."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest
from click.testing import CliRunner

import prov
from runlog.cli import cli
from runlog.emulator import Emulator
from runlog.export import validate
from runlog.export.bco import etag
from test_submit import SEED_1, SEED_2, SEED_3, SEED_4

OMICS_INPUTS = {
    "sample_name": "NA12878",
    "input_cram": "omics://123456789012.storage.us-west-2.amazonaws.com/1234567890/readSet/1234567890/source1",
    "ref_dict": "omics://123456789012.storage.us-west-2.amazonaws.com/1234567890/reference/9876543210",
    "ref_fasta": "omics://123456789012.storage.us-west-2.amazonaws.com/1234567890/reference/9876543210",
    "ref_fasta_index": "omics://123456789012.storage.us-west-2.amazonaws.com/1234567890/reference/9876543210",
}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A ledger with the four seed runs, the omics:// variant, a replay and a failed attempt,
    observed to completion through the emulator."""
    home = tmp_path_factory.mktemp("export")
    repo = home / "analysis"
    repo.mkdir()
    (repo / "workflow-inputs.json").write_text(json.dumps({
        "sample_name": "NA12878", "input_cram": "s3://omics-artifacts-01d6xmpl4e72dd32/NA12878.cram",
        "ref_dict": "s3://omics-artifacts-01d6xmpl4e72dd32/Homo_sapiens_assembly38.dict",
        "ref_fasta": "s3://omics-artifacts-01d6xmpl4e72dd32/Homo_sapiens_assembly38.fasta",
        "ref_fasta_index": "omics-artifacts-01d6xmpl4e72dd32/Homo_sapiens_assembly38.fasta.fai"}))
    with Emulator(port=0) as emu, pytest.MonkeyPatch.context() as mp:
        mp.chdir(repo)
        env = {"AWS_ENDPOINT_URL": emu.endpoint_url, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
               "AWS_DEFAULT_REGION": "us-west-2", "RUNLOG_LEDGER": str(home / "ledger.db"),
               "AWS_CONFIG_FILE": str(home / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(home / "none"),
               "XDG_CACHE_HOME": str(home / "cache")}
        for name, value in env.items():
            mp.setenv(name, value)
        runner = CliRunner()

        def run(*args):
            # the per-test isolated environment would hide this ledger: pass it explicitly
            return runner.invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)

        ids = []
        for args in (SEED_1, SEED_2, SEED_3, SEED_4):
            result = run(*args)
            assert result.exit_code == 0, result.output
            ids.append(json.loads(result.stdout)["id"])
        omics = run("submit", "--workflow-id", "1234567", "--role-arn", "arn:aws:iam::123456789012:role/R",
                    "--output-uri", "s3://out/omics/", "--parameters", json.dumps(OMICS_INPUTS))
        assert omics.exit_code == 0, omics.output
        ids.append(json.loads(omics.stdout)["id"])
        replay = run("replay", ids[2], "--allow-drift")
        assert replay.exit_code == 0, replay.output
        ids.append(json.loads(replay.stdout)["id"])
        failed = run("submit", "--workflow-id", "7206765", "--role-arn", "arn:aws:iam::1:role/R", "--output-uri",
                     "s3://b/o/", "--parameters", '{"input": "s3://b/x", "protocol": "P"}', "--run-group-id", "999")
        assert failed.exit_code == 1
        emu.advance(3600)
        assert run("refresh").exit_code == 0
        yield {"run": run, "ids": ids, "home": home, "env": env}


def test_ro_crate_of_all_seed_runs_validates_offline(seeded):
    out = seeded["home"] / "crate"
    result = seeded["run"]("export", *seeded["ids"], "-f", "ro-crate", "-o", out, "--license", "CC-BY-4.0",
                           "--validate", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["validation"]
    assert report == [{"file": f"{out} (Workflow Run Crate 0.5)", "ok": True, "problems": []}]
    graph = {e["@id"]: e for e in json.loads((out / "ro-crate-metadata.json").read_text())["@graph"]}
    root = graph["./"]
    assert {c["@id"] for c in root["conformsTo"]} == {"https://w3id.org/ro/wfrun/process/0.5",
                                                      "https://w3id.org/ro/wfrun/workflow/0.5",
                                                      "https://w3id.org/workflowhub/workflow-ro-crate/1.0"}
    actions = [graph[m["@id"]] for m in root["mentions"]]
    assert len(actions) == 6
    workflows = [e for e in graph.values() if "ComputationalWorkflow" in e["@type"]]
    assert sorted(w["name"] for w in workflows) == ["cram-to-bam", "nf-core-scrnaseq", "shared-example"]
    for action in actions:
        instrument = action["instrument"][0]["@id"] if isinstance(action["instrument"], list) \
            else action["instrument"]["@id"]
        assert instrument in {w["@id"] for w in workflows}
        assert (out / instrument).is_file()
    main = graph[root["mainEntity"]["@id"]]
    assert set(main["@type"]) == {"File", "SoftwareSourceCode", "ComputationalWorkflow"}
    assert main["identifier"][0].startswith("arn:aws:omics:") and "sha256" not in main
    digest = graph[main["identifier"][1]["@id"]]
    assert digest["propertyID"] == "AWS HealthOmics workflow digest" and digest["value"].startswith("sha256:")
    first = graph[f"urn:uuid:{json.loads(seeded['run']('show', seeded['ids'][0], '--json').stdout)['record']['outcome']['response']['uuid']}"]
    assert first["actionStatus"]["@id"] == "http://schema.org/CompletedActionStatus"
    assert first["identifier"].endswith(f"run/{seeded['ids'][0]}") and first["startTime"] and first["endTime"]
    cram = graph["s3://omics-artifacts-01d6xmpl4e72dd32/NA12878.cram"]
    assert cram["@type"] == "File" and cram["exampleOfWork"]["@id"].endswith("param-input_cram")
    replay = [a for a in actions if "isBasedOn" in a]
    assert len(replay) == 1
    read_set = graph[OMICS_INPUTS["input_cram"]]
    assert "etag" not in read_set  # a read set's checksum keeps its algorithm: it is no S3 ETag
    assert [graph[i["@id"]]["propertyID"] for i in read_set["identifier"]] == ["CRAM_MD5up"]


def test_ro_crate_validator_catches_a_missing_requirement(seeded, tmp_path):
    out = seeded["home"] / "crate-negative"
    seeded["run"]("export", seeded["ids"][0], "-o", out, "--license", "CC-BY-4.0")
    metadata = out / "ro-crate-metadata.json"
    document = json.loads(metadata.read_text())
    for entity in document["@graph"]:
        if entity["@id"] == "./":
            del entity["mainEntity"]
    metadata.write_text(json.dumps(document))
    failures, skipped = validate.crate_report(out, tmp_path / "cache")
    assert failures and skipped == 0
    assert any("mainEntity" in f for f in failures)


def test_bco_validates_and_its_etag_is_recomputable(seeded):
    out = seeded["home"] / "run.bco.json"
    result = seeded["run"]("export", seeded["ids"][0], "-f", "bco", "-o", out, "--usability", "Benchmark calls",
                           "--validate")
    assert result.exit_code == 0, result.output
    assert "valid:" in result.stdout
    bco = json.loads(out.read_text())
    assert bco["object_id"].startswith("urn:uuid:") and bco["spec_version"].endswith("2791object.json")
    assert bco["etag"] == etag(bco) and len(bco["etag"]) == 64
    assert bco["usability_domain"] == ["Benchmark calls"]
    assert {p["param"] for p in bco["parametric_domain"]} == {"sample_name", "input_cram", "ref_dict", "ref_fasta",
                                                              "ref_fasta_index", "StartRun runGroupId",
                                                              "StartRun storageCapacity"}
    assert bco["execution_domain"]["script"][0]["uri"]["uri"].startswith("arn:aws:omics:")
    assert validate.bco_errors(bco) == []
    broken = dict(bco)
    del broken["provenance_domain"]
    assert any("provenance_domain" in e for e in validate.bco_errors(broken))
    tampered = json.loads(out.read_text())
    tampered["usability_domain"] = ["something else"]
    assert any("etag" in e for e in validate.bco_errors(tampered))


def test_prov_json_validates_and_round_trips(seeded):
    out = seeded["home"] / "prov.json"
    result = seeded["run"]("export", *seeded["ids"][:3], seeded["ids"][5], "-f", "prov-json", "-o", out, "--validate")
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert validate.prov_json_errors(text) == []
    document = prov.read(out, format="json")
    assert len([r for r in document.get_records() if r.get_type().localpart == "Activity"]) == 4
    assert "wasInformedBy" in json.loads(text)
    assert validate.prov_json_errors(text.replace('"activity"', '"activity_typo"'))
    provn = seeded["home"] / "runs.provn"
    assert seeded["run"]("export", seeded["ids"][0], "-f", "prov-n", "-o", provn).exit_code == 0
    assert provn.read_text().startswith("document")


def test_methods_bundle(seeded):
    out = seeded["home"] / "methods"
    result = seeded["run"]("export", seeded["ids"][0], seeded["ids"][2], "-f", "methods", "-o", out, "--validate")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["CITATION.cff", "data.csv", "methods.md", "parameters.csv",
                                                     "software.csv"]
    methods = (out / "methods.md").read_text()
    assert "cram-to-bam" in methods and "nf-core-scrnaseq" in methods and "runlog replay" in methods
    assert "Nextflow 23.10.1" in methods and "sha256:" in methods
    assert "protocol,10XV3" in (out / "parameters.csv").read_text()
    assert "s3://omics-artifacts-01d6xmpl4e72dd32/NA12878.cram" in (out / "data.csv").read_text()
    assert "cff-version: 1.2.0" in (out / "CITATION.cff").read_text()


def test_all_formats_in_one_crate_and_exports_are_deterministic(seeded):
    first, second = seeded["home"] / "all-1", seeded["home"] / "all-2"
    for out in (first, second):
        result = seeded["run"]("export", *seeded["ids"][:4], "-f", "all", "-o", out, "--license", "CC-BY-4.0",
                               "--validate")
        assert result.exit_code == 0, result.output
        assert result.stdout.count("valid:") == 4
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert [str(p) for p in files if "/" not in str(p)] == ["README.md", "bco.json", "prov.json", "prov.provn",
                                                            "ro-crate-metadata.json"]
    for path in files:
        assert (first / path).read_bytes() == (second / path).read_bytes(), path
    graph = {e["@id"]: e for e in json.loads((first / "ro-crate-metadata.json").read_text())["@graph"]}
    assert graph["bco.json"]["conformsTo"]["@id"].endswith("2791object.json")
    assert {"prov.json", "prov.provn", "methods/methods.md", "methods/CITATION.cff"} <= set(graph)
    assert (first / "methods" / "data.csv").is_file()


def test_failed_attempt_exports_as_not_run_or_is_refused(seeded):
    out = seeded["home"] / "failed.bco.json"
    assert seeded["run"]("export", "@1", "-f", "bco", "-o", out).exit_code == 0
    bco = json.loads(out.read_text())
    assert "status NOT_RUN" in bco["description_domain"]["pipeline_steps"][0]["description"]
    (refusal,) = bco["error_domain"]["empirical_error"]["runs_that_did_not_complete"]
    assert refusal["status"] == "NOT_RUN" and refusal["error"].startswith("ResourceNotFoundException: ")
    assert bco["io_domain"] == {"input_subdomain": [], "output_subdomain": []}  # it read and wrote nothing
    refused = seeded["run"]("export", "@1", "-f", "bco", "-o", seeded["home"] / "x.json", "--runs-only")
    assert refused.exit_code == 2 and "never ran" in refused.stderr


def test_bad_input(seeded):
    run, home = seeded["run"], seeded["home"]
    assert run("export", "9999999", "-f", "bco", "-o", home / "a.json").exit_code == 2
    existing = home / "exists.json"
    existing.write_text("keep me")
    result = run("export", "@2", "-f", "bco", "-o", existing)
    assert result.exit_code == 2 and "--force" in result.stderr and existing.read_text() == "keep me"
    locked = home / "locked"
    locked.mkdir()
    os.chmod(locked, stat.S_IRUSR | stat.S_IXUSR)
    immutable = False
    if os.access(locked, os.W_OK):  # root: permissions do not stop it, the immutable attribute does
        immutable = subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode == 0
    try:
        if os.access(locked, os.W_OK) and not immutable:
            pytest.skip("cannot make a directory unwritable for this user")
        result = run("export", "@2", "-f", "bco", "-o", locked / "x.json")
        assert result.exit_code == 2 and "x.json" in result.stderr
        assert not list(locked.iterdir())
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(locked)], check=True)
        os.chmod(locked, stat.S_IRWXU)
    assert not [p for p in home.iterdir() if p.name.startswith(".")], "no staging directory is left behind"


def test_zip_crate(seeded, tmp_path):
    import zipfile

    out = seeded["home"] / "crate.zip"
    assert seeded["run"]("export", "@2", "-o", out, "--license", "MIT").exit_code == 0
    with zipfile.ZipFile(out) as archive:
        assert "ro-crate-metadata.json" in archive.namelist()
        archive.extractall(tmp_path / "unzipped")
    failures, skipped = validate.crate_report(tmp_path / "unzipped", tmp_path / "cache")
    assert failures == [] and skipped == 0


def test_export_without_a_licence_warns_and_stays_valid(seeded, tmp_path):
    out = seeded["home"] / "nolicence"
    result = seeded["run"]("export", "@2", "-o", out, "--validate")
    assert result.exit_code == 0, result.output
    assert "runlog: warning: no licence given (--license" in result.stderr
    assert "valid:" in result.stdout
    root = {e["@id"]: e for e in json.loads((out / "ro-crate-metadata.json").read_text())["@graph"]}["./"]
    assert root["license"].startswith("No licence was stated")
