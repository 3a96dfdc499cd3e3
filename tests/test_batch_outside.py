"""CancelRunBatch, DeleteRunBatch and DeleteBatch done outside runlog (boto3 directly, as the
console or the aws CLI would): refresh, watch and import record what they see as
observations and never delete anything from the ledger. The emulator over HTTP."""

from __future__ import annotations

import json

from helpers import COHORT_DEFAULT, COHORT_ROLE, cohort_setting, omics_client
from runlog.ledger import Ledger

ROLE, DEFAULT = COHORT_ROLE, COHORT_DEFAULT




def submit(run_cli, *samples) -> str:
    result = run_cli("submit-batch", "--batch-name", "cohort", "--default-run-setting", json.dumps(DEFAULT),
                     "--batch-run-settings", json.dumps({"inlineSettings": [cohort_setting(s) for s in samples]}))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["id"]


def ledger_state(ledger_path) -> tuple[list[str], int]:
    with Ledger.open(ledger_path, create=False) as ledger:
        return ([e.address for e in ledger.entries()],
                ledger.conn.execute("SELECT count(*) FROM observations").fetchone()[0])


def show(run_cli, ref) -> dict:
    shown = run_cli("show", ref, "--json")
    assert shown.exit_code == 0, shown.output
    return json.loads(shown.stdout)


def test_a_cancel_done_elsewhere_is_seen_by_refresh(aws_env, ledger_path, git_repo, run_cli):
    aws_env.batch_rate = 1
    batch_id = submit(run_cli, "s0", "s1", "s2", "s3")
    aws_env.advance(12)  # two runs submitted, two to come
    assert run_cli("refresh", batch_id).exit_code == 0
    records_before, _ = ledger_state(ledger_path)
    omics_client(aws_env).cancel_run_batch(batchId=batch_id)
    aws_env.advance(20)
    refreshed = run_cli("refresh")  # no REF: the batch is unfinished, so it is refreshed
    assert refreshed.exit_code == 0, refreshed.output
    assert f"batch {batch_id}: CANCELLED" in refreshed.stdout
    shown = show(run_cli, batch_id)
    assert shown["batch"]["batch_status"] == "CANCELLED"
    assert shown["batch"]["run_status"] == {"CANCELLED": 2}
    assert shown["observations"][-1]["source"] == "GetBatch" and shown["observations"][-1]["status"] == "CANCELLED"
    records_after, _ = ledger_state(ledger_path)
    assert records_after == records_before  # observations only
    assert run_cli("refresh").stderr.count("no unfinished runs") == 1  # a cancelled batch is finished


def test_delete_run_batch_done_elsewhere_marks_members_deleted(aws_env, ledger_path, git_repo, run_cli):
    aws_env.batch_rate = 100
    batch_id = submit(run_cli, "s0", "s1", "s2")
    aws_env.advance(300)
    watched = run_cli("watch", batch_id, "--interval", "0.1")
    assert watched.exit_code == 0, watched.output
    assert show(run_cli, batch_id)["batch"]["run_status"] == {"COMPLETED": 3}
    records_before, _ = ledger_state(ledger_path)
    omics_client(aws_env).delete_run_batch(batchId=batch_id)
    aws_env.advance(20)
    refreshed = run_cli("refresh", batch_id, "--json")
    assert refreshed.exit_code == 0, refreshed.output
    (change,) = json.loads(refreshed.stdout)
    assert change["status"] == "RUNS_DELETED" and change["statuses_changed"] == 3
    shown = show(run_cli, batch_id)
    assert shown["batch"]["run_status"] == {"DELETED": 3}
    member_id = shown["batch"]["failures"] == [] and json.loads(
        run_cli("log", "--batch", batch_id, "--json").stdout)[0]["run_id"]
    member = show(run_cli, member_id)
    assert member["status"] == "DELETED"
    assert member["observations"][-1]["body"]["submissionStatus"] == "DELETE_SUCCESS"
    # nothing removed, and a second refresh observes nothing new
    records_after, observations = ledger_state(ledger_path)
    assert records_after == records_before
    assert run_cli("refresh", batch_id).exit_code == 0
    assert ledger_state(ledger_path) == (records_after, observations)
    assert run_cli("verify", "--no-remote").exit_code == 0


def test_delete_batch_done_elsewhere_is_observed_once_as_deleted(aws_env, ledger_path, git_repo, run_cli):
    aws_env.batch_rate = 100
    batch_id = submit(run_cli, "s0", "s1")
    aws_env.advance(300)
    assert run_cli("refresh", batch_id).exit_code == 0
    records_before, _ = ledger_state(ledger_path)
    omics_client(aws_env).delete_batch(batchId=batch_id)
    refreshed = run_cli("refresh", batch_id)
    assert refreshed.exit_code == 0, refreshed.output
    assert f"batch {batch_id}: DELETED" in refreshed.stdout
    shown = show(run_cli, batch_id)
    assert shown["status"] == "DELETED" and shown["batch"]["batch_status"] == "DELETED"
    last = shown["observations"][-1]
    assert last["source"] == "GetBatch" and "not found" in last["body"]["reason"]
    assert shown["batch"]["run_status"] == {"COMPLETED": 2}  # its runs stay, as recorded
    _, observations = ledger_state(ledger_path)
    again = run_cli("refresh", batch_id)
    assert again.exit_code == 0 and f"batch {batch_id}: DELETED" in again.stdout
    assert ledger_state(ledger_path) == (records_before, observations)  # observed once, nothing removed
    everything = run_cli("refresh", "--json")  # no REF: a deleted batch is finished, not asked about
    assert everything.exit_code == 0 and json.loads(everything.stdout) == []
    watched = run_cli("watch", batch_id, "--interval", "0.1")
    assert "DELETED" in watched.stdout
    assert run_cli("verify", "--no-remote").exit_code == 0


def test_import_records_a_batch_cancelled_elsewhere_with_its_status(aws_env, ledger_path, git_repo, run_cli):
    aws_env.batch_rate = 1
    batch_id = omics_client(aws_env).start_run_batch(batchName="outside", requestId="r-1", defaultRunSetting=DEFAULT,
                                              batchRunSettings={"inlineSettings": [cohort_setting(f"s{i}")
                                                                                   for i in range(4)]})["id"]
    aws_env.advance(12)
    omics_client(aws_env).cancel_run_batch(batchId=batch_id)
    aws_env.advance(20)
    imported = run_cli("import", "--json")
    assert imported.exit_code == 0, imported.output
    (item,) = json.loads(imported.stdout)["batches"]["imported"]
    assert item["batch_id"] == batch_id and item["status"] == "CANCELLED"
    shown = show(run_cli, batch_id)
    assert shown["batch"]["batch_status"] == "CANCELLED" and shown["batch"]["run_status"] == {"CANCELLED": 2}
