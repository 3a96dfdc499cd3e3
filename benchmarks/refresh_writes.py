"""The ledger's side of a refresh, without the network: a batch's members written in
transactions of 1, 4, 10... pages of 100, as refreshpipe.PageWriter writes them.

    python benchmarks/refresh_ab.py 10000 TREE --keep /tmp/submitted.db   # a submitted batch, kept
    python benchmarks/refresh_writes.py /tmp/submitted.db --members 30000 --pages 1 4 10

Reads the kept ledger's batch record (its outline and settings, as a refresh does), makes
--members ListRunsInBatch items for it (run ids and uuids of its own; runSettingIds taken
round the batch's settings), builds and encodes their member records once (untimed), then,
for each --pages value, writes them all into a fresh copy of the ledger and prints the CPU
time per member of the writes (SQLite: rows, indexes, triggers, seals, COMMITs)."""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ledger", type=Path, help="a ledger holding one submitted batch (refresh_ab.py --keep)")
    parser.add_argument("--members", type=int, default=30_000)
    parser.add_argument("--pages", type=int, nargs="+", default=[1, 4, 10], help="pages of 100 a transaction")
    parser.add_argument("--cache-kib", type=int, default=0, help="SQLite page cache of the writing connection")
    args = parser.parse_args(argv)

    from runlog import batch as batches
    from runlog.ledger import Ledger

    with Ledger.open(args.ledger, create=False) as ledger:
        address, count = ledger.conn.execute(
            "SELECT r.address, v.runs FROM records r JOIN batch_views v ON v.record = r.address "
            "WHERE r.kind = 'batch' ORDER BY r.seq DESC LIMIT 1").fetchone()
        outline = ledger.batch_outline(address)
        ids = [f"S{i:06d}" for i in range(count)]
        with ledger.file_run_settings(address) as from_file:
            settings = batches._settings(from_file(ids))
        pages = []
        for start in range(0, args.members, 100):
            items = [{"runSettingId": ids[n % count], "submissionStatus": "SUCCESS", "runId": str(9_000_000 + n),
                      "runInternalUuid": str(uuid.uuid4()), "runArn": f"arn:aws:omics:us-west-2:123456789012:run/"
                      f"{9_000_000 + n}"} for n in range(start, min(args.members, start + 100))]
            pages.append(ledger.encode_records([batches._member(outline, address, item, settings.get(item["runSettingId"]))
                                                for item in items]))
    with tempfile.TemporaryDirectory() as tmp:
        for group in args.pages:
            copy = Path(tmp) / "copy.db"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{copy}{suffix}").unlink(missing_ok=True)
            source, target = sqlite3.connect(args.ledger), sqlite3.connect(copy)
            source.backup(target)
            source.close()
            target.close()
            with Ledger.open(copy, create=False) as ledger:
                if args.cache_kib:
                    ledger.conn.execute(f"PRAGMA cache_size = -{int(args.cache_kib)}")
                cpu, wall = time.process_time(), time.perf_counter()
                with ledger.bulk_writes():
                    for at in range(0, len(pages), group):
                        ledger.write_records([row for page in pages[at:at + group] for row in page])
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(f"{args.members} members, {group} page(s) a transaction: {cpu / args.members * 1e6:.0f} us of CPU "
                  f"a member ({wall / args.members * 1e6:.0f} us wall)", flush=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
