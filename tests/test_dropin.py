"""`runlog submit` as a drop-in for `aws omics start-run`: options from botocore's model,
--cli-input-json and --generate-cli-skeleton as the aws CLI reads and prints them, the aws
CLI's global options. The real aws CLI (a test dependency) is the reference."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from runlog.ledger import Ledger

ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"
SHARED = ["--workflow-id", "1234567", "--workflow-owner-id", "123456789012", "--role-arn", ROLE,
          "--output-uri", "s3://your-bucket/results/", "--parameters", '{"param1": "value1", "param2": "value2"}']


def records(path):
    if not path.exists():
        return []
    with Ledger.open(path, create=False) as ledger:
        return [e.record for e in ledger.entries()]


def aws_cli(*args, endpoint=None, cwd=None, input=None):
    """The real aws CLI; against the emulator it needs AWS_DISABLE_HOST_PREFIX_INJECTION."""
    aws = shutil.which("aws")
    assert aws, "the aws CLI is a test dependency (awscli)"
    env = {**os.environ, "AWS_DISABLE_HOST_PREFIX_INJECTION": "true"}
    extra = ["--endpoint-url", endpoint] if endpoint else []
    return subprocess.run([aws, *args, *extra], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=60, input=input)


def aws_cli_start_run_options() -> set[str]:
    """The installed aws CLI's own option list for `omics start-run`, from its clidriver."""
    code = ("from awscli.clidriver import create_clidriver\n"
            "d = create_clidriver()\n"
            "op = d._get_command_table()['omics']._get_command_table()['start-run']\n"
            "print('\\n'.join(op.arg_table))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return {"--" + name for name in out.stdout.split()}


def submit_options() -> set[str]:
    from runlog.cli.submit import submit

    return {opt for param in submit.params for opt in (*param.opts, *param.secondary_opts)}


# --- options come from the model ----------------------------------------------------------------

def test_every_aws_cli_start_run_option_is_accepted():
    theirs = aws_cli_start_run_options()
    assert {"--workflow-id", "--role-arn", "--cli-input-json", "--generate-cli-skeleton"} <= theirs
    missing = sorted(theirs - submit_options())
    assert not missing, f"runlog submit lacks the aws CLI's {missing}"


def test_every_model_member_is_an_option():
    import botocore.session

    shape = botocore.session.get_session().get_service_model("omics").operation_model("StartRun").input_shape
    flags = submit_options()
    for member, member_shape in shape.members.items():
        flag = "--" + botocore.xform_name(member, "-")
        assert flag in flags, member
        if member_shape.type_name == "boolean":
            assert "--no-" + flag[2:] in flags


def test_help_is_the_models_documentation_without_html(run_cli):
    result = run_cli("submit", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "--scratch-storage-mode" in text and "scratch ephemeral storage mounted at /tmp" in text
    assert "--requester-pays-enabled / --no-requester-pays-enabled" in text
    assert "<p>" not in result.stdout and "<code>" not in result.stdout
    assert "Default: role_arn in the config." in text


def test_submit_help_does_not_import_boto3(tmp_path):
    code = ("import sys, runpy\n"
            "sys.argv = ['runlog', 'submit', '--help']\n"
            "try:\n    runpy.run_module('runlog', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print('IMPORTED', sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path).stdout
    assert "--scratch-storage-mode" in out
    assert "IMPORTED []" in out


def test_members_newer_than_the_hand_written_list_are_sent(aws_env, ledger_path, git_repo, run_cli):
    (git_repo / "policy.json").write_text('{"Version": "2012-10-17", "Statement": []}\n')
    (git_repo / "engine.json").write_text('{"profiles": ["docker"]}')
    result = run_cli("submit", *SHARED, "--scratch-storage-mode", "LOCAL", "--engine-settings", "file://engine.json",
                     "--requester-pays-enabled", "--session-policy", "file://policy.json",
                     "--output-uri-prefix-mode", "SERVICE_DEFINED", "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 0, result.output
    (record,) = records(ledger_path)
    request = record["request"]
    assert request["scratchStorageMode"] == "LOCAL"
    assert request["engineSettings"] == {"profiles": ["docker"]}
    assert request["requesterPaysEnabled"] is True
    assert request["sessionPolicy"] == '{"Version": "2012-10-17", "Statement": []}\n'  # file:// read as text
    assert request["outputUriPrefixMode"] == "SERVICE_DEFINED"
    (sent,) = [r for r in aws_env.requests if r["operation"] == "StartRun"]
    assert sent["params"] == request
    off = run_cli("submit", *SHARED, "--no-requester-pays-enabled", "--endpoint-url", aws_env.endpoint_url)
    assert off.exit_code == 0, off.output
    (second,) = [r for r in records(ledger_path) if r["outcome"]["response"]["id"] == json.loads(off.stdout)["id"]]
    assert second["request"]["requesterPaysEnabled"] is False


@pytest.mark.parametrize("extra, expected", [
    (["--engine-settings", "{not json"], "--engine-settings: invalid JSON"),
    (["--tags", '["a"]'], "--tags must be a map of strings to strings, got a list"),
    (["--scratch-storage-mode", "SOMETIMES"], "'SOMETIMES' is not one of LOCAL, SHARED"),
], ids=["document-json", "tags-list", "enum"])
def test_flag_types_from_the_model_exit_2(extra, expected, aws_env, ledger_path, git_repo, run_cli):
    result = run_cli("submit", *SHARED, *extra, "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not ledger_path.exists()


# --- --cli-input-json ---------------------------------------------------------------------------

@pytest.mark.parametrize("document, expected", [
    ({"tags": ["a"]}, "tags must be a map of strings to strings, got a list"),
    ({"priority": "1"}, "priority must be a whole number, got a string"),
    ({"requesterPaysEnabled": "yes"}, "requesterPaysEnabled must be true or false, got a string"),
    ({"tags": {"a": 1}}, 'tags["a"] must be a string, got a number'),
    ({"workflowColour": "blue"}, "unknown StartRun member(s) workflowColour"),
    ([1, 2], "expected a JSON object of StartRun members, got a list"),
    ({"parameters": "x"}, "parameters must be a JSON object mapping parameter names to values, got a string"),
], ids=["tags-list", "priority-string", "boolean-string", "tag-value", "unknown", "not-object", "parameters-text"])
def test_cli_input_json_member_types_exit_2(document, expected, aws_env, ledger_path, git_repo, run_cli):
    (git_repo / "run.json").write_text(json.dumps(document))
    args = [] if not isinstance(document, dict) else SHARED
    result = run_cli("submit", *args, "--cli-input-json", "file://run.json", "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
    assert result.stderr.startswith("runlog: error: --cli-input-json file://run.json: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not ledger_path.exists()


def test_aws_cli_skeleton_as_cli_input_json(aws_env, ledger_path, git_repo, run_cli):
    """aws omics start-run --generate-cli-skeleton > s.json; runlog submit --cli-input-json file://s.json:
    the placeholders "" are refused as the aws CLI refuses them (one line naming them); filled in,
    the same file works for both, every member of the skeleton sent."""
    skeleton = aws_cli("omics", "start-run", "--generate-cli-skeleton", cwd=git_repo)
    assert skeleton.returncode == 0, skeleton.stderr
    (git_repo / "s.json").write_text(skeleton.stdout)
    raw = run_cli("submit", "--cli-input-json", "file://s.json", "--endpoint-url", aws_env.endpoint_url)
    assert raw.exit_code == 2, raw.output
    assert "are \"\" (the placeholders of the aws CLI's input skeleton): fill in or delete them" in raw.stderr
    assert "runId" in raw.stderr and "roleArn" in raw.stderr
    assert not ledger_path.exists()

    document = {k: v for k, v in json.loads(skeleton.stdout).items() if v != ""}
    document.update(workflowId="1234567", workflowOwnerId="123456789012", roleArn=ROLE,
                    outputUri="s3://your-bucket/results/", parameters={"param1": "value1", "param2": "value2"},
                    storageType="DYNAMIC", storageCapacity=1200, cacheBehavior="CACHE_ALWAYS", cacheId="1234567",
                    workflowType="PRIVATE")  # the skeleton picks enum values at random
    document.pop("storageCapacity")  # not allowed with DYNAMIC storage
    (git_repo / "s.json").write_text(json.dumps(document, indent=4))
    ours = run_cli("submit", "--cli-input-json", "file://s.json", "--endpoint-url", aws_env.endpoint_url)
    assert ours.exit_code == 0, ours.output
    (record,) = records(ledger_path)
    assert {k: v for k, v in record["request"].items() if k != "requestId"} == document
    assert "scratchStorageMode" in record["request"] and "engineSettings" in record["request"]
    theirs = aws_cli("omics", "start-run", "--cli-input-json", "file://s.json", endpoint=aws_env.endpoint_url,
                     cwd=git_repo)
    assert theirs.returncode == 0, theirs.stderr
    assert set(json.loads(theirs.stdout)) == set(json.loads(ours.stdout))


def test_config_defaults_fill_what_cli_input_json_leaves_out(aws_env, ledger_path, git_repo, run_cli):
    (git_repo / ".runlog.toml").write_text(
        f'role_arn = "{ROLE}"\noutput_uri = "s3://lab-bucket/runs/"\n[tags]\nproject = "wgs"\n')
    (git_repo / "run.json").write_text(json.dumps({
        "workflowId": "1234567", "workflowOwnerId": "123456789012", "tags": {"owner": "alice"},
        "parameters": {"param1": "a", "param2": "b"}, "scratchStorageMode": "SHARED"}))
    result = run_cli("submit", "--cli-input-json", "file://run.json", "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 0, result.output
    (record,) = records(ledger_path)
    assert record["request"]["roleArn"] == ROLE and record["request"]["outputUri"] == "s3://lab-bucket/runs/"
    assert record["request"]["tags"] == {"project": "wgs", "owner": "alice"}
    assert record["request"]["scratchStorageMode"] == "SHARED"


def test_cli_input_json_file_is_recorded_and_diffed(aws_env, ledger_path, git_repo, tmp_path, run_cli):
    """Like --parameters file://, a --cli-input-json file:// is recorded (path, SHA-256), and
    editing the parameters inside it shows in `runlog diff @1 --exit-code`."""
    from runlog.record import sha256_hex

    run_json = tmp_path / "inputs" / "run.json"  # outside the repository: git stays clean
    run_json.parent.mkdir()
    document = {"workflowId": "1234567", "workflowOwnerId": "123456789012", "roleArn": ROLE,
                "outputUri": "s3://your-bucket/results/", "parameters": {"param1": "value1", "param2": "value2"}}
    run_json.write_text(json.dumps(document))
    argument = f"file://{run_json}"
    result = run_cli("submit", "--cli-input-json", argument, "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 0, result.output
    (record,) = records(ledger_path)
    assert record["parameters"] == {"source": "cli-input-json", "argument": argument,
                                    "file": {"path": str(run_json), "sha256": sha256_hex(run_json.read_bytes())}}
    same = run_cli("diff", "@1", "--exit-code")
    assert same.exit_code == 0, same.output
    document["parameters"]["param2"] = "changed"
    run_json.write_text(json.dumps(document))
    changed = run_cli("diff", "@1", "--exit-code")
    assert changed.exit_code == 1, changed.output
    assert "param2" in changed.stdout and "changed" in changed.stdout


# --- --generate-cli-skeleton --------------------------------------------------------------------

def test_generate_cli_skeleton_input_is_what_the_aws_cli_prints(aws_env, git_repo, run_cli):
    from runlog.startrun import members

    theirs = aws_cli("omics", "start-run", "--generate-cli-skeleton", endpoint=aws_env.endpoint_url)
    ours = run_cli("submit", "--generate-cli-skeleton")
    also = run_cli("submit", "--generate-cli-skeleton", "input")
    assert theirs.returncode == 0 and ours.exit_code == 0 and also.exit_code == 0
    mine, reference = json.loads(ours.stdout), json.loads(theirs.stdout)
    assert [k for k in mine if k in reference] == list(reference)  # same order; ours may have newer members
    assert set(mine) == set(members())
    for member, value in reference.items():
        enum = members()[member].enum
        if enum:  # the aws CLI (botocore's ArgumentGenerator) picks an enum value at random
            assert value in enum and mine[member] in enum
            mine[member] = value
    same_members = {k: mine[k] for k in reference}
    assert json.dumps(same_members, indent=4) + "\n" == theirs.stdout


def test_generate_cli_skeleton_output_is_what_the_aws_cli_prints(aws_env, ledger_path, git_repo, run_cli):
    args = ["--role-arn", ROLE, "--output-uri", "s3://your-bucket/results/", "--workflow-id", "1234567"]
    for extra in ([], ["--output", "table"], ["--query", "configuration.name", "--output", "text"]):
        theirs = aws_cli("omics", "start-run", "--generate-cli-skeleton", "output", *args, *extra,
                         endpoint=aws_env.endpoint_url)
        ours = run_cli("submit", "--generate-cli-skeleton", "output", *args, *extra,
                       "--endpoint-url", aws_env.endpoint_url)
        assert theirs.returncode == 0, theirs.stderr
        assert ours.exit_code == 0, ours.output
        assert ours.stdout == theirs.stdout, extra
    assert not [r for r in aws_env.requests if r["operation"] == "StartRun"]
    assert not ledger_path.exists()
    missing = run_cli("submit", "--generate-cli-skeleton", "output", "--workflow-id", "1")
    assert missing.exit_code == 2 and "missing --role-arn and --output-uri" in missing.stderr


# --- the aws CLI's global options ---------------------------------------------------------------

def _masked(text: str) -> str:
    import re

    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "UUID", text)
    return re.sub(r"\b\d{7}\b", "RUNID", text)


def test_output_table_is_what_the_aws_cli_prints(aws_env, ledger_path, git_repo, run_cli):
    args = [*SHARED[:-2], "--parameters", SHARED[-1], "--tags", "project=wgs,owner=alice", "--output", "table"]
    theirs = aws_cli("omics", "start-run", *args, endpoint=aws_env.endpoint_url)
    ours = run_cli("submit", *args, "--endpoint-url", aws_env.endpoint_url)
    assert theirs.returncode == 0, theirs.stderr
    assert ours.exit_code == 0, ours.output
    assert "|  StartRun  |" not in ours.stdout and "StartRun" in ours.stdout and "project" in ours.stdout
    assert _masked(ours.stdout) == _masked(theirs.stdout)
    assert len(records(ledger_path)) == 1


def test_global_options_accepted_or_noted(aws_env, ledger_path, git_repo, run_cli):
    result = run_cli("submit", *SHARED, "--endpoint-url", aws_env.endpoint_url, "--output", "json",
                     "--cli-read-timeout", "30", "--cli-connect-timeout", "5", "--color", "off", "--no-paginate",
                     "--no-verify-ssl", "--no-cli-pager")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "PENDING"
    assert "--color off accepted: runlog prints the response without color" in result.stderr
    assert "--no-paginate accepted: StartRun and StartRunBatch are not paginated" in result.stderr
    assert "--no-verify-ssl: the endpoint's TLS certificate is not verified" in result.stderr
    assert len(records(ledger_path)) == 1


def test_cli_read_timeout_reaches_the_client(aws_env, ledger_path, git_repo, run_cli):
    aws_env.faults.add("latency", "StartRun", count=5, seconds=2.5)
    result = run_cli("submit", *SHARED, "--endpoint-url", aws_env.endpoint_url, "--cli-read-timeout", "1",
                     "--no-resolve")
    assert result.exit_code == 1, result.output
    assert "outcome is unknown" in result.stderr and "runlog recover" in result.stderr and "Read timeout" in result.stderr
    with Ledger.open(ledger_path, create=False) as ledger:
        assert len(ledger.pending()) == 1  # kept for `runlog recover`


def test_debug_after_the_subcommand(aws_env, ledger_path, git_repo, run_proc):
    result = run_proc("submit", *SHARED, "--endpoint-url", aws_env.endpoint_url, "--debug",
                      cwd=git_repo, env={"RUNLOG_LEDGER": str(ledger_path)})
    assert result.returncode == 0, result.stderr
    assert "botocore" in result.stderr and "DEBUG" in result.stderr
    assert json.loads(result.stdout)["status"] == "PENDING"


# --- --dry-run ----------------------------------------------------------------------------------

def test_dry_run_checks_resolves_prints_and_writes_nothing(aws_env, ledger_path, git_repo, run_cli):
    result = run_cli("submit", "--workflow-id", "1234567", "--role-arn", ROLE, "--output-uri", "s3://b/out/",
                     "--parameters", "file://workflow-inputs.json", "--name", "dry",
                     "--endpoint-url", aws_env.endpoint_url, "--dry-run")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["dry_run"] is True
    assert printed["request"]["name"] == "dry" and printed["request"]["requestId"]
    record = printed["record"]
    assert record["request"] == printed["request"] and record["outcome"] is None
    assert record["parameters"]["file"]["path"] == "workflow-inputs.json"
    assert record["resolution"]["workflow"]["digest"].startswith("sha256:")  # resolved, as a submission is
    assert record["git"]["state"] == "clean"
    assert any("ref_fasta_index" in w for w in record["warnings"])
    assert printed["ledger"] == str(ledger_path)
    assert "nothing was sent to HealthOmics and nothing was written" in result.stderr
    assert not ledger_path.exists()
    assert not [r for r in aws_env.requests if r["operation"] == "StartRun"]
    # the checks still refuse what a submission would refuse (exit 2), nothing written
    bad = run_cli("submit", "--workflow-id", "1234567", "--role-arn", ROLE, "--output-uri", "s3://b/out/",
                  "--parameters", '{"sample_name": "x"}', "--endpoint-url", aws_env.endpoint_url, "--dry-run")
    assert bad.exit_code == 2, bad.output
    assert not ledger_path.exists()


def _dump(path) -> list[str]:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def test_dry_run_with_a_ledger_reads_it_only(aws_env, ledger_path, git_repo, run_cli):
    first = run_cli("submit", *SHARED, "--request-id", "fixed-1", "--endpoint-url", aws_env.endpoint_url)
    assert first.exit_code == 0, first.output
    before = _dump(ledger_path)
    again = run_cli("submit", *SHARED, "--request-id", "fixed-1", "--endpoint-url", aws_env.endpoint_url,
                    "--dry-run")
    assert again.exit_code == 2 and "already used" in again.stderr
    fresh = run_cli("submit", *SHARED, "--endpoint-url", aws_env.endpoint_url, "--dry-run")
    assert fresh.exit_code == 0, fresh.output
    assert _dump(ledger_path) == before
    assert len([r for r in aws_env.requests if r["operation"] == "StartRun"]) == 1


# --- the five seed examples, verbatim -----------------------------------------------------------

def _examples():
    from runlog.emulator.seed import EXAMPLES

    return EXAMPLES


@pytest.mark.parametrize("index", range(5), ids=["run", "shared", "call-caching", "duplicate", "omics-uris"])
def test_seed_examples_verbatim_through_runlog_and_the_aws_cli(index, aws_env, ledger_path, git_repo, run_cli):
    from runlog.emulator.seed import example_args

    title, command, inputs = _examples()[index]
    if inputs is not None:
        (git_repo / "workflow-inputs.json").write_text(inputs)
    args = example_args(command)
    ours = run_cli("submit", *args, "--endpoint-url", aws_env.endpoint_url)
    assert ours.exit_code == 0, (title, ours.output)
    theirs = aws_cli("omics", "start-run", *args, endpoint=aws_env.endpoint_url, cwd=git_repo)
    assert theirs.returncode == 0, (title, theirs.stderr)
    assert set(json.loads(ours.stdout)) == set(json.loads(theirs.stdout))
    (record,) = records(ledger_path)
    assert record["outcome"]["status"] == "submitted"
    if "--parameters" in args:
        sent = args[args.index("--parameters") + 1]
        expected = json.loads(inputs if sent.startswith("file://") else sent)
        assert record["request"]["parameters"] == expected  # every parameter, as the documentation prints it
    if index == 4:  # the omics:// read set and references resolve against the emulator's seed data
        resolved = record["resolution"]["inputs"]
        omics_inputs = {uri: found for uri, found in resolved.items() if uri.startswith("omics://")}
        assert len(omics_inputs) == 3
        assert all(found.get("status") == "ACTIVE" and "error" not in found for found in omics_inputs.values())
        assert not [w for w in record["warnings"] if "omics://" in w]


def test_demo_submits_five_examples_and_runs_twice_in_one_workdir(tmp_path, run_proc):
    workdir = tmp_path / "demo"
    first = run_proc("demo", "--workdir", workdir, cwd=tmp_path, timeout=240)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr
    assert first.stdout.count("$ runlog submit") == 5
    assert "readSet/1234567890/source1" in (workdir / "analysis" / "omics-inputs" / "workflow-inputs.json").read_text()
    assert "verified 5 records" in first.stdout
    # then it replays the first run and ends with the report, naming where it is
    assert f"The demo's report (open it in a browser): {workdir.resolve() / 'report.html'}" in first.stdout
    assert "wrote" in first.stdout and "6 run(s), ledger intact" in first.stdout
    assert 'class="edge edge-replay"' in (workdir / "report.html").read_text(encoding="utf-8")
    second = run_proc("demo", "--workdir", workdir, cwd=tmp_path, timeout=240)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr
    assert "verified 11 records" in second.stdout
    assert "already holds an earlier demo's records" in second.stdout


def test_command_typo_suggests_the_command(run_cli):
    result = run_cli("sumbit", "--workflow-id", "1234567")
    assert result.exit_code == 2
    assert "No such command 'sumbit'. Did you mean 'submit'?" in result.stderr
    unknown = run_cli("frobnicate")
    assert unknown.exit_code == 2 and "Did you mean" not in unknown.stderr and "submit" in unknown.stderr


def test_submit_docs_list_the_options_generated_from_the_model():
    from pathlib import Path

    from runlog.startrun import DOCS_BEGIN, DOCS_END, options_markdown

    text = (Path(__file__).resolve().parent.parent / "docs" / "submit.md").read_text(encoding="utf-8")
    block = text[text.index(DOCS_BEGIN) + len(DOCS_BEGIN):text.index(DOCS_END)].strip()
    assert block == options_markdown(), "docs/submit.md is stale: run `python -m runlog.startrun docs/submit.md`"


def test_replay_overrides_take_the_models_options(aws_env, ledger_path, git_repo, run_cli):
    assert run_cli("submit", *SHARED, "--endpoint-url", aws_env.endpoint_url).exit_code == 0
    result = run_cli("replay", "@1", "--scratch-storage-mode", "LOCAL", "--engine-settings", '{"profiles": ["a"]}',
                     "--requester-pays-enabled", "--dry-run")
    assert result.exit_code == 0, result.output
    request = json.loads(result.stdout)["request"]
    assert request["scratchStorageMode"] == "LOCAL" and request["engineSettings"] == {"profiles": ["a"]}
    assert request["requesterPaysEnabled"] is True
    bad = run_cli("replay", "@1", "--engine-settings", "[oops", "--dry-run")
    assert bad.exit_code == 2 and "--engine-settings: invalid JSON" in bad.stderr
