"""submit-batch makes part of the batch record while StartRunBatch is answered: the per-run
digests of `batch_settings` from the intent's bytes (cohortindex.prepare, taken by the ledger
only where the record's bytes are the intent's), and the copy of the attempt's WAL into the
ledger's file (Ledger.add_attempt(checkpoint=False), then Ledger.checkpoint). What the ledger
holds must be what it held when all of it was made after the answer."""

from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest

from helpers import COHORT_DEFAULT, COHORT_ROLE
from runlog import cohortindex, fastjson
from runlog import record as rec
from runlog.ledger import INTENT_COLUMNS, Ledger, attempt_intent
from runlog.verify import verify

ROLE = COHORT_ROLE
WORKFLOW = COHORT_DEFAULT["workflowId"]  # cram-to-bam: sample_name, input_cram, ref_dict, ref_fasta, ref_fasta_index
BUCKET = "cohort-bucket"
URI = f"s3://{BUCKET}/cohort/settings.json"
DEFAULT = COHORT_DEFAULT
OUTCOME = {"status": "submitted", "response": {"id": "7654321", "arn": "arn:aws:omics:us-west-2:1:runBatch/7654321",
                                               "status": "PENDING", "uuid": "0f0e0d0c-aaaa-bbbb-cccc-000000000001"}}


def setting(sample: str, **parameters) -> dict:
    return {"runSettingId": sample, "name": f"align-{sample}",
            "parameters": {"sample_name": sample, "input_cram": f"s3://{BUCKET}/crams/{sample}.cram", **parameters}}


def cohort(count: int, **parameters) -> list[dict]:
    return [setting(f"S{i:05d}", **parameters) for i in range(count)]


def intent_of(settings: list[dict], *, inline: bool = False) -> dict:
    """A batch intent as submit-batch makes it: its settings inline, or a settings file's content."""
    from runlog.aws import AwsSettings
    from runlog.batch import PARAMETERS
    from runlog.startrun import StartRunRequest
    from runlog.submit import make_intent

    content = rec.canonical_json(settings)
    request = {"batchName": "cohort", "requestId": "9a6a3d1e-0000-4000-8000-00000000000a", "defaultRunSetting": DEFAULT,
               "batchRunSettings": {"inlineSettings": settings} if inline else {"s3UriSettings": URI}}
    section: dict = {"runs": len(settings),
                     "run_setting_ids_sha256": rec.sha256_hex(rec.canonical_json([s["runSettingId"] for s in settings]))}
    if not inline:
        section["settings_file"] = {"uri": URI, "etag": rec.sha256_hex(content)[:32], "size": len(content),
                                    "sha256": rec.sha256_hex(content), "content": settings}
    git = {"state": "clean", "commit": "a" * 40, "branch": "main", "remote": None, "workdir": ".",
           "diff_sha256": None, "untracked": [], "untracked_sha256": None}
    return make_intent(StartRunRequest(request=request, parameters=dict(PARAMETERS)), kind="batch",
                       settings=AwsSettings(None, "us-west-2", None), git=git, caller={"unknown": "test"},
                       warnings=[], extra={"batch": section})


def encodings(intent: dict, outcome: dict = OUTCOME) -> tuple[bytes, dict, bytes, list]:
    """(the intent's canonical JSON, the record, the record's canonical JSON, the members before
    `outcome`), made as batch.send makes them."""
    before, after = fastjson.members(intent, "outcome")
    record = {**intent, "outcome": outcome}
    return (fastjson.joined(before, after), record,
            fastjson.joined(before, fastjson.member("outcome", outcome), after), before)


def stored_rows(ledger_path, blob: str | None = None) -> list[tuple]:
    """The rows of `batch_settings` (an inline batch's), or of `blob_settings` of the blob named."""
    with Ledger.open(ledger_path, create=False) as ledger:
        if blob is not None:
            return [tuple(row) for row in ledger.conn.execute(
                "SELECT bucket, digest, runs FROM blob_settings WHERE blob = ? ORDER BY bucket", (blob,))]
        return [tuple(row) for row in ledger.conn.execute(
            "SELECT bucket, digest, runs FROM batch_settings ORDER BY bucket")]


# -- cohortindex.prepare: the record's rows, from its intent ----------------------------------------

def test_rows_prepared_from_the_intent_of_a_settings_file_are_the_records_own():
    intent = intent_of(cohort(500, coverage=30))
    intent_body, record, body, before = encodings(intent)
    assert body == rec.canonical_json(record)
    prepared = cohortindex.prepare(intent, intent_body, before)
    rows = prepared.rows_for(body)
    assert rows is not None and rows == cohortindex.setting_rows(record, body)
    assert sum(len(json.loads(runs)) for _, _, runs in rows) == 500


def test_inline_settings_lie_after_the_outcome_so_the_record_computes_its_own():
    intent = intent_of(cohort(40), inline=True)
    intent_body, record, body, before = encodings(intent)
    prepared = cohortindex.prepare(intent, intent_body, before)
    assert prepared.rows is not None  # the intent has rows, at offsets the record does not keep
    assert prepared.rows_for(body) is None
    assert cohortindex.setting_rows(record, body) is not None


def test_rows_are_not_taken_for_a_body_whose_settings_differ_where_they_lie():
    intent = intent_of(cohort(200))
    intent_body, _, body, before = encodings(intent)
    prepared = cohortindex.prepare(intent, intent_body, before)
    low, high = prepared.span
    at = body.index(b"S00123", low)
    changed = body[:at] + b"S00124" + body[at + 6:]  # same length, same offsets, other bytes
    assert low < at < high and len(changed) == len(body)
    assert prepared.rows_for(body) is not None and prepared.rows_for(changed) is None
    assert prepared.rows_for(body[:high - 1]) is None  # a body that ends within the settings


def test_the_ledger_writes_the_records_own_rows_when_the_prepared_ones_are_another_cohorts(tmp_path):
    """A Prepared from another intent (one run's sample differs, same lengths): the ledger's
    one comparison refuses its rows, and the rows stored are those of the record written."""
    mine, theirs = cohort(300), cohort(300)
    theirs[7] = setting("S00007", sample_name="S00008")
    assert len(json.dumps(mine)) == len(json.dumps(theirs))
    intent = intent_of(mine)
    _, record, body, _ = encodings(intent)
    other = intent_of(theirs)
    other_body, _, _, other_before = encodings(other)
    wrong = cohortindex.prepare(other, other_body, other_before)
    assert wrong.rows is not None and wrong.rows != cohortindex.setting_rows(record, body)
    path = tmp_path / "ledger.db"
    with Ledger.open(path, create=True) as ledger:
        ledger.add_record(record, encoded=body, prepared=wrong)
    assert stored_rows(path) == [tuple(row) for row in cohortindex.setting_rows(record, body)]


# -- the attempt's WAL, copied while the service answers ---------------------------------------------

def big_intent(runs: int = 20000) -> dict:
    """An intent of several MB (more than SQLite's automatic checkpoint, 1 000 pages of 4 KiB)."""
    intent = intent_of(cohort(runs, note="x" * 200))
    intent["request"]["requestId"] = "4f1c0c70-2f6e-4f0e-9d55-0c1e2b3a4d5e"
    return intent


def file_sizes(path) -> tuple[int, int]:
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size, wal.stat().st_size if wal.exists() else 0


@pytest.mark.parametrize("checkpoint", [True, False])
def test_a_big_attempt_is_committed_and_copied_into_the_file_now_or_by_checkpoint(tmp_path, checkpoint):
    path = tmp_path / "ledger.db"
    intent = big_intent()
    intent["kind"] = "submit"  # kept as text: a batch's intent is kept compressed (migration m011)
    data = fastjson.dumps(intent)
    assert len(data) > 1000 * 4096  # more pages than SQLite checkpoints at
    with Ledger.open(path, create=True) as ledger:
        before, _ = file_sizes(path)
        ledger.add_attempt(intent, encoded=data, checkpoint=checkpoint)
        assert ledger.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000  # as it was
        size, wal = file_sizes(path)
        if checkpoint:  # SQLite's automatic checkpoint copied it at the commit
            assert size > len(data)
        else:  # committed in the WAL, not yet in the file
            assert size < len(data) < wal
            ledger.checkpoint()
            assert file_sizes(path)[0] > len(data)
        # another connection reads the attempt as committed (a process started now would recover it)
        other = sqlite3.connect(path)
        (text, packed), = other.execute(f"SELECT {INTENT_COLUMNS} FROM attempts").fetchall()
        other.close()
        assert attempt_intent(text, packed) == data
        assert ledger.pending()[0]["request"]["requestId"] == intent["request"]["requestId"]
    assert before < len(data)


def test_checkpoint_of_a_ledger_that_cannot_be_opened_again_leaves_it_as_it_is(tmp_path):
    path = tmp_path / "ledger.db"
    with Ledger.open(path, create=True) as ledger:
        ledger.path = tmp_path / "gone" / "ledger.db"  # a directory that does not exist
        ledger.checkpoint()  # no error: copying the WAL only ever saves time
        assert ledger.count() == 0


# -- the CLI: the record submit-batch writes ---------------------------------------------------------

def test_submit_batch_stores_the_rows_of_its_record_and_verify_passes(s3_server, s3_emulator, ledger_path, git_repo,
                                                                      run_cli):
    settings = cohort(6000)  # an intent of more than 1 000 pages: its commit leaves the WAL
    s3_server.create_bucket(Bucket=BUCKET)
    s3_server.put_object(Bucket=BUCKET, Key="cohort/settings.json", Body=json.dumps(settings).encode())
    result = run_cli("submit-batch", "--default-run-setting", json.dumps(DEFAULT),
                     "--batch-run-settings", json.dumps({"s3UriSettings": URI}), "--resolve-timeout", "30")
    assert result.exit_code == 0, result.output
    with Ledger.open(ledger_path, create=False) as ledger:
        (text,), = ledger.conn.execute("SELECT body FROM records WHERE kind = 'batch'").fetchall()
        assert ledger.pending() == []
        assert ledger.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
        body = text.encode()
        record = json.loads(body)
        # the cohort is held by reference (runlog/blobs.py): the body names the blob its settings are in
        held = record["batch"]["settings_file"]["content_blob"]
        assert "content" not in record["batch"]["settings_file"] and len(body) < 10_000
        data = ledger.blob(held["sha256"])
    assert json.loads(data) == settings and held == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                                                                   "items": len(settings)}
    expected = cohortindex.rows_of(settings, data)  # offsets into the blob
    # keyed by the blob (migration m013), none of the record's own
    assert expected is not None and stored_rows(ledger_path, held["sha256"]) == [tuple(row) for row in expected]
    assert stored_rows(ledger_path) == []
    (_, runs, view, _), = views(ledger_path)
    assert view == text and runs == 6000  # nothing to take out of the body
    verified = run_cli("verify")
    assert verified.exit_code == 0, verified.output


def test_inline_submit_batch_stores_the_rows_of_its_record(emulator, aws_env, ledger_path, git_repo, run_cli):
    settings = [{"runSettingId": f"R{i}", "parameters": {"sample_name": f"R{i}",
                                                        "input_cram": f"s3://{BUCKET}/crams/R{i}.cram"}}
                for i in range(30)]
    result = run_cli("submit-batch", "--default-run-setting", json.dumps(DEFAULT), "--no-resolve",
                     "--batch-run-settings", json.dumps({"inlineSettings": settings}))
    assert result.exit_code == 0, result.output
    with Ledger.open(ledger_path, create=False) as ledger:
        (text,), = ledger.conn.execute("SELECT body FROM records WHERE kind = 'batch'").fetchall()
    body = text.encode()
    expected = cohortindex.setting_rows(json.loads(body), body)
    assert expected is not None and stored_rows(ledger_path) == [tuple(row) for row in expected]
    assert run_cli("verify").exit_code == 0


# -- the batch's view (migration m010): cut from the record's bytes, as SQLite's json_remove writes it --

def sqlite_view(body: bytes) -> tuple[int, str]:
    conn = sqlite3.connect(":memory:")
    try:
        return conn.execute("SELECT json_array_length(?1, '$.batch.settings_file.content'), "
                            "json_remove(?1, '$.batch.settings_file.content')", (body.decode(),)).fetchone()
    finally:
        conn.close()


def views(path) -> list[tuple]:
    with Ledger.open(path, create=False) as ledger:
        return [tuple(row) for row in ledger.conn.execute(
            "SELECT v.record, v.runs, v.view, r.body FROM batch_views v JOIN records r ON r.address = v.record")]


def test_the_view_cut_from_the_bytes_is_the_one_sqlite_makes():
    intent = intent_of(cohort(300, note='a "quoted" \u00e9 \\ value'))
    intent_body, record, body, before = encodings(intent)
    view = cohortindex.prepare(intent, intent_body, before).view_for(record, body)
    assert view is not None and view == sqlite_view(body)
    assert view[0] == 300 and "crams/S00299" not in view[1]


def test_no_view_is_cut_for_inline_settings_or_a_settings_file_with_a_member_before_its_content():
    intent = intent_of(cohort(20), inline=True)
    intent_body, record, body, before = encodings(intent)
    assert cohortindex.prepare(intent, intent_body, before).view_for(record, body) is None
    odd = intent_of(cohort(20))
    odd["batch"]["settings_file"]["a_note"] = "sorts before content"
    intent_body, record, body, before = encodings(odd)
    prepared = cohortindex.prepare(odd, intent_body, before)
    assert prepared.rows_for(body) is not None and prepared.view_for(record, body) is None


def test_a_batch_record_gets_the_same_view_given_by_submit_or_made_by_the_trigger(tmp_path):
    """submit-batch's path writes the view itself; pull's (add_records) leaves it to the
    trigger: both rows are what json_remove makes of the record's body, and verify passes."""
    given, made = tmp_path / "given.db", tmp_path / "made.db"
    intent = intent_of(cohort(400))
    intent_body, record, body, before = encodings(intent)
    with Ledger.open(given, create=True) as ledger:
        ledger.add_record(record, encoded=body, prepared=cohortindex.prepare(intent, intent_body, before))
    with Ledger.open(made, create=True) as ledger:
        assert ledger.add_records([record]) == 1
    for path in (given, made):
        (address, runs, view, stored), = views(path)
        assert address == rec.sha256_hex(body) and (runs, view) == sqlite_view(stored.encode())
        with Ledger.open(path, create=False) as ledger:
            report = verify(ledger)
        assert report.ok, report.problems
