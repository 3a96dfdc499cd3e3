"""Session 18's review: what a hostile input can make of its changes."""
from __future__ import annotations

import json

import pytest

from runlog.ledger import Ledger


def _inline_batch(run_cli, settings: list[dict]) -> str:
    from helpers import COHORT_DEFAULT

    result = run_cli("submit-batch", "--no-check", "--batch-name", "cohort", "--default-run-setting", json.dumps(COHORT_DEFAULT),
                     "--batch-run-settings", json.dumps({"inlineSettings": settings}))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["id"]


def test_a_member_whose_parameters_name_another_batch_record_is_not_taken_as_that_batchs(
        aws_env, ledger_path, git_repo, run_cli):
    """A run setting's parameters are the user's JSON: one may hold {"record": <address of
    another batch record>}. A member of batch B whose parameters say so, handed to the ledger
    as batch A's, is refused like any member naming another batch (its own batch is B), not
    linked to A in batch_members."""
    from helpers import cohort_setting, submit_cohort
    from runlog.batch import member_record
    from runlog.errors import LedgerError

    first = submit_cohort(run_cli, "S1")
    with Ledger.open(ledger_path, create=False) as ledger:
        a = ledger.resolve(first)
    setting = cohort_setting("S2")
    setting["parameters"]["provenance"] = {"record": a.address}
    second = _inline_batch(run_cli, [setting])
    with Ledger.open(ledger_path, create=False) as ledger:
        b = ledger.resolve(second)
        item = {"runSettingId": "S2", "runId": "4200002", "runInternalUuid": "0b7b3c1e-0000-4000-8000-000000000002",
                "runArn": "arn:aws:omics:us-west-2:111122223333:run/4200002"}
        whole = ledger.get(b.address).record
        encoded = Ledger.encode_records([member_record(whole, b.address, item)])
        with pytest.raises(LedgerError, match="names another batch: nothing of the page was written"):
            ledger.write_records(encoded, a.address)
        assert ledger.conn.execute("SELECT count(*) FROM records WHERE kind = 'member'").fetchone()[0] == 0
        assert ledger.write_records(encoded, b.address) == 1  # handed over as its own batch's: written
        assert ledger.conn.execute("SELECT batch FROM batch_members").fetchall() == [(b.seq,)]
    verified = run_cli("verify")
    assert verified.exit_code == 0, verified.output


def test_run_settings_listed_twice_whose_ids_print_alike_are_each_named(s3_emulator, ledger_path, git_repo, run_cli):
    """ListRunsInBatch listing a run setting id "None" for two runs and two runs with no run
    setting id at all: two run settings listed twice, and both are named with their runs (the
    sorting by id must not fold one into the other because both print as None)."""
    from helpers import submit_cohort

    book = s3_emulator.service.batchbook
    item_of = book._member_item

    def twice(batch, position):
        item = item_of(batch, position)
        if position == 1:
            item["runSettingId"] = "None"
        elif position in (2, 3):
            del item["runSettingId"]
        return item

    book._member_item = twice
    s3_emulator.batch_rate = 100
    batch_id = submit_cohort(run_cli, "None", "S2", "S3", "S4")
    s3_emulator.advance(200)
    refreshed = run_cli("refresh", batch_id)
    assert refreshed.exit_code == 0, refreshed.output
    facts = json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]["repeated_run_settings"]
    assert facts["count"] == 2, facts
    assert len(facts["first"]) == 2, facts
    assert sorted(run for setting in facts["first"] for run in setting["run_ids"]).__len__() == 4, facts


def test_batch_members_after_refreshes_and_a_delete_is_what_verify_recomputes(aws_env, ledger_path, git_repo, run_cli):
    """Refresh while runs run, after they finish (one FAILED), after DeleteRunBatch: every
    page of members and statuses goes through m014's pause, and verify (which recomputes
    batch_members as the triggers make it) stays clean at each step; no pause row is left."""
    from helpers import submit_cohort

    aws_env.batch_rate = 100
    aws_env.batch_fault("run", run_setting_ids=["S2"], reason="OUT_OF_MEMORY")
    batch_id = submit_cohort(run_cli, "S1", "S2", "S3")
    for step in ("advance", "refresh", "advance", "refresh", "cancel", "advance", "refresh"):
        if step == "advance":
            aws_env.advance(150)
            continue
        result = run_cli(*(["cancel", batch_id, "--delete-runs"] if step == "cancel" else ["refresh", batch_id]))
        assert result.exit_code == 0, result.output
        verified = run_cli("verify")
        assert verified.exit_code == 0, (step, verified.output)
    facts = json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]
    assert facts["run_status"] == {"DELETED": 3}, facts
    with Ledger.open(ledger_path, create=False) as ledger:
        assert ledger.conn.execute("SELECT count(*) FROM member_triggers_paused").fetchone()[0] == 0


@pytest.mark.parametrize("order", [("DELETED", "FAILED"), ("FAILED", "DELETED"), ("RUNNING", "COMPLETED", "RUNNING")])
def test_two_statuses_of_a_member_in_one_page_leave_the_row_the_triggers_would(order, aws_env, ledger_path, git_repo,
                                                                               run_cli):
    """A page of status observations naming one member more than once (a run listed twice, in
    any order): batch_members ends where the triggers, one row after the other, would have
    (verify recomputes it), and `show` counts the member once, by STATUS_ORDER."""
    from helpers import submit_cohort

    aws_env.batch_rate = 100
    batch_id = submit_cohort(run_cli, "S1", "S2")
    aws_env.advance(300)
    assert run_cli("refresh", batch_id).exit_code == 0
    with Ledger.open(ledger_path, create=False) as ledger:
        address, run_uuid = ledger.conn.execute(
            "SELECT address, run_uuid FROM records WHERE kind = 'member' ORDER BY seq LIMIT 1").fetchone()
        at = "2026-11-27T12:00:00Z"
        ledger.write_observations(Ledger.encode_observations([
            (address, run_uuid, at, "ListRuns", status, {"status": status, "stopTime": f"2026-11-27T1{n}:00:00Z"})
            for n, status in enumerate(order)]))
        assert ledger.conn.execute("SELECT count(*) FROM member_triggers_paused").fetchone()[0] == 0
    verified = run_cli("verify")
    assert verified.exit_code == 0, verified.output
    statuses = json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]["run_status"]
    assert sum(statuses.values()) == 2, statuses


def test_a_page_of_statuses_of_members_of_two_batches_keeps_each_batchs_rows(aws_env, ledger_path, git_repo, run_cli):
    """One page of observations naming members of two batches (and a record that is no
    member): each member's row takes its own status, verify stays clean."""
    from helpers import submit_cohort

    aws_env.batch_rate = 100
    first, second = submit_cohort(run_cli, "S1", "S2"), submit_cohort(run_cli, "S3")
    aws_env.advance(300)
    assert run_cli("refresh", first).exit_code == 0 and run_cli("refresh", second).exit_code == 0
    with Ledger.open(ledger_path, create=False) as ledger:
        rows = ledger.conn.execute("SELECT address, run_uuid, kind FROM records ORDER BY seq").fetchall()
        page = [(address, uuid, "2026-11-27T12:00:00Z", "ListRuns", "DELETED",
                 {"status": "DELETED", "stopTime": "2030-01-01T00:00:00Z"}) for address, uuid, _ in rows]
        ledger.write_observations(Ledger.encode_observations(page))
    verified = run_cli("verify")
    assert verified.exit_code == 0, verified.output
    for batch_id, runs in ((first, 2), (second, 1)):
        assert json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]["run_status"] == {"DELETED": runs}


def test_statuses_observed_before_their_member_record_arrives_are_its_status(aws_env, ledger_path, git_repo, run_cli):
    """Observations of a member whose record comes later (a page of statuses, then the page of
    members, handed over with its batch): the member's row takes the status that sorts first
    (FAILED over a later RUNNING), as the trigger would, and verify stays clean."""
    from helpers import submit_cohort
    from runlog.batch import member_record

    batch_id = submit_cohort(run_cli, "S1")
    with Ledger.open(ledger_path, create=False) as ledger:
        batch = ledger.resolve(batch_id)
        encoded = Ledger.encode_records([member_record(ledger.get(batch.address).record, batch.address, {
            "runSettingId": "S1", "runId": "4200003", "runInternalUuid": "0b7b3c1e-0000-4000-8000-000000000003",
            "runArn": "arn:aws:omics:us-west-2:111122223333:run/4200003"})])
        member = encoded[0][2]
        ledger.write_observations(Ledger.encode_observations([
            (member, None, "2026-11-27T12:00:00Z", "ListRuns", status, {"status": status, "stopTime": stop})
            for status, stop in (("FAILED", "2026-11-27T11:00:00Z"), ("RUNNING", "2026-11-27T11:30:00Z"))]))
        assert ledger.write_records(encoded, batch.address) == 1
        assert ledger.conn.execute("SELECT batch, status FROM batch_members").fetchall() == [(batch.seq, "FAILED")]
    verified = run_cli("verify")
    assert verified.exit_code == 0, verified.output
