"""`runlog export`: provenance files for papers and reviewers."""

from __future__ import annotations

from pathlib import Path

import click

from runlog.cli.common import echo_json, load_config, require_ledger

FORMATS = ["ro-crate", "bco", "prov-json", "prov-n", "methods", "all"]
LISTED_VERDICTS = 10  # --validate lists each valid file up to this many verdicts; more are counted


@click.command()
@click.argument("refs", nargs=-1, required=True, metavar="REF...")
@click.option("--format", "-f", "fmt", type=click.Choice(FORMATS), default="ro-crate", show_default=True,
              help="What to write.")
@click.option("-o", "--output", "target", type=click.Path(path_type=Path), required=True,
              help="File or directory to write (ro-crate: a directory, or NAME.zip).")
@click.option("--license", "license_", help="Licence of the exported metadata: SPDX id or URL (default: "
              "license in .runlog.toml; without one the export says so in a warning).")
@click.option("--author", "authors", multiple=True, metavar="'NAME <ORCID URL>'",
              help="An author of the export (repeatable; default: authors in .runlog.toml).")
@click.option("--usability", help="The BioCompute Object's usability statement (default: usability in the config).")
@click.option("--title", help="Title of the crate and of CITATION.cff.")
@click.option("--runs-only", is_flag=True, help="Refuse failed attempts instead of exporting them as NOT_RUN.")
@click.option("--force", is_flag=True, help="Replace an existing output (a file or a directory; an output that "
              "is a symbolic link is refused, never followed).")
@click.option("--validate", is_flag=True, help="Check what was written with each standard's validator or schema.")
@click.option("--json", "as_json", is_flag=True, help="Print the files written (and verdicts) as JSON.")
@click.pass_context
def export(ctx, refs, fmt, target, license_, authors, usability, title, runs_only, force, validate, as_json):
    """Write provenance for one or more runs: a Workflow Run RO-Crate, an IEEE 2791
    BioCompute Object, W3C PROV-JSON / PROV-N, or a methods bundle for a paper.

    Several REFs make one export covering all of them (a paper's whole set of runs); replays
    are linked to their originals. A batch's REF exports the batch (the cohort: its definition,
    shared default and true counts) and its member runs. Exports are deterministic: the same records give the same
    bytes, so they can be committed and compared. Nothing is half-written: files are built
    beside the target and moved into place. S3 and omics:// inputs are referenced, never
    downloaded. See docs/export.md.

    \b
    Examples:
      runlog export @1 -f ro-crate -o crate/ --license CC-BY-4.0 --validate
      runlog export 4207391 4207392 -f all -o supplementary/ --license CC-BY-4.0
      runlog export @1 -f bco -o run.bco.json --usability "Germline calls for NA12878"
      runlog export @1 -f prov-n -o run.provn
      runlog export 7654321 -f all -o cohort/ --license CC-BY-4.0   # a batch and its runs
    """
    import runlog.export.write
    from runlog.cli.wording import command_line
    from runlog.errors import UsageError
    from runlog.export.terms import parse_person
    from runlog.export.validate import check_export
    from runlog.export.write import warnings

    config = load_config(ctx)
    configured = config.get("authors") or []
    if isinstance(configured, str):  # RUNLOG_AUTHORS: "A <orcid>; B <orcid>"
        configured = [part for part in configured.split(";") if part.strip()]
    given = list(authors) or list(configured)
    if not all(isinstance(a, str) for a in given):
        raise UsageError("authors in the configuration must be strings such as 'Name <https://orcid.org/...>'")
    people = [parse_person(a) for a in given]
    publisher = parse_person(config.get("publisher")) if config.get("publisher") else None
    licence = license_ or config.get("license")
    ledger = require_ledger(config, readonly=True)
    with ledger:
        from runlog.export.cohort import collect_export

        runs, batches = collect_export(ledger, list(refs), runs_only=runs_only)  # a batch: itself and its runs
    written = runlog.export.write.export(runs, fmt, target, force=force, license=licence,
                                         usability=usability or config.get("usability"), title=title,
                                         authors=people, publisher=publisher, batches=batches)
    for warning in warnings(runs, fmt, licence, batches):
        click.echo(f"runlog: warning: {command_line(warning)}", err=True)
    verdicts = check_export(target, fmt) if validate else []
    if as_json:
        echo_json({"written": [str(p) for p in written],
                   "validation": [{"file": f, "ok": None if problems is None else not problems,
                                   "problems": problems or []} for f, problems in verdicts]})
    else:
        click.echo(f"wrote {len(written)} file(s) to {target}")
        valid = [name for name, problems in verdicts if problems == []]
        listed = len(verdicts) <= LISTED_VERDICTS  # a cohort's thousands of valid BCOs: counted, not listed
        for name, problems in verdicts:
            if problems is None:
                click.echo(f"not checked: {name}")
            elif problems or listed:
                click.echo(f"{'valid' if not problems else 'INVALID'}: {name}"
                           + (f" ({len(problems)} problem(s): {problems[0]})" if problems else ""))
        if not listed and valid:
            click.echo(f"valid: {len(valid)} of the {len(verdicts)} file(s) checked (--json lists each verdict)")
    if any(problems for _, problems in verdicts):
        ctx.exit(1)
