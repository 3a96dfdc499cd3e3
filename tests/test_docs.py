"""Users run the commands in the docs as written: every `runlog COMMAND --option` and every
`python benchmarks/X.py --option` in README.md and docs/ (the examples of each command's
--help, in docs/cli.md, included) names a command, script and option that exist. (The Python
examples of docs/python-api.md are run by test_python_api_docs.py.)"""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache

import click
import pytest

from conftest import PROJECT_ROOT
from runlog.cli import COMMANDS, cli

DOCS = [PROJECT_ROOT / "README.md"] + sorted((PROJECT_ROOT / "docs").glob("*.md"))
OPTION = re.compile(r"(?<![\w/-])--[a-zA-Z][\w-]*")
# where a command line can start: a line, a prompt, after a shell operator or a diff marker
RUNLOG = re.compile(r"(?:^[ \t]*|\$ |\$\(|[+`]|&& |\|\| |\| |; )runlog((?:[ \t]+[^\s|;&#>)`]+)+)", re.M)
BENCHMARK = re.compile(r"benchmarks/(\w+)\.py([^\n`|#;&>]*)")


def code(path) -> str:
    """The doc's code: fenced blocks (continuation lines joined) and inline code spans, one a line."""
    text = path.read_text(encoding="utf-8")
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.M | re.S)
    spans = re.findall(r"`([^`\n]+)`", prose)
    return "\n".join([block.replace("\\\n", " ") for block in blocks] + spans)


def cases(pattern: re.Pattern) -> list:
    return [pytest.param(path, match, id=f"{path.name}: {match.group(0).strip()[:70]}")
            for path in DOCS for match in pattern.finditer(code(path))]


def options(command: click.Command) -> dict[str, bool]:
    """Each option spelling of a command -> whether it takes a value."""
    found = {"--help": False}
    for param in command.params:
        if isinstance(param, click.Option):
            for name in [*param.opts, *param.secondary_opts]:
                found[name] = not param.is_flag and not param.count
    return found


@pytest.mark.parametrize("path, match", cases(RUNLOG))
def test_every_runlog_command_in_the_docs_exists_with_its_options(path, match):
    words = match.group(1).split()
    top = options(cli)
    while words and re.match(r"--?[a-zA-Z]", words[0]):  # options before the command: runlog --ledger PATH log
        name = words.pop(0)
        assert name.split("=")[0] in top, f"{path.name}: runlog has no option {name}: {match.group(0)!r}"
        if top[name] and "=" not in name and words:
            words.pop(0)
    if not words or not re.fullmatch(r"[a-z][a-z-]*", words[0]):
        return  # `runlog` alone, or `runlog --version`
    name = words[0]
    assert name in COMMANDS, f"{path.name}: no command `runlog {name}`: {match.group(0)!r}"
    command = cli.get_command(click.Context(cli, info_name="runlog"), name)
    known = options(command) | top
    for option in OPTION.findall(" ".join(words[1:])):
        assert option in known, f"{path.name}: `runlog {name}` has no option {option}: {match.group(0)!r}"


@cache
def benchmark_options(script: str) -> set[str]:
    done = subprocess.run([sys.executable, str(PROJECT_ROOT / "benchmarks" / f"{script}.py"), "--help"],
                          capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr
    return set(OPTION.findall(done.stdout))


@pytest.mark.parametrize("path, match", cases(BENCHMARK))
def test_every_benchmark_command_in_the_docs_names_a_script_and_its_options(path, match):
    script, arguments = match.group(1), match.group(2)
    assert (PROJECT_ROOT / "benchmarks" / f"{script}.py").is_file(), f"{path.name}: no benchmarks/{script}.py"
    accepted = benchmark_options(script)
    for option in OPTION.findall(arguments):
        assert option in accepted, f"{path.name}: benchmarks/{script}.py has no option {option}: {match.group(0)!r}"


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path) -> set[str]:
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
    found: set[str] = set()
    for heading in re.findall(r"^#+ (.*)$", prose, re.M):
        name, n = slug(heading), 1
        while name in found:  # a repeated heading gets -1, -2, ...
            name, n = f"{slug(heading)}-{n}", n + 1
        found.add(name)
    return found


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_link_between_the_docs_reaches_its_file_and_heading(path):
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
    for target, anchor in re.findall(r"\]\(([^)#\s:]*)(?:#([^)\s]+))?\)", prose):
        destination = (path.parent / target).resolve() if target else path
        assert destination.exists(), f"{path.name}: the link to {target} names no file"
        if anchor and destination.suffix == ".md":
            assert anchor in anchors(destination), f"{path.name}: {destination.name} has no heading #{anchor}"


def test_the_docs_name_commands_and_benchmarks():
    """The patterns above find what they are meant to (a broken pattern would pass everything)."""
    runlog_lines = [m.group(0) for path in DOCS for m in RUNLOG.finditer(code(path))]
    benchmark_lines = [m.group(0) for path in DOCS for m in BENCHMARK.finditer(code(path))]
    assert len(runlog_lines) > 200 and len(benchmark_lines) > 40
    assert any("--ledger" in line and " log" in line for line in runlog_lines)
    assert any("run.py --skip-submit" in line for line in benchmark_lines)


def test_export_bench_with_a_relative_workdir_keeps_its_ledger_there(tmp_path):
    """performance.md's `export_bench.py --runs 10000 --workdir cohort`, small: the ledger is
    built in ./cohort, and a second run reuses it (the benchmark's commands run inside the
    workdir, so a relative path once named cohort/cohort/ledger.db)."""
    command = [sys.executable, str(PROJECT_ROOT / "benchmarks" / "export_bench.py"), "--runs", "3", "--repeat", "1",
               "--formats", "methods", "--workdir", "cohort"]
    first = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "cohort" / "ledger.db").is_file() and not (tmp_path / "cohort" / "cohort").exists()
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "built earlier" in again.stdout and "| methods |" in again.stdout


def test_record_md_lists_every_field_of_the_record_schema():
    import json

    schema = json.loads((PROJECT_ROOT / "schema" / "record.schema.json").read_text(encoding="utf-8"))
    text = (PROJECT_ROOT / "docs" / "record.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(\w+)` \|", text.split("## Fields", 1)[1], re.M))
    assert documented == set(schema["properties"])


def test_ledger_md_lists_every_migration_in_order():
    from runlog.migrations import MIGRATIONS

    text = (PROJECT_ROOT / "docs" / "ledger.md").read_text(encoding="utf-8")
    documented = re.findall(r"^\| (\d+) \| `(m\d+_\w+)` \|", text, re.M)
    assert documented == [(str(n), step.__name__) for n, step in enumerate(MIGRATIONS, 1)]


def test_the_readme_and_configuration_md_list_every_command_and_key():
    from runlog.config import KEYS

    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    listed = {name for row in re.findall(r"^\| `runlog ([^`]+)`", readme, re.M) for name in re.findall(r"[a-z-]+", row)}
    listed |= set(re.findall(r"^\| `runlog \w+` / `(\w+)`", readme, re.M))  # push / pull
    assert set(COMMANDS) <= listed, f"README.md's command table lacks {sorted(set(COMMANDS) - listed)}"
    configuration = (PROJECT_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    keys = configuration.split("## Keys", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"^\| `(\w+)` \|", keys, re.M)) == set(KEYS)
