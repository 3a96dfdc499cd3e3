"""`blob_settings` (migration m013): the per-run digests of a settings file's content held by
reference, keyed by its blob, written by submit-batch while StartRunBatch is answered; read by
`diff B1 B2`, checked by `verify`, made by pull, moved there from `batch_settings` by the
migration. The emulator over HTTP, moto's S3 server, real ledger files, the CLI."""

from __future__ import annotations

import json
import sqlite3

from helpers import COHORT_DEFAULT, REMOTE, another_answer, cohort_setting, push_json
from runlog import cohortindex
from runlog.ledger import Ledger, attempt_intent
from runlog.migrations import MIGRATIONS, m013_blob_settings

SAMPLES = [f"S{i:03d}" for i in range(40)]
URI = "s3://cohort-bucket/cohort/settings.json"


def put_settings(s3, settings: list[dict]) -> None:
    s3.create_bucket(Bucket="cohort-bucket")
    s3.put_object(Bucket="cohort-bucket", Key="cohort/settings.json", Body=json.dumps(settings).encode())


def submit(run_cli, emulator, *more: str):
    return run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT), "--batch-run-settings",
                   json.dumps({"s3UriSettings": URI}), "--endpoint-url", emulator.endpoint_url, *more)


def content_blob(ledger_path, batch_id: str) -> str:
    with Ledger.open(ledger_path, create=False) as ledger:
        return ledger.resolve(batch_id).stored["batch"]["settings_file"]["content_blob"]["sha256"]


def edit(ledger_path, *statements: str) -> None:
    """Rows changed behind runlog's back (no trigger is involved: these tables have none)."""
    conn = sqlite3.connect(ledger_path)
    with conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()


def rows(ledger_path, table: str = "blob_settings") -> list[tuple]:
    conn = sqlite3.connect(ledger_path)
    try:
        key = "blob" if table == "blob_settings" else "batch"
        return conn.execute(f"SELECT {key}, bucket, digest, runs FROM {table} ORDER BY {key}, bucket").fetchall()
    finally:
        conn.close()


def test_two_batches_of_one_settings_file_share_the_rows_of_its_blob(s3_emulator, s3_server, ledger_path, git_repo,
                                                                     run_cli):
    settings = [cohort_setting(s) for s in SAMPLES]
    put_settings(s3_server, settings)
    first = submit(run_cli, s3_emulator)
    second = submit(run_cli, s3_emulator)
    assert first.exit_code == 0 and second.exit_code == 0, (first.output, second.output)
    a, b = json.loads(first.stdout)["id"], json.loads(second.stdout)["id"]
    blob = content_blob(ledger_path, a)
    assert content_blob(ledger_path, b) == blob
    with Ledger.open(ledger_path, create=False) as ledger:
        data = ledger.blob(blob)
    expected = [(blob, *row) for row in cohortindex.rows_of(settings, data)]
    assert rows(ledger_path) == expected  # one set, the blob's, offsets into it
    assert rows(ledger_path, "batch_settings") == []  # none of the records' own
    assert run_cli("diff", a, b).exit_code == 0
    assert run_cli("verify", "--no-remote").exit_code == 0


def test_a_pending_attempt_has_its_rows_and_verify_checks_them(s3_emulator, s3_server, ledger_path, git_repo,
                                                               run_cli):
    """The rows are written while StartRunBatch is answered, before any record: a submission
    left pending (the batch started, 500 answered) has them, keyed by the blob its intent names."""
    settings = [cohort_setting(s) for s in SAMPLES]
    put_settings(s3_server, settings)
    s3_emulator.inject("error", operation="StartRunBatch", count=3, phase="after")
    sent = submit(run_cli, s3_emulator)
    assert sent.exit_code == 1 and "pending" in sent.stderr, sent.output
    with Ledger.open(ledger_path, create=False) as ledger:
        text, packed = ledger.conn.execute("SELECT intent, intent_zlib FROM attempts").fetchone()
        blob = json.loads(attempt_intent(text, packed))["batch"]["settings_file"]["content_blob"]["sha256"]
        data = ledger.blob(blob)
        assert ledger.conn.execute("SELECT count(*) FROM records").fetchone()[0] == 0
    assert rows(ledger_path) == [(blob, *row) for row in cohortindex.rows_of(settings, data)]
    assert run_cli("verify", "--no-remote").exit_code == 0
    edit(ledger_path, "UPDATE blob_settings SET runs = replace(runs, 'S001', 'S00l')")
    checked = run_cli("verify", "--no-remote")
    assert checked.exit_code == 1 and f"blob {blob[:12]}" in checked.stdout, checked.output


def test_verify_finds_the_rows_of_a_batch_changed_removed_or_stray(s3_emulator, s3_server, ledger_path, git_repo,
                                                                   run_cli):
    put_settings(s3_server, [cohort_setting(s) for s in SAMPLES])
    sent = submit(run_cli, s3_emulator)
    assert sent.exit_code == 0, sent.output
    batch_id = json.loads(sent.stdout)["id"]
    with Ledger.open(ledger_path, create=False) as ledger:
        seq = ledger.resolve(batch_id).seq
    message = "the digests of batch records' run settings were changed outside runlog"
    for statement, named in [
        ("UPDATE blob_settings SET digest = x'00' WHERE bucket = (SELECT min(bucket) FROM blob_settings)", f"#{seq}"),
        ("DELETE FROM blob_settings", f"#{seq}"),
        ("INSERT INTO blob_settings (blob, bucket, digest, runs) VALUES ('ab', 5, x'00', '[]')", "1 not of a batch"),
        # the record's own rows beside its blob's: a record held by reference has none
        (f"INSERT INTO batch_settings (batch, bucket, digest, runs) VALUES ({seq}, 5, x'00', '[]')", f"#{seq}"),
    ]:
        before = rows(ledger_path), rows(ledger_path, "batch_settings")
        edit(ledger_path, statement)
        checked = run_cli("verify", "--no-remote")
        assert checked.exit_code == 1 and message in checked.stdout and named in checked.stdout, \
            (statement, checked.output)
        conn = sqlite3.connect(ledger_path)  # put back as it was
        with conn:
            conn.execute("DELETE FROM blob_settings")
            conn.execute("DELETE FROM batch_settings")
            conn.executemany("INSERT INTO blob_settings (blob, bucket, digest, runs) VALUES (?, ?, ?, ?)", before[0])
            conn.executemany("INSERT INTO batch_settings (batch, bucket, digest, runs) VALUES (?, ?, ?, ?)", before[1])
        conn.close()
        assert run_cli("verify", "--no-remote").exit_code == 0


def test_a_pull_makes_the_rows_of_the_blob_it_takes(s3_emulator, s3_server, bucket, ledger_path, git_repo, run_cli,
                                                    tmp_path):
    settings = [cohort_setting(s) for s in SAMPLES]
    put_settings(s3_server, settings)
    sent = submit(run_cli, s3_emulator)
    assert sent.exit_code == 0, sent.output
    batch_id = json.loads(sent.stdout)["id"]
    push_json(run_cli, ledger_path)
    other = tmp_path / "other.db"
    pulled = run_cli("--ledger", other, "pull", REMOTE)
    assert pulled.exit_code == 0, pulled.output
    assert rows(other) == rows(ledger_path) and rows(other)
    assert rows(other, "batch_settings") == []
    assert run_cli("--ledger", other, "verify", "--no-remote").exit_code == 0
    changed = [dict(s, name="renamed") if s["runSettingId"] == "S007" else s for s in settings]
    put_settings(s3_server, changed)
    again = submit(run_cli, s3_emulator)
    assert again.exit_code == 0, again.output
    shown = run_cli("diff", batch_id, json.loads(again.stdout)["id"])
    assert shown.exit_code == 0 and "S007" in shown.stdout and "S008" not in shown.stdout, shown.output


def test_the_migration_moves_a_held_records_rows_to_its_blob(s3_emulator, s3_server, ledger_path, git_repo,
                                                             run_cli):
    """A ledger of migration 12, where a batch record held by reference kept its rows in
    `batch_settings` by its seq: opened, its rows are its blob's, and verify and diff agree."""
    settings = [cohort_setting(s) for s in SAMPLES]
    put_settings(s3_server, settings)
    sent = submit(run_cli, s3_emulator)
    assert sent.exit_code == 0, sent.output
    batch_id = json.loads(sent.stdout)["id"]
    expected = rows(ledger_path)
    with Ledger.open(ledger_path, create=False) as ledger:
        seq = ledger.resolve(batch_id).seq
    edit(ledger_path, f"INSERT INTO batch_settings (batch, bucket, digest, runs) SELECT {seq}, bucket, digest, runs "
                        "FROM blob_settings", "DROP TABLE blob_settings",
           f"PRAGMA user_version = {MIGRATIONS.index(m013_blob_settings)}")
    assert rows(ledger_path, "batch_settings") and len(rows(ledger_path, "batch_settings")) == len(expected)
    assert run_cli("verify", "--no-remote").exit_code == 0  # (a read command migrates a copy in memory)
    put_settings(s3_server, [dict(s, name="renamed") if s["runSettingId"] == "S003" else s for s in settings])
    again = submit(run_cli, s3_emulator)  # a write migrates the file
    assert again.exit_code == 0, again.output
    assert rows(ledger_path, "batch_settings") == [] and set(expected) <= set(rows(ledger_path))
    shown = run_cli("diff", batch_id, json.loads(again.stdout)["id"])
    assert shown.exit_code == 0 and "S003" in shown.stdout and "S004" not in shown.stdout, shown.output
    assert run_cli("verify", "--no-remote").exit_code == 0


def test_the_migration_leaves_a_tampered_batch_body_to_verify(s3_emulator, s3_server, ledger_path, git_repo, run_cli):
    """A ledger of migration 12 one of whose batch records was overwritten behind runlog's back
    with text that is not JSON but names a `content_blob`: migrating it (a read command migrates
    a copy in memory) does not stop at that row; verify opens the ledger and names the record."""
    put_settings(s3_server, [cohort_setting(s) for s in SAMPLES])
    sent = submit(run_cli, s3_emulator)
    assert sent.exit_code == 0, sent.output
    conn = sqlite3.connect(ledger_path)
    triggers = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                               "AND name = 'records_no_update'")]
    conn.close()
    edit(ledger_path, "DROP TABLE blob_settings", f"PRAGMA user_version = {MIGRATIONS.index(m013_blob_settings)}",
         *(f"DROP TRIGGER {name}" for name in triggers),
         "UPDATE records SET body = '{\"batch\": {\"settings_file\": {\"content_blob\": x' WHERE kind = 'batch'")
    checked = run_cli("verify", "--no-remote")
    assert checked.exit_code == 1, checked.output
    assert "record #1" in checked.stdout and "no longer matches its content address" in checked.stdout, checked.output
    assert "malformed JSON" not in checked.output
    listed = run_cli("log")
    assert listed.exit_code == 0, listed.output


def test_rows_written_ahead_by_someone_else_do_not_hide_a_changed_run(s3_emulator, s3_server, ledger_path, git_repo,
                                                                      run_cli):
    """submit-batch takes the rows a ledger has for a settings file's blob as they are (one set
    per blob): rows put there behind runlog's back, for a blob named before it is submitted (a
    blob is named by its content), copied from another cohort's. `diff` of the two batches still
    names the run that changed (the two blobs differ, the rows say no bucket does: the cohorts
    are decoded), and verify names the rows."""
    from runlog import fastjson
    from runlog.record import sha256_hex

    settings = [cohort_setting(s) for s in SAMPLES]
    put_settings(s3_server, settings)
    first = submit(run_cli, s3_emulator)
    assert first.exit_code == 0, first.output
    a = json.loads(first.stdout)["id"]
    blob_a = content_blob(ledger_path, a)
    changed = [dict(s, name="renamed") if s["runSettingId"] == "S007" else s for s in settings]
    blob_b = sha256_hex(fastjson.dumps(changed))
    edit(ledger_path, f"INSERT INTO blob_settings (blob, bucket, digest, runs) SELECT '{blob_b}', bucket, digest, "
                      f"runs FROM blob_settings WHERE blob = '{blob_a}'")
    put_settings(s3_server, changed)
    second = submit(run_cli, s3_emulator)
    assert second.exit_code == 0, second.output
    b = json.loads(second.stdout)["id"]
    assert content_blob(ledger_path, b) == blob_b
    shown = run_cli("diff", a, b)
    assert shown.exit_code == 0 and "S007" in shown.stdout and "S008" not in shown.stdout, shown.output
    checked = run_cli("verify", "--no-remote")
    assert checked.exit_code == 1 and "run settings were changed outside runlog" in checked.stdout, checked.output


READ_SET = "omics://123456789012.storage.us-west-2.amazonaws.com/1234567890/readSet/1234567890/source1"


def test_an_odd_answer_in_the_inputs_identities_is_refused_as_for_a_whole_intent(s3_emulator, s3_server, ledger_path,
                                                                                 git_repo, run_cli):
    """The intent is checked against the record schema as it is stored (its cohort held by
    reference); the inputs' identities are made of what the services answered (here a read
    set's `status` a number, not a string), so they are checked too: nothing is sent and
    nothing recorded, as for a run's StartRun, instead of a record readers see breaking its
    schema (which verify, checking the stored form, passed)."""
    s3_emulator.add_read_set("1234567890", "1234567890", status=5)
    put_settings(s3_server, [dict(cohort_setting(s), parameters={"sample_name": s, "input_cram": READ_SET})
                             for s in SAMPLES])
    sent = submit(run_cli, s3_emulator)
    assert sent.exit_code == 70, sent.output
    assert "would break its schema" in sent.stderr and "status: 5 is not of type 'string'" in sent.stderr, sent.output
    if ledger_path.exists():  # (opened before the cohort is checked)
        conn = sqlite3.connect(ledger_path)
        try:
            assert conn.execute("SELECT count(*) FROM attempts").fetchone()[0] == 0
        finally:
            conn.close()


def test_a_view_naming_another_blob_does_not_hide_a_changed_run(s3_emulator, s3_server, ledger_path, git_repo,
                                                                run_cli):
    """The blob whose rows `diff B1 B2` compares is the one the record names, not the one its
    view (a derived row, changed here behind runlog's back to name the other batch's blob)
    names: the changed run is still found, and verify names the view."""
    settings = [cohort_setting(s) for s in SAMPLES]
    put_settings(s3_server, settings)
    first = submit(run_cli, s3_emulator)
    put_settings(s3_server, [dict(s, name="renamed") if s["runSettingId"] == "S007" else s for s in settings])
    second = submit(run_cli, s3_emulator)
    assert first.exit_code == 0 and second.exit_code == 0, (first.output, second.output)
    a, b = json.loads(first.stdout)["id"], json.loads(second.stdout)["id"]
    blob_a = content_blob(ledger_path, a)
    with Ledger.open(ledger_path, create=False) as ledger:
        address_b = ledger.resolve(b).address
    edit(ledger_path, f"UPDATE batch_views SET view = json_set(view, '$.batch.settings_file.content_blob.sha256', "
                      f"'{blob_a}') WHERE record = '{address_b}'")
    shown = run_cli("diff", a, b)
    assert shown.exit_code == 0 and "S007" in shown.stdout and "S008" not in shown.stdout, shown.output
    checked = run_cli("verify", "--no-remote")
    assert checked.exit_code == 1 and "views of batch records were changed" in checked.stdout, checked.output


def test_a_pulled_blob_the_record_schema_refuses_is_left_out(s3_emulator, s3_server, bucket, ledger_path, git_repo,
                                                             run_cli, tmp_path):
    """A team ledger is written by others: a batch record (its address right) naming an inputs
    blob (its name right, canonical JSON) whose identities the record schema refuses (a `kind`
    that is a number) is left out by pull, and the blob is named; so is push's and verify's
    check of such a blob (blobs.check)."""
    import zlib

    from helpers import record_key
    from runlog import blobs, fastjson
    from runlog import record as rec

    put_settings(s3_server, [cohort_setting(s) for s in SAMPLES[:3]])
    sent = submit(run_cli, s3_emulator)
    assert sent.exit_code == 0, sent.output
    push_json(run_cli, ledger_path, "--objects")
    with Ledger.open(ledger_path, create=False) as ledger:
        stored = ledger.resolve(json.loads(sent.stdout)["id"]).stored
    hostile = fastjson.dumps({"s3://cohort-bucket/crams/S000.cram": {"kind": 5}})
    blob = blobs.Blob(hostile, items=1)
    forged = json.loads(json.dumps(stored))
    forged["resolution"]["inputs_blob"] = blob.ref
    forged["request"]["requestId"] = "0b7f3c1e-5d2a-4e8b-9c61-2f4a8d9e0c13"  # (one request id is one run)
    another_answer(forged, "8999999")
    forged["fingerprint"] = rec.fingerprint(forged)
    body = fastjson.dumps(forged)
    address = rec.sha256_hex(body)
    bucket.put_object(Bucket="lab-provenance", Key=f"runlog/blobs/{blob.sha256}.json.zlib",
                      Body=zlib.compress(hostile))
    bucket.put_object(Bucket="lab-provenance", Key=record_key(address), Body=body)
    other = tmp_path / "other.db"
    pulled = run_cli("--ledger", other, "pull", REMOTE)
    assert pulled.exit_code == 1, pulled.output
    assert f"record {address} is left out" in pulled.stderr and "record schema refuses" in pulled.stderr, \
        pulled.stderr
    with Ledger.open(other, create=False) as ledger:
        held = ledger.addresses()
    assert address not in held and stored is not None and len(held) >= 1
    assert blobs.check(blob.ref, hostile, blobs.INPUTS) is not None
    assert blobs.check(blob.ref, hostile, None) is None  # (no place: no schema to hold it to)


def test_rows_written_ahead_for_settings_holding_the_separator_are_those_verify_computes(
        s3_emulator, s3_server, ledger_path, git_repo, run_cli):
    """The rows submit-batch computes from the blob it has just encoded (not looked for again
    in it) are cut per setting when a value holds the `},{` that separates settings, and match
    what verify computes from the stored blob; a second file that changes one such run is told
    apart by `diff` on that run alone."""
    settings = [cohort_setting(s) for s in SAMPLES]
    for index in (0, 7, 39):
        settings[index]["name"] = f"odd}},{{name-{index}"
    settings[3]["runSettingId"] = "é-S003-😀"
    put_settings(s3_server, settings)
    first = submit(run_cli, s3_emulator)
    assert first.exit_code == 0, first.output
    changed = json.loads(json.dumps(settings))
    changed[7]["name"] = "odd},{name-7-again"
    s3_server.put_object(Bucket="cohort-bucket", Key="cohort/settings.json", Body=json.dumps(changed).encode())
    second = submit(run_cli, s3_emulator)
    assert second.exit_code == 0, second.output
    a, b = json.loads(first.stdout)["id"], json.loads(second.stdout)["id"]
    for batch_id, listed in ((a, settings), (b, changed)):
        blob = content_blob(ledger_path, batch_id)
        with Ledger.open(ledger_path, create=False) as ledger:
            data = ledger.blob(blob)
        stored = [row[1:] for row in rows(ledger_path) if row[0] == blob]
        assert stored == cohortindex.blob_rows(data) == cohortindex.rows_of(listed, data)
    assert run_cli("verify", "--no-remote").exit_code == 0
    diffed = json.loads(run_cli("diff", a, b, "--json").stdout)["changes"]
    assert {(c["section"], c["path"].split(".")[0]) for c in diffed if c["section"] == "run settings"} == {
        ("run settings", settings[7]["runSettingId"])}, diffed
