"""`runlog demo`: the whole job, end to end, against the embedded HealthOmics emulator."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import click

SEED_PARAMETERS = {
    "sample_name": "NA12878",
    "input_cram": "s3://omics-artifacts-01d6xmpl4e72dd32/NA12878.cram",
    "ref_dict": "s3://omics-artifacts-01d6xmpl4e72dd32/Homo_sapiens_assembly38.dict",
    "ref_fasta": "s3://omics-artifacts-01d6xmpl4e72dd32/Homo_sapiens_assembly38.fasta",
    "ref_fasta_index": "omics-artifacts-01d6xmpl4e72dd32/Homo_sapiens_assembly38.fasta.fai",
}

# The four `aws omics start-run` examples from the AWS CLI documentation, with runlog in front.
SEED_SUBMISSIONS = [
    ["submit", "--workflow-id", "1234567",
     "--role-arn", "arn:aws:iam::123456789012:role/omics-service-role-serviceRole-W8O1XMPL7QZ",
     "--name", "cram-to-bam", "--output-uri", "s3://omics-artifacts-01d6xmpl4e72dd32/workflow-output/",
     "--run-group-id", "1234567", "--priority", "1", "--storage-capacity", "10", "--log-level", "ALL",
     "--parameters", "file://workflow-inputs.json"],
    ["submit", "--workflow-id", "1234567", "--workflow-owner-id", "123456789012",
     "--role-arn", "arn:aws:iam::123456789012:role/HealthOmicsServiceRole",
     "--output-uri", "s3://your-bucket/results/", "--parameters", '{"param1": "value1", "param2": "value2"}'],
    ["submit", "--workflow-id", "7206765", "--role-arn", "arn:aws:iam::123456789012:role/HealthOmicsServiceRole",
     "--output-uri", "s3://healthomics-output-bucket-demo/results/",
     "--parameters", '{"input": "s3://healthomics-output-bucket-demo/input/samplesheet.csv", "protocol": "10XV3", '
                     '"aligner": "star", "skip_emptydrops": "true"}',
     "--cache-id", "1234567", "--cache-behavior", "CACHE_ALWAYS"],
    ["submit", "--role-arn", "arn:aws:iam::713632817814:role/HealthOmicsServiceRole",
     "--output-uri", "s3://healthomics-output-bucket-demo/results/", "--run-id", "3282892"],
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
    path.mkdir(parents=True, exist_ok=True)
    (path / "workflow-inputs.json").write_text(json.dumps(SEED_PARAMETERS, indent=2) + "\n")
    (path / "README.md").write_text("An analysis repository made by `runlog demo`.\n")
    if shutil.which("git") is None:
        click.echo("(git is not installed: records will say there is no repository)")
        return
    env = {**os.environ, "GIT_AUTHOR_NAME": "runlog demo", "GIT_AUTHOR_EMAIL": "demo@example.org",
           "GIT_COMMITTER_NAME": "runlog demo", "GIT_COMMITTER_EMAIL": "demo@example.org"}
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "analysis inputs"]):
        subprocess.run(["git", *args], cwd=path, check=True, env=env, capture_output=True)


@click.command()
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Where to make the demo analysis repository (default: a new temporary directory).")
@click.pass_context
def demo(ctx, workdir):
    """Run the whole job end to end against the local HealthOmics emulator.

    Starts the emulator on 127.0.0.1 (no AWS account needed), makes an analysis git
    repository, submits the four `aws omics start-run` examples from the AWS CLI
    documentation with `runlog submit`, lets an hour pass on the emulator's clock, records
    the runs' final status (`refresh`), and shows the ledger with `log`, `show`, `diff`,
    `export` (validated provenance files) and `verify`. The demo's ledger is in the demo
    repository's `.runlog/` (or --ledger).

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
        failures = sum(_run(args) != 0 for args in SEED_SUBMISSIONS)
        emu.advance(3600)  # an hour later on the emulator's clock: the runs have finished
        supplementary = workdir / "supplementary"
        steps = (["refresh"], ["log"], ["show", "@4"], ["diff", "@4", "@1"],
                 ["export", "@4", "@3", "--format", "all", "--output", str(supplementary), "--license", "CC-BY-4.0",
                  "--force", "--validate"],
                 ["verify"])
        for args in steps:
            failures += _run(args) != 0
    ledger = ctx.find_root().obj.get("ledger") or str(repo / ".runlog" / "ledger.db")
    click.echo(f"\nThe demo's ledger is {ledger}. Explore it with:\n  cd {shlex.quote(str(repo))} && runlog log")
    if failures:
        raise click.ClickException(f"{failures} demo step(s) failed")
