"""`runlog submit-batch` and member runs: the CLI, real ledger files, a real git repository,
the emulator over HTTP and moto's S3 for s3UriSettings files."""

from __future__ import annotations

import json

import pytest

from runlog.ledger import Ledger

ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"
WORKFLOW = "1234567"  # cram-to-bam: sample_name, input_cram, ref_dict, ref_fasta, ref_fasta_index
BUCKET = "cohort-bucket"
DEFAULT = {"workflowId": WORKFLOW, "roleArn": ROLE, "outputUri": "s3://cohort-bucket/out/",
           "parameters": {"ref_dict": "s3://cohort-bucket/ref/genome.dict",
                          "ref_fasta": "s3://cohort-bucket/ref/genome.fasta",
                          "ref_fasta_index": "s3://cohort-bucket/ref/genome.fasta.fai"},
           "runTags": {"project": "cohort"}}


def setting(sample: str, **more) -> dict:
    return {"runSettingId": sample, "name": f"align-{sample}",
            "parameters": {"sample_name": sample, "input_cram": f"s3://cohort-bucket/crams/{sample}.cram"}, **more}


def inline(*samples: str) -> str:
    return json.dumps({"inlineSettings": [setting(s) for s in samples]})


def batch_args(settings: str, default: dict | None = None, *more) -> list[str]:
    return ["submit-batch", "--batch-name", "cohort-1", "--default-run-setting", json.dumps(default or DEFAULT),
            "--batch-run-settings", settings, *more]


def sent(emulator, operation: str = "StartRunBatch") -> list[dict]:
    return [r for r in emulator.requests if r["operation"] == operation]


def attempts(ledger_path) -> int:
    if not ledger_path.exists():
        return 0
    with Ledger.open(ledger_path, create=False) as ledger:
        return ledger.conn.execute("SELECT count(*) FROM attempts").fetchone()[0]


def records(ledger_path, kind: str | None = None) -> list[dict]:
    with Ledger.open(ledger_path, create=False) as ledger:
        return [e.record for e in ledger.entries() if kind is None or e.kind == kind]


def assert_refused(result, emulator, ledger_path, *words):
    """Exit 2, one line on stderr naming `words`; nothing sent, nothing written."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("runlog: error: "), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert sent(emulator) == []
    assert attempts(ledger_path) == 0
    assert result.stdout == ""


# -- bad input: one line, nothing sent, nothing written ------------------------------------------

BAD = [
    ("both", json.dumps({"inlineSettings": [setting("a")], "s3UriSettings": "s3://cohort-bucket/s.json"}),
     ["exactly one of inlineSettings and s3UriSettings", "both"]),
    ("neither", "{}", ["exactly one of inlineSettings and s3UriSettings", "neither"]),
    ("over-100", inline(*[f"s{i}" for i in range(101)]), ["101 inlineSettings", "at most 100"]),
    ("duplicate", inline("NA12878", "NA12891", "NA12878"), ["runSettingId 'NA12878' appears twice", "item 2"]),
    ("no-id", json.dumps({"inlineSettings": [{"name": "x"}]}), ["inlineSettings[0] has no runSettingId"]),
    ("missing-parameter", json.dumps({"inlineSettings": [setting("ok"), {"runSettingId": "NA12891",
                                                                          "parameters": {"sample_name": "x"}}]}),
     ["run setting 'NA12891'", "missing required parameter(s) input_cram"]),
    ("unknown-parameter", json.dumps({"inlineSettings": [setting("NA1", parameters={
        "sample_name": "x", "input_cram": "s3://b/x.cram", "bogus": 1})]}),
     ["run setting 'NA1'", "unknown parameter(s) bogus"]),
]


@pytest.mark.parametrize("settings,words", [(s, w) for _, s, w in BAD], ids=[i for i, _, _ in BAD])
def test_bad_batch_input_sends_nothing(settings, words, aws_env, ledger_path, git_repo, run_cli):
    result = run_cli(*batch_args(settings), "--resolve-timeout", "5")
    assert_refused(result, aws_env, ledger_path, *words)


def test_missing_default_setting_and_role(aws_env, ledger_path, git_repo, run_cli):
    result = run_cli("submit-batch", "--batch-run-settings", inline("a"))
    assert_refused(result, aws_env, ledger_path, "missing --default-run-setting")
    result = run_cli("submit-batch", "--default-run-setting", json.dumps({"workflowId": WORKFLOW}),
                     "--batch-run-settings", inline("a"))
    assert_refused(result, aws_env, ledger_path, "--default-run-setting: missing roleArn")


@pytest.mark.parametrize("body,words", [
    (b'{"runSettingId": "a"}', ["is not a JSON list of run settings", "object"]),
    (b"[1, 2]", ["item[0] is not a JSON object"]),
    (b'[{"runSettingId": "a"}, {"runSettingId": "a"}]', ["runSettingId 'a' appears twice"]),
    (b'[{"runSettingId": "a"}, {"runSettingId": NaN}]', ["is not a JSON list of run settings", "NaN"]),
    (b"\xff\xfe[]", ["not UTF-8"]),
    (b'[{"runSettingId": "a", "runSettingId": "b"}]', ["is not a JSON list of run settings", "runSettingId"]),
], ids=["object", "numbers", "duplicate", "nan", "not-utf8", "duplicate-key"])
def test_bad_settings_file_sends_nothing(body, words, aws_env, s3_server, ledger_path, git_repo, run_cli):
    s3_server.create_bucket(Bucket=BUCKET)
    s3_server.put_object(Bucket=BUCKET, Key="cohort/settings.json", Body=body)
    uri = f"s3://{BUCKET}/cohort/settings.json"
    result = run_cli(*batch_args(json.dumps({"s3UriSettings": uri})))
    assert_refused(result, aws_env, ledger_path, uri, *words)
