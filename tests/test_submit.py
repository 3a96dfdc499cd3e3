"""`runlog submit` end to end: the CLI, a real ledger file, a real git repo and the emulator over HTTP."""

from __future__ import annotations

import json
import sqlite3

import boto3
import pytest
from botocore.config import Config

from helpers import ROLE, SEED_1, SEED_2, SEED_3, SEED_4, records
from runlog import record as rec
from runlog.ledger import Ledger


def omics(emulator):
    return boto3.client("omics", endpoint_url=emulator.endpoint_url, region_name="us-west-2",
                        config=Config(inject_host_prefix=False))


@pytest.mark.parametrize("args", [SEED_1, SEED_2, SEED_3, SEED_4], ids=["cram-to-bam", "shared", "cache", "run-id"])
def test_seed_examples_verbatim(args, aws_env, ledger_path, git_repo, run_cli):
    result = run_cli(*args, "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    # stdout is the start-run response, exactly what the service returned
    run = omics(aws_env).get_run(id=printed["id"])
    assert printed["uuid"] == run["uuid"] and printed["arn"] == run["arn"] and printed["status"] == "PENDING"
    assert set(printed) >= {"arn", "id", "status", "uuid"}
    (record,) = records(ledger_path)
    assert record["outcome"]["status"] == "submitted"
    assert record["outcome"]["response"] == printed
    sent = [r for r in aws_env.requests if r["operation"] == "StartRun"]
    assert len(sent) == 1
    assert sent[0]["params"]["requestId"] == record["request"]["requestId"]
    assert {k: v for k, v in sent[0]["params"].items()} == record["request"]
    assert not rec.schema_errors(record)


def test_record_contents(aws_env, ledger_path, git_repo, run_cli, git):
    head = git(git_repo, "rev-parse", "HEAD")
    result = run_cli(*SEED_1, "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 0
    (record,) = records(ledger_path)
    assert record["request"]["parameters"] == json.loads((git_repo / "workflow-inputs.json").read_text())
    assert record["parameters"]["source"] == "file"
    assert record["parameters"]["argument"] == "file://workflow-inputs.json"
    assert record["parameters"]["file"]["sha256"] == rec.sha256_hex((git_repo / "workflow-inputs.json").read_bytes())
    assert record["git"]["state"] == "clean"
    assert record["git"]["commit"] == head
    assert record["git"]["branch"] == "main"
    assert record["git"]["remote"] == "https://github.com/lab/analysis.git"  # credentials stripped
    assert "s3cret" not in json.dumps(record)
    assert record["caller"]["account"]  # the emulator answers STS GetCallerIdentity
    assert record["aws"]["region"] == "us-west-2"
    assert record["aws"]["endpoint_url"] == aws_env.endpoint_url
    assert record["fingerprint"] == rec.fingerprint(record)
    assert record["request"]["runGroupId"] == "1234567" and record["request"]["priority"] == 1
    # RUNLOG_LEDGER puts the ledger outside the repository: nothing is written into it
    assert ledger_path.is_file()
    assert not (git_repo / ".runlog").exists()
    assert git(git_repo, "status", "--porcelain", "--ignored") == ""


def test_default_ledger_is_in_repo_and_ignored(aws_env, git_repo, run_cli, git):
    result = run_cli(*SEED_2, "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 0, result.output
    assert (git_repo / ".runlog" / "ledger.db").is_file()
    assert git(git_repo, "status", "--porcelain") == ""
    second = run_cli(*SEED_2, "--endpoint-url", aws_env.endpoint_url)
    assert second.exit_code == 0
    assert [r["git"]["state"] for r in records(git_repo / ".runlog" / "ledger.db")] == ["clean", "clean"]


def test_bare_s3_path_warns_and_is_sent_unchanged(aws_env, ledger_path, git_repo, run_cli):
    result = run_cli(*SEED_1, "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 0
    assert "ref_fasta_index" in result.stderr and "s3://" in result.stderr
    (record,) = records(ledger_path)
    assert record["request"]["parameters"]["ref_fasta_index"] == \
        "omics-artifacts-01d6xmpl4e72dd32/Homo_sapiens_assembly38.fasta.fai"
    assert any("ref_fasta_index" in w for w in record["warnings"])


def test_dirty_tree_is_recorded(aws_env, ledger_path, git_repo, run_cli):
    (git_repo / "README.md").write_text("changed\n")
    (git_repo / "notes.txt").write_text("scratch\n")
    assert run_cli(*SEED_2, "--endpoint-url", aws_env.endpoint_url).exit_code == 0
    git_state = records(ledger_path)[0]["git"]
    assert git_state["state"] == "dirty"
    assert len(git_state["diff_sha256"]) == 64
    assert git_state["untracked"] == ["notes.txt"]
    assert len(git_state["untracked_sha256"]) == 64


def test_no_git_repository_is_allowed(aws_env, ledger_path, tmp_path, monkeypatch, run_cli):
    workdir = tmp_path / "plain"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    result = run_cli(*SEED_2, "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 0, result.output
    assert "no git repository" in result.stderr
    assert records(ledger_path)[0]["git"]["state"] == "none"


def test_query_and_text_output_like_aws_cli(aws_env, ledger_path, git_repo, run_cli):
    result = run_cli(*SEED_2, "--endpoint-url", aws_env.endpoint_url, "--query", "id", "--output", "text")
    assert result.exit_code == 0
    run_id = result.stdout.strip()
    assert run_id == records(ledger_path)[0]["outcome"]["response"]["id"]
    quiet = run_cli(*SEED_2, "--endpoint-url", aws_env.endpoint_url, "--quiet")
    assert quiet.stdout.strip().isdigit()
    as_json = json.loads(run_cli(*SEED_2, "--endpoint-url", aws_env.endpoint_url, "--json").stdout)
    assert as_json["record"] == Ledger.open(ledger_path).entries(1)[0].address


def test_cli_input_json_with_flags_overriding(aws_env, ledger_path, git_repo, run_cli):
    (git_repo / "run.json").write_text(json.dumps({
        "workflowId": "7206765", "roleArn": ROLE, "outputUri": "s3://b/out/", "name": "from-file",
        "parameters": {"input": "s3://b/in.csv", "protocol": "10XV3"}, "logLevel": "ERROR",
    }))
    result = run_cli("submit", "--cli-input-json", "file://run.json", "--name", "from-flag",
                     "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 0, result.output
    record = records(ledger_path)[0]
    assert record["request"]["name"] == "from-flag"
    assert record["request"]["logLevel"] == "ERROR"
    assert record["parameters"]["source"] == "cli-input-json"


def test_config_defaults_and_env(aws_env, tmp_path, git_repo, run_cli, monkeypatch):
    (git_repo / ".runlog.toml").write_text(
        f'role_arn = "{ROLE}"\noutput_uri = "s3://lab-bucket/runs/"\nledger = "ledgers/lab.db"\n'
        f'endpoint_url = "{aws_env.endpoint_url}"\n[tags]\nproject = "wgs"\nowner = "lab"\n'
    )
    result = run_cli("submit", "--workflow-id", "1234567", "--workflow-owner-id", "123456789012",
                     "--parameters", '{"param1": "a", "param2": "b"}', "--tags", "owner=alice")
    assert result.exit_code == 0, result.output
    record = records(git_repo / "ledgers" / "lab.db")[0]
    assert record["request"]["roleArn"] == ROLE
    assert record["request"]["outputUri"] == "s3://lab-bucket/runs/"
    assert record["request"]["tags"] == {"project": "wgs", "owner": "alice"}
    monkeypatch.setenv("RUNLOG_LEDGER", str(tmp_path / "env.db"))
    assert run_cli("submit", "--workflow-id", "1234567", "--workflow-owner-id", "123456789012",
                   "--parameters", '{"param1": "a", "param2": "b"}').exit_code == 0
    assert len(records(tmp_path / "env.db")) == 1
    assert run_cli("--ledger", tmp_path / "flag.db", "submit", "--workflow-id", "1234567",
                   "--workflow-owner-id", "123456789012", "--parameters", '{"param1": "a", "param2": "b"}'
                   ).exit_code == 0
    assert len(records(tmp_path / "flag.db")) == 1


# --- bad input: one line, exit 2, nothing written ------------------------------------------------

@pytest.mark.parametrize("extra, expected", [
    (["--parameters", '{"a": 1,\n "b": }'], "invalid JSON at line 2, column 7"),
    (["--parameters", "file://missing.json"], "missing.json: no such file"),
    (["--parameters", "[1, 2]"], "must be a JSON object"),
    (["--log-level", "LOUD"], "'LOUD' is not one of OFF, FATAL, ERROR, ALL"),
    (["--cache-behavior", "SOMETIMES"], "--cache-behavior"),
    (["--workflow-type", "PUBLIC"], "--workflow-type"),
    (["--priority", "-3"], "less than the minimum 0"),
    (["--name", "x" * 129], "at most 128"),
    (["--tags", ",".join(f"k{i}=v" for i in range(51))], "at most 50"),
], ids=["json-syntax", "missing-file", "not-object", "log-level", "cache-behavior", "workflow-type",
        "priority", "name-length", "tags"])
def test_bad_input_is_one_line_exit_2_nothing_written(extra, expected, aws_env, ledger_path, git_repo, run_cli):
    args = ["submit", "--workflow-id", "1234567", "--role-arn", ROLE, "--output-uri", "s3://b/o/",
            "--endpoint-url", aws_env.endpoint_url]
    if not any(a == "--parameters" for a in extra):
        args += ["--parameters", "file://workflow-inputs.json"]
    result = run_cli(*args, *extra)
    assert result.exit_code == 2
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert not ledger_path.exists()
    assert not [r for r in aws_env.requests if r["operation"] == "StartRun"]


def test_unknown_option_exit_2(aws_env, ledger_path, git_repo, run_cli):
    result = run_cli(*SEED_2, "--workflow-colour", "blue")
    assert result.exit_code == 2
    assert "--workflow-colour" in result.stderr
    assert not ledger_path.exists()


def test_missing_role_and_output(aws_env, ledger_path, git_repo, run_cli):
    result = run_cli("submit", "--workflow-id", "1234567", "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 2
    assert "--role-arn and --output-uri" in result.stderr


def test_no_credentials_says_how_to_configure(aws_env, ledger_path, git_repo, run_cli, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = run_cli(*SEED_2, "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 2
    assert "no AWS credentials" in result.stderr and "aws configure" in result.stderr
    assert not ledger_path.exists()


def test_corrupt_ledger_is_never_overwritten(aws_env, ledger_path, git_repo, run_cli):
    ledger_path.parent.mkdir(parents=True)
    ledger_path.write_bytes(b"this is not a database\n" * 10)
    before = ledger_path.read_bytes()
    for args in (SEED_2 + ["--endpoint-url", aws_env.endpoint_url], ["log"], ["verify"], ["show", "@1"]):
        result = run_cli(*args)
        assert result.exit_code == 2, args
        assert "not a runlog ledger" in result.stderr
    assert ledger_path.read_bytes() == before
    assert not [r for r in aws_env.requests if r["operation"] == "StartRun"]


def test_damaged_sqlite_ledger_is_a_clear_error(aws_env, ledger_path, git_repo, run_cli):
    assert run_cli(*SEED_2, "--endpoint-url", aws_env.endpoint_url).exit_code == 0
    data = bytearray(ledger_path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # smash the schema page, keep the header
    ledger_path.write_bytes(bytes(data))
    for name in ("ledger.db-wal", "ledger.db-shm"):
        (ledger_path.parent / name).unlink(missing_ok=True)
    before = ledger_path.read_bytes()
    result = run_cli("log")
    assert result.exit_code == 2
    assert "cannot read ledger" in result.stderr and "left untouched" in result.stderr
    assert ledger_path.read_bytes() == before


def test_newer_ledger_format_is_refused(aws_env, ledger_path, git_repo, run_cli):
    assert run_cli(*SEED_2, "--endpoint-url", aws_env.endpoint_url).exit_code == 0
    conn = sqlite3.connect(ledger_path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    result = run_cli(*SEED_2, "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 2
    assert "format 99" in result.stderr and "upgrade runlog" in result.stderr
    assert len([r for r in aws_env.requests if r["operation"] == "StartRun"]) == 1


def test_reused_request_id_is_refused_before_sending(aws_env, ledger_path, git_repo, run_cli):
    assert run_cli(*SEED_2, "--request-id", "my-token-1", "--endpoint-url", aws_env.endpoint_url).exit_code == 0
    result = run_cli(*SEED_2, "--request-id", "my-token-1", "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 2
    assert "my-token-1" in result.stderr and "already used" in result.stderr
    assert len([r for r in aws_env.requests if r["operation"] == "StartRun"]) == 1


# --- the service says no --------------------------------------------------------------------------

def test_rejected_submission_is_kept_as_failed_attempt(aws_env, ledger_path, git_repo, run_cli):
    result = run_cli("submit", "--workflow-id", "999999", "--role-arn", ROLE, "--output-uri", "s3://b/o/",
                     "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 1
    assert "ResourceNotFoundException" in result.stderr
    (record,) = records(ledger_path)
    assert record["outcome"]["status"] == "rejected"
    assert record["outcome"]["error"]["code"] == "ResourceNotFoundException"
    assert record["outcome"]["error"]["http_status"] == 404
    log = json.loads(run_cli("log", "--json").stdout)
    assert log[0]["status"] == "REJECTED" and log[0]["run_id"] is None


def test_template_violation_is_refused_before_sending(aws_env, ledger_path, git_repo, run_cli):
    result = run_cli("submit", "--workflow-id", "1234567", "--role-arn", ROLE, "--output-uri", "s3://b/o/",
                     "--parameters", '{"sample_name": "x", "colour": "blue"}', "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 2
    assert "missing required parameter(s) input_cram, ref_dict, ref_fasta, ref_fasta_index" in result.stderr
    assert "unknown parameter(s) colour" in result.stderr
    assert not ledger_path.exists()
    assert not [r for r in aws_env.requests if r["operation"] == "StartRun"]


def test_template_violation_with_no_check_is_rejected_by_service(aws_env, ledger_path, git_repo, run_cli):
    result = run_cli("submit", "--workflow-id", "1234567", "--role-arn", ROLE, "--output-uri", "s3://b/o/",
                     "--parameters", '{"sample_name": "x"}', "--no-check", "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 1
    assert "ValidationException" in result.stderr
    assert records(ledger_path)[0]["outcome"]["error"]["code"] == "ValidationException"


def test_throttling_is_retried_and_recorded_once(aws_env, ledger_path, git_repo, run_cli):
    aws_env.inject("throttle", operation="StartRun", count=2)
    result = run_cli(*SEED_2, "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 0, result.output
    assert len(records(ledger_path)) == 1
    starts = [r for r in aws_env.requests if r["operation"] == "StartRun"]
    assert len(starts) == 3
    assert len({r["params"]["requestId"] for r in starts}) == 1


def test_aws_cli_sees_the_run_runlog_started(aws_env, ledger_path, git_repo, run_cli):
    """The real aws CLI, against the same emulator, finds the run runlog recorded."""
    import os
    import shutil
    import subprocess

    aws = shutil.which("aws")
    assert aws, "the aws CLI is a test dependency (awscli)"
    result = run_cli(*SEED_3, "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 0
    printed = json.loads(result.stdout)
    env = {**os.environ, "AWS_DISABLE_HOST_PREFIX_INJECTION": "true"}
    out = subprocess.run([aws, "omics", "get-run", "--id", printed["id"], "--endpoint-url", aws_env.endpoint_url],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    run = json.loads(out.stdout)
    (record,) = records(ledger_path)
    assert run["uuid"] == record["outcome"]["response"]["uuid"]
    assert run["parameters"] == record["request"]["parameters"]
    assert run["cacheBehavior"] == "CACHE_ALWAYS"


def test_endpoint_from_aws_endpoint_url_omics(emulator, ledger_path, git_repo, run_cli, monkeypatch):
    """Only AWS_ENDPOINT_URL_OMICS is set: host-prefix injection must still be off, and the
    caller is not looked up in another world (STS has no custom endpoint)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_OMICS", emulator.endpoint_url)
    result = run_cli(*SEED_2)
    assert result.exit_code == 0, result.output
    (record,) = records(ledger_path)
    assert record["aws"]["endpoint_url"] == emulator.endpoint_url
    assert "STS is not" in record["caller"]["unknown"]
    assert "caller not recorded: not asked" in result.stderr
    assert {r["operation"] for r in emulator.requests} == {"GetWorkflow", "StartRun"}  # no STS
