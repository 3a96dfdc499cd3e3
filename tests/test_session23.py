"""Session 23's changes, each as a user sees it through the CLI against the emulator."""

from __future__ import annotations

import json
import re

from helpers import REMOTE, SEED_1, push_json, submit_cohort


def _imported_then_pulled(aws_env, run_cli, ledger_path, other):
    """Ledger A submits one run and a two-run batch through runlog and pushes; ledger `other`
    imports them from the service, then pulls A: it holds each run and the batch twice, each
    record true. Returns A's run id and batch id."""
    single = run_cli(*SEED_1, "--endpoint-url", aws_env.endpoint_url)
    assert single.exit_code == 0, single.output
    run_id = json.loads(single.stdout)["id"]
    batch_id = submit_cohort(run_cli, "S1", "S2")
    aws_env.batch_rate = 100
    aws_env.advance(300)
    assert run_cli("refresh").exit_code == 0
    push_json(run_cli, ledger_path)
    imported = run_cli("--ledger", other, "import")
    assert imported.exit_code == 0, imported.output
    pulled = run_cli("--ledger", other, "pull", REMOTE)
    assert pulled.exit_code == 0, pulled.output
    return run_id, batch_id


def test_log_and_report_list_each_run_once_after_import_then_pull(aws_env, bucket, ledger_path, git_repo, run_cli,
                                                                  tmp_path):
    """`log` listed the imported and the submitted record of the same run (and of the same
    batch) one above the other, and `report` counted every run twice. Each is now listed and
    counted once, as the record runlog made when it started it; `log` says on stderr which
    imported records it left out, and the report's selection says how many."""
    other = tmp_path / "other.db"
    run_id, batch_id = _imported_then_pulled(aws_env, run_cli, ledger_path, other)
    mine = {row["address"]: row for row in json.loads(run_cli("log", "--json", "-n", "0").stdout)}

    listed = run_cli("--ledger", other, "log", "--json", "-n", "0")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [row["kind"] for row in rows if row.get("run_id") == run_id] == ["submit"], rows
    assert [row["kind"] for row in rows if row.get("batch_id") == batch_id] == ["batch"], rows
    assert set(mine) <= {row["address"] for row in rows}, (rows, mine)
    uuids = [row["run_uuid"] for row in rows if row.get("run_uuid")]
    assert len(uuids) == len(set(uuids)), rows  # (the emulator's own run is imported too: it has no twin)
    assert "2 imported record(s) not listed" in listed.stderr, listed.stderr

    text = run_cli("--ledger", other, "log")
    assert text.stdout.count(run_id) == 1 and text.stdout.count(f"batch {batch_id}") == 1, text.stdout
    # -n 1 still lists one record, whichever way the twins sort
    (newest,) = json.loads(run_cli("--ledger", other, "log", "--json", "-n", "1").stdout)
    assert newest["address"] in mine

    report = run_cli("--ledger", other, "report", "-o", tmp_path / "report.html")
    assert report.exit_code == 0, report.output
    runs = int(re.search(r"(\d+) run\(s\)", report.output).group(1))
    assert runs == len(rows) + 2, report.output  # what log lists, and the batch's two members
    page = (tmp_path / "report.html").read_text()
    assert "less 4 imported record(s)" in page


def test_log_lists_an_imported_run_that_has_no_submitted_twin(aws_env, ledger_path, git_repo, run_cli, tmp_path):
    """The twin rule leaves out only an imported record whose run the ledger also holds as
    submitted: a run imported alone is listed as before, and no note is printed."""
    single = run_cli(*SEED_1, "--endpoint-url", aws_env.endpoint_url)
    run_id = json.loads(single.stdout)["id"]
    other = tmp_path / "other.db"
    assert run_cli("--ledger", other, "import").exit_code == 0
    listed = run_cli("--ledger", other, "log", "--json")
    assert [row["kind"] for row in json.loads(listed.stdout) if row.get("run_id") == run_id] == ["import"]
    assert "not listed" not in listed.stderr


def test_refresh_of_a_record_that_started_nothing_is_refused_like_watch(aws_env, ledger_path, git_repo, run_cli):
    """`refresh MEMBER` of a member whose submission failed printed "no run" and exited 1,
    where `watch` of it exits 2; given with a good REF, the good one was asked first. Both now
    refuse it in one line, exit 2, before anything is asked."""
    aws_env.batch_fault("start", run_setting_ids=["S2"])  # S2's submission fails
    batch_id = submit_cohort(run_cli, "S1", "S2")
    aws_env.batch_rate = 100
    aws_env.advance(300)
    assert run_cli("refresh").exit_code == 0
    rows = json.loads(run_cli("log", "--batch", batch_id, "--json").stdout)
    (failed,) = [row for row in rows if not row.get("run_id")]
    (started,) = [row for row in rows if row.get("run_id")]
    asked = len(aws_env.requests)
    for args in ([failed["address"][:12]], [started["run_id"], failed["address"][:12]]):
        result = run_cli("refresh", *args)
        assert result.exit_code == 2 and result.stdout == "", result.output
        assert result.stderr.count("\n") == 1 and f"record {failed['address'][:12]} has no run to refresh " \
            "(it was rejected)" in result.stderr, result.stderr
        assert f"`runlog show {failed['address'][:12]}` says why" in result.stderr
    assert run_cli("watch", failed["address"][:12]).exit_code == 2
    assert len(aws_env.requests) == asked  # nothing was asked
    assert run_cli("refresh", started["run_id"]).exit_code == 0
