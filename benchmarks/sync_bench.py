"""Team-ledger throughput: push and pull of a 10 000-record ledger through moto's S3 server.

    python benchmarks/sync_bench.py                       # 10 000 records, --jobs 16, 20 ms latency
    python benchmarks/sync_bench.py --records 2000 --latency-ms 0
    python benchmarks/sync_bench.py --no-serial           # skip the slow --jobs 1 pull
    python benchmarks/sync_bench.py --batch 10000         # one batch of 10 000 members instead
    python benchmarks/sync_bench.py --batch 100000 --no-serial --serial-sample 2000
    python benchmarks/sync_bench.py --batch 10000 --objects   # runlog.remote/1: one object per item
    python benchmarks/sync_bench.py --batch 20000 --no-serial --bandwidth-mbps 100   # a 100 Mbit/s link

Records and observations travel in packs (runlog.remote/2) unless --objects is given; the
table counts items (records + observations) per second either way, and says how many objects
they made on the remote.

--batch N builds the ledger a cohort leaves instead: `runlog submit-batch` of an s3UriSettings
file of N run settings against the HealthOmics emulator (reading the file from the same moto),
then `runlog refresh BATCH` (every member record and its status observation), so the ledger
holds one batch record (the whole cohort's settings and input identities: tens of MB at
100 000) and N member records. The table then ends with the bounds the times are compared
with: latency (objects x latency / jobs) and bandwidth (bytes / the relay's measured
throughput for one large object).

Starts moto's S3 server on 127.0.0.1 in a process of its own, builds a ledger with
benchmarks/make_ledger.py, and times: a push, a second push (lists, sends nothing), and pulls
into empty ledgers with --jobs 1 and --jobs N. moto answers from local CPU, so a TCP relay
adds --latency-ms to every request, as the network to S3 would; that latency is what
concurrent transfers hide. --bandwidth-mbps also limits the relay to that rate each way, shared
by every connection, as one link to S3 would be. Prints a Markdown table."""

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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import start_moto  # noqa: E402
from make_ledger import build  # noqa: E402


class Link:
    """One direction of a link of `rate` bytes per second that every connection through the
    relay shares (a token bucket): each chunk waits until the link has carried the chunks
    taken before it, less a burst of `burst` bytes that an idle link lets through at once."""

    def __init__(self, rate: float, burst: int = 64 * 1024):
        self.rate, self.slack = rate, burst / rate
        self.free_at = 0.0  # when the link has carried everything taken so far
        self.lock = threading.Lock()

    def take(self, size: int) -> None:
        with self.lock:
            now = time.monotonic()
            self.free_at = max(self.free_at, now) + size / self.rate
            wait = self.free_at - self.slack - now
        if wait > 0:
            time.sleep(wait)


def relay(upstream_port: int, latency: float, bandwidth: float | None = None) -> int:
    """A TCP relay to 127.0.0.1:upstream_port that delivers each chunk from the client
    `latency` seconds after it arrived, as a network path with that one-way delay would: a
    request waits `latency` once, however many chunks its body takes (a delay per chunk would
    charge a 30 MiB object hundreds of delays). `bandwidth` (bytes per second), when given,
    limits each direction over all connections together (Link); without it, the relay
    passes bytes as fast as loopback takes them. Returns its port."""
    import queue

    upload, download = (Link(bandwidth), Link(bandwidth)) if bandwidth else (None, None)

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)

    def close(*ends):
        for end in ends:
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def pump(source, sink):
        try:
            while chunk := source.recv(65536):
                if download:
                    download.take(len(chunk))
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            close(source, sink)

    def delayed(source, sink, delay):
        line: queue.Queue = queue.Queue()

        def deliver():
            try:
                while (item := line.get()) is not None:
                    due, chunk = item
                    if (wait := due - time.monotonic()) > 0:
                        time.sleep(wait)
                    if upload:
                        upload.take(len(chunk))
                    sink.sendall(chunk)
            except OSError:
                pass
            finally:
                close(source, sink)

        threading.Thread(target=deliver, daemon=True).start()
        try:
            while chunk := source.recv(65536):
                line.put((time.monotonic() + delay, chunk))
        except OSError:
            pass
        line.put(None)

    def accept():
        while True:
            client, _ = listener.accept()
            try:
                server = socket.create_connection(("127.0.0.1", upstream_port))
            except OSError:
                client.close()
                continue
            threading.Thread(target=delayed, args=(client, server, latency), daemon=True).start()
            threading.Thread(target=pump, args=(server, client), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1]


def relay_process(upstream_port: int, latency: float, bandwidth: float | None = None):
    """relay() in a process of its own, so that its CPU time is not counted as runlog's:
    (the process, its port)."""
    import multiprocessing

    context = multiprocessing.get_context("fork")  # before this process starts any thread
    ours, theirs = context.Pipe()

    def serve():
        theirs.send(relay(upstream_port, latency, bandwidth))
        threading.Event().wait()

    process = context.Process(target=serve, daemon=True)
    process.start()
    return process, ours.recv()


def timed(func):
    started = time.perf_counter()
    result = func()
    return result, time.perf_counter() - started


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of this process, or of process `pid` (Linux /proc)."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def helpers_cpu(leave_out: tuple[int | None, ...]) -> float:
    """CPU time of this process's helpers, the processes it started but moto and the relay,
    with what their own ended children spent (a pull's worker processes are children of a
    forkserver: runlog/syncworker.py), and of its ended children (Linux /proc)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = int(stat.parent.name), stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError):
            continue
        if int(rest[1]) == os.getpid() and pid not in leave_out:
            total += sum(int(value) for value in rest[11:15]) / tick
    return total


def peak_reset() -> None:
    """Start measuring this process's peak resident memory again (Linux: VmHWM)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mib() -> float:
    """This process's resident memory now (Linux: VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def workers_rss_mib() -> float:
    """The resident memory of this process's push and pull workers (runlog/pushworker.py,
    runlog/syncworker.py) together, now."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
            command = (status.parent / "cmdline").read_bytes()
            if f"\nPPid:\t{os.getpid()}\n" not in text or not (b"runlog.syncworker" in command
                                                                or b"runlog.pushworker" in command):
                continue
            total += int(text.split("VmRSS:")[1].split()[0])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1024


class WorkersPeak:
    """Samples workers_rss_mib every 50 ms in a thread while it is open; `.peak` after."""

    def __enter__(self):
        self.peak, self.together, self._stop = 0.0, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.05):
            workers = workers_rss_mib()
            self.peak = max(self.peak, workers)
            self.together = max(self.together, workers + rss_mib())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def measured(func, server: int, relayed: int | None):
    """(result, wall seconds, CPU seconds of runlog (this process and its worker processes),
    of moto, of the relay, this process's peak resident memory and its workers' (sampled))."""
    helpers = lambda: helpers_cpu((server, relayed))  # noqa: E731
    before = [cpu_seconds() + helpers(), cpu_seconds(server), cpu_seconds(relayed) if relayed else 0.0]
    peak_reset()
    with WorkersPeak() as workers:
        result, seconds = timed(func)
    after = [cpu_seconds() + helpers(), cpu_seconds(server), cpu_seconds(relayed) if relayed else 0.0]
    # the two peaks need not be at the same moment: `together` is the largest sum sampled
    peak = f"{peak_mib():.0f} MiB" + (f" (+ workers {workers.peak:.0f} MiB; together at most "
                                      f"{workers.together:.0f} MiB)" if workers.peak else "")
    print(f"  {seconds:.1f} s, peak {peak}", file=sys.stderr, flush=True)
    return (result, seconds, *(b - a for a, b in zip(before, after, strict=True)), peak)


class PackTimes:
    """A pull's progress callback that notes when each of its packs was taken, counted from when
    it was made (just before the pull starts): how much of the pull comes after its transfer."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.taken: list[float] = []

    def __call__(self, items, total, label):
        for item in items:  # a pack is taken when the pulling thread gets it, before it uses it
            if label == "pulling packs":
                self.taken.append(time.perf_counter() - self.started)
            yield item

    def report(self, seconds: float) -> str:
        if not self.taken:
            return "no packs"
        return (f"{len(self.taken)} packs taken from {self.taken[0]:.1f} s to {self.taken[-1]:.1f} s; the pull "
                f"ended {seconds - self.taken[-1]:.1f} s after the last")


def build_batch(work: Path, members: int, s3, s3_url: str) -> Path:
    """A ledger holding one s3UriSettings batch of `members` runs and every member's record and
    status, made the way a user makes it: `runlog submit-batch`, then `runlog refresh BATCH`
    against the HealthOmics emulator (which reads the settings file from moto). Returns its path."""
    import json

    from runlog.emulator import Emulator

    bucket = "bench-cohort"
    s3.create_bucket(Bucket=bucket)
    settings = [{"runSettingId": f"S{i:06d}", "name": f"align-S{i:06d}",
                 "parameters": {"sample_name": f"S{i:06d}", "input_cram": f"s3://{bucket}/crams/S{i:06d}.cram"}}
                for i in range(members)]
    s3.put_object(Bucket=bucket, Key="cohort/settings.json", Body=json.dumps(settings).encode())
    default = {"workflowId": "1234567", "roleArn": "arn:aws:iam::123456789012:role/HealthOmicsServiceRole",
               "outputUri": f"s3://{bucket}/out/",
               "parameters": {"ref_dict": f"s3://{bucket}/ref/g.dict", "ref_fasta": f"s3://{bucket}/ref/g.fa",
                              "ref_fasta_index": f"s3://{bucket}/ref/g.fa.fai"}}
    emulator = Emulator(port=0, s3_endpoint_url=s3_url, batch_rate=max(1, members))
    emulator.start()
    try:
        subprocess.run(["git", "init", "-q", str(work)], check=True)
        ledger = work / "ledger.db"
        env = {**os.environ, "AWS_ENDPOINT_URL": emulator.endpoint_url, "AWS_ENDPOINT_URL_S3": s3_url,
               "AWS_DEFAULT_REGION": "us-west-2", "RUNLOG_LEDGER": str(ledger)}
        runlog = [sys.executable, "-m", "runlog"]
        out = subprocess.run([*runlog, "submit-batch", "--default-run-setting", json.dumps(default),
                              "--batch-run-settings", json.dumps({"s3UriSettings": f"s3://{bucket}/cohort/settings.json"}),
                              "--resolve-timeout", "60"], env=env, cwd=work, capture_output=True, text=True, check=True)
        emulator.advance(3600)  # every run submitted and finished
        subprocess.run([*runlog, "refresh", json.loads(out.stdout)["id"]], env=env, cwd=work, capture_output=True,
                       check=True)
    finally:
        emulator.stop()
    return ledger


def throughput(s3, bucket: str, size: int) -> float:
    """Bytes per second of one PutObject and one GetObject of `size` bytes (through the relay)."""
    blob = os.urandom(size)
    started = time.perf_counter()
    s3.put_object(Bucket=bucket, Key="throughput-probe", Body=blob)
    s3.get_object(Bucket=bucket, Key="throughput-probe")["Body"].read()
    seconds = time.perf_counter() - started
    s3.delete_object(Bucket=bucket, Key="throughput-probe")
    return 2 * size / seconds


def sample(listing, count: int):
    """The listing cut to its first `count` records (by address) and their observations (with
    packs: to the first packs, by name, holding at least `count` records): what a
    --jobs 1 pull of a ledger too large to pull one object at a time is timed on. Returns (the
    listing, its records, its items)."""
    from runlog.sync import Listing

    records = dict(sorted(listing.records.items())[:count])
    observations = {a: (r, k) for a, (r, k) in listing.observations.items() if r in records}
    packs: dict[str, Any] = {}
    for digest in sorted(listing.packs):
        if sum(len(index.records) for index in packs.values()) >= count:
            break
        packs[digest] = listing.packs[digest]
    part = Listing(marker=listing.marker, records=records, observations=observations, sizes=listing.sizes,
                   packs=packs, pack_keys=listing.pack_keys, blobs=listing.blobs)  # the batches' cohorts
    packed_records = {a for index in packs.values() for a in index.records}
    packed_observations = {a for index in packs.values() for a, r in index.observations
                           if r in packed_records or r in records}
    return part, len(records) + len(packed_records), len(records) + len(observations) + len(packed_records) + len(
        packed_observations)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--batch", type=int, metavar="MEMBERS",
                        help="a ledger of one batch with this many members instead of --records single runs")
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added to every request (0: none)")
    parser.add_argument("--bandwidth-mbps", type=float, metavar="MBPS",
                        help="limit the relay to this many megabits per second each way, over all connections "
                             "together (default: no limit)")
    parser.add_argument("--no-serial", action="store_true", help="leave out the pull with --jobs 1")
    parser.add_argument("--serial-sample", type=int, metavar="RECORDS",
                        help="time the --jobs 1 pull on this many records (and their observations) only")
    parser.add_argument("--objects", action="store_true",
                        help="push one object per record and observation (runlog.remote/1) instead of packs")
    parser.add_argument("--keep", type=Path, metavar="PATH",
                        help="copy the ledger built (before anything is pushed) to PATH, for --reuse")
    parser.add_argument("--reuse", type=Path, metavar="PATH",
                        help="push a copy of this ledger (one --keep left) instead of building one")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="worker processes that check a pull's packs (default: pull's own choice; 0: none)")
    args = parser.parse_args(argv)

    import boto3
    from botocore.config import Config

    from runlog.ledger import Ledger
    from runlog.sync import Remote, pull, push, return_large_blocks, survey

    return_large_blocks()  # as `runlog pull` does: its process is runlog's
    load_at_start = os.getloadavg()[0]
    server, moto_port = start_moto()
    try:
        link = args.bandwidth_mbps * 1e6 / 8 if args.bandwidth_mbps else None  # bytes per second
        relayed = relay_process(moto_port, args.latency_ms / 1000, link) \
            if args.latency_ms or link else None
        port = relayed[1] if relayed else moto_port
        pids = (server.pid, relayed[0].pid if relayed else None)
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                          config=Config(max_pool_connections=max(10, args.jobs), retries={"mode": "standard"}))
        s3.create_bucket(Bucket="bench-ledger")
        remote = Remote.parse("s3://bench-ledger/lab")
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            built = 0.0
            if args.reuse:
                source = Path(tmp) / "reused.db"
                shutil.copy(args.reuse, source)
            elif args.batch:
                started = time.perf_counter()
                direct = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{moto_port}", region_name="us-east-1")
                source = build_batch(Path(tmp) / "cohort", args.batch, direct, f"http://127.0.0.1:{moto_port}")
                built = time.perf_counter() - started
            else:
                source = Path(tmp) / "source.db"
                build(source, args.records)
            if args.keep:
                shutil.copy(source, args.keep)
            with Ledger.open(source) as ledger:
                records = ledger.count()
                conn = ledger.conn
                objects = records + conn.execute("SELECT count(*) FROM observations").fetchone()[0]
                record_bytes = conn.execute("SELECT sum(length(body)), max(length(body)) FROM records").fetchone()
                print(f"{records} records, {objects} objects; records {record_bytes[0] / 2**20:.1f} MiB, the largest "
                      f"{record_bytes[1] / 2**20:.2f} MiB" + (f"; built in {built:.0f} s" if args.batch and not args.reuse else ""),
                      file=sys.stderr, flush=True)
                result, *took = measured(lambda: push(ledger, s3, remote, jobs=args.jobs, objects=args.objects),
                                         *pids)
                assert result.records_sent == records
                rows.append((f"push, --jobs {args.jobs}", *took, objects))
                result, *took = measured(lambda: push(ledger, s3, remote, jobs=args.jobs, objects=args.objects),
                                         *pids)
                assert result.records_sent == 0 and result.observations_sent == 0
                rows.append((f"second push (nothing to send), --jobs {args.jobs}", *took, objects))
            listing = survey(s3, remote, jobs=args.jobs, expect_ledger=True)
            remote_bytes = sum(listing.sizes.values())
            remote_objects = len(listing.sizes)
            pulls = {}
            timeline: list[tuple[int, str]] = []
            chosen = {} if args.workers is None else {"workers": args.workers}
            for jobs in ((args.jobs,) if args.no_serial else (1, args.jobs)):
                part, part_records, count = (sample(listing, args.serial_sample)
                                             if jobs == 1 and args.serial_sample else (None, records, objects))
                with Ledger.open(Path(tmp) / f"pull-{jobs}.db") as ledger:
                    watch = PackTimes()
                    result, seconds, *cpu = measured(lambda jobs=jobs, part=part, watch=watch: pull(
                        ledger, s3, remote, jobs=jobs, listing=part, progress=watch, **chosen), *pids)
                    timeline.append((jobs, watch.report(seconds)))
                    assert not result.refused, result.refused[:3]
                    assert result.records_received == part_records, (result.records_received, part_records)
                    pulls[jobs] = seconds * objects / count
                    name = f"pull into an empty ledger, --jobs {jobs}"
                    rows.append((name + (f" ({count} of the items)" if part else ""), seconds, *cpu, count))
            probe = max(2**20, min(32 * 2**20, remote_bytes))
            rate = throughput(s3, "bench-ledger", probe) if args.batch else None
    finally:
        server.terminate()
        server.wait()
        if relayed:
            relayed[0].terminate()
    made = f"a copy of {args.reuse.name}" if args.reuse else f"built in {built:.0f} s"
    shape = (f"one batch of {args.batch} members ({records} records; {made})" if args.batch
             else f"{records} records")
    layout = "one object each (runlog.remote/1)" if args.objects else "in packs (runlog.remote/2)"
    print(f"{shape}: {objects} items (records and observations) {layout}, {remote_objects} objects and "
          f"{remote_bytes / 2**20:.1f} MiB on the remote "
          f"(records {record_bytes[0] / 2**20:.1f} MiB, the largest {record_bytes[1] / 2**20:.2f} MiB), "
          f"{args.latency_ms:g} ms added per request" + (f", {args.bandwidth_mbps:g} Mbit/s each way" if link else "")
          + f"; load average {load_at_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end\n")
    print("| operation | time | items/s | CPU: runlog | CPU: moto | CPU: relay | CPU / cores | peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    cores = os.cpu_count() or 1
    for name, seconds, ours, theirs, relaying, peak, count in rows:
        print(f"| {name} | {seconds:.1f} s | {count / seconds:,.0f} | {ours:.1f} s | {theirs:.1f} s | "
              f"{relaying:.1f} s | {(ours + theirs + relaying) / cores:.1f} s | {peak} |")
    for jobs, line in timeline:
        print(f"\npull, --jobs {jobs}: {line}")
    if 1 in pulls:
        print(f"\npull speed-up with --jobs {args.jobs}: {pulls[1] / pulls[args.jobs]:.1f}x"
              + (" (the --jobs 1 pull scaled from its sample)" if args.serial_sample else ""))
    if rate:
        latency = remote_objects * args.latency_ms / 1000
        print(f"\nbounds for {remote_objects} objects: latency {latency:.1f} s at --jobs 1, "
              f"{latency / args.jobs:.1f} s at --jobs {args.jobs}; bandwidth {remote_bytes / rate:.1f} s "
              f"({rate / 2**20:.0f} MiB/s measured through the relay with one {probe / 2**20:.0f} MiB object)"
              + (f"; the link's {args.bandwidth_mbps:g} Mbit/s alone: {remote_bytes / link:.1f} s" if link else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
