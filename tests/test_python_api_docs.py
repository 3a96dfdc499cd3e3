"""docs/python-api.md's examples, run top to bottom in one namespace against the emulator,
in a real analysis repository, as a reader would run them."""

from __future__ import annotations

import re

from conftest import PROJECT_ROOT
from runlog.ledger import Ledger

DOC = PROJECT_ROOT / "docs" / "python-api.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", text, re.M | re.S)


def test_every_python_example_runs(aws_env, ledger_path, git_repo, monkeypatch, capsys):
    # what a reader sets to point boto3 and runlog at the emulator (docs/emulator.md)
    monkeypatch.setenv("AWS_DISABLE_HOST_PREFIX_INJECTION", "true")
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 8
    namespace: dict = {"__name__": "__docs__"}
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"docs/python-api.md, example {number}", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "missing outputUri" in printed and "ResourceNotFoundException 404" in printed
    with Ledger.open(ledger_path, create=False) as ledger:
        kinds = sorted(e.record["kind"] for e in ledger.entries())
        outcomes = sorted(e.outcome for e in ledger.entries())
    assert kinds.count("replay") == 1 and kinds.count("submit") == 4 and kinds.count("batch") == 1
    assert outcomes.count("rejected") == 1
    assert (git_repo / "runs.prov.json").is_file()
    runs = len(kinds) - kinds.count("batch")  # each record names its own run but the batch, which is no run
    assert f"{runs} runs in {len(kinds)} records; ledger intact: True" in printed, printed
    assert (git_repo / "runs.html").is_file()


def test_the_readme_links_the_python_api():
    assert "](docs/python-api.md)" in (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
