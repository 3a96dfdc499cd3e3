"""Review 11b findings on today's changes: each test fails on the commit before its fix. The
emulator over HTTP, moto's S3 server, real ledger files, the CLI."""

from __future__ import annotations

import json

import pytest

from helpers import pushed_cohort, put_forged_member
from helpers import submit_cohort as submit_batch
from runlog.ledger import Ledger


def test_a_forged_member_pulled_before_its_batch_record_is_refused(aws_env, bucket, ledger_path, git_repo, run_cli,
                                                                   tmp_path):
    """pull checked a member only against a batch record received in the same pull or held:
    a member whose batch record is in neither was taken unchecked, and when a later pull
    brought the batch record, the ledger adopted the member into the batch (show B counted it,
    export stated its input) without any check. A member comes with or after its batch record."""
    from helpers import REMOTE, push_json, record_key

    batch, member = pushed_cohort(run_cli, aws_env, ledger_path, "NA12878")
    # the member objects are on the remote before the batch record's (an interrupted push, or a
    # forger who writes first)
    bucket.delete_object(Bucket="lab-provenance", Key=record_key(batch.address))
    forged_address = put_forged_member(bucket, member.body)

    other = tmp_path / "other.db"
    first = run_cli("--ledger", other, "pull", REMOTE)
    push_json(run_cli, ledger_path, "--objects")  # the batch record's object is there again
    second = run_cli("--ledger", other, "pull", REMOTE)
    with Ledger.open(other, create=False) as ledger:
        held = ledger.addresses()
    assert batch.address in held and member.address in held, (first.output, second.output)
    assert forged_address not in held, (first.output, second.output)
    assert first.exit_code == 1 and record_key(forged_address) in first.stderr, first.output
    assert second.exit_code == 1 and record_key(forged_address) in second.stderr, second.output
    assert run_cli("--ledger", other, "verify", "--no-remote").exit_code == 0


@pytest.mark.parametrize(("where", "body"), [("kind = 'member'", "not json {"), ("kind = 'member'", "[]"),
                                             ("kind = 'member'", '{"batch": "x"}'), ("kind = 'batch'", "{}"),
                                             ("kind = 'batch'", '{"request": []}')])
def test_verify_names_a_batch_or_member_body_of_another_shape_instead_of_stopping(aws_env, ledger_path, git_repo,
                                                                                 run_cli, where, body):
    """verify's member check (check_members_made) rebuilt each member from its batch record and
    stopped with an internal error (exit 70) on a member body that is not JSON, or a batch or
    member body that is JSON of another shape: verify names a tampered record, exit 1."""
    from helpers import tamper

    batch_id = submit_batch(run_cli, "NA12878", "NA12891")
    aws_env.batch_rate = 100
    aws_env.advance(300)
    assert run_cli("refresh", batch_id).exit_code == 0
    tamper(ledger_path, f"UPDATE records SET body = '{body}' WHERE seq = (SELECT min(seq) FROM records WHERE {where})")
    result = run_cli("verify")
    assert result.exit_code == 1, result.output
    assert "internal error" not in result.output


def test_pull_of_a_member_of_a_batch_record_with_an_odd_run_setting_id_does_not_stop(
        aws_env, bucket, ledger_path, git_repo, run_cli, tmp_path):
    """A schema-valid batch record whose runSettingId is no text (an object) and a member
    naming it, written to the team bucket: pull's member check stopped with an internal error
    (TypeError: unhashable) and took nothing; the member is refused, the rest taken."""
    from helpers import REMOTE, another_answer, record_key
    from runlog import record as rec

    batch, member = pushed_cohort(run_cli, aws_env, ledger_path, "NA12878")
    odd = json.loads(batch.body)
    odd["request"]["requestId"] = "f" * 8
    another_answer(odd)
    odd["request"]["batchRunSettings"]["inlineSettings"][0]["runSettingId"] = {"odd": 1}
    odd["fingerprint"] = rec.fingerprint(odd)
    odd_body = rec.canonical_json(odd)
    odd_address = rec.sha256_hex(odd_body)
    forged = json.loads(member.body)
    forged["batch"].update(record=odd_address, batch_id=odd["outcome"]["response"]["id"],
                           batch_arn=odd["outcome"]["response"]["arn"])
    forged["outcome"]["response"]["id"] = "4209999"
    forged["fingerprint"] = rec.fingerprint(forged)
    forged_body = rec.canonical_json(forged)
    forged_address = rec.sha256_hex(forged_body)
    for address, body in ((odd_address, odd_body), (forged_address, forged_body)):
        bucket.put_object(Bucket="lab-provenance", Key=record_key(address), Body=body)

    other = tmp_path / "other.db"
    pulled = run_cli("--ledger", other, "pull", REMOTE)
    assert "internal error" not in pulled.output, pulled.output
    assert pulled.exit_code == 1 and record_key(forged_address) in pulled.stderr, pulled.output
    with Ledger.open(other, create=False) as ledger:
        held = ledger.addresses()
    assert member.address in held and forged_address not in held


@pytest.mark.xfail(strict=True, reason="gap left open (docs/team-ledger.md): a member naming a run setting id the batch "
                                       "record does not have, made as runlog makes one, is taken as the service's word")
def test_a_member_of_a_run_setting_the_batch_does_not_have_is_refused(aws_env, bucket, ledger_path, git_repo, run_cli,
                                                                      tmp_path):
    """A member for a run setting id the batch record does not hold, made exactly as
    batch.member_record makes one for such a ListRunsInBatch item (the default setting alone,
    with the warning that its own settings are unknown), passes pull's and verify's member
    check: `show B` then counts 2 members for a batch of 1 run. Refusing it would also refuse
    a member refresh made when the service read a settings file other than the one pinned."""
    from helpers import REMOTE, push_json, record_key
    from runlog import fastjson
    from runlog import record as rec
    from runlog.batch import member_record

    batch_id = submit_batch(run_cli, "NA12878")
    aws_env.batch_rate = 100
    aws_env.advance(300)
    assert run_cli("refresh", batch_id).exit_code == 0
    push_json(run_cli, ledger_path, "--objects")
    with Ledger.open(ledger_path, create=False) as ledger:
        batch = ledger.entries(where="kind = 'batch'")[0]
    forged = member_record(json.loads(batch.body), batch.address, {"runSettingId": "FAKE", "runId": "4209999"})
    body = fastjson.dumps(forged)
    bucket.put_object(Bucket="lab-provenance", Key=record_key(rec.sha256_hex(body)), Body=body)
    other = tmp_path / "other.db"
    pulled = run_cli("--ledger", other, "pull", REMOTE)
    shown = json.loads(run_cli("--ledger", other, "show", batch_id, "--json").stdout)["batch"]
    assert pulled.exit_code == 1 and shown["members_recorded"] == 1, (pulled.output, shown)
