"""Review 11 findings (cohort paths): each test fails on ec5e977 and shows one bug. The
emulator over HTTP, moto's S3 server, real ledger files, the CLI."""

from __future__ import annotations

import json

import pytest

from helpers import COHORT_DEFAULT, cohort_setting, forged_member, omics_client, pushed_cohort, put_forged_member
from helpers import submit_cohort as submit_batch
from runlog.ledger import Ledger


def statuses(ledger_path) -> list[str | None]:
    with Ledger.open(ledger_path, create=False) as ledger:
        return [row[0] for row in ledger.conn.execute("SELECT status FROM observations ORDER BY seq")]


# -- a batch or run asked about in another region is not "deleted" -------------------------------

def test_review11_a_batch_asked_about_in_another_region_is_not_recorded_deleted(aws_env, ledger_path, git_repo,
                                                                                run_cli):
    """GetBatch in a region the batch is not in answers ResourceNotFound, as after DeleteBatch:
    `refresh B --region OTHER` (or `refresh --region OTHER`, every unfinished batch) recorded
    the batch DELETED, a final status that no later refresh in its own region undoes."""
    from runlog.emulator import Emulator

    aws_env.batch_rate = 100
    batch_id = submit_batch(run_cli, "s0", "s1")
    aws_env.advance(300)
    assert run_cli("refresh", batch_id).exit_code == 0
    before = statuses(ledger_path)
    with Emulator(port=0) as elsewhere:  # HealthOmics in eu-west-1: no such batch there
        asked = run_cli("refresh", batch_id, "--region", "eu-west-1", "--endpoint-url", elsewhere.endpoint_url)
        watched = run_cli("watch", batch_id, "--region", "eu-west-1", "--endpoint-url", elsewhere.endpoint_url,
                          "--interval", "0.1", "--timeout", "5")
    assert asked.exit_code == 1, asked.output
    assert "eu-west-1" in asked.stdout and "us-west-2" in asked.stdout and "DELETED" not in asked.stdout
    assert watched.exit_code != 0 and "DELETED" not in watched.output
    assert len(watched.stderr.strip().splitlines()) == 1 and "us-west-2" in watched.stderr, watched.stderr
    assert statuses(ledger_path) == before  # nothing recorded
    shown = json.loads(run_cli("show", batch_id, "--json").stdout)
    assert shown["status"] == "PROCESSED"


def test_review11_a_run_asked_about_in_another_region_is_not_recorded_deleted(aws_env, ledger_path, git_repo,
                                                                              run_cli):
    """The same for a run (GetRun): `refresh --region OTHER` marked every unfinished run of the
    ledger DELETED; DELETED is final, so `log` showed them deleted for good."""
    from helpers import SEED_1
    from runlog.emulator import Emulator

    submitted = run_cli(*SEED_1)
    assert submitted.exit_code == 0, submitted.output
    run_id = json.loads(submitted.stdout)["id"]
    before = statuses(ledger_path)
    with Emulator(port=0) as elsewhere:
        asked = run_cli("refresh", "--region", "eu-west-1", "--endpoint-url", elsewhere.endpoint_url)
    assert asked.exit_code == 1, asked.output
    assert "eu-west-1" in asked.stdout and "us-west-2" in asked.stdout and "DELETED" not in asked.stdout
    assert statuses(ledger_path) == before
    aws_env.advance(60)
    again = run_cli("refresh", run_id)
    assert again.exit_code == 0 and "COMPLETED" in again.stdout, again.output
    assert json.loads(run_cli("show", run_id, "--json").stdout)["status"] == "COMPLETED"


def test_review11_a_run_or_batch_asked_about_as_another_account_is_not_recorded_deleted(
        aws_env, ledger_path, git_repo, run_cli, monkeypatch):
    """The same in another account: a record made with the default credentials, refreshed
    once AWS_PROFILE names another account's (the recorded profile is null, so today's
    environment chooses the credentials), or with --profile of another account: GetRun and
    GetBatch there answer ResourceNotFound, and runlog recorded every unfinished run and
    batch DELETED for good. The caller's account (STS, asked only then) is compared with the
    ARN's first."""
    from helpers import SEED_1
    from runlog.emulator import Emulator

    aws_env.batch_rate = 1
    batch_id = submit_batch(run_cli, "s0", "s1")
    submitted = run_cli(*SEED_1)
    assert submitted.exit_code == 0, submitted.output
    run_id = json.loads(submitted.stdout)["id"]
    before = statuses(ledger_path)
    with Emulator(port=0, account="444455556666") as other:  # the same region, another account's HealthOmics
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", other.endpoint_url)
        asked = run_cli("refresh", "--endpoint-url", other.endpoint_url)
        watched = run_cli("watch", batch_id, "--endpoint-url", other.endpoint_url, "--interval", "0.1",
                          "--timeout", "5")
    assert asked.exit_code == 1, asked.output
    assert "DELETED" not in asked.stdout and asked.stdout.count("444455556666") == 2, asked.stdout
    assert "111122223333" in asked.stdout and run_id in asked.stdout and batch_id in asked.stdout
    assert watched.exit_code == 2 and "444455556666" in watched.stderr and "DELETED" not in watched.output
    assert statuses(ledger_path) == before  # nothing recorded
    monkeypatch.delenv("AWS_ENDPOINT_URL_STS")
    aws_env.advance(300)
    assert run_cli("refresh").exit_code == 0
    assert json.loads(run_cli("show", run_id, "--json").stdout)["status"] == "COMPLETED"
    assert json.loads(run_cli("show", batch_id, "--json").stdout)["status"] == "PROCESSED"


# -- recover re-sends a cohort only while its settings file still holds the pinned bytes -----------

def test_review11_recover_does_not_send_a_settings_file_that_changed_since_it_was_pinned(
        s3_emulator, ledger_path, git_repo, run_cli):
    """A StartRunBatch attempt left pending (a 500 before the service started it) pins its
    s3UriSettings file's bytes in its intent. `runlog recover` sent it again whatever the
    file held by then: the service started runs from the new file while the batch record, and
    every member made from it, said each run ran with the settings of the pinned one (another
    input, another sample)."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_emulator.s3_endpoint_url, region_name="us-east-1")
    s3.create_bucket(Bucket="cohort-bucket")
    uri = "s3://cohort-bucket/cohort/settings.json"
    pinned = json.dumps([cohort_setting("NA12878")]).encode()
    s3.put_object(Bucket="cohort-bucket", Key="cohort/settings.json", Body=pinned)
    s3_emulator.inject("error", operation="StartRunBatch", count=3)  # every try, before the service acts
    submitted = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT),
                        "--batch-run-settings", json.dumps({"s3UriSettings": uri}))
    assert submitted.exit_code == 1 and "pending" in submitted.stderr, submitted.output
    assert omics_client(s3_emulator).list_batch()["items"] == []  # the 500 came first: no batch started
    s3.put_object(Bucket="cohort-bucket", Key="cohort/settings.json",
                  Body=json.dumps([cohort_setting("NA99999")]).encode())
    sent_before = [r for r in s3_emulator.requests if r["operation"] == "StartRunBatch"]

    recovered = run_cli("recover")
    assert recovered.exit_code == 1, recovered.output
    assert [r for r in s3_emulator.requests if r["operation"] == "StartRunBatch"] == sent_before  # nothing sent
    line = recovered.stdout.strip()
    assert len(line.splitlines()) == 1 and uri in line and "--abandon" in line, recovered.output
    with Ledger.open(ledger_path, create=False) as ledger:
        assert len(ledger.pending()) == 1 and list(ledger.entries()) == []

    s3.put_object(Bucket="cohort-bucket", Key="cohort/settings.json", Body=pinned)  # the pinned bytes again
    again = run_cli("recover")
    assert again.exit_code == 0, again.output
    s3_emulator.batch_rate = 100
    s3_emulator.advance(200)
    assert run_cli("refresh", "8100001").exit_code == 0
    (member,) = json.loads(run_cli("log", "--batch", "8100001", "--json").stdout)
    ran = s3_emulator.get_run(member["run_id"])["parameters"]
    with Ledger.open(ledger_path, create=False) as ledger:
        recorded = ledger.resolve(member["run_id"]).record["request"]["parameters"]
    assert ran["sample_name"] == recorded["sample_name"] == "NA12878"


# -- a run's parameters that are no JSON object are refused before anything is sent ---------------

def _sent(emulator) -> list:
    return [r for r in emulator.requests if r["operation"] == "StartRunBatch"]


def _attempts(ledger_path) -> int:
    if not ledger_path.exists():
        return 0
    with Ledger.open(ledger_path, create=False) as ledger:
        return ledger.conn.execute("SELECT count(*) FROM attempts").fetchone()[0]


@pytest.mark.parametrize("parameters,kind", [
    (["sample_name", "input_cram"], "array"), ("oops", "string"), (5, "number"), (None, "null"), (True, "true"),
], ids=["array", "string", "number", "null", "true"])
def test_review11_run_setting_parameters_that_are_no_object_are_refused(parameters, kind, aws_env, ledger_path,
                                                                        git_repo, run_cli):
    """A run setting's `parameters` is merged name by name into the default's: an array passed
    every check (its items taken for parameter names), the batch was sent and recorded with
    `template_checked: true`, and its members could never be recorded (refresh: "refusing to
    write a record that breaks the schema", every time); a string was checked letter by letter
    ("unknown parameter(s) o, p, s"); a number or true was an internal error (exit 70)."""
    settings = {"inlineSettings": [cohort_setting("NA12878"), {"runSettingId": "NA12891", "parameters": parameters}]}
    result = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT),
                     "--batch-run-settings", json.dumps(settings))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "NA12891" in lines[0] and f"parameters is a JSON {kind}" in lines[0], result.stderr
    assert _sent(aws_env) == [] and _attempts(ledger_path) == 0


@pytest.mark.parametrize("parameters,kind", [("oops", "string"), (5, "number"), (["ref_dict"], "array")],
                         ids=["string", "number", "array"])
def test_review11_default_parameters_that_are_no_object_are_refused(parameters, kind, aws_env, ledger_path, git_repo,
                                                                    run_cli):
    default = {**COHORT_DEFAULT, "parameters": parameters}
    result = run_cli("submit-batch", "--default-run-setting", json.dumps(default),
                     "--batch-run-settings", json.dumps({"inlineSettings": [cohort_setting("NA12878")]}))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--default-run-setting" in lines[0] and f"parameters is a JSON {kind}" in lines[0], lines
    assert _sent(aws_env) == []


def test_review11_settings_file_parameters_that_are_no_object_are_refused(aws_env, s3_server, ledger_path, git_repo,
                                                                          run_cli):
    s3_server.create_bucket(Bucket="cohort-bucket")
    body = [cohort_setting("NA12878"), {"runSettingId": "NA12891", "parameters": ["sample_name"]}]
    s3_server.put_object(Bucket="cohort-bucket", Key="cohort/settings.json", Body=json.dumps(body).encode())
    uri = "s3://cohort-bucket/cohort/settings.json"
    result = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT),
                     "--batch-run-settings", json.dumps({"s3UriSettings": uri}))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and uri in lines[0] and "NA12891" in lines[0] and "parameters is a JSON array" in lines[0]
    assert _sent(aws_env) == []


def test_review11_recover_does_not_send_a_parameters_file_that_changed_since_it_was_pinned(
        aws_env, s3_server, ledger_path, git_repo, run_cli):
    """The same for a single run's --parameters-uri: the service reads the object when it
    starts the run, the record holds the pinned content as the run's parameters, and recover
    sent the attempt again whatever the object held by then."""
    s3_server.create_bucket(Bucket="lab-params")
    uri = "s3://lab-params/run/params.json"
    pinned = json.dumps({"param1": "s3://lab-params/in/a.txt", "param2": "v1"}).encode()
    s3_server.put_object(Bucket="lab-params", Key="run/params.json", Body=pinned)
    aws_env.inject("error", operation="StartRun", count=3)  # every try, before the service acts
    submitted = run_cli("submit", "--workflow-id", "1234567", "--workflow-owner-id", "123456789012", "--role-arn",
                        "arn:aws:iam::123456789012:role/HealthOmicsServiceRole", "--output-uri",
                        "s3://your-bucket/results/", "--parameters-uri", uri)
    assert submitted.exit_code == 1 and "pending" in submitted.stderr, submitted.output
    s3_server.put_object(Bucket="lab-params", Key="run/params.json",
                         Body=json.dumps({"param1": "s3://lab-params/in/b.txt", "param2": "v2"}).encode())
    sent_before = [r for r in aws_env.requests if r["operation"] == "StartRun"]

    recovered = run_cli("recover")
    assert recovered.exit_code == 1, recovered.output
    assert [r for r in aws_env.requests if r["operation"] == "StartRun"] == sent_before  # nothing sent
    assert uri in recovered.stdout and "--abandon" in recovered.stdout, recovered.output
    with Ledger.open(ledger_path, create=False) as ledger:
        assert len(ledger.pending()) == 1 and list(ledger.entries()) == []

    s3_server.put_object(Bucket="lab-params", Key="run/params.json", Body=pinned)
    again = run_cli("recover")
    assert again.exit_code == 0, again.output


# -- diff of a batch whose run settings were never seen -------------------------------------------

def imported_cohorts(emulator, run_cli) -> list[str]:
    """Two batches started without runlog, with the same default setting and other samples
    (NA12878; NA12891 and NA12892), finished and recorded by `runlog import`: their ids."""
    omics = omics_client(emulator)
    started = [omics.start_run_batch(batchName="outside", defaultRunSetting=COHORT_DEFAULT,
                                     batchRunSettings={"inlineSettings": [cohort_setting(s) for s in samples]})["id"]
               for samples in (["NA12878"], ["NA12891", "NA12892"])]
    emulator.batch_rate = 100
    emulator.advance(300)
    assert run_cli("import").exit_code == 0
    return started


def test_review11_diff_of_batches_whose_run_settings_were_never_seen_claims_nothing(aws_env, ledger_path, git_repo,
                                                                                    run_cli):
    """An imported batch's record holds no run settings (StartRunBatch's were never seen):
    `diff B1 B2` of two such cohorts, one of NA12878 and one of two other samples, said "No
    differences: identical configurations" (and `--exit-code` 0); against a batch submitted
    through runlog it said each of that batch's runs was removed."""
    started = imported_cohorts(aws_env, run_cli)
    for more in ([], ["--exit-code"], ["--json"]):  # nothing else differs: it cannot be told
        result = run_cli("diff", *started, *more)
        assert result.exit_code == 2, (more, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "never seen" in lines[0] and "runlog diff RUN_ID RUN_ID" in lines[0], lines
        assert result.stdout == ""
    mine = submit_batch(run_cli, "NA12878")
    shown = run_cli("diff", mine, started[1])
    assert shown.exit_code == 0 and "never seen" in shown.stdout, shown.output
    assert "No differences" not in shown.stdout and "\nruns\n" not in shown.stdout  # no run "removed"
    found = json.loads(run_cli("diff", mine, started[1], "--json").stdout)
    assert not found["same"] and found["changes"] and {c["section"] for c in found["changes"]} == {"git"}
    assert len(found["notes"]) == 1 and found["notes"][0].startswith(f"B: batch {started[1]}'s run settings")
    assert run_cli("diff", mine, started[1], "--exit-code").exit_code == 1
    assert run_cli("diff", mine, mine).exit_code == 0  # a batch whose settings are recorded compares as before


def test_review11_same_as_a_cohort_whose_run_settings_were_never_seen_is_refused(aws_env, ledger_path, git_repo,
                                                                                  run_cli):
    """An imported batch's fingerprint covers its default setting alone (its run settings were
    never seen), and so does the fingerprint of each of its members (their records hold the
    default alone): `log --same-as B` listed every imported cohort with that default, whatever
    its samples, as "identical configurations"; `--same-as MEMBER` every member of them."""
    started = imported_cohorts(aws_env, run_cli)
    member = json.loads(run_cli("log", "--batch", started[0], "--json").stdout)[0]["run_id"]
    for ref in (started[0], member):
        for more in ([], ["--json"]):
            result = run_cli("log", "--same-as", ref, *more)
            assert result.exit_code == 2, (ref, more, result.output)
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and "never seen" in lines[0] and result.stdout == "", result.output
    mine = submit_batch(run_cli, "NA12878")
    listed = json.loads(run_cli("log", "--same-as", mine, "--json").stdout)
    assert [e["batch_id"] for e in listed] == [mine]



# -- a forged member on the team remote ---------------------------------------------------------------

def test_review11_a_forged_member_of_a_pulled_batch_is_refused(aws_env, bucket, ledger_path, git_repo, run_cli,
                                                              tmp_path):
    """A member record is a pure function of its batch record and the ListRunsInBatch item, so
    one that is not what its batch record makes can only be forged. Whoever may write to the
    team bucket can add one (another input, another run id) for a batch's run setting: pull
    takes it (canonical, schema-valid), `show B` then counts 2 members for 1 run setting, and
    export states the forged input for a second run; verify says OK."""
    from helpers import REMOTE, record_key

    _, member = pushed_cohort(run_cli, aws_env, ledger_path, "NA12878")
    forged_address = put_forged_member(bucket, member.body)

    other = tmp_path / "other.db"
    pulled = run_cli("--ledger", other, "pull", REMOTE)
    with Ledger.open(other, create=False) as ledger:
        held = ledger.addresses()
    assert member.address in held and forged_address not in held  # what reaches show B, log --batch, export
    assert pulled.exit_code == 1 and record_key(forged_address) in pulled.stderr, pulled.output
    assert "is not what its batch record" in pulled.stderr
    # the batch record already held by the pulling ledger (the batch's own): checked against it
    again = run_cli("pull", REMOTE)
    assert again.exit_code == 1 and record_key(forged_address) in again.stderr, again.output
    with Ledger.open(ledger_path, create=False) as ledger:
        assert forged_address not in ledger.addresses()
    assert run_cli("--ledger", other, "verify", "--no-remote").exit_code == 0


def test_verify_names_a_member_its_batch_record_does_not_make(aws_env, ledger_path, git_repo, run_cli):
    """A member taken before pulls checked members (or written by another tool through runlog's
    own append, seals and all) is named by verify: it is not what its batch record makes."""
    batch_id = submit_batch(run_cli, "NA12878", "NA12891")
    aws_env.batch_rate = 100
    aws_env.advance(300)
    assert run_cli("refresh", batch_id).exit_code == 0
    assert run_cli("verify").exit_code == 0
    with Ledger.open(ledger_path, create=False) as ledger:
        member = ledger.entries(where="kind = 'member'")[0]
        assert ledger.add_records([forged_member(member.body)]) == 1
        seq = ledger.conn.execute("SELECT max(seq) FROM records").fetchone()[0]
    result = run_cli("verify")
    assert result.exit_code != 0
    assert f"record #{seq}: member record" in result.output and "is not what its batch record" in result.output


def test_recover_does_not_send_a_run_whose_inputs_changed_since_they_were_pinned(
        aws_env, s3_server, ledger_path, git_repo, run_cli):
    """The first send never reached the service (every try refused with a 500 before it
    acted); the run's input is then overwritten. The record would state the pinned ETag as
    what the run read, while a run started now reads the new bytes: recover leaves the
    attempt pending and says so, and sends it once the pinned bytes are back."""
    s3_server.create_bucket(Bucket="lab-data")
    s3_server.put_object(Bucket="lab-data", Key="pbmc/samplesheet.csv", Body=b"sample\nA\n")
    aws_env.inject("error", operation="StartRun", count=3)  # every try, before the service acts
    submitted = run_cli("submit", "--workflow-id", "7206765", "--role-arn",
                        "arn:aws:iam::123456789012:role/HealthOmicsServiceRole", "--output-uri", "s3://out/r/",
                        "--parameters", json.dumps({"input": "s3://lab-data/pbmc/samplesheet.csv", "protocol": "10XV3"}))
    assert submitted.exit_code == 1 and "pending" in submitted.stderr, submitted.output
    s3_server.put_object(Bucket="lab-data", Key="pbmc/samplesheet.csv", Body=b"sample\nB\n")
    sent_before = [r for r in aws_env.requests if r["operation"] == "StartRun"]

    recovered = run_cli("recover")
    assert recovered.exit_code == 1, recovered.output
    assert "s3://lab-data/pbmc/samplesheet.csv etag" in recovered.stdout and "--abandon" in recovered.stdout
    assert [r for r in aws_env.requests if r["operation"] == "StartRun"] == sent_before  # nothing sent
    with Ledger.open(ledger_path, create=False) as ledger:
        assert len(ledger.pending()) == 1 and list(ledger.entries()) == []

    s3_server.put_object(Bucket="lab-data", Key="pbmc/samplesheet.csv", Body=b"sample\nA\n")  # the same bytes
    again = run_cli("recover")
    assert again.exit_code == 0, again.output
    (record,) = [e.record for e in Ledger.open(ledger_path, create=False).entries()]
    assert record["outcome"]["status"] == "submitted"


def test_recover_does_not_send_a_batch_whose_inputs_changed_since_they_were_pinned(
        aws_env, s3_server, ledger_path, git_repo, run_cli):
    """The same for a batch: its runs' inputs, pinned in bulk at submission, identified again
    in bulk before the attempt is sent again."""
    s3_server.create_bucket(Bucket="cohort-bucket")
    for key in ("crams/NA12878.cram", "crams/NA12891.cram", "ref/genome.dict", "ref/genome.fasta",
                "ref/genome.fasta.fai"):
        s3_server.put_object(Bucket="cohort-bucket", Key=key, Body=key.encode())
    aws_env.inject("error", operation="StartRunBatch", count=3)  # every try, before the service acts
    result = run_cli("submit-batch", "--batch-name", "cohort", "--default-run-setting", json.dumps(COHORT_DEFAULT),
                     "--batch-run-settings",
                     json.dumps({"inlineSettings": [cohort_setting(s) for s in ("NA12878", "NA12891")]}))
    assert result.exit_code == 1 and "pending" in result.stderr, result.output
    s3_server.put_object(Bucket="cohort-bucket", Key="crams/NA12891.cram", Body=b"another sample")
    recovered = run_cli("recover")
    assert recovered.exit_code == 1, recovered.output
    assert "s3://cohort-bucket/crams/NA12891.cram" in recovered.stdout and "not sent again" in recovered.stdout
    assert not [r for r in aws_env.requests if r["operation"] == "StartRunBatch" and r["status"] < 300]
    with Ledger.open(ledger_path, create=False) as ledger:
        assert len(ledger.pending()) == 1


def test_replay_batch_dry_run_says_the_template_check_would_refuse(aws_env, ledger_path, git_repo, run_cli):
    """`replay B --set` of a parameter the workflow does not take: the replay itself is refused
    by submit-batch's template check (exit 2); its --dry-run says so beforehand, as a single
    run's replay --dry-run does."""
    submit_batch(run_cli, "NA12878", "NA12891")
    real = run_cli("replay", "@1", "--set", "not_a_parameter=1")
    assert real.exit_code == 2 and "unknown parameter(s) not_a_parameter" in real.stderr, real.output
    dry = run_cli("replay", "@1", "--set", "not_a_parameter=1", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "without --dry-run this replay would be refused (exit 2)" in dry.stderr
    assert "unknown parameter(s) not_a_parameter" in dry.stderr
    fine = run_cli("replay", "@1", "--dry-run")
    assert "would be refused" not in fine.stderr
