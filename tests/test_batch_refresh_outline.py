"""`runlog refresh BATCH` resolves the batch as its outline (Ledger.resolve(outline=True),
issue 14): neither its settings file's content nor its runs' input identities, which grow with
the cohort, are read into memory to find it; what the refresh records is unchanged."""

from __future__ import annotations

import json

from helpers import refreshed_cohort
from runlog.ledger import Ledger
from runlog.observe import refresh_targets


def test_a_batch_ref_resolves_to_its_outline_and_the_refresh_records_every_member(
        s3_emulator, s3_server, ledger_path, git_repo, run_cli):
    samples = [f"S{i:03d}" for i in range(5)]
    batch_id = refreshed_cohort(run_cli, s3_emulator, s3_server, samples)
    with Ledger.open(ledger_path, create=False) as ledger:
        (entry,) = refresh_targets(ledger, [batch_id])
        whole = ledger.get(entry.address)
        view = ledger.resolve(batch_id, whole=False)
        assert entry.record == ledger.batch_outline(entry.address)
        assert "resolution" not in entry.record and "content" not in entry.record["batch"]["settings_file"]
        # the body holds the cohort by reference (runlog/blobs.py): the view is the body, the outline less
        assert len(entry.body) < len(view.body) == len(whole.body)
        assert len(whole.record["batch"]["settings_file"]["content"]) == len(samples)
        assert (entry.address, entry.batch_id, entry.status) == (view.address, view.batch_id, view.status)
        members = ledger.member_addresses(entry.batch_id, entry.address)
    assert len(members) == len(samples)
    again = run_cli("refresh", batch_id)
    assert again.exit_code == 0 and "0 new member record(s)" in again.stdout, again.output
    shown = json.loads(run_cli("show", batch_id, "--json").stdout)
    assert shown["batch"]["run_status"] == {"COMPLETED": len(samples)}
    assert run_cli("verify", "--no-remote").exit_code == 0
