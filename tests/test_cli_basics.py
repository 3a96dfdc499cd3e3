"""Things every command shares: lazy imports, help text, docs in sync, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runlog.cli import COMMANDS

ROOT = Path(__file__).resolve().parent.parent
READ_ONLY = [["log"], ["show", "@1"], ["verify"], ["log", "--json"], ["diff", "@1", "@2"],
             ["export", "@1", "-f", "bco", "-o", "x.json"]]


@pytest.mark.parametrize("args", READ_ONLY, ids=lambda a: " ".join(a))
def test_read_only_commands_do_not_import_boto3(args, tmp_path):
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['runlog', '--ledger', {str(tmp_path / 'l.db')!r}, *{args!r}]\n"
        "try:\n    runpy.run_module('runlog', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'git', 'jsonschema'))\n"
        "print('IMPORTED', bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path).stdout
    assert "IMPORTED []" in out


def test_every_command_has_help_with_examples(run_cli):
    for name in COMMANDS:
        result = run_cli(name, "--help")
        assert result.exit_code == 0, name
        assert "Example" in result.stdout, f"runlog {name} --help has no examples"


def test_cli_reference_is_in_sync():
    from runlog.cli.reference import render

    documented = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert documented == render(), "docs/cli.md is stale: run `python -m runlog.cli.reference > docs/cli.md`"


def test_version(run_cli):
    from runlog import __version__

    assert __version__ in run_cli("--version").stdout


def test_unknown_command_exit_2(run_cli):
    result = run_cli("sumbit")
    assert result.exit_code == 2
    assert "No such command" in result.stderr


def test_debug_shows_traceback_only_when_asked(tmp_path, run_proc):
    bad = tmp_path / "bad.db"
    bad.write_text("garbage")
    plain = run_proc("--ledger", bad, "log")
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert plain.stderr.startswith("runlog: error: ")
    debug = run_proc("--ledger", bad, "--debug", "log")
    assert "Traceback" in debug.stderr


def test_a_closed_pipe_is_quiet(tmp_path, run_proc):
    """`runlog log | head -1` must not print an internal error when head exits."""
    import subprocess
    import sys

    from recordfactory import make_record
    from runlog.ledger import Ledger

    path = tmp_path / "l.db"
    with Ledger.open(path) as ledger:
        for i in range(300):
            ledger.add_record(make_record(run_id=str(6000000 + i)))
    proc = subprocess.Popen([sys.executable, "-m", "runlog", "--ledger", str(path), "log", "-n", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()
    proc.wait(timeout=60)
    assert "internal error" not in proc.stderr.read().decode()


def test_shell_completion_as_documented(tmp_path):
    """The README's completion lines work: commands and options complete."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "_RUNLOG_COMPLETE": "bash_complete", "COMP_WORDS": "runlog sub", "COMP_CWORD": "1"}
    commands = subprocess.run([sys.executable, "-m", "runlog"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert "submit" in commands.stdout.split(",") or "plain,submit" in commands.stdout
    env.update(COMP_WORDS="runlog recover --aban", COMP_CWORD="2")
    options = subprocess.run([sys.executable, "-m", "runlog"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert "--abandon" in options.stdout
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "_RUNLOG_COMPLETE=bash_source runlog" in readme


@pytest.mark.parametrize("args", [["--bogus"], ["submit", "--bogus"], ["sumbit"], ["log", "-n", "x"],
                                  ["show"], ["recover", "--reason", "x"]])
def test_every_error_is_one_line_with_one_prefix(args, tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "runlog", *args], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("runlog: error: "), result.stderr
    assert "--help" in lines[0]


def test_busy_emulator_port_is_a_runlog_error(tmp_path):
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "runlog", "emulator", "--port", str(port)],
                                capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith(f"runlog: error: cannot listen on 127.0.0.1:{port}")


def test_log_into_a_closed_pipe_exits_0(tmp_path, monkeypatch):
    """`runlog log | head -1`: the reader got what it wanted; runlog ends quietly with 0."""
    import subprocess
    import sys

    from recordfactory import make_record
    from runlog.ledger import Ledger

    path = tmp_path / "ledger.db"
    with Ledger.open(path) as ledger:
        for i in range(300):
            ledger.add_record(make_record(run_id=str(4000000 + i), name=f"sample-{i}"))
    proc = subprocess.Popen([sys.executable, "-m", "runlog", "--ledger", str(path), "log", "-n", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    first = proc.stdout.readline()
    proc.stdout.close()
    assert proc.wait(timeout=60) == 0
    assert first.startswith(b"RECORD")
    assert proc.stderr.read() == b""


def extra_argument_cases() -> list[tuple[str, list[str], str]]:
    """Each command that takes a fixed number of arguments, with one more than it takes, and
    what the error must say it takes."""
    import click

    from runlog.cli import cli

    cases = []
    for name in sorted(COMMANDS):
        arguments = [p for p in cli.get_command(None, name).params if isinstance(p, click.Argument)]
        if any(p.nargs < 0 for p in arguments):
            continue  # any number: none is one too many
        given = [f"x{i}" for i, p in enumerate(arguments) for _ in range(p.nargs)]
        takes = " and ".join(f"{'one' if p.required else 'an optional'} {p.human_readable_name.strip('[]')}"
                             for p in arguments) or "no arguments, only options"
        cases.append((name, [*given, "extra"], takes))
    return cases


@pytest.mark.parametrize("name,args,takes", extra_argument_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_an_extra_argument_is_refused_saying_what_the_command_takes(name, args, takes, run_proc, tmp_path):
    """`runlog show A B`: one line saying what the command takes and where to look, exit 2."""
    result = run_proc(name, *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (f"runlog: error: Got unexpected extra argument (extra): `runlog {name}` takes "
                                     f"{takes} (see `runlog {name} --help`)"), result.stderr
    assert result.stdout == ""


def test_the_example_of_the_issue(run_proc, tmp_path):
    result = run_proc("show", "A", "B", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == ("runlog: error: Got unexpected extra argument (B): `runlog show` takes one REF "
                             "(see `runlog show --help`)\n")
