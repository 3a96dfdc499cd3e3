"""Review 12 findings (single runs and what leaves the machine): each test fails on c03e728
and shows one bug. The emulator over HTTP, real ledger files, the CLI."""

from __future__ import annotations

import json

from helpers import SEED_1, omics_client


def _graph(crate_dir):
    return {e["@id"]: e for e in json.loads((crate_dir / "ro-crate-metadata.json").read_text())["@graph"]}


# -- a run deleted after it finished is exported as it finished ----------------------------------

def test_review12_a_run_deleted_after_it_completed_is_exported_completed(aws_env, ledger_path, git_repo, run_cli,
                                                                         tmp_path):
    """`refresh` records DELETED when GetRun no longer finds a run (DeleteRun after it ended).
    The exports took that as the run's final status: a run seen COMPLETED, then deleted, was a
    FailedActionStatus with no result in the crate, 'final status DELETED' in methods.md, no
    output in the BCO or PROV: a failure nobody observed."""
    submitted = run_cli(*SEED_1)
    assert submitted.exit_code == 0, submitted.output
    run_id = json.loads(submitted.stdout)["id"]
    aws_env.advance(200)
    assert "-> COMPLETED" in run_cli("refresh", run_id).stdout
    omics_client(aws_env).delete_run(id=run_id)
    assert "COMPLETED -> DELETED" in run_cli("refresh", run_id).stdout
    out = tmp_path / "supp"
    exported = run_cli("export", run_id, "-f", "all", "-o", out, "--license", "MIT")
    assert exported.exit_code == 0, exported.output
    uuid = json.loads(submitted.stdout)["uuid"]
    action = _graph(out)[f"urn:uuid:{uuid}"]
    assert action["actionStatus"]["@id"] == "http://schema.org/CompletedActionStatus"
    assert action["result"], action
    assert "status COMPLETED" in action["description"] and "deleted" in action["description"]
    methods = (out / "methods" / "methods.md").read_text()
    assert "final status COMPLETED" in methods and "final status DELETED" not in methods
    assert "1 COMPLETED" in methods
    bco = json.loads((out / "bco.json").read_text())
    assert bco["io_domain"]["output_subdomain"], bco["io_domain"]
    assert "error_domain" not in bco
    prov = json.loads((out / "prov.json").read_text())
    activity = prov["activity"][f"urn_uuid:{uuid}"]
    assert activity["runlog:status"] == "COMPLETED", activity
    assert any(g["prov:activity"] == f"urn_uuid:{uuid}" for g in prov.get("wasGeneratedBy", {}).values())


def test_review12_a_run_deleted_before_it_was_seen_to_end_is_not_exported_failed(aws_env, ledger_path, git_repo,
                                                                                 run_cli, tmp_path):
    """A run runlog never saw finish and then found deleted: how it ended is unknown, so the
    crate claims no action status (it said FailedActionStatus) and methods.md says so."""
    submitted = run_cli(*SEED_1)
    assert submitted.exit_code == 0, submitted.output
    run_id, uuid = json.loads(submitted.stdout)["id"], json.loads(submitted.stdout)["uuid"]
    aws_env.advance(200)
    omics_client(aws_env).delete_run(id=run_id)
    assert "PENDING -> DELETED" in run_cli("refresh", run_id).stdout
    out = tmp_path / "supp"
    exported = run_cli("export", run_id, "-f", "all", "-o", out, "--license", "MIT", "--validate")
    assert exported.exit_code == 0, exported.output
    action = _graph(out)[f"urn:uuid:{uuid}"]
    assert "actionStatus" not in action and "result" not in action, action
    assert "outcome unknown" in action["description"]
    methods = (out / "methods" / "methods.md").read_text()
    assert "outcome unknown: HealthOmics deleted the run" in methods and "final status DELETED" not in methods


# -- an input overwritten between submission and execution ---------------------------------------

def test_review12_exports_name_the_bytes_the_run_read_not_those_pinned_at_submission(s3_server, ledger_path,
                                                                                    git_repo, run_cli, tmp_path,
                                                                                    monkeypatch):
    """The samplesheet was overwritten after submission and before the run read it: `watch`
    says so (exit 1), GetRun's resourceDigests holds the ETag the run read. The exports gave
    the ETag pinned at submission as the identity of what the run read, in the crate, the
    BCO, data.csv and methods.md: the bytes of the wrong object."""
    from helpers import ROLE
    from runlog.emulator import Emulator

    sheet = "s3://lab-data/pbmc/samplesheet.csv"
    s3_server.create_bucket(Bucket="lab-data")
    before = s3_server.put_object(Bucket="lab-data", Key="pbmc/samplesheet.csv", Body=b"sample\nA\n")["ETag"]
    with Emulator(port=0, clock=50.0, s3_endpoint_url=s3_server.endpoint) as emu:
        monkeypatch.setenv("AWS_ENDPOINT_URL", emu.endpoint_url)
        submitted = run_cli("submit", "--workflow-id", "7206765", "--role-arn", ROLE, "--output-uri", "s3://out/x/",
                            "--parameters", json.dumps({"input": sheet, "protocol": "10XV3"}))
        assert submitted.exit_code == 0, submitted.output
        run_id, uuid = json.loads(submitted.stdout)["id"], json.loads(submitted.stdout)["uuid"]
        after = s3_server.put_object(Bucket="lab-data", Key="pbmc/samplesheet.csv", Body=b"sample\nB\n")["ETag"]
        watched = run_cli("watch", run_id, "--interval", "0.2", "--timeout", "30")
    assert watched.exit_code == 1 and "input changed between submission and execution" in watched.stderr
    before, after = before.strip('"'), after.strip('"')
    out = tmp_path / "supp"
    exported = run_cli("export", run_id, "-f", "all", "-o", out, "--license", "MIT")
    assert exported.exit_code == 0, exported.output
    graph = _graph(out)
    read = [graph[o["@id"]] for o in graph[f"urn:uuid:{uuid}"]["object"] if graph[o["@id"]].get("etag")]
    assert [e["etag"] for e in read] == [after], read
    data = (out / "methods" / "data.csv").read_text()
    assert after in data and before not in data
    methods = (out / "methods" / "methods.md").read_text()
    assert f"S3 ETag {after}" in methods and f"S3 ETag {before}" not in methods
    assert f"changed after submission \\(pinned ETag {before}\\)" in methods


# -- a run started without runlog is replayed with all its settings ------------------------------

def test_review12_a_run_started_without_runlog_is_replayed_with_every_setting_getrun_gives(aws_env, ledger_path,
                                                                                          git_repo, run_cli):
    """`replay RUN` of a run started with boto3 rebuilds its request from GetRun. The rebuild
    left out engineSettings, scratchStorageMode, outputUriPrefixMode, requesterPaysEnabled and
    sessionPolicy, which GetRun reports: the replay ran with other engine settings, storage,
    output layout and permissions than the run it said it repeated."""
    settings = {"scratchStorageMode": "LOCAL", "outputUriPrefixMode": "NONE_WITH_OVERWRITE",
                "requesterPaysEnabled": True, "sessionPolicy": '{"Version":"2012-10-17","Statement":[]}',
                "engineSettings": {"profiles": ["test"]}}
    parameters = json.loads((git_repo / "workflow-inputs.json").read_text())
    parameters["ref_fasta_index"] = "s3://" + parameters["ref_fasta_index"]
    client = omics_client(aws_env)
    original = client.start_run(workflowId="1234567", roleArn="arn:aws:iam::123456789012:role/R",
                                outputUri="s3://b/out/", name="by-hand", parameters=parameters, requestId="r-1",
                                **settings)
    replayed = run_cli("replay", original["id"], "--allow-drift")
    assert replayed.exit_code == 0, replayed.output
    again = client.get_run(id=json.loads(replayed.stdout)["id"])
    assert {k: again.get(k) for k in settings} == settings


# -- a --parameters-uri run's parameters and inputs are exported ----------------------------------

def test_review12_a_parameters_uri_run_is_exported_with_its_parameters_and_the_file(aws_env, s3_server, ledger_path,
                                                                                    git_repo, run_cli, tmp_path):
    """The record of `submit --parameters-uri` holds the file's content and identity and the
    identities of the inputs it names. The exports held none of it: no parameter in
    parameters.csv, no input in data.csv, the crate, the BCO or PROV, and methods.md still
    said every parameter and every input was listed."""
    from helpers import PARAMS_BUCKET as BUCKET
    from helpers import PARAMS_URI_SUBMIT as BASE
    from helpers import put_parameters as put

    s3_server.create_bucket(Bucket=BUCKET)
    s3_server.put_object(Bucket=BUCKET, Key="in/sample.txt", Body=b"reads")
    put(s3_server, {"param1": f"s3://{BUCKET}/in/sample.txt", "param2": "v1"})
    submitted = run_cli(*BASE)
    assert submitted.exit_code == 0, submitted.output
    run_id, uuid = json.loads(submitted.stdout)["id"], json.loads(submitted.stdout)["uuid"]
    aws_env.advance(300)
    assert run_cli("refresh", run_id).exit_code == 0
    out = tmp_path / "supp"
    exported = run_cli("export", run_id, "-f", "all", "-o", out, "--license", "MIT", "--validate")
    assert exported.exit_code == 0, exported.output
    parameters = (out / "methods" / "parameters.csv").read_text().splitlines()[1:]
    assert [line.split(",")[2:] for line in parameters] == [["param1", f"s3://{BUCKET}/in/sample.txt"],
                                                           ["param2", "v1"]]
    data = (out / "methods" / "data.csv").read_text()
    sheet = f"s3://{BUCKET}/run/params.json"
    assert f"input,param1,s3://{BUCKET}/in/sample.txt" in data and f"input,parametersUri,{sheet}" in data
    graph = _graph(out)
    read = {o["@id"] for o in graph[f"urn:uuid:{uuid}"]["object"]}
    assert {sheet, f"s3://{BUCKET}/in/sample.txt"} <= read
    bco = json.loads((out / "bco.json").read_text())
    assert {i["uri"]["uri"] for i in bco["io_domain"]["input_subdomain"]} == {sheet, f"s3://{BUCKET}/in/sample.txt"}
    assert {p["param"] for p in bco["parametric_domain"]} >= {"param1", "param2"}
    methods = (out / "methods" / "methods.md").read_text()
    assert f"All parameters as read from `{sheet}` at submission" in methods


def test_review12_replay_set_of_a_parameters_uri_run_says_what_is_wrong(aws_env, s3_server, ledger_path, git_repo,
                                                                        run_cli):
    """`replay REF --set P=V` of a run submitted with --parameters-uri answered 'give
    --parameters or --parameters-uri, not both', options replay does not have and the user
    did not give."""
    from helpers import PARAMS_BUCKET as BUCKET
    from helpers import PARAMS_URI_SUBMIT as BASE
    from helpers import put_parameters as put

    s3_server.create_bucket(Bucket=BUCKET)
    put(s3_server, {"param1": "a", "param2": "v1"})
    assert run_cli(*BASE).exit_code == 0
    for dry in ((), ("--dry-run",)):
        replayed = run_cli("replay", "@1", "--set", "param2=v9", *dry)
        assert replayed.exit_code == 2
        (line,) = replayed.stderr.splitlines()
        assert "--set cannot change the parameters" in line and f"s3://{BUCKET}/run/params.json" in line, line
        assert "not both" not in line


# -- engine settings decide results: every format states them -------------------------------------

def test_review12_engine_settings_are_exported_with_the_settings_that_change_results(aws_env, ledger_path, git_repo,
                                                                                     run_cli, tmp_path):
    """`--engine-settings` (Nextflow profiles, runtime configuration) decide what a run
    computes, but no export said what they were: not in settings.csv, methods.md, the crate,
    the BCO or PROV; a run with the `test` profile read as one with the real data."""
    engine = {"profiles": ["test"]}
    submitted = run_cli(*SEED_1, "--engine-settings", json.dumps(engine))
    assert submitted.exit_code == 0, submitted.output
    uuid = json.loads(submitted.stdout)["uuid"]
    out = tmp_path / "supp"
    exported = run_cli("export", "@1", "-f", "all", "-o", out, "--license", "MIT")
    assert exported.exit_code == 0, exported.output
    text = json.dumps(engine, sort_keys=True)
    settings = (out / "methods" / "settings.csv").read_text()
    assert "engineSettings" in settings and '"{""profiles"": [""test""]}"' in settings, settings
    assert "engineSettings" in (out / "methods" / "methods.md").read_text()
    graph = _graph(out)
    values = {graph[p["@id"]]["name"]: graph[p["@id"]]["value"]
              for p in graph[f"urn:uuid:{uuid}"].get("additionalProperty", [])}
    assert values.get("setting engineSettings") == text, values
    bco = json.loads((out / "bco.json").read_text())
    assert any(p["param"] == "StartRun engineSettings" and p["value"] == text for p in bco["parametric_domain"])
    prov = json.loads((out / "prov.json").read_text())
    assert prov["activity"][f"urn_uuid:{uuid}"]["runlog:engineSettings"] == text


# -- an endpoint set in the AWS profile ----------------------------------------------------------

def test_review12_an_endpoint_in_the_aws_profile_is_used_and_recorded(aws_env, ledger_path, git_repo, run_cli,
                                                                      monkeypatch, tmp_path):
    """botocore takes `endpoint_url` from the profile in ~/.aws/config (as the aws CLI does).
    runlog looked for a custom endpoint in its flags, its config and the environment only:
    host-prefix injection stayed on (`workflows-127.0.0.1`), so the submission could not
    connect and was left pending as if it might have started a run, and the intent recorded
    endpoint_url null, AWS's own endpoint."""
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    config = tmp_path / "aws-config"
    config.write_text(f"[profile lab]\nregion = us-west-2\nendpoint_url = {aws_env.endpoint_url}\n"
                      "aws_access_key_id = x\naws_secret_access_key = y\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    submitted = run_cli(*SEED_1, "--profile", "lab")
    assert submitted.exit_code == 0, submitted.output
    shown = json.loads(run_cli("show", "@1", "--json").stdout)
    assert shown["record"]["aws"] == {"endpoint_url": aws_env.endpoint_url, "profile": "lab", "region": "us-west-2"}
    assert shown["record"]["resolution"]["workflow"]["digest"].startswith("sha256:")
    assert "caller" in shown["record"] and shown["record"]["caller"].get("arn")
    outside = omics_client(aws_env).start_run(workflowId="1234567", roleArn="arn:aws:iam::123456789012:role/R",
                                              outputUri="s3://b/out/", requestId="r-2",
                                              parameters=json.loads((git_repo / "workflow-inputs.json").read_text()))
    imported = run_cli("import", "--profile", "lab")
    assert imported.exit_code == 0, imported.output
    shown = json.loads(run_cli("show", outside["id"], "--json").stdout)
    assert shown["record"]["aws"]["endpoint_url"] == aws_env.endpoint_url


# -- a run that duplicates another (--run-id) -----------------------------------------------------

def test_review12_a_duplicated_run_is_exported_as_a_duplicate_with_the_parameters_healthomics_gave(
        aws_env, ledger_path, git_repo, run_cli, tmp_path):
    """`submit --run-id R` (the AWS CLI's 'duplicate a run'): HealthOmics takes the workflow
    and parameters from its copy of run R; the request holds none. methods.md never said the
    run was a duplicate; before a refresh it listed no parameter and still said every
    parameter was in parameters.csv, after one it called GetRun's parameters 'as submitted'."""
    first = run_cli(*SEED_1)
    assert first.exit_code == 0, first.output
    source = json.loads(first.stdout)["id"]
    dup = run_cli("submit", "--run-id", source, "--role-arn", "arn:aws:iam::123456789012:role/R",
                  "--output-uri", "s3://b/dup/")
    assert dup.exit_code == 0, dup.output
    run_id = json.loads(dup.stdout)["id"]
    before = tmp_path / "before"
    assert run_cli("export", run_id, "-f", "methods", "-o", before, "--license", "MIT").exit_code == 0
    methods = (before / "methods.md").read_text()
    assert f"duplicates run {source}" in methods
    assert "every parameter is in parameters.csv" not in methods
    assert "not recorded yet" in methods and "runlog refresh" in methods
    aws_env.advance(300)
    assert run_cli("refresh", run_id).exit_code == 0
    after = tmp_path / "after"
    assert run_cli("export", run_id, "-f", "all", "-o", after, "--license", "MIT", "--validate").exit_code == 0
    action = _graph(after)[f"urn:uuid:{json.loads(dup.stdout)['uuid']}"]
    assert f"duplicates run {source}" in action["description"]
    methods = (after / "methods" / "methods.md").read_text()
    assert f"duplicates run {source}" in methods and "as submitted" not in methods
    assert "All parameters as HealthOmics reported them" in methods and "`sample_name` = `NA12878`" in methods
