"""A/B of `runlog refresh BATCH` between runlog source trees, on one submitted batch.

    python benchmarks/refresh_ab.py 10000 /path/to/old/tree /path/to/this/tree [--repeat 2]

Starts moto's S3 and the emulator as batch_bench.py does, submits one s3UriSettings batch of
RUNS runs with the first tree's runlog (untimed), copies the ledger once per tree, then times
`aws omics list-runs-in-batch` once and each tree's first refresh of the batch (PYTHONPATH
set to the tree; a tree is a directory holding `runlog/` and `schema/`, e.g. from
`git archive COMMIT runlog schema | tar -x -C DIR`), one after the other, each on a fresh
copy of the ledger. Prints wall time, CPU time (the command's and its child processes') and
peak memory of each run (the largest process's, and all of its processes' together, sampled):
on a shared machine, compare CPU times. `--profile DIR` runs each tree's refresh once more under cProfile
(the main thread: the pages are fetched and parsed by a thread of their own); `--keep FILE`
keeps the submitted ledger, to time the ledger's writes offline."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path

from batch_bench import BUCKET
from harness import cohort_world, timed


def fresh_copy(work: Path) -> Path:
    """A copy of the submitted ledger (work/ledger.db) at work/copy.db, replacing the last one."""
    copy = work / "copy.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{copy}{suffix}").unlink(missing_ok=True)
    source, target = sqlite3.connect(work / "ledger.db"), sqlite3.connect(copy)
    source.backup(target)
    source.close()
    target.close()
    return copy


class TreeMemory:
    """The peak of the summed resident memory of this process's descendants that run runlog
    (not moto's server, not the probe; the emulator is this process): a refresh that starts a writer process (runlog/writerproc.py) is two
    processes, and the probe's peak (ru_maxrss) is the larger one's, not their sum. Sampled
    from /proc every 0.1 s (Linux; 0 elsewhere)."""

    def __init__(self) -> None:
        import threading

        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        while not self._stop.wait(0.1):
            pids, total = _descendants(os.getpid()), 0
            for pid in pids:
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                        command = cmdline.read()
                        if b"runlog" not in command or b"\0-c\0" in command:  # moto's server, the probe
                            continue
                    with open(f"/proc/{pid}/status") as status:
                        total += next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), 0)
                except OSError:
                    continue
            self.peak_kib = max(self.peak_kib, total)


def _descendants(pid: int) -> list[int]:
    found, at = [], [pid]
    while at:
        parent = at.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as children:
                    kids = [int(child) for child in children.read().split()]
            except OSError:
                continue
            found += kids
            at += kids
    return [p for p in found if p != pid]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=int)
    parser.add_argument("trees", nargs="+", type=Path)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--keep", type=Path, default=None,
                        help="copy the submitted ledger (before any refresh) to this file, for profiling offline")
    parser.add_argument("--profile", type=Path, default=None,
                        help="also run each tree's refresh once more under cProfile (main thread), writing "
                             "DIR/<n>.prof per tree (not timed)")
    args = parser.parse_args(argv)



    with cohort_world(BUCKET, args.runs) as world:
        emulator, request, work, env = world.emulator, world.request, world.work, world.env
        out, _ = timed([sys.executable, "-m", "runlog", "submit-batch", *request, "--resolve-timeout", "30"],
                          {**env, "PYTHONPATH": str(args.trees[0].resolve())}, work)
        batch_id = json.loads(out)["id"]
        emulator.advance(3600)
        emulator.get_batch(batch_id)  # its runs made now, not in the first timed command (docs/emulator.md)
        if args.keep is not None:
            shutil.copyfile(fresh_copy(work), args.keep)
        served = time.process_time()  # the emulator serves from this process's threads
        _, usage = timed([shutil.which("aws") or "aws", "omics", "list-runs-in-batch", "--batch-id",
                          batch_id], env, work)
        print(f"aws omics list-runs-in-batch: wall {usage['seconds']:.2f} s, CPU {usage['cpu']:.2f} s, "
              f"peak {usage['rss_mib']:.0f} MiB; emulator CPU {time.process_time() - served:.2f} s", flush=True)
        for _ in range(args.repeat):
            for tree in args.trees:
                copy = fresh_copy(work)
                served = time.process_time()
                with TreeMemory() as memory:
                    out, usage = timed([sys.executable, "-m", "runlog", "refresh", batch_id],
                                       {**env, "RUNLOG_LEDGER": str(copy), "PYTHONPATH": str(tree.resolve())}, work)
                assert f"{args.runs} new member record(s)" in out, out
                print(f"runlog refresh ({tree}): wall {usage['seconds']:.2f} s, CPU {usage['cpu']:.2f} s, "
                      f"peak {usage['rss_mib']:.0f} MiB (its processes together {memory.peak_kib / 1024:.0f} "
                      f"MiB); emulator CPU {time.process_time() - served:.2f} s", flush=True)
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
            for number, tree in enumerate(args.trees):
                copy = fresh_copy(work)
                out, _ = timed([sys.executable, "-m", "cProfile", "-o", str(args.profile / f"{number}.prof"),
                                "-m", "runlog", "refresh", batch_id],
                               {**env, "RUNLOG_LEDGER": str(copy), "PYTHONPATH": str(tree.resolve())}, work)
                assert f"{args.runs} new member record(s)" in out, out
                print(f"profile of {tree}: {args.profile / f'{number}.prof'}", flush=True)
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
