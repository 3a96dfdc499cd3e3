"""The pending-attempts warning every command gives on opening the ledger reads the table
triggers keep (migration m005), not every attempt: same attempts as Ledger.pending(), at a
cost that does not grow with the ledger."""

from __future__ import annotations

import sqlite3

from recordfactory import make_record
from runlog.ledger import Ledger
from runlog.migrations import LEDGER_FORMAT


def _intent(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "outcome"}


def _truth(ledger: Ledger) -> list[str]:
    return [intent["request"]["requestId"] for intent in ledger.pending()]


def _vm_steps(ledger: Ledger, query) -> int:
    """SQLite virtual-machine instructions `query()` runs: a cost that no machine load changes."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    ledger.conn.set_progress_handler(count, 1)
    try:
        query()
    finally:
        ledger.conn.set_progress_handler(None, 1)
    return steps


def _as_format_4(path) -> None:
    """What a ledger written before migration m005 looks like."""
    conn = sqlite3.connect(path)
    conn.executescript("DROP TRIGGER attempts_pending; DROP TRIGGER records_complete_attempt; "
                       "DROP TABLE pending_attempts; PRAGMA user_version = 4;")
    conn.close()


def test_pending_request_ids_are_the_pending_attempts_as_the_ledger_changes(tmp_path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        assert ledger.pending_request_ids() == [] == _truth(ledger)
        done, waiting, later = (make_record(run_id=str(1000 + i), name=f"run-{i}") for i in range(3))
        for record in (done, waiting, later):
            ledger.add_attempt(_intent(record))
        ledger.complete(_intent(done), done["outcome"])
        assert ledger.pending_request_ids() == _truth(ledger)
        assert ledger.pending_request_ids() == [waiting["request"]["requestId"], later["request"]["requestId"]]

        ledger.add_record(make_record(run_id="2000", name="imported"))  # no attempt: never pending
        pulled = make_record(run_id="3000", name="pulled")
        ledger.add_record(pulled)  # its record is here before its attempt: the attempt is not pending
        ledger.add_attempt(_intent(pulled))
        assert ledger.pending_request_ids() == _truth(ledger) == [waiting["request"]["requestId"],
                                                                   later["request"]["requestId"]]

        ledger.complete(_intent(waiting), waiting["outcome"])  # e.g. by `runlog recover`
        assert ledger.pending_request_ids() == _truth(ledger) == [later["request"]["requestId"]]
        ledger.complete(_intent(later), later["outcome"])
        assert ledger.pending_request_ids() == _truth(ledger) == []


def test_finding_pending_attempts_costs_the_same_in_a_ledger_ten_times_bigger(tmp_path):
    """pending() probes an index for every attempt ever made; pending_request_ids() does not."""
    costs = {}
    for size in (20, 200):
        with Ledger.open(tmp_path / f"{size}.db") as ledger:
            for i in range(size):
                record = make_record(run_id=str(10_000 + i), name=f"done-{i}")
                ledger.add_attempt(_intent(record))
                ledger.complete(_intent(record), record["outcome"])
            for i in range(2):
                ledger.add_attempt(_intent(make_record(run_id=str(90_000 + i), name=f"waiting-{i}")))
            assert len(ledger.pending_request_ids()) == 2
            costs[size] = (_vm_steps(ledger, ledger.pending_request_ids), _vm_steps(ledger, ledger.pending))
    (small, small_scan), (big, big_scan) = costs[20], costs[200]
    assert big_scan > 5 * small_scan  # the measure sees a scan
    assert big <= small + 10, costs  # one lookup per pending attempt (the b-tree may be one level deeper)
    assert big < big_scan / 20, costs


def test_the_query_starts_from_the_pending_attempts_not_from_every_attempt(tmp_path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        plan = [row[-1] for row in ledger.conn.execute("EXPLAIN QUERY PLAN " + ledger._PENDING_IDS_SQL)]
    assert plan[0] == "SCAN p", plan
    assert not [step for step in plan if step.startswith(("SCAN a", "SCAN attempts"))], plan


def test_log_warns_about_a_pending_attempt_and_stops_once_it_is_recorded(tmp_path, run_cli):
    path = tmp_path / "l.db"
    record = make_record(run_id="4000")
    with Ledger.open(path) as ledger:
        ledger.add_record(make_record(run_id="3999", name="before"))
        ledger.add_attempt(_intent(record))
    result = run_cli("--ledger", path, "log")
    assert result.exit_code == 0
    assert (f"runlog: warning: 1 pending attempt(s) ({record['request']['requestId']}): sent or about to be "
            "sent, but not recorded; run `runlog recover`") in result.stderr
    with Ledger.open(path) as ledger:
        ledger.complete(_intent(record), record["outcome"])
    result = run_cli("--ledger", path, "show", "@1")
    assert result.exit_code == 0 and "pending" not in result.stderr


def test_a_pending_request_id_is_printed_with_control_characters_escaped(tmp_path, run_cli):
    path = tmp_path / "l.db"
    record = make_record(run_id="4000")
    record["request"]["requestId"] = "req\x1b[2J\nrunlog: forged"  # e.g. an attempt pulled from a team ledger
    with Ledger.open(path) as ledger:
        ledger.add_record(make_record(run_id="3999", name="before"))
        ledger.add_attempt(_intent(record))
    result = run_cli("--ledger", path, "log")
    assert "1 pending attempt(s) (req\\x1b[2J\\nrunlog: forged)" in result.stderr
    assert "\x1b" not in result.stderr and not any(line.startswith("runlog: forged") for line in result.stderr.splitlines())


def test_a_ledger_from_before_m005_warns_read_only_and_is_migrated_by_a_write(tmp_path, run_cli):
    path = tmp_path / "l.db"
    done, waiting = make_record(run_id="5000", name="done"), make_record(run_id="5001", name="waiting")
    with Ledger.open(path) as ledger:
        for record in (done, waiting):
            ledger.add_attempt(_intent(record))
        ledger.complete(_intent(done), done["outcome"])
    _as_format_4(path)
    before = path.read_bytes()
    result = run_cli("--ledger", path, "log")  # migrated in memory only
    assert result.exit_code == 0
    assert f"1 pending attempt(s) ({waiting['request']['requestId']})" in result.stderr
    assert path.read_bytes() == before
    with Ledger.open(path) as ledger:  # a writing command migrates the file
        assert ledger.conn.execute("PRAGMA user_version").fetchone()[0] == LEDGER_FORMAT
        assert ledger.pending_request_ids() == [waiting["request"]["requestId"]] == _truth(ledger)
    assert run_cli("--ledger", path, "verify").exit_code == 0


def test_migration_m005_fills_the_table_afresh_when_it_is_already_there(tmp_path):
    """A ledger whose user_version was set back by hand keeps the table: what it held is replaced."""
    path = tmp_path / "l.db"
    waiting = make_record(run_id="6001", name="waiting")
    with Ledger.open(path) as ledger:
        ledger.add_attempt(_intent(waiting))
    conn = sqlite3.connect(path)
    conn.executescript("DELETE FROM pending_attempts; INSERT INTO pending_attempts VALUES ('no-such-attempt');"
                       "PRAGMA user_version = 4;")
    conn.close()
    with Ledger.open(path) as ledger:
        assert ledger.pending_request_ids() == [waiting["request"]["requestId"]] == _truth(ledger)
        assert ledger.conn.execute("SELECT request_id FROM pending_attempts").fetchall() == [
            (waiting["request"]["requestId"],)]
