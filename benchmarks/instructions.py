"""Read commands in instructions: each command's whole process counted by valgrind, as a
ratio to `python -c 'import click'` counted the same way.

    python benchmarks/instructions.py --size 100000          # the ledger run.py keeps in .benchmarks/
    python benchmarks/instructions.py --size 2000 --ops log  # a quick look

Wall time on a shared machine moves with the load; the number of instructions a process
runs does not (to a fraction of a percent), so a change can be judged with one run of each
command. It is not wall time: what the processor waits for (the disk, page faults of a
cold file) and the process's start-up in the kernel are not counted, and both weigh more in
the baseline, so instruction ratios come out higher than wall-time ratios
(docs/performance.md has both). Needs valgrind (apt-get install valgrind); each command
runs about 50 times slower under it."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import bench_env, runlog_cmd  # noqa: E402

OPERATIONS = {
    "log": ["log", "-n", "20"],
    "show": ["show", "@1"],
    "diff": ["diff", "@1", "@2"],
    "verify1": ["verify", "@1"],
}


def instructions(cmd: list[str], env: dict) -> int:
    """Instructions the process runs from exec to exit (valgrind's callgrind, no cache model)."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out", *cmd], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or not found:
        raise SystemExit(f"{' '.join(cmd)} failed under valgrind (exit {done.returncode}): {done.stderr[-500:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000, help="records in the ledger (built if missing)")
    parser.add_argument("--workdir", type=Path, default=Path(".benchmarks"), help="where ledgers are kept")
    parser.add_argument("--ops", default=",".join(OPERATIONS), help=f"some of {', '.join(OPERATIONS)}")
    args = parser.parse_args(argv)
    if not shutil.which("valgrind"):
        print("valgrind is not installed: nothing measured (apt-get install valgrind)", file=sys.stderr)
        return 0
    from make_ledger import build
    from runlog.ledger import Ledger

    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.workdir / f"ledger-{args.size}.db"
    if not path.exists():
        print(f"building a ledger of {args.size} records in {path} ...", file=sys.stderr)
        build(path, args.size)
    Ledger.open(path).close()  # migrated (if an older runlog built it) before anything is counted
    env = bench_env(RUNLOG_LEDGER=str(path), NO_COLOR="1")
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):  # the same gettext work in every run
        env.pop(var, None)
    base_cmd = [sys.executable, "-c", "import click"]
    for name in args.ops.split(","):  # warm: bytecode compiled, file cached
        subprocess.run([*runlog_cmd(), *OPERATIONS[name]], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)
    baseline = instructions(base_cmd, env)
    print(f"| operation ({args.size:,} records) | instructions | import click | ratio |")
    print("|---|---|---|---|")
    for name in args.ops.split(","):
        ours = instructions([*runlog_cmd(), *OPERATIONS[name]], env)
        print(f"| {' '.join(OPERATIONS[name])} | {ours / 1e6:.0f} M | {baseline / 1e6:.0f} M | {ours / baseline:.2f} |")
    print(f"(load average {os.getloadavg()[0]:.1f}: it does not change these counts)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
