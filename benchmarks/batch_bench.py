"""A cohort at scale: an s3UriSettings batch of 100 000 runs against the emulator and moto's S3.

    python benchmarks/batch_bench.py                  # 100 000 runs, 3 repeats
    python benchmarks/batch_bench.py --runs 300 --repeat 1   # the CI smoke
    python benchmarks/batch_bench.py --runs 10000 --repeat 1 --skip-submit   # refresh only
    python benchmarks/batch_bench.py --runs 10000 --repeat 3 --inputs --skip-refresh   # submit only
    python benchmarks/batch_bench.py --runs 20000 --repeat 3 --skip-refresh --compare /tmp/base   # A/B

`--compare DIR` also times the submissions of the runlog in DIR (a tree holding an older
`runlog/`, e.g. `git archive COMMIT runlog | tar -x -C DIR`, put first on PYTHONPATH; its own
ledger), interleaved with the two others against the same moto and emulator.

Starts moto's S3 server (a process of its own) and the HealthOmics emulator (in this process,
reading s3UriSettings from moto), writes a settings file of --runs run settings, and times,
alternating the two commands of each pair so that the machine's load hits both alike:

  1. `runlog submit-batch` vs `aws omics start-run-batch`, the same request (each with its
     own requestId); runlog's includes reading, pinning and checking the 100 000 settings
     against the workflow's template, and listing the runs' inputs' prefix. Each repeat
     submits a new cohort (its own settings file, runs named differently), as a lab does:
     runlog has not seen it, so it computes its per-run digests (`--resubmit`: the same file
     every time, whose digests the ledger holds after the first);
  2. `runlog refresh BATCH` (GetBatch, every member recorded through ListRunsInBatch, their
     statuses through ListRuns) vs paging `aws omics list-runs-in-batch` through the same
     batch, with the peak memory of the runlog process.

Prints a Markdown table of medians and ratios. Targets (docs/performance.md): submit-batch
<= 1.5 x start-run-batch; refresh <= 2 x list-runs-in-batch."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import aws_cli, cohort_world, timed

BUCKET = "bench-cohort"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000, help="run settings in the batch (default 100 000)")
    parser.add_argument("--repeat", type=int, default=3, help="batches submitted, and refreshed, by each tool")
    parser.add_argument("--inputs", action="store_true",
                        help="put each run's input (and the references) in S3 first, so that submit-batch lists "
                             "and records real identities (as a user's cohort has them); without it they are "
                             "missing and recorded as not found")
    parser.add_argument("--skip-submit", action="store_true",
                        help="submit the batches with runlog only, untimed, and time the refreshes")
    parser.add_argument("--skip-refresh", action="store_true",
                        help="time the submissions only (no refresh, no members recorded)")
    parser.add_argument("--resubmit", action="store_true",
                        help="submit the same settings file in every repeat (runlog then finds its per-run digests "
                             "in the ledger from the first); without it each repeat submits a new cohort, as labs do")
    parser.add_argument("--compare", metavar="DIR",
                        help="also time submit-batch of the runlog package in DIR (an older tree), interleaved")
    args = parser.parse_args(argv)



    aws = aws_cli()
    with cohort_world(BUCKET, args.runs, inputs=args.inputs) as world:
        moto, emulator, request, work, env = world.moto, world.emulator, world.request, world.work, world.env
        runlog = [sys.executable, "-m", "runlog"]
        submit_runlog, submit_aws, submit_other, batch_ids = [], [], [], []
        other_env = None if args.compare is None else {
            **env, "RUNLOG_LEDGER": str(work / "compared.db"),  # an older runlog may not open a newer ledger
            "PYTHONPATH": os.pathsep.join([str(Path(args.compare).resolve()), os.environ.get("PYTHONPATH", "")])}
        # CPU time of each side of a submission: the command's own, moto's (its process) and
        # the emulator's (this process, which only waits while a command runs)
        servers: dict[str, list[tuple[float, float, float]]] = {"runlog": [], "aws": [], "other": []}
        for repeat in range(args.repeat):
            if not args.resubmit and repeat:  # a new cohort each repeat (the first is the world's own)
                request = world.fresh_request(f"r{repeat}")
            if not args.skip_submit:
                before = served(moto.pid)
                _, usage = timed([aws, "omics", "start-run-batch", *request], env, work)
                submit_aws.append(usage["seconds"])
                servers["aws"].append((usage["cpu"], *served(moto.pid, before)))
            if other_env is not None and not args.skip_submit:
                before = served(moto.pid)
                _, usage = timed([*runlog, "submit-batch", *request, "--resolve-timeout", "300"], other_env, work)
                submit_other.append(usage["seconds"])
                servers["other"].append((usage["cpu"], *served(moto.pid, before)))
            before = served(moto.pid)
            out, usage = timed([*runlog, "submit-batch", *request, "--resolve-timeout", "300"], env, work)
            submit_runlog.append(usage["seconds"])
            servers["runlog"].append((usage["cpu"], *served(moto.pid, before)))
            batch_ids.append(json.loads(out)["id"])
        if args.skip_refresh:
            batch_ids = []
        emulator.advance(3600)  # every run submitted and finished
        for batch_id in batch_ids:  # their runs made now (the emulator makes them at the first request that
            emulator.get_batch(batch_id)  # follows: whichever tool came first would pay for every batch's)
        refresh_runlog, list_aws, cpu_runlog, cpu_aws, memory, memory_aws = [], [], [], [], 0.0, 0.0
        emulator_runlog, emulator_aws = [], []  # the emulator's CPU (this process) while each command ran
        for batch_id in batch_ids:  # alternating; the first refresh of a batch records every member
            cpu_before = time.process_time()
            _, usage = timed([aws, "omics", "list-runs-in-batch", "--batch-id", batch_id], env, work)
            emulator_aws.append(time.process_time() - cpu_before)
            list_aws.append(usage["seconds"])
            cpu_aws.append(usage["cpu"])
            memory_aws = max(memory_aws, usage["rss_mib"])
            cpu_before = time.process_time()
            out, usage = timed([*runlog, "refresh", batch_id], env, work)
            emulator_runlog.append(time.process_time() - cpu_before)
            assert f"{args.runs} new member record(s)" in out, out
            refresh_runlog.append(usage["seconds"])
            cpu_runlog.append(usage["cpu"])
            memory = max(memory, usage["rss_mib"])
        with_members = None if args.skip_refresh else subprocess.run([*runlog, "log", "--batch", batch_ids[0], "-n", "0", "--json"], env=env,
                                      cwd=work, capture_output=True, text=True, check=True)
        assert with_members is None or len(json.loads(with_members.stdout)) == args.runs
        ledger_mib = (work / "ledger.db").stat().st_size / 2**20
    def row(name, ours, theirs, target):
        a, b = statistics.median(ours), statistics.median(theirs)
        ratio = f"{a / b:.2f}" if b > 0 else "-"  # a CPU time under one clock tick reads as 0
        return f"| {name} | {a:.2f} s | {b:.2f} s | {ratio} | {target} |"

    inputs = "inputs in S3" if args.inputs else "inputs absent from S3 (--inputs puts them there)"
    files = "the same file each repeat (--resubmit)" if args.resubmit else "a new cohort's file each repeat"
    print(f"{args.runs} runs from an s3UriSettings file ({inputs}; {files}), {args.repeat} repeat(s), medians; load average "
          f"{os.getloadavg()[0]:.1f} at the end\n")
    print("| operation | runlog | aws CLI | ratio | target |")
    print("|---|---|---|---|---|")
    if submit_aws:
        print(row("submit-batch vs start-run-batch", submit_runlog, submit_aws, "<= 1.5"))
        for at, name in ((0, "command"), (1, "moto's S3"), (2, "emulator")):
            print(row(f"  CPU time of the submission: {name}", [u[at] for u in servers["runlog"]],
                      [u[at] for u in servers["aws"]], "-"))
    if submit_other:
        print(row(f"submit-batch of {args.compare} vs start-run-batch", submit_other, submit_aws, "-"))
        print(row(f"  CPU time of the submission: command ({args.compare})", [u[0] for u in servers["other"]],
                  [u[0] for u in servers["aws"]], "-"))
    if refresh_runlog:
        print(row("refresh BATCH vs list-runs-in-batch (all pages)", refresh_runlog, list_aws, "<= 2"))
        print(row("  CPU time of the process (user + system)", cpu_runlog, cpu_aws, "-"))
        print(row("  CPU time of the emulator serving it (two pagings for runlog, one for the aws CLI)",
                  emulator_runlog, emulator_aws, "-"))
        print(f"\npeak memory (RSS) of `runlog refresh` recording every member: {memory:.0f} MiB "
              f"(`aws omics list-runs-in-batch`: {memory_aws:.0f} MiB); ledger {ledger_mib:.0f} MiB")
    return 0


def served(pid: int, before: tuple[float, float] | None = None) -> tuple[float, float]:
    """(CPU seconds of process `pid`, CPU seconds of this process), or their growth since
    `before`: moto's server, and the emulator serving from this process's threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    now = ((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), time.process_time())
    return now if before is None else (now[0] - before[0], now[1] - before[1])


if __name__ == "__main__":
    sys.exit(main())
