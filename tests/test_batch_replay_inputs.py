"""Replaying a batch, or one of its members, checks the identities of the inputs its batch
record pinned (as a run's replay checks its own), and so does watching a member; the Python
API starts, wraps, replays and watches batches as the command line does. moto's S3 over HTTP holds the inputs; the emulator
answers HealthOmics; a real git repository and ledger file."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config

import runlog
from runlog.ledger import Ledger

ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"
BUCKET = "cohort-bucket"
DEFAULT = {"workflowId": "1234567", "roleArn": ROLE, "outputUri": f"s3://{BUCKET}/out/",
           "parameters": {"ref_dict": f"s3://{BUCKET}/ref/genome.dict",
                          "ref_fasta": f"s3://{BUCKET}/ref/genome.fasta",
                          "ref_fasta_index": f"s3://{BUCKET}/ref/genome.fasta.fai"}}
SAMPLES = ["S1", "S2", "S3"]


def cram(sample: str) -> str:
    return f"crams/{sample}.cram"


def setting(sample: str) -> dict:
    return {"runSettingId": sample, "name": f"align-{sample}",
            "parameters": {"sample_name": sample, "input_cram": f"s3://{BUCKET}/{cram(sample)}"}}


@pytest.fixture
def cohort(s3_server, s3_emulator, ledger_path, git_repo, run_cli):
    """A 3-run batch whose inputs are in S3, submitted with runlog (its identities resolved),
    run to the end and refreshed (its members recorded). Returns the batch id."""
    s3_server.create_bucket(Bucket=BUCKET)
    for key in ["ref/genome.dict", "ref/genome.fasta", "ref/genome.fasta.fai", *map(cram, SAMPLES)]:
        s3_server.put_object(Bucket=BUCKET, Key=key, Body=f"bytes of {key}".encode())
    s3_emulator.batch_rate = 100
    result = run_cli("submit-batch", "--batch-name", "cohort", "--default-run-setting", json.dumps(DEFAULT),
                     "--batch-run-settings", json.dumps({"inlineSettings": [setting(s) for s in SAMPLES]}))
    assert result.exit_code == 0, result.output
    batch_id = json.loads(result.stdout)["id"]
    with Ledger.open(ledger_path, create=False) as ledger:
        (batch,) = ledger.entries(where="kind = 'batch'")
        pinned = batch.record["resolution"]["inputs"]
    assert all("etag" in pinned[f"s3://{BUCKET}/{cram(s)}"] for s in SAMPLES)  # resolved, so checkable
    s3_emulator.advance(400)
    assert run_cli("refresh", batch_id).exit_code == 0
    return batch_id


def started(emulator, operation: str) -> int:
    return sum(1 for r in emulator.requests if r["operation"] == operation)


def batches(ledger_path) -> list[dict]:
    with Ledger.open(ledger_path, create=False) as ledger:
        return [e.record for e in ledger.entries(where="kind = 'batch'")]


def member_run_id(ledger_path, sample: str) -> str:
    with Ledger.open(ledger_path, create=False) as ledger:
        (member,) = [e for e in ledger.entries(where="kind = 'member'")
                     if e.record["batch"]["run_setting_id"] == sample]
        return member.run_id


def test_a_changed_input_of_one_run_refuses_the_batch_replay_and_is_recorded_when_allowed(
        cohort, s3_server, s3_emulator, ledger_path, run_cli):
    unchanged = run_cli("replay", cohort, "--dry-run")
    assert unchanged.exit_code == 0, unchanged.output
    assert json.loads(unchanged.stdout)["drift"] == [] and "drift" not in unchanged.stderr
    s3_server.put_object(Bucket=BUCKET, Key=cram("S2"), Body=b"other bytes, same name")
    before = started(s3_emulator, "StartRunBatch")
    refused = run_cli("replay", cohort)
    assert refused.exit_code == 3, refused.output
    assert f"drift: input s3://{BUCKET}/crams/S2.cram etag changed" in refused.stderr
    assert "S1.cram" not in refused.stderr and "S3.cram" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith("runlog: error: replay refused: ")
    assert started(s3_emulator, "StartRunBatch") == before and len(batches(ledger_path)) == 1
    allowed = run_cli("replay", cohort, "--allow-drift")
    assert allowed.exit_code == 0, allowed.output
    (replayed,) = [b for b in batches(ledger_path) if b["outcome"]["response"]["id"] == json.loads(allowed.stdout)["id"]]
    assert {d["what"] for d in replayed["lineage"]["drift"]} >= {f"s3://{BUCKET}/crams/S2.cram etag"}
    assert all(d["kind"] == "input" for d in replayed["lineage"]["drift"])


def test_only_the_selected_runs_inputs_are_checked(cohort, s3_server, s3_emulator, ledger_path, run_cli):
    s3_server.delete_object(Bucket=BUCKET, Key=cram("S2"))
    other = run_cli("replay", cohort, "--only", "S3")
    assert other.exit_code == 0, other.output
    refused = run_cli("replay", cohort, "--only", "S2", "--only", "S3")
    assert refused.exit_code == 3, refused.output
    assert f"drift: input s3://{BUCKET}/crams/S2.cram changed: present -> " in refused.stderr


def test_a_member_replay_checks_the_inputs_its_batch_pinned(cohort, s3_server, ledger_path, run_cli):
    s3_server.put_object(Bucket=BUCKET, Key=cram("S1"), Body=b"re-aligned")
    refused = run_cli("replay", member_run_id(ledger_path, "S1"))
    assert refused.exit_code == 3, refused.output
    assert f"drift: input s3://{BUCKET}/crams/S1.cram" in refused.stderr
    assert "inputs: not checked" not in refused.stderr
    fine = run_cli("replay", member_run_id(ledger_path, "S3"), "--dry-run")
    assert fine.exit_code == 0, fine.output
    assert json.loads(fine.stdout)["drift"] == [] and "inputs: not checked" not in fine.stderr


def test_a_member_replay_checks_the_workflow_digest_its_batch_resolved(cohort, s3_emulator, ledger_path, run_cli):
    from runlog.emulator.seed import WORKFLOWS

    run_id = member_run_id(ledger_path, "S2")
    fine = run_cli("replay", run_id, "--dry-run")
    assert fine.exit_code == 0, fine.output
    assert "workflow: not checked" not in fine.stderr  # the batch record resolved it
    (seed,) = [w for w in WORKFLOWS if w["owner"] is None and w["id"] == DEFAULT["workflowId"]]
    s3_emulator.add_workflow(seed["id"], "cram-to-bam-v2", template=seed["template"], versions=seed["versions"])
    refused = run_cli("replay", run_id)
    assert refused.exit_code == 3, refused.output
    assert "drift: workflow digest changed: sha256:" in refused.stderr
    assert started(s3_emulator, "StartRun") == 0


def test_a_changed_reference_shared_by_every_run_is_one_finding(cohort, s3_server, run_cli):
    s3_server.put_object(Bucket=BUCKET, Key="ref/genome.fasta", Body=b"GRCh38 patch 14")
    refused = run_cli("replay", cohort, "--dry-run", "--json")
    plan = json.loads(refused.stdout)
    assert {d["what"].split(" ")[0] for d in plan["drift"]} == {f"s3://{BUCKET}/ref/genome.fasta"}
    fields = [d["what"].split(" ")[1] for d in plan["drift"]]
    assert "etag" in fields and len(fields) == len(set(fields))  # once, not once per run naming it
    assert "would be refused (exit 3)" in refused.stderr


# -- the Python API ------------------------------------------------------------------------------

def test_the_api_starts_a_batch_and_records_it(s3_server, s3_emulator, ledger_path, git_repo):
    s3_server.create_bucket(Bucket=BUCKET)
    with runlog.Runlog(ledger_path) as rl:
        response = rl.start_run_batch(batchName="cohort", defaultRunSetting=DEFAULT,
                                      batchRunSettings={"inlineSettings": [setting(s) for s in SAMPLES]})
        shown = rl.show(response["id"])
    assert response["ResponseMetadata"]["HTTPStatusCode"] in (200, 201, 202)
    (record,) = batches(ledger_path)
    assert record["outcome"]["response"]["id"] == response["id"] == shown.batch_id
    assert [s["runSettingId"] for s in record["request"]["batchRunSettings"]["inlineSettings"]] == SAMPLES
    assert started(s3_emulator, "StartRunBatch") == 1
    with runlog.Runlog(ledger_path) as rl, pytest.raises(runlog.UsageError, match="unknown StartRunBatch member"):
        rl.start_run_batch(defaultRunSetting=DEFAULT, batchRunSettings={"inlineSettings": []}, runId="1")
    assert started(s3_emulator, "StartRunBatch") == 1 and len(batches(ledger_path)) == 1


def test_a_wrapped_client_records_its_batches(s3_server, s3_emulator, ledger_path, git_repo):
    s3_server.create_bucket(Bucket=BUCKET)
    client = boto3.client("omics", endpoint_url=s3_emulator.endpoint_url, region_name="eu-west-1",
                          config=Config(inject_host_prefix=False))
    with runlog.wrap(client, ledger=ledger_path) as omics:
        assert "start_run_batch" in dir(omics)
        response = omics.start_run_batch(defaultRunSetting=DEFAULT,
                                         batchRunSettings={"inlineSettings": [setting("S1")]})
        assert omics.get_batch(batchId=response["id"])["id"] == response["id"]  # the client's own
    (record,) = batches(ledger_path)
    assert record["outcome"]["response"]["arn"] == response["arn"] and ":eu-west-1:" in response["arn"]
    assert record["aws"]["region"] == "eu-west-1" and record["aws"]["endpoint_url"] == s3_emulator.endpoint_url


def test_the_api_replays_a_batch_with_its_drift(cohort, s3_server, s3_emulator, ledger_path):
    s3_server.put_object(Bucket=BUCKET, Key=cram("S3"), Body=b"changed")
    with runlog.Runlog(ledger_path) as rl:
        plan = rl.replay(cohort, dry_run=True)
        assert [d["what"] for d in plan.drift][:1] == [f"s3://{BUCKET}/crams/S3.cram etag"]
        assert plan.request["requestId"] and plan.lineage["replay_of"]["run_id"] == cohort and plan.response is None
        with pytest.raises(runlog.DriftError) as caught:
            rl.replay(cohort)
        assert caught.value.exit_code == 3 and caught.value.items
        only = rl.replay(cohort, only=["S1"], set={"ref_dict": f"s3://{BUCKET}/ref/genome-v2.dict"})
        with pytest.raises(runlog.UsageError, match="is for a batch's runs"):
            rl.replay(member_run_id(ledger_path, "S1"), only=["S1"])
    assert only.response["id"] != cohort and only.drift == []
    (replayed,) = [b for b in batches(ledger_path) if b["outcome"]["response"]["id"] == only.response["id"]]
    assert replayed["lineage"]["overrides"] == {"runs": ["S1"],
                                                "parameters": {"ref_dict": f"s3://{BUCKET}/ref/genome-v2.dict"}}
    assert [s["runSettingId"] for s in replayed["request"]["batchRunSettings"]["inlineSettings"]] == ["S1"]


def test_a_refused_batch_raises_service_error_naming_the_kept_attempt(s3_server, s3_emulator, ledger_path, git_repo):
    s3_server.create_bucket(Bucket=BUCKET)
    s3_emulator.inject("error", operation="StartRunBatch", count=5, code="AccessDeniedException")
    with runlog.Runlog(ledger_path) as rl, pytest.raises(runlog.ServiceError) as caught:
        rl.start_run_batch(defaultRunSetting=DEFAULT, batchRunSettings={"inlineSettings": [setting("S1")]})
    assert caught.value.code == "AccessDeniedException" and caught.value.operation == "StartRunBatch"
    (record,) = batches(ledger_path)
    assert record["outcome"]["status"] == "rejected" and caught.value.record
    with Ledger.open(ledger_path, create=False) as ledger:
        assert ledger.resolve(caught.value.record).outcome == "rejected"


def test_inputs_the_time_budget_leaves_are_one_finding_not_one_per_input(cohort, s3_server, run_cli, monkeypatch):
    """A budget too short to list the cohort's inputs again (S3 answering in 0.5 s, a budget
    of 0.2 s) refuses the replay, since an unverified input is never taken for an unchanged
    one, with one finding that says how many, not a line per input."""
    from helpers import S3Proxy, proxy_in_front

    with proxy_in_front(S3Proxy, s3_server, monkeypatch) as slow:
        slow.latency = 0.5
        refused = run_cli("replay", cohort, "--resolve-timeout", "0.2")
    assert refused.exit_code == 3, refused.output
    (finding,) = [line for line in refused.stderr.splitlines() if line.startswith("runlog: warning: drift: input")]
    assert "input(s) not checked within the time budget" in finding and "longer resolve timeout" in finding


def test_watching_a_member_compares_what_it_read_with_what_its_batch_pinned(cohort, s3_server, ledger_path,
                                                                           run_cli):
    s3_server.put_object(Bucket=BUCKET, Key=cram("S2"), Body=b"overwritten before the run read it")
    changed = run_cli("watch", member_run_id(ledger_path, "S2"), "--interval", "0.1")
    assert changed.exit_code == 1, changed.output
    assert f"input changed between submission and execution: s3://{BUCKET}/crams/S2.cram was pinned" \
        in changed.stderr
    assert "COMPLETED" in changed.stdout
    same = run_cli("watch", member_run_id(ledger_path, "S1"), "--interval", "0.1", "--json")
    assert same.exit_code == 0, same.output
    assert json.loads(same.stdout)["input_changes"] == []


def test_the_api_watches_a_batch_to_its_end(s3_server, s3_emulator, ledger_path, git_repo):
    s3_server.create_bucket(Bucket=BUCKET)
    s3_emulator.batch_rate = 100
    s3_emulator.batch_fault("run", reason="OUT_OF_MEMORY", run_setting_ids=["S3"])
    seen = []
    with runlog.Runlog(ledger_path) as rl:
        batch = rl.start_run_batch(defaultRunSetting=DEFAULT,
                                   batchRunSettings={"inlineSettings": [setting(s) for s in SAMPLES]})
        s3_emulator.advance(400)
        outcome = rl.watch(batch["id"], interval=0.1, timeout=30, on_poll=seen.append)
    assert outcome.status == "PROCESSED" and not outcome.ok  # S3's run failed
    assert outcome.facts["run_status"] == {"COMPLETED": 2, "FAILED": 1}
    assert seen and seen[-1]["status"] == "PROCESSED" and seen[0]["members_added"] == 3


# -- inputs the original never pinned ----------------------------------------------------------------

def test_inputs_never_pinned_are_a_note_not_checked_in_silence(s3_server, s3_emulator, ledger_path, git_repo,
                                                                 run_cli, monkeypatch):
    """The settings file could not be read at submission (only it was denied): the batch record
    pinned the default's inputs alone. Replaying a member sends its own CRAM too, which nothing
    was pinned for: a note says so (even when the file changed since, nothing can tell), and the
    inputs that were pinned are checked as ever. A replay that adds an input with --set says the same."""
    from helpers import S3Proxy, proxy_in_front

    class DenySettings(S3Proxy):
        def forward(self, handler):
            if "settings.json" in handler.path:
                return self._error(handler, 403, "AccessDenied", "Access Denied")
            return super().forward(handler)

    s3_server.create_bucket(Bucket=BUCKET)
    for key in ["ref/genome.dict", "ref/genome.fasta", "ref/genome.fasta.fai", *map(cram, SAMPLES)]:
        s3_server.put_object(Bucket=BUCKET, Key=key, Body=f"bytes of {key}".encode())
    uri = f"s3://{BUCKET}/cohort/settings.json"
    s3_server.put_object(Bucket=BUCKET, Key="cohort/settings.json", Body=json.dumps([setting(s) for s in SAMPLES]).encode())
    s3_emulator.batch_rate = 100
    with proxy_in_front(DenySettings, s3_server, monkeypatch):
        submitted = run_cli("submit-batch", "--batch-name", "denied", "--default-run-setting", json.dumps(DEFAULT),
                            "--batch-run-settings", json.dumps({"s3UriSettings": uri}))
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint)  # the proxy is gone: moto directly again
    assert submitted.exit_code == 0, submitted.output
    assert f"settings file {uri} not read (AccessDenied" in submitted.stderr
    (batch,) = batches(ledger_path)
    assert sorted(batch["resolution"]["inputs"]) == sorted(DEFAULT["parameters"].values())  # the default's alone
    s3_emulator.advance(400)
    assert run_cli("refresh", json.loads(submitted.stdout)["id"]).exit_code == 0  # GetRun tells each run's settings

    s3_server.put_object(Bucket=BUCKET, Key=cram("S1"), Body=b"re-aligned since")
    member = run_cli("replay", member_run_id(ledger_path, "S1"), "--dry-run", "--json")
    assert member.exit_code == 0, member.output
    plan = json.loads(member.stdout)
    assert plan["drift"] == []
    note = f"inputs: 1 input(s) not pinned at submission: not checked (the first: s3://{BUCKET}/crams/S1.cram)"
    assert note in plan["notes"] and f"runlog: {note}" in member.stderr
    s3_server.put_object(Bucket=BUCKET, Key="ref/genome.fasta", Body=b"GRCh38 patch 14")  # pinned: still checked
    refused = run_cli("replay", member_run_id(ledger_path, "S1"))
    assert refused.exit_code == 3 and f"drift: input s3://{BUCKET}/ref/genome.fasta" in refused.stderr


def test_an_input_added_with_set_is_a_note_in_a_batch_replay(cohort, s3_server, run_cli):
    added = f"s3://{BUCKET}/ref/extra.bed"
    s3_server.put_object(Bucket=BUCKET, Key="ref/extra.bed", Body=b"chr1\t0\t10\n")
    plan = run_cli("replay", cohort, "--set", f"intervals={added}", "--dry-run", "--json", "--no-check")
    assert plan.exit_code == 0, plan.output
    assert f"inputs: 1 input(s) not pinned at submission: not checked (the first: {added})" in \
        json.loads(plan.stdout)["notes"]
    plain = json.loads(run_cli("replay", cohort, "--dry-run", "--json").stdout)
    assert not [n for n in plain["notes"] if "not pinned" in n]


# -- a default parameter every run sets is no run's input ------------------------------------------------

def submit_with_default_cram(run_cli, ledger_path, settings: list[dict]) -> tuple[str, dict, str]:
    default = {**DEFAULT, "parameters": {**DEFAULT["parameters"], "input_cram": f"s3://{BUCKET}/crams/default.cram"}}
    result = run_cli("submit-batch", "--batch-name", "overridden", "--default-run-setting", json.dumps(default),
                     "--batch-run-settings", json.dumps({"inlineSettings": settings}))
    assert result.exit_code == 0, result.output
    (batch,) = [b for b in batches(ledger_path) if b["outcome"]["response"]["id"] == json.loads(result.stdout)["id"]]
    return json.loads(result.stdout)["id"], batch, result.stderr


def test_a_default_input_every_run_overrides_is_neither_resolved_nor_checked(s3_server, s3_emulator, ledger_path,
                                                                              git_repo, run_cli):
    """The default names crams/default.cram, absent; every run names its own CRAM instead.
    No run reads the default's: submit-batch neither warns about it nor pins it, and a replay
    does not hold it against the batch when it appears (or changes) later."""
    s3_server.create_bucket(Bucket=BUCKET)
    for key in ["ref/genome.dict", "ref/genome.fasta", "ref/genome.fasta.fai", *map(cram, SAMPLES)]:
        s3_server.put_object(Bucket=BUCKET, Key=key, Body=f"bytes of {key}".encode())
    s3_emulator.batch_rate = 100
    batch_id, batch, stderr = submit_with_default_cram(run_cli, ledger_path, [setting(s) for s in SAMPLES])
    assert "not resolved" not in stderr and "default.cram" not in stderr
    assert f"s3://{BUCKET}/crams/default.cram" not in batch["resolution"]["inputs"]
    assert f"s3://{BUCKET}/crams/S2.cram" in batch["resolution"]["inputs"]  # the runs' own are pinned as ever
    s3_server.put_object(Bucket=BUCKET, Key="crams/default.cram", Body=b"appeared since")
    replayed = run_cli("replay", batch_id)
    assert replayed.exit_code == 0, replayed.output
    assert "default.cram" not in replayed.stderr


def test_a_default_input_some_run_inherits_is_pinned_and_checked_for_it(s3_server, s3_emulator, ledger_path,
                                                                        git_repo, run_cli):
    """S1 sets no input_cram: it reads the default's, which is pinned; a replay of S1 checks it,
    a replay of S2 and S3 alone (which set their own) does not."""
    s3_server.create_bucket(Bucket=BUCKET)
    for key in ["ref/genome.dict", "ref/genome.fasta", "ref/genome.fasta.fai", "crams/default.cram",
                *map(cram, SAMPLES)]:
        s3_server.put_object(Bucket=BUCKET, Key=key, Body=f"bytes of {key}".encode())
    s3_emulator.batch_rate = 100
    inherits = {"runSettingId": "S1", "name": "align-S1", "parameters": {"sample_name": "S1"}}
    batch_id, batch, _ = submit_with_default_cram(run_cli, ledger_path, [inherits, setting("S2"), setting("S3")])
    assert "etag" in batch["resolution"]["inputs"][f"s3://{BUCKET}/crams/default.cram"]
    s3_server.put_object(Bucket=BUCKET, Key="crams/default.cram", Body=b"other bytes")
    s3_emulator.advance(400)
    assert run_cli("refresh", batch_id).exit_code == 0
    others = run_cli("replay", batch_id, "--only", "S2", "--only", "S3")
    assert others.exit_code == 0, others.output
    for refused in (run_cli("replay", batch_id), run_cli("replay", batch_id, "--only", "S1")):
        assert refused.exit_code == 3 and f"drift: input s3://{BUCKET}/crams/default.cram etag" in refused.stderr
