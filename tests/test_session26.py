"""Session 26: what a demanding user's trial of the cohort commands found (a fact the diff
made up, counts the text cut short, fields the JSON lacked), each through the CLI against
the emulator, real git repositories and real ledger files."""

from __future__ import annotations

import json

from helpers import BASE, NF


def _changes(run_cli, *refs) -> list[dict]:
    result = run_cli("diff", *refs, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["changes"]


def test_diff_says_nothing_of_a_dirty_tree_a_record_does_not_know(aws_env, ledger_path, git_repo, run_cli, tmp_path,
                                                                  git):
    """A run recorded without a git state (no repository: "none"; an imported run: "unknown")
    against one from a dirty tree: the diff said `dirty true -> false`, as if the second run
    came from a clean tree. The state's change is the fact; the second side says nothing of
    dirtiness, so `dirty` is removed there, as its commit and branch are."""
    (git_repo / "workflow-inputs.json").write_text((git_repo / "workflow-inputs.json").read_text() + "\n")
    elsewhere = tmp_path / "not-a-repository"
    elsewhere.mkdir()

    def submit_from(env: dict | None = None) -> None:
        result = run_cli(*NF, "--parameters", json.dumps(BASE), "--endpoint-url", aws_env.endpoint_url, env=env)
        assert result.exit_code == 0, result.output

    submit_from()
    submit_from({"RUNLOG_GIT_REPO": str(elsewhere)})
    found = {c["path"]: c for c in _changes(run_cli, "@2", "@1") if c["section"] == "git"}
    assert found["state"]["old"] == "dirty" and found["state"]["new"] == "none", found
    assert (found["dirty"]["kind"], found["dirty"]["old"], found["dirty"]["new"]) == ("removed", True, None), found
    assert found["commit"]["kind"] == "removed"
    assert "true -> false" not in run_cli("diff", "@2", "@1").stdout
    # a clean tree against the same: `false` removed (not "changed"), and two known sides still compare
    git(git_repo, "checkout", "-q", "--", "workflow-inputs.json")
    submit_from()
    clean = {c["path"]: c for c in _changes(run_cli, "@2", "@1") if c["section"] == "git"}
    assert (clean["dirty"]["kind"], clean["dirty"]["new"]) == ("added", False), clean
    assert {c["path"]: (c["old"], c["new"]) for c in _changes(run_cli, "@3", "@1")
            if c["section"] == "git"}["dirty"] == (True, False)
