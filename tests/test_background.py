"""runlog.background: a function run in a forked child returns its result or its error."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CODE = """
import os, sys
from runlog import background
def ok(x): return {"pid": os.getpid(), "x": x}
def bad(): raise ValueError("boom")
found = background.start(ok, [1, "two"]).result()
assert found["x"] == [1, "two"], found
print("forked" if found["pid"] != os.getpid() else "inline")
try:
    background.start(bad).result()
except Exception as exc:
    print("error:", exc)
"""


@pytest.mark.parametrize("no_fork, mode", [("", "forked"), ("1", "inline")])
def test_result_and_error_come_back(no_fork, mode):
    env = {**os.environ, "RUNLOG_NO_FORK": no_fork}
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env, check=True).stdout
    assert out.splitlines()[0] == mode
    assert "boom" in out.splitlines()[1]


IGNORING_CHILDREN = """
import runpy, signal, sys
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # as a program embedding runlog may: its children reap themselves
sys.argv = ["runlog", *sys.argv[1:]]
runpy.run_module("runlog", run_name="__main__")
"""


def test_a_process_that_ignores_its_children_submits_and_records_the_run(aws_env, git_repo, ledger_path):
    """With SIGCHLD ignored the kernel reaps runlog's git capture itself, and waitpid fails with
    ECHILD: the submission stopped with ChildProcessError before it sent anything."""
    from helpers import ROLE
    from runlog.ledger import Ledger

    done = subprocess.run([sys.executable, "-c", IGNORING_CHILDREN, "submit", "--workflow-id", "1234567",
                           "--role-arn", ROLE, "--output-uri", "s3://b/out/", "--no-resolve", "--parameters",
                           '{"input_cram": "a", "ref_dict": "b", "ref_fasta": "c", "ref_fasta_index": "d", '
                           '"sample_name": "e"}'],
                          cwd=git_repo, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with Ledger.open(ledger_path, create=False) as ledger:
        [entry] = ledger.entries()
        assert entry.record["outcome"]["response"]["id"] == json.loads(done.stdout)["id"]
        assert entry.record["git"]["state"] != "unknown"
