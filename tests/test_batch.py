"""`runlog submit-batch` and member runs: the CLI, real ledger files, a real git repository,
the emulator over HTTP and moto's S3 for s3UriSettings files."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config

from runlog import record as rec
from runlog.ledger import Ledger

ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"
WORKFLOW = "1234567"  # cram-to-bam: sample_name, input_cram, ref_dict, ref_fasta, ref_fasta_index
BUCKET = "cohort-bucket"
DEFAULT = {"workflowId": WORKFLOW, "roleArn": ROLE, "outputUri": "s3://cohort-bucket/out/",
           "parameters": {"ref_dict": "s3://cohort-bucket/ref/genome.dict",
                          "ref_fasta": "s3://cohort-bucket/ref/genome.fasta",
                          "ref_fasta_index": "s3://cohort-bucket/ref/genome.fasta.fai"},
           "runTags": {"project": "cohort"}}


def setting(sample: str, **more) -> dict:
    return {"runSettingId": sample, "name": f"align-{sample}",
            "parameters": {"sample_name": sample, "input_cram": f"s3://cohort-bucket/crams/{sample}.cram"}, **more}


def inline(*samples: str) -> str:
    return json.dumps({"inlineSettings": [setting(s) for s in samples]})


def batch_args(settings: str, default: dict | None = None, *more) -> list[str]:
    return ["submit-batch", "--batch-name", "cohort-1", "--default-run-setting", json.dumps(default or DEFAULT),
            "--batch-run-settings", settings, *more]


def omics(emulator):
    return boto3.client("omics", endpoint_url=emulator.endpoint_url, region_name="us-west-2",
                        config=Config(inject_host_prefix=False))


def sent(emulator, operation: str = "StartRunBatch") -> list[dict]:
    return [r for r in emulator.requests if r["operation"] == operation]


def attempts(ledger_path) -> int:
    if not ledger_path.exists():
        return 0
    with Ledger.open(ledger_path, create=False) as ledger:
        return ledger.conn.execute("SELECT count(*) FROM attempts").fetchone()[0]


def records(ledger_path, kind: str | None = None) -> list[dict]:
    with Ledger.open(ledger_path, create=False) as ledger:
        return [e.record for e in ledger.entries() if kind is None or e.kind == kind]


def assert_refused(result, emulator, ledger_path, *words):
    """Exit 2, one line on stderr naming `words`; nothing sent, nothing written."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("runlog: error: "), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert sent(emulator) == []
    assert attempts(ledger_path) == 0
    assert result.stdout == ""


# -- bad input: one line, nothing sent, nothing written ------------------------------------------

BAD = [
    ("both", json.dumps({"inlineSettings": [setting("a")], "s3UriSettings": "s3://cohort-bucket/s.json"}),
     ["exactly one of inlineSettings and s3UriSettings", "both"]),
    ("neither", "{}", ["exactly one of inlineSettings and s3UriSettings", "neither"]),
    ("over-100", inline(*[f"s{i}" for i in range(101)]), ["101 inlineSettings", "at most 100"]),
    ("duplicate", inline("NA12878", "NA12891", "NA12878"), ["inlineSettings[2]: runSettingId 'NA12878' appears twice", "items 0 and 2"]),
    ("no-id", json.dumps({"inlineSettings": [{"name": "x"}]}), ["inlineSettings[0] has no runSettingId"]),
    ("missing-parameter", json.dumps({"inlineSettings": [setting("ok"), {"runSettingId": "NA12891",
                                                                          "parameters": {"sample_name": "x"}}]}),
     ["run setting 'NA12891'", "missing required parameter(s) input_cram"]),
    ("unknown-parameter", json.dumps({"inlineSettings": [setting("NA1", parameters={
        "sample_name": "x", "input_cram": "s3://b/x.cram", "bogus": 1})]}),
     ["run setting 'NA1'", "unknown parameter(s) bogus"]),
]


@pytest.mark.parametrize("settings,words", [(s, w) for _, s, w in BAD], ids=[i for i, _, _ in BAD])
def test_bad_batch_input_sends_nothing(settings, words, aws_env, ledger_path, git_repo, run_cli):
    result = run_cli(*batch_args(settings), "--resolve-timeout", "5")
    assert_refused(result, aws_env, ledger_path, *words)


def test_missing_default_setting_and_role(aws_env, ledger_path, git_repo, run_cli):
    result = run_cli("submit-batch", "--batch-run-settings", inline("a"))
    assert_refused(result, aws_env, ledger_path, "missing --default-run-setting")
    result = run_cli("submit-batch", "--default-run-setting", json.dumps({"workflowId": WORKFLOW}),
                     "--batch-run-settings", inline("a"))
    assert_refused(result, aws_env, ledger_path, "--default-run-setting: missing roleArn")


@pytest.mark.parametrize("body,words", [
    (b'{"runSettingId": "a"}', ["is not a JSON list of run settings", "object"]),
    (b"[1, 2]", ["item[0] is not a JSON object"]),
    (b'[{"runSettingId": "a"}, {"runSettingId": "a"}]', ["runSettingId 'a' appears twice"]),
    (b'[{"runSettingId": "a"}, {"runSettingId": NaN}]', ["is not a JSON list of run settings", "NaN"]),
    (b"\xff\xfe[]", ["not UTF-8"]),
    (b'[{"runSettingId": "a", "runSettingId": "b"}]', ["is not a JSON list of run settings", "runSettingId"]),
    (b'[{"runSettingId": "a"}, {"runSettingId": "b", "priority": "high"}]',
     ["item[1] (runSettingId 'b'): priority must be a whole number, got a string"]),
    (b'[{"runSettingId": "a", "name": 5}]', ["item[0] (runSettingId 'a'): name must be a string, got a number"]),
    (b'[{"runSettingId": 7}]', ["item[0]: runSettingId is a number; it must be a non-empty string"]),
    (b'[{"runSettingId": "a", "outputUri": []}]', ["(runSettingId 'a'): outputUri must be a string, got a list"]),
    (b'[{"runSettingId": "a", "cacheId": "123"}]',
     ["(runSettingId 'a'): 'cacheId' is not a member of a run setting; remove it or use one of runSettingId, name"]),
    (b'[{"runSettingId": "a", "runTags": {"sample": 12}}]',
     ["(runSettingId 'a'): runTags[\"sample\"] must be a string, got a number"]),
], ids=["object", "numbers", "duplicate", "nan", "not-utf8", "duplicate-key", "priority-text", "name-number",
        "id-number", "uri-list", "unknown-member", "tag-number"])
def test_bad_settings_file_sends_nothing(body, words, aws_env, s3_server, ledger_path, git_repo, run_cli):
    s3_server.create_bucket(Bucket=BUCKET)
    s3_server.put_object(Bucket=BUCKET, Key="cohort/settings.json", Body=body)
    uri = f"s3://{BUCKET}/cohort/settings.json"
    result = run_cli(*batch_args(json.dumps({"s3UriSettings": uri})))
    assert_refused(result, aws_env, ledger_path, uri, *words)


# -- submitting: the record, stdout as the aws CLI's -------------------------------------------------

def submit_inline(run_cli, emulator, *samples, more=()):
    result = run_cli(*batch_args(inline(*samples)), "--endpoint-url", emulator.endpoint_url, *more)
    assert result.exit_code == 0, result.output
    return result


def test_submit_batch_records_the_request_and_prints_the_response(aws_env, ledger_path, git_repo, run_cli, git):
    result = submit_inline(run_cli, aws_env, "NA12878", "NA12891", more=("--tags", "team=genomics"))
    printed = json.loads(result.stdout)
    assert set(printed) == {"arn", "id", "status", "uuid", "tags"} and printed["status"] == "CREATING"
    assert printed["tags"] == {"team": "genomics"}
    (call,) = sent(aws_env)
    (batch,) = records(ledger_path)
    assert batch["kind"] == "batch" and batch["request"] == call["params"]
    assert batch["request"]["requestId"] == call["params"]["requestId"]
    assert batch["outcome"] == {"status": "submitted", "response": printed}
    assert batch["batch"]["runs"] == 2
    assert batch["resolution"]["workflow"]["name"] == "cram-to-bam" and batch["resolution"]["template_checked"]
    # every S3 input of every run is in the record, resolved or with the reason it was not
    assert set(batch["resolution"]["inputs"]) == {*DEFAULT["parameters"].values(),
                                                  "s3://cohort-bucket/crams/NA12878.cram",
                                                  "s3://cohort-bucket/crams/NA12891.cram"}
    assert batch["git"]["commit"] == git(git_repo, "rev-parse", "HEAD")
    assert batch["fingerprint"] == rec.fingerprint(batch)
    assert not rec.schema_errors(batch)
    verify = run_cli("verify", "--no-remote")
    assert verify.exit_code == 0, verify.output


def test_query_and_text_output_as_the_aws_cli(aws_env, ledger_path, git_repo, run_cli):
    result = submit_inline(run_cli, aws_env, "a1", more=("--query", "id", "--output", "text"))
    (batch,) = records(ledger_path)
    assert result.stdout == batch["outcome"]["response"]["id"] + "\n"


def test_refused_batch_is_recorded_and_exits_1(aws_env, ledger_path, git_repo, run_cli):
    aws_env.inject("error", operation="StartRunBatch", code="ValidationException")
    result = run_cli(*batch_args(inline("a1")), "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 1
    assert "ValidationException" in result.stderr and "failed attempt" in result.stderr
    (batch,) = records(ledger_path)
    assert batch["outcome"]["status"] == "rejected" and batch["outcome"]["error"]["code"] == "ValidationException"


def test_unknown_outcome_stays_pending_and_recover_completes_it_once(aws_env, ledger_path, git_repo, run_cli):
    aws_env.inject("error", operation="StartRunBatch", count=3, phase="after")  # started, but 500 answered
    result = run_cli(*batch_args(inline("a1", "a2")), "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 1 and "pending" in result.stderr and "runlog recover" in result.stderr
    assert attempts(ledger_path) == 1 and records(ledger_path) == []
    recovered = run_cli("recover", "--json")
    assert recovered.exit_code == 0, recovered.output
    (batch,) = records(ledger_path)
    assert batch["kind"] == "batch" and batch["outcome"]["recovered"] is True
    listed = [r for r in aws_env.requests if r["operation"] == "StartRunBatch"]
    assert len({r["params"]["requestId"] for r in listed}) == 1  # the same requestId every time
    assert [b["id"] for b in omics(aws_env).list_batch()["items"]] == [batch["outcome"]["response"]["id"]]



def test_a_refusal_after_a_retried_server_error_leaves_the_batch_pending(aws_env, ledger_path, git_repo, run_cli):
    """StartRunBatch's first try starts the batch and is answered 500; the retry (same
    requestId) is refused with a 409. Not proof that nothing started: pending, then `recover`
    records the batch that did start."""
    aws_env.inject("error", operation="StartRunBatch", phase="after")  # started, answered 500
    aws_env.inject("error", operation="StartRunBatch", code="ConflictException", skip=1)  # the retry: 409
    result = run_cli(*batch_args(inline("a1", "a2")), "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 1
    assert "outcome is unknown" in result.stderr and "ConflictException" in result.stderr
    assert attempts(ledger_path) == 1 and records(ledger_path) == []
    (started,) = [b["id"] for b in omics(aws_env).list_batch()["items"]]
    recovered = run_cli("recover", "--json")
    assert recovered.exit_code == 0, recovered.output
    (batch,) = records(ledger_path)
    assert batch["outcome"]["status"] == "submitted" and batch["outcome"]["response"]["id"] == started
    assert [b["id"] for b in omics(aws_env).list_batch()["items"]] == [started]



def test_a_refused_resend_by_recover_leaves_the_batch_pending(aws_env, ledger_path, git_repo, run_cli):
    """The first send started the batch (every try answered 500); `recover` re-sends it and the
    service refuses (AccessDenied: other credentials now). No rejected record for a batch that
    exists: pending, and a later `recover` records it."""
    aws_env.inject("error", operation="StartRunBatch", count=3, phase="after")
    first = run_cli(*batch_args(inline("a1", "a2")), "--endpoint-url", aws_env.endpoint_url)
    assert first.exit_code == 1 and "pending" in first.stderr
    (started,) = [b["id"] for b in omics(aws_env).list_batch()["items"]]
    aws_env.inject("error", operation="StartRunBatch", code="AccessDeniedException")
    refused = run_cli("recover")
    assert refused.exit_code == 1 and "AccessDeniedException" in refused.stdout and "pending" in refused.stdout
    assert records(ledger_path) == []
    again = run_cli("recover", "--json")
    assert again.exit_code == 0, again.output
    (batch,) = records(ledger_path)
    assert batch["outcome"]["status"] == "submitted" and batch["outcome"]["response"]["id"] == started


# -- members ---------------------------------------------------------------------------------------

def test_refresh_records_each_member_once_with_its_effective_settings(aws_env, ledger_path, git_repo, run_cli):
    aws_env.batch_rate = 100
    printed = json.loads(submit_inline(run_cli, aws_env, "NA12878", "NA12891", "NA12892").stdout)
    batch_id = printed["id"]
    aws_env.advance(11)
    first = run_cli("refresh", batch_id)
    assert first.exit_code == 0, first.output
    assert f"batch {batch_id}:" in first.stdout and "3 new member record(s)" in first.stdout
    again = run_cli("refresh", batch_id)
    assert again.exit_code == 0 and "0 new member record(s)" in again.stdout
    members = records(ledger_path, "member")
    assert len(members) == 3
    (batch,) = records(ledger_path, "batch")
    with Ledger.open(ledger_path, create=False) as ledger:
        batch_address = ledger.entries(where="kind = 'batch'")[0].address
    by_id = {m["batch"]["run_setting_id"]: m for m in members}
    assert set(by_id) == {"NA12878", "NA12891", "NA12892"}
    member = by_id["NA12891"]
    assert member["batch"]["record"] == batch_address and member["batch"]["batch_id"] == batch_id
    assert member["request"]["parameters"] == {**DEFAULT["parameters"], "sample_name": "NA12891",
                                               "input_cram": "s3://cohort-bucket/crams/NA12891.cram"}
    assert member["request"]["name"] == "align-NA12891" and member["request"]["workflowId"] == WORKFLOW
    run = omics(aws_env).get_run(id=member["outcome"]["response"]["id"])
    assert run["uuid"] == member["outcome"]["response"]["uuid"] and run["parameters"] == member["request"]["parameters"]
    assert all(not rec.schema_errors(m) for m in members)
    # every REF form names a member: run id, uuid, ARN
    for ref in (run["id"], run["uuid"], run["arn"]):
        shown = run_cli("show", ref, "--json")
        assert shown.exit_code == 0 and json.loads(shown.stdout)["record"]["batch"]["run_setting_id"] == "NA12891"
    listed = run_cli("log", "--batch", batch_id, "--json")
    assert listed.exit_code == 0 and len(json.loads(listed.stdout)) == 3
    plain = json.loads(run_cli("log", "--json").stdout)
    assert [e["kind"] for e in plain] == ["batch"]  # members are listed with --batch only
    verify = run_cli("verify", "--no-remote")
    assert verify.exit_code == 0, verify.output


def test_log_batch_names_a_member_without_a_name_by_its_run_setting_id(aws_env, ledger_path, git_repo, run_cli):
    """A run setting without a name (nor one in the default): `log --batch` says which run it
    is by its runSettingId, not "-"; --json keeps the run's name as it is (null)."""
    aws_env.batch_rate = 100
    nameless = [{k: v for k, v in setting(s).items() if k != "name"} for s in ("NA12878", "NA12891")]
    settings = json.dumps({"inlineSettings": [*nameless, setting("NA12892")]})
    result = run_cli(*batch_args(settings), "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 0, result.output
    batch_id = json.loads(result.stdout)["id"]
    aws_env.advance(11)
    assert "3 new member record(s)" in run_cli("refresh", batch_id).stdout
    listed = run_cli("log", "--batch", batch_id)
    assert listed.exit_code == 0, listed.output
    rows = {line.split()[3]: line for line in listed.stdout.splitlines()[1:]}  # after the date and time
    runs = {m["batch"]["run_setting_id"]: m["outcome"]["response"]["id"] for m in records(ledger_path, "member")}
    assert "(runSettingId NA12878)" in rows[runs["NA12878"]] and "(runSettingId NA12891)" in rows[runs["NA12891"]]
    assert " align-NA12892 " in rows[runs["NA12892"]] and "runSettingId" not in rows[runs["NA12892"]]
    refreshed = run_cli("log", "--batch", batch_id, "--refresh")  # --refresh reopens the ledger
    assert refreshed.exit_code == 0 and "(runSettingId NA12878)" in refreshed.stdout, refreshed.output
    as_json = json.loads(run_cli("log", "--batch", batch_id, "--json").stdout)
    assert {e["run_id"]: e["name"] for e in as_json} == {runs["NA12878"]: None, runs["NA12891"]: None,
                                                         runs["NA12892"]: "align-NA12892"}
    assert {e["run_id"]: e["run_setting_id"] for e in as_json} == {v: k for k, v in runs.items()}  # every member's


def test_a_ledger_that_outlives_an_emulator_gets_new_batch_ids_from_the_next(ledger_path, git_repo, run_cli,
                                                                            monkeypatch):
    """`runlog emulator` stopped and started again (a demo the next day, the same ledger): its
    batch ids start elsewhere, so the second batch is not given the first one's id."""
    from runlog.emulator import Emulator

    ids = []
    for _ in range(2):
        with Emulator(port=0) as emulator:  # the defaults, as `runlog emulator` starts it
            monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.endpoint_url)
            ids.append(json.loads(submit_inline(run_cli, emulator, "NA12878").stdout)["id"])
    assert ids[0] != ids[1] and all(len(i) == 7 and "8100001" <= i < "9900001" for i in ids), ids
    for batch_id in ids:  # each REF names its one batch
        shown = run_cli("show", batch_id, "--json")
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.stdout)["record"]["outcome"]["response"]["id"] == batch_id


def test_show_batch_counts_and_failures_with_reasons(aws_env, ledger_path, git_repo, run_cli):
    aws_env.batch_rate = 100
    aws_env.batch_fault("start", reason="ServiceQuotaExceeded", message="too many runs", run_setting_ids=["s1"])
    aws_env.batch_fault("run", reason="OUT_OF_MEMORY", run_setting_ids=["s2"])
    batch_id = json.loads(submit_inline(run_cli, aws_env, "s0", "s1", "s2", "s3").stdout)["id"]
    aws_env.advance(200)
    watched = run_cli("watch", batch_id, "--interval", "0.1")
    assert watched.exit_code == 1, watched.output  # not every run completed
    assert "PROCESSED" in watched.stdout
    shown = run_cli("show", batch_id)
    assert shown.exit_code == 0, shown.output
    text = shown.stdout
    assert "submission   FAILED 1, SUCCESS 3" in text
    assert "run status   COMPLETED 2, FAILED 1" in text
    assert "s1 (submission): ServiceQuotaExceeded: too many runs" in text
    assert "s2 (run " in text and "OUT_OF_MEMORY" in text
    facts = json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]
    assert facts["submission"] == {"SUCCESS": 3, "FAILED": 1}
    assert facts["run_status"] == {"COMPLETED": 2, "FAILED": 1}
    assert facts["batch_status"] == "PROCESSED"


# -- s3UriSettings: the cohort file pinned and kept, inputs identified by listing -------------------

def test_s3_settings_file_is_pinned_and_inputs_listed_in_bulk(s3_server, s3_emulator, ledger_path, git_repo,
                                                               run_cli):
    s3_server.create_bucket(Bucket=BUCKET)
    samples = [f"S{i:03d}" for i in range(40)]
    for name in ("genome.dict", "genome.fasta", "genome.fasta.fai"):
        s3_server.put_object(Bucket=BUCKET, Key=f"ref/{name}", Body=name.encode())
    for sample in samples[:-1]:  # the last sample's CRAM is missing
        s3_server.put_object(Bucket=BUCKET, Key=f"crams/{sample}.cram", Body=sample.encode())
    s3_server.put_object(Bucket=BUCKET, Key="crams/unrelated.txt", Body=b"x")
    body = json.dumps([setting(s) for s in samples]).encode()
    put = s3_server.put_object(Bucket=BUCKET, Key="cohort/settings.json", Body=body)
    uri = f"s3://{BUCKET}/cohort/settings.json"
    result = run_cli(*batch_args(json.dumps({"s3UriSettings": uri})))
    assert result.exit_code == 0, result.output
    (batch,) = records(ledger_path)
    pinned = batch["batch"]["settings_file"]
    assert pinned["etag"] == put["ETag"].strip('"') and pinned["sha256"] == rec.sha256_hex(body)
    assert pinned["content"] == json.loads(body) and batch["batch"]["runs"] == 40
    inputs = batch["resolution"]["inputs"]
    assert inputs["s3://cohort-bucket/crams/S000.cram"]["etag"] == s3_server.head_object(
        Bucket=BUCKET, Key="crams/S000.cram")["ETag"].strip('"')
    assert inputs["s3://cohort-bucket/crams/S039.cram"]["error"]["code"] == "NotFound"
    assert any("1 input(s) not resolved" in w for w in batch["warnings"])
    # the 40 CRAMs were listed (ListObjectsV2), not asked for one by one
    assert not rec.schema_errors(batch)
    # the file changes after submission: the record still holds what was sent
    s3_server.put_object(Bucket=BUCKET, Key="cohort/settings.json", Body=b"[]")
    s3_emulator.advance(30)
    refreshed = run_cli("refresh", batch["outcome"]["response"]["id"])
    assert refreshed.exit_code == 0, refreshed.output
    members = records(ledger_path, "member")
    assert len(members) == 40
    assert {m["request"]["parameters"]["sample_name"] for m in members} == set(samples)


def test_bulk_identities_list_shared_prefixes_instead_of_one_head_each(s3_server):
    import time

    from runlog.batch import bulk_s3_identities

    s3_server.create_bucket(Bucket=BUCKET)
    for i in range(1200):
        s3_server.put_object(Bucket=BUCKET, Key=f"crams/S{i:04d}.cram", Body=b"")
    s3_server.put_object(Bucket=BUCKET, Key="ref/genome.fasta", Body=b"ACGT")
    calls: list[str] = []
    s3_server.meta.events.register("before-call.s3.*", lambda model, **kw: calls.append(model.name))
    wanted = [f"s3://{BUCKET}/crams/S{i:04d}.cram" for i in range(0, 1200, 2)] + [
        f"s3://{BUCKET}/ref/genome.fasta", f"s3://{BUCKET}/crams/missing.cram"]
    found = bulk_s3_identities(s3_server, wanted, deadline=time.monotonic() + 60)
    assert list(found) == wanted
    assert all(found[u]["etag"] for u in wanted[:-1]) and found[wanted[-1]]["error"]["code"] == "NotFound"
    assert calls.count("HeadObject") == 1  # the lone reference
    assert calls.count("ListObjectsV2") == 2  # 1 000 keys a call
    # a budget already spent resolves nothing and says so
    late = bulk_s3_identities(s3_server, wanted[:3], deadline=time.monotonic() - 1)
    assert {v["error"]["code"] for v in late.values()} == {"Timeout"}


# -- diff and replay -------------------------------------------------------------------------------

def test_diff_two_batches_answers_the_cohort_questions(aws_env, ledger_path, git_repo, run_cli):
    first = json.loads(submit_inline(run_cli, aws_env, "NA12878", "NA12891", "NA12892").stdout)["id"]
    changed = json.loads(inline("NA12878", "NA12891", "NA12893"))
    changed["inlineSettings"][1]["priority"] = 5
    default = {**DEFAULT, "parameters": {**DEFAULT["parameters"], "ref_fasta": "s3://cohort-bucket/ref/v2.fasta"}}
    second = run_cli(*batch_args(json.dumps(changed), default), "--endpoint-url", aws_env.endpoint_url)
    assert second.exit_code == 0, second.output
    result = run_cli("diff", first, json.loads(second.stdout)["id"], "--json", "--exit-code")
    assert result.exit_code == 1, result.output
    changes = {(c["section"], c["path"], c["kind"]) for c in json.loads(result.stdout)["changes"]}
    assert ("runs", "NA12892", "removed") in changes and ("runs", "NA12893", "added") in changes
    assert ("default setting", "parameters.ref_fasta", "changed") in changes
    assert ("run settings", "NA12891.priority", "added") in changes
    assert not any(c[0] == "run settings" and c[1].startswith("NA12878") for c in changes)
    same = run_cli("diff", first, first, "--exit-code")
    assert same.exit_code == 0 and "No differences" in same.stdout
    assert f"  batch {first}  uuid " in same.stdout and f"run {first}" not in same.stdout  # named as a batch
    alone = run_cli("diff", first)  # "as it would be submitted now" is for runs
    assert alone.exit_code == 2 and "a batch is compared with another batch" in alone.stderr


def test_diff_two_members_shows_only_their_own_settings(aws_env, ledger_path, git_repo, run_cli):
    aws_env.batch_rate = 100
    batch_id = json.loads(submit_inline(run_cli, aws_env, "NA12878", "NA12891").stdout)["id"]
    aws_env.advance(11)
    assert run_cli("refresh", batch_id).exit_code == 0
    ids = {m["batch"]["run_setting_id"]: m["outcome"]["response"]["id"] for m in records(ledger_path, "member")}
    result = run_cli("diff", ids["NA12878"], ids["NA12891"], "--json")
    assert result.exit_code == 0, result.output
    paths = {(c["section"], c["path"]) for c in json.loads(result.stdout)["changes"]}
    assert paths == {("parameters", "sample_name"), ("parameters", "input_cram")}


def test_replay_failed_runs_as_a_new_batch_and_a_member_as_a_run(aws_env, ledger_path, git_repo, run_cli, git):
    aws_env.batch_rate = 100
    aws_env.batch_fault("run", reason="OUT_OF_MEMORY", run_setting_ids=["s2"])
    batch_id = json.loads(submit_inline(run_cli, aws_env, "s0", "s1", "s2").stdout)["id"]
    aws_env.advance(200)
    assert run_cli("refresh", batch_id).exit_code == 0
    again = run_cli("replay", batch_id, "--only", "failed", "--set", "ref_dict=s3://cohort-bucket/ref/genome-v2.dict",
                    "--endpoint-url", aws_env.endpoint_url)
    assert again.exit_code == 0, again.output
    new_id = json.loads(again.stdout)["id"]
    assert new_id != batch_id
    (original,) = [r for r in records(ledger_path, "batch") if r["outcome"]["response"]["id"] == batch_id]
    (replayed,) = [r for r in records(ledger_path, "batch") if r["outcome"]["response"]["id"] == new_id]
    assert [s["runSettingId"] for s in replayed["request"]["batchRunSettings"]["inlineSettings"]] == ["s2"]
    assert replayed["request"]["requestId"] != original["request"]["requestId"]
    assert replayed["lineage"]["replay_of"]["run_id"] == batch_id
    assert replayed["lineage"]["overrides"] == {"runs": ["s2"],
                                                "parameters": {"ref_dict": "s3://cohort-bucket/ref/genome-v2.dict"}}
    assert replayed["request"]["defaultRunSetting"]["parameters"]["ref_dict"] == "s3://cohort-bucket/ref/genome-v2.dict"
    shown = json.loads(run_cli("show", batch_id, "--json").stdout)
    assert shown["address"] == replayed["lineage"]["replay_of"]["record"]
    # drift is refused as for runs
    (git_repo / "new.txt").write_text("x")
    refused = run_cli("replay", batch_id, "--endpoint-url", aws_env.endpoint_url)
    assert refused.exit_code == 3 and "drift" in refused.stderr
    # one member alone, as a single run with the member's effective settings
    member = next(m for m in records(ledger_path, "member") if m["batch"]["run_setting_id"] == "s1")
    single = run_cli("replay", member["outcome"]["response"]["id"], "--allow-drift",
                     "--endpoint-url", aws_env.endpoint_url)
    assert single.exit_code == 0, single.output
    (run,) = [r for r in records(ledger_path) if r["kind"] == "replay"]
    assert run["request"]["parameters"] == member["request"]["parameters"]
    assert run["request"]["tags"]["project"] == "cohort"  # the member's runTags, as the run's tags
    assert run["lineage"]["replay_of"]["run_id"] == member["outcome"]["response"]["id"]


def test_export_of_a_batch_is_its_cohort(aws_env, ledger_path, git_repo, run_cli, tmp_path):
    aws_env.batch_rate = 100
    batch_id = json.loads(submit_inline(run_cli, aws_env, "NA12878", "NA12891").stdout)["id"]
    early = run_cli("export", batch_id, "-f", "prov-json", "-o", tmp_path / "early.json")
    assert early.exit_code == 2 and f"runlog refresh {batch_id}" in early.stderr
    aws_env.advance(200)
    assert run_cli("refresh", batch_id).exit_code == 0
    result = run_cli("export", batch_id, "-f", "all", "-o", tmp_path / "cohort", "--license", "CC-BY-4.0")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "cohort" / "prov.json").read_text()
    members = records(ledger_path, "member")
    assert all(m["outcome"]["response"]["id"] in text for m in members)


def test_import_leaves_a_recorded_batch_runs_to_refresh(aws_env, ledger_path, git_repo, run_cli):
    aws_env.batch_rate = 100
    batch_id = json.loads(submit_inline(run_cli, aws_env, "NA12878", "NA12891").stdout)["id"]
    aws_env.advance(11)
    imported = run_cli("import", "--json")
    assert imported.exit_code == 0, imported.output
    names = {item["name"] for item in json.loads(imported.stdout)["imported"]}
    assert not names & {"align-NA12878", "align-NA12891"}  # the batch's runs are not imports
    assert run_cli("refresh", batch_id).exit_code == 0
    assert len(records(ledger_path, "member")) == 2
    assert [r for r in records(ledger_path, "import") if r["request"].get("name", "").startswith("align-")] == []


def test_push_and_pull_carry_batches_and_members(aws_env, bucket, ledger_path, git_repo, run_cli, tmp_path):
    aws_env.batch_rate = 100
    aws_env.batch_fault("run", reason="OUT_OF_MEMORY", run_setting_ids=["s1"])
    batch_id = json.loads(submit_inline(run_cli, aws_env, "s0", "s1", "s2").stdout)["id"]
    aws_env.advance(200)
    assert run_cli("refresh", batch_id).exit_code == 0
    remote = "s3://lab-provenance/runlog"
    pushed = run_cli("push", remote)
    assert pushed.exit_code == 0, pushed.output
    other = tmp_path / "other.db"
    pulled = run_cli("--ledger", other, "pull", remote)
    assert pulled.exit_code == 0, pulled.output
    with Ledger.open(other, create=False) as ledger:
        kinds = sorted(e.kind for e in ledger.entries())
        assert kinds == ["batch", "member", "member", "member"]
    shown = json.loads(run_cli("--ledger", other, "show", batch_id, "--json").stdout)["batch"]
    assert shown["run_status"] == {"COMPLETED": 2, "FAILED": 1}
    assert run_cli("--ledger", other, "verify", "--no-remote").exit_code == 0
    # a second refresh in the first ledger adds nothing to push
    assert "0 new member record(s)" in run_cli("refresh", batch_id).stdout


def test_cancel_is_recorded_as_observations_and_deletes_nothing(aws_env, ledger_path, git_repo, run_cli):
    aws_env.batch_rate = 1
    batch_id = json.loads(submit_inline(run_cli, aws_env, "s0", "s1", "s2", "s3").stdout)["id"]
    aws_env.advance(12)  # two runs submitted, two to come
    assert run_cli("refresh", batch_id).exit_code == 0
    before = len(records(ledger_path))
    result = run_cli("cancel", batch_id)
    assert result.exit_code == 0, result.output
    assert f"batch {batch_id}: CancelRunBatch asked" in result.stdout
    assert omics(aws_env).get_batch(batchId=batch_id)["status"] in ("STOPPING", "CANCELLED")
    shown = json.loads(run_cli("show", batch_id, "--json").stdout)
    sources = [o["source"] for o in shown["observations"]]
    assert "CancelRunBatch" in sources and sources[-1] == "GetBatch"
    again = run_cli("cancel", batch_id)  # the service refuses a second cancel: recorded too, exit 1
    assert again.exit_code == 1 and again.stderr.startswith("runlog: error: ")
    shown = json.loads(run_cli("show", batch_id, "--json").stdout)
    assert sum(o["source"] == "CancelRunBatch" for o in shown["observations"]) == 2
    assert len(records(ledger_path)) == before  # nothing added or removed but observations
    member = records(ledger_path, "member")[0]["outcome"]["response"]["id"]
    not_batch = run_cli("cancel", member)
    assert not_batch.exit_code == 2 and "not a batch" in not_batch.stderr
    assert run_cli("verify", "--no-remote").exit_code == 0


def test_a_cancel_whose_answer_is_lost_is_not_recorded_as_refused(aws_env, ledger_path, git_repo, run_cli):
    """CancelRunBatch carried out, but every try answered 500: the observation says the outcome
    is unknown (not refused), and GetBatch, asked next, records what the batch is now."""
    aws_env.batch_rate = 1
    batch_id = json.loads(submit_inline(run_cli, aws_env, "s0", "s1", "s2").stdout)["id"]
    aws_env.advance(6)
    aws_env.inject("error", operation="CancelRunBatch", phase="after", count=3)
    result = run_cli("cancel", batch_id)
    assert result.exit_code == 1
    assert "outcome is unknown" in result.stderr and "InternalServerException" in result.stderr
    now = omics(aws_env).get_batch(batchId=batch_id)["status"]
    assert now in ("STOPPING", "CANCELLED") and now in result.stderr
    observations = json.loads(run_cli("show", batch_id, "--json").stdout)["observations"]
    (asked,) = [o for o in observations if o["source"] == "CancelRunBatch"]
    assert asked["body"]["outcome"] == "unknown"
    assert observations[-1]["source"] == "GetBatch" and observations[-1]["body"]["status"] == now
    again = run_cli("cancel", batch_id)  # refused now (the batch is no longer running): proven, recorded as such
    assert again.exit_code == 1 and "outcome is unknown" not in again.stderr
    observations = json.loads(run_cli("show", batch_id, "--json").stdout)["observations"]
    assert [o["body"]["outcome"] for o in observations if o["source"] == "CancelRunBatch"] == ["unknown", "refused"]


def test_batch_lookups_and_log_without_members_use_indexes(tmp_path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        queries = [
            ("SELECT * FROM records WHERE kind != 'member' ORDER BY created DESC, seq DESC LIMIT 21", (),
             "records_created_no_members"),
            ("SELECT * FROM records WHERE batch_id = ? AND kind = 'member'", ("1",), "records_batch_id"),
            ("SELECT * FROM records WHERE batch_id = ? AND kind = 'batch'", ("1",), "records_batch_id"),
        ]
        for sql, params, index in queries:
            plan = " ".join(r[-1] for r in ledger.conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
            assert index in plan and "TEMP B-TREE" not in plan, (sql, plan)


def test_refresh_without_refs_pages_unfinished_batches_not_one_getrun_per_member(aws_env, ledger_path, git_repo,
                                                                                  run_cli):
    aws_env.batch_rate = 100
    aws_env.batch_fault("run", reason="OUT_OF_MEMORY", run_setting_ids=["s3"])
    batch_id = json.loads(submit_inline(run_cli, aws_env, *[f"s{i}" for i in range(6)]).stdout)["id"]
    aws_env.advance(11)
    first = run_cli("refresh")
    assert first.exit_code == 0 and "6 new member record(s)" in first.stdout, first.output
    aws_env.advance(200)
    before = len(aws_env.requests)
    second = run_cli("refresh")
    assert second.exit_code == 0 and f"batch {batch_id}: PROCESSED" in second.stdout, second.output
    calls = [r["operation"] for r in aws_env.requests[before:]]
    assert calls.count("GetRun") == 1  # the failed run's reason only
    assert calls.count("ListRunsInBatch") == 1 and calls.count("ListRuns") == 1
    third = run_cli("refresh")  # a PROCESSED batch is finished: nothing to ask
    assert "no unfinished runs to refresh" in third.stderr
    statuses = json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]["run_status"]
    assert statuses == {"COMPLETED": 5, "FAILED": 1}


def test_a_bare_list_of_run_settings_is_refused_with_the_object_it_belongs_in(tmp_path, aws_env, ledger_path, git_repo,
                                                                               run_cli):
    """`--batch-run-settings file://list.json` holding a list of run settings (the shape of a
    settings file, not of the option): one line naming the object the list goes in, exit 2,
    nothing sent or written; the library says the same for a list given as batchRunSettings."""
    from runlog import Runlog
    from runlog.errors import UsageError

    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([{"runSettingId": "a", "parameters": {"x": "1"}}]))
    default = {"workflowId": WORKFLOW, "roleArn": "arn:aws:iam::123456789012:role/r", "outputUri": "s3://b/o/"}
    result = run_cli("submit-batch", "--default-run-setting", json.dumps(default), "--batch-run-settings",
                     f"file://{listed}")
    assert_refused(result, aws_env, ledger_path, "got a list; a list of run settings goes inside an object: "
                   '{"inlineSettings": [...]}', '{"s3UriSettings": "s3://')
    with pytest.raises(UsageError, match=r"got a list; a list of run settings goes inside an object"):
        Runlog(ledger_path).start_run_batch(defaultRunSetting=default, batchRunSettings=json.loads(listed.read_text()))
    assert sent(aws_env) == [] and attempts(ledger_path) == 0


def test_diff_lines_up_the_values_of_run_settings_whose_ids_are_escaped(aws_env, ledger_path, git_repo, run_cli):
    """A run setting id holding a character the terminal is shown escaped (U+2028, a line
    separator the service's pattern allows): the id is wider on screen than in the record,
    and the values after it still start in the same column as the other runs'."""
    from helpers import submit_cohort

    first = submit_cohort(run_cli, "S1", "S2")
    second = submit_cohort(run_cli, "S1", "S\u20282", "S3")
    result = run_cli("diff", first, second)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line[:2] in ("+ ", "- ")]
    assert len(lines) == 3 and any("S\\u20282 " in line for line in lines), result.stdout  # shown escaped
    assert len({line.index('{"name"') for line in lines}) == 1, result.stdout  # the values in one column


def test_members_handed_over_as_another_batchs_are_refused_and_their_own_batch_is_kept(aws_env, ledger_path, git_repo,
                                                                                        run_cli):
    """A refresh hands the ledger each page of members with the address of their batch
    (batch_members then takes it instead of reading every member's JSON): a member that
    names another batch is refused, nothing of its page written; handed over with its own
    batch, it is written and batch_members links it to that batch, as verify recomputes it."""
    from helpers import submit_cohort
    from runlog.batch import member_record
    from runlog.errors import LedgerError

    first, second = submit_cohort(run_cli, "S1", "S2"), submit_cohort(run_cli, "S3")
    with Ledger.open(ledger_path, create=False) as ledger:
        batch, other = ledger.resolve(first), ledger.resolve(second)
        whole = ledger.get(batch.address).record
        encoded = Ledger.encode_records([member_record(whole, batch.address, {
            "runSettingId": "S1", "runId": "4200001", "runInternalUuid": "0b7b3c1e-0000-4000-8000-000000000001",
            "runArn": "arn:aws:omics:us-west-2:111122223333:run/4200001"})])
        with pytest.raises(LedgerError, match="names another batch: nothing of the page was written"):
            ledger.write_records(encoded, other.address)
        assert ledger.conn.execute("SELECT count(*) FROM records WHERE kind = 'member'").fetchone()[0] == 0
        assert ledger.write_records(encoded, batch.address) == 1
        assert ledger.conn.execute("SELECT count(*) FROM batch_members WHERE batch = ?", (batch.seq,)).fetchone()[0] == 1
    verified = run_cli("verify")
    assert verified.exit_code == 0, verified.output
