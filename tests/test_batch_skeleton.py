"""`runlog submit-batch --generate-cli-skeleton [input|output]` prints what the real
`aws omics start-run-batch --generate-cli-skeleton` prints (the aws CLI is a test dependency),
both made from StartRunBatch's shapes in botocore's model; nothing is sent or written."""

from __future__ import annotations

import json
from typing import Any

from helpers import aws_cli

ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"
DEFAULT = {"workflowId": "1234567", "roleArn": ROLE, "outputUri": "s3://cohort-bucket/out/",
           "parameters": {"sample_name": "x", "input_cram": "s3://cohort-bucket/x.cram",
                          "ref_dict": "s3://cohort-bucket/ref/genome.dict",
                          "ref_fasta": "s3://cohort-bucket/ref/genome.fasta",
                          "ref_fasta_index": "s3://cohort-bucket/ref/genome.fasta.fai"}}
SETTINGS = {"inlineSettings": [{"runSettingId": "NA12878"}]}


def enums_masked(value: Any, picked: list[str]) -> Any:
    """The skeleton with every enum value (the only non-empty strings: botocore's generator
    picks one at random) replaced by "ENUM", the values picked collected in `picked`."""
    if isinstance(value, dict):
        return {k: enums_masked(v, picked) for k, v in value.items()}
    if isinstance(value, list):
        return [enums_masked(v, picked) for v in value]
    if isinstance(value, str) and value:
        picked.append(value)
        return "ENUM"
    return value


def only_members_of(value: Any, reference: Any) -> Any:
    """`value` without the object members `reference` does not have (at every depth)."""
    if isinstance(value, dict) and isinstance(reference, dict):
        return {k: only_members_of(v, reference[k]) for k, v in value.items() if k in reference}
    if isinstance(value, list) and isinstance(reference, list) and reference:
        return [only_members_of(v, reference[0]) for v in value]
    return value


def test_generate_cli_skeleton_input_is_what_the_aws_cli_prints(aws_env, ledger_path, git_repo, run_cli):
    from runlog.servicemodel import service_model

    theirs = aws_cli(aws_env, "omics", "start-run-batch", "--generate-cli-skeleton")
    ours = run_cli("submit-batch", "--generate-cli-skeleton")
    also = run_cli("submit-batch", "--generate-cli-skeleton", "input")
    assert theirs.returncode == 0, theirs.stderr
    assert ours.exit_code == 0 and also.exit_code == 0, ours.output
    their_picks: list[str] = []
    our_picks: list[str] = []
    reference = enums_masked(json.loads(theirs.stdout), their_picks)
    whole = enums_masked(json.loads(ours.stdout), our_picks)
    mine = only_members_of(whole, reference)  # runlog's model may be newer than the aws CLI's: more members
    assert json.dumps(mine, indent=4) == json.dumps(reference, indent=4)  # same members, same order, same nesting
    assert set(json.loads(also.stdout)) == set(whole)
    model = service_model("omics")
    default = model.operation_model("StartRunBatch").input_shape.members["defaultRunSetting"]
    assert list(whole["defaultRunSetting"]) == list(default.members)  # generated from the model's shape
    enums = {value for shape in model.shape_names for value in (getattr(model.shape_for(shape), "enum", None) or [])}
    assert their_picks and set(our_picks) <= enums
    assert aws_env.requests == [] and not ledger_path.exists()


def test_generate_cli_skeleton_output_is_what_the_aws_cli_prints(aws_env, ledger_path, git_repo, run_cli):
    args = ["--default-run-setting", json.dumps(DEFAULT), "--batch-run-settings", json.dumps(SETTINGS)]
    for extra in ([], ["--output", "table"], ["--query", "status", "--output", "text"]):
        theirs = aws_cli(aws_env, "omics", "start-run-batch", "--generate-cli-skeleton", "output", *args, *extra)
        ours = run_cli("submit-batch", "--generate-cli-skeleton", "output", *args, *extra)
        assert theirs.returncode == 0, theirs.stderr
        assert ours.exit_code == 0, ours.output
        assert ours.stdout == theirs.stdout, extra
    assert [r for r in aws_env.requests if r["operation"] == "StartRunBatch"] == []
    assert not ledger_path.exists()
    missing = run_cli("submit-batch", "--generate-cli-skeleton", "output", "--batch-run-settings",
                      json.dumps(SETTINGS))
    assert missing.exit_code == 2 and "missing --default-run-setting" in missing.stderr
    bad = run_cli("submit-batch", "--generate-cli-skeleton", "output", "--batch-run-settings", json.dumps(SETTINGS),
                  "--default-run-setting", json.dumps({**DEFAULT, "logLevel": "LOUD"}))
    assert bad.exit_code == 2 and "LOUD" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_the_aws_cli_skeleton_filled_in_is_a_cli_input_json_for_submit_batch(aws_env, ledger_path, git_repo,
                                                                            run_cli):
    skeleton = aws_cli(aws_env, "omics", "start-run-batch", "--generate-cli-skeleton", cwd=git_repo)
    assert skeleton.returncode == 0, skeleton.stderr
    document = {"batchName": "from-skeleton", "defaultRunSetting": DEFAULT, "batchRunSettings": SETTINGS,
                "tags": {"team": "genomics"}}
    assert set(document) <= set(json.loads(skeleton.stdout))
    (git_repo / "batch.json").write_text(json.dumps(document, indent=4))
    ours = run_cli("submit-batch", "--cli-input-json", "file://batch.json")
    assert ours.exit_code == 0, ours.output
    assert set(json.loads(ours.stdout)) == {"id", "arn", "status", "uuid", "tags"}
