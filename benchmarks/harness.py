"""What the benchmarks share: a free loopback port, moto's S3 server in a process of its own,
and a probe that runs a command and reports its wall time, CPU time and peak memory."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def aws_cli() -> str:
    """The aws CLI, the baseline every ratio is taken against; a one-line exit without it."""
    aws = shutil.which("aws")
    if aws is None:
        raise SystemExit("the aws CLI is the baseline: pip install awscli")
    return aws


def moto_bucket(bucket: str) -> tuple[subprocess.Popen, str, Any]:
    """moto's S3 server started (start_moto) with `bucket` made in it: (process, endpoint URL, client)."""
    import boto3

    moto, port = start_moto()
    url = f"http://127.0.0.1:{port}"
    try:
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        s3.create_bucket(Bucket=bucket)
    except BaseException:
        moto.terminate()
        raise
    return moto, url, s3



# A cohort as batch_bench.py, refresh_ab.py and submit_phases.py submit it: run settings in a
# settings file in S3 (cohort/settings.json), each run with its own CRAM, a reference shared
# through the default setting.
ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"


def put_cohort(s3, bucket: str, runs: int, key: str = "cohort/settings.json", tag: str = "") -> None:
    """The settings file of `runs` run settings, written to s3://bucket/KEY. `tag` goes into
    each run's name: another tag, another cohort (a settings file runlog has not seen)."""
    settings = [{"runSettingId": f"S{i:06d}", "name": f"align-S{i:06d}{tag}",
                 "parameters": {"sample_name": f"S{i:06d}", "input_cram": f"s3://{bucket}/crams/S{i:06d}.cram"}}
                for i in range(runs)]
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(settings).encode())


def cohort_inputs(runs: int) -> list[str]:
    """The keys of the cohort's inputs: each run's CRAM and the shared reference's files."""
    return [f"crams/S{i:06d}.cram" for i in range(runs)] + ["ref/g.dict", "ref/g.fa", "ref/g.fa.fai"]


def cohort_request(bucket: str, key: str = "cohort/settings.json") -> list[str]:
    """The StartRunBatch request of the cohort whose settings file is s3://bucket/KEY, as
    options of both `runlog submit-batch` and `aws omics start-run-batch`."""
    default = {"workflowId": "1234567", "roleArn": ROLE, "outputUri": f"s3://{bucket}/out/",
               "parameters": {"ref_dict": f"s3://{bucket}/ref/g.dict", "ref_fasta": f"s3://{bucket}/ref/g.fa",
                              "ref_fasta_index": f"s3://{bucket}/ref/g.fa.fai"}}
    return ["--default-run-setting", json.dumps(default),
            "--batch-run-settings", json.dumps({"s3UriSettings": f"s3://{bucket}/{key}"})]


def cohort_env(omics_url: str, s3_url: str, ledger: Path) -> dict[str, str]:
    """The environment both tools run in: the emulator, moto's S3, dummy region, no host
    prefixes, no pager, runlog's ledger at `ledger`."""
    return {**os.environ, "AWS_ENDPOINT_URL": omics_url, "AWS_ENDPOINT_URL_S3": s3_url,
            "AWS_DEFAULT_REGION": "us-west-2", "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
            "AWS_PAGER": "", "RUNLOG_LEDGER": str(ledger)}


@dataclass
class Cohort:
    """What cohort_world made: moto's server and a client of it, the emulator, the request, a
    git work tree and the environment both tools run in."""

    moto: subprocess.Popen
    s3: Any
    s3_url: str
    emulator: Any
    request: list[str]
    work: Path
    env: dict[str, str]
    bucket: str = ""
    runs: int = 0

    def fresh_request(self, tag: str) -> list[str]:
        """The request of a new cohort of the same size (its own settings file, whose runs'
        names carry `tag`): what a lab submits is a cohort runlog has not seen, so its
        per-run digests are computed, not found in the ledger from an earlier repeat."""
        key = f"cohort/settings-{tag}.json"
        put_cohort(self.s3, self.bucket, self.runs, key, f"-{tag}")
        return cohort_request(self.bucket, key)


@contextmanager
def cohort_world(bucket: str, runs: int, *, inputs: bool = False, ledger: str = "ledger.db") -> Iterator[Cohort]:
    """moto's S3 server holding the cohort's settings file of `runs` runs (and, with `inputs`,
    every input it names), the emulator reading s3UriSettings from it and starting all runs in
    one clock second, and a new git work tree whose `ledger` (a path inside it) is runlog's
    ledger; all stopped and removed afterwards."""
    import gc

    from runlog.emulator import Emulator

    moto, s3_url, s3 = moto_bucket(bucket)
    emulator = None
    # The emulator keeps every batch it starts in this process (100 000 runs each): Python's
    # cyclic collector would walk them all again and again, and its pauses land on whichever
    # command is being timed. Nothing the emulator makes needs it (no cycles to free here).
    collecting = gc.isenabled()
    gc.disable()
    try:
        put_cohort(s3, bucket, runs)
        if inputs:
            put_inputs(s3, bucket, cohort_inputs(runs))
        emulator = Emulator(port=0, s3_endpoint_url=s3_url, batch_rate=max(1, runs))
        emulator.start()
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            subprocess.run(["git", "init", "-q", str(work)], check=True)
            yield Cohort(moto, s3, s3_url, emulator, cohort_request(bucket), work,
                         cohort_env(emulator.endpoint_url, s3_url, work / ledger), bucket, runs)
    finally:
        if emulator is not None:
            emulator.stop()
        moto.terminate()
        moto.wait()
        if collecting:
            gc.enable()


def put_inputs(s3, bucket: str, keys: list[str]) -> None:
    """A small object at each key of `bucket`, 10 requests at a time (botocore's connection
    pool; untimed set-up)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=key.encode()), keys))


def start_moto(seconds: float = 120.0) -> tuple[subprocess.Popen, int]:
    """moto's S3 server on a free loopback port, once it listens (its start-up takes tens of
    seconds on a loaded machine), with dummy credentials for the clients: (process, port)."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    port = free_port()
    server = subprocess.Popen([shutil.which("moto_server") or "moto_server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return server, port
        except OSError:
            time.sleep(0.05)
    server.terminate()
    raise SystemExit(f"moto_server did not listen on port {port} within {seconds:.0f} s")


# Runs a command and reports its wall time, CPU time and peak memory. Linux gives a child
# the peak memory of the process it was forked from, so the child is forked from this small
# fresh interpreter, not from the benchmark (which may hold the emulator and its batches).
PROBE = """import json, resource, subprocess, sys, time
started = time.perf_counter()
done = subprocess.run(sys.argv[2:], stdout=open(sys.argv[1], "wb"))
seconds = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": done.returncode, "seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime,
                  "rss_mib": usage.ru_maxrss / 1024}))
"""


def timed(command: list[str], env: dict, cwd: Path) -> tuple[str, dict]:
    """(stdout, usage) of one run of `command`; usage: wall seconds, CPU seconds (user +
    system) and peak resident memory in MiB of the child. A failed command ends the benchmark."""
    with tempfile.NamedTemporaryFile() as out:
        probe = subprocess.run([sys.executable, "-c", PROBE, out.name, *command], env=env, cwd=cwd,
                               capture_output=True, text=True)
        stdout = Path(out.name).read_text()
    try:
        usage = json.loads(probe.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        usage = {"code": probe.returncode}
    if probe.returncode != 0 or usage["code"] != 0:
        raise SystemExit(f"{' '.join(command[:5])} failed ({usage['code']}): {probe.stderr[-2000:]}")
    return stdout, usage
