"""A large refresh's members built, checked and written by a child process (runlog/writerproc.py,
issue 14): the same records and statuses as the threads write, the child's errors as the same
one line, a child that dies reported once and a rerun that completes, Ctrl-C leaving no
process behind. RUNLOG_WRITER_PROCESS=1 makes a small batch take the child's path (=0 the
threads'); by default the size of the batch decides."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import COHORT_FAILING as FAILING
from helpers import COHORT_NOT_STARTED as NOT_STARTED
from helpers import COHORT_RUNS as RUNS
from helpers import finished_cohort
from runlog import writerproc
from runlog.errors import LedgerError, RunlogError, ServiceError, UsageError
from runlog.ledger import Ledger

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def cohort(s3_server, monkeypatch, ledger_path, git_repo, run_cli):
    """A finished batch (helpers.finished_cohort); yields (emulator, batch id)."""
    with finished_cohort(s3_server, monkeypatch, run_cli) as found:
        yield found


def copy_of(ledger_path: Path, target: Path) -> Path:
    source, copy = sqlite3.connect(ledger_path), sqlite3.connect(target)
    source.backup(copy)
    source.close()
    copy.close()
    return target


def refresh_at(point: str, batch_id: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`runlog refresh BATCH` in a subprocess with a killers.py point installed."""
    return subprocess.run([sys.executable, str(TESTS / "killers.py"), point, "refresh", batch_id], cwd=cwd,
                          capture_output=True, text=True, timeout=240, env={**os.environ, **env})


def writer_children(listing: Path) -> list[int]:
    """The pids of the runlog.writerproc children a killers.py child-at-call point listed."""
    return [int(line.split()[0]) for line in listing.read_text().splitlines() if "runlog.writerproc" in line]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return b"runlog.writerproc" in cmdline.read()
    except OSError:
        return False


def ledger_state(path: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """({runSettingId: member address}, {member address: [status, ...]}); fails on a
    runSettingId recorded twice."""
    with Ledger.open(path, create=False) as ledger:
        bodies = ledger.conn.execute("SELECT address, body FROM records WHERE kind = 'member'").fetchall()
        seen = ledger.conn.execute("SELECT o.record, o.status FROM observations o JOIN records r "
                                   "ON r.address = o.record WHERE r.kind = 'member' ORDER BY o.seq").fetchall()
    found: dict[str, str] = {}
    for address, body in bodies:
        setting_id = json.loads(body)["batch"]["run_setting_id"]
        assert setting_id not in found, f"{setting_id} recorded twice"
        found[setting_id] = address
    statuses: dict[str, list[str]] = {}
    for address, status in seen:
        statuses.setdefault(address, []).append(status)
    return found, statuses


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="lists child processes through /proc")
def test_the_child_writes_the_same_members_and_statuses_as_the_threads(cohort, ledger_path, git_repo, run_cli,
                                                                         tmp_path):
    emulator, batch_id = cohort
    threads = copy_of(ledger_path, tmp_path / "threads.db")
    listing = tmp_path / "children.txt"

    by_child = refresh_at(f"child-at-call:ListRunsInBatch:2:list:{listing}", batch_id, git_repo,
                          {"RUNLOG_WRITER_PROCESS": "1"})
    assert by_child.returncode == 0, by_child.stderr
    assert f"{RUNS} new member record(s), {RUNS - len(NOT_STARTED)} status change(s)" in by_child.stdout
    assert len(writer_children(listing)) == 1  # the members were handed to a child process

    by_threads = run_cli("refresh", batch_id, env={"RUNLOG_LEDGER": str(threads), "RUNLOG_WRITER_PROCESS": "0"})
    assert by_threads.exit_code == 0, by_threads.output
    members, statuses = ledger_state(ledger_path)
    assert (members, statuses) == ledger_state(threads)  # the same addresses, the same statuses
    assert sorted(members) == [f"S{i:04d}" for i in range(RUNS)]
    assert {a for a, seen in statuses.items() if seen == ["FAILED"]} == {members[s] for s in FAILING}

    again = run_cli("refresh", batch_id, env={"RUNLOG_WRITER_PROCESS": "1"})
    assert again.exit_code == 0 and "0 new member record(s), 0 status change(s)" in again.stdout, again.output
    verify = run_cli("verify", "--no-remote")
    assert verify.exit_code == 0, verify.output


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="lists child processes through /proc")
def test_a_killed_child_is_one_line_nonzero_and_a_rerun_records_each_member_once(cohort, ledger_path, git_repo,
                                                                                  run_cli, tmp_path):
    emulator, batch_id = cohort
    listing = tmp_path / "children.txt"
    killed = refresh_at(f"child-at-call:ListRunsInBatch:3:kill:{listing}", batch_id, git_repo,
                        {"RUNLOG_WRITER_PROCESS": "1"})
    (child,) = writer_children(listing)
    assert killed.returncode == 1, (killed.stdout, killed.stderr)
    (line,) = [li for li in killed.stdout.splitlines() if li.startswith(f"batch {batch_id} ")]
    assert f"writer process (pid {child}) ended before it finished (killed by signal 9)" in line, line
    assert f"run `runlog refresh {batch_id}` again to record the rest" in line, line
    assert "Traceback" not in killed.stderr
    early, _ = ledger_state(ledger_path)
    # whole pages only: the child was handed two pages of 100 at most, and commits at 100 pages, at the end
    # of its input, or when a transaction has waited 3 s for its pages (refreshpipe.OPEN_AT_MOST; a slow machine)
    assert len(early) in (0, 100, 200)

    again = run_cli("refresh", batch_id, env={"RUNLOG_WRITER_PROCESS": "1"})
    assert again.exit_code == 0, again.output
    members, statuses = ledger_state(ledger_path)
    assert sorted(members) == [f"S{i:04d}" for i in range(RUNS)]
    assert set(statuses) == {a for s, a in members.items() if s not in NOT_STARTED}
    assert all(len(seen) == 1 for seen in statuses.values())
    assert run_cli("verify", "--no-remote").exit_code == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="lists child processes through /proc")
def test_ctrl_c_leaves_no_writer_process_behind(cohort, ledger_path, git_repo, run_cli, tmp_path):
    emulator, batch_id = cohort
    listing = tmp_path / "children.txt"
    interrupted = refresh_at(f"child-at-call:ListRunsInBatch:2:interrupt:{listing}", batch_id, git_repo,
                             {"RUNLOG_WRITER_PROCESS": "1"})
    (child,) = writer_children(listing)
    assert interrupted.returncode == 130, (interrupted.stdout, interrupted.stderr)
    assert interrupted.stderr.strip().splitlines() == ["runlog: error: interrupted"]
    assert not alive(child)  # waited for, not left running
    members, _ = ledger_state(ledger_path)
    assert len(members) in (0, 100)  # the whole page handed over before the interrupt, or none
    again = run_cli("refresh", batch_id)
    assert again.exit_code == 0, again.output
    assert len(ledger_state(ledger_path)[0]) == RUNS


def test_a_failing_service_still_reports_its_own_error_with_the_child(cohort, ledger_path, run_cli):
    emulator, batch_id = cohort
    emulator.inject("error", operation="ListRunsInBatch", count=3)  # every attempt of the first page
    failed = run_cli("refresh", batch_id, env={"RUNLOG_WRITER_PROCESS": "1"})
    assert failed.exit_code == 1, failed.output
    (line,) = [li for li in failed.stdout.splitlines() if li.startswith(f"batch {batch_id} ")]
    assert "ListRunsInBatch" in line and "InternalServerException" in line, line
    assert ledger_state(ledger_path)[0] == {}
    assert run_cli("refresh", batch_id, env={"RUNLOG_WRITER_PROCESS": "1"}).exit_code == 0
    assert len(ledger_state(ledger_path)[0]) == RUNS


def test_the_childs_error_is_raised_in_the_parent_as_the_same_class_and_line(tmp_path):
    """The child cannot open the ledger (its file was removed after the parent opened it):
    its LedgerError comes back as a LedgerError with the child's own words."""
    path = tmp_path / "ledger.db"
    ledger = Ledger.open(path)
    try:
        path.unlink()
        writer = writerproc.WriterProcess(ledger, "0" * 64, {})
        writer.start()
        with pytest.raises(LedgerError) as raised:
            writer.members([{"runSettingId": "S1", "runId": "1"}])
            writer.flush()
        assert raised.value.message == f"no ledger at {path} (nothing has been submitted with it yet)"
        assert writer.pid is None  # waited for
    finally:
        ledger.close()


def test_the_child_never_writes_to_a_file_renamed_into_the_ledgers_place(tmp_path):
    """Another ledger renamed into the ledger's place after the parent opened it (as a file
    sync tool replaces files): the child refuses to write members there, where the parent's
    own writes are not, and says so in one line; the file put there is left as it was."""
    path, other = tmp_path / "ledger.db", tmp_path / "other.db"
    ledger = Ledger.open(path)
    Ledger.open(other).close()
    try:
        os.replace(other, path)
        before = path.read_bytes()
        writer = writerproc.WriterProcess(ledger, "0" * 64, {})
        writer.start()
        with pytest.raises(LedgerError) as raised:
            writer.members([{"runSettingId": "S1", "runId": "1"}])
            writer.flush()
        assert raised.value.message == (
            f"the ledger file {path} was replaced while the refresh ran (another file renamed into its place): "
            "nothing was written to it; check which file is the ledger, then run the refresh again")
        assert writer.pid is None
        assert path.read_bytes() == before
    finally:
        ledger.close()


def test_an_error_class_the_parent_cannot_rebuild_keeps_its_line_and_exit_code():
    assert type(writerproc._rebuilt("UsageError", "bad value x; give y", 2)) is UsageError
    rebuilt = writerproc._rebuilt("ServiceError", "GetRun failed: X: y", 1)
    assert type(rebuilt) is RunlogError and not isinstance(rebuilt, ServiceError)
    assert (rebuilt.message, rebuilt.exit_code) == ("GetRun failed: X: y", 1)
    assert type(writerproc._rebuilt("NoSuchClass", "z", 70)) is RunlogError


def test_the_batch_size_decides_unless_the_environment_says(tmp_path, monkeypatch):
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        monkeypatch.delenv(writerproc.ENV, raising=False)
        assert not writerproc.wanted(ledger, writerproc.CHILD_FROM_RUNS - 1)
        assert writerproc.wanted(ledger, writerproc.CHILD_FROM_RUNS)
        assert not writerproc.wanted(ledger, None)  # GetBatch did not say: the threads
        monkeypatch.setenv(writerproc.ENV, "0")
        assert not writerproc.wanted(ledger, 100_000)
        monkeypatch.setenv(writerproc.ENV, "1")
        assert writerproc.wanted(ledger, 1)
        ledger.snapshot = True  # an in-memory copy: the child could not see it
        assert not writerproc.wanted(ledger, 100_000)


MEMORY_STATISTICS = """
import ctypes, sqlite3, sys, _sqlite3
from runlog import writerproc
from runlog.ledger import Ledger
library = ctypes.CDLL(_sqlite3.__file__)
library.sqlite3_memory_used.restype = ctypes.c_int64
off = writerproc.sqlite_without_memory_statistics()
with Ledger.open(sys.argv[1]) as ledger:
    ledger.conn.execute("CREATE TEMP TABLE t (x)")
    ledger.conn.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(1000)])
    counted = ledger.conn.execute("SELECT count(*) FROM t").fetchone()[0]
print(off, library.sqlite3_memory_used(), counted)
"""


def test_sqlites_memory_statistics_turned_off_leave_a_ledger_that_works(tmp_path):
    """The child's two threads both run SQLite; with its memory statistics on, each of
    SQLite's allocations took one process-wide mutex (a tenth of the main thread's profile
    samples at 100 000 members). Off, SQLite counts nothing (memory_used stays 0), and the ledger
    opened afterwards works."""
    done = subprocess.run([sys.executable, "-c", MEMORY_STATISTICS, str(tmp_path / "l.db")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "0", "1000"]
    with Ledger.open(tmp_path / "l.db", create=False) as ledger:
        assert ledger.entries() == []


def test_sqlites_memory_statistics_stay_on_while_a_connection_is_open(tmp_path):
    """Review: sqlite3_shutdown does not refuse with a connection open, and that connection
    would then be broken; the statistics are left on instead, and it goes on working."""
    code = ("import sqlite3, sys\nfrom runlog import writerproc\nconn = sqlite3.connect(sys.argv[1])\n"
            "conn.execute('CREATE TABLE t (x)')\noff = writerproc.sqlite_without_memory_statistics()\n"
            "conn.executemany('INSERT INTO t VALUES (?)', [(n,) for n in range(100)])\n"
            "print(off, conn.execute('SELECT count(*) FROM t').fetchone()[0])\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "t.db")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "100"]
