"""Session 21: the configuration fingerprint's index holds its first characters (migration m015);
refresh asks GetRun for a member listed under a run setting its batch was not sent; an item
whose identifiers are not text is left out instead of failing the batch's refresh."""

from __future__ import annotations

import json
import sqlite3

import pytest

from helpers import ended_batch, pages_changed
from recordfactory import make_record
from runlog.ledger import FINGERPRINT_PREFIX, Ledger
from runlog.migrations import MIGRATIONS, READS_AS_IS


def _with_fingerprint(run_id: str, fingerprint: str) -> dict:
    record = make_record(run_id=run_id)
    record["fingerprint"] = fingerprint
    return record


def test_a_fingerprint_lookup_tells_apart_fingerprints_that_share_the_indexed_prefix(tmp_path):
    shared = "abcdef12"
    assert len(shared) == FINGERPRINT_PREFIX
    first, other = shared + "0" * 56, shared + "1" * 56
    with Ledger.open(tmp_path / "l.db") as ledger:
        for run_id, fingerprint in (("1000001", first), ("1000002", other), ("1000003", first),
                                    ("1000004", "0" * 64)):
            ledger.add_record(_with_fingerprint(run_id, fingerprint))
        assert sorted(e.run_id for e in ledger.same_configuration(first)) == ["1000001", "1000003"]
        assert [e.run_id for e in ledger.same_configuration(other)] == ["1000002"]
        assert ledger.same_configuration(shared + "2" * 56) == []
        assert ledger.same_configuration(shared) == []  # a prefix alone names no configuration
        assert sorted(e.run_id for e in ledger.listing(fingerprint=first)) == ["1000001", "1000003"]
        plan = " ".join(row[-1] for row in ledger.conn.execute(
            f"EXPLAIN QUERY PLAN SELECT seq FROM records WHERE {Ledger._SAME_FINGERPRINT}", (shared, first)))
        assert "records_fingerprint" in plan and "SCAN records" not in plan, plan


def test_a_format_14_ledger_gets_the_shorter_index_and_same_as_still_lists_its_runs(tmp_path, run_cli):
    path = tmp_path / "old.db"
    records = [make_record(run_id="2000001", name="a"), make_record(run_id="2000002", name="a"),
               make_record(run_id="2000003", parameters={"sample_name": "other"})]
    with Ledger.open(path) as ledger:
        for record in records:
            ledger.add_record(record)
    conn = sqlite3.connect(path)  # back to format 14: the fingerprint's index as m001 made it
    conn.executescript("DROP INDEX records_fingerprint; CREATE INDEX records_fingerprint ON records(fingerprint); "
                       "PRAGMA user_version = 14;")
    conn.close()
    assert MIGRATIONS[14].__name__ == "m015_shorter_fingerprint_key" and READS_AS_IS == 14
    with Ledger.open(path, readonly=True) as ledger:  # what the read commands open: the file as it is
        assert (ledger.snapshot, ledger.older_format) == (False, 14)
        assert sorted(e.run_id for e in ledger.same_configuration(records[0]["fingerprint"])) == ["2000001", "2000002"]
    env = {"RUNLOG_LEDGER": str(path)}
    same = run_cli("log", "--same-as", "2000001", "--json", env=env)  # read-only, through m001's index
    assert same.exit_code == 0, same.output
    assert sorted(entry["run_id"] for entry in json.loads(same.stdout)) == ["2000001", "2000002"]
    checked = run_cli("verify", "--no-remote", env=env)  # read-only: a migrated copy in memory is checked
    assert checked.exit_code == 0, checked.output
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 14  # the reads left the file as it was
    conn.close()
    Ledger.open(path).close()  # as a writing command opens it: migrated in place
    conn = sqlite3.connect(path)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    index = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'records_fingerprint'").fetchone()[0]
    conn.close()
    assert version == len(MIGRATIONS) and f"substr(fingerprint, 1, {FINGERPRINT_PREFIX})" in index
    same = run_cli("log", "--same-as", "2000002", "--json", env=env)
    assert sorted(entry["run_id"] for entry in json.loads(same.stdout)) == ["2000001", "2000002"]
    verify = run_cli("verify", "--no-remote", env=env)
    assert verify.exit_code == 0, verify.output


@pytest.mark.parametrize("child", ["0", "1"])  # the members written by this process's threads, or by the writer process
def test_a_run_listed_for_a_run_setting_the_batch_was_not_sent_gets_its_settings_from_get_run(
        child, aws_env, ledger_path, git_repo, run_cli, monkeypatch):
    """A batch submitted through runlog whose ListRunsInBatch gives a run for a run setting the
    batch was not sent (a faulty or hostile answer): its member record holds the default alone
    and says its own settings are unknown, and `show` said "GetRun not asked yet: `refresh` of
    its batch asks it" while refresh asked GetRun only for imported batches. Refresh now asks
    for such members, so what `show` says is true and then superseded by what GetRun said."""
    monkeypatch.setenv("RUNLOG_WRITER_PROCESS", child)
    batch_id = ended_batch(aws_env, run_cli, "S1", "S2")

    def renamed(page):
        for item in page["runs"]:
            if item.get("runSettingId") == "S2":
                item["runSettingId"] = "X9"

    pages_changed(aws_env, "ListRunsInBatch", renamed)
    asked = len(aws_env.requests)
    refreshed = run_cli("refresh", batch_id, "--json")
    assert refreshed.exit_code == 0, refreshed.output
    (change,) = json.loads(refreshed.stdout)
    assert change["members_added"] == 2 and change["settings_observed"] == 1, change
    get_runs = [r for r in aws_env.requests[asked:] if r["operation"] == "GetRun"]
    assert len(get_runs) == 1, get_runs  # the one member whose settings are unknown, no other
    with Ledger.open(ledger_path, create=False) as ledger:
        (run_id,) = [row[0] for row in ledger.conn.execute(
            "SELECT run_id FROM records WHERE kind = 'member' AND json_extract(body, '$.batch.run_setting_id') = 'X9'")]
    shown = json.loads(run_cli("show", run_id, "--json").stdout)
    assert shown["member_settings"]["state"] == "observed", shown["member_settings"]
    assert shown["member_settings"]["settings"]["parameters"]["sample_name"] == "S2"  # what the run ran with
    again = run_cli("refresh", batch_id, "--json")  # observed: not asked again
    assert again.exit_code == 0 and json.loads(again.stdout)[0]["settings_observed"] == 0, again.output
    assert run_cli("verify").exit_code == 0


def test_a_batch_submitted_through_runlog_with_every_run_setting_listed_still_asks_get_run_for_nothing(
        aws_env, ledger_path, git_repo, run_cli, monkeypatch):
    monkeypatch.setenv("RUNLOG_WRITER_PROCESS", "1")  # the writer process reports no such member either
    batch_id = ended_batch(aws_env, run_cli, "S1", "S2")
    asked = len(aws_env.requests)
    refreshed = run_cli("refresh", batch_id, "--json")
    assert refreshed.exit_code == 0, refreshed.output
    (change,) = json.loads(refreshed.stdout)
    assert change["members_added"] == 2 and "settings_observed" not in change, change
    assert not [r for r in aws_env.requests[asked:] if r["operation"] == "GetRun"]


@pytest.mark.parametrize("member, value", [("runId", 4207391), ("runSettingId", 2), ("runInternalUuid", {"a": 1}),
                                           ("submissionStatus", ["SUCCESS"])])
def test_an_item_whose_identifiers_are_not_text_is_left_out_and_the_rest_of_the_batch_is_recorded(
        member, value, aws_env, ledger_path, git_repo, run_cli):
    """ListRunsInBatch listing an item with a number, an object or a list where the model has
    text. Before: the member record built from it broke the schema, the page was refused, and
    the batch could not be refreshed at all while the service answered so. Now that item is
    left out and said; every other member is recorded, and a later refresh records the item's
    member once it is listed as text."""
    batch_id = ended_batch(aws_env, run_cli, "S1", "S2")
    original = aws_env.handlers["ListRunsInBatch"]

    def odd(page):
        for item in page["runs"]:
            if item.get("runSettingId") == "S2":
                item[member] = value

    pages_changed(aws_env, "ListRunsInBatch", odd)
    refreshed = run_cli("refresh", batch_id)
    assert refreshed.exit_code == 0, refreshed.output
    assert "1 new member record(s)" in refreshed.stdout, refreshed.stdout
    assert f"batch {batch_id}: 1 item(s) ListRunsInBatch listed with a run setting id, run id, uuid, ARN or " \
           "submission status that is not text" in refreshed.stderr, refreshed.stderr
    as_json = run_cli("refresh", batch_id, "--json")
    assert json.loads(as_json.stdout)[0]["listed_not_text"] == {"count": 1}, as_json.stdout
    aws_env.handlers["ListRunsInBatch"] = original
    again = run_cli("refresh", batch_id)
    assert again.exit_code == 0 and "1 new member record(s)" in again.stdout, again.output
    assert "not text" not in again.stderr
    facts = json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]
    assert facts["members_recorded"] == 2, facts
    assert run_cli("verify").exit_code == 0
