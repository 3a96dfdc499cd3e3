"""Pieces shared by the command modules: AWS options, ledger opening, output helpers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from runlog import config as configuration
from runlog.cli.wording import command_line
from runlog.errors import LedgerError


def aws_options(func):
    """--profile, --region, --endpoint-url: the aws CLI's global options, same meaning."""
    func = click.option("--endpoint-url", help="HealthOmics endpoint (e.g. the local emulator); "
                        "also AWS_ENDPOINT_URL_OMICS / AWS_ENDPOINT_URL.")(func)
    func = click.option("--region", help="AWS region (else AWS_REGION / AWS_DEFAULT_REGION / the profile).")(func)
    func = click.option("--profile", help="AWS named profile (else AWS_PROFILE).")(func)
    return func


def load_config(ctx: click.Context, **overrides: Any) -> configuration.Config:
    root = ctx.find_root()
    flags = {"ledger": (root.obj or {}).get("ledger"), **overrides}
    return configuration.load(overrides=flags)


def aws_settings(config: configuration.Config, profile=None, region=None, endpoint_url=None, *,
                 recorded: dict | None = None):
    """Where AWS calls go: flag > recorded (when acting on a record) > config > environment."""
    from runlog.aws import settings_for

    return settings_for(config, profile=profile, region=region, endpoint_url=endpoint_url, recorded=recorded)


def open_ledger(config: configuration.Config, *, create: bool, notice: bool = True, readonly: bool = False):
    """Open the configured ledger; say on stderr when attempts are pending. Returns None for a
    ledger that does not exist yet when create is False. readonly=True (the read commands:
    log, show, diff, export, verify) opens it with SQLite's mode=ro: nothing is created,
    migrated or written, and an empty or foreign file is an error."""
    from runlog.ledger import Ledger

    path = config.ledger_path()
    if "\0" not in str(path) and not create and not path.exists():
        return None
    ledger = Ledger.open(path, create=create and not readonly, readonly=readonly)
    if notice:
        with reading(ledger):
            mention_pending(ledger)
    return ledger


def require_ledger(config: configuration.Config, *, notice: bool = True, readonly: bool = False):
    """Open the configured ledger, which must already exist (commands that only read it;
    readonly=True for those that never write: log, show, diff, export, verify)."""
    ledger = open_ledger(config, create=False, notice=notice, readonly=readonly)
    if ledger is None:
        raise LedgerError(no_ledger(config))
    return ledger


def said_lost(ledger) -> None:
    """After a read command wrote what it could: a blob of a batch's cohort it could not read
    (Ledger.blob: missing, or changed outside runlog) named in one line with the fix, exit 1."""
    from runlog.errors import BlobLost

    if ledger.lost:
        first = next(iter(ledger.lost.values()))
        more = len(ledger.lost) - 1
        raise BlobLost(first.message + (f" ({more} other blob(s) too)" if more else ""), first.sha256)


@contextmanager
def reading(ledger) -> Iterator[None]:
    """SQLite errors while reading (a corrupt page) become the one-line 'cannot read ledger'."""
    import sqlite3

    from runlog.ledger import cannot_read

    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise LedgerError(cannot_read(ledger.path, exc)) from None


def mention_pending(ledger) -> None:
    pending = ledger.pending_request_ids()  # not ledger.pending(): no scan of every attempt
    if pending:
        from runlog.textsafe import terminal_safe

        ids = ", ".join(terminal_safe(i) for i in pending[:3])  # a pulled attempt's id is someone else's text
        more = "…" if len(pending) > 3 else ""
        warn(f"{len(pending)} pending attempt(s) ({ids}{more}): sent or about to be sent, but not recorded; "
             "run `runlog recover`")


def no_ledger(config: configuration.Config) -> str:
    return f"no ledger at {config.ledger_path()} yet (nothing submitted with it)"


def warn(message: str, *, heading: str = "warning") -> None:
    from runlog.textsafe import terminal_safe  # a warning may quote the service's text (an ETag it read)

    click.echo(f"runlog: {heading}: {terminal_safe(command_line(message))}", err=True)


def dry_run_warn(message: str) -> None:
    """`warn` for --dry-run: the warning is the record's own words ("…; recorded as such"),
    which that run does not write, so the line says it is what the record would hold."""
    warn(message, heading="warning the record would hold (dry run, not written)")


def note(message: str) -> None:
    from runlog.textsafe import terminal_safe

    click.echo(f"runlog: {terminal_safe(command_line(message))}", err=True)


def echo_json(value: Any, indent: int | None = 2, *, sort_keys: bool = False) -> None:
    """JSON for stdout, with every control or formatting character escaped (textsafe.terminal_json)."""
    from runlog.textsafe import terminal_json

    click.echo(terminal_json(value, indent=indent, sort_keys=sort_keys, default=str))


def short_time(iso: str | None) -> str:
    if not iso:
        return "-"
    return iso.replace("T", " ")[:19]

