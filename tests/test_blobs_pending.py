"""A cohort held by reference (runlog/blobs.py) away from the record's own read: a pending batch
attempt names its cohort's blobs (`recover` sends it again and writes its record with them, so
verify checks them as it checks a record's); an entry read after its ledger moved."""

from __future__ import annotations

import json

import pytest

from helpers import COHORT_DEFAULT, cohort_setting, tamper
from runlog.ledger import Ledger, attempt_intent

SAMPLES = [f"S{i:03d}" for i in range(4)]


def _pending_blob_lost(place, emulator, s3, ledger_path, run_cli, how="lost") -> tuple[str, str]:
    """A submit-batch left pending (StartRunBatch started the batch, answered 500), then the
    blob its intent names at `place` deleted behind runlog's back (`how` "corrupt": its bytes
    replaced by ones that are not zlib's): (request id, the blob)."""
    s3.create_bucket(Bucket="cohort-bucket")
    s3.put_object(Bucket="cohort-bucket", Key="cohort/settings.json",
                  Body=json.dumps([cohort_setting(s) for s in SAMPLES]).encode())
    emulator.inject("error", operation="StartRunBatch", count=3, phase="after")  # started, 500 answered
    sent = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT), "--batch-run-settings",
                   json.dumps({"s3UriSettings": "s3://cohort-bucket/cohort/settings.json"}),
                   "--endpoint-url", emulator.endpoint_url)
    assert sent.exit_code == 1 and "pending" in sent.stderr, sent.output
    with Ledger.open(ledger_path, create=False) as ledger:
        request_id, text, packed = ledger.conn.execute(
            "SELECT request_id, intent, intent_zlib FROM attempts").fetchone()
    intent = json.loads(attempt_intent(text, packed))
    held = (intent["batch"]["settings_file"] if place == "content_blob" else intent["resolution"])[place]["sha256"]
    assert run_cli("verify", "--no-remote").exit_code == 0
    if how == "lost":
        tamper(ledger_path, "DELETE FROM blobs WHERE sha256 = ?", params=(held,))
    else:
        tamper(ledger_path, "UPDATE blobs SET data = ? WHERE sha256 = ?", params=(b"not zlib", held))
    return request_id, held


@pytest.mark.parametrize("place", ["content_blob", "inputs_blob"])
def test_verify_names_a_blob_a_pending_attempt_lost(place, s3_emulator, s3_server, ledger_path, git_repo, run_cli):
    request_id, held = _pending_blob_lost(place, s3_emulator, s3_server, ledger_path, run_cli)
    checked = run_cli("verify", "--no-remote")
    assert checked.exit_code == 1, checked.output
    assert f"pending attempt {request_id}: its " in checked.stdout and f"blob {held} is missing" in checked.stdout


@pytest.mark.parametrize("place", ["content_blob", "inputs_blob"])
def test_verify_names_a_pending_attempts_corrupt_blob_once(place, s3_emulator, s3_server, ledger_path, git_repo,
                                                           run_cli):
    """A blob only a pending attempt names is checked as the attempt's, not also as one that no
    record names (the two checks named it twice)."""
    request_id, held = _pending_blob_lost(place, s3_emulator, s3_server, ledger_path, run_cli, how="corrupt")
    checked = run_cli("verify", "--no-remote")
    assert checked.exit_code == 1, checked.output
    naming = [line for line in checked.stdout.splitlines() if held[:12] in line]
    assert naming == [f"FAIL pending attempt {request_id}: its {'batch.settings_file.content' if place == 'content_blob' else 'resolution.inputs'} "
                      f"(held by reference) cannot be trusted: blob {held} is not zlib data"], checked.stdout


def test_an_entry_read_after_its_ledger_moved_says_so_in_a_ledger_error(s3_emulator, s3_server, ledger_path,
                                                                         git_repo, run_cli, tmp_path):
    from helpers import refreshed_cohort
    from runlog.errors import LedgerError

    batch_id = refreshed_cohort(run_cli, s3_emulator, s3_server, SAMPLES)
    with Ledger.open(ledger_path, create=False) as ledger:
        entry = ledger.resolve(batch_id)
    ledger_path.rename(tmp_path / "moved.db")
    with pytest.raises(LedgerError, match="cannot read blob .* read the record's cohort while its ledger is open"):
        entry.record  # noqa: B018


def test_records_appended_in_bulk_are_refused_without_their_blobs(s3_emulator, s3_server, ledger_path, git_repo,
                                                                  run_cli, tmp_path):
    """add_records (pages of records) and add_received_records (a pull's) keep the rule
    add_record keeps: a batch record naming a blob the ledger lacks would have lost its cohort."""
    from helpers import refreshed_cohort
    from runlog import fastjson
    from runlog.errors import LedgerError
    from runlog.ledger import INDEX_COLUMNS, index_columns

    batch_id = refreshed_cohort(run_cli, s3_emulator, s3_server, SAMPLES)
    with Ledger.open(ledger_path, create=False) as ledger:
        entry = ledger.resolve(batch_id)
        stored, address = entry.stored, entry.address
    body = fastjson.dumps(stored)
    columns = index_columns(stored)
    with Ledger.open(tmp_path / "other.db") as other:
        with pytest.raises(LedgerError, match="names blob .* which the ledger .* lacks"):
            other.add_records([stored])
        with pytest.raises(LedgerError, match="names blob .* which the ledger .* lacks"):
            other.add_received_records([(address, body, tuple(columns[name] for name in INDEX_COLUMNS))])
        assert other.count() == 0


def test_recover_does_not_send_again_an_attempt_whose_cohort_blob_is_lost(s3_emulator, s3_server, ledger_path,
                                                                           git_repo, run_cli):
    """Sent again, the batch would start (or be found started) and its record be refused: a
    batch running with no record. recover leaves the attempt pending and says why."""
    request_id, held = _pending_blob_lost("content_blob", s3_emulator, s3_server, ledger_path, run_cli)
    before = sum(1 for r in s3_emulator.requests if r["operation"] == "StartRunBatch")
    recovered = run_cli("recover")
    assert recovered.exit_code != 0, recovered.output
    assert f"attempt {request_id} is not sent again: the ledger lacks blob {held[:12]}" in recovered.output
    assert sum(1 for r in s3_emulator.requests if r["operation"] == "StartRunBatch") == before
    with Ledger.open(ledger_path, create=False) as ledger:
        assert ledger.pending_request_ids() == [request_id]
