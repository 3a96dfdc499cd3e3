"""Read commands on a ledger one of whose cohort blobs (runlog/blobs.py) is lost or was changed
outside runlog: each writes what does not need the blob, then names it and the fix in one line
on stderr, exit 1 (as for a problem verify finds); export and replay, whose whole output is
built from the cohort, write nothing (docs/cli.md, docs/record.md#a-cohort-held-by-reference)."""

from __future__ import annotations

import json
import zlib

import pytest

from helpers import COHORT_DEFAULT, cohort_setting, refreshed_cohort, tamper
from runlog import blobs
from runlog.ledger import Ledger

SAMPLES = [f"S{i:03d}" for i in range(5)]


@pytest.fixture(params=["lost", "corrupt", "forged"])
def damaged(request, s3_emulator, s3_server, ledger_path, git_repo, run_cli):
    """Batch B1 (refreshed: its members recorded) and B2 (one run setting changed), then B1's
    settings file content blob deleted ("lost"), overwritten with bytes that are not zlib's
    ("corrupt") or with zlib's compression of other JSON ("forged") behind runlog's back:
    (B1, B2, a member of B1, the blob)."""
    b1 = refreshed_cohort(run_cli, s3_emulator, s3_server, SAMPLES)
    settings = [cohort_setting(s) for s in SAMPLES]
    settings[2]["parameters"]["sample_name"] = "renamed"
    s3_server.put_object(Bucket="cohort-bucket", Key="cohort/settings2.json", Body=json.dumps(settings).encode())
    sent = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT), "--batch-run-settings",
                   json.dumps({"s3UriSettings": "s3://cohort-bucket/cohort/settings2.json"}),
                   "--endpoint-url", s3_emulator.endpoint_url)
    assert sent.exit_code == 0, sent.output
    b2 = json.loads(sent.stdout)["id"]
    with Ledger.open(ledger_path, create=False) as ledger:
        held = blobs.ref_of(ledger.resolve(b1).stored, blobs.CONTENT)["sha256"]
        member, other = (row[0] for row in ledger.conn.execute(
            "SELECT run_id FROM records WHERE kind = 'member' ORDER BY seq LIMIT 2"))
    if request.param == "lost":
        tamper(ledger_path, "DELETE FROM blobs WHERE sha256 = ?", params=(held,))
    else:
        data = b"not zlib" if request.param == "corrupt" else zlib.compress(b"[]")
        tamper(ledger_path, "UPDATE blobs SET data = ? WHERE sha256 = ?", params=(data, held))
    diffed = run_cli("diff", member, other)  # members hold their own settings: nothing lost
    assert diffed.exit_code == 0 and "sample_name" in diffed.stdout, diffed.output
    return b1, b2, member, held


def _named_once(result, held: str) -> None:
    """Exit 1, and one line on stderr naming the blob and the fix."""
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output, result.stderr
    line = result.stderr
    assert line.startswith(f"runlog: error: blob {held[:12]} of ledger ") and "part of a batch record's cohort" in line
    assert line.endswith("(changed outside runlog)" * (not line.count("is missing")) + ": `runlog verify` names the "
                         "record; restore the ledger from a backup, or `runlog pull` the team ledger it was pushed to "
                         "into a new ledger\n"), line


def test_report_writes_the_report_and_names_the_lost_blob(damaged, run_cli, tmp_path):
    b1, _, _, held = damaged
    for args in ((), ("--batch", b1)):
        target = tmp_path / f"report{len(args)}.html"
        written = run_cli("report", *args, "-o", target)
        _named_once(written, held)
        assert written.stdout.startswith("wrote ") and "problem(s) found by verify" in written.stdout
        page = target.read_text()
        assert f"batch.settings_file.content (held by reference) cannot be trusted: blob {held}" in page


def test_show_writes_what_it_can_and_names_the_lost_blob(damaged, run_cli):
    b1, _, member, held = damaged
    shown = run_cli("show", b1)
    assert shown.exit_code == 0 and "runs         5 asked, 5 member record(s)" in shown.stdout, shown.output
    whole = run_cli("show", b1, "--json")
    _named_once(whole, held)
    record = json.loads(whole.stdout)["record"]
    assert record["batch"]["settings_file"]["content_blob"]["sha256"] == held  # as stored: a reference
    assert "content" not in record["batch"]["settings_file"]
    assert json.loads(whole.stdout)["batch"]["runs"] == 5
    assert run_cli("show", member).exit_code == 0  # a member holds its own settings
    assert run_cli("log", "--batch", b1).exit_code == 0


def test_diff_of_batches_compares_the_rest_and_says_what_it_could_not(damaged, run_cli):
    b1, b2, _, held = damaged
    for args, flag in (((b1, b2), ()), ((b2, b1), ("--exit-code",)), ((b1, b2), ("--json",))):
        diffed = run_cli("diff", *args, *flag)
        _named_once(diffed, held)
        if flag == ("--json",):
            found = json.loads(diffed.stdout)
            assert found["same"] is False and any(c["path"] == "uri" for c in found["changes"])
            assert found["notes"] == [f"blob {held[:12]} (part of a cohort) cannot be read: the runs' settings and "
                                      "the inputs' identities are not compared"]
        else:
            assert "settings file" in diffed.stdout and "settings2.json" in diffed.stdout
            assert f"(blob {held[:12]} (part of a cohort) cannot be read" in diffed.stdout
            assert "No differences" not in diffed.stdout and "S002" not in diffed.stdout
    same = run_cli("diff", b1, b1, "--json")  # nothing of the cohort read: nothing lost
    assert same.exit_code == 0 and json.loads(same.stdout)["same"] is True, same.output


def test_export_and_replay_write_nothing_without_the_cohort(damaged, run_cli, tmp_path):
    b1, _, member, held = damaged
    for ref in (b1, member):  # a member's export states its batch's cohort too
        target = tmp_path / f"{ref}.bco.json"
        exported = run_cli("export", ref, "-f", "bco", "-o", target)
        _named_once(exported, held)
        assert not target.exists() and exported.stdout == ""
    replayed = run_cli("replay", b1, "--dry-run")
    _named_once(replayed, held)
    assert replayed.stdout == ""


def test_a_lost_inputs_blob_shows_the_rest_of_the_batch(s3_emulator, s3_server, ledger_path, git_repo, run_cli):
    b1 = refreshed_cohort(run_cli, s3_emulator, s3_server, SAMPLES)
    with Ledger.open(ledger_path, create=False) as ledger:
        held = blobs.ref_of(ledger.resolve(b1).stored, blobs.INPUTS)["sha256"]
    tamper(ledger_path, "DELETE FROM blobs WHERE sha256 = ?", params=(held,))
    shown = run_cli("show", b1)
    _named_once(shown, held)
    body = json.loads(shown.stdout[shown.stdout.index("\n{") + 1:])
    assert body["resolution"]["inputs_blob"]["sha256"] == held and "inputs" not in body["resolution"]
    assert body["batch"]["settings_file"]["content"] == "(5 run settings: see --json)"
