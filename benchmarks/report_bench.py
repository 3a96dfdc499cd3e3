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
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_ledger import build  # noqa: E402
from run import compare, runlog_cmd  # noqa: E402

TARGET_SECONDS = 10.0


def ledger(workdir: Path, records: int) -> Path:
    path = workdir / f"report-ledger-{records}.db"
    if not path.exists():
        print(f"building a ledger of {records} records in {path} ...", file=sys.stderr)
        partial = path.with_suffix(".partial")
        for leftover in workdir.glob(partial.name + "*"):
            leftover.unlink()
        build(partial, records)
        partial.rename(path)
        for suffix in ("-wal", "-shm"):
            Path(str(partial) + suffix).unlink(missing_ok=True)
    return path


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
    ours, baseline = compare([*runlog_cmd(), "report", "-o", str(out), "--force"],
                             [*runlog_cmd(), "log", "-n", "0", "--json"], env, args.repeat)
    size = out.stat().st_size
    print(f"| operation | runlog | baseline | ratio | target |\n|---|---|---|---|---|\n"
          f"| report ({args.records:,} records, {size / 1e6:.1f} MB page) | {ours:.2f} s | {baseline:.2f} s "
          f"(log -n 0 --json) | {ours / baseline:.2f} | < {TARGET_SECONDS:.0f} s "
          f"({'met' if ours < TARGET_SECONDS else 'NOT met'}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
