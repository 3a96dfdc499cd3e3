"""A pull keeps `batch_members` a page at a time (migration m014): the member triggers stand
aside inside each page's transaction, and one statement per page leaves the rows the
triggers would have left row by row. These tests hold the rows to the full recomputation
(STATUS_ORDER over every observation of each member) when a pull brings a cohort into an
empty ledger and when it brings observations that tie, go back in time or sort first into a
ledger whose members already have a status; and verify names a pause left behind."""

from __future__ import annotations

import random

from helpers import REMOTE, member_rows, push_json, random_observation, recomputed, refreshed_cohort, tamper
from runlog import sync, syncinsert
from runlog.ledger import Ledger


def pull_counting_pauses(s3, path) -> tuple[sync.PullResult, int]:
    """sync.pull into the ledger at `path` from the team ledger REMOTE; (its result, how many
    pages paused the member triggers, counted by a temporary trigger of this connection)."""
    with Ledger.open(path) as ledger:
        conn = ledger.conn
        conn.execute("CREATE TEMP TABLE pauses (at INTEGER)")
        conn.execute("CREATE TEMP TRIGGER pause_seen AFTER INSERT ON main.member_triggers_paused "
                     "BEGIN INSERT INTO pauses VALUES (1); END")
        pulled = sync.pull(ledger, s3, sync.Remote.parse(REMOTE), jobs=2, workers=0)
        pauses = conn.execute("SELECT count(*) FROM pauses").fetchone()[0]
        assert conn.execute("SELECT count(*) FROM main.member_triggers_paused").fetchone()[0] == 0
    return pulled, pauses


def test_a_pull_keeps_each_members_status_a_page_at_a_time_as_the_triggers_would(s3_emulator, bucket, ledger_path,
                                                                                   git_repo, run_cli, tmp_path,
                                                                                   monkeypatch):
    samples = [f"S{i:03d}" for i in range(9)]
    batch_id = refreshed_cohort(run_cli, s3_emulator, bucket, samples)
    assert push_json(run_cli, ledger_path)["records_sent"] == 10
    monkeypatch.setattr(syncinsert, "INSERT_PAGE", 4)  # the batch record and members in pages of 4
    bob = tmp_path / "bob.db"
    pulled, pauses = pull_counting_pauses(bucket, bob)
    assert (pulled.records_received, pulled.observations_received, pulled.refused) == (10, 10, [])
    assert pauses == 3 + 3  # each page of records and of observations
    with Ledger.open(bob) as ledger:
        rows = member_rows(ledger)
        assert len(rows) == 9 and rows == recomputed(ledger)
        assert {status for status, _ in rows.values()} == {"COMPLETED"}
        assert ledger.conn.execute("SELECT count(*) FROM batch_members WHERE batch = "
                                   "(SELECT seq FROM records WHERE kind = 'batch')").fetchone()[0] == 9

    # observations made elsewhere, several of a member in one page, in every order: some sort
    # before the member's status, some after, some tie but for when they were seen
    chance = random.Random(13)
    with Ledger.open(ledger_path) as ledger:
        members = [row[0] for row in ledger.conn.execute("SELECT address FROM records WHERE kind = 'member'")]
        for _ in range(40):
            observed_at, status, body = random_observation(chance)
            ledger.add_received_observations([{"record": chance.choice(members[:4]), "run_uuid": None,
                                               "observed_at": observed_at, "source": "GetRun", "status": status,
                                               "body": body}])
        deleted = {"status": "DELETED", "stopTime": "2026-11-04T00:00:00Z"}
        for record, observed_at, source, body in [
                (members[0], "2026-11-05T00:00:00Z", "GetRun", deleted),  # seen last: chosen
                (members[0], "2026-11-04T12:00:00Z", "GetRun", deleted),
                (members[1], "2026-11-04T12:00:00Z", "GetRun", deleted),
                (members[1], "2026-11-04T12:00:00Z", "ListRuns", deleted),  # a tie but for the row order
                (members[1], "2026-11-05T00:00:00Z", "GetRun", {**deleted, "stopTime": "not a time"})]:
            ledger.add_received_observations([{"record": record, "run_uuid": None, "observed_at": observed_at,
                                               "source": source, "status": "DELETED", "body": body}])
        expected = recomputed(ledger)
        assert member_rows(ledger) == expected  # the triggers' rows, in the ledger that made them
    assert push_json(run_cli, ledger_path)["observations_sent"] == 45
    monkeypatch.setattr(syncinsert, "INSERT_PAGE", 100)  # one page: its statement chooses among them all
    pulled, pauses = pull_counting_pauses(bucket, bob)
    assert (pulled.observations_received, pauses) == (45, 1)
    with Ledger.open(bob) as ledger:
        rows = member_rows(ledger)
        assert rows == recomputed(ledger)
        addresses = dict(ledger.conn.execute("SELECT r.address, o.body FROM batch_members m JOIN records r "
                                             "ON r.seq = m.seq JOIN observations o ON o.seq = m.status_obs"))
    with Ledger.open(ledger_path) as ledger:  # the same observation chosen in both ledgers
        chosen = dict(ledger.conn.execute("SELECT r.address, o.body FROM batch_members m JOIN records r "
                                          "ON r.seq = m.seq JOIN observations o ON o.seq = m.status_obs"))
    assert addresses == chosen and {rows[m][0] for m in members} == {expected[m][0] for m in members}
    assert run_cli("--ledger", bob, "verify", "--no-remote").exit_code == 0
    counted = run_cli("--ledger", bob, "show", batch_id, "--json")
    assert counted.exit_code == 0, counted.output


def test_verify_names_a_pause_of_the_member_triggers_left_in_the_ledger(s3_emulator, bucket, ledger_path, git_repo,
                                                                        run_cli):
    refreshed_cohort(run_cli, s3_emulator, bucket, ["S1", "S2"])
    assert run_cli("verify", "--no-remote").exit_code == 0
    tamper(ledger_path, "INSERT INTO member_triggers_paused (paused) VALUES (1)")
    checked = run_cli("verify", "--no-remote")
    assert checked.exit_code == 1
    assert "the member triggers were paused outside runlog (member_triggers_paused holds a row" in checked.stdout
