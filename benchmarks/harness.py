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
