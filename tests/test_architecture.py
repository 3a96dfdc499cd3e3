"""The layers of docs/architecture.md, checked on the source: which module may import what,
where SQL and botocore may appear. Imports are read with `ast` (nothing is imported here),
so a rule broken anywhere in the package fails with the file and line that broke it."""

from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

import runlog
from runlog import errors
from runlog.cli import COMMANDS

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "runlog"
GENERATED: set[str] = set()  # no generated modules (the record schema is compiled in memory)

# The AWS seam: the only modules that touch botocore (clients and error translation in aws.py,
# botocore's service models in servicemodel.py). The emulator is a separate service.
AWS_SEAM = {"runlog/aws.py", "runlog/servicemodel.py"}
# Modules that talk to SQLite directly: the ledger, its migrations, and verify (the auditor
# reads the raw tables to check them; it writes nothing).
SQL_MODULES = {"runlog/ledger.py", "runlog/migrations.py", "runlog/verify.py"}
# The ledger/record core: modules every use case stands on. They know nothing of AWS, the
# CLI, the emulator, or the use cases above them.
CORE = {"runlog/errors.py", "runlog/record.py", "runlog/ledger.py", "runlog/migrations.py",
        "runlog/arn.py", "runlog/textsafe.py", "runlog/safejson.py", "runlog/params.py", "runlog/config.py",
        "runlog/inflight.py", "runlog/background.py", "runlog/lifetime.py"}
USE_CASES = {"runlog.submit", "runlog.replay", "runlog.importer", "runlog.observe", "runlog.sync",
             "runlog.verify", "runlog.watch", "runlog.diff", "runlog.export", "runlog.resolve",
             "runlog.startrun", "runlog.gitcapture"}


@dataclass(frozen=True)
class Import:
    file: str  # path from the repository root, with /
    line: int
    module: str  # the absolute module name imported (for `from a import b`: a, and a.b)
    top_level: bool  # at module level (paid by every importer), not inside a function


def _imports(path: Path) -> list[Import]:
    rel = path.relative_to(ROOT).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found += [Import(rel, node.lineno, name, id(node) in top) for name in names]
    return found


def _sources(*roots: Path) -> list[Path]:
    return sorted(p for root in roots for p in root.rglob("*.py")
                  if p.relative_to(ROOT).as_posix() not in GENERATED)


PACKAGE_IMPORTS = [i for p in _sources(PACKAGE) for i in _imports(p)]


def _within(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _broken(rule) -> list[str]:
    return [f"{i.file}:{i.line} imports {i.module}" for i in PACKAGE_IMPORTS if rule(i)]


def test_the_rules_see_the_imports():
    """The checks below read real imports (a parser that found none would pass them all)."""
    assert any(i.file == "runlog/cli/__init__.py" and i.module == "click" for i in PACKAGE_IMPORTS)
    assert any(i.file == "runlog/aws.py" and i.module.startswith("botocore") for i in PACKAGE_IMPORTS)
    assert any(i.file.startswith("runlog/emulator/") and i.module == "runlog.servicemodel" for i in PACKAGE_IMPORTS)


def test_only_the_cli_imports_click():
    assert _broken(lambda i: _within(i.module, "click") and not i.file.startswith("runlog/cli/")) == []


def test_only_the_cli_and_main_import_the_cli():
    assert _broken(lambda i: _within(i.module, "runlog.cli") and not i.file.startswith("runlog/cli/")
                   and i.file != "runlog/__main__.py") == []


def test_the_library_never_imports_the_emulator():
    """The emulator is a separate service: the CLI may start it (`runlog emulator`, `runlog
    demo`) and tests use it; nothing else in runlog imports it."""
    assert _broken(lambda i: _within(i.module, "runlog.emulator")
                   and not i.file.startswith(("runlog/emulator/", "runlog/cli/"))) == []


def test_the_emulator_stands_apart():
    """The emulator uses botocore's service model (the protocol it speaks) and nothing else
    of runlog: it must not agree with runlog by sharing runlog's code."""
    assert _broken(lambda i: i.file.startswith("runlog/emulator/") and _within(i.module, "runlog")
                   and not _within(i.module, "runlog.emulator", "runlog.servicemodel")) == []


def test_only_the_aws_seam_imports_botocore_and_never_at_module_level():
    """Clients, error translation and service models live in the AWS seam; boto3 is not
    imported at all (clients come from botocore sessions) and botocore only inside the
    functions that need it, so read-only commands never pay for it."""
    assert _broken(lambda i: _within(i.module, "boto3", "s3transfer")
                   and not i.file.startswith("runlog/emulator/")) == []
    assert _broken(lambda i: _within(i.module, "botocore") and i.file not in AWS_SEAM
                   and not i.file.startswith("runlog/emulator/")) == []
    assert _broken(lambda i: _within(i.module, "botocore", "boto3") and i.top_level
                   and not i.file.startswith("runlog/emulator/")) == []


def test_the_core_stands_on_nothing_above_it():
    assert _broken(lambda i: i.file in CORE and (
        _within(i.module, "runlog.aws", "runlog.cli", "runlog.emulator", *USE_CASES))) == []


def test_export_reads_and_never_sends():
    """Exports are read-only: they never reach the AWS seam or a use case that sends."""
    assert _broken(lambda i: i.file.startswith("runlog/export/") and _within(
        i.module, "runlog.aws", "runlog.submit", "runlog.replay", "runlog.sync", "runlog.importer",
        "runlog.watch", "runlog.cli", "runlog.emulator")) == []


def _sql_calls(path: Path) -> list[str]:
    """Calls that run SQL (x.execute(...) and friends) or pass a SQL fragment (where=...)."""
    rel = path.relative_to(ROOT).as_posix()
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("execute", "executemany", "executescript"):
            found.append(f"{rel}:{node.lineno} calls .{node.func.attr}()")
        found += [f"{rel}:{node.lineno} passes where=" for k in node.keywords if k.arg == "where"]
    return found


def test_sql_stays_in_the_ledger():
    """Code elsewhere asks the ledger a named question (same_configuration, with_runs,
    by_run_uuid, request_id_used, ...) instead of writing SQL."""
    outside = [p for p in _sources(PACKAGE) if p.relative_to(ROOT).as_posix() not in SQL_MODULES]
    assert [call for p in outside for call in _sql_calls(p)] == []
    assert _sql_calls(PACKAGE / "ledger.py")  # the check does see SQL where it is


def test_tests_share_helpers_through_helper_modules():
    """A test module never imports another test module: shared helpers live in
    tests/helpers.py (and recordfactory.py, killers.py), fixtures in conftest.py."""
    tests = ROOT / "tests"
    found = [f"{i.file}:{i.line} imports {i.module}" for p in _sources(tests) for i in _imports(p)
             if i.module.split(".")[0].startswith("test_")]
    assert found == []


def test_one_version_source():
    """pyproject.toml reads the version from runlog.__version__; it does not repeat it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "runlog.__version__"}
    from importlib.metadata import version

    assert version("runlog") == runlog.__version__
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in changelog and f"## [{runlog.__version__}]" in changelog


@pytest.mark.parametrize("rule", ["ruff", "mypy"])
def test_lint_and_types_are_configured_and_run_by_ci(rule):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert any(dep.startswith(rule) for dep in project["project"]["optional-dependencies"]["test"])
    assert rule in project["tool"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.index(rule) < ci.index("pytest")


# -- library messages leave the command line's words to the command line ----------------------

_FLAG_RE = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z](?=[\s,;:.)]|$))")
_COMMAND_RE = re.compile(r"\brunlog (" + "|".join(sorted(map(re.escape, COMMANDS), key=len, reverse=True)) + r")\b")
_PIP = "pip install -U runlog"  # pip's words, not runlog's
_EXCEPTIONS = {name for name in dir(errors) if isinstance(getattr(errors, name), type)}


def _message_texts(path: Path) -> list[tuple[int, str]]:
    """The string literals of a module's messages: inside `raise` statements, in calls of an
    exception class (`return TransferError(...)`), and in *_HINT constants."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            roots.append(node.exc)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and (
                node.func.id in _EXCEPTIONS or node.func.id.endswith("Error")):
            roots.append(node)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id.endswith("_HINT")
                                                  for t in node.targets):
            roots.append(node.value)
    return sorted({(sub.lineno, sub.value) for root in roots for sub in ast.walk(root)
                   if isinstance(sub, ast.Constant) and isinstance(sub.value, str)})


LIBRARY = [p for p in _sources(PACKAGE) if not _within(p.relative_to(ROOT).as_posix().removesuffix(".py")
                                                       .replace("/", "."), "runlog.cli", "runlog.emulator")]


def test_library_messages_name_no_flag_and_no_command_line():
    """A library message names what a Python caller changes (`force=True`, `recover()`);
    runlog/cli/wording.py shows it as the option or command (--force, `runlog recover`)."""
    found = [f"{p.relative_to(ROOT).as_posix()}:{line}: {text!r}" for p in LIBRARY for line, text in _message_texts(p)
             if _FLAG_RE.search(text.replace(_PIP, "")) or _COMMAND_RE.search(text)]
    assert found == []


def test_the_message_rule_sees_the_messages():
    write = {text for _, text in _message_texts(PACKAGE / "export" / "write.py")}
    assert any("to replace it" in text for text in write)
    assert any("stays pending" in text for _, text in _message_texts(PACKAGE / "submit.py"))  # RETRY_HINT
    assert _FLAG_RE.search("give --force") and _FLAG_RE.search("another -o") and not _FLAG_RE.search("us-east-1")
    assert _COMMAND_RE.search("run `runlog recover`") and _COMMAND_RE.search("`runlog submit-batch`")
    assert not _COMMAND_RE.search("this runlog reads and writes format 1")
