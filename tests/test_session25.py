"""Session 25: the `runlog` program ends its process without tearing the interpreter down
(runlog.cli.run), and nothing a command did is lost by it: real subprocesses, real ledger
files, the emulator over HTTP."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap

ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"
SUBMIT = ["submit", "--workflow-id", "1234567", "--workflow-owner-id", "123456789012", "--role-arn", ROLE,
          "--output-uri", "s3://your-bucket/results/", "--parameters", '{"param1": "value1", "param2": "value2"}',
          "--no-resolve"]


def _python(code: str, tmp_path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})


def test_the_ledger_file_alone_holds_what_a_command_wrote(aws_env, ledger_path, git_repo, run_proc, tmp_path):
    """A copy of ledger.db without its -wal file (what a user mails or backs up) has the
    submission: the ledger was closed, its WAL copied into the file, before the process ended."""
    first = run_proc(*SUBMIT, "--name", "first", cwd=git_repo, env={"RUNLOG_LEDGER": str(ledger_path)})
    second = run_proc(*SUBMIT, "--name", "second", cwd=git_repo, env={"RUNLOG_LEDGER": str(ledger_path)})
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    run_id = json.loads(second.stdout)["id"]
    assert not os.path.exists(f"{ledger_path}-wal") or os.path.getsize(f"{ledger_path}-wal") == 0
    alone = tmp_path / "copy" / "ledger.db"
    alone.parent.mkdir()
    shutil.copyfile(ledger_path, alone)  # the file alone, no -wal, no -shm
    conn = sqlite3.connect(alone)
    try:
        assert [row[0] for row in conn.execute("SELECT run_id FROM records ORDER BY seq")][-1] == run_id
    finally:
        conn.close()
    listed = run_proc("log", "--json", env={"RUNLOG_LEDGER": str(alone)})
    assert listed.returncode == 0, listed.stderr
    assert [entry["run_id"] for entry in json.loads(listed.stdout)][:2] == [run_id, json.loads(first.stdout)["id"]]


def test_a_thread_still_working_is_waited_for(tmp_path):
    """A program that calls runlog's main with a thread of its own still working: the process
    ends the usual way, after the thread has done its work."""
    done = _python("""
        import sys, threading, time
        from runlog.cli import run
        def work():
            time.sleep(0.5)
            open("written", "w").write("done")
        threading.Thread(target=work).start()
        sys.argv = ["runlog", "--version"]
        run()
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("runlog, version")
    assert (tmp_path / "written").read_text() == "done"


def test_exit_handlers_run_and_the_exit_status_is_kept(aws_env, ledger_path, git_repo, run_proc, tmp_path):
    """Exit handlers registered before the command (coverage's, a program's) run, with the
    ledgers still open as at the usual end; output printed by them is not lost, and the
    command's exit status is the process's."""
    made = run_proc(*SUBMIT, "--name", "x", cwd=git_repo, env={"RUNLOG_LEDGER": str(ledger_path)})
    assert made.returncode == 0, made.stderr
    done = _python(f"""
        import atexit, sys
        from runlog.ledger import Ledger
        from runlog.cli import run
        ledger = Ledger.open({str(ledger_path)!r}, create=False)
        atexit.register(lambda: (open("handled", "w").write("yes"), print("records at exit:", ledger.count())))
        sys.argv = ["runlog", "show", "@9"]
        run()
        print("not reached")
    """, tmp_path, RUNLOG_LEDGER=str(ledger_path))
    assert done.returncode == 2, done.stderr
    assert "runlog: error:" in done.stderr and "@9" in done.stderr
    assert (tmp_path / "handled").read_text() == "yes"
    assert done.stdout == "records at exit: 1\n", done.stdout + done.stderr


def test_a_profiler_still_writes_what_it_saw(tmp_path):
    """`python -m cProfile -o FILE -m runlog ...` writes its profile: with a profiler
    attached, the process ends the usual way."""
    out = tmp_path / "runlog.prof"
    done = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out), "-m", "runlog", "--version"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 0


def test_output_to_a_closed_pipe_ends_as_before(aws_env, ledger_path, git_repo):
    """`runlog log | head -1`: the reader goes away; the command still succeeds quietly."""
    env = {**os.environ, "RUNLOG_LEDGER": str(ledger_path)}
    for index in range(3):
        made = subprocess.run([sys.executable, "-m", "runlog", *SUBMIT, "--name", f"r{index}"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert made.returncode == 0, made.stderr
    shell = subprocess.run(f"{sys.executable} -m runlog log | head -c 1", shell=True, env=env, capture_output=True,
                           text=True, timeout=120, executable="/bin/bash")
    assert shell.returncode == 0
    assert "Traceback" not in shell.stderr and "Exception ignored" not in shell.stderr


def test_a_program_calling_main_goes_on_after_the_command(tmp_path):
    """runlog.cli.main, and the runlog module run by a program (runpy, as IPython's `%run -m
    runlog` runs it: alter_sys=True), end a command with SystemExit, as before: the program
    that called it goes on."""
    done = _python("""
        import runpy, sys
        from runlog.cli import main
        try:
            main(["--version"])
        except SystemExit as exc:
            print("main ended", exc.code)
        for alter in (False, True):
            sys.argv = ["runlog", "--version"]
            try:
                runpy.run_module("runlog", run_name="__main__", alter_sys=alter)
            except SystemExit as exc:
                print("module ended", exc.code)
        print("host goes on")
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("runlog, version") == 3
    assert "main ended 0" in done.stdout and done.stdout.count("module ended 0") == 2
    assert done.stdout.endswith("host goes on\n")


def test_an_interactive_prompt_or_a_debugger_still_follows_the_command(tmp_path):
    """`python -i -m runlog ...` gives the prompt after the command, and `python -m pdb -m
    runlog ...` reports the end and restarts, as before: the process does not end at once."""
    inspected = subprocess.run([sys.executable, "-i", "-m", "runlog", "--version"], input='print("PROMPT")\n',
                               cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "runlog, version" in inspected.stdout and "PROMPT" in inspected.stdout, inspected.stdout
    debugged = subprocess.run([sys.executable, "-m", "pdb", "-m", "runlog", "--version"], input="c\nq\n",
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "The program exited via sys.exit()" in debugged.stdout, debugged.stdout


def test_report_counts_each_run_once(aws_env, ledger_path, git_repo, run_cli, tmp_path):
    """A batch whose ListRunsInBatch gave one run to two run settings: the report counts runs,
    not records. The batch record is no run, and the run of two member records is one run: 2
    runs (1 FAILED, 1 COMPLETED) in 4 records, in the line printed, the runs chart and the
    batch's bar."""
    import re

    from helpers import shared_run_cohort

    batch_id, refreshed = shared_run_cohort(aws_env, run_cli, fail=True)
    assert refreshed.exit_code == 0, refreshed.output
    out = tmp_path / "cohort.html"
    result = run_cli("report", "--batch", batch_id, "-o", out)
    assert result.exit_code == 0, result.output
    assert ": 2 run(s) in 4 record(s), ledger intact" in result.output, result.output
    page = out.read_text()
    charts = page[page.index('<section id="charts">'):page.index("</section>")]
    over_time = re.findall(r"<title>[0-9-]+ \(day\): (\d+) (\w+)</title>", charts)
    assert sorted(over_time) == [("1", "COMPLETED"), ("1", "FAILED")], over_time
    assert "2 run(s) (3 member records: ListRunsInBatch gave 1 run(s) to more than one run setting)" in charts
    bar = re.findall(r'<rect class="bar st-\w+" x="[\d.]+" y="20"[^>]*><title>(\d+) (\w+)</title>', charts)
    assert sorted(bar) == [("1", "COMPLETED"), ("1", "FAILED")], bar
    assert page.count('<tr id="row-') == 4  # a row for each record, as before


def test_report_counts_a_run_once_when_one_of_its_items_has_no_uuid(aws_env, ledger_path, git_repo, run_cli,
                                                                    tmp_path):
    """The same, with the run given to S2 without its runInternalUuid (the member is optional
    in ListRunsInBatch's answer): S1's and S2's member records still name one run, by its id."""
    batch_id = _shared_without_uuid(aws_env, run_cli)
    result = run_cli("report", "--batch", batch_id, "-o", tmp_path / "cohort.html")
    assert result.exit_code == 0, result.output
    assert ": 2 run(s) in 4 record(s)" in result.output, result.output


def test_a_blobs_rows_are_the_same_when_its_bytes_are_not_looked_for_again():
    """submit-batch computes a settings file's per-run rows from the blob it has just made of
    the settings (cohortindex.Prepared.of_blob: the bytes are their canonical JSON, not
    encoded and looked for again); the rows are those any reader computes from the blob, for
    settings whose values hold the separator `},{`, floats, long integers and text of every
    plane."""
    from runlog import cohortindex, fastjson

    settings = [{"runSettingId": "S1", "name": "a},{b", "parameters": {"x": 1.5e-7, "n": 2**70}},
                {"runSettingId": "S2\u00e9", "parameters": {"p": "\U0001f600 },{\"runSettingId\":\"S9\"}"}},
                {"runSettingId": "S3", "priority": 3}]
    for listed in (settings, settings[2:], [dict(s, runSettingId=f"R{i}") for i, s in enumerate(settings * 50)]):
        data = fastjson.dumps(listed)
        found = cohortindex.blob_rows(data)
        assert found is not None
        assert cohortindex.Prepared.of_blob(listed, data, "d" * 64).blob_rows("d" * 64) == found


def test_push_refuses_an_observation_runlog_cannot_have_written(aws_env, bucket, ledger_path, git_repo, run_cli):
    """A ledger file edited by hand gained a copy of a failed run's GetRun observation with
    status COMPLETED, sealed as runlog seals rows. `verify` named it, but `push` sent it to the
    team ledger, where every pull then refused it. Push now refuses it by name, as it refuses
    a record verify names, and sends nothing."""
    import sqlite3

    from helpers import BUCKET, REMOTE, pushed_cohort
    from runlog.ledger import Ledger, seal_rows

    aws_env.batch_fault("run", reason="OUT_OF_MEMORY", run_setting_ids=["S2"])
    pushed_cohort(run_cli, aws_env, ledger_path, "S1", "S2", "S3")
    held = {o["Key"] for o in bucket.list_objects_v2(Bucket=BUCKET).get("Contents", [])}
    conn = sqlite3.connect(ledger_path, isolation_level=None)
    try:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(observations)") if row[1] != "seq"]
        failed = conn.execute("SELECT seq FROM observations WHERE source = 'GetRun' AND status = 'FAILED' "
                              "ORDER BY seq DESC LIMIT 1").fetchone()[0]
        listed = ", ".join(columns)
        chosen = ", ".join("'COMPLETED'" if c == "status" else "'2030-01-01T00:00:00.000Z'" if c == "observed_at"
                           else c for c in columns)
        conn.execute("BEGIN")
        seq = conn.execute(f"INSERT INTO observations ({listed}) SELECT {chosen} FROM observations WHERE seq = ?",
                           (failed,)).lastrowid
        seal_rows(conn, "observations", "seq = ?", (seq,))
        conn.execute("COMMIT")
    finally:
        conn.close()
    verified = run_cli("verify", "--no-remote")
    assert verified.exit_code == 1 and f"observation #{seq} is not one runlog makes" in verified.stdout, verified.output
    assert "seal" not in verified.stdout  # sealed as runlog seals: only the rule tells
    pushed = run_cli("push", REMOTE)
    assert pushed.exit_code == 2, pushed.output
    assert "refusing to push" in pushed.stderr and f"observation #{seq} is not one runlog makes: its status " \
        "'COMPLETED' is not its GetRun answer's ('FAILED')" in pushed.stderr, pushed.stderr
    assert {o["Key"] for o in bucket.list_objects_v2(Bucket=BUCKET).get("Contents", [])} == held
    with Ledger.open(ledger_path, create=False) as ledger:
        assert ledger.conn.execute("SELECT count(*) FROM observations WHERE seq = ?", (seq,)).fetchone()[0] == 1


def test_report_says_how_many_runs_were_given_to_several_run_settings(aws_env, ledger_path, git_repo, run_cli,
                                                                     tmp_path):
    """One run ListRunsInBatch gave to all three run settings: 1 run in 3 member records, and
    the batch's bar says that 1 run (not 2) went to more than one run setting."""
    from helpers import ended_batch, pages_changed

    batch_id = ended_batch(aws_env, run_cli, "S1", "S2", "S3")

    def shared(page):
        first = page["runs"][0]
        for other in page["runs"][1:]:
            other.update({k: first[k] for k in ("runId", "runInternalUuid", "runArn")})

    pages_changed(aws_env, "ListRunsInBatch", shared)
    assert run_cli("refresh", batch_id).exit_code == 0
    out = tmp_path / "cohort.html"
    result = run_cli("report", "--batch", batch_id, "-o", out)
    assert result.exit_code == 0, result.output
    assert ": 1 run(s) in 4 record(s)" in result.output, result.output
    assert "1 run(s) (3 member records: ListRunsInBatch gave 1 run(s) to more than one run setting)" \
        in out.read_text()


def test_exports_count_a_run_once_when_one_of_its_items_has_no_uuid(aws_env, ledger_path, git_repo, run_cli,
                                                                    tmp_path):
    """The run ListRunsInBatch gave to S1 and S2, S2's item without the run's uuid: the
    exports took S2's member for a run of its own ("3 started as runs", a third action in the
    crate's batch) while `refresh` and the report count one. Report and exports now count by
    one rule (batchread.same_runs): the member is the run S1's member names, uuid and all."""
    import csv

    batch_id = _shared_without_uuid(aws_env, run_cli)
    out = tmp_path / "x"
    result = run_cli("export", batch_id, "-f", "all", "-o", out, "--license", "CC-BY-4.0")
    assert result.exit_code == 0, result.output
    methods = (out / "methods" / "methods.md").read_text()
    assert "3 run setting(s), 2 started as runs (1 COMPLETED, 1 FAILED)" in methods, methods
    by_setting = {row["run_setting_id"]: row for row in csv.DictReader((out / "methods" / "samples.csv").open())}
    assert by_setting["S2"]["run_uuid"] == by_setting["S1"]["run_uuid"] != ""
    assert "ListRunsInBatch gave this run to run settings S1, S2" in by_setting["S2"]["settings_source"]
    crate = json.loads((out / "ro-crate-metadata.json").read_text())
    batch_action = next(e for e in crate["@graph"] if "runBatch" in str(e.get("identifier")))
    results = [item["@id"] for item in batch_action["result"]]
    assert len(results) == len(set(results)) == 2, results
    citation = (out / "methods" / "CITATION.cff").read_text()
    assert citation.count(f'"urn:uuid:{by_setting["S1"]["run_uuid"]}"') == 1, citation


def _shared_without_uuid(emulator, run_cli) -> str:
    """A cohort S1, S2, S3 whose S1 run fails, refreshed through a ListRunsInBatch that gives
    S1's run to S2 as well, without the run's uuid (runInternalUuid is optional): its batch id."""
    from helpers import ended_batch, pages_changed

    emulator.batch_fault("run", run_setting_ids=["S1"], reason="OUT_OF_MEMORY")
    batch_id = ended_batch(emulator, run_cli, "S1", "S2", "S3")

    def shared(page):
        first = page["runs"][0]
        page["runs"][1].update({k: first[k] for k in ("runId", "runArn")})
        page["runs"][1].pop("runInternalUuid", None)

    pages_changed(emulator, "ListRunsInBatch", shared)
    assert run_cli("refresh", batch_id).exit_code == 0
    return batch_id


def test_exports_name_a_run_known_only_by_its_id_once(aws_env, ledger_path, git_repo, run_cli, tmp_path):
    """The run ListRunsInBatch gave to S1 and S2, neither item with the run's uuid: the run is
    one action (`#run-<id>`) in the crate and one activity (`runlog:run-<id>`) in PROV, listed
    for both settings, and the crate and CITATION.cff pass runcrate and cffconvert."""
    import subprocess

    from helpers import checker, ended_batch, pages_changed

    batch_id = ended_batch(aws_env, run_cli, "S1", "S2", "S3")

    def shared(page):
        first = page["runs"][0]
        page["runs"][1].update({k: first[k] for k in ("runId", "runArn")})
        for item in page["runs"][:2]:
            item.pop("runInternalUuid", None)

    pages_changed(aws_env, "ListRunsInBatch", shared)
    assert run_cli("refresh", batch_id).exit_code == 0
    out = tmp_path / "x"
    result = run_cli("export", batch_id, "-f", "all", "-o", out, "--license", "CC-BY-4.0")
    assert result.exit_code == 0, result.output
    assert "3 run setting(s), 2 started as runs (2 COMPLETED)" in (out / "methods" / "methods.md").read_text()
    crate = json.loads((out / "ro-crate-metadata.json").read_text())
    batch_action = next(e for e in crate["@graph"] if "runBatch" in str(e.get("identifier")))
    results = [item["@id"] for item in batch_action["result"]]
    assert len(results) == len(set(results)) == 2 and sum(r.startswith("#run-") for r in results) == 1, results
    run_id = next(r for r in results if r.startswith("#run-")).removeprefix("#run-")
    prov = json.loads((out / "prov.json").read_text())
    activities = [(name, a) for name, a in prov["activity"].items() if isinstance(a, dict)
                  and a.get("runlog:runId") == run_id]
    assert [name for name, _ in activities] == [f"runlog:run-{run_id}"], activities
    assert activities[0][1]["runlog:runSettingId"] == "S1, S2"
    for command in ([checker("cffconvert"), "--validate", "-i", str(out / "methods" / "CITATION.cff")],
                    [checker("runcrate"), "report", str(out)]):
        checked = subprocess.run(command, capture_output=True, text=True)
        assert checked.returncode == 0, (command, checked.stdout[-2000:], checked.stderr[-2000:])
