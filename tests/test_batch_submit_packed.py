"""A batch's attempt holds its intent compressed (migration m011: attempts.intent_zlib), and
every reader gets the intent's canonical JSON back through ledger.attempt_intent: pending,
recover, the duplicate check, push, verify. The record's WAL is copied after its commit."""

from __future__ import annotations

import json
import sqlite3
import zlib

import pytest

from helpers import COHORT_DEFAULT, REMOTE, tamper
from runlog import batch, fastjson
from runlog import record as rec
from runlog.errors import DuplicateAttemptError
from runlog.ledger import INTENT_COLUMNS, Ledger, attempt_intent
from runlog.migrations import LEDGER_FORMAT
from runlog.verify import verify

BUCKET = "cohort-bucket"
URI = f"s3://{BUCKET}/cohort/settings.json"
DEFAULT = COHORT_DEFAULT

# StartRunBatch's answer, as a record made from a batch intent completes it
SUBMITTED = {"status": "submitted", "response": {"id": "7654321", "arn": "arn:aws:omics:us-west-2:1:runBatch/7654321",
                                                 "status": "PENDING", "uuid": "0f0e0d0c-aaaa-bbbb-cccc-000000000001"}}


def setting(sample: str) -> dict:
    return {"runSettingId": sample, "name": f"align-{sample}",
            "parameters": {"sample_name": sample, "input_cram": f"s3://{BUCKET}/crams/{sample}.cram"}}


def batch_intent(runs: int, *, inline: bool = False, request_id: str = "9a6a3d1e-0000-4000-8000-00000000000a") -> dict:
    """A batch intent as submit-batch makes it (make_intent), its settings inline or a file's content."""
    from runlog.aws import AwsSettings
    from runlog.startrun import StartRunRequest
    from runlog.submit import make_intent

    settings = [setting(f"S{i:05d}") for i in range(runs)]
    request = {"batchName": "cohort", "requestId": request_id, "defaultRunSetting": DEFAULT,
               "batchRunSettings": {"inlineSettings": settings} if inline else {"s3UriSettings": URI}}
    section: dict = {"runs": runs}
    if not inline:
        content = rec.canonical_json(settings)
        section["settings_file"] = {"uri": URI, "etag": rec.sha256_hex(content)[:32], "size": len(content),
                                    "sha256": rec.sha256_hex(content), "content": settings}
    inputs = {s["parameters"]["input_cram"]: {"kind": "s3-object", "error": {"code": "NotFound", "message": "x"}}
              for s in settings}
    git = {"state": "clean", "commit": "a" * 40, "branch": "main", "remote": None, "workdir": ".",
           "diff_sha256": None, "untracked": [], "untracked_sha256": None}
    return make_intent(StartRunRequest(request=request, parameters=dict(batch.PARAMETERS)), kind="batch",
                       settings=AwsSettings(None, "us-west-2", None), git=git, caller={"unknown": "test"},
                       warnings=[], extra={"batch": section, "resolution": {"workflow": {}, "inputs": inputs,
                                                                             "template_checked": False}})


def stored(path) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT request_id, {INTENT_COLUMNS}, intent_sha256 FROM attempts ORDER BY seq").fetchall()
    finally:
        conn.close()


# -- the intent encoded once, the record made from its parts --------------------------------------------

@pytest.mark.parametrize("inline", [False, True], ids=["settings-file", "inline"])
def test_the_record_is_made_from_the_intents_canonical_json(inline):
    intent = batch_intent(100 if inline else 3000, inline=inline)
    parts, encoded = batch._encode_intent(intent)
    assert encoded == rec.canonical_json(intent)
    assert [bytes(p) for p in parts[0]] == [bytes(p) for p in fastjson.members(intent, "outcome")[0]]
    outcome = {"status": "submitted", "response": {"id": "1"}}
    assert batch._record_bytes(parts, outcome) == rec.canonical_json({**intent, "outcome": outcome})


# -- the ledger: kept compressed, read back whole --------------------------------------------------

def test_a_batch_attempt_is_kept_compressed_and_every_reader_gets_its_intent(tmp_path):
    path = tmp_path / "ledger.db"
    intent = batch_intent(3000)
    data = fastjson.dumps(intent)
    single = batch_intent(2, request_id="9a6a3d1e-0000-4000-8000-00000000000b")
    single["kind"] = "submit"  # any other attempt stays text
    with Ledger.open(path) as ledger:
        ledger.add_attempt(intent)
        ledger.add_attempt(single, allow_duplicate=True)
        assert ledger.pending() == [json.loads(data), json.loads(fastjson.dumps(single))]
        again = {**intent, "request": {**intent["request"], "requestId": "9a6a3d1e-0000-4000-8000-00000000000c"}}
        with pytest.raises(DuplicateAttemptError):  # the same cohort, read from its compressed form
            ledger.add_attempt(again)
    (request_id, text, packed, digest), (_, single_text, single_packed, _) = stored(path)
    assert request_id == intent["request"]["requestId"] and text == "" and digest == rec.sha256_hex(data)
    assert len(packed) * 10 < len(data) and attempt_intent(text, packed) == data
    assert single_packed is None and attempt_intent(single_text, single_packed) == fastjson.dumps(single)
    with Ledger.open(path, readonly=True) as ledger:
        report = verify(ledger)
    assert report.problems == [] and report.attempts == 2


def test_the_attempt_is_packed_by_the_ledger_when_the_caller_did_not(tmp_path):
    intent = batch_intent(50)
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        ledger.add_attempt(intent, encoded=fastjson.dumps(intent))
    (_, text, packed, _), = stored(tmp_path / "ledger.db")
    assert text == "" and zlib.decompress(packed) == fastjson.dumps(intent)


@pytest.mark.parametrize("edit", [
    "UPDATE attempts SET intent_zlib = ? WHERE seq = 1",  # another cohort, compressed
    "UPDATE attempts SET intent_zlib = x'00ff' WHERE seq = 1",  # not zlib's
    "UPDATE attempts SET intent = 'x' WHERE seq = 1",  # text beside the compressed form
], ids=["other-cohort", "not-zlib", "text-beside"])
def test_verify_names_a_compressed_intent_that_was_edited(tmp_path, edit):
    path = tmp_path / "ledger.db"
    intent = batch_intent(200)
    with Ledger.open(path) as ledger:
        ledger.add_attempt(intent)
    with Ledger.open(path, readonly=True) as ledger:
        assert verify(ledger).problems == []
    other = batch_intent(201)
    tamper(path, edit, params=(zlib.compress(fastjson.dumps(other)),) if "?" in edit else ())
    with Ledger.open(path, readonly=True) as ledger:
        problems = [p.as_dict() for p in verify(ledger).problems if p.kind != "triggers"]  # tamper drops them
    assert [p["kind"] for p in problems] == ["attempt"] and "was edited" in problems[0]["message"]


def test_verify_names_a_record_whose_compressed_intent_differs(tmp_path):
    path = tmp_path / "ledger.db"
    intent = batch_intent(200)
    outcome = SUBMITTED
    with Ledger.open(path) as ledger:
        ledger.add_attempt(intent)
        ledger.complete(intent, outcome)
    with Ledger.open(path, readonly=True) as ledger:
        assert verify(ledger).problems == []
    tamper(path, "UPDATE attempts SET intent_zlib = ? WHERE seq = 1",
           params=(zlib.compress(fastjson.dumps(batch_intent(201))),))
    with Ledger.open(path, readonly=True) as ledger:
        kinds = sorted({p.kind for p in verify(ledger).problems} - {"triggers"})
    assert kinds == ["attempt", "intent"]


def test_a_record_committed_without_its_checkpoint_is_in_the_wal_until_the_copy(tmp_path):
    path = tmp_path / "ledger.db"
    intent = batch_intent(20000)
    outcome = SUBMITTED
    with Ledger.open(path) as ledger:
        ledger.add_attempt(intent)
        entry = ledger.complete(intent, outcome, checkpoint=False)
        assert ledger.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000  # as it was
        size = len(entry.body)
        wal = path.with_name(path.name + "-wal")
        assert path.stat().st_size < size < wal.stat().st_size  # committed, in the WAL only
        other = sqlite3.connect(path)  # another process sees it
        assert other.execute("SELECT count(*) FROM records").fetchone()[0] == 1
        other.close()
        ledger.checkpoint()
        assert path.stat().st_size > size


def test_the_entry_of_a_record_just_written_is_the_one_read_back(tmp_path):
    intent = batch_intent(300)
    outcome = SUBMITTED
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        ledger.add_attempt(intent)
        entry, added = ledger.add_record({**intent, "outcome": outcome})
        (read,) = ledger._entry_where("address = ?", (entry.address,))
        assert added and entry == read and entry.body == read.body and entry.seq == read.seq == 1
        assert entry.record == read.record and entry.batch_id == "7654321"


def test_an_older_ledger_gains_the_column_and_keeps_its_attempts_and_seals(tmp_path):
    path = tmp_path / "ledger.db"
    single = batch_intent(3)
    single["kind"] = "submit"
    with Ledger.open(path) as ledger:
        ledger.add_attempt(single)
    conn = sqlite3.connect(path)  # as migration m010 left it (m012's table too dropped: it adds it again)
    conn.executescript("ALTER TABLE attempts DROP COLUMN intent_zlib; DROP TABLE blobs; PRAGMA user_version = 10;")
    conn.close()
    with Ledger.open(path, readonly=True) as ledger:  # read through a migrated copy: the file is not written
        assert ledger.pending() == [json.loads(fastjson.dumps(single))] and verify(ledger).problems == []
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 10
    with Ledger.open(path) as ledger:
        assert ledger.conn.execute("PRAGMA user_version").fetchone()[0] == LEDGER_FORMAT
        ledger.add_attempt(batch_intent(30, request_id="9a6a3d1e-0000-4000-8000-00000000000d"), allow_duplicate=True)
        assert [i["kind"] for i in ledger.pending()] == ["submit", "batch"]
    with Ledger.open(path, readonly=True) as ledger:
        assert verify(ledger).problems == []
    assert [row[2] is None for row in stored(path)] == [True, False]


# -- the CLI: pending, recover, push ------------------------------------------------------------------

def put_cohort(s3_server, runs: int) -> list[dict]:
    settings = [setting(f"S{i:05d}") for i in range(runs)]
    s3_server.create_bucket(Bucket=BUCKET)
    s3_server.put_object(Bucket=BUCKET, Key="cohort/settings.json", Body=json.dumps(settings).encode())
    return settings


def submit(run_cli, *more: str):
    return run_cli("submit-batch", "--default-run-setting", json.dumps(DEFAULT),
                   "--batch-run-settings", json.dumps({"s3UriSettings": URI}), "--resolve-timeout", "30", *more)


def test_a_pending_submit_batch_is_recovered_from_its_compressed_attempt(s3_server, s3_emulator, ledger_path,
                                                                         git_repo, run_cli):
    settings = put_cohort(s3_server, 2000)
    s3_emulator.inject("error", operation="StartRunBatch", count=3, phase="after")  # started, 500 answered
    sent = submit(run_cli)
    assert sent.exit_code == 1 and "pending" in sent.stderr
    (request_id, text, packed, digest), = stored(ledger_path)
    assert text == "" and packed is not None
    intent = json.loads(attempt_intent(text, packed))
    held = intent["batch"]["settings_file"]["content_blob"]  # the cohort is stored with the attempt, by reference
    with Ledger.open(ledger_path, create=False) as ledger:
        assert json.loads(ledger.blob(held["sha256"])) == settings
    assert rec.sha256_hex(rec.canonical_json(intent)) == digest
    verified = run_cli("verify")
    assert verified.exit_code == 0, verified.output
    recovered = run_cli("recover")
    assert recovered.exit_code == 0, recovered.output
    with Ledger.open(ledger_path, create=False) as ledger:
        assert ledger.pending() == []
        (entry,) = [e for e in ledger.entries() if e.kind == "batch"]
    record = entry.stored
    assert record["outcome"]["status"] == "submitted" and record["outcome"].get("recovered") is True
    assert {k: v for k, v in record.items() if k != "outcome"} == intent
    assert entry.record["batch"]["settings_file"]["content"] == settings
    assert record["outcome"]["response"]["id"] and entry.batch_id == record["outcome"]["response"]["id"]
    verified = run_cli("verify")
    assert verified.exit_code == 0, verified.output


def test_a_submitted_batch_leaves_its_record_copied_into_the_ledger_file(s3_server, s3_emulator, ledger_path,
                                                                         git_repo, run_cli):
    put_cohort(s3_server, 6000)  # a record of more than SQLite's 1 000 pages
    sent = submit(run_cli)
    assert sent.exit_code == 0, sent.output
    import threading

    for thread in threading.enumerate():  # the copy made after the record's commit
        if thread.name == "runlog-checkpoint":
            thread.join()
    with Ledger.open(ledger_path, create=False) as ledger:
        (size,), = ledger.conn.execute("SELECT length(body) FROM records WHERE kind = 'batch'").fetchall()
        assert ledger.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000  # as it was
    assert ledger_path.stat().st_size > size  # in the file itself, not only in the WAL


def test_a_pending_batch_attempt_is_pushed_as_its_intent_and_seen_pending_by_a_pull(s3_server, s3_emulator, bucket,
                                                                                     ledger_path, git_repo, run_cli,
                                                                                     tmp_path):
    put_cohort(s3_server, 500)
    s3_emulator.inject("error", operation="StartRunBatch", count=3, phase="after")  # botocore retries twice
    assert submit(run_cli).exit_code == 1
    (request_id, text, packed, digest), = stored(ledger_path)
    pushed = run_cli("push", REMOTE, "--json")
    assert pushed.exit_code == 0, pushed.output
    assert json.loads(pushed.stdout)["attempts_sent"] == 1
    keys = [o["Key"] for o in bucket.list_objects_v2(Bucket="lab-provenance", Prefix="runlog/attempts/")["Contents"]]
    assert keys == [f"runlog/attempts/{request_id}/{digest}.json"]
    body = bucket.get_object(Bucket="lab-provenance", Key=keys[0])["Body"].read()
    assert json.loads(body) == json.loads(attempt_intent(text, packed))
    other = tmp_path / "bob.db"
    pulled = run_cli("--ledger", str(other), "pull", REMOTE)
    assert pulled.exit_code == 0, pulled.output
    assert f"1 attempt(s) pending in other ledgers ({request_id})" in pulled.stderr
