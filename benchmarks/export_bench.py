"""A cohort's export at scale: `runlog export BATCH` of an N-member batch (default 10 000).

    python benchmarks/export_bench.py                       # 10 000 members, every format, 1 repeat
    python benchmarks/export_bench.py --runs 40 --repeat 1  # the CI smoke
    python benchmarks/export_bench.py --runs 10000 --formats all --repeat 3

Builds the ledger the way users do: starts moto's S3 server (a process of its own) and the
HealthOmics emulator (in this process, reading s3UriSettings from moto), writes a settings file
of --runs run settings (one CRAM per sample, a shared reference in the default setting), starts
the batch with `runlog submit-batch` (every 50th submission fails to start, every 20th run fails
while running), lets the emulator's clock run until every run has ended and records every member
with `runlog refresh BATCH` (the ListRuns observations give each member its status and times).

Then times `runlog export BATCH -f FMT -o DIR --license CC-BY-4.0` for each format (`all` first),
each in a child process whose wall time, CPU time and peak resident memory (getrusage of the
child) are reported in seconds and MiB against the issue's targets: under 60 s and under 1 GiB
for `-f all` of 10 000 members. Export has no aws CLI counterpart, so these are absolute
targets, not ratios; they depend on the machine and its load (the load average is printed)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import start_moto, timed

ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"
BUCKET = "bench-cohort"
FORMATS = ("all", "ro-crate", "bco", "prov-json", "prov-n", "methods")
TARGET_SECONDS = 60.0
TARGET_MIB = 1024.0

def build_cohort(runs: int, work: Path, env: dict, emulator, s3) -> str:
    """Start an N-run batch with runlog and record every member; returns the batch id."""
    s3.create_bucket(Bucket=BUCKET)
    for name in ("g.dict", "g.fa", "g.fa.fai"):
        s3.put_object(Bucket=BUCKET, Key=f"ref/{name}", Body=name.encode())
    settings = [{"runSettingId": f"S{i:06d}", "name": f"align-S{i:06d}",
                 "parameters": {"sample_name": f"S{i:06d}", "input_cram": f"s3://{BUCKET}/crams/S{i:06d}.cram"}}
                for i in range(runs)]
    with ThreadPoolExecutor(8) as pool:  # one small CRAM per sample, so that each has its own identity
        list(pool.map(lambda item: s3.put_object(Bucket=BUCKET, Key=f"crams/{item['runSettingId']}.cram",
                                                 Body=item["runSettingId"].encode()), settings))
    s3.put_object(Bucket=BUCKET, Key="cohort/settings.json", Body=json.dumps(settings).encode())
    default = {"workflowId": "1234567", "roleArn": ROLE, "outputUri": f"s3://{BUCKET}/out/",
               "parameters": {"ref_dict": f"s3://{BUCKET}/ref/g.dict", "ref_fasta": f"s3://{BUCKET}/ref/g.fa",
                              "ref_fasta_index": f"s3://{BUCKET}/ref/g.fa.fai"},
               "runTags": {"project": "bench"}, "cacheId": "1234567", "cacheBehavior": "CACHE_ON_FAILURE"}
    emulator.batch_fault("start", reason="ServiceQuotaExceeded", message="too many runs", every=50)
    emulator.batch_fault("run", reason="OUT_OF_MEMORY", every=20)
    runlog = [sys.executable, "-m", "runlog"]
    started = subprocess.run([*runlog, "submit-batch", "--batch-name", "bench-cohort",
                              "--default-run-setting", json.dumps(default), "--batch-run-settings",
                              json.dumps({"s3UriSettings": f"s3://{BUCKET}/cohort/settings.json"}),
                              "--resolve-timeout", "120"], env=env, cwd=work, capture_output=True, text=True)
    if started.returncode != 0:
        raise SystemExit(f"submit-batch failed: {started.stderr[-2000:]}")
    batch_id = json.loads(started.stdout)["id"]
    emulator.advance(3600 + runs)  # every run submitted and ended
    refreshed = subprocess.run([*runlog, "refresh", batch_id], env=env, cwd=work, capture_output=True, text=True)
    if refreshed.returncode != 0 or f"{runs} new member record(s)" not in refreshed.stdout:
        raise SystemExit(f"refresh failed: {refreshed.stdout[-1000:]} {refreshed.stderr[-2000:]}")
    return batch_id


def size_mib(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 2**20
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000, help="run settings in the batch (default 10 000)")
    parser.add_argument("--repeat", type=int, default=1, help="exports of each format (the median is reported)")
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help=f"comma-separated formats to time (default {','.join(FORMATS)})")
    parser.add_argument("--workdir", type=Path, help="keep the ledger and exports here (default: a temporary "
                        "directory); a ledger an earlier run built there for the same --runs is reused")
    args = parser.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise SystemExit(f"unknown format(s) {', '.join(sorted(unknown))}: choose from {', '.join(FORMATS)}")

    import boto3

    from runlog.emulator import Emulator

    moto, moto_port = start_moto()
    s3_url = f"http://127.0.0.1:{moto_port}"
    emulator = None
    temporary = None
    if args.workdir is None:
        temporary = tempfile.TemporaryDirectory()
        work = Path(temporary.name)
    else:
        work = args.workdir.resolve()  # the commands run in it: a relative path would name another place
        work.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {}
    sizes: dict[str, float] = {}
    try:
        env = {**os.environ, "AWS_DEFAULT_REGION": "us-west-2", "AWS_PAGER": "",
               "RUNLOG_LEDGER": str(work / "ledger.db")}
        kept = work / f"batch-{args.runs}.id"
        built = 0.0
        if args.workdir is not None and kept.is_file() and (work / "ledger.db").is_file():
            batch_id = kept.read_text().strip()  # the ledger built by an earlier run with this --workdir
        else:
            s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
            emulator = Emulator(port=0, s3_endpoint_url=s3_url, batch_rate=max(1, args.runs))
            emulator.start()
            subprocess.run(["git", "init", "-q", str(work)], check=True)
            started = time.perf_counter()
            batch_id = build_cohort(args.runs, work, {
                **env, "AWS_ENDPOINT_URL": emulator.endpoint_url, "AWS_ENDPOINT_URL_S3": s3_url,
                "AWS_DISABLE_HOST_PREFIX_INJECTION": "true"}, emulator, s3)
            built = time.perf_counter() - started
            kept.write_text(batch_id)
            emulator.stop()
            emulator = None  # export never calls AWS
        runlog = [sys.executable, "-m", "runlog"]
        for _ in range(args.repeat):
            for fmt in formats:
                out = work / f"export-{fmt}"
                _, usage = timed([*runlog, "export", batch_id, "-f", fmt, "-o", str(out), "--license", "CC-BY-4.0",
                                  "--force"], env, work)
                results.setdefault(fmt, []).append(usage)
                sizes[fmt] = size_mib(out)
        ledger_mib = (work / "ledger.db").stat().st_size / 2**20
    finally:
        if emulator is not None:
            emulator.stop()
        moto.terminate()
        moto.wait()
        if temporary is not None:
            temporary.cleanup()

    print(f"`runlog export BATCH` of a {args.runs}-member batch (ledger {ledger_mib:.0f} MiB, built "
          + (f"in {built:.0f} s " if built else "earlier ") + f"by submit-batch + refresh), {args.repeat} repeat(s), "
          "medians; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end; {os.cpu_count()} CPU(s)\n")
    print("Export has no aws CLI baseline: the targets are the issue's absolute ones (under 60 s and under "
          "1 GiB of peak memory for `-f all` of 10 000 members).\n")
    print("| format | wall | CPU (user + system) | peak RSS | written | within 60 s and 1 GiB |")
    print("|---|---|---|---|---|---|")
    for fmt in formats:
        wall = statistics.median(u["seconds"] for u in results[fmt])
        cpu = statistics.median(u["cpu"] for u in results[fmt])
        rss = max(u["rss_mib"] for u in results[fmt])
        verdict = "yes" if wall < TARGET_SECONDS and rss < TARGET_MIB else "NO"
        print(f"| {fmt} | {wall:.2f} s | {cpu:.2f} s | {rss:.0f} MiB | {sizes[fmt]:.1f} MiB | {verdict} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
