"""The Python API's `cancel`, `refresh` of a batch and `report`, as `runlog cancel`, `runlog
refresh` and `runlog report` do them:
against the emulator over HTTP, with real ledger files and a real git repository."""

from __future__ import annotations

import pytest

import runlog
from runlog.ledger import Ledger

ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"
DEFAULT = {"workflowId": "1234567", "roleArn": ROLE, "outputUri": "s3://cohort-bucket/out/",
           "parameters": {"ref_dict": "s3://cohort-bucket/ref/genome.dict",
                          "ref_fasta": "s3://cohort-bucket/ref/genome.fasta",
                          "ref_fasta_index": "s3://cohort-bucket/ref/genome.fasta.fai"}}


def settings(*samples: str) -> dict:
    return {"inlineSettings": [{"runSettingId": s, "parameters": {"sample_name": s,
                                                                  "input_cram": f"s3://cohort-bucket/{s}.cram"}}
                               for s in samples]}


def sources(ledger_path, batch_id: str) -> list[str]:
    with Ledger.open(ledger_path, create=False) as ledger:
        return [o["source"] for o in ledger.observations(ledger.resolve(batch_id).address)]


def test_cancel_asks_the_service_and_records_it_without_removing_anything(aws_env, ledger_path, git_repo):
    aws_env.batch_rate = 1  # one run started a second: the batch is still submitting when cancelled
    with runlog.Runlog(ledger_path) as rl:
        batch = rl.start_run_batch(defaultRunSetting=DEFAULT, batchRunSettings=settings("S1", "S2", "S3"))
        done = rl.cancel(batch["id"])
        assert done["action"] == "CancelRunBatch" and done["status"] in ("STOPPING", "CANCELLED")
        with pytest.raises(runlog.ServiceError) as refused:  # a second cancel: refused, and recorded too
            rl.cancel(batch["id"])
        assert refused.value.operation == "CancelRunBatch"
        single = rl.start_run(workflowId="1234567", workflowOwnerId="123456789012", roleArn=ROLE,
                              outputUri="s3://your-bucket/results/", parameters={"param1": "value1", "param2": "value2"})
        with pytest.raises(runlog.UsageError, match="not a batch: `cancel\\(\\)` cancels a batch or deletes its runs"):
            rl.cancel(single["id"])
    assert sources(ledger_path, batch["id"]).count("CancelRunBatch") == 2
    with Ledger.open(ledger_path, create=False) as ledger:
        assert [e.kind for e in ledger.entries()] == ["submit", "batch"]  # nothing removed, nothing added


def test_refresh_records_a_batchs_member_runs_as_runlog_refresh_does(aws_env, ledger_path, git_repo):
    with runlog.Runlog(ledger_path) as rl:
        batch = rl.start_run_batch(defaultRunSetting=DEFAULT, batchRunSettings=settings("S1", "S2"))
        aws_env.advance(60)  # both runs submitted and finished
        [change] = rl.refresh([batch["id"]])  # docs/python-api.md: "its member runs, as they appear"
        assert "error" not in change, change
        assert change["batch_id"] == batch["id"] and change["members_added"] == 2
        with Ledger.open(ledger_path, create=False) as ledger:
            assert sorted(e.kind for e in ledger.entries()) == ["batch", "member", "member"]
        aws_env.advance(60)
        [later] = rl.refresh()  # every unfinished run and batch: the batch, refreshed as a batch
        assert later["batch_id"] == batch["id"] and later["status"] == "PROCESSED" and "error" not in later
        assert rl.refresh() == []  # a finished batch is left alone


def test_report_writes_the_file_and_refuses_what_it_may_not_replace(three_runs, ledger_path, tmp_path):
    target = tmp_path / "runs.html"
    with runlog.Runlog(ledger_path) as rl:
        covered = rl.report(target)
        assert len(covered.runs) == 3 and covered.verify.ok
        page = target.read_text(encoding="utf-8")
        assert all(entry.run_id in page for entry in three_runs)
        with pytest.raises(runlog.UsageError, match="already exists; add `force=True`"):
            rl.report(target)
        one = rl.report(target, three_runs[0].run_id, force=True)
        assert [entry.address for entry in one.runs] == [three_runs[0].address]
        link = tmp_path / "link.html"
        link.symlink_to(target)
        with pytest.raises(runlog.UsageError, match="symbolic link"):
            rl.report(link, force=True)
        with pytest.raises(runlog.UsageError, match="`since`"):
            rl.report(tmp_path / "later.html", since="last tuesday")
    assert not (tmp_path / "later.html").exists()
