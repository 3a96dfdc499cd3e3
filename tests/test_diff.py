"""`runlog diff`: real submissions through the emulator, real git history, the CLI's output."""

from __future__ import annotations

import json

from helpers import BASE, NF, ROLE, submit
from runlog.ledger import Ledger


def changes(run_cli, *refs):
    result = run_cli("diff", *refs, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)




def test_parameter_changed_added_removed_nested_and_typed(aws_env, ledger_path, git_repo, run_cli):
    first = submit(run_cli, aws_env, BASE)
    changed = dict(BASE, aligner="kallisto", genome={"name": "GRCh38", "build": 39}, skip_emptydrops=True)
    del changed["protocol"]
    changed["protocol"] = "10XV3"  # key order never matters
    changed.pop("input")
    second = submit(run_cli, aws_env, {**changed, "input": "s3://b/in.csv"})
    report = changes(run_cli, first, second)
    found = {(c["section"], c["path"], c["kind"]): (c["old"], c["new"]) for c in report["changes"]}
    assert found == {
        ("parameters", "aligner", "changed"): ("star", "kallisto"),
        ("parameters", "genome.build", "changed"): (38, 39),
        ("parameters", "skip_emptydrops", "added"): (None, True),
    }
    assert report["same"] is False
    assert report["a"]["run_id"] == first and report["b"]["run_id"] == second
    third = submit(run_cli, aws_env, {k: v for k, v in BASE.items() if k != "aligner"})
    removed = changes(run_cli, first, third)["changes"]
    assert [(c["path"], c["kind"], c["old"]) for c in removed] == [("aligner", "removed", "star")]


def test_type_change_is_a_difference(aws_env, ledger_path, git_repo, run_cli):
    submit(run_cli, aws_env, dict(BASE, skip_emptydrops="true"))
    submit(run_cli, aws_env, dict(BASE, skip_emptydrops=True))
    (change,) = changes(run_cli, "@2", "@1")["changes"]
    assert change == {"section": "parameters", "path": "skip_emptydrops", "old": "true", "new": True,
                      "kind": "type_changed"}
    text = run_cli("diff", "@2", "@1").stdout
    assert 'skip_emptydrops' in text and '"true" -> true' in text and "type changed" in text


def test_identical_configurations(aws_env, ledger_path, git_repo, run_cli):
    submit(run_cli, aws_env, BASE, "--name", "first")
    submit(run_cli, aws_env, json.loads(json.dumps(BASE, indent=4)), "--name", "second")
    result = run_cli("diff", "@1", "@2", "--exit-code")
    assert result.exit_code == 0
    assert "No differences" in result.stdout
    assert changes(run_cli, "@1", "@2")["changes"] == []
    with_identity = json.loads(run_cli("diff", "@1", "@2", "--all", "--json").stdout)["changes"]
    paths = {c["path"] for c in with_identity}
    assert {"name", "run id", "run uuid", "requestId"} <= paths


def test_exit_code_when_different(aws_env, ledger_path, git_repo, run_cli):
    submit(run_cli, aws_env, BASE)
    submit(run_cli, aws_env, BASE, "--priority", "5", "--cache-id", "1234567")
    assert run_cli("diff", "@1", "@2").exit_code == 0  # without --exit-code, like git diff
    result = run_cli("diff", "@1", "@2", "--exit-code")
    assert result.exit_code == 1
    sections = {c["section"] for c in changes(run_cli, "@2", "@1")["changes"]}
    assert sections == {"cache", "run settings"}


def test_git_commit_and_dirty_tree(aws_env, ledger_path, git_repo, run_cli, git):
    submit(run_cli, aws_env, BASE)
    (git_repo / "analysis.py").write_text("print('v2')\n")
    git(git_repo, "add", "analysis.py")
    git(git_repo, "commit", "-q", "-m", "v2")
    submit(run_cli, aws_env, BASE)
    (git_repo / "analysis.py").write_text("print('v3, uncommitted')\n")
    submit(run_cli, aws_env, BASE)
    committed = {c["path"]: c for c in changes(run_cli, "@3", "@2")["changes"]}
    assert set(committed) == {"commit"}
    assert committed["commit"]["new"] == git(git_repo, "rev-parse", "HEAD")
    text = run_cli("diff", "@3", "@2").stdout
    assert git(git_repo, "rev-parse", "HEAD")[:12] in text
    dirty = {c["path"]: c for c in changes(run_cli, "@2", "@1")["changes"]}
    assert dirty["dirty"]["old"] is False and dirty["dirty"]["new"] is True
    assert dirty["diff digest"]["kind"] == "added"


def test_diff_against_now(aws_env, ledger_path, git_repo, run_cli):
    result = run_cli("submit", "--workflow-id", "1234567", "--role-arn", ROLE, "--output-uri", "s3://b/o/",
                     "--parameters", "file://workflow-inputs.json", "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 0
    assert run_cli("diff", "@1", "--exit-code").exit_code == 0
    inputs = json.loads((git_repo / "workflow-inputs.json").read_text())
    inputs["sample_name"] = "NA12891"
    (git_repo / "workflow-inputs.json").write_text(json.dumps(inputs))
    report = changes(run_cli, "@1")
    found = {(c["section"], c["path"]) for c in report["changes"]}
    assert ("parameters", "sample_name") in found and ("git", "dirty") in found
    assert any("read again" in n for n in report["notes"])
    assert report["b"]["record"] is None
    assert run_cli("diff", "@1", "--exit-code").exit_code == 1


def test_failed_attempt_compares_with_a_run(aws_env, ledger_path, git_repo, run_cli):
    submit(run_cli, aws_env, BASE)
    rejected = run_cli(*NF, "--parameters", json.dumps(dict(BASE, colour="blue")), "--no-check",
                       "--endpoint-url", aws_env.endpoint_url)
    assert rejected.exit_code == 1
    report = changes(run_cli, "@2", "@1")
    assert report["b"]["outcome"] == "rejected" and report["b"]["run_id"] is None
    assert [(c["path"], c["kind"]) for c in report["changes"]] == [("colour", "added")]
    assert "not run (rejected)" in run_cli("diff", "@2", "@1").stdout


def test_every_ref_form(aws_env, ledger_path, git_repo, run_cli):
    a = submit(run_cli, aws_env, BASE)
    submit(run_cli, aws_env, dict(BASE, aligner="kallisto"))
    with Ledger.open(ledger_path) as ledger:
        entry = ledger.resolve(a)
    for ref in (a, entry.run_uuid, entry.run_arn, entry.address[:8], "@2"):
        report = changes(run_cli, ref, "@1")
        assert report["a"]["record"] == entry.address
        assert [c["path"] for c in report["changes"]] == ["aligner"]


def test_bad_refs(aws_env, ledger_path, git_repo, run_cli):
    submit(run_cli, aws_env, BASE)
    for ref in ("8888888", "@5", "zz"):
        result = run_cli("diff", "@1", ref)
        assert result.exit_code == 2
        assert ref in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_submit_warns_when_identical_configuration_completed(aws_env, ledger_path, git_repo, run_cli):
    first = submit(run_cli, aws_env, BASE)
    second = run_cli(*NF, "--parameters", json.dumps(BASE), "--endpoint-url", aws_env.endpoint_url)
    assert "identical configuration" not in second.stderr  # the first has not completed yet
    with Ledger.open(ledger_path) as ledger:
        entry = ledger.resolve(first)
        ledger.observe(entry.address, "GetRun", {"status": "COMPLETED"}, run_uuid=entry.run_uuid,
                       status="COMPLETED")
    third = run_cli(*NF, "--parameters", json.dumps(BASE), "--endpoint-url", aws_env.endpoint_url)
    assert third.exit_code == 0
    assert f"identical configuration already completed: run {first}" in third.stderr
    assert any("identical configuration" in w for w in
               json.loads(run_cli("show", "@1", "--json").stdout)["record"]["warnings"])
    same = json.loads(run_cli("log", "--same-as", first, "--json").stdout)
    assert len(same) == 3
