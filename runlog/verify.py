"""`runlog verify`: recompute every content address, seal, schema check and chain link.

What is checked (docs/ledger.md, "What verify proves"):
  records       content address, canonical form, record schema, fingerprint, every lookup
                column against the body, the chain and the sequence, the row's seal (which
                covers inserted_at), and the record against its attempt's intent
  attempts      intent digest, request_id and created against the intent, seal
  observations  body digest, seal (covers record, run_uuid, observed_at, source, status),
                the record it names exists; observation_addresses recomputed
  meta          seal
  schema        every trigger, table and index compared by its SQL with a fresh ledger's
  head          against a witness: --expect N:CHAIN, or the head `push` left on the remote
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from runlog import record as rec
from runlog.errors import UsageError
from runlog.ledger import (SEALED, Entry, Ledger, chain_next, index_columns, observation_object, row_seal, seal_of,
                           sqlite_uri, table_rows)

ENTRY_FIELDS = ("seq", "address", "body", "chain", "kind", "created", "outcome", "request_id", "run_id", "run_uuid",
                "run_arn", "workflow_id", "name", "git_commit", "fingerprint", "replay_of", "batch_id")
HEAD_RE = re.compile(r"^(\d{1,18}):([0-9a-fA-F]{12,64})$")


@dataclass
class Problem:
    kind: str  # altered | schema | index | chain | gap | seal | intent | observation | attempt | triggers | tables | head
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
    head: tuple[int, str | None] = (0, None)
    witnesses: list[str] = field(default_factory=list)  # what the head was checked against
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def head_text(self) -> str:
        return format_head(*self.head)

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "records": self.records,
            "observations": self.observations,
            "attempts": self.attempts,
            "pending": self.pending,
            "head": {"records": self.head[0], "chain": self.head[1], "text": self.head_text},
            "witnesses": self.witnesses,
            "problems": [p.as_dict() for p in self.problems],
        }


def format_head(count: int, chain: str | None) -> str:
    return f"{count}:{chain or '0' * 64}"


def parse_head(text: str) -> tuple[int, str]:
    """N:CHAIN as `runlog verify` prints it (CHAIN may be shortened to 12 or more hex digits)."""
    match = HEAD_RE.match(text.strip())
    if not match:
        raise UsageError(f"--expect {text!r}: give a head as `runlog verify` prints it, N:CHAIN "
                         "(a record count, a colon, and 12 to 64 hex digits of the chain value)")
    return int(match.group(1)), match.group(2).lower()


def check_record(entry: Entry, row: tuple[list[str], tuple] | None = None, seal: str | None = None,
                 intent: str | None = None, sealed: bool = True) -> list[Problem]:
    """Everything that can be checked about one row on its own: content, schema, fingerprint,
    lookup columns; with the whole row, its seal; with its attempt's intent, that the record is
    that intent plus an outcome."""
    where = entry.address
    body = entry.body.encode("utf-8")
    problems = []
    if row is not None and sealed:
        if seal is None:
            problems.append(Problem("seal", where, f"record #{entry.seq} has no seal (inserted outside runlog)"))
        elif seal_of("records", *row) != seal:
            problems.append(Problem("seal", where, f"record #{entry.seq}: a column of its row was changed "
                                                   "(the row no longer matches its seal)"))
    if rec.sha256_hex(body) != entry.address:
        return problems + [Problem("altered", where, f"record #{entry.seq} {entry.address[:12]} no longer matches "
                                                     "its content address (edited outside runlog)")]
    try:
        record = json.loads(body)
    except ValueError:
        return problems + [Problem("altered", where, f"record #{entry.seq} is not valid JSON")]
    if rec.canonical_json(record) != body:
        problems.append(Problem("altered", where, f"record #{entry.seq} is not in canonical JSON form"))
    invalid = [] if rec.is_valid(record) else rec.schema_errors(record)[:5]
    for error in invalid:
        problems.append(Problem("schema", where, f"record #{entry.seq} breaks the record schema: {error}"))
    if invalid or not isinstance(record, dict):
        return problems
    if rec.fingerprint(record) != record["fingerprint"]:
        problems.append(Problem("altered", where, f"record #{entry.seq} has a wrong configuration fingerprint"))
    expected = index_columns(record)
    for column, value in expected.items():
        if getattr(entry, column) != value:
            problems.append(Problem("index", where, f"record #{entry.seq}: column {column} is "
                                                    f"{getattr(entry, column)!r}, the record says {value!r}"))
    if intent is not None and not _is_intent_plus_outcome(body, intent.encode("utf-8")) and (
            rec.canonical_json({k: v for k, v in record.items() if k != "outcome"}) != intent.encode("utf-8")):
        problems.append(Problem("intent", where, f"record #{entry.seq} differs from the intent its attempt "
                                                 f"committed before StartRun (request {entry.request_id})"))
    return problems


def _is_intent_plus_outcome(body: bytes, intent: bytes) -> bool:
    """Whether the record's canonical JSON is its intent's with one `"outcome":...` member
    added. Both are canonical (keys sorted, checked before), so the record must be the intent
    cut at the place where "outcome" sorts, with exactly that one member inserted there. A fast
    test: False also when an earlier member holds an "outcome" key of its own (check_record
    then compares the slow, exact way)."""
    at = body.find(b',"outcome":')
    end = at + len(body) - len(intent)
    if at < 0 or end <= at or body[:at] != intent[:at] or body[end:] != intent[at:]:
        return False
    try:
        member = json.loads(b"{" + body[at + 1:end] + b"}")
    except ValueError:
        return False
    return list(member) == ["outcome"]


def verify(ledger: Ledger, *, expect: str | None = None) -> Report:
    report = Report()
    conn = ledger.conn
    report.problems.extend(check_schema_sql(conn))
    sealed = _has_seals(conn)
    last_seq = conn.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()[0]
    collect = _start_record_checks(ledger, last_seq, sealed)  # in worker processes, beside what follows
    try:
        _verify_rest(ledger, report, sealed)
    finally:
        report.problems.extend(collect())
    report.problems.sort(key=_problem_order)  # stable: by kind, then in ledger order
    if expect:
        report.witnesses.append(f"--expect {expect}")
        report.problems.extend(check_head(ledger, *parse_head(expect), witness="the expected head"))
    return report


_KIND_ORDER = ["triggers", "tables", "gap", "chain", "seal", "altered", "schema", "index", "intent", "observation",
               "attempt", "head"]


def _problem_order(problem: Problem) -> int:
    return _KIND_ORDER.index(problem.kind) if problem.kind in _KIND_ORDER else len(_KIND_ORDER)


def _verify_rest(ledger: Ledger, report: Report, sealed: bool) -> None:
    """Everything but the per-record checks: chain, sequences, observations, attempts, meta."""
    conn = ledger.conn
    previous_seq = 0
    previous_chain = None
    for seq, address, chain in conn.execute("SELECT seq, address, chain FROM records ORDER BY seq"):
        report.records += 1
        if seq != previous_seq + 1:
            report.problems.append(_gap("record", previous_seq, seq))
        if chain != chain_next(previous_chain, address):
            report.problems.append(Problem("chain", address, f"record #{seq}: chain link broken "
                                           "(a record before it was removed, reordered or replaced)"))
        previous_seq, previous_chain = seq, chain
    report.head = (report.records, previous_chain)
    top = _sequence_top(conn, "records")
    if top > previous_seq:
        report.problems.append(_gap("record", previous_seq, top + 1))

    seals = _seals(conn, "observations") if sealed else {}
    last = 0
    for row in table_rows(conn, "observations", "1 ORDER BY seq"):
        seq = row["seq"]
        report.observations += 1
        if seq != last + 1:
            report.problems.append(_gap("observation", last, seq))
        last = seq
        if rec.sha256_hex(row["body"].encode("utf-8")) != row["sha256"]:
            report.problems.append(Problem("observation", row["record"], f"observation #{seq} was edited"))
        report.problems.extend(_check_seal(sealed, seals, "observations", "observation", row))
    if _sequence_top(conn, "observations") > last:
        report.problems.append(_gap("observation", last, _sequence_top(conn, "observations") + 1))
    orphans = conn.execute(
        "SELECT o.seq, o.record FROM observations o LEFT JOIN records r ON r.address = o.record WHERE r.seq IS NULL"
    ).fetchall()
    for seq, address in orphans:
        report.problems.append(Problem("observation", address, f"observation #{seq} names a record that is missing"))
    report.problems.extend(_check_observation_addresses(conn))

    seals = _seals(conn, "attempts") if sealed else {}
    # an attempt with a record: the record was checked to be its intent plus an outcome, so
    # its created must be the record's; only a pending attempt's intent is parsed here
    recorded = dict(conn.execute("SELECT a.seq, r.created FROM attempts a JOIN records r ON r.request_id = a.request_id"))
    last = 0
    for row in table_rows(conn, "attempts", "1 ORDER BY seq"):
        seq = row["seq"]
        report.attempts += 1
        if seq != last + 1:
            report.problems.append(_gap("attempt", last, seq))
        last = seq
        where = f"attempt #{seq}"
        if rec.sha256_hex(row["intent"].encode("utf-8")) != row["intent_sha256"]:
            report.problems.append(Problem("attempt", where, f"attempt #{seq} was edited"))
        elif seq in recorded:
            if recorded[seq] != row["created"]:
                report.problems.append(Problem("attempt", where, f"attempt #{seq}: its created column differs "
                                               "from its intent"))
        else:
            try:
                intent = json.loads(row["intent"])
                said = (intent["request"]["requestId"], intent["created"])
            except (ValueError, KeyError, TypeError):
                said = None
            if said != (row["request_id"], row["created"]):
                report.problems.append(Problem("attempt", where, f"attempt #{seq}: its request_id or created "
                                               "column differs from its intent"))
        report.problems.extend(_check_seal(sealed, seals, "attempts", "attempt", row))
    if _sequence_top(conn, "attempts") > last:
        report.problems.append(_gap("attempt", last, _sequence_top(conn, "attempts") + 1))

    if sealed:
        seals = _seals(conn, "meta")
        for row in table_rows(conn, "meta"):
            report.problems.extend(_check_seal(sealed, seals, "meta", "meta", row))
        report.problems.extend(_orphan_seals(conn))
    report.pending = len(ledger.pending())


def check_head(ledger: Ledger, count: int, chain: str, *, witness: str) -> list[Problem]:
    """The ledger still holds the head a witness saw: at least `count` records, the count-th
    with that chain value (a prefix of it is enough)."""
    if count == 0:
        return []
    row = ledger.conn.execute("SELECT seq, chain FROM records ORDER BY seq LIMIT 1 OFFSET ?",
                              (count - 1,)).fetchone()
    if row is None:
        have = ledger.count()
        return [Problem("head", "ledger", f"{witness} saw {count} records, the ledger has {have}: "
                                          f"{count - have} record(s) were removed from its end")]
    if not row[1].startswith(chain.lower()):
        return [Problem("head", "ledger", f"{witness} saw record #{count} with chain {chain[:12]}, the ledger's is "
                                          f"{row[1][:12]}: records up to #{count} were removed, replaced or reordered")]
    return []


@lru_cache(maxsize=1)
def expected_schema() -> dict[tuple[str, str], str]:
    """(type, name) -> normalised SQL of every table, index and trigger of a fresh ledger."""
    from runlog.migrations import LEDGER_FORMAT, MIGRATIONS

    fresh = Ledger(None, sqlite3.connect(":memory:", isolation_level=None))  # type: ignore[arg-type]
    with fresh.write():
        for number in range(LEDGER_FORMAT):
            MIGRATIONS[number](fresh.db)
    found = _schema(fresh.conn)
    fresh.close()
    return found


def _normal_sql(sql: str) -> str:
    return " ".join(re.sub(r"[\[\]\"`]", "", sql).split()).rstrip(";").lower()


def _schema(conn: sqlite3.Connection) -> dict[tuple[str, str], str]:
    rows = conn.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'")
    return {(kind, name): _normal_sql(sql) for kind, name, sql in rows}


def check_schema_sql(conn: sqlite3.Connection) -> list[Problem]:
    """Triggers, tables and indexes as a fresh ledger has them, compared by their SQL: a
    trigger that was dropped, replaced (e.g. by a no-op `WHEN 0` one) or added is named."""
    expected, actual = expected_schema(), _schema(conn)
    problems = []
    missing, changed = [], []
    for (kind, name), sql in sorted(expected.items()):
        if (kind, name) not in actual:
            missing.append((kind, name))
        elif actual[(kind, name)] != sql:
            changed.append((kind, name))
    added = sorted(key for key in actual if key not in expected and key[0] == "trigger")
    triggers = [f"{n} removed" for k, n in missing if k == "trigger"] + [
        f"{n} altered" for k, n in changed if k == "trigger"] + [f"{n} added" for _, n in added]
    if triggers:
        problems.append(Problem("triggers", "ledger", "append-only triggers were tampered with: "
                                + ", ".join(triggers)))
    others = [f"{k} {n} removed" for k, n in missing if k != "trigger"] + [
        f"{k} {n} altered" for k, n in changed if k != "trigger"]
    if others:
        problems.append(Problem("tables", "ledger", "the ledger's tables differ from runlog's: " + ", ".join(others)))
    return problems


def _has_seals(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'row_seals'").fetchone() is not None


def _seals(conn: sqlite3.Connection, table: str) -> dict[str, str]:
    return dict(conn.execute("SELECT id, sha256 FROM row_seals WHERE tbl = ?", (table,)))


def _check_seal(sealed: bool, seals: dict[str, str], table: str, label: str, row: dict) -> list[Problem]:
    if not sealed:
        return []
    key = str(row[SEALED[table]])
    seal = seals.get(key)
    where = f"{label} {key}" if table == "meta" else f"{label} #{key}"
    if seal is None:
        return [Problem("seal", where, f"{where} has no seal (inserted outside runlog)")]
    if row_seal(table, row) != seal:
        return [Problem("seal", where, f"{where}: a column of its row was changed (the row no longer matches "
                                       "its seal)")]
    return []


def _orphan_seals(conn: sqlite3.Connection) -> list[Problem]:
    """Seals whose row is gone: a row deleted behind runlog's back."""
    problems = []
    for table, key in SEALED.items():
        # the join runs on the row table's key (its index), never on an expression of it
        joined = "t.seq = CAST(s.id AS INTEGER)" if key == "seq" else f"t.{key} = s.id"
        rows = conn.execute(f"SELECT s.id FROM row_seals s LEFT JOIN {table} t ON {joined} "
                            f"WHERE s.tbl = ? AND t.{key} IS NULL", (table,)).fetchall()
        if rows:
            ids = ", ".join((f"#{r[0]}" if key == "seq" else r[0]) for r in rows[:10])
            problems.append(Problem("seal", table, f"{len(rows)} row(s) of {table} were deleted ({ids})"))
    return problems


def _check_observation_addresses(conn: sqlite3.Connection) -> list[Problem]:
    """Each stored observation address is the SHA-256 of the observation it names."""
    problems = []
    rows = conn.execute(
        "SELECT a.observation, a.address, o.record, o.run_uuid, o.observed_at, o.source, o.status, o.body "
        "FROM observation_addresses a LEFT JOIN observations o ON o.seq = a.observation ORDER BY a.observation")
    for seq, address, record, run_uuid, observed_at, source, status, body in rows:
        if record is None:
            problems.append(Problem("observation", f"observation #{seq}",
                                    f"observation #{seq} has an address but no longer exists (deleted)"))
            continue
        try:
            data = observation_object(record, run_uuid, observed_at, source, status, json.loads(body))
        except ValueError:
            continue  # reported with the observation's own digest
        if rec.sha256_hex(data) != address:
            problems.append(Problem("observation", record, f"observation #{seq} no longer matches its content "
                                                           "address (a column was changed)"))
    return problems


def _sequence_top(conn: sqlite3.Connection, table: str) -> int:
    top = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
    return top[0] if top else 0


PARALLEL_FROM = 20_000  # records; below this one process is quicker than starting workers
RANGE_SQL = (
    "SELECT r.*, s.sha256 AS seal__, a.intent AS intent__ FROM records r "
    "LEFT JOIN row_seals s ON s.tbl = 'records' AND s.id = CAST(r.seq AS TEXT) "
    "LEFT JOIN attempts a ON a.request_id = r.request_id "
    "WHERE r.seq >= ? AND r.seq < ? ORDER BY r.seq"
)
RANGE_SQL_UNSEALED = RANGE_SQL.replace("s.sha256 AS seal__", "NULL AS seal__").replace(
    "LEFT JOIN row_seals s ON s.tbl = 'records' AND s.id = CAST(r.seq AS TEXT) ", "")


def _check_rows(conn: sqlite3.Connection, low: int, high: int, sealed: bool) -> list[Problem]:
    cursor = conn.execute(RANGE_SQL if sealed else RANGE_SQL_UNSEALED, (low, high))
    names = [d[0] for d in cursor.description]
    width = len(names) - 2
    problems = []
    columns = names[:width]
    in_order = tuple(names[:len(ENTRY_FIELDS)]) == ENTRY_FIELDS  # r.* starts with Entry's fields
    where = [names.index(k) for k in ENTRY_FIELDS]
    for values in cursor:
        entry = Entry(*values[:len(ENTRY_FIELDS)]) if in_order else Entry(*(values[i] for i in where))
        problems.extend(check_record(entry, (columns, values), values[width], values[width + 1], sealed))
    return problems


def _check_range(path: str, low: int, high: int, sealed: bool) -> list[Problem]:
    """check_record for the records with low <= seq < high, read through a connection of its own."""
    conn = sqlite3.connect(sqlite_uri(path, "ro"), uri=True)
    try:
        return _check_rows(conn, low, high, sealed)
    finally:
        conn.close()


def _start_record_checks(ledger: Ledger, last_seq: int, sealed: bool) -> Callable[[], list[Problem]]:
    """check_record for every record; returns the function that gives the problems found.
    Large ledgers are split over the machine's cores, in worker processes that run while the
    caller checks the other tables; small ones are checked when the result is asked for."""
    cores = os.cpu_count() or 1
    if ledger.snapshot or last_seq < PARALLEL_FROM or cores < 2:
        return lambda: _check_rows(ledger.conn, 0, last_seq + 1, sealed)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    workers = min(cores, 8)
    bounds = [last_seq * i // workers for i in range(workers + 1)]
    bounds[-1] = last_seq + 1
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
    futures = [pool.submit(_check_range, str(ledger.path), low, high, sealed)
               for low, high in zip(bounds[:-1], bounds[1:])]

    def collect() -> list[Problem]:
        try:
            return [problem for future in futures for problem in future.result()]
        finally:
            pool.shutdown(cancel_futures=True)

    return collect


def verify_entries(ledger: Ledger, entries: list[Entry]) -> Report:
    """Check only the given records: content, schema, fingerprint, columns, seal, intent and
    their chain link, and their observations."""
    report = Report()
    sealed = _has_seals(ledger.conn)
    obs_seals = _seals(ledger.conn, "observations") if sealed else {}
    for entry in entries:
        report.records += 1
        report.problems.extend(_check_rows(ledger.conn, entry.seq, entry.seq + 1, sealed))
        before = ledger.conn.execute("SELECT chain FROM records WHERE seq < ? ORDER BY seq DESC LIMIT 1",
                                     (entry.seq,)).fetchone()
        if entry.chain != chain_next(before[0] if before else None, entry.address):
            report.problems.append(Problem("chain", entry.address, f"record #{entry.seq}: chain link broken "
                                           "(a record before it was removed, reordered or replaced)"))
        for row in table_rows(ledger.conn, "observations", "record = ? ORDER BY seq", (entry.address,)):
            report.observations += 1
            if rec.sha256_hex(row["body"].encode("utf-8")) != row["sha256"]:
                report.problems.append(Problem("observation", entry.address, f"observation #{row['seq']} was edited"))
            report.problems.extend(_check_seal(sealed, obs_seals, "observations", "observation", row))
    report.head = ledger.head()
    report.pending = len(ledger.pending())
    return report


def _gap(label: str, last_seen: int, next_seen: int) -> Problem:
    first, last = last_seen + 1, next_seen - 1
    span = f"#{first}" if first == last else f"#{first}-#{last}"
    return Problem("gap", f"seq {span}" if label == "record" else f"{label} {span}",
                   f"{label} {span} missing from the sequence (deleted outside runlog)")


def check_outgoing(ledger: Ledger, records: set[str], observations: set[str]) -> list[Problem]:
    """What `push` is about to send, checked as verify would: the records (content, schema,
    columns, seal, intent) and the observations (digest, seal), so that an edit behind runlog's
    back never becomes a valid object on the team ledger."""
    conn = ledger.conn
    sealed = _has_seals(conn)
    problems: list[Problem] = []
    if records:
        seqs = sorted(seq for seq, address in conn.execute("SELECT seq, address FROM records") if address in records)
        start = None
        for i, seq in enumerate(seqs):  # contiguous runs of seq, each read as one range
            start = seq if start is None else start
            if i + 1 == len(seqs) or seqs[i + 1] != seq + 1:
                problems.extend(_check_rows(conn, start, seq + 1, sealed))
                start = None
    if observations:
        seals = _seals(conn, "observations") if sealed else {}
        for row in table_rows(conn, "observations", "1 ORDER BY seq"):
            found = _check_seal(sealed, seals, "observations", "observation", row)
            if rec.sha256_hex(row["body"].encode("utf-8")) != row["sha256"]:
                found.append(Problem("observation", row["record"], f"observation #{row['seq']} was edited"))
            if found:
                try:
                    address = rec.sha256_hex(observation_object(row["record"], row["run_uuid"], row["observed_at"],
                                                                row["source"], row["status"], json.loads(row["body"])))
                except ValueError:
                    address = None
                stored = conn.execute("SELECT address FROM observation_addresses WHERE observation = ?",
                                      (row["seq"],)).fetchone()
                if address is None or address in observations or (stored and stored[0] in observations):
                    problems.extend(found)
    return problems
