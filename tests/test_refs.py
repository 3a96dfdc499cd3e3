"""`@N` means the same in every command: the N-th newest run by when it was asked for (a
submission's intent, an imported run's creationTime), not by when its record arrived."""

from __future__ import annotations

import json

import boto3
from botocore.config import Config

from helpers import SEED_2
from recordfactory import make_record
from runlog.ledger import Ledger

ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"


def log_ids(run_cli, *args):
    result = run_cli(*args, "log", "--json")
    assert result.exit_code == 0, result.stderr
    return [e["run_id"] for e in json.loads(result.stdout)]


def show_run(run_cli, ref, *args):
    result = run_cli(*args, "show", ref, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["record"]["outcome"]["response"]["id"]


def test_at_n_after_importing_an_older_run(aws_env, ledger_path, git_repo, run_cli):
    omics = boto3.client("omics", endpoint_url=aws_env.endpoint_url, region_name="us-west-2",
                         config=Config(inject_host_prefix=False))
    older = omics.start_run(workflowId="1234567", roleArn=ROLE, outputUri="s3://b/o/", name="started-earlier",
                            workflowOwnerId="123456789012", parameters={"param1": "a", "param2": "b"})["id"]
    first = json.loads(run_cli(*SEED_2, "--name", "first").stdout)["id"]
    second = json.loads(run_cli(*SEED_2, "--name", "second").stdout)["id"]
    assert run_cli("import").exit_code == 0

    assert log_ids(run_cli)[:3] == [second, first, older]  # then the emulator's seeded run
    assert show_run(run_cli, "@1") == second
    assert show_run(run_cli, "@3") == older
    diff = json.loads(run_cli("diff", "@2", "@1", "--json").stdout)
    assert diff["a"]["run_id"] == first and diff["b"]["run_id"] == second
    dry = run_cli("replay", "@1", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert json.loads(dry.stdout)["replay_of"]["run_id"] == second


def test_at_n_after_pulling_older_records(bucket, tmp_path, run_cli):
    from helpers import REMOTE

    mine, theirs = tmp_path / "mine.db", tmp_path / "theirs.db"
    with Ledger.open(theirs) as ledger:
        ledger.add_record(make_record(run_id="1000001", name="old", created="2020-01-01T00:00:00.000Z"))
    with Ledger.open(mine) as ledger:
        ledger.add_record(make_record(run_id="2000002", name="new", created="2030-01-01T00:00:00.000Z"))
    pushed = run_cli("--ledger", theirs, "push", REMOTE)
    assert pushed.exit_code == 0, pushed.output
    assert run_cli("--ledger", mine, "pull", REMOTE).exit_code == 0
    assert log_ids(run_cli, "--ledger", mine) == ["2000002", "1000001"]
    assert show_run(run_cli, "@1", "--ledger", mine) == "2000002"
    assert show_run(run_cli, "@2", "--ledger", mine) == "1000001"
