"""Readers of a batch record holding its cohort by reference (runlog/blobs.py) see what they
saw of the same cohort written inline: `show B` and `diff B1 B2` read the record's view
(Ledger.batch_view), which leaves the settings file's content out, never the inputs."""

from __future__ import annotations

import json

import pytest

from helpers import COHORT_DEFAULT, cohort_setting, tamper
from runlog.ledger import Ledger

SAMPLES = [f"S{i:03d}" for i in range(6)]


def _submit(run_cli, emulator) -> str:
    submitted = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT), "--batch-run-settings",
                        json.dumps({"s3UriSettings": "s3://cohort-bucket/cohort/settings.json"}),
                        "--endpoint-url", emulator.endpoint_url)
    assert submitted.exit_code == 0, submitted.output
    return json.loads(submitted.stdout)["id"]


@pytest.fixture
def two_batches(s3_emulator, s3_server, ledger_path, git_repo, run_cli):
    """Two batches of the same settings file, one input rewritten between them: the same
    content blob, two inputs blobs."""
    s3 = s3_server
    s3.create_bucket(Bucket="cohort-bucket")
    s3.put_object(Bucket="cohort-bucket", Key="cohort/settings.json",
                  Body=json.dumps([cohort_setting(s) for s in SAMPLES]).encode())
    for sample in SAMPLES:
        s3.put_object(Bucket="cohort-bucket", Key=f"crams/{sample}.cram", Body=f"cram of {sample}".encode())
    first = _submit(run_cli, s3_emulator)
    s3.put_object(Bucket="cohort-bucket", Key="crams/S003.cram", Body=b"another cram of S003")
    return first, _submit(run_cli, s3_emulator)


def _etags(ledger_path, batch_id: str) -> dict:
    with Ledger.open(ledger_path, create=False) as ledger:
        return {uri: identity.get("etag") for uri, identity in
                ledger.resolve(batch_id).record["resolution"]["inputs"].items()}


def test_show_batch_lists_the_inputs_not_their_reference(two_batches, run_cli):
    first, _ = two_batches
    shown = run_cli("show", first)
    assert shown.exit_code == 0, shown.output
    assert "_blob" not in shown.stdout
    assert "s3://cohort-bucket/crams/S003.cram" in shown.stdout  # 6 inputs: listed (more than 20: counted)
    assert "(6 run settings: see --json)" in shown.stdout


def test_diff_of_two_batches_names_the_input_that_changed(two_batches, ledger_path, run_cli):
    first, second = two_batches
    before, after = _etags(ledger_path, first), _etags(ledger_path, second)
    changed = [uri for uri in before if before[uri] != after[uri]]
    assert changed == ["s3://cohort-bucket/crams/S003.cram"]
    diffed = run_cli("diff", first, second, "--json")
    assert diffed.exit_code == 0, diffed.output
    assert "s3://cohort-bucket/crams/S003.cram.etag" in diffed.stdout, diffed.stdout
    assert "_blob" not in diffed.stdout


def test_diff_of_two_batches_without_their_run_digests_reads_the_runs_from_the_blobs(
        two_batches, ledger_path, run_cli, s3_emulator, s3_server):
    """Without `batch_settings` rows (diff's index of each run's digest), the two cohorts are
    decoded whole: from the blob for a record holding its cohort by reference."""
    first, _ = two_batches
    s3_server.put_object(Bucket="cohort-bucket", Key="cohort/settings.json",
                         Body=json.dumps([cohort_setting(s) for s in SAMPLES if s != "S002"]).encode())
    third = _submit(run_cli, s3_emulator)
    tamper(ledger_path, "DELETE FROM batch_settings")
    diffed = run_cli("diff", first, third)
    assert diffed.exit_code == 0, diffed.output
    assert "- S002" in diffed.stdout, diffed.stdout


def test_show_batch_counts_more_than_20_inputs_from_their_reference(s3_emulator, s3_server, ledger_path, git_repo,
                                                                   run_cli):
    samples = [f"S{i:03d}" for i in range(30)]
    s3_server.create_bucket(Bucket="cohort-bucket")
    s3_server.put_object(Bucket="cohort-bucket", Key="cohort/settings.json",
                         Body=json.dumps([cohort_setting(s) for s in samples]).encode())
    batch_id = _submit(run_cli, s3_emulator)
    with Ledger.open(ledger_path, create=False) as ledger:
        entry = ledger.resolve(batch_id)
        held = entry.stored["resolution"]["inputs_blob"]
        inputs = entry.record["resolution"]["inputs"]
    assert held["items"] == len(inputs) > 20  # the reference says how many, so show need not decode them
    shown = run_cli("show", batch_id)
    assert shown.exit_code == 0, shown.output
    assert f'"inputs": "({len(inputs)} inputs: see --json)"' in shown.stdout and "_blob" not in shown.stdout


def test_diff_of_two_batches_with_the_same_identities_finds_no_input_change(s3_emulator, s3_server, ledger_path,
                                                                           git_repo, run_cli):
    s3_server.create_bucket(Bucket="cohort-bucket")
    s3_server.put_object(Bucket="cohort-bucket", Key="cohort/settings.json",
                         Body=json.dumps([cohort_setting(s) for s in SAMPLES]).encode())
    for sample in SAMPLES:
        s3_server.put_object(Bucket="cohort-bucket", Key=f"crams/{sample}.cram", Body=f"cram of {sample}".encode())
    first, second = _submit(run_cli, s3_emulator), _submit(run_cli, s3_emulator)
    with Ledger.open(ledger_path, create=False) as ledger:
        refs = [ledger.resolve(b).stored["resolution"]["inputs_blob"] for b in (first, second)]
    assert refs[0] == refs[1]  # the same identities: one blob
    diffed = run_cli("diff", first, second, "--json")
    assert diffed.exit_code == 0, diffed.output
    assert not [c for c in json.loads(diffed.stdout)["changes"] if c["section"] == "inputs"]
