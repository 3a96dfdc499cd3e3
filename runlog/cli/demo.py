"""`runlog demo`: the whole job, end to end, against the embedded HealthOmics emulator."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import click

from runlog.emulator.seed import EXAMPLES, OMICS_WORKFLOW_INPUTS_JSON, WORKFLOW_INPUTS_JSON, example_args

# The five `aws omics start-run` examples from the AWS CLI documentation, verbatim, with
# runlog in front: (directory of the analysis repository to run in, arguments). The fifth
# reads the omics:// version of workflow-inputs.json, kept in its own directory.
OMICS_INPUTS_DIR = "omics-inputs"
SEED_SUBMISSIONS = [
    (OMICS_INPUTS_DIR if inputs == OMICS_WORKFLOW_INPUTS_JSON else ".", ["submit", *example_args(command)])
    for _title, command, inputs in EXAMPLES
]


def _run(args: list[str]) -> int:
    """Run one runlog command in this process, as a user would type it."""
    from runlog.cli import cli

    click.secho("\n$ runlog " + shlex.join(args), bold=True)
    try:
        cli.main(args=args, prog_name="runlog", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return 0


def _make_repo(path: Path) -> None:
    """The demo's analysis repository; made again in place (a second demo into the same
    --workdir) it is brought back to the seed files and committed only if they changed."""
    (path / OMICS_INPUTS_DIR).mkdir(parents=True, exist_ok=True)
    (path / "workflow-inputs.json").write_text(WORKFLOW_INPUTS_JSON)
    (path / OMICS_INPUTS_DIR / "workflow-inputs.json").write_text(OMICS_WORKFLOW_INPUTS_JSON)
    (path / "README.md").write_text("An analysis repository made by `runlog demo`.\n")
    if shutil.which("git") is None:
        click.echo("(git is not installed: records will say there is no repository)")
        return
    env = {**os.environ, "GIT_AUTHOR_NAME": "runlog demo", "GIT_AUTHOR_EMAIL": "demo@example.org",
           "GIT_COMMITTER_NAME": "runlog demo", "GIT_COMMITTER_EMAIL": "demo@example.org"}

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=path, check=True, env=env, capture_output=True,
                                  text=True).stdout
        except subprocess.CalledProcessError as exc:
            raise click.ClickException(f"git {' '.join(args)} failed in {path}: "
                                       f"{(exc.stderr or '').strip() or exc}") from None

    if not (path / ".git").exists():
        git("init", "-q")
    git("add", "README.md", "workflow-inputs.json", OMICS_INPUTS_DIR)
    if git("status", "--porcelain", "--untracked-files=no").strip() or not git("rev-parse", "--verify", "-q", "HEAD"):
        git("commit", "-q", "-m", "analysis inputs")


@click.command()
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Where to make the demo analysis repository (default: a new temporary directory).")
@click.pass_context
def demo(ctx, workdir):
    """Run the whole job end to end against the local HealthOmics emulator.

    Starts the emulator on 127.0.0.1 (no AWS account needed), makes an analysis git
    repository, submits the five `aws omics start-run` examples from the AWS CLI
    documentation verbatim with `runlog submit` (the fifth reads omics:// read-set and
    reference URIs, resolved against the emulator's seed data), lets an hour pass on the emulator's clock, records
    the runs' final status (`refresh`), and shows the ledger with `log`, `show`, `diff`,
    `export` (validated provenance files) and `verify`, replays the first run with one
    parameter changed, and ends by writing the HTML report (`report`) and printing its path. The demo's ledger is in the demo repository's
    `.runlog/` (or --ledger).

    \b
    Examples:
      runlog demo
      runlog demo --workdir ./runlog-demo
    """
    from runlog.emulator import Emulator

    workdir = (workdir or Path(tempfile.mkdtemp(prefix="runlog-demo-"))).resolve()
    repo = workdir / "analysis"
    _make_repo(repo)
    with Emulator(port=0) as emu:
        # Dummy credentials and the emulator's endpoint for this process only.
        for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_OMICS", "AWS_ENDPOINT_URL_STS"):
            os.environ.pop(var, None)
        os.environ.update({
            "AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo", "AWS_DEFAULT_REGION": "us-west-2",
            "AWS_REGION": "us-west-2", "AWS_ENDPOINT_URL": emu.endpoint_url, "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(workdir / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "no-aws-credentials"),
        })
        os.chdir(repo)
        click.echo(f"HealthOmics emulator listening on {emu.endpoint_url}")
        click.echo(f"analysis repository: {repo}")
        earlier = Path(ctx.find_root().obj.get("ledger") or repo / ".runlog" / "ledger.db")
        if earlier.exists():
            click.echo(f"{earlier} already holds an earlier demo's records: the new ones are added to it. The "
                       "emulator starts afresh, so its run ids repeat the earlier ones: name runs by @N or by "
                       "record address")
        failures = 0
        for where, args in SEED_SUBMISSIONS:
            os.chdir(repo / where)
            if where != ".":
                click.secho(f"\n$ cd {where}", bold=True)
            failures += _run(args) != 0
            if where != ".":
                os.chdir(repo)
                click.secho("\n$ cd ..", bold=True)
        emu.advance(3600)  # an hour later on the emulator's clock: the runs have finished
        supplementary = workdir / "supplementary"
        steps = (["refresh"], ["log"], ["show", "@5"], ["diff", "@5", "@1"],
                 ["export", "@5", "@3", "--format", "all", "--output", str(supplementary), "--license", "CC-BY-4.0",
                  "--force", "--validate"],
                 ["verify"], ["replay", "@5", "--set", "sample_name=NA12878-replay"],
                 ["report", "-o", str(workdir / "report.html"), "--force"])
        for args in steps:
            failures += _run(args) != 0
    ledger = ctx.find_root().obj.get("ledger") or str(repo / ".runlog" / "ledger.db")
    click.echo(f"\nThe demo's ledger is {ledger}. Explore it with:\n  cd {shlex.quote(str(repo))} && runlog log")
    click.echo(f"The demo's report (open it in a browser): {workdir / 'report.html'}")
    if failures:
        raise click.ClickException(f"{failures} demo step(s) failed")
