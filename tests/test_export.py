"""`runlog export`: every format from the seed runs, checked offline by each standard's own
validator or schema; negative checks; determinism; bad input."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import prov
import pytest
from click.testing import CliRunner

from helpers import SEED_1, SEED_2, SEED_3, SEED_4
from runlog.cli import cli
from runlog.emulator import Emulator
from runlog.export import validate
from runlog.export.bco import etag

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
    # every run's tasks are known (refresh recorded them): a Provenance Run Crate, checked as one
    assert report == [{"file": f"{out} (Provenance Run Crate 0.5)", "ok": True, "problems": []}]
    graph = {e["@id"]: e for e in json.loads((out / "ro-crate-metadata.json").read_text())["@graph"]}
    root = graph["./"]
    assert {c["@id"] for c in root["conformsTo"]} == {"https://w3id.org/ro/wfrun/process/0.5",
                                                      "https://w3id.org/ro/wfrun/workflow/0.5",
                                                      "https://w3id.org/ro/wfrun/provenance/0.5",
                                                      "https://w3id.org/workflowhub/workflow-ro-crate/1.0"}
    actions = [graph[m["@id"]] for m in root["mentions"]
               if graph[m["@id"]]["@type"] == "CreateAction" and "#task-" not in m["@id"]]
    assert len(actions) == 6
    # down to the task: tool runs, their steps, containers, resources, orchestration by the engine
    organize = [graph[m["@id"]] for m in root["mentions"] if graph[m["@id"]]["@type"] == "OrganizeAction"]
    assert len(organize) == 6  # one per run
    engines = {graph[o["instrument"]["@id"]]["name"] for o in organize}
    assert engines == {"AWS HealthOmics WDL engine", "AWS HealthOmics Nextflow engine"}
    assert graph[next(o for o in organize if "Nextflow" in graph[o["instrument"]["@id"]]["name"])["instrument"]["@id"]][
        "version"] == "23.10.1"
    controls = [graph[c["@id"]] for o in organize for c in o["object"]]
    tasks = [graph[c["object"]["@id"]] for c in controls]
    assert all(graph[c["instrument"]["@id"]]["@type"] == "HowToStep" for c in controls)
    task = next(t for t in tasks if t["name"].startswith("task STAR_ALIGN"))
    image = graph[task["containerImage"]["@id"]]
    assert image["additionalType"]["@id"] == "https://w3id.org/ro/terms/workflow-run#DockerImage"
    assert image["registry"] == "111122223333.dkr.ecr.us-west-2.amazonaws.com" and image["name"] == "star"
    assert image["tag"] == "2.7.10b" and len(image["sha256"]) == 64
    usage = {graph[u["@id"]]["propertyID"]: graph[u["@id"]] for u in task["resourceUsage"]}
    assert usage["cpus"]["value"] == "16" and usage["memory"]["unitCode"]["@id"] == "http://qudt.org/vocab/unit/GibiBYTE"
    cache_hits = [t for t in tasks if any(graph[p["@id"]]["name"] == "cacheHit" and graph[p["@id"]]["value"] == "true"
                                          for p in t.get("additionalProperty", []))]
    assert cache_hits  # SEED_3 ran with CACHE_ALWAYS
    scrnaseq = next(w for w in graph.values() if w.get("name") == "nf-core-scrnaseq" and "HowTo" in w["@type"])
    assert {graph[t["@id"]]["name"] for t in scrnaseq["hasPart"]} == {"FASTQC", "STAR_ALIGN", "MULTIQC"}
    workflows = [e for e in graph.values() if "ComputationalWorkflow" in e["@type"]]
    assert sorted(w["name"] for w in workflows) == ["cram-to-bam", "nf-core-scrnaseq", "shared-example"]
    for action in actions:
        instrument = action["instrument"]["@id"]  # the one executed workflow (runcrate reads no list)
        assert instrument in {w["@id"] for w in workflows}
        assert (out / instrument).is_file()
    main = graph[root["mainEntity"]["@id"]]
    assert set(main["@type"]) == {"File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"}
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
    activities = [r for r in document.get_records() if r.get_type().localpart == "Activity"]
    assert len([a for a in activities if "runlog:HealthOmicsRun" in map(str, a.get_asserted_types())]) == 4
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
                                                     "settings.csv", "software.csv", "tasks.csv"]
    methods = (out / "methods.md").read_text()
    paragraph = methods.split("\n\n")[1]  # the one paragraph for the paper, before the per-run detail
    assert "The nf-core-scrnaseq workflow, AWS HealthOmics workflow 7206765 with definition digest" in paragraph
    assert "was run with Nextflow 23.10.1 on AWS HealthOmics in us-west-2: 1 run(s) (1 COMPLETED" in paragraph
    assert "Its 3 task(s) ran in 3 container image(s)" in paragraph
    assert "Call caching was enabled for 1 run(s) (run cache 1234567, CACHE\\_ALWAYS): 1 of 3 task(s) reused " \
           "cached results." in paragraph
    assert ",setting,cacheBehavior,CACHE_ALWAYS" in (out / "settings.csv").read_text()
    tasks_csv = (out / "tasks.csv").read_text()
    assert ",FASTQC,COMPLETED," in tasks_csv and ",true," in tasks_csv and "sha256:" in tasks_csv
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
        assert result.stdout.count("valid:") == 7  # the crate, one BCO per run, PROV-JSON, CITATION.cff
        assert "INVALID" not in result.stdout
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert [str(p) for p in files if "/" not in str(p)] == ["README.md", "prov.json", "prov.provn",
                                                            "ro-crate-metadata.json"]
    assert sorted(p.name for p in (first / "bco").iterdir()) == [f"{i}.bco.json" for i in sorted(seeded["ids"][:4])]
    for path in files:
        assert (first / path).read_bytes() == (second / path).read_bytes(), path
    graph = {e["@id"]: e for e in json.loads((first / "ro-crate-metadata.json").read_text())["@graph"]}
    assert graph[f"bco/{seeded['ids'][0]}.bco.json"]["conformsTo"]["@id"].endswith("2791object.json")
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


@pytest.mark.parametrize("licence", ["https://x\x1b[2J", "https://x[", "https://", "ftp://x/licence",
                                     "https://example.org/a b", "CC BY 4.0", "MIT\n", "https://x:port/"])
def test_a_licence_that_is_no_spdx_id_or_web_url_is_one_line_exit_2(seeded, licence):
    out = seeded["home"] / "badlicence"
    for fmt in ("ro-crate", "bco", "methods"):
        result = seeded["run"]("export", "@2", "-f", fmt, "-o", out, "--license", licence)
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "--license" in lines[0] and "SPDX" in lines[0], result.stderr
        assert "\x1b" not in result.stderr and not out.exists()


@pytest.mark.parametrize("licence", ["CC-BY-4.0", "LicenseRef-internal.1", "https://example.org/licence?v=2#x",
                                     "http://[::1]:8080/licence"])
def test_spdx_ids_and_web_urls_are_taken_as_licences(seeded, tmp_path, licence):
    out = tmp_path / "crate"
    assert seeded["run"]("export", "@2", "-o", out, "--license", licence).exit_code == 0
    root = {e["@id"]: e for e in json.loads((out / "ro-crate-metadata.json").read_text())["@graph"]}["./"]
    assert root["license"]["@id"] == (licence if "://" in licence else "https://spdx.org/licenses/" + licence)


@pytest.mark.parametrize("author", ["A <https://x[>", "A <javascript:alert(1)>", "A <https://orcid.org/\x1b[2J>"])
def test_an_author_whose_id_is_no_web_url_is_one_line_exit_2(seeded, author):
    result = seeded["run"]("export", "@2", "-o", seeded["home"] / "badauthor", "--author", author)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "is not a URL" in result.stderr


def test_export_without_a_licence_warns_and_stays_valid(seeded, tmp_path):
    out = seeded["home"] / "nolicence"
    result = seeded["run"]("export", "@2", "-o", out, "--validate")
    assert result.exit_code == 0, result.output
    assert "runlog: warning: no licence given (--license" in result.stderr
    assert "valid:" in result.stdout
    root = {e["@id"]: e for e in json.loads((out / "ro-crate-metadata.json").read_text())["@graph"]}["./"]
    assert root["license"].startswith("No licence was stated")


# --- what comes from records stays text; the target is never followed (docs/export.md) -------

HOSTILE_NAME = "<script>alert(1)</script> [x](javascript:alert(1)) *b* #"
HOSTILE_PARAMETERS = {
    "note": "a\n\n# Heading\n\n<img src=x onerror=alert(1)>\n- item",
    "ticks": "a``b`",
    "formula": '=HYPERLINK("http://evil.example","x")',
    "at": "@SUM(A1:A2)",
    "plus": "+1+1",
    "minus": "-2+3",
    "negative": -5,
    "tab": "\t=1",
    "cr": "\r=1",
    "nul": "a\u0000b\u001b[2J\u202egnp.exe",
}


@pytest.fixture
def hostile(aws_env, ledger_path, git_repo, run_cli):
    result = run_cli("submit", "--workflow-id", "7206765", "--role-arn", "arn:aws:iam::123456789012:role/R",
                     "--output-uri", "s3://out/x/", "--name", HOSTILE_NAME, "--no-check", "--parameters",
                     json.dumps({"input": "s3://bucket/in.csv", "protocol": HOSTILE_PARAMETERS}))
    assert result.exit_code == 0, result.output
    return run_cli


def test_methods_markdown_keeps_record_text_as_text(hostile, tmp_path):
    from markdown_it import MarkdownIt

    out = tmp_path / "methods"
    result = hostile("export", "@1", "-f", "methods", "-o", out, "--title", 'T "q"\n\u0000x')
    assert result.exit_code == 0, result.output
    text = (out / "methods.md").read_text(encoding="utf-8")
    parser = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    tokens = parser.parse(text)
    headings = [(tok.tag, tokens[i + 1].content) for i, tok in enumerate(tokens) if tok.type == "heading_open"]
    assert [tag for tag, _ in headings] == ["h1", "h2"] and headings[0][1] == "Methods"  # no heading injected
    (h2,) = [tokens[i + 1] for i, tok in enumerate(tokens) if tok.tag == "h2" and tok.type == "heading_open"]
    assert [child.type for child in h2.children] == ["text"] * len(h2.children)  # no HTML, link or emphasis
    assert "".join(child.content for child in h2.children) == HOSTILE_NAME
    html = parser.render(text)
    assert "<script" not in html and "<img" not in html and "<a " not in html and "<em>" not in html
    codes = [child.content for tok in tokens if tok.type == "inline" for child in tok.children or []
             if child.type == "code_inline"]
    assert "a\\n\\n# Heading\\n\\n<img src=x onerror=alert(1)>\\n- item" in codes
    assert "a``b`" in codes and "a\\x00b\\x1b[2J\\u202egnp.exe" in codes
    assert not any(ch in text for ch in "\x00\x1b\u202e\r")
    import yaml

    assert yaml.safe_load((out / "CITATION.cff").read_text(encoding="utf-8"))["title"] == 'T "q"\n\u0000x'


def test_csv_cells_cannot_be_formulas_or_control_characters(hostile, tmp_path):
    import csv

    out = tmp_path / "methods"
    assert hostile("export", "@1", "-f", "methods", "-o", out).exit_code == 0
    raw = (out / "parameters.csv").read_bytes()
    assert b"\x00" not in raw and b"\x1b" not in raw and b"\r" not in raw
    with open(out / "parameters.csv", newline="", encoding="utf-8") as fh:
        values = {row["parameter"].removeprefix("protocol."): row["value"] for row in csv.DictReader(fh)}
    assert values["formula"] == "'" + HOSTILE_PARAMETERS["formula"]
    assert values["at"] == "'@SUM(A1:A2)" and values["plus"] == "'+1+1" and values["minus"] == "'-2+3"
    assert values["negative"] == "-5"  # a plain number is no formula
    assert values["tab"] == "'\\t=1" and values["cr"] == "'\\r=1"
    assert values["nul"] == "a\\x00b\\x1b[2J\\u202egnp.exe"
    assert values["note"].startswith("a\\n\\n# Heading")
    for name in ("data.csv", "software.csv"):
        with open(out / name, newline="", encoding="utf-8") as fh:
            for row in csv.reader(fh):
                assert not any(cell.startswith(("=", "+", "@", "\t", "\r")) for cell in row), row


def test_force_onto_a_symlink_is_refused_and_nothing_outside_is_touched(seeded, tmp_path):
    run = seeded["run"]
    real = tmp_path / "real"
    real.mkdir()
    (real / "keep.txt").write_text("keep me")
    link = tmp_path / "crate"
    link.symlink_to(real, target_is_directory=True)
    for args in (("-f", "methods"), ("-f", "ro-crate", "--license", "MIT")):
        result = run("export", "@2", *args, "-o", link, "--force")
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.splitlines()
        assert line == (f"runlog: error: {link} is a symbolic link: runlog does not write through links; "
                        f"give -o the real path ({real}) or another one")
    file_link = tmp_path / "run.bco.json"
    file_link.symlink_to(real / "keep.txt")
    assert run("export", "@2", "-f", "bco", "-o", file_link, "--force").exit_code == 2
    assert [p.name for p in real.iterdir()] == ["keep.txt"] and (real / "keep.txt").read_text() == "keep me"
    assert link.is_symlink() and file_link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crate", "real", "run.bco.json"]  # no staging left


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_export_into_proc_is_one_line_exit_2(seeded):
    result = seeded["run"]("export", "@2", "-f", "bco", "-o", "/proc/x.json")
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("runlog: error: cannot write /proc/x.json: cannot create files in /proc")
    assert not os.path.exists("/proc/x.json")


def test_force_replaces_only_files_and_directories_it_may_delete(seeded, tmp_path, monkeypatch):
    run = seeded["run"]
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    result = run("export", "@2", "-f", "bco", "-o", fifo, "--force")
    assert result.exit_code == 2 and "is not a regular file or directory" in result.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    here = tmp_path / "work"
    here.mkdir()
    (here / "analysis.txt").write_text("mine")
    monkeypatch.chdir(here)
    for target in (".", str(tmp_path)):
        result = run("export", "@2", "-f", "methods", "-o", target, "--force")
        assert result.exit_code == 2 and "contains the current directory" in result.stderr
    assert (here / "analysis.txt").read_text() == "mine"
    previous = tmp_path / "previous"
    assert run("export", "@2", "-f", "methods", "-o", previous).exit_code == 0
    (previous / "extra").symlink_to(here, target_is_directory=True)  # a link inside is removed, not followed
    assert run("export", "@2", "-f", "methods", "-o", previous, "--force").exit_code == 0
    assert "extra" not in [p.name for p in previous.iterdir()] and (here / "analysis.txt").exists()
