"""`runlog report` on a big ledger, as a ratio against a baseline measured in the same run.

    python benchmarks/report_bench.py                       # 10 000 records, 5 repeats
    python benchmarks/report_bench.py --records 500 --repeat 1   # the CI smoke

The baseline is `runlog log -n 0 --json` on the same ledger: the same process start, the same
ledger open and every record listed, so the ratio says what the report itself costs (the
whole-ledger verify, the page, the sections and their diffs) beyond reading the records.
The target is the issue's: a report of 10 000 runs in under 10 s of runlog time.
Timings are medians of whole-process wall times, the two commands alternated. Ledgers are
built with benchmarks/make_ledger.py into --workdir and reused by later runs."""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_ledger import build, build_once  # noqa: E402
from run import compare, runlog_cmd  # noqa: E402

TARGET_SECONDS = 10.0


def cpu_seconds(cmd: list[str], env: dict, repeat: int) -> float:
    """Median CPU time (user + system) of a command's process and its children: what the
    report costs whatever else the machine is doing (wall times grow with the load)."""
    times = []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        times.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(times)


def ledger(workdir: Path, records: int) -> Path:
    return build_once(workdir / f"report-ledger-{records}.db", lambda at: build(at, records),
                      what=f"a ledger of {records} records")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000, help="records in the ledger (default 10000)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each command (medians)")
    parser.add_argument("--workdir", type=Path, default=Path(".benchmarks"), help="where ledgers are kept")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = ledger(args.workdir, args.records)
    out = args.workdir / f"report-{args.records}.html"
    env = {**os.environ, "RUNLOG_LEDGER": str(path), "NO_COLOR": "1"}
    report = [*runlog_cmd(), "report", "-o", str(out), "--force"]
    log = [*runlog_cmd(), "log", "-n", "0", "--json"]
    ours, baseline = compare(report, log, env, args.repeat)
    cpu, cpu_baseline = cpu_seconds(report, env, args.repeat), cpu_seconds(log, env, args.repeat)
    size = out.stat().st_size
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.1f} on {os.cpu_count()} cores\n"
          "| operation | runlog | baseline (log -n 0 --json) | ratio | target |\n|---|---|---|---|---|\n"
          f"| report, wall ({args.records:,} records, {size / 1e6:.1f} MB page) | {ours:.2f} s | {baseline:.2f} s | "
          f"{ours / baseline:.2f} | < {TARGET_SECONDS:.0f} s ({'met' if ours < TARGET_SECONDS else 'NOT met'}) |\n"
          f"| report, CPU ({args.records:,} records) | {cpu:.2f} s | {cpu_baseline:.2f} s | {cpu / cpu_baseline:.2f} | "
          f"< {TARGET_SECONDS:.0f} s ({'met' if cpu < TARGET_SECONDS else 'NOT met'}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
