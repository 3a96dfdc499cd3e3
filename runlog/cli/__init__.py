"""The runlog command line: a thin click layer over the library.

Commands are loaded lazily (only the one being run is imported), so read-only commands
never import boto3."""

from __future__ import annotations

import importlib
import os
import re
import sqlite3
import sys

import click

from runlog import __version__
from runlog.cli import status
from runlog.cli.wording import command_line
from runlog.errors import RunlogError

# name -> (module:attribute, one-line help shown by `runlog --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "submit": ("runlog.cli.submit:submit", "Start a HealthOmics run (drop-in for `aws omics start-run`) and record it."),
    "submit-batch": ("runlog.cli.batch:submit_batch",
                     "Start a batch of runs (drop-in for `aws omics start-run-batch`) and record it."),
    "cancel": ("runlog.cli.batch:cancel", "Cancel a batch, or delete its runs; recorded as observations."),
    "recover": ("runlog.cli.submit:recover", "Complete attempts left pending by a crash or a lost connection."),
    "log": ("runlog.cli.read:log", "List recorded submissions, newest first."),
    "show": ("runlog.cli.read:show", "Print one whole record, its observations and lineage."),
    "replay": ("runlog.cli.replay:replay", "Run a recorded submission again, exactly, with drift checks."),
    "export": ("runlog.cli.export:export", "Write provenance: Workflow Run RO-Crate, BioCompute Object, PROV, methods."),
    "diff": ("runlog.cli.diff:diff", "Show what changed between two runs (or since a run)."),
    "push": ("runlog.cli.sync:push", "Send local records to the team ledger in S3."),
    "pull": ("runlog.cli.sync:pull", "Fetch and verify records from the team ledger in S3."),
    "import": ("runlog.cli.sync:import_", "Record runs started without runlog (ListRuns + GetRun)."),
    "refresh": ("runlog.cli.sync:refresh", "Record what HealthOmics says now about unfinished runs."),
    "watch": ("runlog.cli.watch:watch", "Follow a run to the end, recording what the service says."),
    "report": ("runlog.cli.report:report", "Write an HTML report of the runs: table, lineage graph, charts, diffs."),
    "verify": ("runlog.cli.read:verify", "Check every record against its content address, schema and chain."),
    "demo": ("runlog.cli.demo:demo", "Run the whole job end to end against the local emulator."),
    "emulator": ("runlog.cli.emulator:emulator", "Serve the local HealthOmics emulator."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        target = COMMANDS[name][0]
        module_name, attribute = target.split(":")
        return getattr(importlib.import_module(module_name), attribute)

    def resolve_command(self, ctx, args):
        name = args[0] if args else None
        if name and name not in COMMANDS and not name.startswith("-"):
            import difflib

            close = difflib.get_close_matches(name, list(COMMANDS), n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            ctx.fail(f"No such command {name!r}.{hint} (commands: {', '.join(sorted(COMMANDS))})")
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:  # `runlog --bogus`: the same one line as for commands
            raise _UserFacing(f"{exc.format_message()} (see `runlog --help`)", exc.exit_code) from None

    def parse_args(self, ctx, args):
        for arg in args:
            if not arg.isascii() and re.search(_NOT_TEXT, arg):
                raise _UserFacing(f"argument {ascii(arg)[:200]} is not valid UTF-8 text: runlog keeps its "
                                  "arguments as text in the ledger; give them in UTF-8", status.BAD_INPUT)
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RunlogError as exc:
            _traceback_if_debug(ctx)  # --debug adds the traceback, the exit code stays the documented one
            raise _UserFacing(command_line(exc.message), status.exit_code_for(exc)) from None
        except _UserFacing:
            raise
        except click.UsageError as exc:  # one line, one prefix, and where to look
            # an option missing its value at the end (`runlog log -n`) comes without its context:
            # the command being started is the one to look at
            where = exc.ctx.command_path if exc.ctx is not None else \
                " ".join(filter(None, (ctx.command_path, ctx.invoked_subcommand)))
            message = exc.format_message()
            if exc.ctx is not None and message.startswith("Got unexpected extra argument"):
                message += f": `{where}` takes {_takes(exc.ctx.command)}"  # `runlog show A B`
            raise _UserFacing(f"{message} (see `{where} --help`)", exc.exit_code) from None
        except click.ClickException as exc:
            raise _UserFacing(exc.format_message(), exc.exit_code) from None
        except (click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            raise _UserFacing("interrupted", status.INTERRUPTED) from None
        except sqlite3.DatabaseError as exc:  # a corrupt page met while reading, in any command
            _traceback_if_debug(ctx)
            raise _UserFacing(f"cannot read the ledger: {exc}; the file was left untouched (restore it from a "
                              "backup, or `runlog pull` from your team ledger)", status.BAD_INPUT) from None
        except BrokenPipeError:
            # The reader went away (`runlog log | head -1`): what it wanted it got. Whatever is
            # still buffered goes nowhere, quietly, and the command succeeded.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise click.exceptions.Exit(0) from None
        except Exception as exc:
            _traceback_if_debug(ctx)
            raise _UserFacing(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the "
                              "traceback, and please report it)", status.INTERNAL) from None


def _takes(command: click.Command) -> str:
    """What a command's positional arguments are, for the error about one too many: "one REF",
    "one A and an optional B", "no arguments, only options"."""
    words = []
    for param in command.params:
        if isinstance(param, click.Argument):
            name = param.human_readable_name.strip("[]").removesuffix("...").strip("[]")
            words.append(f"any number of {name}" if param.nargs < 0 else
                         f"{'one' if param.required else 'an optional'} {name}" if param.nargs == 1 else
                         f"{param.nargs} {name}")
    return " and ".join(words) if words else "no arguments, only options"


# Lone surrogates: what Python makes of argument bytes that are not UTF-8 (surrogateescape).
_NOT_TEXT = "[\ud800-\udfff]"  # (compiled by `re` on first use: most arguments are ASCII)


def _traceback_if_debug(ctx) -> None:
    if ctx.obj and ctx.obj.get("debug"):
        import traceback

        click.echo(traceback.format_exc().rstrip("\n"), err=True)


class _UserFacing(click.ClickException):
    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares it a class constant (1)

    def show(self, file=None):
        from runlog.textsafe import terminal_safe  # a message may quote the service's text (GetRun's status)

        click.echo(f"runlog: error: {terminal_safe(self.format_message())}", err=True)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="runlog")
@click.option("--ledger", "ledger", type=click.Path(dir_okay=False), envvar="RUNLOG_LEDGER",
              help="Ledger file (default: .runlog/ledger.db at the analysis repository's root). Env: RUNLOG_LEDGER.")
@click.option("--debug", is_flag=True, help="Show the traceback before the one-line error (the exit status is unchanged).")
@click.pass_context
def cli(ctx, ledger, debug):
    """runlog: every AWS HealthOmics run reproducible and auditable.

    Use `runlog submit` where you used `aws omics start-run`; each submission becomes a
    content-addressed record in a local SQLite ledger.

    \b
    Examples:
      runlog demo                                   # try it all against the local emulator
      runlog submit --workflow-id 1234567 --role-arn ROLE --output-uri s3://bucket/out/ \\
                    --parameters file://inputs.json
      runlog log -n 5
      runlog show @1
      runlog verify
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    ctx.obj["ledger"] = ledger


def main(argv: list[str] | None = None) -> None:
    """Run one command; ends with SystemExit carrying its exit status (a program that calls
    this goes on after catching it)."""
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="runlog")


def run() -> None:
    """The `runlog` program (its console script; `python -m runlog` when the interpreter was
    started for it: runlog/__main__.py): `main`, then the process ends at once with the
    command's exit status (_leave). A program that runs runlog itself calls `main`."""
    from runlog import lifetime

    lifetime.ending_at_once()
    try:
        main()
    except SystemExit as done:
        _leave(done.code)
        raise


def _leave(code: object) -> None:
    """End the process with `code` now that the command is done, without tearing the
    interpreter down: freeing every object one by one (a cohort's 100 000 run settings,
    botocore's models) takes a submit-batch 0.02-0.05 s and tells nobody anything. What the
    end of the process would do that matters is done first, in its order: the output
    flushed, the exit handlers run (coverage's, a temporary directory's, a program's: a
    ledger is still open for them), every ledger connection closed (its WAL copied into the
    file), the output flushed again. Returns, for the usual end, when any of that is not
    certain: another thread still working (a non-daemon thread is waited for), a profiler,
    tracer or debugger present (it reports at the end, or restarts the program), an
    interactive prompt to follow (`python -i`, PYTHONINSPECT), the output that cannot be
    flushed, a ledger that cannot be closed here, Ctrl-C meanwhile."""
    import threading

    if code is not None and type(code) is not int:
        return
    here = threading.current_thread()
    if here is not threading.main_thread() or sys.getprofile() is not None or sys.gettrace() is not None \
            or "bdb" in sys.modules or sys.flags.inspect or os.environ.get("PYTHONINSPECT"):
        return
    if any(thread is not here and not thread.daemon and thread.is_alive() for thread in threading.enumerate()):
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # a closed pipe, say: the usual end reports it as it always has
        return
    import atexit

    try:
        atexit._run_exitfuncs()  # (each handler's error is printed, as at the usual end; run once)
        ledger = sys.modules.get("runlog.ledger")
        if ledger is not None and not ledger.close_opened():
            return
    except KeyboardInterrupt:  # the usual end finishes what was left
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # what a handler printed to a closed pipe is lost at the usual end too
            pass
    os._exit(code or 0)
