"""Reading big batches (issue 14): `show B`, `log --batch B` and `diff B1 B2` work from the
derived tables of migrations m007 and m008 (`batch_members`, `batch_views`) instead of reading every
member's body or decoding the whole cohort. Small sizes here, asserting what a user sees and
that the derived tables say what the records say; the speed itself is measured by
`benchmarks/run.py --batch-members N`."""

from __future__ import annotations

import json
import sqlite3

import pytest

from helpers import tamper
from runlog.ledger import Ledger
from runlog.migrations import MIGRATIONS, m007_batch_members

ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"
BUCKET = "cohort-bucket"
DEFAULT = {"workflowId": "1234567", "roleArn": ROLE, "outputUri": f"s3://{BUCKET}/out/",
           "parameters": {"ref_dict": f"s3://{BUCKET}/ref/genome.dict", "ref_fasta": f"s3://{BUCKET}/ref/genome.fasta",
                          "ref_fasta_index": f"s3://{BUCKET}/ref/genome.fasta.fai"}}
RUNS = 60
NOT_STARTED = [f"S{i:03d}" for i in range(0, 50, 2)]  # 25 submissions the service refuses: more than show lists
FAILING = ["S001", "S003"]


def settings(count: int = RUNS, cram: str = "crams") -> list[dict]:
    return [{"runSettingId": f"S{i:03d}", "name": f"align-S{i:03d}",
             "parameters": {"sample_name": f"S{i:03d}", "input_cram": f"s3://{BUCKET}/{cram}/S{i:03d}.cram"}}
            for i in range(count)]


def submit(run_cli, default: dict, batch_settings: dict) -> str:
    result = run_cli("submit-batch", "--default-run-setting", json.dumps(default), "--batch-run-settings",
                     json.dumps(batch_settings), "--no-resolve")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["id"]


@pytest.fixture
def cohort(s3_server, monkeypatch, ledger_path, git_repo, run_cli):
    """A batch of RUNS runs from an s3UriSettings file, 25 refused and two failing, recorded by
    `runlog refresh` after it finished; yields (emulator, batch id)."""
    from runlog.emulator import Emulator

    emulator = Emulator(port=0, s3_endpoint_url=s3_server.endpoint, batch_rate=RUNS)
    emulator.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.endpoint_url)
    try:
        s3_server.create_bucket(Bucket=BUCKET)
        s3_server.put_object(Bucket=BUCKET, Key="cohort/settings.json", Body=json.dumps(settings()).encode())
        emulator.batch_fault("start", reason="ServiceQuotaExceeded", message="too many runs",
                             run_setting_ids=NOT_STARTED)
        emulator.batch_fault("run", reason="OUT_OF_MEMORY", run_setting_ids=FAILING)
        batch_id = submit(run_cli, DEFAULT, {"s3UriSettings": f"s3://{BUCKET}/cohort/settings.json"})
        yield emulator, batch_id
    finally:
        emulator.stop()


def finished(run_cli, emulator, batch_id: str) -> None:
    emulator.advance(3600)
    refreshed = run_cli("refresh", batch_id)
    assert refreshed.exit_code == 0, refreshed.output


def counted_from_records(path, batch_address: str) -> dict[tuple[str, str | None], int]:
    """(outcome, latest status) -> members, from the records and observations themselves."""
    with Ledger.open(path, create=False) as ledger:
        members = [e for e in ledger.entries() if e.kind == "member" and e.record["batch"]["record"] == batch_address]
    counts: dict[tuple[str, str | None], int] = {}
    for member in members:
        key = (member.outcome, member.status if member.outcome == "submitted" else None)
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_show_batch_counts_and_lists_twenty_failures_with_how_many_more(cohort, run_cli, ledger_path):
    emulator, batch_id = cohort
    finished(run_cli, emulator, batch_id)
    shown = run_cli("show", batch_id)
    assert shown.exit_code == 0, shown.output
    text = shown.stdout
    assert f"runs         {RUNS} asked, {RUNS} member record(s)" in text
    assert "submission   FAILED 25, SUCCESS 35" in text
    assert "run status   COMPLETED 33, FAILED 2" in text
    # the service's own counts (the last GetBatch), beside what runlog recorded
    assert "GetBatch     " in text and "failedStartSubmissionCount 25" in text
    failed = [line for line in text.splitlines() if line.startswith("failed ")]
    assert len(failed) == 21, failed  # 20 listed, then how many more
    assert failed[0] == "failed       S000 (submission): ServiceQuotaExceeded: too many runs"
    assert "S001 (run " in failed[1] and "OUT_OF_MEMORY" in failed[1]  # in ledger order, both stages
    assert failed[-1] == "failed       … and 7 more (--json lists all)"
    assert f'"content": "({RUNS} run settings: see --json)"' in text  # the cohort is not printed
    facts = json.loads(run_cli("show", batch_id, "--json").stdout)
    assert facts["batch"]["failures_count"] == 27 and len(facts["batch"]["failures"]) == 27
    assert len(facts["record"]["batch"]["settings_file"]["content"]) == RUNS  # --json: the whole record
    # the counts are those of the records and their observations
    expected = counted_from_records(ledger_path, facts["address"])
    assert expected == {("rejected", None): 25, ("submitted", "COMPLETED"): 33, ("submitted", "FAILED"): 2}


def test_show_batch_follows_each_new_status(cohort, run_cli):
    emulator, batch_id = cohort
    emulator.advance(1)  # submitted, not finished
    assert run_cli("refresh", batch_id).exit_code == 0
    before = json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]
    assert "COMPLETED" not in before["run_status"]
    finished(run_cli, emulator, batch_id)
    after = json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]
    assert after["run_status"] == {"COMPLETED": 33, "FAILED": 2}
    assert after["submission"] == {"SUCCESS": 35, "FAILED": 25}


def test_log_batch_pages_its_members_newest_first_and_only_its_own(cohort, run_cli, s3_server):
    emulator, batch_id = cohort
    finished(run_cli, emulator, batch_id)
    other = submit(run_cli, DEFAULT, {"inlineSettings": settings(3)})
    emulator.advance(3600)
    assert run_cli("refresh", other).exit_code == 0
    page = run_cli("log", "--batch", batch_id, "-n", "5", "--json")
    assert page.exit_code == 0, page.output
    listed = json.loads(page.stdout)
    every = json.loads(run_cli("log", "--batch", batch_id, "-n", "0", "--json").stdout)
    assert len(every) == RUNS and {e["batch_id"] for e in every} == {batch_id}
    assert listed == every[:5]
    assert [e["name"] for e in every[:2]] == ["align-S059", "align-S058"]  # the last recorded first
    assert len(json.loads(run_cli("log", "--batch", other, "-n", "0", "--json").stdout)) == 3
    text = run_cli("log", "-n", "0").stdout  # members are left out of the listing, batches are in it
    assert f"batch {batch_id}" in text and f"batch {other}" in text and "align-S059" not in text


def test_diff_of_two_cohorts_from_the_same_settings_file_and_from_another(cohort, run_cli, s3_server):
    emulator, batch_id = cohort
    rerun = submit(run_cli, {**DEFAULT, "parameters": {**DEFAULT["parameters"], "ref_dict": "s3://b/v2.dict"}},
                   {"s3UriSettings": f"s3://{BUCKET}/cohort/settings.json"})
    same = run_cli("diff", batch_id, rerun)
    assert same.exit_code == 0, same.output
    assert "~ parameters.ref_dict" in same.stdout
    assert "\nruns\n" not in same.stdout and "run settings" not in same.stdout  # the same bytes: the same runs
    assert "1 difference(s) in default setting." in same.stdout
    changed = settings()[3:] + settings(63)[60:]  # three runs removed, three added
    changed[0] = {**changed[0], "parameters": {**changed[0]["parameters"], "input_cram": "s3://b/new.cram"}}
    s3_server.put_object(Bucket=BUCKET, Key="cohort/v2.json", Body=json.dumps(changed).encode())
    other = submit(run_cli, DEFAULT, {"s3UriSettings": f"s3://{BUCKET}/cohort/v2.json"})
    differ = run_cli("diff", batch_id, other, "--json")
    assert differ.exit_code == 0, differ.output
    changes = json.loads(differ.stdout)["changes"]
    runs = {(c["path"], c["kind"]) for c in changes if c["section"] == "runs"}
    assert runs == {("S000", "removed"), ("S001", "removed"), ("S002", "removed"), ("S060", "added"),
                    ("S061", "added"), ("S062", "added")}
    assert [(c["path"], c["new"]) for c in changes if c["section"] == "run settings"] == [
        ("S003.parameters.input_cram", "s3://b/new.cram")]


def test_batch_views_and_members_are_what_the_records_say_and_verify_checks_them(cohort, run_cli, ledger_path):
    emulator, batch_id = cohort
    finished(run_cli, emulator, batch_id)
    with Ledger.open(ledger_path, create=False) as ledger:
        entry = ledger.resolve(batch_id)
        view, runs = ledger.batch_view(entry.address)
        whole = entry.record
        assert runs == RUNS
        # the record holds its cohort by reference (runlog/blobs.py): its body as stored is its
        # view's row, which batch_view reads as the record written inline without its content
        assert "content_blob" in entry.stored["batch"]["settings_file"]
        content = whole["batch"]["settings_file"].pop("content")
        assert len(content) == RUNS and "content_blob" not in whole["batch"]["settings_file"]
        assert view == whole
        brief = ledger.resolve(batch_id, whole=False)  # what show and diff read: the view's row
        assert brief.record == entry.stored and brief.address == entry.address and brief.status == entry.status
    assert run_cli("verify", "--no-remote").exit_code == 0
    tamper(ledger_path, "DELETE FROM batch_members WHERE seq = (SELECT min(seq) FROM batch_members)")
    checked = run_cli("verify", "--no-remote")
    assert checked.exit_code == 1
    assert "FAIL the list of batches' member runs was changed outside runlog: it has 59 rows" in checked.stdout
    tamper(ledger_path, "UPDATE batch_views SET view = json_set(view, '$.request.batchName', 'other')")
    assert "FAIL the views of batch records were changed outside runlog: 1 views (1 not their record's)" in \
        run_cli("verify", "--no-remote").stdout


def test_an_older_ledger_gets_its_batch_tables_from_its_records(cohort, run_cli, ledger_path):
    emulator, batch_id = cohort
    finished(run_cli, emulator, batch_id)
    before = json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]
    conn = sqlite3.connect(ledger_path)  # as a runlog before migration m007 left it
    for name in ("records_batch_member", "observations_member_status", "records_batch_view", "records_batch_adopt"):
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("DROP TABLE batch_members")
    conn.execute("DROP TABLE batch_views")
    conn.execute(f"PRAGMA user_version = {MIGRATIONS.index(m007_batch_members)}")
    conn.commit()
    conn.close()
    read_only = json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]  # migrated in a copy
    assert read_only == before
    assert run_cli("refresh", batch_id).exit_code == 0  # a write migrates the file
    assert json.loads(run_cli("show", batch_id, "--json").stdout)["batch"] == before
    assert run_cli("verify", "--no-remote").exit_code == 0


def test_batch_reads_use_the_derived_tables_indexes(tmp_path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        queries = [
            (f"SELECT outcome, status, count(*) FROM batch_members WHERE batch = {Ledger._BATCH_SEQ} "
             "GROUP BY outcome, status", "COVERING INDEX batch_members_state"),
            (f"SELECT count(*) FROM ({Ledger._FAILED_MEMBER})", "COVERING INDEX batch_members_state"),
            (f"SELECT m.seq FROM batch_members m WHERE m.batch = {Ledger._BATCH_SEQ} "
             "ORDER BY m.created DESC, m.seq DESC LIMIT 21", "batch_members_order"),
        ]
        for sql, index in queries:
            plan = " ".join(r[-1] for r in ledger.conn.execute(f"EXPLAIN QUERY PLAN {sql}", ("x",)))
            assert index in plan and "TEMP B-TREE" not in plan and "SCAN batch_members" not in plan, (sql, plan)


def test_diff_of_a_settings_file_cohort_and_an_inline_one_lists_only_real_fields(cohort, run_cli):
    """The inline batch has no settings file: diff names the file's fields as removed, and
    no bogus "(whole section) {}" line for the empty side."""
    emulator, batch_id = cohort
    inline = submit(run_cli, DEFAULT, {"inlineSettings": settings()[:2]})
    result = run_cli("diff", batch_id, inline, "--json")
    assert result.exit_code == 0, result.output
    changes = [c for c in json.loads(result.stdout)["changes"] if c["section"] == "settings file"]
    assert {c["path"] for c in changes} == {"uri", "etag", "sha256"} and {c["kind"] for c in changes} == {"removed"}
    text = run_cli("diff", batch_id, inline)
    assert "(whole section)" not in text.stdout, text.stdout
