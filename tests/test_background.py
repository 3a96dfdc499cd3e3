"""runlog.background: a function run in a forked child returns its result or its error."""

from __future__ import annotations

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
