"""Shared fixtures: an isolated AWS environment, the HealthOmics emulator over HTTP,
real git repositories and real ledger files in tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Never let a test reach real AWS: dummy credentials, no shared config files.
_AWS_VARS = [
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_OMICS", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_STS",
    "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_REGION",
]


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path_factory):
    """Every test: dummy credentials, no user config, no runlog config from the real home."""
    home = tmp_path_factory.mktemp("home")
    for var in _AWS_VARS:
        monkeypatch.delenv(var, raising=False)
    for var in list(os.environ):
        if var.startswith("RUNLOG_"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "aws-config-absent"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "aws-credentials-absent"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("AWS_PAGER", "")
    monkeypatch.setenv("NO_COLOR", "1")
    # Subprocesses import this checkout's runlog whatever their working directory.
    monkeypatch.setenv("PYTHONPATH", str(PROJECT_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    yield


@pytest.fixture
def emulator():
    """The HealthOmics emulator, in-process over HTTP on 127.0.0.1, port chosen by the OS.
    Its clock is manual: runs only change status when the test calls emulator.advance().
    Its batch ids are fixed, from 8100001 (an emulator of its own picks a random start)."""
    from runlog.emulator import Emulator

    emu = Emulator(port=0, first_batch_id=8100001)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def aws_env(monkeypatch, emulator):
    """Point every AWS client (omics and sts) at the emulator, as a user would with AWS_ENDPOINT_URL."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.endpoint_url)
    return emulator


@pytest.fixture
def ledger_path(tmp_path, monkeypatch):
    path = tmp_path / "ledger" / "ledger.db"
    monkeypatch.setenv("RUNLOG_LEDGER", str(path))
    return path


def _git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def git_repo(tmp_path, monkeypatch):
    """A real analysis repository with one commit, as the current directory."""
    repo = tmp_path / "analysis"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "scientist@example.org")
    _git(repo, "config", "user.name", "A Scientist")
    _git(repo, "remote", "add", "origin", "https://alice:s3cret@github.com/lab/analysis.git")
    (repo / "workflow-inputs.json").write_text(
        '{"sample_name": "NA12878", '
        '"input_cram": "s3://omics-artifacts-01d6xmpl4e72dd32/NA12878.cram", '
        '"ref_dict": "s3://omics-artifacts-01d6xmpl4e72dd32/Homo_sapiens_assembly38.dict", '
        '"ref_fasta": "s3://omics-artifacts-01d6xmpl4e72dd32/Homo_sapiens_assembly38.fasta", '
        '"ref_fasta_index": "omics-artifacts-01d6xmpl4e72dd32/Homo_sapiens_assembly38.fasta.fai"}\n'
    )
    (repo / "README.md").write_text("analysis\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "initial analysis")
    monkeypatch.chdir(repo)
    return repo


@pytest.fixture
def git():
    """Run git in a directory: git(repo, 'commit', ...) -> stdout."""
    return _git


@pytest.fixture
def run_cli():
    """Invoke the runlog CLI in-process with click's CliRunner; returns the Result."""
    from click.testing import CliRunner

    from runlog.cli import cli

    def invoke(*args, input=None, env=None):
        runner = CliRunner()
        return runner.invoke(cli, [str(a) for a in args], input=input, env=env, catch_exceptions=False)

    return invoke


@pytest.fixture
def run_proc():
    """Run `python -m runlog ...` as a real subprocess; returns CompletedProcess."""

    def invoke(*args, cwd=None, env=None, timeout=120, input=None):
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        return subprocess.run(
            [sys.executable, "-m", "runlog", *[str(a) for a in args]],
            cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, input=input,
        )

    return invoke


@pytest.fixture
def s3_server(monkeypatch):
    """moto's S3 server on 127.0.0.1 (the real S3 protocol over HTTP); AWS_ENDPOINT_URL_S3 points at it.
    Yields a boto3 S3 client for setting up buckets and objects."""
    import urllib.request

    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto keeps its state per process: start every test from an empty S3
    urllib.request.urlopen(urllib.request.Request(endpoint + "/moto-api/reset", method="POST")).close()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.endpoint = endpoint
    try:
        yield client
    finally:
        server.stop()


@pytest.fixture
def s3_emulator(s3_server, monkeypatch):
    """The emulator reading s3UriSettings from moto's S3; AWS_ENDPOINT_URL at the emulator,
    AWS_ENDPOINT_URL_S3 (s3_server) at moto."""
    from runlog.emulator import Emulator

    emu = Emulator(port=0, s3_endpoint_url=s3_server.endpoint, first_batch_id=8100001)
    emu.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", emu.endpoint_url)
    try:
        yield emu
    finally:
        emu.stop()


TEAM_BUCKET = "lab-provenance"  # the team ledger's bucket in the sync tests (REMOTE = s3://lab-provenance/runlog)


@pytest.fixture
def bucket(s3_server):
    """moto S3 with the team ledger's bucket made; yields the S3 client (with .endpoint)."""
    s3_server.create_bucket(Bucket=TEAM_BUCKET)
    return s3_server


@pytest.fixture
def proxy(bucket, monkeypatch):
    """A counting proxy in front of moto; runlog's S3 client goes through it (the emulator
    reads from moto directly). tests/test_sync_hostile.py puts a hostile one there instead."""
    from helpers import S3Proxy, proxy_in_front

    with proxy_in_front(S3Proxy, bucket, monkeypatch) as front:
        yield front


@pytest.fixture
def three_runs(aws_env, ledger_path, git_repo, run_cli):
    """Three seed examples submitted through the CLI to the emulator; their entries, newest first."""
    from helpers import SEED_1, SEED_2, SEED_3
    from runlog.ledger import Ledger

    for args in (SEED_1, SEED_2, SEED_3):
        assert run_cli(*args, "--endpoint-url", aws_env.endpoint_url).exit_code == 0
    with Ledger.open(ledger_path) as ledger:
        return ledger.entries()
