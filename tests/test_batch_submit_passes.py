"""submit-batch's passes over a cohort made at C speed, and the seal of a batch's rows made
without reading the row back: each must answer what the walk it spares answers (the same
URIs in the same order, the same first run named, the same seal), and the user must see the
same thing (exit code, the one-line error, a ledger that verify passes)."""

from __future__ import annotations

import json
import random

import pytest

from helpers import COHORT_DEFAULT, tamper
from runlog import batch
from runlog.errors import TemplateMismatch, UsageError
from runlog.ledger import SEALED, Ledger, row_seal, table_rows
from runlog.resolve import input_uris

BUCKET = "cohort-bucket"
URI = f"s3://{BUCKET}/cohort/settings.json"
TEMPLATE = {"sample_name": {}, "input_cram": {}, "ref_dict": {}, "ref_fasta": {}, "ref_fasta_index": {},
            "coverage": {"optional": True}, "extra": {"optional": True}}


def reference_uris(default: dict, settings: list) -> list[str]:
    """The general walk over every run's parameters, as resolve.input_uris walks one run's."""
    found: dict[str, None] = dict.fromkeys(input_uris(default.get("parameters")))
    for setting in settings:
        found.update(dict.fromkeys(input_uris(setting.get("parameters"))))
    return list(found)


def reference_first_misfit(default: dict, settings: list) -> int | None:
    """The index of the first run whose merged parameter names do not fit TEMPLATE, walking every run."""
    required = {name for name, spec in TEMPLATE.items() if not spec.get("optional")}
    for index, setting in enumerate(settings):
        given = set(default.get("parameters") or {}).union(setting.get("parameters") or ())
        if not (required <= given <= set(TEMPLATE)):
            return index
    return None


def random_value(rng: random.Random, depth: int = 0):
    kind = rng.choice(["uri", "omics", "text", "int", "float", "bool", "none"] + (["list", "dict"] if depth < 2 else []))
    if kind == "uri":
        return f"s3://{BUCKET}/crams/S{rng.randrange(50):03d}.cram"  # repeats: each URI once, first place kept
    if kind == "omics":
        return f"omics://123456789012.storage.us-west-2.amazonaws.com/55/readSet/{rng.randrange(9)}"
    if kind == "text":
        return rng.choice(["", "s3:/not-a-uri", "lane:1", "S3://upper"])
    if kind == "int":
        return rng.randrange(-5, 5)
    if kind == "float":
        return rng.random()
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "none":
        return None
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {f"k{i}": random_value(rng, depth + 1) for i in range(rng.randrange(3))}


def random_cohort(rng: random.Random, count: int, flat: bool) -> list[dict]:
    settings = []
    for index in range(count):
        parameters = {"sample_name": f"S{index:04d}", "input_cram": f"s3://{BUCKET}/crams/S{index:04d}.cram"}
        for name in rng.sample(["coverage", "extra", "bogus"], rng.randrange(3)):
            parameters[name] = random_value(rng, 2 if flat else 0)
        if rng.random() < 0.05:
            del parameters["input_cram"]
        setting = {"runSettingId": f"S{index:04d}", "parameters": parameters}
        if rng.random() < 0.03:
            del setting["parameters"]
        elif rng.random() < 0.03:
            setting["parameters"] = {}
        settings.append(setting)
    return settings


@pytest.mark.parametrize("seed", range(40))
def test_the_runs_input_uris_are_those_the_general_walk_finds_in_the_same_order(seed):
    rng = random.Random(seed)
    settings = random_cohort(rng, rng.randrange(1, 60), flat=seed % 2 == 0)
    assert batch.settings_input_uris(COHORT_DEFAULT, settings) == reference_uris(COHORT_DEFAULT, settings)


def test_flat_parameters_take_the_pass_without_a_loop_and_nested_ones_the_walk():
    flat = [{"runSettingId": "a", "parameters": {"x": "s3://b/k", "n": 3, "f": 0.5, "t": True, "z": None}},
            {"runSettingId": "b"}, {"runSettingId": "c", "parameters": {}}]
    assert batch._flat_input_uris(flat) == ["s3://b/k"]
    nested = [{"runSettingId": "a", "parameters": {"x": ["s3://b/k"], "y": "s3://b/j"}}]
    assert batch._flat_input_uris(nested) is None  # walked: the list's URI comes first
    assert batch.settings_input_uris({}, nested) == ["s3://b/k", "s3://b/j"]
    listed = [{"runSettingId": "a", "parameters": ["s3://b/k"]}]
    assert batch._flat_input_uris(listed) is None
    assert batch.settings_input_uris({}, listed) == ["s3://b/k"]


@pytest.mark.parametrize("seed", range(40))
def test_the_first_run_that_does_not_fit_is_the_one_a_walk_over_every_run_finds(seed):
    rng = random.Random(1000 + seed)
    default = {**COHORT_DEFAULT, "parameters": {k: v for k, v in COHORT_DEFAULT["parameters"].items()
                                                if rng.random() < 0.9}}
    settings = random_cohort(rng, rng.randrange(1, 80), flat=True)
    expected = reference_first_misfit(default, settings)
    workflow = {"id": "1", "name": "w", "parameter_template": TEMPLATE}
    if expected is None:
        batch.check_templates(workflow, default, settings)
        return
    with pytest.raises(TemplateMismatch) as caught:
        batch.check_templates(workflow, default, settings)
    assert f"(item {expected})" in str(caught.value)


def test_parameters_that_are_not_an_object_are_walked_and_named():
    workflow = {"id": "1", "name": "w", "parameter_template": TEMPLATE}
    settings = [{"runSettingId": "a", "parameters": {"sample_name": "a", "input_cram": "s3://b/a"}},
                {"runSettingId": "b", "parameters": ["sample_name", "input_cram", "bogus"]}]
    assert batch._name_sets(settings) is None
    with pytest.raises(TemplateMismatch, match=r"'b' \(item 1\).*unknown parameter\(s\) bogus"):
        batch.check_templates(workflow, COHORT_DEFAULT, settings)


@pytest.mark.parametrize("bad,words", [
    ({"runSettingId": "S0001"}, "item[3]: runSettingId 'S0001' appears twice (items 1 and 3)"),
    ({"runSettingId": ""}, "item[3] has no runSettingId"),
    ({"runSettingId": 7}, "item[3]: runSettingId is a number; it must be a non-empty string"),
    (["runSettingId"], "item[3] is not a JSON object"),
    ({"runSettingId": "S3", "priority": 1.5}, "item[3] (runSettingId 'S3'): priority must be a whole number, got a number"),
    ({"runSettingId": "S3", "priority": True}, "priority must be a whole number, got true/false"),
    ({"runSettingId": "S3", "outputBucketOwnerId": None}, "outputBucketOwnerId must be a string, got null"),
    ({"runSettingId": "S3", "parameters": []}, "parameters is a JSON array; it must be a JSON object"),
    ({"runSettingId": "S3", "runTags": {"a": "b", "c": None}}, 'runTags["c"] must be a string, got null'),
    ({"runSettingId": "S3", "Name": "x"}, "'Name' is not a member of a run setting"),
])
def test_a_bad_run_setting_among_good_ones_is_named(bad, words):
    settings = [{"runSettingId": f"S{i:04d}"} for i in range(3)] + [bad]
    with pytest.raises(UsageError) as caught:
        batch.check_settings(settings, "settings file s3://b/k item")
    assert words in str(caught.value)
    batch.check_settings(settings[:3], "settings file s3://b/k item")  # the good ones pass


def reference_first_bad_type(settings: list) -> int | None:
    """The index of the first run setting with a member that is not InlineSetting's or not of its
    type, each checked on its own with startrun.type_errors (botocore's types)."""
    from runlog.startrun import type_errors

    for index, setting in enumerate(settings):
        if type_errors("InlineSetting", setting, "s") or not all(
                isinstance(setting.get(key, {}), dict) for key in ("parameters", "runTags")):
            return index
    return None


GOOD_MEMBERS = {"name": "align", "outputUri": "s3://b/out/", "priority": 7, "parameters": {"n": [1, None]},
                "outputBucketOwnerId": "123456789012", "runTags": {"sample": "S"}, "engineSettings": {"x": 1}}
BAD_MEMBERS = {"name": [5, None, {}], "outputUri": [[], 1.5], "priority": ["high", 1.0, False, None],
               "parameters": [[], "x", None], "outputBucketOwnerId": [123456789012], "runTags": [{"a": 1}, [], "t"],
               "Priority": [1], "cacheId": ["1"]}


@pytest.mark.parametrize("seed", range(40))
def test_the_first_run_setting_of_a_wrong_type_is_the_one_a_walk_over_every_run_finds(seed):
    """The quick pass over each member's values and the walk agree: a cohort passes only when
    every run setting passes on its own, and the one named is the first that does not."""
    rng = random.Random(2000 + seed)
    settings = [{"runSettingId": f"S{i:04d}", **{k: v for k, v in GOOD_MEMBERS.items() if rng.random() < 0.5}}
                for i in range(rng.randrange(1, 60))]
    for _ in range(rng.choice([0, 0, 1, 2])):
        member = rng.choice(list(BAD_MEMBERS))
        rng.choice(settings)[member] = rng.choice(BAD_MEMBERS[member])
    expected = reference_first_bad_type(settings)
    if expected is None:
        batch.check_settings(settings, "settings file s3://b/k item")
        return
    with pytest.raises(UsageError) as caught:
        batch.check_settings(settings, "settings file s3://b/k item")
    assert f"item[{expected}] (runSettingId 'S{expected:04d}')" in str(caught.value)


def test_a_batchs_attempt_and_record_are_sealed_as_their_whole_rows_and_verify_passes(
        s3_server, s3_emulator, ledger_path, git_repo, run_cli):
    settings = [{"runSettingId": f"S{i:04d}", "name": f"align-S{i:04d}",
                 "parameters": {"sample_name": f"S{i:04d}", "input_cram": f"s3://{BUCKET}/crams/S{i:04d}.cram",
                                "coverage": 30 + i % 3}} for i in range(2000)]
    s3_server.create_bucket(Bucket=BUCKET)
    s3_server.put_object(Bucket=BUCKET, Key="cohort/settings.json", Body=json.dumps(settings).encode())
    result = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT),
                     "--batch-run-settings", json.dumps({"s3UriSettings": URI}), "--no-check")
    assert result.exit_code == 0, result.output
    with Ledger.open(ledger_path, create=False) as ledger:
        seals = dict(((table, key), seal) for table, key, seal in
                     ledger.conn.execute("SELECT tbl, id, sha256 FROM row_seals"))
        for table in ("attempts", "records"):
            rows = list(table_rows(ledger.conn, table))  # every column, the body and intent too
            assert rows
            for row in rows:
                assert seals[(table, str(row[SEALED[table]]))] == row_seal(table, row)
    verified = run_cli("verify")
    assert verified.exit_code == 0, verified.output


def test_a_changed_column_of_a_batch_attempt_is_still_found_by_verify(s3_server, s3_emulator, ledger_path,
                                                                       git_repo, run_cli):
    s3_server.create_bucket(Bucket=BUCKET)
    settings = [{"runSettingId": f"S{i}", "parameters": {"sample_name": f"S{i}"}} for i in range(10)]
    s3_server.put_object(Bucket=BUCKET, Key="cohort/settings.json", Body=json.dumps(settings).encode())
    result = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT),
                     "--batch-run-settings", json.dumps({"s3UriSettings": URI}), "--no-check")
    assert result.exit_code == 0, result.output
    tamper(ledger_path, "UPDATE attempts SET created = '2000-01-01T00:00:00.000Z'")
    verified = run_cli("verify")
    assert verified.exit_code == 1, verified.output
    assert "seal" in verified.output


def test_the_workflow_asked_while_the_settings_file_is_read_is_recorded_once(s3_server, s3_emulator, ledger_path,
                                                                             git_repo, run_cli):
    settings = [{"runSettingId": f"S{i}", "parameters": {"sample_name": f"S{i}",
                                                          "input_cram": f"s3://{BUCKET}/crams/S{i}.cram"}}
                for i in range(20)]
    s3_server.create_bucket(Bucket=BUCKET)
    s3_server.put_object(Bucket=BUCKET, Key="cohort/settings.json", Body=json.dumps(settings).encode())
    result = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT),
                     "--batch-run-settings", json.dumps({"s3UriSettings": URI}))
    assert result.exit_code == 0, result.output
    asked = [r["operation"] for r in s3_emulator.requests]
    assert asked.count("GetWorkflow") == 1 and asked.index("GetWorkflow") < asked.index("StartRunBatch")
    with Ledger.open(ledger_path, create=False) as ledger:
        record, = [e.record for e in ledger.entries() if e.kind == "batch"]
    workflow = record["resolution"]["workflow"]
    assert workflow["id"] == COHORT_DEFAULT["workflowId"] and workflow["digest"]
    assert record["resolution"]["template_checked"] is True
    assert "parameter_template" not in workflow


def test_a_bad_settings_file_is_refused_while_the_workflow_is_asked_and_nothing_is_sent(
        s3_server, s3_emulator, ledger_path, git_repo, run_cli):
    s3_server.create_bucket(Bucket=BUCKET)
    s3_server.put_object(Bucket=BUCKET, Key="cohort/settings.json", Body=b'{"not": "a list"}')
    result = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT),
                     "--batch-run-settings", json.dumps({"s3UriSettings": URI}))
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (f"runlog: error: settings file {URI} is not a JSON list of run settings "
                                     "(it holds a JSON object)")
    assert "StartRunBatch" not in [r["operation"] for r in s3_emulator.requests]
    assert not ledger_path.exists()
