"""A batch record's cohort held by reference (runlog/blobs.py, migration m012): submit-batch
stores the settings file's content and the inputs' identities as blobs named by the SHA-256
of their canonical JSON; readers see the cohort in place; verify checks every blob."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import zlib

import pytest

from helpers import COHORT_DEFAULT, another_answer, cohort_setting, refreshed_cohort, tamper
from runlog import blobs
from runlog import record as rec
from runlog.errors import LedgerError
from runlog.ledger import Ledger

SAMPLES = [f"S{i:03d}" for i in range(12)]


@pytest.fixture
def batch(s3_emulator, s3_server, ledger_path, git_repo, run_cli):
    batch_id = refreshed_cohort(run_cli, s3_emulator, s3_server, SAMPLES)
    with Ledger.open(ledger_path, create=False) as ledger:
        entry = ledger.resolve(batch_id)
        return batch_id, entry.address, entry.stored


def test_the_record_names_its_cohort_and_readers_see_it_in_place(batch, ledger_path, run_cli):
    batch_id, address, stored = batch
    held = {place: ref for place, _, ref in blobs.refs(stored)}
    assert sorted(held) == ["batch.settings_file.content", "resolution.inputs"]
    assert "content" not in stored["batch"]["settings_file"] and "inputs" not in stored["resolution"]
    with Ledger.open(ledger_path, create=False) as ledger:
        for ref in held.values():
            data = ledger.blob(ref["sha256"])
            assert hashlib.sha256(data).hexdigest() == ref["sha256"] and len(data) == ref["bytes"]
        content = json.loads(ledger.blob(held["batch.settings_file.content"]["sha256"]))
    assert content == [cohort_setting(sample) for sample in SAMPLES]
    shown = json.loads(run_cli("show", batch_id, "--json").stdout)["record"]
    assert shown["batch"]["settings_file"]["content"] == content
    assert list(shown["batch"]["settings_file"]) == sorted(shown["batch"]["settings_file"])  # as a body has them
    assert "content_blob" not in shown["batch"]["settings_file"]
    # the record as readers see it, cohort in place, is one the schema takes (submit-batch checks
    # the intent as it is stored, by reference: its run settings and inputs are checked elsewhere)
    assert rec.schema_errors(shown) == []
    assert sorted(shown["resolution"]["inputs"]) == sorted(json.loads(
        Ledger.open(ledger_path, create=False).blob(held["resolution.inputs"]["sha256"])))
    assert run_cli("verify", "--no-remote").exit_code == 0


def test_an_entry_read_after_its_ledger_closed_still_shows_the_cohort(batch, ledger_path):
    batch_id, _, _ = batch
    with Ledger.open(ledger_path, create=False) as ledger:
        entry = ledger.resolve(batch_id)
    assert [s["runSettingId"] for s in entry.record["batch"]["settings_file"]["content"]] == SAMPLES


def _blob_of(stored: dict, place: str) -> str:
    return next(ref["sha256"] for name, _, ref in blobs.refs(stored) if name == place)


@pytest.mark.parametrize("place", ["batch.settings_file.content", "resolution.inputs"])
def test_verify_names_a_blob_changed_behind_runlogs_back(place, batch, ledger_path, run_cli):
    batch_id, _, stored = batch
    sha256 = _blob_of(stored, place)
    with Ledger.open(ledger_path, create=False) as ledger:
        value = json.loads(ledger.blob(sha256))
    if isinstance(value, list):
        value[0]["parameters"] = {"sample_name": "forged"}
    else:
        first = sorted(value)[0]
        value[first] = {**value[first], "etag": "0" * 32}
    forged = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    tamper(ledger_path, "UPDATE blobs SET data = ?, bytes = ? WHERE sha256 = ?",
           params=(zlib.compress(forged), len(forged), sha256))
    for args in (("verify", "--no-remote"), ("verify", batch_id, "--no-remote")):
        checked = run_cli(*args)
        assert checked.exit_code == 1, checked.output
        assert f"its {place} (held by reference) cannot be trusted: blob {sha256} does not hold the bytes its " \
               "name is the digest of" in checked.stdout


def test_a_lost_blob_is_named_and_reading_the_record_says_so_in_one_line(batch, ledger_path, run_cli):
    batch_id, _, stored = batch
    sha256 = _blob_of(stored, "batch.settings_file.content")
    tamper(ledger_path, "DELETE FROM blobs WHERE sha256 = ?", params=(sha256,))
    checked = run_cli("verify", "--no-remote")
    assert checked.exit_code == 1 and f"blob {sha256} is missing" in checked.stdout, checked.output
    shown = run_cli("show", batch_id, "--json")  # what can be shown is (tests/test_blobs_damage.py)
    assert shown.exit_code == 1 and shown.stderr.count("\n") == 1, shown.output
    assert f"blob {sha256[:12]} of ledger" in shown.stderr and "is missing" in shown.stderr
    assert "Traceback" not in shown.output


def test_a_blob_no_record_names_is_checked_too(batch, ledger_path, run_cli):
    data = b'["stray"]'
    name = hashlib.sha256(data).hexdigest()
    tamper(ledger_path, "INSERT INTO blobs (sha256, bytes, data) VALUES (?, ?, ?)",
           params=(name, len(data), zlib.compress(b'["other"]')))
    checked = run_cli("verify", "--no-remote")
    assert checked.exit_code == 1 and f"blob {name[:12]} (named by no record) does not hold the bytes" in \
        checked.stdout, checked.output


def test_a_record_naming_a_blob_the_ledger_lacks_is_refused(batch, tmp_path):
    _, _, stored = batch
    other = tmp_path / "other.db"
    with Ledger.open(other) as ledger:
        with pytest.raises(LedgerError, match="names blob .* which the ledger .* lacks"):
            ledger.add_record(stored)
        assert ledger.count() == 0


def test_an_inline_batch_and_one_by_reference_diff_run_by_run(batch, ledger_path, run_cli):
    """A ledger may hold batch records of both forms (older records inline): diff reads each
    run's setting from the body or from the blob, at the offsets `batch_settings` keeps."""
    _, address, _ = batch
    with Ledger.open(ledger_path, create=False) as ledger:
        inline = json.loads(json.dumps(ledger.get(address).record))  # the cohort in place: the old form
        inline["request"]["requestId"] = "5c7c2a56-0000-4000-8000-000000000001"
        another_answer(inline)
        inline["batch"]["settings_file"]["content"][3]["parameters"]["coverage"] = 99
        inline["batch"]["settings_file"]["sha256"] = "0" * 64  # another settings file's bytes
        inline["fingerprint"] = rec.fingerprint(inline)
        entry, added = ledger.add_record(inline)
        assert added and not blobs.by_reference(entry.stored)
        rows = sqlite3.connect(ledger_path).execute(
            "SELECT count(*) FROM batch_settings WHERE batch = ?", (entry.seq,)).fetchone()[0]
    assert rows > 0
    diffed = run_cli("diff", address[:12], entry.address[:12])
    assert diffed.exit_code == 0, diffed.output
    assert "S003" in diffed.stdout and "99" in diffed.stdout
    assert not any(f"S{i:03d}" in diffed.stdout for i in range(12) if i != 3)
    assert run_cli("verify", "--no-remote").exit_code == 0


def test_a_reference_whose_count_is_not_its_blobs_is_named(batch, ledger_path):
    """A record forged elsewhere (a team ledger) may name a real blob with another count: what
    verify, push and pull check of each reference (blobs.check) names it."""
    _, _, stored = batch
    (ref,) = [r for place, _, r in blobs.refs(stored) if place == blobs.INPUTS]
    with Ledger.open(ledger_path, create=False) as ledger:
        data = ledger.blob(ref["sha256"])
    assert blobs.check(ref, data) is None
    assert blobs.check({**ref, "items": ref["items"] + 1}, data) == \
        f"blob {ref['sha256']} holds {ref['items']} items, the record says {ref['items'] + 1}"


def test_a_stray_zlib_bomb_is_named_without_being_decompressed(batch, ledger_path, run_cli):
    """A blob no record names is decompressed only as far as its row says it holds (blobs.unpack),
    as every other blob is: 256 MiB of zeros in 256 KiB, its row saying 9 bytes, is named as
    such and never made in memory."""
    import tracemalloc

    packer = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    bomb = b"".join(packer.compress(chunk) for _ in range(256)) + packer.flush()
    assert len(bomb) < 1 << 20
    name = hashlib.sha256(b'["stray"]').hexdigest()
    tamper(ledger_path, "INSERT INTO blobs (sha256, bytes, data) VALUES (?, ?, ?)", params=(name, 9, bomb))
    tracemalloc.start()
    try:
        checked = run_cli("verify", "--no-remote")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert checked.exit_code == 1, checked.output
    assert f"FAIL blob {name[:12]} (named by no record) decompresses to more than 9 bytes (a zlib bomb?)" in \
        checked.stdout.splitlines(), checked.stdout
    assert peak < 64 << 20, peak


def test_a_blob_two_batches_name_is_checked_once_and_named_for_each(batch, ledger_path, run_cli, s3_emulator):
    """Batches of one settings file name the same blobs: verify checks each blob once (the same
    reference gives the same answer) and still names every record whose blob is bad."""
    import gc

    batch_id, _, stored = batch
    again = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT), "--batch-run-settings",
                    json.dumps({"s3UriSettings": "s3://cohort-bucket/cohort/settings.json"}),
                    "--endpoint-url", s3_emulator.endpoint_url)
    assert again.exit_code == 0, again.output
    with Ledger.open(ledger_path, create=False) as ledger:
        other = ledger.resolve(json.loads(again.stdout)["id"])
        assert blobs.refs(other.stored) == blobs.refs(stored)
        seqs = sorted([ledger.resolve(batch_id).seq, other.seq])
    assert run_cli("verify", "--no-remote").exit_code == 0
    sha256 = _blob_of(stored, "batch.settings_file.content")
    tamper(ledger_path, "UPDATE blobs SET data = ? WHERE sha256 = ?", params=(zlib.compress(b"[]"), sha256))
    checked = run_cli("verify", "--no-remote")
    assert checked.exit_code == 1 and gc.isenabled(), checked.output
    named = [line for line in checked.stdout.splitlines() if sha256 in line]
    assert named == [f"FAIL record #{seq}: its batch.settings_file.content (held by reference) cannot be trusted: "
                     f"blob {sha256} does not hold the bytes its name is the digest of" for seq in seqs], checked.stdout
