"""Team-ledger throughput: push and pull of a 10 000-record ledger through moto's S3 server.

    python benchmarks/sync_bench.py                       # 10 000 records, --jobs 16, 20 ms latency
    python benchmarks/sync_bench.py --records 2000 --latency-ms 0
    python benchmarks/sync_bench.py --no-serial           # skip the slow --jobs 1 pull

Starts moto's S3 server on 127.0.0.1 in a process of its own, builds a ledger with
benchmarks/make_ledger.py, and times: a push, a second push (lists, sends nothing), and pulls
into empty ledgers with --jobs 1 and --jobs N. moto answers from local CPU, so a TCP relay
adds --latency-ms to every request, as the network to S3 would; that latency is what
concurrent transfers hide. Prints a Markdown table."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_ledger import build  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def relay(upstream_port: int, latency: float) -> int:
    """A TCP relay to 127.0.0.1:upstream_port that holds each chunk from the client for
    `latency` seconds (one delay per request, since a request is sent in one go). Returns its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)

    def pump(source, sink, delay):
        try:
            while chunk := source.recv(65536):
                if delay:
                    time.sleep(delay)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def accept():
        while True:
            client, _ = listener.accept()
            try:
                server = socket.create_connection(("127.0.0.1", upstream_port))
            except OSError:
                client.close()
                continue
            threading.Thread(target=pump, args=(client, server, latency), daemon=True).start()
            threading.Thread(target=pump, args=(server, client, 0), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1]


def timed(func):
    started = time.perf_counter()
    result = func()
    return result, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added to every request (0: none)")
    parser.add_argument("--no-serial", action="store_true", help="leave out the pull with --jobs 1")
    args = parser.parse_args(argv)

    import boto3
    from botocore.config import Config

    from runlog.ledger import Ledger
    from runlog.sync import Remote, pull, push

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    moto_port = free_port()
    server = subprocess.Popen([shutil.which("moto_server") or "moto_server", "-H", "127.0.0.1", "-p", str(moto_port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):  # wait for moto to listen
            try:
                socket.create_connection(("127.0.0.1", moto_port)).close()
                break
            except OSError:
                time.sleep(0.05)
        port = relay(moto_port, args.latency_ms / 1000) if args.latency_ms else moto_port
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                          config=Config(max_pool_connections=max(10, args.jobs), retries={"mode": "standard"}))
        s3.create_bucket(Bucket="bench-ledger")
        remote = Remote.parse("s3://bench-ledger/lab")
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "source.db"
            build(source, args.records)
            with Ledger.open(source) as ledger:
                objects = args.records + ledger.conn.execute("SELECT count(*) FROM observations").fetchone()[0]
                result, seconds = timed(lambda: push(ledger, s3, remote, jobs=args.jobs))
                assert result.records_sent == args.records
                rows.append((f"push, --jobs {args.jobs}", seconds, objects))
                result, seconds = timed(lambda: push(ledger, s3, remote, jobs=args.jobs))
                assert result.records_sent == 0 and result.observations_sent == 0
                rows.append((f"second push (nothing to send), --jobs {args.jobs}", seconds, objects))
            pulls = {}
            for jobs in ((args.jobs,) if args.no_serial else (1, args.jobs)):
                with Ledger.open(Path(tmp) / f"pull-{jobs}.db") as ledger:
                    result, seconds = timed(lambda jobs=jobs: pull(ledger, s3, remote, jobs=jobs))
                    assert result.records_received == args.records and not result.refused
                    pulls[jobs] = seconds
                    rows.append((f"pull into an empty ledger, --jobs {jobs}", seconds, objects))
    finally:
        server.terminate()
        server.wait()
    print(f"{args.records} records, {objects} objects, {args.latency_ms:g} ms added per request\n")
    print("| operation | time | objects/s |")
    print("|---|---|---|")
    for name, seconds, count in rows:
        print(f"| {name} | {seconds:.1f} s | {count / seconds:,.0f} |")
    if 1 in pulls:
        print(f"\npull speed-up with --jobs {args.jobs}: {pulls[1] / pulls[args.jobs]:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
