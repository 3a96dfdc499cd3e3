"""The ledger: an append-only SQLite file of content-addressed records.

Tables (see runlog/migrations.py and docs/ledger.md):
  records       one row per record; `body` is the record's canonical JSON
  attempts      the intent to submit, committed before StartRun is called
  observations  facts learned later about a run (status, times, digests)

The file is opened in WAL mode with a busy timeout, so several runlog processes can
write at once; each write is one short `BEGIN IMMEDIATE` transaction.
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import stat
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from json.encoder import (
    encode_basestring as _json_string,  # the json module's own (C) string encoder
)
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from runlog import record as rec
from runlog import startrules
from runlog.errors import BlobLost, LedgerError, UsageError

if TYPE_CHECKING:
    from runlog import cohortindex

BUSY_TIMEOUT_MS = 60_000
RECORD_COLUMNS = (
    "seq, address, body, chain, kind, created, outcome, request_id, run_id, run_uuid, run_arn, "
    "workflow_id, name, git_commit, fingerprint, replay_of, batch_id"
)
# What `runlog log` reads: a batch record's body is its view (the record without its settings
# file's content, migration m007), so that listing batches of 100 000 runs reads kilobytes.
LISTING_BODY = ("CASE WHEN kind = 'batch' THEN coalesce((SELECT v.view FROM batch_views v WHERE v.record = "
                "records.address), body) ELSE body END")
LISTING_COLUMNS = RECORD_COLUMNS.replace("body", LISTING_BODY, 1)
# What `runlog refresh` reads (Ledger.resolve with outline=True): a batch record's body is its
# outline (Ledger.batch_outline: without its settings file's content and its runs' input
# identities, which grow with the cohort: 13 MB of the view's 13.3 MB at 100 000 runs)
OUTLINE_BODY = ("CASE WHEN kind = 'batch' THEN coalesce((SELECT json_remove(v.view, '$.resolution') FROM batch_views v "
                "WHERE v.record = records.address), json_remove(body, '$.batch.settings_file.content', "
                "'$.resolution')) ELSE body END")
OUTLINE_COLUMNS = RECORD_COLUMNS.replace("body", OUTLINE_BODY, 1)

# An attempt's intent as stored: its canonical JSON as text in `intent`, or (a batch's intent,
# migration m011) compressed by zlib in `intent_zlib`, `intent` then empty. Every reader selects
# these columns and reads them with attempt_intent.
INTENT_COLUMNS = "intent, intent_zlib"
PACK_LEVEL = 1  # zlib's fastest: a 100 000-run intent, 27 MB, in ~0.1 s to ~1.5 MB


def attempt_intent(text: str | bytes | None, packed: bytes | None) -> bytes:
    """The canonical JSON of an attempt's intent from its stored columns (INTENT_COLUMNS, in
    that order): the one reader of `attempts.intent` (pending, recover, push, verify).
    ValueError when the compressed form does not decompress (a ledger edited outside runlog)."""
    if packed is not None:
        import zlib

        if text:  # written empty beside its compressed form
            raise ValueError("an attempt holds its intent both as text and compressed")
        try:
            return zlib.decompress(packed)
        except (zlib.error, TypeError) as exc:
            raise ValueError(f"an attempt's compressed intent does not decompress: {exc}") from None
    if text is None:
        raise ValueError("an attempt without its intent")
    return text if isinstance(text, bytes) else text.encode("utf-8")


# Statuses that never change again: a run that ended, or an attempt that never ran.
FINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "DELETED", "REJECTED", "ABANDONED",
                            "PROCESSED", "RUNS_DELETED", "RUNS_DELETE_FAILED"})  # the last three: batches

# REF forms (Ledger.candidates), as patterns that `re` compiles on first use and caches: `@N`,
# the commonest REF, needs none (compiling a pattern costs more instructions than a small query).
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
HEX_PATTERN = r"^[0-9a-fA-F]{6,64}$"


class Entry:
    """A record as stored: its address and body, plus lookup columns.

    A plain class with the dataclass's constructor, repr and equality (of every field but the
    parsed body it caches), written out: making a dataclass of it cost every command that
    imports the ledger ~6 million instructions (dataclasses compiles the generated methods)."""

    FIELDS = ("seq", "address", "body", "chain", "kind", "created", "outcome", "request_id", "run_id", "run_uuid",
              "run_arn", "workflow_id", "name", "git_commit", "fingerprint", "replay_of", "batch_id", "status",
              "status_as_of")

    seq: int
    address: str
    body: str
    chain: str
    kind: str
    created: str
    outcome: str
    request_id: str | None
    run_id: str | None
    run_uuid: str | None
    run_arn: str | None
    workflow_id: str | None
    name: str | None
    git_commit: str | None
    fingerprint: str
    replay_of: str | None
    batch_id: str | None  # a batch's or a member's HealthOmics batch id (migration m004)
    status: str | None  # latest known run status, filled in by queries that ask for it
    status_as_of: str | None  # when that status was seen (an observation's time, else `created`)
    _record: dict | None

    def __init__(self, seq: int, address: str, body: str, chain: str, kind: str, created: str, outcome: str,
                 request_id: str | None, run_id: str | None, run_uuid: str | None, run_arn: str | None,
                 workflow_id: str | None, name: str | None, git_commit: str | None, fingerprint: str,
                 replay_of: str | None, batch_id: str | None = None, status: str | None = None,
                 status_as_of: str | None = None, _record: dict | None = None):
        self.seq, self.address, self.body, self.chain, self.kind = seq, address, body, chain, kind
        self.created, self.outcome, self.request_id, self.run_id = created, outcome, request_id, run_id
        self.run_uuid, self.run_arn, self.workflow_id, self.name = run_uuid, run_arn, workflow_id, name
        self.git_commit, self.fingerprint, self.replay_of, self.batch_id = git_commit, fingerprint, replay_of, batch_id
        self.status, self.status_as_of, self._record = status, status_as_of, _record
        self._blob: Callable[[str], bytes] | None = None  # Ledger.blob, for a whole batch record (runlog/blobs.py)
        self._partial = False  # Ledger.partial when the entry was read

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in self.FIELDS)

    def __repr__(self) -> str:
        return "Entry(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in self.FIELDS) + ")"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Entry)
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]  # mutable (status is filled in later), as the dataclass was

    @property
    def record(self) -> dict:
        """The record, with a cohort held by reference put back in place (runlog/blobs.py):
        the form every reader reads. `stored` is the body as the ledger holds it."""
        if self._record is None:
            record = json.loads(self.body)
            if self._blob is not None and self.kind == "batch":
                from runlog import blobs

                # a read command's ledger (Ledger.partial): a lost blob's reference left in its place
                record = blobs.inflate(record, self._blob, [] if self._partial else None)
            self._record = record
        return self._record

    @property
    def stored(self) -> dict:
        """The record as its body holds it (a cohort held by reference as references)."""
        return json.loads(self.body)

    def summary(self) -> dict[str, Any]:
        """The fields `runlog log` shows."""
        return {
            "address": self.address,
            "kind": self.kind,
            "created": self.created,
            "run_id": self.run_id,
            "run_uuid": self.run_uuid,
            "run_arn": self.run_arn,
            "status": self.status,
            "status_as_of": self.status_as_of,
            "status_final": self.status in FINAL_STATUSES,
            "outcome": self.outcome,
            "workflow_id": self.workflow_id,
            "name": self.name,
            "git_commit": self.git_commit,
            "fingerprint": self.fingerprint,
            "replay_of": self.replay_of,
            "batch_id": self.batch_id,
        }


def index_columns(record: dict) -> dict[str, Any]:
    """The lookup columns a record's row carries, all derived from the record itself. A lookup
    column holds text or NULL: a member the record schema leaves untyped (an imported run's
    source_run, a batch's defaultRunSetting, a member's settings) may hold a boolean, a number
    or an object where the service gave one, which SQLite would store as text ('1' for true)
    or refuse (an object); such a value is no lookup value (NULL), and the record keeps it
    as it was given."""
    request = record["request"]
    outcome = record["outcome"]
    response = outcome.get("response") or {} if record["kind"] != "batch" else {}  # a batch is not a run
    lineage = record.get("lineage") or {}
    source = record.get("source_run") or {}
    try:
        columns = {
            "kind": record["kind"],
            "created": record["created"],
            "outcome": outcome["status"],
            "request_id": request.get("requestId"),
            "run_id": response.get("id"),
            "run_uuid": response.get("uuid"),
            "run_arn": response.get("arn"),
            "workflow_id": request.get("workflowId") or source.get("workflowId")
            or (request.get("defaultRunSetting") or {}).get("workflowId"),
            "name": request.get("name") or request.get("batchName"),
            "git_commit": (record.get("git") or {}).get("commit"),
            "fingerprint": record["fingerprint"],
            "replay_of": (lineage.get("replay_of") or {}).get("record"),
            "batch_id": _batch_id(record),
        }
    except AttributeError:  # a member that should hold an object holds something else
        return _text_columns(record)
    if not _TEXT_OR_NONE.issuperset(map(type, columns.values())):
        return _text_columns(record)
    return columns


_TEXT_OR_NONE = frozenset((str, type(None)))


def _text_columns(record: dict) -> dict[str, Any]:
    """index_columns of a record with a value that is not text where a lookup column's comes from."""
    request = record["request"]
    outcome = record["outcome"]
    response = _object(outcome.get("response")) if record["kind"] != "batch" else {}
    source = _object(record.get("source_run"))
    return {
        "kind": record["kind"],
        "created": record["created"],
        "outcome": outcome["status"],
        "request_id": _text(request.get("requestId")),
        "run_id": _text(response.get("id")),
        "run_uuid": _text(response.get("uuid")),
        "run_arn": _text(response.get("arn")),
        "workflow_id": _text(request.get("workflowId")) or _text(source.get("workflowId"))
        or _text(_object(request.get("defaultRunSetting")).get("workflowId")),
        "name": _text(request.get("name")) or _text(request.get("batchName")),
        "git_commit": _text(_object(record.get("git")).get("commit")),
        "fingerprint": record["fingerprint"],
        "replay_of": _text(_object(_object(record.get("lineage")).get("replay_of")).get("record")),
        "batch_id": _text(_batch_id(record)),
    }


def _text(value: Any) -> str | None:
    """A lookup column's value: text as the record holds it, else None (see index_columns)."""
    return value if type(value) is str else None


def _object(value: Any) -> dict:
    """A member that should hold an object, or {} when it holds nothing (or something else)."""
    return value if type(value) is dict else {}


INDEX_COLUMNS = ("kind", "created", "outcome", "request_id", "run_id", "run_uuid", "run_arn", "workflow_id", "name",
                 "git_commit", "fingerprint", "replay_of", "batch_id")  # index_columns' keys, in its order


def _run_or_batch(entry: Entry) -> str | None:
    """What a record is of: its run (uuid) or its batch (uuid); None when it has neither."""
    if entry.kind == "batch":
        uuid = (entry.record["outcome"].get("response") or {}).get("uuid")
        return f"batch {uuid}" if isinstance(uuid, str) else None
    return f"run {entry.run_uuid}" if entry.run_uuid else None


def _entry_of(seq: int, row: dict[str, Any]) -> Entry | None:
    """The Entry of a row just inserted, as reading it back gives it (a batch's body is tens
    of MB: read back, ~0.1 s): when every column is text or NULL, which SQLite returns as
    given; None otherwise (the caller reads the row back)."""
    values = [row[name] for name in Entry.FIELDS[1:17]]
    if any(value is not None and type(value) is not str for value in values):
        return None
    return Entry(seq, *values)


def read_blob(conn: Any, sha256: str) -> bytes | None:
    """A blob's canonical JSON from the `blobs` table of `conn` (sqlite3's or sqlite-utils'),
    None when absent, unreadable, or the table is missing (verify and the migrations: they
    name what is wrong; Ledger.blob raises instead)."""
    from runlog import blobs

    try:
        row = conn.execute("SELECT bytes, data FROM blobs WHERE sha256 = ?", (sha256,)).fetchone()
    except sqlite3.Error:
        return None
    # never more than its row says is decompressed (a zlib bomb stops there)
    return blobs.unpack(row[1], row[0])[0] if row is not None and type(row[0]) is int and row[0] >= 0 else None


def _loads_list(data: bytes) -> list:
    """A blob's JSON, when it is a list (else an empty one: verify names the blob)."""
    from runlog import fastjson

    value = fastjson.loads(data)
    return value if isinstance(value, list) else []


def _batch_id(record: dict) -> str | None:
    """The HealthOmics batch id a batch record (once started) or a member record belongs to."""
    if record["kind"] == "batch":
        return (record["outcome"].get("response") or {}).get("id")
    return (record.get("batch") or {}).get("batch_id")


OBSERVATION_FIELDS = ("record", "run_uuid", "observed_at", "source", "status", "body")
# How a pull's refusal names an observation refused as it is appended (not an S3 key)
ITEM_REFUSED = "observation "
# The columns Ledger.add_records and add_observations write, in order.
_RECORD_ROW = ("seq", "address", "body", "chain", "inserted_at", "kind", "created", "outcome", "request_id",
               "run_id", "run_uuid", "run_arn", "workflow_id", "name", "git_commit", "fingerprint", "replay_of",
               "batch_id")
assert _RECORD_ROW[5:] == INDEX_COLUMNS  # add_received_records writes index columns in that order
_OBSERVATION_ROW = ("seq", *OBSERVATION_FIELDS, "sha256")

# Which observation of a run gives its current status: never the order rows were inserted in
# (a pull appends observations made long ago). First the run's life cycle, which only moves
# forward: deleted, then finished, then anything else. Then the service's own time of the
# latest event in GetRun's answer (stopTime, else startTime, else creationTime), then the
# time the observation was made, then the row order.
STATUS_ORDER = (
    "CASE WHEN status = 'DELETED' THEN 2 WHEN status IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN 1 ELSE 0 END "
    "DESC, julianday(coalesce(json_extract(body, '$.stopTime'), json_extract(body, '$.startTime'), "
    "json_extract(body, '$.creationTime'))) DESC, julianday(observed_at) DESC, seq DESC"
)
# A batch's status (GetBatch observations, runlog.batch.SOURCE_BATCH) is the one observed last:
# GetBatch's answer has no time of its latest event, and a batch runlog took as deleted (DELETED:
# GetBatch did not find it) that GetBatch finds again has the status it answered then. Other
# records' observations all tie on this key and are ordered by STATUS_ORDER.
BATCH_STATUS_FIRST = ("CASE WHEN source = 'GetBatch' THEN julianday(observed_at) END DESC, "
                      "CASE WHEN source = 'GetBatch' THEN seq END DESC, ")  # batchread.newest: the same order


def observation_object(record: str, run_uuid: str | None, observed_at: str, source: str, status: str | None,
                       body: dict) -> bytes:
    """An observation as one canonical JSON object; its SHA-256 is the observation's content
    address, the same in every ledger that holds it (the name it has in a team ledger)."""
    return rec.canonical_json({"record": record, "run_uuid": run_uuid, "observed_at": observed_at,
                               "source": source, "status": status, "body": body})


def stored_observation_object(record: str, run_uuid: str | None, observed_at: str, source: str,
                              status: str | None, body: str | bytes) -> bytes:
    """observation_object of an observation as stored (its body as text, or that text's UTF-8
    bytes): the same bytes. A body stored in canonical JSON, as runlog writes it, is spliced
    in as it is (orjson reads it once to tell); any other is read and written again (push
    sends every observation's object: a 100 000-member cohort's statuses)."""
    import orjson

    from runlog import fastjson

    data = body if isinstance(body, bytes) else body.encode("utf-8")
    value, canonical, exact = fastjson.decode_canonical(data)
    if canonical and exact:
        try:
            strings = [orjson.dumps(v) for v in (observed_at, record, run_uuid, source, status)
                       if v is None or type(v) is str]
        except TypeError:  # a lone surrogate: the json module decides
            strings = []
        if len(strings) == 5:
            return b'{"body":%b,"observed_at":%b,"record":%b,"run_uuid":%b,"source":%b,"status":%b}' % (
                data, *strings)
    return observation_object(record, run_uuid, observed_at, source, status, value)


def _check_schema(record: dict) -> None:
    problems = rec.schema_errors(record)
    if problems:
        raise LedgerError("refusing to write a record that breaks the schema: " + "; ".join(problems[:3]))


# How many leading characters of a record's configuration fingerprint its index holds (migration
# m015). A lookup names that prefix, so that SQLite uses the index, and the whole fingerprint, so
# that only equal ones are found (_fingerprint_params).
FINGERPRINT_PREFIX = 8


def _fingerprint_params(fingerprint: str) -> tuple[str, str]:
    """The parameters of Ledger._SAME_FINGERPRINT for `fingerprint`: its prefix, then itself."""
    return fingerprint[:FINGERPRINT_PREFIX], fingerprint


# The connections to ledger files this process has opened (Ledger.open) and not yet let go
# of: close_opened. The connections, not the Ledger objects: a Ledger dropped without close()
# leaves its connection open to the end of the process (in a cycle with its statement cache).
_OPENED: weakref.WeakSet[sqlite3.Connection] = weakref.WeakSet()


class _Connection(sqlite3.Connection):
    """A ledger file's connection: sqlite3's own, but one that can be referred to weakly."""


def close_opened() -> bool:
    """Close every ledger connection this process has open, as the end of the process would
    (the last connection to a file copies its WAL into it and removes the WAL). False when one
    could not be closed here (a connection of another thread): the process must then end the
    usual way."""
    for conn in list(_OPENED):
        try:
            conn.close()
        except sqlite3.Error:
            return False
    return True


def chain_next(previous: str | None, address: str) -> str:
    return rec.sha256_hex(((previous or "") + address).encode("ascii"))


class Ledger:
    """An open ledger file. Use `Ledger.open(path)`; close it (or use `with`)."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self.conn = conn
        self.snapshot = False  # True: an in-memory migrated copy of an older read-only ledger
        # the format of an older ledger a read command uses as it is (migrations.READS_AS_IS)
        self.older_format: int | None = None
        self._db: Any = None  # a sqlite_utils.Database, made on first use
        self._joined = False  # inside one_transaction: write() joins it (a pull's inserts)
        # batch record -> run settings of its failed submissions held (_members_held); dropped on a rollback
        self._failed_settings: dict[str, set] = {}
        # Read commands that write what they can of a damaged ledger set `partial`: a whole batch
        # record whose cohort's blob is lost or changed then reads with the reference in that
        # blob's place; `lost` names every blob `blob` could not give (cli.common.said_lost).
        self.partial = False
        self.lost: dict[str, BlobLost] = {}
        # (device, inode) of the file this connection opened: worker processes that open the
        # ledger again by its path (verify's, push's) read it only while the path still names it
        self.file_identity: tuple[int, int] | None = None
        # that path made absolute as it is opened: the one worker processes are given, which a
        # change of the working directory afterwards (a program using the library) leaves the same
        self.file_path = os.path.abspath(path) if path is not None else ""  # None: a ledger made in memory

    @property
    def db(self) -> Any:
        """The same connection as a sqlite_utils Database (imported on first use: migrations,
        bulk loads), so that commands that only read never pay for the import."""
        if self._db is None:
            import sqlite_utils

            self._db = sqlite_utils.Database(self.conn)
        return self._db

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, *, create: bool = True, readonly: bool = False) -> Ledger:
        """Open (and with create=True, make) the ledger at path, applying pending migrations.

        With readonly=True (the read commands) the file is opened through SQLite's `mode=ro`
        and never created, migrated or written; a missing, empty (0-byte) or foreign file is
        an error. A ledger of an older format is then migrated in a private in-memory copy.

        Raises LedgerError for a file that is not a runlog ledger, is corrupt, or was written
        by a newer runlog; such a file is never modified."""
        if "\0" in str(path):
            raise LedgerError(f"cannot read ledger {str(path)!r}: the path contains a NUL character; "
                              "give a valid file path")
        path = Path(path).expanduser()
        claim(path)
        exists = path.exists()
        if not exists and (readonly or not create):
            raise LedgerError(f"no ledger at {path} (nothing has been submitted with it yet)")
        if exists:
            _check_header(path, readonly=readonly)
        else:
            _create_private(path)
        try:
            if readonly:
                conn = sqlite3.connect(sqlite_uri(path, "ro"), uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                                       isolation_level=None, factory=_Connection)
            else:
                conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                       factory=_Connection)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open ledger {path}: {exc}") from None
        _OPENED.add(conn)  # the file's connection (an older ledger read in a copy in memory closes it at once)
        ledger = cls(path, conn)
        try:
            ledger._prepare(readonly, must_exist=not create)
        except sqlite3.DatabaseError as exc:
            ledger.conn.close()
            if getattr(exc, "sqlite_errorname", "") == "SQLITE_NOTADB":
                raise _not_sqlite(path) from None
            if getattr(exc, "sqlite_errorname", "") == "SQLITE_CANTOPEN":  # not a damaged file: its place
                raise LedgerError(f"cannot open ledger {path}: {exc}; SQLite keeps {path.name}-wal and "
                                  f"{path.name}-shm beside the ledger, even to read it, so its directory {path.parent} "
                                  "must be writable (or copy the ledger where you can write); the file was left "
                                  "untouched") from None
            raise LedgerError(cannot_read(path, exc)) from None
        except LedgerError:
            ledger.conn.close()
            raise
        ledger.file_identity = file_identity(path)  # the file the connection has read by now
        return ledger

    def _made_meanwhile(self) -> bool:
        """Whether the empty database this connection found is a ledger once every writer that
        holds it has committed: another runlog creating the ledger right now (its file is
        empty until its migrations commit). Takes the write lock (waiting for that runlog, up
        to the busy timeout), reads, and lets go without writing anything."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # held longer than the busy timeout: someone is writing it
            return True
        try:
            return self.conn.execute("PRAGMA user_version").fetchone()[0] != 0
        finally:
            self.conn.execute("ROLLBACK")

    def _prepare(self, readonly: bool = False, must_exist: bool = False) -> None:
        self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        from runlog.migrations import LEDGER_FORMAT, READS_AS_IS

        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        tables: set[str] = set()
        if version == 0:
            tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables:  # or made meanwhile by another runlog, which commits them with the version
                version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > LEDGER_FORMAT:
            raise LedgerError(
                f"ledger {self.path} has format {version}, newer than this runlog understands "
                f"({LEDGER_FORMAT}); upgrade runlog (pip install -U runlog)"
            )
        if version == 0:
            if tables:
                raise LedgerError(
                    f"{self.path} is an SQLite database but not a runlog ledger "
                    f"(it has tables {', '.join(sorted(tables))}); it was left untouched"
                )
            if readonly:
                raise _empty(self.path)
            if must_exist:  # a command that needs a ledger never makes an empty file into one
                if not self._made_meanwhile():
                    raise _empty(self.path)
                version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if readonly:
            if READS_AS_IS <= version < LEDGER_FORMAT:
                self.older_format = version
            elif version < LEDGER_FORMAT:
                self._snapshot()
            return
        if not os.access(self.path, os.W_OK):
            if version < LEDGER_FORMAT:
                raise LedgerError(f"ledger {self.path} needs an upgrade but is read-only")
            return
        mode = self.conn.execute("PRAGMA journal_mode").fetchone()[0]
        if mode.lower() != "wal":
            self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        if version < LEDGER_FORMAT:
            self._migrate()

    def _snapshot(self) -> None:
        """Read an older-format ledger without writing it: copy it into memory, migrate the copy."""
        memory = sqlite3.connect(":memory:", isolation_level=None)
        self.conn.backup(memory)
        self.conn.close()
        self.conn = memory
        self.snapshot = True
        self.older_format = None
        self._migrate()

    def migrated_copy(self) -> None:
        """For an older ledger read as it is (`older_format`): read a migrated copy in memory
        from now on, as for a ledger older than migrations.READS_AS_IS. `verify` does, since it
        compares the ledger's tables, indexes and triggers with this runlog's."""
        if self.older_format is not None:
            self._snapshot()

    def _migrate(self) -> None:
        from runlog.migrations import LEDGER_FORMAT, MIGRATIONS

        with self.write():
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            for number in range(version, LEDGER_FORMAT):
                MIGRATIONS[number](self.db)
            self.conn.execute(f"PRAGMA user_version = {LEDGER_FORMAT}")
            if version == 0:
                import uuid

                self._insert("meta", {"key": "ledger_id", "value": str(uuid.uuid4())})
                self._insert("meta", {"key": "created", "value": rec.utc_now()})

    def head(self) -> tuple[int, str | None]:
        """(how many records, the newest record's chain value): what a witness keeps."""
        count = self.count()
        last = self.conn.execute("SELECT chain FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        return count, last[0] if last else None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def write(self) -> Iterator[None]:
        """One short write transaction, taken with BEGIN IMMEDIATE (waits on the busy timeout).
        Inside one_transaction it is part of that one: an error raised in it undoes them all."""
        if self._joined:
            yield
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise LedgerError(f"cannot write to ledger {self.path}: {exc}") from None
        try:
            yield
        except BaseException:
            self._rollback()
            raise
        try:
            self.conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            self._rollback()
            raise LedgerError(f"cannot write to ledger {self.path}: {exc}") from None

    def check_writable(self, doing: str) -> None:
        """Raise LedgerError (exit 2) unless a write to the ledger would succeed now (`doing`:
        what is therefore not done, in words): for a command that asks the service to act
        (cancel, delete runs) and must be able to record what it asked before it asks, or that
        would ask only to record the answers (refresh). SQLite's BEGIN IMMEDIATE succeeds on a file it can only
        read; its first write does not, so a table is made and the transaction rolled back."""
        if self._joined:  # inside one_transaction: its first write has been made already
            return
        try:
            with self.write():
                self.conn.execute("CREATE TABLE main.runlog_write_check (x)")
                raise _Checked
        except _Checked:
            return
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"cannot write to ledger {self.path} ({exc}): {doing}; make the ledger writable and "
                              "run it again") from None

    @contextmanager
    def one_transaction(self) -> Iterator[None]:
        """Every write inside the block in one BEGIN IMMEDIATE transaction (write() there joins
        it): all of it is committed at the end of the block, or none of it if the block raises
        or the process dies first. A pull's inserts: a pull is added whole or not at all, one
        commit instead of one a page, and indexes_built_after can drop indexes that no other
        connection ever sees missing. Other writers wait for it (the busy timeout) meanwhile."""
        with self.write():
            self._joined = True
            try:
                yield
            finally:
                self._joined = False

    # Indexes that the statements and triggers of a pull's inserts look rows up by, kept while
    # the others are dropped (indexes_built_after): records_batch_adopt finds the members
    # whose batch record had not come yet by batch_members_order (batch IS NULL).
    _KEPT_WHILE_INSERTING = frozenset({"batch_members_order"})

    @contextmanager
    def indexes_built_after(self, rows: dict[str, int]) -> Iterator[None]:
        """Inside one_transaction, about to insert `rows[table]` rows into each table: the
        indexes drop_indexes drops are dropped while the block runs and created again after it
        (create_indexes), in the same transaction. An error in the block rolls the transaction
        back, the dropped indexes with it: no connection ever sees them missing."""
        dropped = self.drop_indexes(rows)
        yield
        self.create_indexes(dropped)

    def drop_indexes(self, rows: dict[str, int]) -> list[tuple[str, str]]:
        """Inside one_transaction, about to insert `rows[table]` rows into each table: drop the
        indexes of a table that holds no more rows than that (an empty ledger, or nearly), so
        that create_indexes, after the rows, has SQLite write each index once, sorted, instead
        of a row at a time into a b-tree on random keys (records' addresses are kept: UNIQUE;
        the other unique indexes too, and those the inserts look rows up by,
        _KEPT_WHILE_INSERTING). Returns (name, SQL) of each index dropped. The caller creates
        them again (create_indexes) or rolls the transaction back: a dropped index is never
        committed."""
        if not self._joined:
            raise LedgerError("dropping indexes needs one_transaction (a dropped index must never be committed)")
        dropped: list[tuple[str, str]] = []
        try:
            for table, count in rows.items():
                if not count or self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > count:
                    continue
                for name, sql in self.conn.execute(
                        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                        "AND sql IS NOT NULL AND sql NOT LIKE 'CREATE UNIQUE %' ORDER BY name", (table,)).fetchall():
                    if name not in self._KEPT_WHILE_INSERTING:
                        self.conn.execute(f'DROP INDEX "{name}"')
                        dropped.append((name, sql))
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"cannot write to ledger {self.path}: {exc}") from None
        return dropped

    def create_indexes(self, dropped: list[tuple[str, str]]) -> None:
        """Create again, each with its own SQL, the indexes drop_indexes dropped."""
        try:
            for _, sql in dropped:
                self.conn.execute(sql)
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"cannot write to ledger {self.path}: {exc}") from None

    def savepoint(self, name: str) -> None:
        """Inside one_transaction: a savepoint that rollback_to can undo the writes back to
        (a pull's streamed inserts, runlog/syncinsert.py)."""
        if not self._joined:
            raise LedgerError("a savepoint needs one_transaction")
        self.conn.execute(f'SAVEPOINT "{name}"')

    def rollback_to(self, name: str) -> None:
        """Undo every write since savepoint `name`, and end it (the transaction stays open)."""
        self._failed_settings.clear()
        self.conn.execute(f'ROLLBACK TO "{name}"')
        self.conn.execute(f'RELEASE "{name}"')

    def release(self, name: str) -> None:
        """End savepoint `name`, keeping its writes (committed with the transaction)."""
        self.conn.execute(f'RELEASE "{name}"')

    def _rollback(self) -> None:
        """Undo the open transaction, if SQLite has not already (it rolls back by itself on a
        full disk or an I/O error, and a second ROLLBACK would hide the real error)."""
        self._failed_settings.clear()  # may name rows the rollback undoes
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.DatabaseError:
                pass

    def _insert(self, table: str, row: dict[str, Any]) -> int:
        """Insert one row (inside a write transaction); returns its rowid. A row of a sealed
        table (SEALED) gets its seal in the same transaction: every insert into records,
        attempts, observations or meta must go through here (or seal_rows)."""
        columns = ", ".join(row)
        marks = ", ".join("?" * len(row))
        try:
            cursor = self.conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(row.values()))
            if table in SEALED:
                key = SEALED[table]
                seal_rows(self.conn, table, f"{key} = ?", (row[key] if key in row else cursor.lastrowid,))
            assert cursor.lastrowid is not None  # an INSERT that returned sets it
            return cursor.lastrowid
        except (sqlite3.OperationalError, sqlite3.DataError) as exc:
            raise LedgerError(f"cannot write to ledger {self.path}: {exc}") from None

    # -- writing -----------------------------------------------------------------------------

    def add_attempt(self, intent: dict, *, allow_duplicate: bool = False, encoded: bytes | None = None,
                    checkpoint: bool = True, blobs: Sequence[tuple[str, int, bytes]] = ()) -> None:
        """Commit the intent to submit (before the service is called).

        Refused when its requestId was used before, and (unless allow_duplicate) when an
        identical request (every member but requestId) is still pending: sending it again
        could start the same run twice, while `recover` completes the pending one safely.
        `checkpoint=False`: the commit does not copy the WAL into the file even when it has
        grown past SQLite's automatic checkpoint (a batch's intent of tens of MB), so that the
        caller can do it while it waits (`checkpoint`); the attempt is committed all the same.

        A batch's intent (kind "batch": its cohort, tens of MB) is kept compressed
        (`intent_zlib`, migration m011; `attempt_intent` reads either form back). Its digest is
        of the canonical JSON, as for any attempt. `blobs`:
        the cohort the intent holds by reference (add_blobs; runlog/blobs.py), stored in the
        attempt's transaction."""
        from runlog import fastjson

        # canonical JSON (a batch's intent holds its whole cohort: `encoded` when the caller made it)
        data = encoded if encoded is not None else fastjson.dumps(intent)
        packed = None
        if intent.get("kind") == "batch":
            import zlib

            packed = zlib.compress(data, PACK_LEVEL)
        request_id = intent["request"]["requestId"]
        with self._autocheckpoint(checkpoint), self._synced():
            self._add_attempt(intent, request_id, data, allow_duplicate, packed, blobs)

    @contextmanager
    def _synced(self) -> Iterator[None]:
        """The commits made inside are on disk when they return: SQLite's `synchronous = FULL`,
        which in WAL mode syncs the WAL at each commit, for them alone. The ledger's other
        commits are made with `NORMAL` (_prepare): a power loss or an operating system crash
        may take the last of them back, never an attempt. An attempt is what runlog commits
        before it calls the service (the intent to submit): were it taken back after the
        request left, a run or batch the service started would have no trace in the ledger, and
        `recover` nothing to complete. What is committed after an answer (the record, its
        observations) is redone by `recover` and `refresh` if lost that way."""
        before = self.conn.execute("PRAGMA synchronous").fetchone()[0]
        self.conn.execute("PRAGMA synchronous = FULL")
        try:
            yield
        finally:
            self.conn.execute(f"PRAGMA synchronous = {int(before)}")

    @contextmanager
    def _autocheckpoint(self, checkpoint: bool) -> Iterator[None]:
        """With checkpoint=False, the commits made inside copy nothing into the ledger's file
        (SQLite's automatic checkpoint off for them: a setting of the connection, not of the
        transaction); the WAL holds them, committed all the same."""
        before = None if checkpoint else self.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        if before is not None:
            self.conn.execute("PRAGMA wal_autocheckpoint = 0")
        try:
            yield
        finally:
            if before is not None:
                self.conn.execute(f"PRAGMA wal_autocheckpoint = {int(before)}")

    def _add_attempt(self, intent: dict, request_id: str, data: bytes, allow_duplicate: bool,
                     packed: bytes | None = None, blobs: Sequence[tuple[str, int, bytes]] = ()) -> None:
        body = "" if packed is not None else data.decode("utf-8")
        with self.write():
            known = self.conn.execute(
                "SELECT r.address FROM attempts a LEFT JOIN records r ON r.request_id = a.request_id "
                "WHERE a.request_id = ?", (request_id,)).fetchone()
            if known:
                where = f"record {known[0][:12]}" if known[0] else "a pending attempt (see `recover()`)"
                raise UsageError(f"request id {request_id!r} was already used by {where}; HealthOmics would "
                                 "return that run again: leave out the request id or give a new one")
            if not allow_duplicate:
                self.refuse_pending_duplicate(intent["request"])
            self.add_blobs(blobs)
            self._insert(
                "attempts",
                {"request_id": request_id, "created": intent["created"], "intent": body,
                 "intent_sha256": rec.sha256_hex(data), **({"intent_zlib": packed} if packed is not None else {})},
            )

    def checkpoint(self) -> None:
        """Copy what the WAL holds into the ledger's file (a passive checkpoint) from a
        connection of its own, so that it may run in another thread while this one waits (a
        batch's intent while StartRunBatch is answered). What it leaves, the next commit's
        automatic checkpoint copies. Only ever a saving of time: a ledger that cannot be
        opened again here is left as it is."""
        if not Path(self.path).is_file():
            return
        try:
            conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error:
            return
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            pass
        finally:
            conn.close()

    def refuse_pending_duplicate(self, request: dict) -> None:
        """Raise DuplicateAttemptError when an identical request (all but requestId) is pending."""
        from runlog import inflight
        from runlog.errors import DuplicateAttemptError

        same = _without_request_id(request)
        for row in self.conn.execute(self._PENDING_SQL):
            other = json.loads(attempt_intent(*row))["request"]
            if _without_request_id(other) != same:
                continue
            other_id = other["requestId"]
            owner = inflight.owner(self.path, other_id)
            state = (f"in flight in process {owner.get('pid', '?')} on {owner.get('host', '?')} since "
                     f"{owner.get('since', '?')}" if owner is not None
                     else "left pending by a process that has ended")
            raise DuplicateAttemptError(
                f"an identical request is already pending as attempt {other_id} ({state})", other_id, owner)

    def add_record(self, record: dict, *, encoded: bytes | None = None,
                   prepared: cohortindex.Prepared | None = None, checkpoint: bool = True) -> tuple[Entry, bool]:
        """Validate and append a complete record. Returns (entry, added); a record whose
        address is already present is not added again, and neither is a second record for
        the same requestId (e.g. a submit whose attempt `recover` completed meanwhile): the
        one already written is returned. `encoded`: the record's canonical JSON, when the
        caller made it (a batch's record, joined from its intent's: batch.send); `prepared`:
        a batch record's rows of `batch_settings` computed ahead from its intent, used when
        they are the record's (cohortindex.Prepared.rows_for); `checkpoint=False`: as for
        add_attempt (the caller copies the WAL in a thread: Ledger.checkpoint)."""
        from runlog import fastjson

        _check_schema(record)
        body_bytes = encoded if encoded is not None else fastjson.dumps(record)
        address = rec.sha256_hex(body_bytes)
        request_id = _text(record["request"].get("requestId"))  # a lookup value (index_columns)
        with self._autocheckpoint(checkpoint), self.write():
            existing = self._entry_where("address = ?", (address,))
            if not existing and request_id is not None:
                existing = self._entry_where("request_id = ?", (request_id,))
            if existing:
                return existing[0], False
            self._refuse_missing_blobs(record)
            seq, row = self._append(record, body_bytes, address, prepared)
            entry = _entry_of(seq, row) or self._entry_where("address = ?", (address,))[0]
            entry._blob, entry._partial = self.blob, self.partial
        return entry, True

    # -- blobs: a batch record's cohort held by reference (runlog/blobs.py, migration m012) -----

    def add_blobs(self, found: Sequence[tuple[str, int, bytes]]) -> None:
        """Store blobs (sha256, bytes of canonical JSON, that JSON compressed by zlib) inside the
        caller's write transaction; one the ledger holds already is left as it is."""
        try:
            self.conn.executemany("INSERT OR IGNORE INTO blobs (sha256, bytes, data) VALUES (?, ?, ?)", found)
        except (sqlite3.OperationalError, sqlite3.DataError) as exc:
            raise LedgerError(f"cannot write to ledger {self.path}: {exc}") from None

    def has_blobs(self, digests: Iterable[str]) -> set[str]:
        """Which of these blobs the ledger holds."""
        wanted = list(dict.fromkeys(digests))
        held: set[str] = set()
        for start in range(0, len(wanted), 500):
            part = wanted[start:start + 500]
            held.update(row[0] for row in self.conn.execute(
                f"SELECT sha256 FROM blobs WHERE sha256 IN ({','.join('?' * len(part))})", part))
        return held

    def blob(self, sha256: str) -> bytes:
        """A blob's canonical JSON (decompressed), checked against its name (blobs.readable).
        BlobLost when the ledger lacks it or it was changed outside runlog: one line naming it
        and the fix (`verify` names the record)."""
        from runlog import blobs

        query = ("SELECT bytes, data FROM blobs WHERE sha256 = ?", (sha256,))
        try:
            row = self.conn.execute(*query).fetchone()
        except sqlite3.ProgrammingError:  # closed, or another thread's: an entry read after its ledger
            try:
                conn = sqlite3.connect(sqlite_uri(self.path), uri=True)
                try:
                    row = conn.execute(*query).fetchone()
                finally:
                    conn.close()
            except sqlite3.Error as exc:  # the file moved or removed since
                raise LedgerError(f"cannot read blob {sha256[:12]}, part of a batch record's cohort, from ledger "
                                  f"{self.path} ({exc}): read the record's cohort while its ledger is open") from None
        data, why = blobs.readable(sha256, row)
        if data is None:
            lost = BlobLost(f"blob {sha256[:12]} of ledger {self.path}, part of a batch record's cohort, {why}"
                           f"{'' if row is None else ' (changed outside runlog)'}: `verify()` names the record; restore "
                           "the ledger from a backup, or `pull()` the team ledger it was pushed to into a new ledger",
                           sha256)
            self.lost.setdefault(sha256, lost)
            raise lost
        return data

    def packed_blob(self, sha256: str) -> tuple[int, bytes] | None:
        """A blob as stored: (bytes of its canonical JSON, zlib's compression of it), or None."""
        row = self.conn.execute("SELECT bytes, data FROM blobs WHERE sha256 = ?", (sha256,)).fetchone()
        return (row[0], row[1]) if row is not None else None

    def missing_blobs(self, record: dict) -> list[str]:
        """The blobs a record (or a batch's intent) names that the ledger lacks, sorted."""
        from runlog import blobs

        named = [ref["sha256"] for _, _, ref in blobs.refs(record)]
        return sorted(set(named) - self.has_blobs(named)) if named else []

    def _refuse_missing_blobs(self, record: dict) -> None:
        """A record that holds its cohort by reference is written only beside its blobs."""
        missing = self.missing_blobs(record)
        if missing:
            raise LedgerError(f"refusing to write a record that names blob {sorted(missing)[0][:12]}, which the "
                              f"ledger {self.path} lacks (its cohort would be lost)")

    def add_records(self, records: list[dict]) -> int:
        """Validate every record, then append the new ones in the order given, in one
        transaction (a page of a batch's members, records pulled from a team ledger): one
        query finds those already present, the rows and their seals go in with executemany.
        A record given twice is added once. Returns how many were added."""
        return self.write_records(self.encode_records(records))

    @staticmethod
    def encode_records(records: list[dict], floatless: Sequence[bool] | None = None
                       ) -> list[tuple[dict, bytes, str, tuple]]:
        """add_records' work that needs no transaction: each record schema-checked, its
        canonical JSON, address and lookup columns, as (record, body, address, columns in
        _RECORD_ROW's order after inserted_at). Made by any thread (runlog/refreshpipe.py
        encodes a page while the one before is written). `floatless`: for each record,
        whether its maker proved it holds no float (batch.MemberPages), so that
        fastjson.dumps_floatless writes its canonical JSON."""
        from runlog import fastjson

        for record in records:
            _check_schema(record)
        encoded = []
        for at, record in enumerate(records):
            body = fastjson.dumps_floatless(record) if floatless is not None and floatless[at] \
                else fastjson.dumps(record)
            columns = index_columns(record)
            encoded.append((record, body, rec.sha256_hex(body), tuple([columns[name] for name in _RECORD_ROW[5:]])))
        return encoded

    def write_records(self, encoded: list[tuple[dict, bytes, str, tuple]], batch: str | None = None) -> int:
        """Append the records encode_records made (pages of them, in order) that the ledger
        does not hold yet, in one transaction. Returns how many were added. `batch`: see
        append_records."""
        with self.write():
            return self.append_records(encoded, batch)

    def append_records(self, encoded: list[tuple[dict, bytes, str, tuple]], batch: str | None = None) -> int:
        """write_records inside the caller's write transaction (`write()`): a refresh's writer
        (runlog/refreshpipe.py) appends each page as it comes and commits every few pages.
        `batch`: the address of the batch record that every member record in `encoded` names
        (batch.record), given by a caller that made them so (batch.MemberPages): batch_members
        then takes the batch from it rather than from each member's JSON (a third of the
        statement's work). A member whose own batch (the first "record" key of its body) is
        not it is refused with the page (LedgerError)."""
        present, chain, seq, inserted_at = self._appending([address for _, _, address, _ in encoded])
        if batch is not None:  # a member the batch has under another address: not a second one
            present |= self._members_held(batch, [(body, address, columns) for _, body, address, columns in encoded
                                                  if address not in present])
        rows = []
        batches: list[tuple[dict, bytes, int]] = []
        for record, body, address, columns in encoded:
            if address in present:
                continue
            present.add(address)
            chain = chain_next(chain, address)
            if record["kind"] == "batch":
                self._refuse_missing_blobs(record)
                batches.append((record, body, seq))
            rows.append((seq, address, body.decode("utf-8"), chain, inserted_at, *columns))
            seq += 1
        if rows:
            # batch_members kept a page at a time (m014), not by its trigger row by row: a third of the
            # CPU of writing a refresh's members went to that trigger
            if batch is not None:
                # the member's own batch is the first "record" key of its canonical JSON (keys sorted:
                # only `aws` comes before `batch`); a run setting's parameters, after it, may hold any
                # {"record": ...}, so the address found anywhere in the body proves nothing
                named = f'"record":"{batch}"'
                if any(row[5] == "member" and not row[2].startswith(named, row[2].find('"record":')) for row in rows):
                    raise LedgerError(f"a member record handed over as batch {batch[:12]}'s names another batch: "
                                      "nothing of the page was written")
            with self._member_rows_by_page("records", rows[0][0], batch):
                self._insert_rows("records", _RECORD_ROW, rows)
            for record, body, at in batches:
                self._index_settings(at, record, body)
        return len(rows)

    _RUN_ID = INDEX_COLUMNS.index("run_id")

    def _members_held(self, batch: str, new: list[tuple[bytes, str, tuple]]) -> set[str]:
        """The addresses among `new` member records of batch record `batch` (body, address,
        index columns; none of them in the ledger) whose run the batch already has a member
        for: the same run setting and run id, or for a submission that failed (no run) the same
        run setting. A listing whose item for a run says more or less the next time (an
        optional member such as runInternalUuid given later, a failure message worded
        otherwise) made a second member record of one run at each refresh.

        A run: its id looked up on records_run_id (one probe each; nothing found in a first
        refresh), the run setting read only from the records found. A failed submission: the
        run settings of the batch's failed submissions, read once per connection and batch
        (`_failed_settings`, kept as rows are appended, dropped on a rollback), so a page is
        never a scan of the batch. (By fingerprint it was quadratic: every member of an
        imported batch has one fingerprint, its record holding the default setting alone.)"""
        import json

        def setting_of(body: bytes | str) -> Any:
            try:
                return (json.loads(body).get("batch") or {}).get("run_setting_id")
            except (ValueError, AttributeError):
                return None

        skip: set[str] = set()
        runs = [(body, address, columns[self._RUN_ID]) for body, address, columns in new if columns[self._RUN_ID]]
        ids = sorted({run_id for _, _, run_id in runs})
        held: set[tuple[Any, Any]] = set()
        for start in range(0, len(ids), 500):  # within SQLite's limit on parameters
            part = ids[start:start + 500]
            held.update(self.conn.execute(
                f"SELECT run_id, json_extract(body, '$.batch.run_setting_id') FROM records WHERE run_id IN "
                f"({','.join('?' * len(part))}) AND kind = 'member' AND json_extract(body, '$.batch.record') = ?",
                (*part, batch)))
        listed: dict[Any, int] = {}
        for _, _, run_id in runs:
            listed[run_id] = listed.get(run_id, 0) + 1
        # runs held already, and runs this page lists more than once
        known_runs = {run_id for run_id, _ in held} | {run_id for run_id, count in listed.items() if count > 1}
        if known_runs:
            for body, address, run_id in runs:
                if run_id in known_runs:
                    key = (run_id, setting_of(body))
                    if key in held:
                        skip.add(address)
                    else:
                        held.add(key)  # a later item of this page for the same run is not a second member either
        failed = [(body, address) for body, address, columns in new if not columns[self._RUN_ID]]
        if failed:
            settings = self._failed_settings.get(batch)
            if settings is None:
                settings = self._failed_settings[batch] = {setting for (setting,) in self.conn.execute(
                    "SELECT json_extract(r.body, '$.batch.run_setting_id') FROM batch_members m JOIN records r "
                    "ON r.seq = m.seq WHERE m.batch = (SELECT seq FROM records WHERE address = ?) AND "
                    "m.outcome != 'submitted'", (batch,))}
            for body, address in failed:
                setting = setting_of(body)
                if not isinstance(setting, str) or not setting:  # no id to tell two failures apart: kept
                    continue
                if setting in settings:
                    skip.add(address)
                else:
                    settings.add(setting)  # appended by the caller, in this transaction
        return skip

    def add_observations(self, observations: Sequence[tuple[str, str | None, str, str, str | None, dict | bytes]]) -> int:
        """Append observations (record, run_uuid, observed_at, source, status, body), made
        here, in one transaction (a page of a batch's member statuses). A body given as bytes
        is its canonical JSON already (record.canonical_json's bytes, which the caller vouches
        for). Returns how many were added."""
        return self.write_observations(self.encode_observations(observations))

    @staticmethod
    def encode_observations(observations: Sequence[tuple[str, str | None, str, str, str | None, dict | bytes]]
                            ) -> list[tuple]:
        """add_observations' rows without their seq (no transaction needed: any thread)."""
        from runlog import fastjson

        rows = []
        for record, run_uuid, observed_at, source, status, body in observations:
            text = body if isinstance(body, bytes) else fastjson.dumps(body)
            rows.append((record, run_uuid, observed_at, source, status, text.decode("utf-8"), rec.sha256_hex(text)))
        return rows

    def write_observations(self, rows: list[tuple]) -> int:
        """Append the rows encode_observations made (pages of them), in one transaction."""
        if rows:
            with self.write():
                self.append_observations(rows)
        return len(rows)

    def append_observations(self, rows: list[tuple]) -> int:
        """write_observations inside the caller's write transaction (`write()`)."""
        if rows:
            seq = self._next_seq("observations")
            with self._member_rows_by_page("observations", seq):  # batch_members' statuses a page at a time
                self._insert_rows("observations", _OBSERVATION_ROW, [(seq + at, *row) for at, row in enumerate(rows)])
        return len(rows)

    def _appending(self, addresses: list[str]) -> tuple[set[str], str | None, int, str]:
        """What appending records with these addresses starts from (inside a write transaction):
        which of them the ledger holds, the chain's head (None: no record yet), the next record's
        seq and the time the rows are inserted at."""
        last = self.conn.execute("SELECT chain FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        return self._present(addresses), last[0] if last else None, self._next_seq("records"), rec.utc_now()

    def _present(self, addresses: list[str], table: str = "records") -> set[str]:
        """Which of these addresses the ledger holds: of records, or of observations
        (`table="observation_addresses"`)."""
        return {row[0] for row in self._by_address("address", table, addresses)}

    def _by_address(self, columns: str, table: str, addresses: list[str]) -> Iterator[tuple]:
        """`columns` of the rows of `table` whose address is among `addresses`, asked 500 at a
        time (within SQLite's limit on parameters)."""
        for start in range(0, len(addresses), 500):
            part = addresses[start:start + 500]
            yield from self.conn.execute(
                f"SELECT {columns} FROM {table} WHERE address IN ({','.join('?' * len(part))})", part)

    def _run_columns(self, addresses: list[str]) -> dict[str, tuple[str | None, str | None]]:
        """{address: (run_uuid, run_id)} of the records among `addresses` the ledger holds."""
        return {row[0]: (row[1], row[2]) for row in self._by_address("address, run_uuid, run_id", "records", addresses)}

    def _next_seq(self, table: str) -> int:
        """The seq SQLite's AUTOINCREMENT gives the next row of `table` (inside a write
        transaction, which no other writer can share): one more than the largest ever used."""
        return self.conn.execute(
            f"SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?), 0), "
            f"coalesce((SELECT max(seq) FROM {table}), 0)) + 1", (table,)).fetchone()[0]

    def _insert_rows(self, table: str, names: tuple[str, ...], rows: list[tuple], *, plain: bool = False) -> None:
        """Insert rows of a sealed table, each with its key given (inside a write transaction),
        and their seals: what _insert does row by row. Values are sealed as SQLite gives them
        back (a bool is stored, and read, as an integer). The rows go in as one multi-row
        INSERT per chunk rather than one statement each: a table with a trigger that writes
        another table (records, observations: batch_members) makes SQLite keep a statement
        journal, a copy of each page the statement changes, and one statement per row copied
        the same pages a hundred times per page of members. `plain`: the caller knows that no
        sealed value is a bool (a pull's received rows), so the rows are not scanned for one."""
        if not plain and any(type(v) is bool for row in rows for v in row):
            rows = [tuple(int(v) if type(v) is bool else v for v in row) for row in rows]
        seal = sealer(table, names)
        key = names.index(SEALED[table])
        width = len(names)
        chunk = max(1, min(500, self.conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width))
        try:
            for start in range(0, len(rows), chunk):
                part = rows[start:start + chunk]
                marks = "(" + ", ".join("?" * width) + ")"
                self.conn.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES {', '.join([marks] * len(part))}",
                                  [value for row in part for value in row])
            seals = [value for row in rows for value in (table, str(row[key]), seal(row))]
            per = max(1, min(300, self.conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 3))
            for start in range(0, len(rows), per):  # one statement a chunk: executemany steps (and lets go of
                # Python's lock, then waits to take it back) once a row, which a refresh's writer thread pays
                # each time while the thread beside it builds the next page
                count = min(per, len(rows) - start)
                self.conn.execute("INSERT OR IGNORE INTO row_seals (tbl, id, sha256) VALUES "
                                  + ", ".join(["(?, ?, ?)"] * count), seals[start * 3:(start + count) * 3])
        except (sqlite3.OperationalError, sqlite3.DataError) as exc:
            raise LedgerError(f"cannot write to ledger {self.path}: {exc}") from None

    def _append(self, record: dict, body_bytes: bytes, address: str,
                prepared: cohortindex.Prepared | None = None) -> tuple[int, dict[str, Any]]:
        """Insert a record at the end of the chain (inside a write transaction). Returns its
        seq and the row as inserted."""
        last = self.conn.execute("SELECT chain FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        row = {
            "address": address,
            "body": body_bytes.decode("utf-8"),
            "chain": chain_next(last[0] if last else None, address),
            "inserted_at": rec.utc_now(),
            **index_columns(record),
        }
        view = prepared.view_for(record, body_bytes) if prepared is not None and record["kind"] == "batch" else None
        if view is not None:  # written first: the trigger of migration m010 then leaves it (see Prepared.view_for)
            self.conn.execute("INSERT OR REPLACE INTO batch_views (record, runs, view) VALUES (?, ?, ?)",
                              (address, *view))
        seq = self._insert("records", row)
        if record["kind"] == "batch":
            self._index_settings(seq, record, body_bytes, prepared)
        return seq, row

    def _index_settings(self, seq: int, record: dict, body: bytes,
                        prepared: cohortindex.Prepared | None = None) -> None:
        """The rows of `batch_settings` (migration m009) for the batch record just inserted as
        `seq`, in its transaction: the one place they are written, whichever path added the
        record (submit-batch, import, pull). `prepared`: rows computed ahead from the record's
        intent, taken only when they are this body's. A record holding its settings by
        reference has its rows in `blob_settings` (m013), keyed by its blob: written here only
        when submit-batch did not write them while StartRunBatch was answered
        (index_blob_apart), or another batch of the same settings file did not."""
        from runlog import blobs, cohortindex

        held = blobs.ref_of(record, blobs.CONTENT)
        if held is not None:  # the rows are the blob's (runlog/blobs.py): its offsets are into it
            sha256 = held["sha256"]
            if self.has_blob_settings(sha256):
                return
            found = prepared.blob_rows(sha256) if prepared is not None else None
            if found is None:
                found = cohortindex.record_rows(record, body, self.blob)
            self._write_settings(sha256, found)
            return
        found = prepared.rows_for(body) if prepared is not None else None
        if found is None:
            found = cohortindex.record_rows(record, body, self.blob)
        self._write_settings(seq, found)

    # the rows of a batch record's run settings' digests: by the record (m009), or by the blob
    # holding its settings file's content (m013); (table, key column) for each kind of key
    _SETTINGS = {int: ("batch_settings", "batch"), str: ("blob_settings", "blob")}
    _INSERT_SETTINGS = "INSERT INTO {} ({}, bucket, digest, runs) VALUES (?, ?, ?, ?)"
    _BLOB_HAS_SETTINGS = "SELECT 1 FROM blob_settings WHERE blob = ? LIMIT 1"

    def _write_settings(self, key: int | str, found: Sequence[tuple] | None) -> None:
        """Insert the rows of `batch_settings` of the batch record `key` (its seq), or of
        `blob_settings` of the blob `key` (its SHA-256); none for None."""
        if not found:
            return
        table, column = self._SETTINGS[type(key)]
        try:
            self.conn.executemany(self._INSERT_SETTINGS.format(table, column), [(key, *row) for row in found])
        except (sqlite3.OperationalError, sqlite3.DataError) as exc:
            raise LedgerError(f"cannot write to ledger {self.path}: {exc}") from None

    def has_blob_settings(self, sha256: str) -> bool:
        """Whether `blob_settings` (m013) holds the rows of the blob `sha256`."""
        return self.conn.execute(self._BLOB_HAS_SETTINGS, (sha256,)).fetchone() is not None

    def index_blob_apart(self, sha256: str, rows: Sequence[tuple] | None) -> bool:
        """Write the rows of `blob_settings` (m013) of the blob `sha256` (a settings file's
        content, stored with the attempt) from a connection of its own, in its own transaction,
        then copy the WAL into the file (a passive checkpoint): submit-batch does it in another
        thread while StartRunBatch is answered, so that the record written after the answer
        is only the record. Derived rows of a content-addressed blob: true whoever writes them
        and whenever. False when not written (the record's transaction then writes them:
        _index_settings)."""
        if not rows or not Path(self.path).is_file():
            return False
        try:
            conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error:
            return False
        try:
            conn.execute("BEGIN IMMEDIATE")
            if conn.execute(self._BLOB_HAS_SETTINGS, (sha256,)).fetchone() is None:
                conn.executemany(self._INSERT_SETTINGS.format(*self._SETTINGS[str]), [(sha256, *row) for row in rows])
            conn.execute("COMMIT")
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            return True
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return False
        finally:
            conn.close()

    def _settings_source(self, seq: int) -> tuple[str, str, int | str]:
        """(table, key column, key) of the rows of batch record `seq`'s run settings' digests
        (_settings_of)."""
        row = self.conn.execute(f"SELECT {self._HELD} FROM records r LEFT JOIN batch_views v ON v.record = r.address "
                                "WHERE r.seq = ?", (seq,)).fetchone()
        return self._settings_of(seq, row[0] if row is not None else None)

    def _settings_of(self, seq: int, held: Any) -> tuple[str, str, int | str]:
        """(table, key column, key) of the rows of batch record `seq`'s run settings' digests,
        `held` the blob its settings file's content is held in (_HELD) or None: the blob's rows
        in `blob_settings`, else the record's own in `batch_settings`."""
        key: int | str = held if isinstance(held, str) else seq
        return (*self._SETTINGS[type(key)], key)

    def complete(self, intent: dict, outcome: dict, *, encoded: bytes | None = None,
                 prepared: cohortindex.Prepared | None = None, checkpoint: bool = True) -> Entry:
        """Write the record for an attempt: the intent plus what the service answered
        (`encoded`: its canonical JSON, when the caller made it; `prepared`, `checkpoint`: see
        add_record)."""
        entry, _ = self.add_record({**intent, "outcome": outcome}, encoded=encoded, prepared=prepared,
                                   checkpoint=checkpoint)
        return entry

    def observe(self, address: str, source: str, body: dict, *, run_uuid: str | None = None,
                status: str | None = None) -> None:
        """Append an observation about a record's run, made now."""
        self.add_observation(address, source, body, observed_at=rec.utc_now(), run_uuid=run_uuid, status=status)

    def add_observation(self, address: str, source: str, body: dict, *, observed_at: str,
                        run_uuid: str | None = None, status: str | None = None) -> None:
        """Append an observation with the time it was made."""
        with self.write():
            self._insert_observation(address, run_uuid, observed_at, source, status, body)

    def _insert_observation(self, record: str, run_uuid: str | None, observed_at: str, source: str,
                            status: str | None, body: dict) -> int:
        text = rec.canonical_json(body).decode("utf-8")
        return self._insert(
            "observations",
            {"record": record, "run_uuid": run_uuid, "observed_at": observed_at, "source": source,
             "status": status, "body": text, "sha256": rec.sha256_hex(text.encode("utf-8"))},
        )

    def _observation_rows(self, only_unindexed: bool = False) -> Iterator[tuple[int, str, str, bytes, bool]]:
        """(seq, address, record, object bytes, indexed) for each observation, in order; the
        address is computed for rows not yet in observation_addresses."""
        where = "WHERE a.observation IS NULL " if only_unindexed else ""
        rows = self.conn.execute(
            "SELECT o.seq, a.address, o.record, o.run_uuid, o.observed_at, o.source, o.status, o.body "
            f"FROM observations o LEFT JOIN observation_addresses a ON a.observation = o.seq {where}ORDER BY o.seq"
        )
        for seq, address, record, run_uuid, observed_at, source, status, body in rows:
            data = stored_observation_object(record, run_uuid, observed_at, source, status, body)
            yield seq, address or rec.sha256_hex(data), record, data, address is not None

    def index_observations(self, found: Sequence[tuple[int, str]] | None = None) -> int:
        """Store the content address of every observation that has none yet (see
        observation_object); returns how many were indexed. Cheap when nothing is new.
        `found`: the (seq, address) pairs observation_addresses(unindexed=...) computed, stored
        as they are instead of being computed again (push)."""
        rows = list(found) if found is not None else [
            (seq, address) for seq, address, *_ in self._observation_rows(only_unindexed=True)]
        if rows:
            with self.write():
                self.conn.executemany(
                    "INSERT OR IGNORE INTO observation_addresses (observation, address) VALUES (?, ?)", rows)
        return len(rows)

    def observation_addresses(self, *, unindexed: list[tuple[int, str]] | None = None) -> set[str]:
        """The content addresses of every observation. `unindexed`: a list that receives the
        (seq, address) of each observation whose address was computed (not stored yet)."""
        computed = [(seq, address) for seq, address, *_ in self._observation_rows(only_unindexed=True)]
        if unindexed is not None:
            unindexed.extend(computed)
        return {row[0] for row in self.conn.execute("SELECT address FROM observation_addresses")} | {
            address for _, address in computed}

    def add_received_observations(self, items: Iterable[dict]) -> int:
        """Append observations made elsewhere (e.g. pulled from a team ledger) as received,
        keeping their observed_at and source. Each item has the keys of observation_object;
        one whose address the ledger already holds (or that is given twice), or whose record
        it lacks, is skipped. Returns how many were added; all in one transaction, the rows,
        their seals and their addresses each with one executemany."""
        from runlog import fastjson

        self.index_observations()
        rows: list[tuple[str, str, str | None, str, str, str | None, bytes, str]] = []
        for item in items:
            fields = [item[k] for k in OBSERVATION_FIELDS]
            text = fastjson.dumps(item["body"])
            rows.append((rec.sha256_hex(observation_object(*fields)), *fields[:5], text, rec.sha256_hex(text)))
        return self.add_checked_observations(rows)

    def add_checked_observations(self, rows: Sequence[tuple[str, str, str | None, str, str, str | None, bytes, str]],
                                 *, plain: bool = False, refused: list[tuple[str, str]] | None = None) -> int:
        """add_received_observations for observations the caller has checked and taken apart
        (a pull: runlog/syncreceive.py): (address, record, run_uuid, observed_at, source,
        status, the body's canonical JSON, its SHA-256), the address being that of the
        observation's object. The caller has run index_observations() before (once, not per
        page), so that every observation the ledger holds is found by its address. `plain`: the
        caller checked that run_uuid and status are text or NULL (check_observations does), so
        the rows are not scanned for a bool. An observation that is not of its record's run
        (obsrules.run_problem: someone else's) is left out and named in `refused`, by its
        address (ITEM_REFUSED): it may have come in a pack, whose key names many items."""
        import orjson  # (the bodies' id and uuid are text: orjson reads them as the json module does)

        from runlog.obsrules import RUN_SOURCES, run_problem

        if not rows:
            return 0
        with self.write():
            held = self._present([row[0] for row in rows], "observation_addresses")
            records = self._run_columns(sorted({row[1] for row in rows}))
            seq = self._next_seq("observations")
            new, new_addresses = [], []
            for address, record, *fields, body, digest in rows:
                if address in held or record not in records:
                    continue
                run_uuid, source = fields[0], str(fields[2])
                why = run_problem(source, run_uuid, orjson.loads(body) if source in RUN_SOURCES else None,
                                  *records[record])
                if why is not None:
                    if refused is not None:
                        refused.append((f"{ITEM_REFUSED}{address} (of record {record})",
                                        f"not an observation runlog makes: {why}"))
                    continue
                held.add(address)
                new.append((seq, record, *fields, body.decode("utf-8"), digest))
                new_addresses.append((seq, address))
                seq += 1
            if new:
                with self._member_rows_by_page("observations", new_addresses[0][0]):
                    self._insert_rows("observations", _OBSERVATION_ROW, new, plain=plain)
                self.conn.executemany("INSERT INTO observation_addresses (observation, address) VALUES (?, ?)",
                                      new_addresses)
        return len(new)

    @contextmanager
    def _member_rows_by_page(self, table: str, first: int, batch: str | None = None) -> Iterator[None]:
        """Inside a write transaction that inserts a page of rows of `table` (records or
        observations) from seq `first` on: the member triggers stand aside while the block runs
        (migration m014), and batch_members is then brought up to date for the whole page with
        one statement, as the triggers would have left it row by row (migrations.PAGE_MEMBERS,
        PAGE_STATUSES; PAGE_MEMBERS_OF when every member of the page is one of `batch`'s, the
        batch record's address). An error in the block rolls the transaction back, the pause
        with it."""
        from runlog.migrations import PAGE_MEMBERS, PAGE_MEMBERS_OF, PAGE_STATUSES

        def run(*statements: tuple[str, tuple]) -> None:
            try:
                for sql, params in statements:
                    self.conn.execute(sql, params)
            except (sqlite3.OperationalError, sqlite3.DataError) as exc:
                raise LedgerError(f"cannot write to ledger {self.path}: {exc}") from None

        run(("INSERT INTO member_triggers_paused (paused) VALUES (1)", ()))
        yield
        if table != "records":
            page: tuple[str, tuple] = (PAGE_STATUSES, (first,))
        else:
            page = (PAGE_MEMBERS, (first,)) if batch is None else (PAGE_MEMBERS_OF, (first, batch))
        run(page, ("DELETE FROM member_triggers_paused", ()))

    @contextmanager
    def page_cache_for(self, kib: int) -> Iterator[None]:
        """SQLite's page cache of this connection at least `kib` KiB while the block runs (a
        pull's inserts: the pages of the indexes on random keys that every page of received rows
        writes — addresses, run uuids, fingerprints, the observations' records — stay in memory
        instead of being read back from the file for each transaction), then as it was. SQLite
        takes the memory as pages are used, not at once."""
        before = self.conn.execute("PRAGMA cache_size").fetchone()[0]
        current = -before if before < 0 else before * self.conn.execute("PRAGMA page_size").fetchone()[0] // 1024
        if current >= kib:
            yield
            return
        self.conn.execute(f"PRAGMA cache_size = -{int(kib)}")
        try:
            yield
        finally:
            self.conn.execute(f"PRAGMA cache_size = {int(before)}")

    def add_received_records(self, items: Sequence[tuple], *, plain: bool = False) -> int:
        """Append records received from elsewhere and checked by the caller (a pull:
        runlog/syncreceive.py checks each one's address, canonical form and schema), in the
        order given, in one transaction: what add_records does, without parsing, checking
        and encoding each record again. Each item is (address, canonical JSON, the record's
        index_columns values in INDEX_COLUMNS' order), and for a batch record, when the caller
        made them from the record it checked, its rows of `batch_settings` and its (runs, view)
        of `batch_views` (cohortindex.received's answer, None for either); without them they
        are made here (the view by the trigger of migration m010).
        One whose address the ledger holds (or given twice) is skipped. Returns how many
        were added. `plain`: the rows are not scanned for a bool to seal as SQLite stores it
        (the seal covers seq, address and inserted_at, made here, and lookup columns, which
        index_columns makes text or NULL)."""
        from runlog.blobs import MARKER

        marker = MARKER.encode("utf-8")
        with self.write():
            present, chain, seq, inserted_at = self._appending([item[0] for item in items])
            rows = []
            batches: list[tuple[bytes, int, tuple]] = []
            for address, body, columns, *given in items:
                if address in present:
                    continue
                present.add(address)
                chain = chain_next(chain, address)
                if columns[0] == "batch":  # kind
                    if marker in body:  # a cohort held by reference: its blobs first (runlog/blobs.py)
                        self._refuse_missing_blobs(json.loads(body))
                    batches.append((body, seq, tuple(given)))
                rows.append((seq, address, body.decode("utf-8"), chain, inserted_at, *columns))
                seq += 1
            if rows:
                from runlog.fastjson import decode_canonical

                for _, at, made in batches:  # written first: the trigger of migration m010 then leaves it
                    if len(made) > 1 and made[1] is not None:
                        self.conn.execute("INSERT OR REPLACE INTO batch_views (record, runs, view) VALUES (?, ?, ?)",
                                          (rows[at - rows[0][0]][1], *made[1]))
                with self._member_rows_by_page("records", rows[0][0]):
                    self._insert_rows("records", _RECORD_ROW, rows, plain=plain)
                for body, at, made in batches:
                    if made:  # made by the caller from the record it checked
                        self._write_settings(at, made[0])
                    else:
                        self._index_settings(at, decode_canonical(body)[0], body)
        return len(rows)

    # -- reading -----------------------------------------------------------------------------

    # What "newest first" means everywhere (log, @N, show, diff, replay, export): by when the
    # run was asked for (a submission's intent, an imported run's creationTime), not by when
    # the record reached this ledger; ties (the same millisecond) by ledger order.
    NEWEST_FIRST = "created DESC, seq DESC"

    def _entry_where(self, where: str, params: tuple = (), order: str = NEWEST_FIRST,
                     limit: int | None = None, offset: int = 0, columns: str = RECORD_COLUMNS) -> list[Entry]:
        sql = f"SELECT {columns} FROM records WHERE {where} ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        found = [Entry(*row) for row in self.conn.execute(sql, params)]
        if columns is RECORD_COLUMNS:
            for entry in found:
                entry._blob, entry._partial = self.blob, self.partial
        return found

    def count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM records").fetchone()[0]

    def entries(self, limit: int | None = None, *, where: str = "1", params: tuple = (),
                columns: str = RECORD_COLUMNS) -> list[Entry]:
        """Records newest first, each with its latest observed status. `where` is for this
        module only: code elsewhere asks for a named query (same_configuration, with_runs,
        by_run_uuid, by_request_id, ...) so that the ledger's SQL stays in this file."""
        found = self._entry_where(where, params, limit=limit, columns=columns)
        self._fill_status(found)
        return found

    # A fingerprint looked up through its index (m015: the index holds its first characters),
    # then compared whole. The `+` is needed: with a plain `fingerprint = ?` SQLite puts the value
    # into the prefix's term in place of the column (constant propagation), and the index is left
    # unused (a scan of every record; tests/test_session21.py reads the plan)
    _SAME_FINGERPRINT = f"substr(fingerprint, 1, {FINGERPRINT_PREFIX}) = ? AND +fingerprint = ?"

    def same_configuration(self, fingerprint: str, limit: int | None = None) -> list[Entry]:
        """Records of the same configuration (request fingerprint), newest first."""
        return self.entries(limit, where=self._SAME_FINGERPRINT, params=_fingerprint_params(fingerprint))

    def listing(self, limit: int | None = None, *, batch: Entry | None = None,
                fingerprint: str | None = None, left_out: list[Entry] | None = None) -> list[Entry]:
        """What `runlog log` lists, newest first: every record but the member runs of batches;
        with `batch`, that batch's member runs; with `fingerprint`, only the records of that
        configuration (member runs included). A batch's entry holds its view as its body (the
        record without its settings file's content: `get` it for the whole record). Without
        `batch`, each run and batch is listed once: an `import` record or imported batch of
        one the ledger also holds as runlog started it (`imported_twins`) is left out, and
        appended to `left_out` when given."""
        where = "kind != 'member'"
        params: tuple[Any, ...] = ()
        if batch is not None:
            if fingerprint is None:
                return self.members(batch.batch_id, batch.address, limit)
            where, params = self._MEMBER_SEQS + ")", (batch.address,)
        if fingerprint is not None:
            where = where if batch is not None else "1"
            where, params = f"{where} AND {self._SAME_FINGERPRINT}", (*params, *_fingerprint_params(fingerprint))
        if batch is not None:
            return self.entries(limit, where=where, params=params, columns=LISTING_COLUMNS)
        # each run and batch once: an imported twin of a submitted record is left out (in
        # `left_out`), and the list topped up past it so that `limit` records are still listed
        checked: set[str] = set()
        twins: dict[str, Entry] = {}
        while True:
            want = None if limit is None else limit + len(twins)
            found = self.entries(want, where=where, params=params, columns=LISTING_COLUMNS)
            new = self.imported_twins([e for e in found if e.address not in checked])
            checked.update(e.address for e in found)
            twins.update((e.address, e) for e in new)
            if not new or want is None or len(found) < want:
                break
        if left_out is not None:
            left_out.extend(e for e in found if e.address in twins)
        return [e for e in found if e.address not in twins]

    def refreshable(self) -> list[Entry]:
        """Records whose run or batch the service can be asked about again, newest first:
        those that started a run (but batch members: refreshed with their batch) and the
        batches that started, each as its view (see `listing`)."""
        return self.entries(where="(run_id IS NOT NULL AND kind != 'member') OR (kind = 'batch' AND "
                                  "batch_id IS NOT NULL)", columns=LISTING_COLUMNS)  # a batch as its view

    def run_setting_ids(self, addresses: Sequence[str]) -> dict[str, str]:
        """The runSettingId of each member record among `addresses` whose record names one as
        text (taken out by SQLite: the member bodies are not parsed in Python)."""
        found: dict[str, str] = {}
        for start in range(0, len(addresses), 500):
            chunk = addresses[start:start + 500]
            found.update(self.conn.execute(
                "SELECT address, json_extract(body, '$.batch.run_setting_id') AS id FROM records "
                f"WHERE address IN ({','.join('?' * len(chunk))}) AND kind = 'member' AND typeof(id) = 'text'",
                tuple(chunk)))
        return found

    def batch_ids(self) -> set[str]:
        """The HealthOmics ids of the batches recorded (started)."""
        return {row[0] for row in self.conn.execute(
            "SELECT batch_id FROM records WHERE kind = 'batch' AND batch_id IS NOT NULL")}

    # -- a batch's member runs (runlog/batch.py) ----------------------------------------------

    def page_cache(self, kib: int) -> None:
        """SQLite's page cache of this connection, in KiB (its default is 2 000 KiB). A
        refresh's writer process (runlog/writerproc.py) keeps the leaves of the member
        indexes on random keys (address, uuid, fingerprint) in memory instead of reading them
        back from the file for each transaction: a bounded cost, whatever the batch's size."""
        self.conn.execute(f"PRAGMA cache_size = -{max(1, int(kib))}")

    def statement_journals_in_memory(self) -> None:
        """Keep this connection's statement journals in memory (SQLite's temp_store, which
        also holds its temporary tables and sorts). A statement that may fail halfway (a
        multi-row INSERT on a UNIQUE index, a table with triggers) keeps a copy of each page
        it changes until it ends; past 64 KiB SQLite writes that copy to a temporary file, one
        write for the page's number and one for the page. A page of 100 members changes
        hundreds of pages: a refresh of 100 000 members and their statuses made 612 000 such
        writes (1.2 GB) besides its 315 000 to the WAL and the ledger. In memory, the copy is
        at most the pages one statement changes. For a refresh's writer connection only: its
        statements are bounded by a page of rows, and it makes no temporary table of its own."""
        self.conn.execute("PRAGMA temp_store = MEMORY")

    @contextmanager
    def bulk_writes(self, pages: int = 16384) -> Iterator[None]:
        """Many write transactions in a row (a batch's members, page by page): SQLite copies
        the WAL into the file (and syncs it) every `pages` pages instead of every 1 000, so a
        100 000-member refresh syncs the file a few dozen times, not hundreds, and a page of
        an index written by many transactions is copied once per checkpoint. Each transaction
        is as atomic and as durable as before; the WAL grows to `pages` pages (4 KiB each)."""
        before = self.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        self.conn.execute(f"PRAGMA wal_autocheckpoint = {int(pages)}")
        try:
            yield
        finally:
            self.conn.execute(f"PRAGMA wal_autocheckpoint = {int(before)}")

    def batch_outline(self, address: str) -> dict:
        """The batch record at `address` without the two parts that grow with the cohort: its
        settings file's content and its runs' input identities (`resolution`), taken out by
        SQLite so that they are never Python objects (100 000 run settings: ~150 MiB). Taken
        from the batch's view (migration m007: the record without its settings file's content)
        when it has one, so that SQLite does not parse the whole body (~28 MB of text at
        100 000 runs, parsed into several times that) to take them out."""
        row = self.conn.execute(
            "SELECT coalesce((SELECT json_remove(v.view, '$.resolution') FROM batch_views v WHERE v.record = ?), "
            "(SELECT json_remove(body, '$.batch.settings_file.content', '$.resolution') FROM records "
            "WHERE address = ?))", (address, address)).fetchone()
        if row is not None and row[0] is None:
            row = None
        if row is None:
            raise LedgerError(f"no record {address} in ledger {self.path}")
        return json.loads(row[0])

    def resolved_workflow_digest(self, address: str) -> str | None:
        """`resolution.workflow.digest` of the record at `address` (a batch's: the default
        setting's workflow), read by SQLite without decoding the cohort; None when absent."""
        row = self.conn.execute("SELECT json_extract(body, '$.resolution.workflow.digest') FROM records "
                                "WHERE address = ?", (address,)).fetchone()
        return row[0] if row is not None and isinstance(row[0], str) else None

    @contextmanager
    def file_run_settings(self, address: str) -> Iterator[Callable[[list[str]], dict[str, str]]]:
        """The run settings of the batch record at `address` that came from its settings file,
        copied into a temporary table of this connection (a file of its own, never the
        ledger's) keyed by runSettingId: read from the body a chunk at a time and checked
        against the record's index (_stream_run_settings), else by SQLite's json_each; yields a function from a page of runSettingIds
        to {runSettingId: that setting as JSON text}. Memory: one page of settings. A
        runSettingId given twice keeps its last setting, as a dict built from the list would."""
        table = "temp.runlog_file_run_settings"
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS runlog_file_run_settings "
                          "(id TEXT PRIMARY KEY, setting TEXT NOT NULL, bucket INTEGER, digest TEXT) WITHOUT ROWID")
        self.conn.execute(f"DELETE FROM {table}")
        if not self._stream_run_settings(address, table):  # SQLite's JSON: the whole body parsed in memory
            self.conn.execute(f"DELETE FROM {table}")
            self._copy_held_settings(address, table)
            self.conn.execute(
                f"INSERT OR REPLACE INTO {table} (id, setting) SELECT json_extract(s.value, '$.runSettingId'), "
                "s.value FROM records r, json_each(r.body, '$.batch.settings_file.content') s WHERE r.address = ? "
                "AND s.type = 'object' AND json_type(s.value, '$.runSettingId') = 'text' ORDER BY s.key", (address,))

        def lookup(ids: list[str]) -> dict[str, str]:
            found: dict[str, str] = {}
            for start in range(0, len(ids), 500):  # within SQLite's limit on parameters
                part = ids[start:start + 500]
                found.update(self.conn.execute(
                    f"SELECT id, setting FROM {table} WHERE id IN ({','.join('?' * len(part))})", part).fetchall())
            return found

        try:
            yield lookup
        finally:
            self.conn.execute(f"DELETE FROM {table}")

    def _copy_held_settings(self, address: str, table: str) -> None:
        """file_run_settings' copy for a record holding its settings by reference, when the
        stream could not be used: the blob decoded whole (runlog/blobs.py), each setting written
        back by fastjson.dumps (orjson refuses an integer beyond 64 bits, which the blob's
        exact reading keeps)."""
        from runlog import fastjson

        row = self.conn.execute(f"SELECT {self._HELD} FROM records r LEFT JOIN batch_views v "
                                "ON v.record = r.address WHERE r.address = ?", (address,)).fetchone()
        if row is None or row[0] is None:
            return
        rows = [(setting["runSettingId"], fastjson.dumps(setting).decode("utf-8"))
                for setting in _loads_list(self.blob(row[0]))
                if type(setting) is dict and type(setting.get("runSettingId")) is str]
        self.conn.executemany(f"INSERT OR REPLACE INTO {table} (id, setting) VALUES (?, ?)", rows)

    def _stream_run_settings(self, address: str, table: str) -> bool:
        """file_run_settings' copy, read from the body a chunk at a time (runlog/settingstream.py)
        from its first run setting on (its offset in `batch_settings`, migration m009, or in
        its blob's `blob_settings`, m013), and
        kept only if every bucket's digest of what was read is the record's (cohortindex): the
        same settings, byte for byte, as its settings file's content. False, and nothing kept,
        when the record has no such rows, is an inline batch, or what was read is not that."""
        import itertools

        from runlog.cohortindex import digests_digest
        from runlog.settingstream import NotASettingsList, settings_from

        row = self.conn.execute(
            f"SELECT r.seq, json_type(v.view, '$.request.batchRunSettings.s3UriSettings'), {self._HELD} FROM records r "
            "LEFT JOIN batch_views v ON v.record = r.address WHERE r.address = ?", (address,)).fetchone()
        if row is None or row[1] != "text":  # no view (an older ledger), or no settings file
            return False
        seq, held = row[0], row[2]
        rows_in, column, key = self._settings_of(seq, held)
        expected = dict(self.conn.execute(f"SELECT bucket, digest FROM {rows_in} WHERE {column} = ?", (key,)))
        start = self.conn.execute(f"SELECT min(json_extract(j.value, '$[3]')) FROM {rows_in} b, json_each(b.runs) j "
                                  f"WHERE b.{column} = ?", (key,)).fetchone()[0]
        if not expected or type(start) is not int:
            return False
        insert = f"INSERT OR REPLACE INTO {table} (id, setting, bucket, digest) VALUES (?, ?, ?, ?)"
        self.conn.execute("SAVEPOINT runlog_file_run_settings")  # one transaction, not one per row
        try:
            with self._settings_bytes(seq, held) as blob:
                if not 0 <= start < len(blob):
                    return False
                blob.seek(start)
                rows: list[tuple] = []
                for found in settings_from(blob.read):
                    rows.append(found)
                    if len(rows) == 1000:
                        self.conn.executemany(insert, rows)
                        rows = []
                self.conn.executemany(insert, rows)
        except (NotASettingsList, sqlite3.Error):
            return False
        finally:
            self.conn.execute("RELEASE runlog_file_run_settings")
        copied = self.conn.execute(f"SELECT bucket, digest FROM {table} ORDER BY bucket")
        read = {bucket: digests_digest(digest for _, digest in found)
                for bucket, found in itertools.groupby(copied, key=lambda row: row[0])}
        return read == expected

    _LATEST = (f"(SELECT {{what}} FROM observations o WHERE o.record = r.address AND o.status IS NOT NULL "
               f"ORDER BY {STATUS_ORDER.replace('status', 'o.status')} LIMIT 1)")

    def members(self, batch_id: str | None, batch_address: str, limit: int | None = None) -> list[Entry]:
        """The member records of the batch recorded as `batch_address`, newest first (through
        `batch_members`, migrations m007, m008: a page of a 100 000-run batch reads a page of rows)."""
        return self.entries(limit, where=self._MEMBER_SEQS + " ORDER BY m.created DESC, m.seq DESC"
                            + (f" LIMIT {int(limit)}" if limit is not None else "") + ")",
                            params=(batch_address,))

    # batch_members names a member's batch by the batch record's seq (migration m008)
    _BATCH_SEQ = "(SELECT b.seq FROM records b WHERE b.address = ?)"
    _MEMBER_SEQS = f"seq IN (SELECT m.seq FROM batch_members m WHERE m.batch = {_BATCH_SEQ}"

    def member_addresses(self, batch_id: str | None, batch_address: str) -> list[str]:
        return [row[0] for row in self.conn.execute(
            f"SELECT r.address FROM batch_members m JOIN records r ON r.seq = m.seq WHERE m.batch = {self._BATCH_SEQ} "
            "ORDER BY m.seq", (batch_address,))]

    def member_runs(self, batch_id: str | None, run_ids: list[str]) -> list[tuple]:
        """(address, run_id, run_uuid, latest status) of the batch's members with these run ids."""
        marks = ",".join("?" * len(run_ids))
        latest = self._LATEST.format(what="o.status")
        # by run id (its index); `+` keeps SQLite off the batch_id index, which would read every
        # member of the batch for each page of run ids
        return self.conn.execute(
            f"SELECT r.address, r.run_id, r.run_uuid, {latest} FROM records r WHERE r.run_id IN ({marks}) "
            f"AND +r.batch_id = ? AND +r.kind = 'member'", (*run_ids, batch_id)).fetchall()

    def members_without_output(self, batch_address: str, after: int, limit: int) -> list[tuple[int, str, str, str | None]]:
        """(seq, address, run_id, run_uuid) of up to `limit` members after seq `after`, in
        ledger order, whose run ended (latest status COMPLETED, FAILED or CANCELLED, from
        `batch_members`) and none of whose observations holds the run's output location
        (runOutputUri)."""
        return self.conn.execute(
            "SELECT r.seq, r.address, r.run_id, r.run_uuid FROM batch_members m JOIN records r ON r.seq = m.seq "
            f"WHERE m.batch = {self._BATCH_SEQ} AND m.outcome = 'submitted' "
            "AND m.status IN ('COMPLETED', 'FAILED', 'CANCELLED') "
            "AND m.seq > ? AND r.run_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM observations o "
            "WHERE o.record = r.address AND json_extract(o.body, '$.runOutputUri') IS NOT NULL) "
            "ORDER BY m.seq LIMIT ?", (batch_address, after, limit)).fetchall()

    def members_without_settings(self, batch_address: str, source: str, after: int,
                                 limit: int) -> list[tuple[int, str, str, str | None, str | None]]:
        """(seq, address, run_id, run_uuid, the code of the last `source` observation's
        `unknown` or None) of up to `limit` members after seq `after`, in ledger order, that
        started a run, whose record warns that its own settings are unknown (a member record
        has no other warning: runlog/membersettings.py), and none of whose `source`
        observations holds the settings."""
        return self.conn.execute(
            "SELECT r.seq, r.address, r.run_id, r.run_uuid, (SELECT json_extract(o.body, '$.unknown.code') "
            "FROM observations o WHERE o.record = r.address AND o.source = ?2 ORDER BY o.seq DESC LIMIT 1) "
            "FROM batch_members m JOIN records r ON r.seq = m.seq "
            "WHERE m.batch = (SELECT b.seq FROM records b WHERE b.address = ?1) AND m.outcome = 'submitted' "
            "AND m.seq > ?3 AND r.run_id IS NOT NULL AND json_array_length(r.body, '$.warnings') > 0 "
            "AND NOT EXISTS (SELECT 1 FROM observations o WHERE o.record = r.address AND o.source = ?2 "
            "AND json_type(o.body, '$.settings') = 'object') ORDER BY m.seq LIMIT ?4",
            (batch_address, source, after, limit)).fetchall()

    def member_settings_counts(self, batch_address: str, source: str) -> tuple[int, int, int]:
        """(members that started a run and whose record warns that its own settings are unknown,
        how many of them a `source` observation gives the settings of, how many only an
        `unknown` of): runlog/membersettings.py, for `runlog show B`."""
        row = self.conn.execute(
            "SELECT count(*), coalesce(sum(k.settings), 0), coalesce(sum(k.unknown AND NOT k.settings), 0) FROM "
            "(SELECT EXISTS (SELECT 1 FROM observations o WHERE o.record = r.address AND o.source = ?2 "
            "AND json_type(o.body, '$.settings') = 'object') AS settings, "
            "EXISTS (SELECT 1 FROM observations o WHERE o.record = r.address AND o.source = ?2 "
            "AND json_type(o.body, '$.unknown') = 'object') AS unknown "
            "FROM batch_members m JOIN records r ON r.seq = m.seq "
            "WHERE m.batch = (SELECT b.seq FROM records b WHERE b.address = ?1) AND m.outcome = 'submitted' "
            "AND json_array_length(r.body, '$.warnings') > 0) AS k", (batch_address, source)).fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def batch_view(self, address: str) -> tuple[dict, int | None] | None:
        """(the batch record without its settings file's content, how many run settings that
        content holds: None without one), from `batch_views` (migration m007): a few kilobytes
        read and decoded instead of the whole cohort. None when `address` is not a batch. A
        record holding its cohort by reference: its content's reference dropped, its inputs
        still a reference (blobs.view_of; blobs.value_of reads them)."""
        from runlog import blobs

        row = self.conn.execute("SELECT view, runs FROM batch_views WHERE record = ?", (address,)).fetchone()
        return (blobs.view_of(json.loads(row[0])), row[1]) if row else None

    def setting_differences(self, batch_a: int, batch_b: int, most: int = 512) -> tuple[list, list] | None:
        """The runs of two batch records (their seqs) in the buckets of runSettingIds whose
        digests differ (`batch_settings`, migration m009, or for a record holding its settings
        by reference its blob's `blob_settings`, m013: runlog/cohortindex.py), as the JSON
        text of each bucket's runs: (a's, b's). None when either record has no rows (its
        settings were not indexed) or more than `most` buckets differ (decoding both cohorts
        then costs about as much), and when the records hold two different blobs yet no
        bucket differs (runs reordered, or rows changed). SQLite compares the buckets' digests
        (4 096 rows per 100 000-run batch); only the buckets that differ are read."""
        conn = self.conn
        (table_a, column_a, a), (table_b, column_b, b) = self._settings_source(batch_a), self._settings_source(batch_b)
        indexed = conn.execute(f"SELECT EXISTS (SELECT 1 FROM {table_a} WHERE {column_a} = ?), "
                               f"EXISTS (SELECT 1 FROM {table_b} WHERE {column_b} = ?)", (a, b)).fetchone()
        if not all(indexed):
            return None
        # the buckets' digests without their runs (the table's rows hold them: two rows a page)
        in_a, in_b = f"{table_a} a INDEXED BY {table_a}_digests", f"{table_b} b INDEXED BY {table_b}_digests"
        buckets = [row[0] for row in conn.execute(
            f"SELECT a.bucket FROM {in_a} WHERE a.{column_a} = ?1 AND NOT EXISTS (SELECT 1 FROM {in_b} WHERE "
            f"b.{column_b} = ?2 AND b.bucket = a.bucket AND b.digest = a.digest) UNION SELECT b.bucket FROM {in_b} "
            f"WHERE b.{column_b} = ?2 AND NOT EXISTS (SELECT 1 FROM {in_a} WHERE a.{column_a} = ?1 AND "
            "a.bucket = b.bucket) LIMIT ?3", (a, b, most + 1))]
        if len(buckets) > most:
            return None
        if not buckets:
            # two blobs (canonical JSON) differ, yet no bucket's digest does: the runs were only
            # reordered, or the rows were changed outside runlog (verify names them; a blob's rows
            # are taken as found, even those written before its first record): not proven, None
            return None if isinstance(a, str) and isinstance(b, str) and a != b else ([], [])
        marks = ",".join("?" * len(buckets))
        return tuple([row[0] for row in conn.execute(  # type: ignore[return-value]
            f"SELECT runs FROM {table} WHERE {column} = ? AND bucket IN ({marks})", (key, *buckets))]
            for table, column, key in ((table_a, column_a, a), (table_b, column_b, b)))

    # the blob holding a batch record's settings file content: its view tells whether it holds
    # one (json_extract only where the member's name is in the text: a view or body of an inline
    # cohort can be megabytes), the record's own body which (a few kilobytes then): the view is
    # a derived row, and a view changed to name another blob would have the other blob's rows
    # (keyed by the blob, migration m013) and bytes agree, hiding the record's own runs
    _HELD = ("CASE WHEN instr(v.view, '\"content_blob\":') THEN CASE WHEN json_valid(r.body) THEN "
             "json_extract(r.body, '$.batch.settings_file.content_blob.sha256') END END")

    @contextmanager
    def _settings_bytes(self, seq: int, held: str | None) -> Iterator[Any]:
        """A readable, seekable file of the bytes record `seq`'s `batch_settings` offsets are
        into: the blob `held` names (its settings file's content by reference: runlog/blobs.py),
        else the record's body (SQLite's incremental blob I/O)."""
        if held is not None:
            import io

            class _Sized(io.BytesIO):
                def __len__(self) -> int:
                    return len(self.getbuffer())

            with _Sized(self.blob(held)) as found:
                yield found
        else:
            with self.conn.blobopen("records", "body", seq, readonly=True) as blob:
                yield blob

    def body_pieces(self, seq: int, spans: list[tuple[int, int]]) -> list[bytes] | None:
        """The bytes of record `seq`'s body at each (start, length) (its canonical JSON, UTF-8),
        or of the blob holding its settings by reference (runlog/blobs.py),
        read through SQLite's incremental blob I/O: a few hundred bytes each, not the whole
        record. None when a span is not within it or the row is not there. The file is mapped
        into memory (as verify's workers map it): the first read walks the body's chain of
        overflow pages, a system call each otherwise (3 500 for 14 MB)."""
        try:
            self.conn.execute(f"PRAGMA mmap_size = {1 << 30}")
            held = self.conn.execute(f"SELECT {self._HELD} FROM records r LEFT JOIN batch_views v "
                                     "ON v.record = r.address WHERE r.seq = ?", (seq,)).fetchone()
            with self._settings_bytes(seq, held[0] if held else None) as blob:
                size = len(blob)
                found = []
                for start, length in spans:
                    if start < 0 or length < 0 or start + length > size:
                        return None
                    blob.seek(start)
                    found.append(blob.read(length))
                return found
        except sqlite3.Error:
            return None

    def member_counts(self, batch_address: str) -> list[tuple[str, str | None, int]]:
        """(outcome, latest run status or None, count) of the batch's members: one pass over
        `batch_members`' index for the batch, no member's body or observations read."""
        return self.conn.execute(
            f"SELECT outcome, status, count(*) FROM batch_members WHERE batch = {self._BATCH_SEQ} "
            "GROUP BY outcome, status",
            (batch_address,)).fetchall()

    # the failed members of a batch, as three ranges of batch_members_state (an OR would read
    # every member's entry): submissions that failed (outcomes sort around 'submitted'), runs FAILED
    _FAILED_MEMBER = ("SELECT seq FROM batch_members WHERE batch = (SELECT seq FROM records WHERE address = ?1) "
                      "AND outcome < 'submitted' UNION ALL "
                      "SELECT seq FROM batch_members WHERE batch = (SELECT seq FROM records WHERE address = ?1) "
                      "AND outcome > 'submitted' UNION ALL "
                      "SELECT seq FROM batch_members WHERE batch = (SELECT seq FROM records WHERE address = ?1) "
                      "AND outcome = 'submitted' AND status = 'FAILED'")

    def member_failures(self, batch_address: str, limit: int | None = None) -> tuple[int, list[tuple]]:
        """(how many, the first `limit` (all: None) in ledger order) of the batch's members whose
        submission failed or whose run's latest status is FAILED, each as (address, run_id,
        run_setting_id, outcome, error code, error message, "STATUS\x1fREASON")."""
        count = self.conn.execute(f"SELECT count(*) FROM ({self._FAILED_MEMBER})",
                                  (batch_address,)).fetchone()[0]
        latest = self._LATEST.format(what="o.status || char(31) || coalesce(json_extract(o.body, '$.failureReason'), "
                                          "json_extract(o.body, '$.statusMessage'), '')")
        rows = self.conn.execute(
            "SELECT r.address, r.run_id, json_extract(r.body, '$.batch.run_setting_id'), r.outcome, "
            "json_extract(r.body, '$.outcome.error.code'), json_extract(r.body, '$.outcome.error.message'), "
            f"{latest} FROM records r WHERE r.seq IN ({self._FAILED_MEMBER}) "
            f"ORDER BY r.seq LIMIT {-1 if limit is None else int(limit)}", (batch_address,)).fetchall()
        return count, rows

    def deleted_members(self, batch_address: str, statuses: tuple[str, ...]
                        ) -> list[tuple[str, str | None, str | None, str]]:
        """The batch's members whose run was deleted (latest status DELETED) after an
        observation saw it end with one of `statuses` (DeleteRunBatch of a finished batch), in
        ledger order, each as (address, run_id, run_setting_id, the reason the latest such
        observation gives, "" for none): the failures `runlog show B` still lists once the runs
        are gone, and the runs `replay B --only failed` still selects."""
        marks = ",".join("?" * len(statuses))
        return self.conn.execute(
            "SELECT r.address, r.run_id, json_extract(r.body, '$.batch.run_setting_id'), (SELECT "
            "coalesce(json_extract(o.body, '$.failureReason'), json_extract(o.body, '$.statusMessage'), '') "
            f"FROM observations o WHERE o.record = r.address AND o.status IN ({marks}) ORDER BY o.seq DESC LIMIT 1) "
            f"FROM batch_members m JOIN records r ON r.seq = m.seq WHERE m.batch = {self._BATCH_SEQ} "
            "AND m.status = 'DELETED' AND EXISTS (SELECT 1 FROM observations o WHERE o.record = r.address "
            f"AND o.status IN ({marks})) ORDER BY m.seq",
            (*statuses, batch_address, *statuses)).fetchall()

    def member_settings_with_status(self, batch_address: str, statuses: tuple[str, ...]) -> list[str]:
        """run_setting_ids of the batch's members whose run's latest status is one of `statuses`."""
        marks = ",".join("?" * len(statuses))
        return [row[0] for row in self.conn.execute(
            "SELECT json_extract(r.body, '$.batch.run_setting_id') FROM batch_members m JOIN records r "
            f"ON r.seq = m.seq WHERE m.batch = {self._BATCH_SEQ} AND m.status IN ({marks}) ORDER BY m.seq",
            (batch_address, *statuses))]

    def with_runs(self) -> list[Entry]:
        """Records that started a run (they have a run id), newest first."""
        return self.entries(where="run_id IS NOT NULL")

    def by_run_uuid(self, run_uuid: str) -> Entry | None:
        """The newest record of the run with this uuid, if any."""
        found = self.entries(1, where="run_uuid = ?", params=(run_uuid,))
        return found[0] if found else None

    def _fill_status(self, entries: list[Entry]) -> None:
        if not entries:
            return
        by_address = {e.address: e for e in entries}
        marks = ",".join("?" * len(by_address))
        rows = self.conn.execute(
            f"SELECT record, status, observed_at FROM (SELECT record, status, observed_at, row_number() OVER "
            f"(PARTITION BY record ORDER BY {BATCH_STATUS_FIRST}{STATUS_ORDER}) AS position FROM observations "
            "WHERE record IN "
            f"({marks}) AND status IS NOT NULL) WHERE position = 1",
            tuple(by_address),
        )
        latest = {record: (status, seen) for record, status, seen in rows.fetchall()}
        # never observed: the status in the service's answer, taken by SQLite from a body not
        # yet parsed; a batch's from its view (its body holds its whole cohort: json_extract
        # would parse 14 MB for a 100 000-run batch)
        unparsed = [e.address for e in entries if e.address not in latest and e._record is None]
        answered: dict[str, Any] = {}
        for start in range(0, len(unparsed), 500):  # within SQLite's limit on parameters
            part = unparsed[start:start + 500]
            answered.update(self.conn.execute(  # a batch's from its view: its body holds the cohort
                f"SELECT address, json_extract({LISTING_BODY}, "
                f"'$.outcome.response.status') FROM records WHERE address IN ({','.join('?' * len(part))})",
                part).fetchall())
        for entry in entries:
            if entry.address in latest:
                entry.status, entry.status_as_of = latest[entry.address]
                continue
            response = {"status": answered.get(entry.address)} if entry._record is None \
                else entry.record["outcome"].get("response") or {}
            entry.status = response.get("status") or (
                entry.outcome.upper() if entry.outcome in ("rejected", "abandoned") else None)
            entry.status_as_of = entry.created

    def get(self, address: str, *, whole: bool = True) -> Entry | None:
        """The record at `address`; whole=False: a batch record as its view (see resolve)."""
        found = self.entries(where="address = ?", params=(address,),
                             columns=RECORD_COLUMNS if whole else LISTING_COLUMNS)
        return found[0] if found else None

    def resolve(self, ref: str, *, whole: bool = True, outline: bool = False) -> Entry:
        """Find the one record a REF names: @N (N-th newest), a run ARN, a run uuid, a run id,
        or a unique prefix (at least 6 hex characters) of a record address. With whole=False
        a batch record's entry holds its view as its body, as in `listing` (`show` and
        `diff` of batches: a 100 000-run cohort is neither read nor decoded); with
        outline=True, its outline (batch_outline: what `refresh` needs, neither the cohort
        nor its inputs' identities), parsed here so that its status is read from it."""
        candidates = self.candidates(ref, columns=OUTLINE_COLUMNS if outline
                                     else RECORD_COLUMNS if whole else LISTING_COLUMNS)
        if not candidates:
            raise UsageError(
                f"no record matches {ref!r} (give a run's or a batch's id, uuid or ARN, @N for the N-th newest, "
                "or at least 6 hex characters of a record address; `log()` lists them)"
            )
        if len(candidates) > 1:
            candidates = self._original_of_one_run(candidates)
        if len(candidates) > 1:
            listed = ", ".join(
                f"{e.address[:12]} ({'batch ' + str(e.batch_id) if e.kind == 'batch' else 'run ' + (e.run_id or '-')}, "
                f"{e.created})" for e in candidates[:10]
            )
            more = f" and {len(candidates) - 10} more" if len(candidates) > 10 else ""
            raise UsageError(f"{ref!r} is ambiguous: it matches {listed}{more}; give more of the record address")
        if outline and candidates[0].kind == "batch":
            candidates[0].record  # noqa: B018 (parsed now, 2 KB: _fill_status reads its status from it, not the view)
        self._fill_status(candidates)
        return candidates[0]

    def without_imported_twins(self, entries: list[Entry]) -> list[Entry]:
        """`entries` less each record `import` made of a run or batch whose record runlog made
        when it started it is among them too (_original_of_one_run), in their order: what
        `refresh` asks about once, not twice (a ledger that imported, then pulled)."""
        groups: dict[str, list[Entry]] = {}
        for entry in entries:
            key = _run_or_batch(entry)
            if key is not None:
                groups.setdefault(key, []).append(entry)
        imported_batches: dict[str, bool] = {}  # a member's batch record: imported? (asked once)
        dropped = {id(entry) for group in groups.values() if len(group) > 1
                   for kept in [self._original_of_one_run(group, imported_batches)] if len(kept) == 1
                   for entry in group if entry is not kept[0]}
        return [entry for entry in entries if id(entry) not in dropped]

    def imported_twins(self, entries: list[Entry]) -> list[Entry]:
        """Of `entries`, the `import` records and imported batches whose run or batch the
        ledger also holds as the record runlog made when it started it (a ledger that imported,
        then pulled): what `log` leaves out, so that each run is listed once. Two indexed
        queries find the run uuids and batch ids held more than once; only their records are
        read and compared. Member runs are not looked at."""
        def held_twice(column: str, values: set[str], kind: str = "") -> set[str]:
            if not values:
                return set()
            return {row[0] for row in self.conn.execute(
                f"SELECT {column} FROM records WHERE {column} IN (SELECT value FROM json_each(?)){kind} "
                f"GROUP BY {column} HAVING count(*) > 1", (json.dumps(sorted(values)),))}

        uuids = held_twice("run_uuid", {e.run_uuid for e in entries if e.kind == "import" and e.run_uuid})
        batches = held_twice("batch_id", {e.batch_id for e in entries if e.kind == "batch" and e.batch_id},
                             " AND kind = 'batch'")
        twins = []
        for entry in entries:
            if entry.kind == "import" and entry.run_uuid in uuids:
                group = self._entry_where("run_uuid = ?", (entry.run_uuid,), columns=LISTING_COLUMNS)
            elif entry.kind == "batch" and entry.batch_id in batches:
                group = self._entry_where("batch_id = ? AND kind = 'batch'", (entry.batch_id,), columns=LISTING_COLUMNS)
            else:
                continue
            kept = self._original_of_one_run(group)
            if len(kept) == 1 and kept[0].address != entry.address:
                twins.append(entry)
        return twins

    def _original_of_one_run(self, candidates: list[Entry],
                             imported_batches: dict[str, bool] | None = None) -> list[Entry]:
        """Of records a REF matches that are all one run (one run uuid) or one batch (one batch
        uuid): the one runlog recorded when it started it, when the others are what `import`
        made of it from the service (a ledger that imported runs and then pulled the ledger that
        submitted them holds both, each true). Else the candidates as they are.
        `imported_batches` keeps, across calls, whether a member's batch record was imported."""
        known = imported_batches if imported_batches is not None else {}

        def imported(entry: Entry) -> bool:
            if entry.kind in ("import", "batch"):
                return entry.kind == "import" or entry.record.get("source_batch") is not None
            if entry.kind == "member":
                address = (entry.record.get("batch") or {}).get("record") or ""
                if address not in known:
                    batch = self.get(address, whole=False)
                    known[address] = batch is not None and batch.record.get("source_batch") is not None
                return known[address]
            return False

        keys = {_run_or_batch(entry) for entry in candidates}
        if len(keys) != 1 or None in keys:
            return candidates
        started = [entry for entry in candidates if not imported(entry)]
        return started if len(started) == 1 else candidates

    def candidates(self, ref: str, columns: str = RECORD_COLUMNS) -> list[Entry]:
        def find(where: str, params: tuple = (), **more: Any) -> list[Entry]:
            return self._entry_where(where, params, columns=columns, **more)

        ref = ref.strip()
        if not ref:
            return []
        if ref.startswith("@") and ref[1:].isdecimal():  # @N (isdecimal: what the pattern \d matches)
            digits = ref[1:]
            # @N beyond any ledger (SQLite offsets stop at 2**63 - 1) names no record
            n = int(digits) if len(digits) <= 18 else 0
            return find("1", limit=1, offset=n - 1) if n >= 1 else []
        from runlog.arn import batch_id_of_arn, parse_run_arn

        batch_id = batch_id_of_arn(ref)
        if batch_id:  # a batch's ARN (runlog/batch.py), checked whole: ids may repeat in other accounts
            return [e for e in find("batch_id = ? AND kind = 'batch'", (batch_id,))
                    if (e.record["outcome"].get("response") or {}).get("arn") == ref]
        if ref.startswith("arn:"):
            by_arn = find("run_arn = ? AND kind != 'member'", (ref,))
            arn = parse_run_arn(ref)
            if arn is not None:  # member runs (m006): through the run id their ARN ends with
                by_arn += find("run_id = ? AND +run_arn = ? AND kind = 'member'", (arn.run_id, ref))
            return sorted(by_arn, key=lambda e: (e.created, e.seq), reverse=True)
        if re.match(UUID_PATTERN, ref):
            return find("run_uuid = ?", (ref.lower(),)) or find(  # a batch's uuid: in its view, not its cohort
                "kind = 'batch' AND address IN (SELECT record FROM batch_views WHERE "
                "json_extract(view, '$.outcome.response.uuid') = ?)", (ref.lower(),))
        found: list[Entry] = []
        if ref.isdigit():
            found = find("run_id = ?", (ref,)) or \
                find("batch_id = ? AND kind = 'batch'", (ref,))
        if not found and re.match(HEX_PATTERN, ref):
            low = ref.lower()
            found = find("address >= ? AND address < ?", (low, low + "g"), order="address")
        return found

    def observations(self, address: str) -> list[dict]:
        rows = self.conn.execute(
            "SELECT seq, observed_at, source, status, body FROM observations WHERE record = ? ORDER BY seq",
            (address,),
        )
        return [
            {"seq": seq, "observed_at": at, "source": source, "status": status, "body": json.loads(body)}
            for seq, at, source, status, body in rows
        ]

    def completed_like(self, fingerprint: str) -> Entry | None:
        """The newest run of the same configuration (fingerprint) last seen COMPLETED."""
        for entry in self.same_configuration(fingerprint, 50):
            if entry.status == "COMPLETED":
                return entry
        return None

    def replays_of(self, address: str) -> list[Entry]:
        return self.entries(where="replay_of = ?", params=(address,))

    # Which attempts have no record is found on the two request_id indexes alone; only the
    # pending attempts' rows are read (scanning the attempts table itself read every intent:
    # most of a big ledger's file, on every command that opens it).
    _PENDING_SQL = (f"SELECT {INTENT_COLUMNS} FROM attempts WHERE seq IN (SELECT a.seq FROM attempts a WHERE "
                    "NOT EXISTS (SELECT 1 FROM records r WHERE r.request_id = a.request_id)) ORDER BY seq")

    def pending(self) -> list[dict]:
        """Intents whose attempt has no record yet, oldest first, found from the attempts and
        records themselves (what `recover` completes and `verify` counts)."""
        return [json.loads(attempt_intent(*row)) for row in self.conn.execute(self._PENDING_SQL)]

    # The attempts pending() finds, from the table triggers keep (migration m005): one lookup
    # per pending attempt, whatever the ledger's size. CROSS JOIN keeps SQLite from scanning
    # every attempt in seq order (the ORDER BY) instead.
    _PENDING_IDS_SQL = ("SELECT a.request_id FROM pending_attempts p CROSS JOIN attempts a "
                        "ON a.request_id = p.request_id ORDER BY a.seq")

    def pending_request_ids(self) -> list[str]:
        """The request ids of the attempts that have no record yet, oldest first: the attempts
        pending() finds, read from `pending_attempts`, which triggers keep in the transaction
        that adds an attempt or a record. For the warning every command gives on opening."""
        return [row[0] for row in self.conn.execute(self._PENDING_IDS_SQL)]

    def by_addresses(self, addresses: list[str]) -> list[Entry]:
        """The records with these addresses (newest first), each with its latest status."""
        found: list[Entry] = []
        for start in range(0, len(addresses), 500):  # within SQLite's limit on parameters
            part = addresses[start:start + 500]
            found += self._entry_where(f"address IN ({','.join('?' * len(part))})", tuple(part))
        self._fill_status(found)
        return found

    def by_request_id(self, request_id: str) -> Entry | None:
        """The record of the attempt with this requestId, if it has one."""
        found = self._entry_where("request_id = ?", (request_id,))
        self._fill_status(found)
        return found[0] if found else None

    def request_id_used(self, request_id: str) -> bool:
        """True when an attempt with this requestId was ever made in this ledger."""
        return self.conn.execute("SELECT 1 FROM attempts WHERE request_id = ?", (request_id,)).fetchone() is not None

    def is_pending(self, request_id: str) -> bool:
        """True while the attempt with this requestId has no record."""
        return self.conn.execute(
            "SELECT 1 FROM attempts a WHERE a.request_id = ? AND NOT EXISTS "
            "(SELECT 1 FROM records r WHERE r.request_id = a.request_id)", (request_id,)).fetchone() is not None

    def addresses(self) -> set[str]:
        """Every record's address."""
        return {row[0] for row in self.conn.execute("SELECT address FROM records")}

    def blob_holders(self) -> Iterator[tuple[str, str]]:
        """(address, canonical JSON) of each batch record that may hold part of its cohort by
        reference (runlog/blobs.py: its body names a `..._blob` member), in ledger order."""
        from runlog.blobs import MARKER

        yield from self.conn.execute("SELECT address, body FROM records WHERE kind = 'batch' "
                                     "AND instr(body, ?) ORDER BY seq", (MARKER,))

    _STARTED_RUNS = ("kind IN (" + ", ".join(f"'{kind}'" for kind in startrules.RUN_KINDS) + ") "
                     "AND outcome = 'submitted'")
    # (a body that is no JSON, in a ledger file edited by hand, is no start: verify names it otherwise)
    _STARTED_BATCHES = ("kind = 'batch' AND outcome = 'submitted' AND CASE WHEN json_valid(body) THEN "
                        "coalesce(json_type(body, '$.source_batch'), 'null') = 'null' END")
    _BATCH_UUID = "CASE WHEN json_valid(body) THEN json_extract(body, '$.outcome.response.uuid') END"

    def started_keys(self, runs: bool = True) -> set[startrules.Started]:
        """What the ledger's records say runlog started (startrules.started): the batches, and
        with `runs` the runs (a scan of every record: a ledger whose run uuids are indexed
        looks each one up instead, `starters`)."""
        keys: set[startrules.Started] = set()
        if runs:
            keys.update(("run", row[0]) for row in self.conn.execute(
                f"SELECT run_uuid FROM records WHERE run_uuid IS NOT NULL AND {self._STARTED_RUNS}"))
        keys.update(("batch", uuid) for uuid, _, _ in self._started_batches())
        return keys

    def starters(self, what: startrules.Started) -> list[tuple[int, str]]:
        """The records (seq, address), oldest first, that say they started `what`
        (startrules.started)."""
        if what[0] == "run":
            return self.conn.execute(f"SELECT seq, address FROM records WHERE run_uuid = ? AND {self._STARTED_RUNS} "
                                     "ORDER BY seq", (what[1],)).fetchall()
        return [(seq, address) for uuid, seq, address in self._started_batches() if uuid == what[1]]

    def started_twice(self) -> list[tuple[startrules.Started, list[tuple[int, str]]]]:
        """Each run or batch that more than one record says it started, with those records
        (seq, address) oldest first. The run uuids held more than once are found first, from
        their index alone."""
        found: dict[startrules.Started, list[tuple[int, str]]] = {}
        rows = self.conn.execute(
            f"SELECT run_uuid, seq, address FROM records WHERE run_uuid IN (SELECT run_uuid FROM records WHERE "
            f"run_uuid IS NOT NULL GROUP BY run_uuid HAVING count(*) > 1) AND {self._STARTED_RUNS} ORDER BY seq")
        for uuid, seq, address in rows:
            found.setdefault(("run", uuid), []).append((seq, address))
        for uuid, seq, address in self._started_batches():  # a batch's uuid, whatever batch id its record says
            found.setdefault(("batch", uuid), []).append((seq, address))
        return [(what, held) for what, held in found.items() if len(held) > 1]

    def _started_batches(self) -> list[tuple[str, int, str]]:
        """(uuid, seq, address) of each batch record that says it started its batch, oldest first."""
        return [row for row in self.conn.execute(
            f"SELECT {self._BATCH_UUID}, seq, address FROM records WHERE seq IN (SELECT seq FROM records WHERE "
            f"batch_id IS NOT NULL AND kind = 'batch') AND {self._STARTED_BATCHES} ORDER BY seq")
            if type(row[0]) is str]

    def started_in_another_form(self) -> list[tuple[int, str, startrules.Started]]:
        """(seq, address, what) of each record that says it started a run or batch whose uuid
        is not as HealthOmics writes one (startrules.form_problem)."""
        rows = [(seq, address, ("run", uuid)) for uuid, seq, address in self.conn.execute(
            f"SELECT run_uuid, seq, address FROM records WHERE run_uuid IN (SELECT run_uuid FROM records WHERE "
            f"run_uuid IS NOT NULL AND run_uuid != lower(trim(run_uuid))) AND {self._STARTED_RUNS}")]
        rows += [(seq, address, ("batch", uuid)) for uuid, seq, address in self._started_batches()
                 if startrules.form_problem(("batch", uuid))]
        return sorted(rows)

    def request_ids(self) -> set[str]:
        """The requestId of every record that has one."""
        return {row[0] for row in self.conn.execute("SELECT request_id FROM records WHERE request_id IS NOT NULL")}

    def run_creation_times(self) -> dict[str, list[tuple[str, str | None]]]:
        """For each run ARN in the ledger, one (record created, service creationTime or None)
        per record of it. The service's time comes from an import record's source_run or an
        observation (GetRun) of the run; run ids, and so ARNs, are reused after a deletion."""
        rows = self.conn.execute(
            "SELECT r.run_arn, r.created, coalesce(json_extract(r.body, '$.source_run.creationTime'), "
            " (SELECT json_extract(o.body, '$.creationTime') FROM observations o WHERE o.record = r.address "
            "  AND json_extract(o.body, '$.creationTime') IS NOT NULL ORDER BY o.seq LIMIT 1)) "
            "FROM records r WHERE r.run_arn IS NOT NULL"
        )
        found: dict[str, list[tuple[str, str | None]]] = {}
        for arn, created, creation_time in rows:
            found.setdefault(arn, []).append((created, creation_time))
        return found

    def workflow_order(self) -> list[tuple[str, str | None]]:
        """(address, workflow id) of every record, newest first: from the lookup columns only,
        so that finding the previous run of a workflow never reads a record's body."""
        return self.conn.execute(f"SELECT address, workflow_id FROM records ORDER BY {self.NEWEST_FIRST}").fetchall()

    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta").fetchall())


def _without_request_id(request: dict) -> dict:
    return {k: v for k, v in request.items() if k != "requestId"}


# The ledger files this process uses (their real paths): opened by Ledger.open, or claimed
# by the command line and runlog.Runlog as soon as they know which ledger they will use. Git
# capture leaves them and their -wal, -shm and -journal files out of a repository's untracked
# files: they are runlog's state, not the analysis (hashed, their changing bytes would read
# as changed code at every replay), and opening them here would drop this process's POSIX
# locks on the ledger (see _check_header).
_CLAIMED: set[str] = set()
SIDECARS = ("-wal", "-shm", "-journal")


class _Checked(Exception):
    """Ledger.check_writable's way out of the transaction it rolls back."""


def claim(path: str | Path) -> None:
    """Note that this process uses the ledger at `path` (see _CLAIMED)."""
    _CLAIMED.add(os.path.realpath(os.fspath(path)))


def is_claimed(path: str | Path) -> bool:
    """Whether `path` is a ledger file this process uses, or one of its -wal, -shm, -journal files."""
    real = os.path.realpath(os.fspath(path))
    return real in _CLAIMED or any(real.endswith(end) and real[:-len(end)] in _CLAIMED for end in SIDECARS)


def _check_header(path: Path, readonly: bool = False) -> None:
    """Refuse, before SQLite opens it, a path that cannot be a ledger (with `readonly`, also an
    empty file). The file itself is never
    opened here: POSIX locks belong to the process, and closing any descriptor of a file drops
    every lock this process's SQLite connections hold on it (another Ledger on the same file, a
    writer's second connection). Its size is enough for what SQLite would get wrong (a short
    foreign file it would take for an empty database and then write to); the content of a
    larger file is judged by SQLite itself (SQLITE_NOTADB, see `_not_sqlite`)."""
    try:
        info = path.stat()
    except OSError as exc:
        raise LedgerError(f"cannot read ledger {path}: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise LedgerError(f"ledger path {path} is a directory; give a file path")
    if not stat.S_ISREG(info.st_mode):  # a FIFO, a device (/dev/null): size 0, yet no empty ledger
        raise _not_sqlite(path)
    if not info.st_size:
        if readonly:
            raise _empty(path)
        return
    if info.st_size < SQLITE_SMALLEST:
        raise _not_sqlite(path)


def _empty(path: Path) -> LedgerError:
    """An empty file (or an SQLite database with nothing in it) where a ledger should be."""
    try:
        bare = path.stat().st_size == 0
    except OSError:
        bare = False
    if bare:
        return LedgerError(f"ledger {path} is empty (0 bytes), not a runlog ledger; it was left untouched "
                           "(if it held records, restore it from a backup)")
    return LedgerError(f"{path} is an empty SQLite database, not a runlog ledger (nothing has been recorded "
                       "in it); it was left untouched")


# An SQLite database file is a whole number of pages, and a page is at least 512 bytes.
SQLITE_SMALLEST = 512


def _not_sqlite(path: Path) -> LedgerError:
    return LedgerError(f"{path} is not a runlog ledger (not an SQLite database); it was left untouched")


def cannot_read(path: Path, exc: Exception) -> str:
    """The one line for a ledger SQLite cannot read (a corrupt page, a truncated file)."""
    return (f"cannot read ledger {path}: {exc}; the file was left untouched "
            "(restore it from a backup, or `pull()` from your team ledger)")


def file_identity(path: str | Path) -> tuple[int, int] | None:
    """The file at `path` as (device, inode); None when there is none."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def same_file(path: str | Path, expected: tuple[int, ...] | None) -> bool:
    """Whether the file at `path` is `expected` (a Ledger.file_identity): what a worker
    process asks before and after it opens the ledger again by its path (open_same_file,
    refreshpipe.open_same_ledger), so that a file renamed into its place is never the ledger."""
    return expected is not None and file_identity(path) == tuple(expected)


def open_same_file(path: str | Path, expected: tuple[int, int] | None) -> sqlite3.Connection | None:
    """A read-only connection to the ledger file at `path` for a worker process, or None when
    the file there is not `expected` (Ledger.file_identity of the connection that sent the
    worker), before or after it is opened (same_file)."""
    if not same_file(path, expected):
        return None
    try:
        conn = sqlite3.connect(sqlite_uri(path, "ro"), uri=True)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opened now, not at the first read
    except sqlite3.Error:
        return None
    if not same_file(path, expected):
        conn.close()
        return None
    return conn


def sqlite_uri(path: str | Path, mode: str = "ro") -> str:
    """A `file:` URI for path: every character SQLite's URI parser gives a meaning to
    (`%`, `?`, `#`, ...) is %-escaped, so the URI names exactly this file."""
    return f"file:{quote(os.path.abspath(path), safe='/')}?mode={mode}"


# Tables whose every row carries a seal (row_seals, migration m003): the SHA-256 of the
# canonical JSON of {"table": name, "row": {column: value, ... for every non-NULL column}}.
# The value is the row's key column, as text, in row_seals.id.
SEALED = {"records": "seq", "attempts": "seq", "observations": "seq", "meta": "key"}


# Columns a seal leaves out because a digest in the same row covers them (and verify checks
# that digest): the seal covers the digest, the digest covers the column. Keeps sealing and
# verifying cheap (no second pass over each record's body).
# A record's lookup columns and chain are recomputed from its body by verify, so its seal
# covers what nothing else does: seq, address (and so the body) and inserted_at, plus any
# column a later migration adds.
SEAL_SKIPS = {
    "records": ("body", "chain", "kind", "created", "outcome", "request_id", "run_id", "run_uuid", "run_arn",
                "workflow_id", "name", "git_commit", "fingerprint", "replay_of", "batch_id"),
    "attempts": ("intent", "intent_zlib"),
    "observations": ("body",),
}


def row_seal(table: str, row: dict[str, Any]) -> str:
    """A row's seal. NULL columns are left out, so that a column added later by a migration
    (NULL in old rows) keeps old seals valid."""
    return seal_of(table, row.keys(), row.values())


def seal_of(table: str, names: Iterable[str], values: Iterable[Any]) -> str:
    """row_seal for a row given as its column names and values."""
    return sealer(table, tuple(names))(tuple(values))


@lru_cache(maxsize=64)
def sealer(table: str, names: tuple[str, ...]) -> Callable[[tuple], str]:
    """The seal of rows of `table` given as value tuples in the order of `names` (longer
    tuples are fine: what follows is not part of the row). The seal is the SHA-256 of
    record.canonical_json({"row": {column: value, ...}, "table": table}) over the columns
    SEAL_SKIPS leaves in and that are not NULL; the JSON is written here, column by column,
    exactly as the json module writes it (its own string encoder, int and float repr), which
    spares verify a dict and an encoder call per row (tests/test_ledger.py compares the two)."""
    from hashlib import sha256  # here: the read commands never seal

    skip = SEAL_SKIPS.get(table, ())
    columns = [(at, _json_string(name) + ":") for name, at in sorted(
        (name, at) for at, name in enumerate(names) if name not in skip)]
    suffix = '},"table":' + _json_string(table) + "}"

    def seal(values: tuple) -> str:
        parts = []
        for at, key in columns:
            value = values[at]
            if value is None:
                continue
            kind = type(value)
            if kind is str:
                parts.append(key + _json_string(value))
            elif kind is int:
                parts.append(key + int.__repr__(value))
            elif kind is float and math.isfinite(value):
                parts.append(key + float.__repr__(value))
            elif kind is bool:
                parts.append(key + ("true" if value else "false"))
            else:  # as the json module: no bytes, no NaN or infinity
                raise TypeError(f"a seal covers text, numbers and NULL, not {kind.__name__} {value!r:.40}")
        return sha256(('{"row":{' + ",".join(parts) + suffix).encode("utf-8")).hexdigest()

    return seal


def table_rows(conn: sqlite3.Connection, table: str, where: str = "1", params: tuple = ()) -> Iterator[dict]:
    """Every column of each matching row, as a dict."""
    cursor = conn.execute(f"SELECT * FROM {table} WHERE {where}", params)
    names = [d[0] for d in cursor.description]
    for values in cursor:
        yield dict(zip(names, values, strict=True))


def sealed_columns(conn: sqlite3.Connection, table: str, where: str = "1", params: tuple = ()) -> Iterator[dict]:
    """table_rows without the columns a seal leaves out (SEAL_SKIPS): the same seal, without
    reading back what a digest in the row covers (a batch's record or intent: tens of MB)."""
    skip = SEAL_SKIPS.get(table, ())
    names = [d[0] for d in conn.execute(f"SELECT * FROM {table} LIMIT 0").description if d[0] not in skip]
    cursor = conn.execute(f"SELECT {', '.join(names)} FROM {table} WHERE {where}", params)
    for values in cursor:
        yield dict(zip(names, values, strict=True))


def seal_rows(conn: sqlite3.Connection, table: str, where: str = "1", params: tuple = ()) -> int:
    """Store the seal of each matching row that has none (inside the caller's transaction).
    Used as rows are inserted, and by migration m003 for the rows of older ledgers."""
    key = SEALED[table]
    held = {r[0] for r in conn.execute("SELECT id FROM row_seals WHERE tbl = ?", (table,))} \
        if where == "1" else set()
    seals = [(table, str(row[key]), row_seal(table, row)) for row in sealed_columns(conn, table, where, params)
             if str(row[key]) not in held]
    conn.executemany("INSERT OR IGNORE INTO row_seals (tbl, id, sha256) VALUES (?, ?, ?)", seals)
    return len(seals)


def _create_private(path: Path) -> None:
    """Create the ledger file (0600) and any missing directories (0700). A new `.runlog`
    directory gets a .gitignore so the ledger never dirties the analysis repository."""
    parent = path.parent
    if not parent.exists():
        try:
            parent.mkdir(mode=0o700, parents=True)
        except OSError as exc:
            raise LedgerError(f"cannot create ledger directory {parent}: {exc.strerror}") from None
        if parent.name == ".runlog":
            (parent / ".gitignore").write_text("# runlog's local ledger: not part of the analysis\n*\n")
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
    except FileExistsError:
        pass
    except OSError as exc:
        raise LedgerError(f"cannot create ledger {path}: {exc.strerror}") from None
