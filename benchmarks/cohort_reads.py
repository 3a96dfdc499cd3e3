"""The read commands on a ledger of two batches made as a user makes them: wall-time ratios to `python -c 'import click'`.

    python benchmarks/cohort_reads.py                          # two 100 000-run batches, 5 repeats
    python benchmarks/cohort_reads.py --runs 300 --repeat 1    # the CI smoke

The same set-up as batch_bench.py (moto's S3 server holding the settings file, the emulator
reading it): `runlog submit-batch` of the same settings file twice, each batch's runs started
and recorded by `runlog refresh`. Every run names an input of its own, so each batch pins the
identity of every input (`--inputs` puts them in S3 first; without it they are recorded as not
found, which is as large). `benchmarks/run.py`'s ledger (make_ledger.py) holds batches that pin
few inputs; this one measures what a cohort's inputs cost the read commands
(docs/performance.md, "Quiet machine, the cohort held by reference")."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from harness import cohort_world, timed

BUCKET = "bench-reads"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000, help="run settings in each batch (default 100 000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each command (medians are shown)")
    parser.add_argument("--inputs", action="store_true", help="put each run's input in S3 first")
    args = parser.parse_args(argv)

    runlog = [sys.executable, "-m", "runlog"]
    with cohort_world(BUCKET, args.runs, inputs=args.inputs, ledger=".runlog/ledger.db") as world:
        env, work = world.env, world.work
        batches = []
        for _ in range(2):
            out, _ = timed([*runlog, "submit-batch", *world.request, "--resolve-timeout", "300"], env, work)
            batches.append(json.loads(out)["id"])
        world.emulator.advance(args.runs)
        for batch in batches:
            timed([*runlog, "refresh", batch], env, work)
        listed = subprocess.run([*runlog, "log", "--batch", batches[0], "-n", "1", "--json"], env=env, cwd=work,
                                capture_output=True, text=True, check=True).stdout
        member = json.loads(listed)[0]["run_id"]
        commands = {
            "import click": [sys.executable, "-c", "import click"],
            "log -n 20": [*runlog, "log", "-n", "20"],
            "log --batch B -n 20": [*runlog, "log", "--batch", batches[0], "-n", "20"],
            "show B": [*runlog, "show", batches[0]],
            "show MEMBER (run id)": [*runlog, "show", member],
            "diff B1 B2 (the same settings file)": [*runlog, "diff", batches[0], batches[1]],
            "verify B": [*runlog, "verify", batches[0], "--no-remote"],
        }
        seconds: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeat):
            for name, command in commands.items():
                started = time.perf_counter()
                done = subprocess.run(command, env=env, cwd=work, capture_output=True)
                seconds[name].append(time.perf_counter() - started)
                if done.returncode != 0:
                    raise SystemExit(f"{name} failed ({done.returncode}): {done.stderr[-2000:]!r}")
    base = statistics.median(seconds["import click"])
    print(f"two batches of {args.runs} runs (submit-batch, then refresh), {args.repeat} repeat(s), medians; "
          f"load average {os.getloadavg()[0]:.1f} at the end\n")
    print("| operation | wall time | ratio to import click | target |")
    print("|---|---|---|---|")
    for name, values in seconds.items():
        median = statistics.median(values)
        target = "-" if name in ("import click", "verify B") else "<= 2"
        print(f"| {name} | {median * 1000:.0f} ms | {median / base:.2f} | {target} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
