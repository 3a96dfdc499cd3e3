"""The refresh's writer process's work, offline: a batch's members built, schema-checked and
encoded by this thread (batch.MemberPages) and written by refreshpipe.PageWriter as
runlog/writerproc.py sets it up, then a status observation for each (matched with
Ledger.member_runs, as the parent does), without the network or the parent.

    python benchmarks/refresh_ab.py 100000 TREE --repeat 0 --keep /tmp/submitted.db   # a submitted batch, kept
    python benchmarks/refresh_child.py /tmp/submitted.db --members 100000
    python benchmarks/refresh_child.py /tmp/submitted.db --members 100000 --pages 30 --cache-kib 16384 --gather 1 --ahead 4

Prints the wall time of the members and of everything, and the CPU time of each thread: the
writer thread's (SQLite's work and the seals, chain and rows; one writer at a time, so the
floor of a refresh's wall time) and this thread's (building and checking). Run it with
PYTHONPATH set to another tree to compare (options its PageWriter lacks are left out)."""

from __future__ import annotations

import argparse
import inspect
import os
import resource
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from runlog import batch as batches
    from runlog import fastjson, writerproc
    from runlog.ledger import Ledger
    from runlog.refreshpipe import PageWriter

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ledger", type=Path, help="a ledger holding one submitted batch (refresh_ab.py --keep)")
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--pages", type=int, default=writerproc.PAGES_A_TRANSACTION, help="pages a transaction")
    parser.add_argument("--cache-kib", type=int, default=writerproc.CACHE_KIB)
    parser.add_argument("--gather", type=int, default=getattr(writerproc, "GATHER", 1))
    parser.add_argument("--ahead", type=int, default=getattr(writerproc, "AHEAD", 4))
    args = parser.parse_args(argv)

    writer_cpu: list[float] = []
    run = PageWriter._run

    def timed_run(self: PageWriter) -> None:
        try:
            run(self)
        finally:
            writer_cpu.append(time.thread_time())

    PageWriter._run = timed_run  # type: ignore[method-assign]
    options = {"most": args.pages, "cache_kib": args.cache_kib, "gather": args.gather, "ahead": args.ahead}
    accepted = inspect.signature(PageWriter.__init__).parameters
    options = {name: value for name, value in options.items() if name in accepted}

    with Ledger.open(args.ledger, create=False) as ledger:
        address, count = ledger.conn.execute(
            "SELECT r.address, v.runs FROM records r JOIN batch_views v ON v.record = r.address "
            "WHERE r.kind = 'batch' ORDER BY r.seq DESC LIMIT 1").fetchone()
        outline = ledger.batch_outline(address)
    batch_id = outline["outcome"]["response"]["id"]
    ids = [f"S{i:06d}" for i in range(count)]
    pages = [[{"runSettingId": ids[n % count], "submissionStatus": "SUCCESS", "runId": str(9_000_000 + n),
               "runInternalUuid": str(uuid.UUID(int=n)), "runArn": f"arn:aws:omics:us-west-2:123456789012:run/"
               f"{9_000_000 + n}"} for n in range(start, min(args.members, start + 100))]
             for start in range(0, args.members, 100)]
    status = {"status": "COMPLETED", "creationTime": "2026-11-26T10:00:00Z", "startTime": "2026-11-26T10:01:00Z",
              "stopTime": "2026-11-26T11:00:00Z", "name": "align", "workflowId": "1234567", "storageType": "DYNAMIC"}
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "copy.db"
        source, target = sqlite3.connect(args.ledger), sqlite3.connect(copy)
        source.backup(target)
        source.close()
        target.close()
        main_cpu, wall = time.thread_time(), time.perf_counter()
        with Ledger.open(copy, create=False) as ledger, ledger.bulk_writes(), \
                ledger.file_run_settings(address) as from_file:
            maker = batches.MemberPages(outline, address)
            writer = PageWriter(ledger, **options)
            # as runlog/writerproc.py hands them over: each member names this batch (a tree without it: left out)
            batch_of = {"batch": address} if "batch" in inspect.signature(PageWriter.records).parameters else {}
            writer.start()
            for items in pages:
                writer.records([({"kind": "member"}, body, at, columns)
                                for _, body, at, columns in maker.encode(items, from_file)], **batch_of)
            writer.close()
            members_wall = time.perf_counter() - wall
            writer.start()
            for items in pages:
                rows = ledger.member_runs(batch_id, [item["runId"] for item in items])
                seen = [(at, run_uuid, "2026-11-26T12:00:00Z", "ListRuns", "COMPLETED",
                         fastjson.dumps({**status, "id": run_id})) for at, run_id, run_uuid, _ in rows]
                writer.observations(ledger.encode_observations(seen))
            writer.close()
        wall = time.perf_counter() - wall
        main_cpu = time.thread_time() - main_cpu
    print(f"{args.members} members and statuses, {options}: members {members_wall:.2f} s, all {wall:.2f} s of wall; "
          f"CPU: writer thread {' + '.join(f'{c:.2f}' for c in writer_cpu)} s (members + statuses), this thread "
          f"{main_cpu:.2f} s; rows added {writer.added}; peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
          f" MiB (with the items made up front); load average {os.getloadavg()[0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
