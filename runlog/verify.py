"""`runlog verify`: recompute every content address, schema check and chain link."""

from __future__ import annotations

import json
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
    for row in conn.execute(f"SELECT {RECORD_COLUMNS} FROM records ORDER BY seq"):
        entry = Entry(*row)
        report.records += 1
        if entry.seq != previous_seq + 1:
            report.problems.append(_gap(previous_seq, entry.seq))
        report.problems.extend(check_record(entry))
        expected_chain = chain_next(previous_chain, entry.address)
        if entry.chain != expected_chain:
            report.problems.append(Problem("chain", entry.address, f"record #{entry.seq}: chain link broken "
                                           "(a record before it was removed, reordered or replaced)"))
        previous_seq, previous_chain = entry.seq, entry.chain
    top = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
    if top and top[0] > previous_seq:
        report.problems.append(_gap(previous_seq, top[0] + 1))

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


def _gap(last_seen: int, next_seen: int) -> Problem:
    first, last = last_seen + 1, next_seen - 1
    span = f"#{first}" if first == last else f"#{first}-#{last}"
    return Problem("gap", f"seq {span}", f"record {span} missing from the sequence (deleted outside runlog)")
