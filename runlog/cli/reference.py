"""Generate docs/cli.md from the commands' own --help, so the reference never drifts.

    python -m runlog.cli.reference > docs/cli.md

tests/test_cli_basics.py fails when docs/cli.md differs from what this prints."""

from __future__ import annotations

import click

from runlog.cli import COMMANDS, LazyGroup, cli

WIDTH = 100


def _context(command: click.Command, name: str, parent: click.Context | None = None) -> click.Context:
    """A context laid out as the real CLI's is (its context settings), at a fixed width."""
    settings = {**cli.context_settings, "terminal_width": WIDTH, "max_content_width": WIDTH}
    return click.Context(command, info_name=name, parent=parent, **settings)


def help_text(command: click.Command, name: str, parent: click.Context | None = None) -> str:
    return command.get_help(_context(command, name, parent))


def render() -> str:
    root = _context(cli, "runlog")
    parts = [
        "# Command-line reference",
        "",
        "Generated from `--help` by `python -m runlog.cli.reference > docs/cli.md`; a test keeps it in sync.",
        "",
        "Exit status, for every command: 0 success; 1 the service rejected a request, or a check "
        "(verify, diff --exit-code) found a difference or problem, or a read command met a blob of a batch's "
        "cohort that is lost or was changed (it writes what does not need it first: see docs/record.md); "
        "2 bad input (usage, unreadable "
        "files, unknown references, unusable ledger); 3 replay refused because of drift; "
        "70 internal error (please report it, with the output of --debug).",
        "",
        "Errors are one line on stderr, `runlog: error: ...`. A usage error ends with where to look "
        "(``(see `runlog show --help`)``), and one argument too many also says what the command takes: "
        "``Got unexpected extra argument (B): `runlog show` takes one REF (see `runlog show --help`)``.",
        "",
        "## runlog",
        "",
        "```",
        help_text(cli, "runlog"),
        "```",
    ]
    group: LazyGroup = cli
    for name in sorted(COMMANDS):
        command = group.get_command(root, name)
        parts += ["", f"## runlog {name}", "", "```", help_text(command, name, root), "```"]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    click.echo(render(), nl=False)
