"""runlog's benchmarks: every number is a ratio against a baseline measured in the same run.

    python benchmarks/run.py                      # ledgers of 100 000 and 1 000 000 records
    python benchmarks/run.py --sizes 20000 --repeat 5   # a quick look

It prints one table (operation, runlog, baseline, ratio, target). Timings are medians of
whole-process wall times. Ledgers are built once into --workdir (default .benchmarks/)
with benchmarks/make_ledger.py and reused by later runs.

  submit      `runlog submit` vs `aws omics start-run`, same request, same local emulator
  log/show/…  read commands on a big ledger vs the bare interpreter running `import click`
  verify all  `runlog verify` of a whole ledger, in records per second (target >= 20 000)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_ledger import build  # noqa: E402

SUBMIT = ["--workflow-id", "1234567", "--workflow-owner-id", "123456789012",
          "--role-arn", "arn:aws:iam::123456789012:role/HealthOmicsServiceRole",
          "--output-uri", "s3://your-bucket/results/", "--parameters", '{"param1": "value1", "param2": "value2"}']


def wall(cmd: list[str], env: dict, cwd: Path | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def compare(a: list[str], b: list[str], env: dict, repeat: int, cwd: Path | None = None) -> tuple[float, float]:
    """Medians of a and b, run alternately so drift in the machine's load hits both alike."""
    wall(a, env, cwd), wall(b, env, cwd)  # warm the file cache
    times_a, times_b = [], []
    for _ in range(repeat):
        times_a.append(wall(a, env, cwd))
        times_b.append(wall(b, env, cwd))
    return statistics.median(times_a), statistics.median(times_b)


def runlog_cmd() -> list[str]:
    found = shutil.which("runlog")
    return [found] if found else [sys.executable, "-m", "runlog"]


def bench_submit(repeat: int, rows: list) -> None:
    from runlog.emulator import Emulator

    aws = shutil.which("aws")
    if not aws:
        rows.append(("submit vs aws omics start-run", None, None, None, "aws CLI not installed (pip install awscli)"))
        return
    with Emulator(port=0) as emu, tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "analysis"
        repo.mkdir()
        for args in (["init", "-q"], ["-c", "user.email=b@example.org", "-c", "user.name=bench", "commit", "-q",
                                       "--allow-empty", "-m", "bench"]):
            subprocess.run(["git", *args], cwd=repo, check=True)
        env = {**os.environ, "AWS_ENDPOINT_URL": emu.endpoint_url, "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
               "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-west-2",
               "AWS_CONFIG_FILE": str(Path(tmp) / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(Path(tmp) / "none"),
               "RUNLOG_LEDGER": str(Path(tmp) / "ledger.db"), "AWS_PAGER": ""}
        env.pop("AWS_PROFILE", None)
        ours, theirs = compare([*runlog_cmd(), "submit", *SUBMIT], [aws, "omics", "start-run", *SUBMIT],
                               env, repeat, cwd=repo)
        rows.append(("submit (whole process)", ours, theirs, ours / theirs, "<= 0.75 x aws omics start-run"))


def bench_ledger(size: int, workdir: Path, repeat: int, rows: list) -> None:
    path = workdir / f"ledger-{size}.db"
    if not path.exists():
        print(f"building a ledger of {size} records in {path} ...", file=sys.stderr)
        partial = path.with_suffix(".partial")
        for leftover in workdir.glob(partial.name + "*"):
            leftover.unlink()
        build(partial, size)
        partial.rename(path)
        for suffix in ("-wal", "-shm"):
            Path(str(partial) + suffix).unlink(missing_ok=True)
    env = {**os.environ, "RUNLOG_LEDGER": str(path), "NO_COLOR": "1"}
    baseline = [sys.executable, "-c", "import click"]
    import sqlite3

    conn = sqlite3.connect(path)
    middle = conn.execute("SELECT run_id FROM records WHERE run_id IS NOT NULL AND seq > ? LIMIT 1",
                          (size // 2,)).fetchone()[0]
    conn.close()
    from runlog.cli import COMMANDS

    operations = [("log -n 20", ["log", "-n", "20"]), ("show @1", ["show", "@1"]),
                  ("show RUN_ID", ["show", middle]), ("verify @1", ["verify", "@1"])]
    if "diff" in COMMANDS:
        operations.append(("diff @1 @2", ["diff", "@1", "@2"]))
    for label, args in operations:
        ours, base = compare([*runlog_cmd(), *args], baseline, env, repeat)
        rows.append((f"{label} ({size:,} records)", ours, base, ours / base, "<= 2 x import click"))
    if size <= 200_000:
        started = time.perf_counter()
        subprocess.run([*runlog_cmd(), "verify"], env=env, check=True, stdout=subprocess.DEVNULL)
        elapsed = time.perf_counter() - started
        rows.append((f"verify all ({size:,} records)", elapsed, None, size / elapsed, ">= 20 000 records/s"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="runlog benchmarks (ratios against same-run baselines)")
    parser.add_argument("--sizes", default="100000,1000000", help="ledger sizes, comma-separated")
    parser.add_argument("--repeat", type=int, default=10, help="timed runs per command")
    parser.add_argument("--workdir", type=Path, default=Path(".benchmarks"), help="where ledgers are kept")
    parser.add_argument("--skip-submit", action="store_true")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows: list = []
    if not args.skip_submit:
        bench_submit(args.repeat, rows)
    for size in (int(s) for s in args.sizes.split(",") if s):
        bench_ledger(size, args.workdir, args.repeat, rows)
    print("| operation | runlog | baseline | ratio | target |")
    print("|---|---|---|---|---|")
    for label, ours, base, ratio, target in rows:
        if ours is None:
            print(f"| {label} | - | - | - | {target} |")
        elif base is None:
            print(f"| {label} | {ours:.3f} s | - | {ratio:,.0f} records/s | {target} |")
        else:
            print(f"| {label} | {ours * 1000:.0f} ms | {base * 1000:.0f} ms | {ratio:.2f} | {target} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
