"""Pull throughput from a team ledger: one transfer at a time against --jobs concurrent ones.

    python benchmarks/sync_bench.py --records 10000

Runs moto's S3 server on 127.0.0.1 in a process of its own, pushes a ledger made by
make_ledger.py, then pulls it into empty ledgers with --jobs 1 and --jobs N, and prints the
ratio. moto answers each request with CPU work and no network latency, so on a 2-core
machine the ratio shows whether transfers overlap at all; against real S3, where each
request waits tens of milliseconds on the network, concurrency matters far more."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_ledger import build  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=16)
    args = parser.parse_args(argv)

    import shutil
    import socket
    import subprocess

    import boto3

    from runlog.ledger import Ledger
    from runlog.sync import Remote, pull, push

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([shutil.which("moto_server") or "moto_server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
    for _ in range(100):
        try:
            s3.create_bucket(Bucket="bench-ledger")
            break
        except Exception:
            time.sleep(0.1)
    remote = Remote.parse("s3://bench-ledger/lab")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source.db"
        build(source, args.records)
        with Ledger.open(source) as ledger:
            started = time.perf_counter()
            push(ledger, s3, remote, jobs=args.jobs)
            pushed = time.perf_counter() - started
        timings = {}
        for jobs in (1, args.jobs):
            with Ledger.open(Path(tmp) / f"pull-{jobs}.db") as ledger:
                started = time.perf_counter()
                result = pull(ledger, s3, remote, jobs=jobs)
                timings[jobs] = time.perf_counter() - started
                assert result.received == args.records and not result.refused
    server.terminate()
    server.wait()
    print("| operation | time | records/s |")
    print("|---|---|---|")
    print(f"| push, --jobs {args.jobs} | {pushed:.1f} s | {args.records / pushed:,.0f} |")
    for jobs, seconds in timings.items():
        print(f"| pull, --jobs {jobs} | {seconds:.1f} s | {args.records / seconds:,.0f} |")
    print(f"\npull speed-up with --jobs {args.jobs}: {timings[1] / timings[args.jobs]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
