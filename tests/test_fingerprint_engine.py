"""engineSettings (a Nextflow profile, its configuration) decide what a run computes, so they
count in the configuration fingerprint; records fingerprinted before they counted stay valid."""

from __future__ import annotations

import json

from helpers import BASE, COHORT_DEFAULT, NF, another_answer, cohort_setting
from runlog import batch as batchmod
from runlog import fastjson
from runlog import record as rec
from runlog.ledger import Ledger


def _submit(run_cli, emulator, engine: dict) -> None:
    result = run_cli(*NF, "--parameters", json.dumps(BASE), "--engine-settings", json.dumps(engine),
                     "--endpoint-url", emulator.endpoint_url)
    assert result.exit_code == 0, result.output


def _same_as_newest(run_cli) -> list[str]:
    result = run_cli("log", "--json", "--same-as", "@1")
    assert result.exit_code == 0, result.output
    return [e["address"] for e in json.loads(result.stdout)]


def test_runs_differing_only_in_engine_settings_are_not_the_same_configuration(aws_env, ledger_path, git_repo,
                                                                                run_cli):
    _submit(run_cli, aws_env, {"profiles": ["docker"]})
    _submit(run_cli, aws_env, {"profiles": ["conda"]})
    assert len(_same_as_newest(run_cli)) == 1  # conda: alone
    _submit(run_cli, aws_env, {"profiles": ["docker"]})
    with Ledger.open(ledger_path, create=False) as ledger:
        docker = [e.address for e in ledger.entries() if e.record["request"]["engineSettings"]["profiles"] == ["docker"]]
    assert sorted(_same_as_newest(run_cli)) == sorted(docker) and len(docker) == 2


def _legacy_copy(record: dict, request_id: str) -> dict:
    """The record as runlog 0.1.0 would have written it: its fingerprint without engineSettings."""
    copy = json.loads(json.dumps(record))
    copy["request"]["requestId"] = request_id
    another_answer(copy, request_id[-7:])
    legacy = rec.legacy_fingerprint_material(copy)
    assert legacy is not None and "engine" not in legacy
    copy["fingerprint"] = rec.sha256_hex(rec.canonical_json(legacy))
    return copy


def test_a_record_fingerprinted_before_engine_settings_counted_still_verifies(aws_env, ledger_path, git_repo,
                                                                               run_cli):
    _submit(run_cli, aws_env, {"profiles": ["docker"]})
    with Ledger.open(ledger_path, create=False) as ledger:
        (entry,) = ledger.entries()
        assert entry.record["fingerprint"] == rec.fingerprint(entry.record)  # made with engineSettings now
        assert rec.fingerprint(entry.record) != rec.sha256_hex(rec.canonical_json(
            rec.legacy_fingerprint_material(entry.record)))
        ledger.add_record(_legacy_copy(entry.record, "00000000-0000-4000-8000-000000000001"))
    verified = run_cli("verify")
    assert verified.exit_code == 0, verified.output
    with Ledger.open(ledger_path, create=False) as ledger:  # a fingerprint of neither material is named
        wrong = _legacy_copy(ledger.entries()[-1].record, "00000000-0000-4000-8000-000000000002")
        wrong["fingerprint"] = "0" * 64
        ledger.add_record(wrong)
    refused = run_cli("verify")
    assert refused.exit_code == 1 and "wrong configuration fingerprint" in refused.output, refused.output


def test_a_member_made_before_engine_settings_counted_passes_the_member_check(aws_env, ledger_path, git_repo,
                                                                              run_cli):
    default = {**COHORT_DEFAULT, "engineSettings": {"profiles": ["docker"]}}
    started = run_cli("submit-batch", "--default-run-setting", json.dumps(default), "--batch-run-settings",
                      json.dumps({"inlineSettings": [cohort_setting("S1")]}))
    assert started.exit_code == 0, started.output
    aws_env.batch_rate = 100
    aws_env.advance(300)
    assert run_cli("refresh", json.loads(started.stdout)["id"]).exit_code == 0
    with Ledger.open(ledger_path, create=False) as ledger:
        (batch,) = [e for e in ledger.entries() if e.kind == "batch"]
        (member,) = [e for e in ledger.entries() if e.kind == "member"]
        batch_record, member_record = ledger.get(batch.address).record, member.record
    assert member_record["request"]["engineSettings"] == {"profiles": ["docker"]}
    legacy = {**member_record, "fingerprint": rec.sha256_hex(rec.canonical_json(
        rec.legacy_fingerprint_material(member_record)))}
    forged = {**member_record, "fingerprint": "0" * 64}
    bodies = {name: fastjson.dumps(body) for name, body in (("now", member_record), ("legacy", legacy),
                                                            ("forged", forged))}
    unmade = batchmod.unmade_members(batch_record, batch.address, list(bodies.items()))
    assert set(unmade) == {"forged"}, unmade
