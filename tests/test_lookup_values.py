"""A record may hold a boolean, a number or an object where the record schema leaves a member
untyped (an imported run's source_run, a batch's defaultRunSetting, a member's settings): an
odd or hostile service answer gives one. Such a record is recorded as the service gave it,
and its row's lookup columns (ledger.index_columns) hold NULL for that value, not SQLite's
text for it ('1' for true): `runlog verify` accepts it, push sends it, pull takes it. The
import comes from the emulator over HTTP; push and pull go through moto's S3 server."""

from __future__ import annotations

import json

import pytest

from helpers import COHORT_DEFAULT, cohort_setting, omics_client, pull_json, push_json
from recordfactory import make_record
from runlog import record as rec
from runlog.ledger import Ledger

ODD = [True, False, 7, 1.5, {"id": "1234567"}, ["1234567"]]


def odd_records(value) -> list[dict]:
    """Schema-valid records with `value` in each untyped member a lookup column comes from."""
    imported = make_record()
    imported["kind"] = "import"
    imported["git"] = {"state": "unknown", "reason": "the run was started without runlog"}
    del imported["request"]["workflowId"]
    imported["source_run"] = {"workflowId": value, "id": "1234567"}
    odd_default = make_record()  # an additional StartRun member of any shape (a newer model's)
    del odd_default["request"]["workflowId"]
    odd_default["request"]["defaultRunSetting"] = value if not isinstance(value, dict) else {"workflowId": value}
    odd_default["request"]["batchName"] = value
    member = make_record()
    member["kind"] = "member"
    member["batch"] = {"record": "b" * 64, "batch_id": "9000001", "run_setting_id": "S1"}
    member["request"].update(workflowId=value, name=value, requestId=value)
    member["parameters"] = {"source": "batch", "argument": None}
    for record in (imported, odd_default, member):
        record["fingerprint"] = rec.fingerprint(record)
        assert rec.is_valid(record), rec.schema_errors(record)
    return [imported, odd_default, member]


WHERE = ["source_run", "defaultRunSetting", "member"]


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("value", ODD, ids=repr)
def test_verify_accepts_a_record_the_schema_accepts(tmp_path, run_cli, value, where):
    path = tmp_path / "ledger.db"
    record = odd_records(value)[WHERE.index(where)]
    with Ledger.open(path) as ledger:
        entry = ledger.add_record(record)[0]
        assert ledger.add_records([odd_records(value)[WHERE.index(where)]]) == 1  # the bulk path (a page, a pull)
    name = None if where == "member" else "cram-to-bam"
    assert (entry.workflow_id, entry.name) == (None, name)
    assert entry.request_id == (None if where == "member" else record["request"]["requestId"])
    result = run_cli("--ledger", path, "verify")
    assert result.exit_code == 0, result.output
    shown = json.loads(run_cli("--ledger", path, "show", entry.address, "--json").stdout)["record"]
    assert shown == record  # as the service gave it


def test_a_member_with_an_odd_request_id_is_not_taken_for_another_record(tmp_path):
    """A requestId of true is no lookup value: it never matches the record whose requestId is "1"."""
    path = tmp_path / "ledger.db"
    other = make_record()
    other["request"]["requestId"] = "1"
    other["fingerprint"] = rec.fingerprint(other)
    member = odd_records(True)[2]
    with Ledger.open(path) as ledger:
        ledger.add_record(other)
        entry, added = ledger.add_record(member)
    assert added and entry.address == rec.address(member)


def odd_batch_and_member(value) -> list[dict]:
    """A batch record whose default setting holds `value` where a member's lookup columns come
    from (workflowId, name, requestId), and the member runlog makes of its run: pull takes a
    member only with its batch record, and only as the batch record makes it."""
    from runlog.batch import member_record

    batch = make_record()
    batch["kind"] = "batch"
    batch["request"] = {"requestId": "batch-1", "batchRunSettings": {"inlineSettings": [{"runSettingId": "S1"}]},
                        "defaultRunSetting": {"workflowId": value, "roleArn": COHORT_DEFAULT["roleArn"], "name": value,
                                              "requestId": value}}
    batch["batch"] = {"runs": 1}
    batch["outcome"] = {"status": "submitted", "response": {
        "id": "9000001", "arn": "arn:aws:omics:us-east-1:123456789012:runBatch/9000001", "uuid": "u-9000001"}}
    batch["fingerprint"] = rec.fingerprint(batch)
    member = member_record(batch, rec.address(batch), {
        "runSettingId": "S1", "runId": "1234999", "runInternalUuid": "u-1234999",
        "runArn": "arn:aws:omics:us-east-1:123456789012:run/1234999"})
    for record in (batch, member):
        assert rec.is_valid(record), rec.schema_errors(record)
    return [batch, member]


def test_push_sends_and_pull_takes_it(proxy, bucket, tmp_path, run_cli):
    alice, bob = tmp_path / "alice.db", tmp_path / "bob.db"
    with Ledger.open(alice) as ledger:
        # workflowId true in source_run, in a batch's default and so in its member's settings
        for record in [odd_records(True)[0], *odd_batch_and_member(True)]:
            ledger.add_record(record)
    pushed = push_json(run_cli, alice)
    assert pushed["records_sent"] == 3
    code, pulled = pull_json(run_cli, bob)
    assert code == 0 and pulled["records_received"] == 3 and not pulled["refused"], pulled
    with Ledger.open(alice) as a, Ledger.open(bob) as b:
        assert sorted(a.addresses()) == sorted(b.addresses())
    assert run_cli("--ledger", bob, "verify").exit_code == 0


def test_import_of_a_batch_whose_default_workflow_id_is_true(aws_env, ledger_path, run_cli):
    """GetBatch answers defaultRunSetting.workflowId true: the batch and its members are recorded
    with true, and verify accepts the ledger."""
    service = omics_client(aws_env)
    aws_env.batch_rate = 100
    started = service.start_run_batch(defaultRunSetting=COHORT_DEFAULT, requestId="outside-1", batchRunSettings={
        "inlineSettings": [cohort_setting("S0"), cohort_setting("S1")]})
    aws_env.advance(60)
    aws_env.service.batchbook.batches[started["id"]].default["workflowId"] = True
    result = run_cli("import", "--json")
    assert result.exit_code == 0, result.output
    with Ledger.open(ledger_path, create=False) as ledger:
        found = ledger.entries()
    (batch,) = [e for e in found if e.kind == "batch"]
    assert batch.record["request"]["defaultRunSetting"]["workflowId"] is True and batch.workflow_id is None
    assert run_cli("verify").exit_code == 0


def test_import_of_a_run_whose_workflow_id_is_true_is_refused_naming_the_run(aws_env, ledger_path, run_cli):
    """A StartRun request cannot hold workflowId true: the run is not recorded, and the one line
    names it; nothing is made to fit (the workflowId is not turned into text)."""
    service = omics_client(aws_env)
    run = service.start_run(workflowId=COHORT_DEFAULT["workflowId"], roleArn=COHORT_DEFAULT["roleArn"],
                            outputUri="s3://cohort-bucket/single/", name="odd", requestId="odd-1",
                            parameters={**COHORT_DEFAULT["parameters"], "sample_name": "X",
                                        "input_cram": "s3://cohort-bucket/crams/X.cram"})
    aws_env.service.runs[run["uuid"]]["workflowId"] = True
    result = run_cli("import")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"runlog: error: run {run['id']} not recorded: GetRun answered what a StartRun "
                                    "request cannot hold (request/workflowId: True is not of type 'string')")
    with Ledger.open(ledger_path) as ledger:
        assert ledger.by_run_uuid(run["uuid"]) is None
