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

import hashlib
import itertools
import json
import operator
import os
import re
import sqlite3
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Protocol

import orjson

from runlog import blobs, fastjson
from runlog import record as rec
from runlog.errors import LedgerError, UsageError
from runlog.ledger import (
    INDEX_COLUMNS,
    INTENT_COLUMNS,
    SEALED,
    Entry,
    Ledger,
    attempt_intent,
    chain_next,
    index_columns,
    observation_object,
    open_same_file,
    read_blob,
    sealer,
    stored_observation_object,
    table_rows,
)
from runlog.textsafe import terminal_safe

HEAD_RE = re.compile(r"^(\d{1,18}):([0-9a-fA-F]{12,64})$")


@dataclass
class Problem:
    kind: str  # altered | schema | index | chain | gap | seal | intent | member | started | observation | attempt | triggers | tables | head
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
        raise UsageError(f"`expect` {text!r}: give a head as `verify()` reports it, N:CHAIN "
                         "(a record count, a colon, and 12 to 64 hex digits of the chain value)", option="expect")
    return int(match.group(1)), match.group(2).lower()


def check_record(seq: int, address: str, body: bytes, row: dict[str, Any], *, seal: str | None = None,
                 intent: bytes | None = None, sealed: bool = True) -> tuple[list[Problem], bool]:
    """Everything that can be checked about one record row on its own: content, schema,
    fingerprint, lookup columns (`row`: the row's columns but its body, which `body` holds as
    stored), the row's seal; with its attempt's intent, that the record is that intent plus an
    outcome. Returns the problems and whether the record matched the intent."""
    where = address
    problems = []
    if sealed:
        if seal is None:
            problems.append(Problem("seal", where, f"record #{seq} has no seal (inserted outside runlog)"))
        elif _seal_problems(sealer("records", tuple(row)), "record #", str(seq), tuple(row.values()), seal):
            problems.append(Problem("seal", where, f"record #{seq}: a column of its row was changed "
                                                   "(the row no longer matches its seal)"))
    if hashlib.sha256(body).hexdigest() != address:
        return problems + [Problem("altered", where, f"record #{seq} {address[:12]} no longer matches "
                                                     "its content address (edited outside runlog)")], False
    try:
        record, canonical, exact = fastjson.decode_canonical(body)
    except (ValueError, RecursionError):
        return problems + [Problem("altered", where, f"record #{seq} is not valid JSON")], False
    if not canonical:
        problems.append(Problem("altered", where, f"record #{seq} is not in canonical JSON form"))
    invalid = [] if rec.is_valid(record) else rec.schema_errors(record)[:5]
    for error in invalid:
        problems.append(Problem("schema", where, f"record #{seq} breaks the record schema: {error}"))
    if invalid or not isinstance(record, dict):
        return problems, False
    # the legacy material (runlog 0.1.0's) is made only for a record the current one does not match
    materials = (lambda: rec.fingerprint_material(record), lambda: rec.legacy_fingerprint_material(record))
    if not any(material is not None
               and hashlib.sha256(fastjson.canonical(material, exact)).hexdigest() == record["fingerprint"]
               for material in (make() for make in materials)):
        problems.append(Problem("altered", where, f"record #{seq} has a wrong configuration fingerprint"))
    for column, value in index_columns(record).items():
        if row.get(column) != value:
            problems.append(Problem("index", where, f"record #{seq}: column {column} is "
                                                    f"{row.get(column)!r}, the record says {value!r}"))
    matched = intent is not None and (_is_intent_plus_outcome(body, intent) or rec.canonical_json(
        {k: v for k, v in record.items() if k != "outcome"}) == intent)
    if intent is not None and not matched:
        problems.append(Problem("intent", where, f"record #{seq} differs from the intent its attempt "
                                                 f"committed before StartRun (request {row.get('request_id')})"))
    return problems, matched


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
        member = fastjson.loads_inexact(b"{" + body[at + 1:end] + b"}")  # (its keys alone)
    except (ValueError, RecursionError):
        return False
    return list(member) == ["outcome"]


def verify(ledger: Ledger, *, expect: str | None = None) -> Report:
    report = Report()
    ledger.migrated_copy()  # an older ledger read as it is: its tables and indexes are checked as migrated
    conn = ledger.conn
    report.problems.extend(check_schema_sql(conn))
    sealed = _has_seals(conn)
    collect = _start_row_checks(ledger, sealed)  # in worker processes, beside what follows
    try:
        rest = _check_rest(ledger, sealed)
    finally:
        tallies = collect()
    _sum_up(ledger, report, tallies, rest, sealed)
    report.problems.sort(key=_problem_order)  # stable: by kind, then in ledger order
    if expect:
        report.witnesses.append(f"--expect {expect}")
        report.problems.extend(check_head(ledger, *parse_head(expect), witness="the expected head"))
    return report


_KIND_ORDER = ["triggers", "tables", "gap", "chain", "seal", "altered", "schema", "index", "intent", "member",
               "started", "observation", "attempt", "head"]


def _problem_order(problem: Problem) -> int:
    return _KIND_ORDER.index(problem.kind) if problem.kind in _KIND_ORDER else len(_KIND_ORDER)


@dataclass
class Tally:
    """What the row checks of one slice of a table found: its problems, how many rows it
    had, the first and last seq (for gaps between slices), the last record's chain value,
    how many attempts were checked with their record, how many rows had no seal."""
    table: str
    problems: list[Problem] = field(default_factory=list)
    count: int = 0
    first: int | None = None
    last: int | None = None
    chain: str | None = None
    matched: int = 0
    unsealed: int = 0
    unsealed_attempts: int = 0

    def saw(self, seq: int) -> None:
        """Count the row with this seq, naming a gap before it within the slice."""
        if self.last is not None and seq != self.last + 1:
            self.problems.append(_gap(_LABELS[self.table], self.last, seq))
        if self.first is None:
            self.first = seq
        self.count += 1
        self.last = seq


_LABELS = {"records": "record", "observations": "observation", "attempts": "attempt"}


def _check_rest(ledger: Ledger, sealed: bool) -> list[Problem]:
    """What the row checks do not cover: observation addresses, meta's seals, the batch
    records' per-run digests."""
    problems = _check_observation_addresses(ledger.conn)
    problems.extend(check_blobs(ledger))
    problems.extend(check_batch_settings(ledger.conn))
    problems.extend(check_members_made(ledger))
    problems.extend(check_started_once(ledger))
    if sealed:
        seals = _seals(ledger.conn, "meta")
        for row in table_rows(ledger.conn, "meta"):
            problems.extend(_check_seal(sealed, seals, "meta", "meta", row))
    return problems


def check_members_made(ledger: Ledger) -> list[Problem]:
    """Each member record is what its batch record makes of its run (batch.unmade_members):
    a member that is not was not made by runlog from that batch record (written into the
    file, or taken by a pull before pulls checked members). Members whose batch record the
    ledger does not hold are not checked. Reads one batch record at a time, its members one by one."""
    conn = ledger.conn
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'batch_members'").fetchone():
        return []
    from runlog.batch import member_record, unmade_members

    problems: list[Problem] = []
    batches = conn.execute("SELECT DISTINCT m.batch FROM batch_members m WHERE m.batch IS NOT NULL").fetchall()
    for (batch_seq,) in batches:
        found = conn.execute("SELECT address, body FROM records WHERE seq = ?", (batch_seq,)).fetchone()
        if found is None:
            continue
        address, body = found
        try:
            batch = blobs.inflate(fastjson.loads(body.encode("utf-8")), ledger.blob)
            member_record(batch, address, {})  # a batch record members can be made from
        except (ValueError, TypeError, AttributeError, KeyError, LedgerError):
            continue  # the row, schema and blob checks name a batch record that is not JSON, of another shape
            # or whose cohort is lost
        seqs: dict[str, int] = {}

        def rows(batch_seq: int = batch_seq, seqs: dict[str, int] = seqs) -> Iterator[tuple[str, bytes]]:
            for seq, member, text in conn.execute("SELECT r.seq, r.address, r.body FROM batch_members m JOIN records "
                                                  "r ON r.seq = m.seq WHERE m.batch = ? ORDER BY r.seq", (batch_seq,)):
                seqs[member] = seq
                yield member, text.encode("utf-8")

        for member, why in unmade_members(batch, address, rows()).items():
            problems.append(Problem("member", f"record #{seqs[member]}", f"record #{seqs[member]}: {why}"))
    return problems


def check_started_once(ledger: Ledger, entries: list[Entry] | None = None) -> list[Problem]:
    """Each run and batch is started by one record (runlog/startrules.py): every record but the
    oldest of those that say they started one is named, and one whose uuid is not in the form
    the service gives. Of the given `entries` only, when given."""
    from runlog import startrules

    if entries is None:
        groups = ledger.started_twice()
        odd = ledger.started_in_another_form()
    else:
        starts = [(entry.seq, entry.address, what) for entry in entries
                  if (what := startrules.started(entry.record)) is not None]
        groups = [(what, held) for what in {what for _, _, what in starts} if len(held := ledger.starters(what)) > 1]
        odd = [start for start in starts if startrules.form_problem(start[2])]
    problems = [Problem("started", address, f"record #{seq}: {startrules.form_problem(what)}")
                for seq, address, what in odd]
    for what, held in groups:
        first_seq, first = held[0]
        for seq, address in held[1:]:
            why = startrules.second_start(what, first, f"#{first_seq}")
            problems.append(Problem("started", address, f"record #{seq}: {why}"))
    return problems


def _sum_up(ledger: Ledger, report: Report, tallies: list[Tally], rest: list[Problem], sealed: bool) -> None:
    """The slices' tallies joined: counts, gaps between slices and at the ends, the head;
    then attempts (their count and gaps, those no record completes) and orphan seals, each
    read in full only when the counts say something is off."""
    conn = ledger.conn
    rows: dict[str, int] = {}
    unsealed: dict[str, int] = {}
    matched = 0
    for table in ("records", "observations"):
        last, chain = 0, None
        for tally in (t for t in tallies if t.table == table):
            report.problems.extend(tally.problems)
            if tally.first is not None and tally.last is not None:
                if tally.first != last + 1:
                    report.problems.append(_gap(_LABELS[table], last, tally.first))
                last, chain = tally.last, tally.chain
            rows[table] = rows.get(table, 0) + tally.count
            unsealed[table] = unsealed.get(table, 0) + tally.unsealed
            unsealed["attempts"] = unsealed.get("attempts", 0) + tally.unsealed_attempts
            matched += tally.matched
        report.problems.extend(_end_gap(conn, table, last))
        if table == "records":
            report.head = (rows.get(table, 0), chain)
    report.records, report.observations = rows.get("records", 0), rows.get("observations", 0)
    report.problems.extend(rest)
    report.attempts, gaps = _count_and_gaps(conn, "attempts")
    report.problems.extend(gaps)
    if report.attempts != matched:  # some attempts have no record: pending, checked on their own
        pending = _check_pending_attempts(conn, sealed)
        report.problems.extend(pending.problems)
        unsealed["attempts"] = unsealed.get("attempts", 0) + pending.unsealed
    if sealed:
        rows["attempts"] = report.attempts
        report.problems.extend(_orphan_seals(conn, rows, unsealed))
    report.pending = report.attempts - matched  # request_id is unique in both tables
    report.problems.extend(_check_pending_list(conn, report.pending))
    report.problems.extend(_check_batch_tables(conn))


def _check_pending_list(conn: sqlite3.Connection, pending: int) -> list[Problem]:
    """`pending_attempts` (kept by triggers for the warning every command gives) lists exactly
    the attempts no record completes: as many rows as there are such attempts (`pending`,
    counted from the tables themselves), each of them one (its key is unique)."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'pending_attempts'").fetchone():
        return []
    listed, wrong = conn.execute(
        "SELECT count(*), coalesce(sum(NOT EXISTS (SELECT 1 FROM attempts a WHERE a.request_id = p.request_id) "
        "OR EXISTS (SELECT 1 FROM records r WHERE r.request_id = p.request_id)), 0) FROM pending_attempts p").fetchone()
    if listed == pending and not wrong:
        return []
    return [Problem("attempt", "pending_attempts", f"the list of pending attempts was changed outside runlog: it "
                    f"has {listed} (of which {wrong} no pending attempt), the attempts no record completes are "
                    f"{pending}; warnings about pending attempts were wrong")]


def _check_batch_tables(conn: sqlite3.Connection) -> list[Problem]:
    """`batch_members` and `batch_views` (migrations m007, m008, kept by triggers for `show B`,
    `log --batch`, `diff B1 B2`) say what the records say: one row per member record with its
    batch record's seq, created and outcome, and its run's latest status as recomputed from
    all its observations (STATUS_ORDER), with that observation's sort key; one view per
    batch record, its body without the settings file's content. `member_triggers_paused`
    (m014) is empty: a row left there stops the triggers that keep batch_members."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'batch_members'").fetchone():
        return []
    from runlog.migrations import _LATEST_SEQ, _STATUS_RANK, _STATUS_TIME

    latest = _LATEST_SEQ.format(address="r.address")
    members, rows, wrong = conn.execute(
        "SELECT (SELECT count(*) FROM records WHERE kind = 'member'), (SELECT count(*) FROM batch_members), "
        "(SELECT count(*) FROM batch_members m LEFT JOIN records r ON r.seq = m.seq "
        "LEFT JOIN observations o ON o.seq = m.status_obs WHERE r.seq IS NULL "
        "OR r.kind != 'member' OR r.created != m.created OR r.outcome != m.outcome "
        "OR (SELECT b.seq FROM records b WHERE b.address = "
        "CASE WHEN json_valid(r.body) THEN json_extract(r.body, '$.batch.record') END) IS NOT m.batch "
        f"OR m.status_obs IS NOT {latest} OR m.status IS NOT o.status OR o.record IS NOT "
        f"(CASE WHEN m.status_obs IS NOT NULL THEN r.address END) OR m.status_rank IS NOT "
        f"(CASE WHEN o.seq IS NOT NULL THEN {_STATUS_RANK.format(o='o')} END) "
        f"OR m.status_time IS NOT {_STATUS_TIME.format(o='o')} OR m.status_seen IS NOT julianday(o.observed_at))"
    ).fetchone()
    problems = []
    if members != rows or wrong:
        problems.append(Problem("index", "batch_members", f"the list of batches' member runs was changed outside "
                                f"runlog: it has {rows} rows ({wrong} not as their records say), the ledger "
                                f"{members} member records; `show BATCH` and `log --batch` counted wrong"))
    views, batches, wrong = conn.execute(
        "SELECT (SELECT count(*) FROM batch_views), (SELECT count(*) FROM records WHERE kind = 'batch'), "
        "(SELECT count(*) FROM batch_views v LEFT JOIN records r ON r.address = v.record WHERE r.seq IS NULL "
        "OR CASE WHEN json_valid(r.body) THEN v.view != json_remove(r.body, '$.batch.settings_file.content') "
        "OR v.runs IS NOT CASE WHEN json_type(r.body, '$.batch.settings_file.content_blob') IS NOT NULL "
        "THEN json_extract(r.body, '$.batch.runs') "
        "ELSE json_array_length(r.body, '$.batch.settings_file.content') END ELSE 1 END)").fetchone()
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'member_triggers_paused'").fetchone() \
            and conn.execute("SELECT 1 FROM member_triggers_paused").fetchone():
        problems.append(Problem("index", "member_triggers_paused", "the member triggers were paused outside runlog "
                                "(member_triggers_paused holds a row, which runlog removes in the transaction that "
                                "adds it): batch_members is not kept as records and observations are added"))
    if views != batches or wrong:
        problems.append(Problem("index", "batch_views", f"the views of batch records were changed outside runlog: "
                                f"{views} views ({wrong} not their record's), {batches} batch records; `show BATCH` "
                                "and `diff` of batches showed wrong values"))
    return problems


def _count_and_gaps(conn: sqlite3.Connection, table: str) -> tuple[int, list[Problem]]:
    """How many rows the table has, and each gap in its sequence (rows deleted behind
    runlog's back, also at its end: sqlite_sequence remembers the highest seq given). The
    count, lowest and highest seq come from the table's index; the seqs are listed only when
    they say a gap exists."""
    count, low, high = conn.execute(f"SELECT count(*), min(seq), max(seq) FROM {table}").fetchone()
    tally = Tally(table, count=count, last=count)
    if count and (low != 1 or high != count):
        tally = Tally(table, last=0)
        for (seq,) in conn.execute(f"SELECT seq FROM {table} ORDER BY seq"):
            tally.saw(seq)
    return tally.count, tally.problems + _end_gap(conn, table, tally.last or 0)


def _end_gap(conn: sqlite3.Connection, table: str, last: int) -> list[Problem]:
    """Rows deleted from the table's end: sqlite_sequence remembers a seq above its last row's."""
    top = _sequence_top(conn, table)
    return [_gap(_LABELS[table], last, top + 1)] if top > last else []


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


def check_blobs(ledger: Ledger, seqs: list[int] | None = None) -> list[Problem]:
    """The cohorts batch records hold by reference (runlog/blobs.py, migration m012): each
    reference of the batch records (of `seqs`; None: every one, and then every blob the
    ledger holds, named or not) names a blob the ledger holds, whose bytes are the canonical
    JSON its name is the SHA-256 of, of the length the reference says; a settings file's
    content is a list of as many run settings as the record's `batch.runs`."""
    conn = ledger.conn
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'blobs'").fetchone():
        return []
    problems: list[Problem] = []
    where = "kind = 'batch'" + ("" if seqs is None else f" AND seq IN ({','.join(str(int(seq)) for seq in seqs)})")
    checked: set[str] = set()
    known: dict[bytes, str | None] = {}
    for seq, body in conn.execute(f"SELECT seq, body FROM records WHERE {where} AND instr(body, ?) "
                                  "ORDER BY seq", (blobs.MARKER,)).fetchall():
        try:
            held = list(_held_problems(conn, fastjson.loads(body.encode("utf-8")), known))
        except (ValueError, TypeError, AttributeError):
            continue  # the row and schema checks name it
        for place, ref, why in held:
            checked.add(ref["sha256"])
            if why is not None:
                problems.append(Problem("altered", f"record #{seq}", f"record #{seq}: its {place} (held by "
                                        f"reference) cannot be trusted: {why}"))
    if seqs is None:  # the blobs no record names: checked too (left by an abandoned attempt, or stray);
        checked |= _named_by_pending(conn)  # a pending attempt's are checked as its (_pending_blob_problems)
        for sha256, size, packed in conn.execute("SELECT sha256, bytes, data FROM blobs ORDER BY sha256"):
            if sha256 in checked:
                continue
            # as a reader checks it: never more than its row says it holds is decompressed (a zlib
            # bomb stops there), of that length, hashing to its name
            _, why = blobs.readable(sha256, (size, packed))
            if why is not None:
                problems.append(Problem("altered", f"blob {sha256[:12]}", f"blob {sha256[:12]} (named by no record) "
                                        f"{why}"))
    return problems


def _named_by_pending(conn: sqlite3.Connection) -> set[str]:
    """The blobs the intents of pending attempts (no record completes them) name."""
    named: set[str] = set()
    for text, packed in conn.execute(f"SELECT {INTENT_COLUMNS} FROM attempts a WHERE NOT EXISTS "
                                     "(SELECT 1 FROM records r WHERE r.request_id = a.request_id)"):
        intent = _intent_bytes(text, packed)
        if blobs.MARKER.encode("utf-8") not in intent:
            continue
        try:
            named.update(ref["sha256"] for _, _, ref in blobs.refs(fastjson.loads(intent))
                         if isinstance(ref, dict) and isinstance(ref.get("sha256"), str))
        except (ValueError, TypeError, AttributeError):
            continue  # the attempt's own check names an intent that is not JSON
    return named


def _held_problems(conn: sqlite3.Connection, record: dict, known: dict[bytes, str | None] | None = None
                   ) -> Iterator[tuple[str, dict, str | None]]:
    """(place, reference, what is wrong with its blob or None) for each reference a batch
    record or a batch's intent holds (runlog/blobs.py; one the schema would refuse is left
    to it): the blob is there, its bytes are the canonical JSON its name is the digest of, of
    the length both the reference and its row say; a settings file's content is a list of as
    many run settings as `batch.runs`. `known`: the answers given so far, by reference (the
    batches of one settings file name the same blobs, each checked once)."""
    for place, _, ref in blobs.refs(record):
        if not isinstance(ref, dict) or not isinstance(ref.get("sha256"), str):
            continue  # the schema check names it
        runs = (record.get("batch") or {}).get("runs")
        try:  # the same reference (and runs) checked again gives the same answer: batches of one cohort
            key = orjson.dumps([place, ref, runs if place == blobs.CONTENT else None], option=orjson.OPT_SORT_KEYS)
        except TypeError:
            key = b""  # a value orjson does not write (the schema check names it): checked, not kept
        if known is not None and key and key in known:
            yield place, ref, known[key]
            continue
        row = conn.execute("SELECT bytes, data FROM blobs WHERE sha256 = ?", (ref["sha256"],)).fetchone()
        why = blobs.stored_problem(ref, row, place, runs)
        if known is not None and key:
            known[key] = why
        yield place, ref, why


def check_batch_settings(conn: sqlite3.Connection, seqs: list[int] | None = None) -> list[Problem]:
    """`batch_settings` (migration m009, written with each batch record for `diff B1 B2`) and
    `blob_settings` (m013: the same rows of a settings file's content held by reference,
    keyed by its blob) say what the records and blobs say: the rows of each batch record (of
    `seqs`; None: every one) are recomputed from its body (runlog/cohortindex.py), or from
    its blob for one held by reference, and compared; for the whole ledger, no row of
    `batch_settings` belongs to a record that is not a batch record written inline, and no
    row of `blob_settings` to a blob the ledger does not hold (the rows of every blob are
    checked, a pending attempt's too). Whole-ledger verify only, beside the row checks, as
    for `batch_members`: `verify B` proves the record itself (recomputing its digests would
    more than double its time on a 100 000-run batch)."""
    from runlog import cohortindex

    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN "
                                             "('batch_settings', 'blob_settings')")}
    if "batch_settings" not in tables:
        return []
    by_blob = "blob_settings" in tables
    if seqs is None:
        batches = [row[0] for row in conn.execute("SELECT seq FROM records WHERE kind = 'batch' ORDER BY seq")]
        strays = conn.execute("SELECT count(DISTINCT batch) FROM batch_settings WHERE batch NOT IN "
                              "(SELECT seq FROM records WHERE kind = 'batch')").fetchone()[0]
        if by_blob:
            strays += conn.execute("SELECT count(DISTINCT blob) FROM blob_settings WHERE blob NOT IN "
                                   "(SELECT sha256 FROM blobs)").fetchone()[0]
    else:
        batches, strays = seqs, 0
    wrong = []
    held: dict[str, str] = {}  # the blobs holding settings by reference -> a record naming it (for the message)
    for seq in batches:
        found = conn.execute("SELECT body FROM records WHERE seq = ? AND kind = 'batch'", (seq,)).fetchone()
        expected: list | None = None
        if found is not None:
            data = found[0].encode("utf-8")
            try:
                record = fastjson.decode_canonical(data)[0]
                ref = blobs.ref_of(record, blobs.CONTENT) if by_blob else None
                if ref is not None and isinstance(ref.get("sha256"), str):
                    held.setdefault(ref["sha256"], f"#{seq}")
                    expected = []  # its rows are its blob's (checked below): none of its own
                else:
                    expected = cohortindex.record_rows(record, data, partial(read_blob, conn))
            except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
                expected = None  # the record itself is broken: its own check says so
        stored = conn.execute("SELECT bucket, digest, runs FROM batch_settings WHERE batch = ? ORDER BY bucket",
                              (seq,)).fetchall()
        if stored != (expected or []):
            wrong.append(f"#{seq}")
    if by_blob:
        if seqs is None:
            for (sha256,) in conn.execute("SELECT DISTINCT blob FROM blob_settings ORDER BY blob").fetchall():
                held.setdefault(sha256, f"blob {sha256[:12]}")
        for sha256, where in sorted(held.items()):
            data = read_blob(conn, sha256)
            if data is None:
                continue  # a blob lost: check_blobs names it (and its rows are strays, counted above)
            expected = cohortindex.blob_rows(data)  # (None for a blob that is no JSON list: check_blobs names it)
            stored = conn.execute("SELECT bucket, digest, runs FROM blob_settings WHERE blob = ? ORDER BY bucket",
                                  (sha256,)).fetchall()
            if stored != (expected or []):
                wrong.append(where)
    if not wrong and not strays:
        return []
    return [Problem("index", "batch_settings", "the digests of batch records' run settings were changed outside "
                    f"runlog: {len(wrong) + strays} batch record(s) or blob(s) ({', '.join(wrong[:5]) or 'none'}"
                    f"{', ...' if len(wrong) > 5 else ''}; {strays} not of a batch record or blob held) have rows not "
                    "as their records say; `diff` of batches could miss or invent differences")]


SCHEMA_FILE = Path(__file__).parent / "schemas" / "ledger-schema.json"


@lru_cache(maxsize=1)
def expected_schema() -> dict[tuple[str, str], str]:
    """(type, name) -> normalised SQL of every table, index and trigger of a fresh ledger, as
    fresh_schema() gives it; read from the package (building a ledger to ask costs more than
    the rest of verifying a small one). tests/test_verify_fast.py fails when it is stale."""
    return {(kind, name): sql for kind, name, sql in json.loads(SCHEMA_FILE.read_text("utf-8"))}


def fresh_schema() -> dict[tuple[str, str], str]:
    """(type, name) -> normalised SQL of every table, index and trigger of a ledger made by
    the migrations. Write it into the package after changing them: `python -m runlog.verify`."""
    from runlog.migrations import LEDGER_FORMAT, MIGRATIONS

    fresh = Ledger(None, sqlite3.connect(":memory:", isolation_level=None))  # type: ignore[arg-type]
    with fresh.write():
        for number in range(LEDGER_FORMAT):
            MIGRATIONS[number](fresh.db)
    found = _schema(fresh.conn)
    fresh.close()
    return found


def write_schema_file() -> None:
    rows = [[kind, name, sql] for (kind, name), sql in sorted(fresh_schema().items())]
    SCHEMA_FILE.write_text(json.dumps(rows, indent=1) + "\n", "utf-8")


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


def _seals_of(conn: sqlite3.Connection, table: str, ids: list[str]) -> dict[str, str]:
    """The seals of these rows of `table` only (a whole table's seals cost a read of them all)."""
    found: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        found.update(conn.execute(f"SELECT id, sha256 FROM row_seals WHERE tbl = ? AND id IN ({','.join('?' * len(part))})",
                                  (table, *part)))
    return found


def _check_seal(sealed: bool, seals: dict[str, str], table: str, label: str, row: dict) -> list[Problem]:
    if not sealed:
        return []
    key = str(row[SEALED[table]])
    return _seal_problems(sealer(table, tuple(row)), label if table == "meta" else label + " #", key,
                          tuple(row.values()), seals.get(key))


def _seal_problems(seal_of_row: Callable[[tuple], str], label: str, key: str, values: tuple,
                   seal: str | None) -> list[Problem]:
    """A row against its seal (`seal_of_row` from ledger.sealer, for the row's columns)."""
    where = f"{label} {key}" if not label.endswith("#") else f"{label}{key}"
    if seal is None:
        return [Problem("seal", where, f"{where} has no seal (inserted outside runlog)")]
    try:
        actual = seal_of_row(values)
    except (TypeError, ValueError):  # a value runlog never writes (a BLOB, NaN, a lone surrogate)
        actual = None
    if actual != seal:
        return [Problem("seal", where, f"{where}: a column of its row was changed (the row no longer matches "
                                       "its seal)")]
    return []


def _orphan_seals(conn: sqlite3.Connection, rows: dict[str, int], unsealed: dict[str, int]) -> list[Problem]:
    """Seals whose row is gone: a row deleted behind runlog's back. A table whose seals number
    its rows less those found without a seal (`rows`, `unsealed`: counted by the row checks)
    has none: each row has at most one seal, so no seal is left over. Others are joined."""
    problems = []
    counts = dict(conn.execute("SELECT tbl, count(*) FROM row_seals GROUP BY tbl"))
    for table, key in SEALED.items():
        if table in rows and counts.get(table, 0) == rows[table] - unsealed.get(table, 0):
            continue
        # the join runs on the row table's key (its index), never on an expression of it
        joined = "t.seq = CAST(s.id AS INTEGER)" if key == "seq" else f"t.{key} = s.id"
        found = conn.execute(f"SELECT s.id FROM row_seals s LEFT JOIN {table} t ON {joined} "
                             f"WHERE s.tbl = ? AND t.{key} IS NULL", (table,)).fetchall()
        if found:
            ids = ", ".join((f"#{r[0]}" if key == "seq" else r[0]) for r in found[:10])
            problems.append(Problem("seal", table, f"{len(found)} row(s) of {table} were deleted ({ids})"))
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


PARALLEL_FROM = 20_000  # rows; below this one process is quicker than starting workers


def _columns(conn: sqlite3.Connection, table: str, leave_out: str) -> list[str]:
    """The table's columns as they are (a later migration may add some), but one."""
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})") if row[1] != leave_out]


def _unmade(source: Any, status: Any, run_uuid: Any, body: bytes | str,
            record_run: tuple[str | None, str | None] | None) -> str | None:
    """Why an observation row cannot have been written by runlog (runlog/obsrules.py), or
    None; `record_run`: its record's (run_uuid, run_id), None when the record is missing."""
    from runlog.obsrules import STATUS_SOURCES, run_problem, status_problem

    if not isinstance(source, str) or (source not in STATUS_SOURCES and status is None and run_uuid is None):
        return None  # (a source that is no text: the row's own checks name it)
    parsed = None
    if source in STATUS_SOURCES:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None  # (the body's digest and the record checks name a body that is not JSON)
    why = status_problem(source, status, parsed)
    if why is None and record_run is not None:
        why = run_problem(source, run_uuid, parsed, *record_run)
    return why


def _seal_join(table: str, alias: str, of: str, sealed: bool) -> tuple[str, str]:
    """The column and join that give each row of `of` its seal (NULL for unsealed ledgers)."""
    if not sealed:
        return "NULL", ""
    return f"{alias}.sha256", f"LEFT JOIN row_seals {alias} ON {alias}.tbl = '{table}' AND {alias}.id = CAST({of}.seq AS TEXT) "


class _RecordLayout:
    """Where each value sits in a row of _scan_records' query: the record's columns but its
    body, its body, its seal, then its attempt's columns but the intent, the intent and the
    attempt's seal."""

    def __init__(self, conn: sqlite3.Connection, sealed: bool):
        self.record_columns = _columns(conn, "records", "body")
        self.attempt_columns = _columns(conn, "attempts", "intent")
        record_seal, record_join = _seal_join("records", "rs", "r", sealed)
        attempt_seal, attempt_join = _seal_join("attempts", "sa", "a", sealed)
        self.select = (
            f"SELECT {', '.join('r.' + c for c in self.record_columns)}, CAST(r.body AS BLOB), {record_seal}, "
            f"{', '.join('a.' + c for c in self.attempt_columns)}, CAST(a.intent AS BLOB), {attempt_seal} "
            f"FROM records r {record_join}LEFT JOIN attempts a ON a.request_id = r.request_id {attempt_join}")
        self.sql = self.select + "WHERE r.seq >= ? AND r.seq < ? ORDER BY r.seq"
        width = len(self.record_columns)
        self.body, self.seal = width, width + 1
        self.seq, self.address, self.chain, self.created = (
            self.record_columns.index(c) for c in ("seq", "address", "chain", "created"))
        self.attempt = width + 2
        self.intent = self.attempt + len(self.attempt_columns)
        self.attempt_seal = self.intent + 1
        self.attempt_seq = self.attempt + self.attempt_columns.index("seq")
        self.attempt_created = self.attempt + self.attempt_columns.index("created")
        self.attempt_digest = self.attempt + self.attempt_columns.index("intent_sha256")
        at = {name: i for i, name in enumerate(self.record_columns)}
        lookup = [at.get(name) for name in INDEX_COLUMNS]  # None: a column this ledger lacks
        if None in lookup:
            self.looked_up: Callable[[tuple], tuple] = lambda r: tuple(None if i is None else r[i] for i in lookup)
        else:  # the row's lookup columns in index_columns' order, as one tuple
            self.looked_up = operator.itemgetter(*lookup)
        self.record_sealer = sealer("records", tuple(self.record_columns))
        self.attempt_sealer = sealer("attempts", tuple(self.attempt_columns))
        self.packed = self.attempt + self.attempt_columns.index("intent_zlib") \
            if "intent_zlib" in self.attempt_columns else None

    def sql_in(self, count: int) -> str:
        """The query of the rows whose seqs are given (`count` of them), in any order."""
        return self.select + f"WHERE r.seq IN ({','.join('?' * count)})"

    def unpack(self, rows: list[tuple]) -> list[tuple]:
        """The rows with each compressed intent (migration m011) in the intent's place, as
        its canonical JSON."""
        at, packed = self.intent, self.packed
        if packed is None:
            return rows
        return [r if r[packed] is None else (*r[:at], _intent_bytes(r[at], r[packed]), *r[at + 1:]) for r in rows]


def _intent_bytes(text: Any, packed: Any) -> bytes:
    """ledger.attempt_intent, or no bytes when its stored form is broken (its digest then
    differs: the attempt is named as edited)."""
    try:
        return attempt_intent(text, packed)
    except ValueError:
        return b""


CHUNK = 16  # rows checked together, step by step: each step's code and data stay in the CPU's caches


def _clean(rows: list[tuple], at: _RecordLayout, sealed: bool) -> list[bool]:
    """For each row of _scan_records' query, True when check_record and _check_attempt would
    find nothing wrong with it. Checked in the fastest way, a step at a time over all rows;
    False only means "look closer" (check_record then decides and names the problem)."""
    sha256, dumps, loads, sort, plain = hashlib.sha256, orjson.dumps, orjson.loads, fastjson.SORTED, fastjson.plain
    body, address, attempt_seq, looked_up = at.body, at.address, at.attempt_seq, at.looked_up
    try:
        ok = [sha256(r[body]).hexdigest() == r[address] for r in rows]
        if sealed:
            seal, own, attempt_seal, attempt_own, attempt = (at.record_sealer, at.seal, at.attempt_sealer,
                                                             at.attempt_seal, at.attempt)
            ok = [o and r[own] is not None and seal(r) == r[own] and (r[attempt_seq] is None or (
                r[attempt_own] is not None and attempt_seal(r[attempt:]) == r[attempt_own]))
                for o, r in zip(ok, rows, strict=True)]
        values: list[Any] = []
        for good, r in zip(ok, rows, strict=True):
            try:
                value = loads(r[body]) if good else None
            except orjson.JSONDecodeError:
                value = None
            values.append(value if type(value) is dict else None)
        ok = [v is not None and dumps(v, option=sort) == r[body] and plain(r[body]) for v, r in zip(values, rows, strict=True)]
        is_valid = rec.fast_validator().is_valid
        ok = [o and is_valid(v) for o, v in zip(ok, values, strict=True)]
        material = rec.fingerprint_material
        # a record of runlog 0.1.0 giving engineSettings has the legacy fingerprint: check_record accepts it
        ok = [o and sha256(dumps(material(v), option=sort)).hexdigest() == v["fingerprint"]
              for o, v in zip(ok, values, strict=True)]
        ok = [o and tuple(index_columns(v).values()) == looked_up(r) for o, v, r in zip(ok, values, rows, strict=True)]
        created, attempt_created, intent, digest = at.created, at.attempt_created, at.intent, at.attempt_digest
        return [o and (r[attempt_seq] is None or (
            r[created] == r[attempt_created] and _is_intent_plus_outcome(r[body], r[intent])
            and (sealed or sha256(r[intent]).hexdigest() == r[digest])))
            for o, r in zip(ok, rows, strict=True)]
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError, RecursionError):
        return [False] * len(rows)  # whatever the fast way does not take: check_record decides


def _scan_records(conn: sqlite3.Connection, low: int, high: int, sealed: bool) -> Tally:
    """The records with low <= seq < high: check_record for each, the check of each one's
    attempt (the intent committed before StartRun) read in the same pass, each chain link,
    gaps in seq. Bodies and intents are read as stored (bytes)."""
    at = _RecordLayout(conn, sealed)
    tally = Tally("records")
    before = conn.execute("SELECT chain FROM records WHERE seq < ? ORDER BY seq DESC LIMIT 1", (low,)).fetchone()
    chain = before[0] if before else None
    cursor = conn.execute(at.sql, (low, high))
    while rows := cursor.fetchmany(CHUNK):
        rows = at.unpack(rows)
        for values, clean in zip(rows, _clean(rows, at, sealed), strict=True):
            seq, address = values[at.seq], values[at.address]
            tally.saw(seq)
            if values[at.chain] != _next_link(chain, address):
                tally.problems.append(Problem("chain", address, f"record #{seq}: chain link broken "
                                              "(a record before it was removed, reordered or replaced)"))
            chain = values[at.chain]
            if values[at.attempt_seq] is not None:
                tally.matched += 1
            if not clean:
                _look_closer(values, at, sealed, tally)
    tally.chain = chain
    return tally


def _next_link(previous: str | None, address: Any) -> str | None:
    try:
        return chain_next(previous, address)
    except (UnicodeEncodeError, TypeError, AttributeError):  # not an address runlog writes
        return None


def _look_closer(values: tuple, at: _RecordLayout, sealed: bool, tally: Tally) -> None:
    """check_record and _check_attempt for a row the fast way did not pass."""
    row = dict(zip(at.record_columns, values, strict=False))  # values go on: the seal, the attempt
    intent = values[at.intent]
    if sealed and values[at.seal] is None:
        tally.unsealed += 1
    found, matched = check_record(values[at.seq], values[at.address], values[at.body], row,
                                  seal=values[at.seal], intent=intent, sealed=sealed)
    tally.problems.extend(found)
    if values[at.attempt_seq] is not None:
        if sealed and values[at.attempt_seal] is None:
            tally.unsealed_attempts += 1
        attempt = dict(zip(at.attempt_columns, values[at.attempt:at.intent], strict=True))
        tally.problems.extend(_check_attempt(attempt, intent, values[at.attempt_seal], sealed, record=row,
                                             matched=matched))


def _check_rows(conn: sqlite3.Connection, low: int, high: int, sealed: bool) -> list[Problem]:
    """Every problem of the records with low <= seq < high and their attempts (but their
    chain links and gaps: those depend on the records around them)."""
    return [p for p in _scan_records(conn, low, high, sealed).problems if p.kind not in ("chain", "gap")]


def _check_attempt(attempt: dict[str, Any], intent: bytes, seal: str | None, sealed: bool, *,
                   record: dict[str, Any] | None, matched: bool) -> list[Problem]:
    """One attempt: its intent digest, its request_id and created against its intent, its seal.
    With its record (`record`): that record was checked to be this intent plus an outcome
    (`matched`), so the intent is intact and its created is the record's; an intent that
    matched its intact record needs no digest of its own (its seal covers the digest column).
    Without a record (pending), the intent is parsed."""
    seq = attempt["seq"]
    where = f"attempt #{seq}"
    problems = []
    if not (matched and sealed) and hashlib.sha256(intent).hexdigest() != attempt["intent_sha256"]:
        problems.append(Problem("attempt", where, f"attempt #{seq} was edited"))
    elif record is not None:
        if record["created"] != attempt["created"]:
            problems.append(Problem("attempt", where, f"attempt #{seq}: its created column differs from its intent"))
    else:
        try:
            data = fastjson.loads(intent)
            said = (data["request"]["requestId"], data["created"])
        except (ValueError, KeyError, TypeError, RecursionError):
            said = None
        if said != (attempt["request_id"], attempt["created"]):
            problems.append(Problem("attempt", where, f"attempt #{seq}: its request_id or created column differs "
                                                      "from its intent"))
    if sealed:
        problems.extend(_seal_problems(sealer("attempts", tuple(attempt)), "attempt #", str(seq),
                                       tuple(attempt.values()), seal))
    return problems


def _check_pending_attempts(conn: sqlite3.Connection, sealed: bool) -> Tally:
    """The attempts no record completes (the others are checked with their record)."""
    columns = _columns(conn, "attempts", "intent")
    seal, join = _seal_join("attempts", "sa", "a", sealed)
    cursor = conn.execute(
        f"SELECT {', '.join('a.' + c for c in columns)}, CAST(a.intent AS BLOB), {seal} FROM attempts a {join}"
        "WHERE NOT EXISTS (SELECT 1 FROM records r WHERE r.request_id = a.request_id) ORDER BY a.seq")
    width = len(columns)
    packed = columns.index("intent_zlib") if "intent_zlib" in columns else None
    tally = Tally("attempts")
    for values in cursor:
        tally.unsealed += sealed and values[width + 1] is None
        intent = values[width] if packed is None or values[packed] is None \
            else _intent_bytes(values[width], values[packed])
        row = dict(zip(columns, values, strict=False))
        tally.problems.extend(_check_attempt(row, intent, values[width + 1], sealed, record=None, matched=False))
        tally.problems.extend(_pending_blob_problems(conn, row.get("request_id"), intent))
    return tally


def _pending_blob_problems(conn: sqlite3.Connection, request_id: Any, intent: Any) -> list[Problem]:
    """The blobs a pending batch attempt's intent names (runlog/blobs.py): `recover` sends it
    again and writes its record with them, so a lost or changed one is named here."""
    if not isinstance(intent, bytes) or blobs.MARKER.encode("utf-8") not in intent or not conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'blobs'").fetchone():
        return []
    try:
        held = list(_held_problems(conn, fastjson.loads(intent)))
    except (ValueError, TypeError, AttributeError):
        return []  # the attempt's own check names an intent that is not JSON
    return [Problem("altered", f"attempt {request_id}", f"pending attempt {request_id}: its {place} (held by "
                    f"reference) cannot be trusted: {why}") for place, _, why in held if why is not None]


def _scan_observations(conn: sqlite3.Connection, low: int, high: int, sealed: bool) -> Tally:
    """Observations with low <= seq < high: body digest, seal, that the record they name
    exists and that runlog could have written them (obsrules: a status from the answer, the
    record's run), gaps in seq."""
    columns = _columns(conn, "observations", "body")
    seal, join = _seal_join("observations", "so", "o", sealed)
    cursor = conn.execute(f"SELECT {', '.join('o.' + c for c in columns)}, CAST(o.body AS BLOB), {seal}, "
                          "r.seq IS NOT NULL, r.run_uuid, r.run_id "
                          f"FROM observations o LEFT JOIN records r ON r.address = o.record {join}"
                          "WHERE o.seq >= ? AND o.seq < ? ORDER BY o.seq", (low, high))
    width = len(columns)
    seq_at, record_at, digest_at, uuid_at, source_at, status_at = (
        columns.index(c) for c in ("seq", "record", "sha256", "run_uuid", "source", "status"))
    seal_observation = sealer("observations", tuple(columns))
    tally = Tally("observations")
    sha256 = hashlib.sha256
    for values in cursor:
        seq = values[seq_at]
        tally.saw(seq)
        if not values[width + 2]:
            tally.problems.append(Problem("observation", values[record_at],
                                          f"observation #{seq} names a record that is missing"))
        if why := _unmade(values[source_at], values[status_at], values[uuid_at], values[width],
                          (values[width + 3], values[width + 4]) if values[width + 2] else None):
            tally.problems.append(Problem("observation", values[record_at],
                                          f"observation #{seq} is not one runlog makes: {why}"))
        if sha256(values[width]).hexdigest() != values[digest_at]:
            tally.problems.append(Problem("observation", values[record_at], f"observation #{seq} was edited"))
        if sealed:
            if values[width + 1] is None:
                tally.unsealed += 1
            try:
                intact = seal_observation(values) == values[width + 1]
            except (TypeError, ValueError):
                intact = False
            if not intact:  # (_seal_problems words it)
                tally.problems.extend(_seal_problems(seal_observation, "observation #", str(seq), values,
                                                     values[width + 1]))
    return tally


ROW_CHECKS: dict[str, Callable[[sqlite3.Connection, int, int, bool], Tally]] = {
    "records": _scan_records, "observations": _scan_observations}  # attempts: with their record


def _check_range(path: str, identity: tuple[int, int] | None, table: str, low: int, high: int,
                 sealed: bool) -> Tally:
    """A ROW_CHECKS slice, read through a connection of its own (in a worker process), the
    file mapped into memory (reads without copying each page), only while the file at `path`
    is the one the verifying process opened (`identity`: Ledger.file_identity)."""
    conn = open_same_file(path, identity)
    if conn is None:
        raise LedgerError(f"the ledger file {terminal_safe(path)} was replaced while it was verified (another file "
                          "renamed into its place): check which file is the ledger, then verify it again")
    conn.execute("PRAGMA mmap_size = 1073741824")
    try:
        return ROW_CHECKS[table](conn, low, high, sealed)
    finally:
        conn.close()


def _start_row_checks(ledger: Ledger, sealed: bool) -> Callable[[], list[Tally]]:
    """The per-row checks of every record, attempt and observation; returns the function that
    gives their tallies (in table order, then ledger order). Large ledgers are split in
    slices over the machine's cores, checked in worker processes while the caller checks the
    chain and the rest; small ones are checked when the result is asked for."""
    tops = {table: ledger.conn.execute(f"SELECT coalesce(max(seq), 0) FROM {table}").fetchone()[0]
            for table in ROW_CHECKS}
    cores = os.cpu_count() or 1
    if ledger.snapshot or sum(tops.values()) < PARALLEL_FROM or cores < 2:
        return lambda: [ROW_CHECKS[table](ledger.conn, 0, top + 1, sealed) for table, top in tops.items()]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    workers = min(cores, 8)
    slices: list[tuple[str, int, int]] = []
    for table, top in tops.items():
        parts = workers * (4 if table == "records" else 2)  # small slices, records smallest: workers end together
        bounds = [top * i // parts for i in range(parts + 1)]
        bounds[-1] = top + 1
        slices.extend((table, low, high) for low, high in itertools.pairwise(bounds) if high > low)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
    futures = [pool.submit(_check_range, ledger.file_path, ledger.file_identity, table, low, high, sealed)
               for table, low, high in slices]

    def collect() -> list[Tally]:
        try:
            return [future.result() for future in futures]
        finally:
            pool.shutdown(cancel_futures=True)

    return collect


def verify_entries(ledger: Ledger, entries: list[Entry]) -> Report:
    """Check only the given records: content, schema, fingerprint, columns, seal, intent and
    their chain link, and their observations. The entries' bodies are not read (each record's
    row is read again, as stored): a batch record may be given as its view
    (Ledger.resolve(ref, whole=False)), not its 14 MB body."""
    report = Report()
    sealed = _has_seals(ledger.conn)
    for entry in entries:
        report.records += 1
        report.problems.extend(_check_rows(ledger.conn, entry.seq, entry.seq + 1, sealed))
        before = ledger.conn.execute("SELECT chain FROM records WHERE seq < ? ORDER BY seq DESC LIMIT 1",
                                     (entry.seq,)).fetchone()
        if entry.chain != chain_next(before[0] if before else None, entry.address):
            report.problems.append(Problem("chain", entry.address, f"record #{entry.seq}: chain link broken "
                                           "(a record before it was removed, reordered or replaced)"))
        rows = list(table_rows(ledger.conn, "observations", "record = ? ORDER BY seq", (entry.address,)))
        obs_seals = _seals_of(ledger.conn, "observations", [str(row["seq"]) for row in rows]) if sealed else {}
        for row in rows:
            report.observations += 1
            if rec.sha256_hex(row["body"].encode("utf-8")) != row["sha256"]:
                report.problems.append(Problem("observation", entry.address, f"observation #{row['seq']} was edited"))
            report.problems.extend(_check_seal(sealed, obs_seals, "observations", "observation", row))
            if why := _unmade(row["source"], row["status"], row["run_uuid"], row["body"],
                              (entry.run_uuid, entry.run_id)):
                report.problems.append(Problem("observation", entry.address,
                                               f"observation #{row['seq']} is not one runlog makes: {why}"))
    report.problems.extend(check_blobs(ledger, [entry.seq for entry in entries if entry.kind == "batch"]))
    report.problems.extend(check_started_once(ledger, entries))
    report.head = ledger.head()
    report.pending = len(ledger.pending_request_ids())  # (whole-ledger verify checks that list)
    return report


def _gap(label: str, last_seen: int, next_seen: int) -> Problem:
    first, last = last_seen + 1, next_seen - 1
    span = f"#{first}" if first == last else f"#{first}-#{last}"
    return Problem("gap", f"seq {span}" if label == "record" else f"{label} {span}",
                   f"{label} {span} missing from the sequence (deleted outside runlog)")


def outgoing_records(ledger: Ledger, records: Collection[str], checkers: OutgoingChecks | None = None
                     ) -> Iterator[tuple[str, bytes, list[Problem], str | None]]:
    """The records `push` is about to send, checked as verify checks them (content, schema,
    columns, seal, intent) as they are read, a few rows at a time: (address, canonical JSON as
    stored, its problems, its `created` column when it is text) of each record whose address is among `records`, oldest first (by
    `created`, then address: the order a pull appends them in, so that each pack holds a
    stretch of it and a pull can append one pack's records while later ones are still
    coming: runlog/syncinsert.py). Push sends the bytes checked here, never bytes read again,
    so that an edit behind runlog's back never becomes a valid object on the team ledger.
    `checkers` (runlog/pushworker.py) checks slices of them in worker processes, each with
    checked_records, and gives them back in this order."""
    conn = ledger.conn
    # SQLite orders a column changed behind runlog's back to another type too (its record is refused as it is read)
    order = [seq for seq, address in conn.execute("SELECT seq, address FROM records ORDER BY created, address")
             if address in records]
    return checkers.records(order) if checkers is not None else checked_records(conn, order)


class OutgoingChecks(Protocol):
    """What checks a push's items elsewhere (runlog/pushworker.py's Checkers): checked_records
    and checked_observations of the seqs given, in their order."""

    def records(self, order: list[int]) -> Iterator[tuple[str, bytes, list[Problem], str | None]]: ...

    def observations(self, seqs: list[int]) -> Iterator[ObservationRow]: ...


def checked_records(conn: sqlite3.Connection, order: list[int]
                    ) -> Iterator[tuple[str, bytes, list[Problem], str | None]]:
    """outgoing_records' items for the records whose seqs are given, in that order."""
    sealed = _has_seals(conn)
    at = _RecordLayout(conn, sealed)
    for found in _rows_in_order(conn, at, order):
        for low in range(0, len(found), CHUNK):
            rows = at.unpack(found[low:low + CHUNK])
            for values, clean in zip(rows, _clean(rows, at, sealed), strict=True):
                tally = Tally("records")
                if not clean:
                    _look_closer(values, at, sealed, tally)
                created = values[at.created]
                yield values[at.address], values[at.body], tally.problems, created if type(created) is str else None


def _rows_in_order(conn: sqlite3.Connection, at: _RecordLayout, order: list[int]) -> Iterator[list[tuple]]:
    """The rows of the records whose seqs are given, in that order, a few hundred at a time: a
    stretch of consecutive seqs (records made one after another) with one range query, the
    others OUTGOING_READ at a time by seq."""
    scattered: list[int] = []

    def read_scattered() -> list[tuple]:
        where = {seq: i for i, seq in enumerate(scattered)}
        found = conn.execute(at.sql_in(len(scattered)), scattered).fetchall()
        found.sort(key=lambda row: where[row[at.seq]])
        scattered.clear()
        return found

    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and order[end] == order[end - 1] + 1:
            end += 1
        if end - start >= OUTGOING_STRETCH:
            if scattered:
                yield read_scattered()
            cursor = conn.execute(at.sql, (order[start], order[end - 1] + 1))
            while rows := cursor.fetchmany(OUTGOING_READ):
                yield rows
        else:
            scattered.extend(order[start:end])
            if len(scattered) >= OUTGOING_READ:
                yield read_scattered()
        start = end
    if scattered:
        yield read_scattered()


# Rows outgoing_records reads with one query (by seq, within SQLite's limit on parameters),
# and the fewest consecutive seqs it reads with a range instead.
OUTGOING_READ = 500
OUTGOING_STRETCH = 32


# (address, record, object bytes, problems, observed_at when it is text)
Outgoing = tuple[str | None, str, bytes | None, list[Problem], str | None]


def outgoing_observations(ledger: Ledger, present: Collection[str], computed: list[tuple[int, str]],
                          checkers: OutgoingChecks | None = None) -> tuple[int, Iterator[Outgoing]]:
    """The observations `push` is about to send, checked as verify checks them (the body's
    digest, the seal) as they are read: (at most how many, (address, record, object bytes,
    problems, observed_at) of each distinct observation whose address is not in `present`, in ledger
    order). Only the rows whose stored address is not in `present`, or that have none, are
    read. The object is ledger.observation_object's, made once from the row; the address is
    the stored one, else the object's SHA-256 (appended to `computed` as (seq, address), for
    the ledger to store once the push succeeded). A row whose object cannot be made has
    neither (None) and always a problem. `checkers`: as outgoing_records'."""
    conn = ledger.conn
    candidates = [seq for seq, address in conn.execute(
        "SELECT o.seq, a.address FROM observations o LEFT JOIN observation_addresses a ON a.observation = o.seq "
        "ORDER BY o.seq") if address is None or address not in present]
    rows = checkers.observations(candidates) if checkers is not None else checked_observations(conn, candidates)
    return len(candidates), _outgoing_observations(rows, present, computed)


# (seq, stored address, address: the stored one, else the object's SHA-256 (None: no object),
# record, object bytes, problems, observed_at when it is text) of an observation row
ObservationRow = tuple[int, str | None, str | None, str, bytes | None, list[Problem], str | None]


def _outgoing_observations(rows: Iterator[ObservationRow], present: Collection[str],
                           computed: list[tuple[int, str]]) -> Iterator[Outgoing]:
    """The rows (checked_observations') to send: each distinct address once, none in `present`."""
    sent: set[str] = set()
    for seq, stored, address, record, data, problems, when in rows:
        if stored is not None and (stored in present or stored in sent):
            continue
        if stored is None and address is not None:
            computed.append((seq, address))
            if address in present or address in sent:
                continue
        if address is not None:
            sent.add(address)
        yield address, record, data, problems, when


def checked_observations(conn: sqlite3.Connection, candidates: list[int]) -> Iterator[ObservationRow]:
    """Each observation row among the sorted seqs `candidates`, checked (its body's digest,
    its seal, and that runlog could have written it: obsrules, as _scan_observations checks
    it) and made into its object (ledger.stored_observation_object), in ledger order."""
    sealed = _has_seals(conn)
    names = _columns(conn, "observations", "body")
    width = len(names)
    seq_at, record_at, digest_at = (names.index(c) for c in ("seq", "record", "sha256"))
    uuid_at, time_at, source_at, status_at = (names.index(c) for c in ("run_uuid", "observed_at", "source", "status"))
    seal_row = sealer("observations", tuple(names))
    seal, join = _seal_join("observations", "so", "o", sealed)
    sql = (f"SELECT {', '.join('o.' + c for c in names)}, CAST(o.body AS BLOB), {seal}, a.address, "
           f"r.seq IS NOT NULL, r.run_uuid, r.run_id FROM observations o {join}"
           "LEFT JOIN observation_addresses a ON a.observation = o.seq LEFT JOIN records r ON r.address = o.record "
           "WHERE o.seq >= ? AND o.seq < ? ORDER BY o.seq")
    sha256 = hashlib.sha256
    for low, high in _runs(candidates):
        for values in conn.execute(sql, (low, high)):
            stored, body = values[width + 2], values[width]
            try:
                data: bytes | None = stored_observation_object(values[record_at], values[uuid_at], values[time_at],
                                                               values[source_at], values[status_at], body)
            except (ValueError, TypeError, RecursionError):
                data = None
            address = stored if stored is not None else sha256(data).hexdigest() if data is not None else None
            seq, record = values[seq_at], values[record_at]
            problems = _seal_problems(seal_row, "observation #", str(seq), values, values[width + 1]) if sealed else []
            if not isinstance(body, bytes) or sha256(body).hexdigest() != values[digest_at]:
                problems.append(Problem("observation", record, f"observation #{seq} was edited"))
            elif data is None:
                problems.append(Problem("observation", record, f"observation #{seq}: its body is not JSON"))
            if why := _unmade(values[source_at], values[status_at], values[uuid_at], body,
                              (values[width + 4], values[width + 5]) if values[width + 3] else None):
                problems.append(Problem("observation", record, f"observation #{seq} is not one runlog makes: {why}"))
            when = values[time_at]
            yield seq, stored, address, record, data, problems, when if type(when) is str else None


def _runs(seqs: list[int]) -> Iterator[tuple[int, int]]:
    """Sorted seqs as contiguous ranges [low, high), each read with one query."""
    start = None
    for i, seq in enumerate(seqs):
        start = seq if start is None else start
        if i + 1 == len(seqs) or seqs[i + 1] != seq + 1:
            yield start, seq + 1
            start = None


if __name__ == "__main__":  # python -m runlog.verify: write the expected ledger schema after a migration
    write_schema_file()
