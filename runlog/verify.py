"""`runlog verify`: recompute every content address, schema check and chain link."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from runlog import record as rec
from runlog.ledger import Entry, Ledger, RECORD_COLUMNS, chain_next, index_columns

TRIGGERS = {f"{t}_no_{op}" for t in ("records", "attempts", "observations") for op in ("update", "delete")}


@dataclass
class Problem:
    kind: str  # altered | schema | index | chain | gap | observation | attempt | triggers
    where: str
    message: str

    def as_dict(self) -> dict:
        return {"kind": self.kind, "where": self.where, "message": self.message}


@dataclass
class Report:
    records: int = 0
    observations: int = 0
    attempts: int = 0
    pending: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "records": self.records,
            "observations": self.observations,
            "attempts": self.attempts,
            "pending": self.pending,
            "problems": [p.as_dict() for p in self.problems],
        }


def check_record(entry: Entry) -> list[Problem]:
    """Everything that can be checked about one row on its own."""
    where = entry.address
    body = entry.body.encode("utf-8")
    if rec.sha256_hex(body) != entry.address:
        return [Problem("altered", where, f"record #{entry.seq} {entry.address[:12]} no longer matches its "
                                          "content address (edited outside runlog)")]
    try:
        record = json.loads(body)
    except ValueError:
        return [Problem("altered", where, f"record #{entry.seq} is not valid JSON")]
    problems = []
    if rec.canonical_json(record) != body:
        problems.append(Problem("altered", where, f"record #{entry.seq} is not in canonical JSON form"))
    for error in ([] if rec.is_valid(record) else rec.schema_errors(record)[:5]):
        problems.append(Problem("schema", where, f"record #{entry.seq} breaks the record schema: {error}"))
    if problems:
        return problems
    if rec.fingerprint(record) != record["fingerprint"]:
        problems.append(Problem("altered", where, f"record #{entry.seq} has a wrong configuration fingerprint"))
    expected = index_columns(record)
    for column, value in expected.items():
        if getattr(entry, column) != value:
            problems.append(Problem("index", where, f"record #{entry.seq}: column {column} is "
                                                    f"{getattr(entry, column)!r}, the record says {value!r}"))
    return problems


def verify(ledger: Ledger) -> Report:
    report = Report()
    conn = ledger.conn
    triggers = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
    missing = TRIGGERS - triggers
    if missing:
        report.problems.append(Problem("triggers", "ledger", "append-only triggers were removed: "
                                       + ", ".join(sorted(missing))))

    previous_seq = 0
    previous_chain = None
    for seq, address, chain in conn.execute("SELECT seq, address, chain FROM records ORDER BY seq"):
        report.records += 1
        if seq != previous_seq + 1:
            report.problems.append(_gap(previous_seq, seq))
        if chain != chain_next(previous_chain, address):
            report.problems.append(Problem("chain", address, f"record #{seq}: chain link broken "
                                           "(a record before it was removed, reordered or replaced)"))
        previous_seq, previous_chain = seq, chain
    top = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
    if top and top[0] > previous_seq:
        report.problems.append(_gap(previous_seq, top[0] + 1))
    report.problems.extend(_check_all_records(ledger, previous_seq))

    for seq, address, body, digest in conn.execute(
        "SELECT o.seq, o.record, o.body, o.sha256 FROM observations o ORDER BY o.seq"
    ):
        report.observations += 1
        if rec.sha256_hex(body.encode("utf-8")) != digest:
            report.problems.append(Problem("observation", address, f"observation #{seq} was edited"))
    orphans = conn.execute(
        "SELECT o.seq, o.record FROM observations o LEFT JOIN records r ON r.address = o.record WHERE r.seq IS NULL"
    ).fetchall()
    for seq, address in orphans:
        report.problems.append(Problem("observation", address, f"observation #{seq} names a record that is missing"))

    for seq, intent, digest in conn.execute("SELECT seq, intent, intent_sha256 FROM attempts ORDER BY seq"):
        report.attempts += 1
        if rec.sha256_hex(intent.encode("utf-8")) != digest:
            report.problems.append(Problem("attempt", f"attempt #{seq}", f"attempt #{seq} was edited"))
    report.pending = len(ledger.pending())
    return report


PARALLEL_FROM = 20_000  # records; below this one process is quicker than starting workers


def _check_range(path: str, low: int, high: int) -> list[Problem]:
    """check_record for the records with low <= seq < high, read through a connection of its own."""
    import sqlite3

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute(f"SELECT {RECORD_COLUMNS} FROM records WHERE seq >= ? AND seq < ? ORDER BY seq",
                            (low, high))
        return [problem for row in rows for problem in check_record(Entry(*row))]
    finally:
        conn.close()


def _check_all_records(ledger: Ledger, last_seq: int) -> list[Problem]:
    """check_record for every record, split over the machine's cores for large ledgers."""
    cores = os.cpu_count() or 1
    if last_seq < PARALLEL_FROM or cores < 2:
        return _check_range(str(ledger.path), 0, last_seq + 1)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    workers = min(cores, 8)
    bounds = [last_seq * i // workers for i in range(workers + 1)]
    bounds[-1] = last_seq + 1
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
        parts = pool.map(_check_range, [str(ledger.path)] * workers, bounds[:-1], bounds[1:])
        return [problem for part in parts for problem in part]


def verify_entries(ledger: Ledger, entries: list[Entry]) -> Report:
    """Check only the given records: content, schema, fingerprint, columns and their chain link."""
    report = Report()
    for entry in entries:
        report.records += 1
        report.problems.extend(check_record(entry))
        before = ledger.conn.execute("SELECT chain FROM records WHERE seq < ? ORDER BY seq DESC LIMIT 1",
                                     (entry.seq,)).fetchone()
        if entry.chain != chain_next(before[0] if before else None, entry.address):
            report.problems.append(Problem("chain", entry.address, f"record #{entry.seq}: chain link broken "
                                           "(a record before it was removed, reordered or replaced)"))
        for seq, body, digest in ledger.conn.execute(
            "SELECT seq, body, sha256 FROM observations WHERE record = ? ORDER BY seq", (entry.address,)
        ):
            report.observations += 1
            if rec.sha256_hex(body.encode("utf-8")) != digest:
                report.problems.append(Problem("observation", entry.address, f"observation #{seq} was edited"))
    report.pending = len(ledger.pending())
    return report


def _gap(last_seen: int, next_seen: int) -> Problem:
    first, last = last_seen + 1, next_seen - 1
    span = f"#{first}" if first == last else f"#{first}-#{last}"
    return Problem("gap", f"seq {span}", f"record {span} missing from the sequence (deleted outside runlog)")
