"""`batch_members` keyed by the member's seq (migration m008): its status is kept by a
trigger that compares each new status observation with the sort key of the one the row
holds, instead of re-reading all of the member's observations. These tests hold it to the
full recomputation (STATUS_ORDER over every observation) whatever order observations
arrive in, migrate a format-7 ledger, and give members recorded before their batch record
their batch when it arrives."""

from __future__ import annotations

import json
import random
import sqlite3

import pytest

from helpers import COHORT_DEFAULT, COHORT_ROLE, member_rows, random_observation, recomputed, tamper
from runlog.ledger import Ledger
from runlog.migrations import LEDGER_FORMAT, MIGRATIONS, m007_batch_members

ROLE, DEFAULT = COHORT_ROLE, COHORT_DEFAULT
RUNS = 12
REFUSED = ["S02"]
FAILING = ["S05"]


@pytest.fixture
def started(aws_env, ledger_path, git_repo, run_cli):
    """A batch of RUNS inline runs (one refused, one failing), submitted; (emulator, its id)."""
    emulator = aws_env
    emulator.batch_rate = RUNS
    emulator.batch_fault("start", reason="ServiceQuotaExceeded", message="too many runs", run_setting_ids=REFUSED)
    emulator.batch_fault("run", reason="OUT_OF_MEMORY", run_setting_ids=FAILING)
    inline = [{"runSettingId": f"S{i:02d}", "name": f"align-S{i:02d}",
               "parameters": {"sample_name": f"S{i:02d}", "input_cram": f"s3://cohort-bucket/crams/S{i:02d}.cram"}}
              for i in range(RUNS)]
    submitted = run_cli("submit-batch", "--default-run-setting", json.dumps(DEFAULT), "--batch-run-settings",
                        json.dumps({"inlineSettings": inline}), "--no-resolve")
    assert submitted.exit_code == 0, submitted.output
    return emulator, json.loads(submitted.stdout)["id"]


@pytest.fixture
def batch(started, run_cli):
    """The batch of `started`, finished and refreshed; its id."""
    emulator, batch_id = started
    emulator.advance(3600)
    refreshed = run_cli("refresh", batch_id)
    assert refreshed.exit_code == 0, refreshed.output
    return batch_id


def test_member_status_is_the_full_recomputation_whatever_order_observations_arrive(batch, ledger_path, run_cli):
    chance = random.Random(14)
    with Ledger.open(ledger_path) as ledger:
        members = [row[0] for row in ledger.conn.execute("SELECT address FROM records WHERE kind = 'member'")]
        assert len(members) == RUNS and member_rows(ledger) == recomputed(ledger)
        for round_ in range(30):
            address = chance.choice(members)
            observed_at, status, body = random_observation(chance)
            if round_ % 3 == 0:  # as pulled from a team ledger: made elsewhere, maybe long ago
                ledger.add_received_observations([{"record": address, "run_uuid": None, "observed_at": observed_at,
                                                   "source": "GetRun", "status": status, "body": body}])
            else:  # a page of them, as refresh writes (a member may be in it twice)
                page = [(address, None, observed_at, "ListRuns", status, body)]
                for _ in range(chance.randrange(3)):
                    more_at, more_status, more_body = random_observation(chance)
                    page.append((chance.choice(members), None, more_at, "ListRuns", more_status, more_body))
                ledger.add_observations(page)
            assert member_rows(ledger) == recomputed(ledger), f"round {round_}"
        held = member_rows(ledger)
        for entry in ledger.members("-", ledger.resolve(batch).address):  # what log --batch shows
            assert held[entry.address][0] in (entry.status, None)
    assert run_cli("verify", "--no-remote").exit_code == 0
    tamper(ledger_path, "UPDATE batch_members SET status = 'RUNNING' WHERE seq = (SELECT max(seq) FROM batch_members)")
    checked = run_cli("verify", "--no-remote")
    assert checked.exit_code == 1
    assert "FAIL the list of batches' member runs was changed outside runlog: it has 12 rows (1 not as their " \
           "records say)" in checked.stdout


def test_an_older_status_observation_arriving_later_does_not_replace_the_newer(started, ledger_path, run_cli):
    emulator, batch = started
    emulator.advance(12)  # the runs submitted (10 s after the batch), none ended
    assert run_cli("refresh", batch).exit_code == 0
    with Ledger.open(ledger_path) as ledger:
        member = ledger.conn.execute("SELECT address FROM records WHERE kind = 'member' AND outcome = 'submitted' "
                                     "ORDER BY seq LIMIT 1").fetchone()[0]
        assert member_rows(ledger)[member][0] not in ("COMPLETED", "FAILED", "CANCELLED", "DELETED", None)
        seen = [("2036-11-05T00:00:00Z", "RUNNING", {"status": "RUNNING", "startTime": "2036-11-05T00:00:00Z"}),
                # pulled: made earlier, by the service's clock too
                ("2036-11-04T00:00:00Z", "STARTING", {"status": "STARTING", "creationTime": "2036-11-04T00:00:00Z"}),
                # the same service time, seen later: the later observation wins
                ("2036-11-06T00:00:00Z", "STOPPING", {"status": "STOPPING", "startTime": "2036-11-05T00:00:00Z"}),
                # a run that ended stays ended, even when a later RUNNING is pulled
                ("2036-11-01T00:00:00Z", "CANCELLED", {"status": "CANCELLED", "stopTime": "2036-11-01T00:00:00Z"}),
                ("2036-11-09T00:00:00Z", "RUNNING", {"status": "RUNNING", "startTime": "2036-11-09T00:00:00Z"})]
        expected = ["RUNNING", "RUNNING", "STOPPING", "CANCELLED", "CANCELLED"]
        for (observed_at, status, body), want in zip(seen, expected, strict=True):
            ledger.add_received_observations([{"record": member, "run_uuid": None, "observed_at": observed_at,
                                               "source": "GetRun", "status": status, "body": body}])
            assert member_rows(ledger)[member][0] == want
            assert ledger.get(member).status == want  # what log and show say, from all the observations
    shown = json.loads(run_cli("show", batch, "--json").stdout)["batch"]
    assert shown["run_status"].get("CANCELLED") == 1
    assert run_cli("verify", "--no-remote").exit_code == 0


def as_format_7(path) -> None:
    """Make the ledger what a runlog of ledger format 7 left: m007's batch_members (keyed by
    the member's address, the batch's address in it) and triggers."""
    conn = sqlite3.connect(path)
    for name in ("records_batch_member", "observations_member_status", "records_batch_adopt",
                 "records_batch_view"):
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("DROP TABLE batch_members")
    conn.execute("DROP TABLE batch_views")
    conn.commit()
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    conn.execute("BEGIN")
    m007_batch_members(db)
    conn.execute(f"PRAGMA user_version = {MIGRATIONS.index(m007_batch_members) + 1}")
    conn.execute("COMMIT")
    conn.close()


def test_a_format_7_ledger_migrates_and_verify_passes(batch, ledger_path, run_cli):
    before = json.loads(run_cli("show", batch, "--json").stdout)["batch"]
    listed = json.loads(run_cli("log", "--batch", batch, "-n", "0", "--json").stdout)
    as_format_7(ledger_path)
    conn = sqlite3.connect(ledger_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 7
    assert "record" in {row[1] for row in conn.execute("PRAGMA table_info(batch_members)")}
    conn.close()
    assert json.loads(run_cli("show", batch, "--json").stdout)["batch"] == before  # migrated in a copy
    assert json.loads(run_cli("log", "--batch", batch, "-n", "0", "--json").stdout) == listed
    assert run_cli("refresh", batch).exit_code == 0  # a write migrates the file
    conn = sqlite3.connect(ledger_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == LEDGER_FORMAT
    columns = [row[1] for row in conn.execute("PRAGMA table_info(batch_members)")]
    assert columns[0] == "seq" and "record" not in columns
    assert conn.execute("SELECT count(*), count(DISTINCT batch) FROM batch_members").fetchone() == (RUNS, 1)
    conn.close()
    assert json.loads(run_cli("show", batch, "--json").stdout)["batch"] == before
    verified = run_cli("verify", "--no-remote")
    assert verified.exit_code == 0, verified.output
    with Ledger.open(ledger_path) as ledger:  # and the trigger of m008 keeps it from now on
        member = ledger.conn.execute("SELECT address FROM records WHERE kind = 'member' AND outcome = 'submitted' "
                                     "ORDER BY seq LIMIT 1").fetchone()[0]
        ledger.observe(member, "GetRun", {"status": "DELETED"}, status="DELETED")
        assert member_rows(ledger) == recomputed(ledger)
    assert json.loads(run_cli("show", batch, "--json").stdout)["batch"]["run_status"]["DELETED"] == 1


def test_members_recorded_before_their_batch_record_get_it_when_it_arrives(batch, ledger_path, tmp_path, run_cli):
    with Ledger.open(ledger_path) as ledger:
        batch_entry = ledger.resolve(batch)
        whole = batch_entry.record
        members = [json.loads(body) for (body,) in ledger.conn.execute(
            "SELECT body FROM records WHERE kind = 'member' ORDER BY seq")]
        statuses = ledger.conn.execute(
            "SELECT o.record, o.observed_at, o.source, o.status, o.body FROM observations o JOIN records r "
            "ON r.address = o.record WHERE r.kind = 'member' ORDER BY o.seq").fetchall()
    other = tmp_path / "other.db"
    with Ledger.open(other) as ledger:
        assert ledger.add_records(members[:5]) == 5  # e.g. pulled on their own
        ledger.add_observations([(record, None, at, source, status, json.loads(body))
                                 for record, at, source, status, body in statuses])
        assert ledger.conn.execute("SELECT count(*) FROM batch_members WHERE batch IS NULL").fetchone()[0] == 5
        assert ledger.add_records([whole, *members[5:]]) == 1 + RUNS - 5
        assert ledger.conn.execute("SELECT count(*) FROM batch_members WHERE batch IS NULL").fetchone()[0] == 0
        assert ledger.conn.execute("SELECT DISTINCT batch FROM batch_members").fetchall() == \
            [(ledger.resolve(batch).seq,)]
        assert member_rows(ledger) == recomputed(ledger)
    env = {"RUNLOG_LEDGER": str(other)}
    shown = json.loads(run_cli("show", batch, "--json", env=env).stdout)["batch"]
    assert shown["members_recorded"] == RUNS
    assert shown["submission"] == {"SUCCESS": RUNS - 1, "FAILED": 1}
    verified = run_cli("verify", "--no-remote", env=env)
    assert verified.exit_code == 0, verified.output


def test_a_status_observation_of_a_run_that_is_no_member_changes_no_member(batch, ledger_path):
    with Ledger.open(ledger_path) as ledger:
        before = member_rows(ledger)
        ledger.observe(ledger.resolve(batch).address, "GetBatch", {"status": "PROCESSED"}, status="DELETED")
        assert member_rows(ledger) == before


@pytest.mark.parametrize("where", ["kind = 'batch'", "kind = 'member'"])
def test_verify_reports_a_record_body_that_is_no_longer_json_instead_of_stopping(batch, ledger_path, run_cli, where):
    """Someone with write access replaces a batch's or a member's body with text that is not
    JSON: verify names the problem (exit 1), it does not stop on SQLite's JSON error (exit 2)."""
    tamper(ledger_path, f"UPDATE records SET body = 'not json {{' WHERE seq = (SELECT min(seq) FROM records WHERE {where})")
    result = run_cli("verify")
    assert result.exit_code == 1, result.output
    assert "malformed JSON" not in result.output


def test_verify_reports_an_observation_body_that_is_no_longer_json_instead_of_stopping(batch, ledger_path, run_cli):
    tamper(ledger_path, "UPDATE observations SET body = 'not json {' WHERE seq = "
           "(SELECT min(seq) FROM observations WHERE status IS NOT NULL)")
    result = run_cli("verify")
    assert result.exit_code == 1, result.output
    assert "malformed JSON" not in result.output
