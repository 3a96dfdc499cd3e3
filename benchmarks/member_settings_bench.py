"""What each member of an imported batch ran with: runlog's GetRun per member against the aws CLI's.

    python benchmarks/member_settings_bench.py                          # 2 000 members, --jobs 16, 3 repeats
    python benchmarks/member_settings_bench.py --members 40 --repeat 1 --sample 4   # the CI smoke

A batch started without runlog (boto3's StartRunBatch from an s3UriSettings file in moto's
S3, the emulator reading it) is imported by `runlog import` with every GetRun refused (an
injected AccessDeniedException), so the ledger holds every member and knows none of their
own settings. Then, alternating so that the machine's load hits each alike, it times:

  1. `runlog refresh BATCH --jobs J`: GetBatch, ListRunsInBatch and ListRuns pages (nothing
     new), then GetRun for every member, --jobs at a time, each answer appended as a
     member-settings observation (one transaction per round of J x 8 calls);
  2. the same refresh again, once every member is known: what refresh costs without GetRun
     (the floor of 1);
  3. `aws omics get-run --id RUN` for each member, J processes at a time, as a shell loop
     with `xargs -P J` would: a sample of --sample members, scaled to all of them (one aws
     process a member: 2 000 of them would take far longer than the rest);
  4. boto3's get_run for every member from J threads in one process: the floor of any
     Python client.

Each repeat imports into a fresh ledger. Prints a Markdown table of medians and ratios
(docs/performance.md)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import aws_cli, moto_bucket, timed

ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"
BUCKET = "bench-members"

# J threads of boto3 get_run over the run ids in a file: the floor of a Python client.
BOTO3_LOOP = """import sys
from concurrent.futures import ThreadPoolExecutor
import boto3
from botocore.config import Config
jobs = int(sys.argv[1])
client = boto3.client("omics", config=Config(inject_host_prefix=False, max_pool_connections=max(10, jobs)))
ids = open(sys.argv[2]).read().split()
with ThreadPoolExecutor(jobs) as pool:
    answers = list(pool.map(lambda run_id: client.get_run(id=run_id)["uuid"], ids))
print(len(answers))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=2000, help="runs in the imported batch (default 2 000)")
    parser.add_argument("--jobs", type=int, default=16, help="GetRun calls in flight (runlog --jobs, xargs -P)")
    parser.add_argument("--repeat", type=int, default=3, help="times each is measured (a fresh ledger each)")
    parser.add_argument("--sample", type=int, default=64,
                        help="members the aws CLI is timed for (scaled to all members; default 64)")
    args = parser.parse_args(argv)

    import boto3
    from botocore.config import Config

    from runlog.emulator import Emulator

    aws = aws_cli()
    moto, s3_url, s3 = moto_bucket(BUCKET)
    emulator = None
    refresh, floor, cli, threads = [], [], [], []
    try:
        settings = [{"runSettingId": f"S{i:06d}", "name": f"align-S{i:06d}", "priority": i % 7,
                     "parameters": {"sample_name": f"S{i:06d}", "input_cram": f"s3://{BUCKET}/crams/S{i:06d}.cram"}}
                    for i in range(args.members)]
        s3.put_object(Bucket=BUCKET, Key="cohort/settings.json", Body=json.dumps(settings).encode())
        emulator = Emulator(port=0, s3_endpoint_url=s3_url, batch_rate=max(1, args.members))
        emulator.start()
        omics = boto3.client("omics", endpoint_url=emulator.endpoint_url, region_name="us-west-2",
                             config=Config(inject_host_prefix=False))
        default = {"workflowId": "1234567", "roleArn": ROLE, "outputUri": f"s3://{BUCKET}/out/",
                   "parameters": {"ref_dict": f"s3://{BUCKET}/ref/g.dict", "ref_fasta": f"s3://{BUCKET}/ref/g.fa",
                                  "ref_fasta_index": f"s3://{BUCKET}/ref/g.fa.fai"}}
        batch_id = omics.start_run_batch(batchName="outside", requestId="bench", defaultRunSetting=default,
                                         batchRunSettings={"s3UriSettings": f"s3://{BUCKET}/cohort/settings.json"})["id"]
        emulator.advance(3600)  # every run submitted and finished
        pages = omics.get_paginator("list_runs_in_batch").paginate(batchId=batch_id)
        run_ids = [r["runId"] for page in pages for r in page["runs"] if r.get("runId")]
        assert len(run_ids) == args.members, (len(run_ids), args.members)
        sample = run_ids[:: max(1, len(run_ids) // max(1, args.sample))][: args.sample]
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            subprocess.run(["git", "init", "-q", str(work)], check=True)
            env = {**os.environ, "AWS_ENDPOINT_URL": emulator.endpoint_url, "AWS_DEFAULT_REGION": "us-west-2",
                   "AWS_DISABLE_HOST_PREFIX_INJECTION": "true", "AWS_PAGER": ""}
            runlog = [sys.executable, "-m", "runlog"]
            jobs = ["--jobs", str(args.jobs)]
            for n in range(args.repeat):
                run_env = {**env, "RUNLOG_LEDGER": str(work / f"ledger-{n}.db")}
                # untimed: every member recorded, none of their settings known (every GetRun refused)
                emulator.inject("error", "GetRun", count=args.members, code="AccessDeniedException")
                # (import asks the members' GetRun before it imports the single runs: the refusals are theirs)
                imported = subprocess.run([*runlog, "import", *jobs], env=run_env, cwd=work, capture_output=True,
                                          text=True)
                emulator.faults.clear()
                assert imported.returncode == 0 and f"({args.members} unknown" in imported.stdout, imported


                out, usage = timed([*runlog, "refresh", batch_id, *jobs], run_env, work)
                assert f"{args.members} member setting(s) observed from GetRun" in out, out
                refresh.append(usage["seconds"])
                out, usage = timed([*runlog, "refresh", batch_id, *jobs], run_env, work)
                assert "0 member setting(s) observed from GetRun" in out, out  # nothing left to ask
                floor.append(usage["seconds"])

                started = time.perf_counter()
                subprocess.run(["xargs", "-P", str(args.jobs), "-n", "1", aws, "omics", "get-run",
                                "--query", "uuid", "--output", "text", "--id"],
                               input="\n".join(sample), env=env, cwd=work, check=True, text=True,
                               stdout=subprocess.DEVNULL)
                cli.append((time.perf_counter() - started) * args.members / len(sample))

                (work / "run-ids.txt").write_text("\n".join(run_ids))
                out, usage = timed([sys.executable, "-c", BOTO3_LOOP, str(args.jobs), str(work / "run-ids.txt")],
                                   env, work)
                assert out.strip() == str(args.members), out
                threads.append(usage["seconds"])
    finally:
        if emulator is not None:
            emulator.stop()
        moto.terminate()
        moto.wait()

    median = statistics.median
    print(f"{args.members} members of an imported batch, --jobs {args.jobs}, {args.repeat} repeat(s), medians; "
          f"the aws CLI timed for {len(sample)} members and scaled; load average {os.getloadavg()[0]:.1f} "
          "at the end\n")
    print("| what | wall time | per member | runlog refresh / this |")
    print("|---|---|---|---|")
    for name, times in (("`runlog refresh B` asking GetRun for every member", refresh),
                        ("`runlog refresh B` with every member known (no GetRun)", floor),
                        (f"`aws omics get-run` per member, `xargs -P {args.jobs}` (scaled)", cli),
                        (f"boto3 `get_run`, {args.jobs} threads, one process", threads)):
        ratio = median(refresh) / median(times) if median(times) > 0 else float("nan")
        print(f"| {name} | {median(times):.2f} s | {1000 * median(times) / args.members:.1f} ms | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
