"""Session 24's changes, each as a user sees it through the CLI against the emulator."""

from __future__ import annotations

import json
import uuid

import pytest

from helpers import REMOTE, SEED_1, pull_json, push_json, pushed_cohort, record_key
from runlog import record as rec
from runlog.ledger import INDEX_COLUMNS, Ledger, index_columns


def _forged(body: str, change) -> tuple[str, bytes]:
    """A record as someone who may write the team bucket would rewrite it: the same run or
    batch (the service's answer kept), another requestId, `change` applied; schema-valid, its
    fingerprint recomputed. (address, canonical JSON)."""
    forged = json.loads(body)
    forged["request"]["requestId"] = str(uuid.uuid4())
    change(forged)
    forged["fingerprint"] = rec.fingerprint(forged)
    data = rec.canonical_json(forged)
    return rec.sha256_hex(data), data


def _other_input(record: dict) -> None:
    record["request"]["batchRunSettings"]["inlineSettings"][0]["parameters"]["input_cram"] = \
        "s3://cohort-bucket/crams/FORGED.cram"


def _addresses(path) -> set[str]:
    with Ledger.open(path, create=False) as ledger:
        return ledger.addresses()


def test_pull_refuses_a_second_record_of_one_batch(aws_env, bucket, ledger_path, git_repo, run_cli, tmp_path):
    """A forged "submitted" record of a batch another record started (same batch id, uuid and
    ARN, another requestId and cohort) was pulled and verified, and `refresh` then made the
    batch's runs members of it too. One StartRunBatch answer is one request: pull now refuses
    it, naming the record that started the batch."""
    batch, _ = pushed_cohort(run_cli, aws_env, ledger_path, "S1", "S2")
    address, body = _forged(batch.body, _other_input)
    bucket.put_object(Bucket="lab-provenance", Key=record_key(address), Body=body)

    # the ledger that started the batch keeps its record and refuses the forged one
    code, pulled = pull_json(run_cli, ledger_path)
    assert code == 1, pulled
    (why,) = [item["why"] for item in pulled["refused"] if item["key"] == record_key(address)]
    assert f"which record {batch.address} (in the local ledger) started" in why, why
    assert "StartRunBatch" in why
    assert address not in _addresses(ledger_path)

    # a new ledger receives both in one pull: it keeps one of them (the older, then the lower
    # address, as every ledger does), names the other, and `show B` is not ambiguous
    other = tmp_path / "other.db"
    code, pulled = pull_json(run_cli, other)
    assert code == 1, pulled
    kept, left = sorted([(batch.created, batch.address), (json.loads(body)["created"], address)])
    held = _addresses(other)
    assert kept[1] in held and left[1] not in held
    assert any(left[1] in item["why"] and "one of the two records was not written by runlog" in item["why"]
               for item in pulled["refused"]), pulled["refused"]
    shown = run_cli("--ledger", other, "show", batch.batch_id, "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["address"] == kept[1]
    assert run_cli("--ledger", other, "verify", "--no-remote").exit_code == 0


def test_pull_refuses_a_second_record_of_one_run(aws_env, bucket, ledger_path, git_repo, run_cli, tmp_path):
    """The same for a single run: a second "submitted" record of a run (another requestId and
    parameters) is refused, and the ledger that pulls it keeps the one it holds."""
    submitted = run_cli(*SEED_1, "--endpoint-url", aws_env.endpoint_url)
    assert submitted.exit_code == 0, submitted.output
    run_id = json.loads(submitted.stdout)["id"]
    push_json(run_cli, ledger_path, "--objects")
    with Ledger.open(ledger_path, create=False) as ledger:
        (original,) = ledger.entries()

    def other_parameters(record: dict) -> None:
        record["request"]["parameters"] = {"forged": "s3://elsewhere/in.fastq"}

    address, body = _forged(original.body, other_parameters)
    bucket.put_object(Bucket="lab-provenance", Key=record_key(address), Body=body)
    code, pulled = pull_json(run_cli, ledger_path)
    assert code == 1, pulled
    (why,) = [item["why"] for item in pulled["refused"] if item["key"] == record_key(address)]
    assert f"run uuid {original.run_uuid}" in why and "StartRun answer" in why, why
    assert address not in _addresses(ledger_path)
    shown = run_cli("show", run_id, "--json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["address"] == original.address


def test_verify_names_a_second_record_of_one_run_in_the_file(aws_env, ledger_path, git_repo, run_cli):
    """A second starter written into the ledger file (through the library, so that its chain
    and seal are sound) is named by whole-ledger `verify` and by `verify REF`, exit 1."""
    submitted = run_cli(*SEED_1, "--endpoint-url", aws_env.endpoint_url)
    assert submitted.exit_code == 0, submitted.output
    with Ledger.open(ledger_path, create=False) as ledger:
        (original,) = ledger.entries()
    assert run_cli("verify").exit_code == 0

    def other_name(record: dict) -> None:
        record["request"]["name"] = "forged"

    address, body = _forged(original.body, other_name)
    columns = index_columns(json.loads(body))
    with Ledger.open(ledger_path, create=False) as ledger:
        assert ledger.add_received_records([(address, body, tuple(columns[name] for name in INDEX_COLUMNS))]) == 1

    whole = run_cli("verify", "--json")
    assert whole.exit_code == 1, whole.output
    problems = json.loads(whole.stdout)["problems"]
    assert [problem["kind"] for problem in problems] == ["started"], problems
    assert f"record #2: it says it started run uuid {original.run_uuid}" in problems[0]["message"]
    assert f"which record {original.address} (#1) started" in problems[0]["message"]
    one = run_cli("verify", address[:12])
    assert one.exit_code == 1 and "it says it started run uuid" in one.output, one.output


@pytest.mark.parametrize("forge", ["run", "run and batch"])
def test_streamed_pull_refuses_second_records_from_a_pack(aws_env, bucket, ledger_path, git_repo, run_cli,
                                                           tmp_path, forge):
    """Through packs (a pull that appends while they arrive): ledger A pushes a run and a
    batch it started; ledger B, a copy of A's file with a later second record of each written
    into it, pushes those in a pack of its own. A new ledger keeps A's records and refuses B's
    second ones; A refuses them too. (A refused batch record makes the streamed inserts start
    again from what pull kept: "run" alone is refused while the pack's records are streamed.)"""
    import shutil

    submitted = run_cli(*SEED_1, "--endpoint-url", aws_env.endpoint_url)
    assert submitted.exit_code == 0, submitted.output
    batch, _ = pushed_cohort(run_cli, aws_env, ledger_path, "S1", "S2")
    with Ledger.open(ledger_path, create=False) as ledger:
        (run,) = ledger.entries(where="kind = 'submit'")

    def later(change):
        def apply(record: dict) -> None:
            record["created"] = "2099-01-01T00:00:00.000000Z"
            change(record)
        return apply

    def other_name(record: dict) -> None:
        record["request"]["name"] = "forged"

    b = tmp_path / "b.db"
    shutil.copy(ledger_path, b)
    forged = [_forged(run.body, later(other_name))]
    if forge == "run and batch":
        forged.append(_forged(batch.body, later(_other_input)))
    with Ledger.open(b, create=False) as ledger:
        rows = [(address, body, tuple(index_columns(json.loads(body))[name] for name in INDEX_COLUMNS))
                for address, body in forged]
        assert ledger.add_received_records(rows) == len(forged)
    push_json(run_cli, b)
    packed = f"{REMOTE}-packed"  # all of B in packs: a new ledger pulls it while the packs arrive
    assert run_cli("--ledger", b, "push", packed).exit_code == 0

    for path, remote in ((tmp_path / "c.db", REMOTE), (ledger_path, REMOTE), (tmp_path / "d.db", packed)):
        pulled_now = run_cli("--ledger", path, "pull", remote, "--json")
        code, pulled = pulled_now.exit_code, json.loads(pulled_now.stdout)
        assert code == 1, pulled
        held = _addresses(path)
        assert {run.address, batch.address} <= held and not {address for address, _ in forged} & held
        whys = " ".join(item["why"] for item in pulled["refused"])
        assert f"which record {run.address}" in whys, whys
        assert (f"which record {batch.address}" in whys) == (forge == "run and batch"), whys
        assert run_cli("--ledger", path, "verify", "--no-remote").exit_code == 0
