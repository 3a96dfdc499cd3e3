"""`runlog diff`: what changed between two runs, for people and for scripts."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import click

from runlog.cli.common import echo_json, load_config, require_ledger, said_lost
from runlog.textsafe import terminal_safe

SHA_PATTERN = r"^[0-9a-f]{40}$"  # compiled by `re` on first use
MARK = {"changed": "~", "type_changed": "~", "added": "+", "removed": "-"}
COLOUR = {"changed": "yellow", "type_changed": "magenta", "added": "green", "removed": "red"}


def _show(value, path: str = "") -> str:
    if path == "commit" and isinstance(value, str) and re.match(SHA_PATTERN, value):
        return value[:12]
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def _describe(side: str, head: dict) -> str:
    if not head.get("record"):
        return f"{side}  as it would be submitted now"
    started = "batch" if head.get("kind") == "batch" else "run"  # a batch's response names the batch
    run = f"{started} {head['run_id']}  uuid {head['run_uuid']}" if head["run_id"] else f"not run ({head['outcome']})"
    name = f"  {head['name']}" if head.get("name") else ""
    return f"{side}  record {head['record'][:12]}  {run}  {head.get('created') or ''}{name}"


@click.command()
@click.argument("ref_a", metavar="A")
@click.argument("ref_b", metavar="[B]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the changes as JSON (see docs/diff.md).")
@click.option("--exit-code", is_flag=True, help="Exit 1 when the configurations differ, 0 when they are the same.")
@click.option("--all", "include_identity", is_flag=True, help="Also compare run identity and response fields.")
@click.pass_context
def diff(ctx, ref_a, ref_b, as_json, exit_code, include_identity):
    """Show what changed between two runs: workflow, parameters, inputs, cache, run
    settings, git and runlog version, each difference by its JSON path, old -> new.

    A and B are REFs as for `show`: a run id, run uuid, run ARN, @N (the N-th newest
    record: @1 is the latest, @2 the one before) or a record-address prefix. With only A,
    compares A with what would be submitted now (current git state, parameters file read
    again): the audit question "has anything drifted since?".

    Run identity (run id, uuid, ARN, times, requestId, name) is shown in the header and
    never counted as a difference; --all compares it too. Tags runlog adds itself
    (runlog:*) are not compared.

    \b
    Examples:
      runlog diff 4207391 4207392
      runlog diff @2 @1 --json | jq '.changes[] | select(.section == "parameters")'
      runlog diff @1                  # has anything drifted since the latest run?
      runlog diff A B --exit-code && echo "same configuration"
    """
    import runlog.diff
    from runlog.diff import between

    config = load_config(ctx)
    ledger = require_ledger(config, readonly=True)
    ledger.partial = True  # a cohort whose blob is lost: the rest compared, the blob named (exit 1)
    with ledger:
        runlog.diff.before_deepdiff_import = _import_deepdiff_lean  # only if two lists differ
        found = between(ledger, ref_a, ref_b, git_repo=config.git_repo, cwd=Path.cwd(), identity=include_identity)
    changes = found.changes
    if as_json:
        echo_json(found.as_dict())
    else:
        _print_report(found.a, found.b, changes, found.notes, include_identity, found.complete)
    said_lost(ledger)
    if exit_code and changes:
        ctx.exit(1)


def _import_deepdiff_lean() -> None:
    """Import DeepDiff without its optional numpy and pydantic support (records are plain
    JSON), which would otherwise double its import time. Done only in the CLI's own process
    (runlog.diff calls it when two lists differ); the library imports DeepDiff normally."""
    if "deepdiff" in sys.modules:
        return
    blocked = [name for name in ("numpy", "pydantic", "pydantic.main") if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` raise ImportError, which DeepDiff handles
    try:
        import deepdiff  # noqa: F401
    finally:
        for name in blocked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def _print_report(head_a, head_b, changes, notes, include_identity, complete=True) -> None:
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")

    def out(text="", **style):
        text = terminal_safe(text)  # names, paths and values come from records and from the service
        click.echo(click.style(text, **style) if colour and style else text, color=colour)

    out(_describe("A", head_a), bold=True)
    out(_describe("B", head_b), bold=True)
    for note in notes:
        out(f"   ({note})")
    if not include_identity:
        out("   (run identity is not compared; --all compares it)")
    if not changes and not complete:
        out()
        out("No differences in what could be compared (see above).")
        return
    if not changes:
        out()
        from runlog.diff import no_differences

        identical, words = no_differences(head_a.get("fingerprint"), head_b.get("fingerprint"))
        out(words, **({"fg": "green"} if identical else {}))
        return
    # the paths as the terminal shows them (an escaped character is several wide), so the values line up
    shown = [terminal_safe(c.path or "(whole section)") for c in changes]
    width = min(max(map(len, shown)) + 2, 40)
    section = None
    for change, path in zip(changes, shown, strict=True):
        if change.section != section:
            section = change.section
            out()
            out(section, bold=True)
        if change.kind == "added":
            line = f"{MARK['added']} {path:<{width}} {_show(change.new, change.path)}"
        elif change.kind == "removed":
            line = f"{MARK['removed']} {path:<{width}} {_show(change.old, change.path)}"
        else:
            kinds = " (type changed)" if change.kind == "type_changed" else ""
            line = f"{MARK['changed']} {path:<{width}} {_show(change.old, change.path)} -> " \
                   f"{_show(change.new, change.path)}{kinds}"
        out(line, fg=COLOUR[change.kind])
    sections = list(dict.fromkeys(c.section for c in changes))
    out()
    out(f"{len(changes)} difference(s) in {', '.join(sections)}.")
