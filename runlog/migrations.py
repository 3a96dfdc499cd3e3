"""The ledger's schema, as a numbered list of small migrations.

`PRAGMA user_version` holds how many have been applied. A ledger whose user_version is
larger than len(MIGRATIONS) was written by a newer runlog and is refused, never altered.
Each migration runs in the same transaction as the user_version bump.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from runlog.ledger import FINGERPRINT_PREFIX

if TYPE_CHECKING:  # the ledger hands migrations a sqlite_utils.Database
    import sqlite_utils


def run_sql(db: sqlite_utils.Database, script: str) -> None:
    """Run several statements inside the caller's transaction (sqlite3's executescript
    would commit first)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            db.execute(buffer)
            buffer = ""
    if buffer.strip():
        raise ValueError(f"incomplete SQL statement: {buffer.strip()[:60]}")


def m001_initial(db: sqlite_utils.Database) -> None:
    """Records, attempts and observations; all three are append-only."""
    run_sql(
        db,
        """
        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        -- One row per content-addressed record. `body` is the canonical JSON; the other
        -- columns are copies of record fields for lookups, checked by `runlog verify`.
        -- `chain` = sha256(previous row's chain + this address): deletions and edits break it.
        CREATE TABLE records (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            address TEXT NOT NULL UNIQUE,
            body TEXT NOT NULL,
            chain TEXT NOT NULL,
            kind TEXT NOT NULL,
            created TEXT NOT NULL,
            outcome TEXT NOT NULL,
            request_id TEXT,
            run_id TEXT,
            run_uuid TEXT,
            run_arn TEXT,
            workflow_id TEXT,
            name TEXT,
            git_commit TEXT,
            fingerprint TEXT NOT NULL,
            replay_of TEXT,
            inserted_at TEXT NOT NULL
        );
        -- The intent to submit, committed before StartRun is called. An attempt whose
        -- request_id has no record is pending (the process died, or the service was unreachable).
        CREATE TABLE attempts (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            request_id TEXT NOT NULL UNIQUE,
            created TEXT NOT NULL,
            intent TEXT NOT NULL,
            intent_sha256 TEXT NOT NULL
        );
        -- Facts learned after submission (status, times, digests), appended, never edited.
        CREATE TABLE observations (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            record TEXT NOT NULL REFERENCES records(address),
            run_uuid TEXT,
            observed_at TEXT NOT NULL,
            source TEXT NOT NULL,
            status TEXT,
            body TEXT NOT NULL,
            sha256 TEXT NOT NULL
        );
        """
    )
    for table in ("records", "attempts", "observations"):
        run_sql(
            db,
            f"""
            CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
            BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END;
            CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
            BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END;
            """
        )
    records = db.table("records")
    for column in ("run_id", "run_uuid", "run_arn", "created", "fingerprint", "replay_of"):
        records.create_index([column], index_name=f"records_{column}")
    db.execute("CREATE UNIQUE INDEX records_request_id ON records(request_id) WHERE request_id IS NOT NULL")
    db.table("observations").create_index(["record", "seq"], index_name="observations_record")
    db.table("observations").create_index(["run_uuid"], index_name="observations_run_uuid")


def m002_observation_addresses(db: sqlite_utils.Database) -> None:
    """The content address of each observation as a team ledger stores it (runlog/sync.py):
    the SHA-256 of the canonical JSON of {record, run_uuid, observed_at, source, status, body}.
    Rows are added lazily (Ledger.index_observations) and when an observation is pulled, so a
    pull can tell in SQL which observations it already holds. Append-only like the rest."""
    run_sql(
        db,
        """
        CREATE TABLE observation_addresses (
            observation INTEGER PRIMARY KEY REFERENCES observations(seq),
            address TEXT NOT NULL
        );
        CREATE INDEX observation_addresses_address ON observation_addresses(address);
        CREATE TRIGGER observation_addresses_no_update BEFORE UPDATE ON observation_addresses
        BEGIN SELECT RAISE(ABORT, 'observation_addresses are append-only'); END;
        CREATE TRIGGER observation_addresses_no_delete BEFORE DELETE ON observation_addresses
        BEGIN SELECT RAISE(ABORT, 'observation_addresses are append-only'); END;
        """
    )


def m003_row_seals(db: sqlite_utils.Database) -> None:
    """A seal for every row of records, attempts, observations and meta: the SHA-256 over all
    of the row's columns (runlog.ledger.row_seal), written in the same transaction as the row.
    `runlog verify` recomputes each seal, so a column that no content address covers
    (observations.status, observed_at, source, record; attempts.created; records.inserted_at;
    meta) cannot be changed, nor a row added or removed, without verify naming it. Rows already
    in an older ledger are sealed as they are when it is migrated. Append-only like the rest."""
    from runlog.ledger import SEALED, seal_rows

    run_sql(
        db,
        """
        CREATE TABLE row_seals (
            tbl TEXT NOT NULL,
            id TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            PRIMARY KEY (tbl, id)
        ) WITHOUT ROWID;
        CREATE TRIGGER row_seals_no_update BEFORE UPDATE ON row_seals
        BEGIN SELECT RAISE(ABORT, 'row_seals are append-only'); END;
        CREATE TRIGGER row_seals_no_delete BEFORE DELETE ON row_seals
        BEGIN SELECT RAISE(ABORT, 'row_seals are append-only'); END;
        """
    )
    for table in SEALED:
        seal_rows(db.conn, table)


def m004_batch_id(db: sqlite_utils.Database) -> None:
    """Batches (docs/batch.md): records gain `batch_id`, the HealthOmics batch id of a batch
    record (once started) and of each member run's record, indexed with `kind` so that a
    batch's members and a batch named by its id are found without reading bodies. Derived
    from the record like the other lookup columns (verify checks it; older rows hold NULL).
    `log`'s newest-first listing without member runs gets a partial index of its own."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(records)").fetchall()}
    if "batch_id" not in columns:  # (a ledger whose user_version was set back by hand may have it)
        db.execute("ALTER TABLE records ADD COLUMN batch_id TEXT")
    db.execute("CREATE INDEX IF NOT EXISTS records_batch_id ON records(batch_id, kind) WHERE batch_id IS NOT NULL")
    # `runlog log` leaves members out (a batch may have 100 000): newest first without them
    db.execute("CREATE INDEX IF NOT EXISTS records_created_no_members ON records(created, seq) "
               "WHERE kind != 'member'")


def m005_pending_attempts(db: sqlite_utils.Database) -> None:
    """`pending_attempts`: the request id of each attempt that no record completes yet, kept
    by triggers in the same transaction as the attempt or the record that changes it, so that
    the warning every command gives on opening the ledger costs one lookup per pending attempt
    instead of one per attempt ever made. Derived, like an index: `attempts` and `records`
    stay the truth (`recover` and `verify` read them). Filled from them here, afresh if the
    table is already there (a ledger whose user_version was set back by hand)."""
    run_sql(
        db,
        """
        CREATE TABLE IF NOT EXISTS pending_attempts (
            request_id TEXT PRIMARY KEY
        ) WITHOUT ROWID;
        CREATE TRIGGER IF NOT EXISTS attempts_pending AFTER INSERT ON attempts
        WHEN NOT EXISTS (SELECT 1 FROM records WHERE request_id = NEW.request_id)
        BEGIN INSERT OR IGNORE INTO pending_attempts (request_id) VALUES (NEW.request_id); END;
        CREATE TRIGGER IF NOT EXISTS records_complete_attempt AFTER INSERT ON records
        WHEN NEW.request_id IS NOT NULL
        BEGIN DELETE FROM pending_attempts WHERE request_id = NEW.request_id; END;
        DELETE FROM pending_attempts;
        INSERT INTO pending_attempts (request_id) SELECT a.request_id FROM attempts a
        WHERE NOT EXISTS (SELECT 1 FROM records r WHERE r.request_id = a.request_id);
        """
    )


def m006_lighter_member_indexes(db: sqlite_utils.Database) -> None:
    """Fewer index entries per member run and per status (a batch may have 100 000 of each,
    and every entry on a random key costs a page of the index written per transaction):
    `observations_run_uuid`, which no query reads, is dropped; `records_run_arn` leaves member
    runs out (a member's ARN is found through its run id, which the ARN ends with, and the run
    id's index); `records_replay_of` holds only the records that are replays. Indexes only:
    the rows, their seals and the chain are untouched."""
    run_sql(
        db,
        """
        DROP INDEX IF EXISTS observations_run_uuid;
        DROP INDEX IF EXISTS records_run_arn;
        CREATE INDEX records_run_arn ON records(run_arn) WHERE kind != 'member';
        DROP INDEX IF EXISTS records_replay_of;
        CREATE INDEX records_replay_of ON records(replay_of) WHERE replay_of IS NOT NULL;
        """
    )


# The latest status of a record's run, as runlog.ledger.STATUS_ORDER chooses it (written out:
# the trigger's SQL must stay what this migration made, verify compares it with a fresh ledger's).
_MEMBER_LATEST = """(SELECT o.status FROM observations o WHERE o.record = {address} AND o.status IS NOT NULL
    ORDER BY CASE WHEN o.status = 'DELETED' THEN 2 WHEN o.status IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN 1
    ELSE 0 END DESC, julianday(coalesce(json_extract(o.body, '$.stopTime'), json_extract(o.body, '$.startTime'),
    json_extract(o.body, '$.creationTime'))) DESC, julianday(o.observed_at) DESC, o.seq DESC LIMIT 1)"""


def m007_batch_members(db: sqlite_utils.Database) -> None:
    """`batch_views` and `batch_members`, derived tables kept by triggers in the transaction
    that adds the row they derive from. `batch_views`: each batch record without its settings
    file's content (and how many run settings that content holds), so that `runlog show B` and
    `runlog diff B1 B2` read a few kilobytes instead of decoding the whole cohort (28 MB for
    100 000 runs). `batch_members`: one row per member record (its batch record's address, created and seq
    for log's order, its outcome and its run's latest status), kept by two triggers in the
    transaction that adds the member or an observation of it, so that `runlog show B` counts a
    100 000-run batch by submission and run status from an index instead of reading every
    member's body and observations, and `runlog log --batch B` pages through it. Derived, like
    an index: records and observations stay the truth (verify checks that it agrees with
    them). Filled from them here, afresh if it is already there."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(batch_members)").fetchall()}
    if columns and "record" not in columns:  # m008's table, in a ledger whose user_version was set back by hand
        run_sql(db, """
        DROP TRIGGER IF EXISTS records_batch_member;
        DROP TRIGGER IF EXISTS observations_member_status;
        DROP TRIGGER IF EXISTS records_batch_adopt;
        DROP TABLE batch_members;
        """)
    latest_new = _MEMBER_LATEST.format(address="NEW.address")
    latest_record = _MEMBER_LATEST.format(address="NEW.record")
    latest_row = _MEMBER_LATEST.format(address="r.address")
    run_sql(
        db,
        f"""
        CREATE TABLE IF NOT EXISTS batch_members (
            record TEXT PRIMARY KEY,
            batch TEXT NOT NULL,
            created TEXT NOT NULL,
            seq INTEGER NOT NULL,
            outcome TEXT NOT NULL,
            status TEXT
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS batch_members_order ON batch_members(batch, created, seq);
        CREATE INDEX IF NOT EXISTS batch_members_state ON batch_members(batch, outcome, status, seq);
        CREATE TABLE IF NOT EXISTS batch_views (
            record TEXT PRIMARY KEY,
            runs INTEGER,
            view TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE TRIGGER IF NOT EXISTS records_batch_view AFTER INSERT ON records
        WHEN NEW.kind = 'batch'
        BEGIN INSERT OR REPLACE INTO batch_views (record, runs, view)
        VALUES (NEW.address, json_array_length(NEW.body, '$.batch.settings_file.content'),
        json_remove(NEW.body, '$.batch.settings_file.content')); END;
        CREATE TRIGGER IF NOT EXISTS records_batch_member AFTER INSERT ON records
        WHEN NEW.kind = 'member'
        BEGIN INSERT OR REPLACE INTO batch_members (record, batch, created, seq, outcome, status)
        VALUES (NEW.address, json_extract(NEW.body, '$.batch.record'), NEW.created, NEW.seq, NEW.outcome,
        {latest_new}); END;
        CREATE TRIGGER IF NOT EXISTS observations_member_status AFTER INSERT ON observations
        WHEN NEW.status IS NOT NULL
        BEGIN UPDATE batch_members SET status = {latest_record} WHERE record = NEW.record; END;
        DELETE FROM batch_views;
        INSERT INTO batch_views (record, runs, view)
        SELECT address, json_array_length(body, '$.batch.settings_file.content'),
        json_remove(body, '$.batch.settings_file.content') FROM records WHERE kind = 'batch';
        DELETE FROM batch_members;
        INSERT INTO batch_members (record, batch, created, seq, outcome, status)
        SELECT r.address, json_extract(r.body, '$.batch.record'), r.created, r.seq, r.outcome, {latest_row}
        FROM records r WHERE r.kind = 'member';
        """
    )


# STATUS_ORDER's sort key of one observation {o}, as three columns (written out, like
# _MEMBER_LATEST: a trigger's SQL must stay what its migration made): the life-cycle rank,
# the service's time of the latest event, the time it was observed. The row order is the
# fourth part of the key (the observation's seq).
_STATUS_RANK = ("CASE WHEN {o}.status = 'DELETED' THEN 2 WHEN {o}.status IN ('COMPLETED', 'FAILED', 'CANCELLED') "
                "THEN 1 ELSE 0 END")
_STATUS_TIME = ("julianday(coalesce(json_extract({o}.body, '$.stopTime'), json_extract({o}.body, '$.startTime'), "
                "json_extract({o}.body, '$.creationTime')))")
# The seq of a record's latest status observation, chosen by the whole STATUS_ORDER.
_LATEST_SEQ = """(SELECT o.seq FROM observations o WHERE o.record = {address} AND o.status IS NOT NULL
    ORDER BY CASE WHEN o.status = 'DELETED' THEN 2 WHEN o.status IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN 1
    ELSE 0 END DESC, julianday(coalesce(json_extract(o.body, '$.stopTime'), json_extract(o.body, '$.startTime'),
    json_extract(o.body, '$.creationTime'))) DESC, julianday(o.observed_at) DESC, o.seq DESC LIMIT 1)"""


def _after(new: str, old: str) -> str:
    """SQL: `new` sorts before `old` in a DESC order, where NULL sorts last."""
    return f"({new} > {old} OR ({new} IS NOT NULL AND {old} IS NULL))"


def _member_status_newer(k: str, obs: str) -> str:
    """SQL: the status observation whose sort key is `k`.rank, .time, .seen and seq `obs`
    sorts before the one batch_members' row holds (m008's test, for any names)."""
    m = "batch_members"  # (an UPDATE in a trigger cannot name its table AS another)
    return (f"{m}.status_obs IS NULL OR {k}.rank > {m}.status_rank OR ({k}.rank = {m}.status_rank AND ("
            f"{_after(f'{k}.time', f'{m}.status_time')} OR ({k}.time IS {m}.status_time AND ("
            f"{_after(f'{k}.seen', f'{m}.status_seen')} OR ({k}.seen IS {m}.status_seen AND {obs} > {m}.status_obs)))))")


def _member_triggers(paused: str) -> tuple[str, str]:
    """SQL: m008's triggers `records_batch_member` and `observations_member_status`, with
    `paused` added to each WHEN (m014's test of member_triggers_paused; m008: nothing)."""
    rank_new, time_new = _STATUS_RANK.format(o="NEW"), _STATUS_TIME.format(o="NEW")
    rank_o, time_o = _STATUS_RANK.format(o="o"), _STATUS_TIME.format(o="o")
    records_member = f"""CREATE TRIGGER records_batch_member AFTER INSERT ON records
        WHEN NEW.kind = 'member'{paused}
        BEGIN INSERT OR REPLACE INTO batch_members
        (seq, batch, created, outcome, status, status_rank, status_time, status_seen, status_obs)
        SELECT NEW.seq, (SELECT b.seq FROM records b WHERE b.address = json_extract(NEW.body, '$.batch.record')),
        NEW.created, NEW.outcome, o.status, CASE WHEN o.seq IS NOT NULL THEN {rank_o} END, {time_o},
        julianday(o.observed_at), o.seq
        FROM (SELECT 1) LEFT JOIN observations o ON o.seq = {_LATEST_SEQ.format(address="NEW.address")}; END;"""
    observations_status = f"""CREATE TRIGGER observations_member_status AFTER INSERT ON observations
        WHEN NEW.status IS NOT NULL{paused}
        BEGIN UPDATE batch_members SET status = NEW.status, status_rank = k.rank, status_time = k.time,
        status_seen = k.seen, status_obs = NEW.seq
        FROM (SELECT {rank_new} AS rank, {time_new} AS time, julianday(NEW.observed_at) AS seen) AS k
        WHERE batch_members.seq = (SELECT r.seq FROM records r WHERE r.address = NEW.record)
        AND ({_member_status_newer("k", "NEW.seq")}); END;"""
    return records_member, observations_status


def m008_batch_members_by_seq(db: sqlite_utils.Database) -> None:
    """`batch_members` keyed by the member record's seq (an append, where m007's key, the
    member's address, put each row at a random place of a text index) with its batch as
    the batch record's seq (an integer in its two indexes, not 64 characters; NULL while the
    ledger lacks the batch record, filled in by a trigger when it arrives). Each row keeps
    the sort key (STATUS_ORDER) of the observation its status comes from: rank, service
    time, time observed, seq. A status observation then changes the row only when it sorts
    first against that key, one comparison instead of m007's re-reading every observation
    of the member, and the result is the same (verify recomputes it). Filled from records
    and observations here; the m007 table and its triggers are dropped (and this one's, in
    a ledger whose user_version was set back by hand)."""
    rank_o, time_o = _STATUS_RANK.format(o="o"), _STATUS_TIME.format(o="o")
    records_member, observations_status = _member_triggers("")
    run_sql(
        db,
        f"""
        DROP TRIGGER IF EXISTS records_batch_member;
        DROP TRIGGER IF EXISTS observations_member_status;
        DROP TRIGGER IF EXISTS records_batch_adopt;
        DROP TABLE IF EXISTS batch_members;
        CREATE TABLE batch_members (
            seq INTEGER PRIMARY KEY,
            batch INTEGER,
            created TEXT NOT NULL,
            outcome TEXT NOT NULL,
            status TEXT,
            status_rank INTEGER,
            status_time REAL,
            status_seen REAL,
            status_obs INTEGER
        );
        CREATE INDEX batch_members_order ON batch_members(batch, created);
        CREATE INDEX batch_members_state ON batch_members(batch, outcome, status);
        {records_member}
        CREATE TRIGGER records_batch_adopt AFTER INSERT ON records
        WHEN NEW.kind = 'batch'
        BEGIN UPDATE batch_members SET batch = NEW.seq WHERE batch IS NULL
        AND (SELECT json_extract(r.body, '$.batch.record') FROM records r WHERE r.seq = batch_members.seq)
        = NEW.address; END;
        {observations_status}
        INSERT INTO batch_members (seq, batch, created, outcome, status, status_rank, status_time, status_seen,
        status_obs)
        SELECT r.seq, b.seq, r.created, r.outcome, o.status, CASE WHEN o.seq IS NOT NULL THEN {rank_o} END,
        {time_o}, julianday(o.observed_at), o.seq
        FROM records r LEFT JOIN records b ON b.address = json_extract(r.body, '$.batch.record')
        LEFT JOIN observations o ON o.seq = {_LATEST_SEQ.format(address="r.address")}
        WHERE r.kind = 'member';
        """
    )


def m009_batch_settings(db: sqlite_utils.Database) -> None:
    """`batch_settings`: per batch record, its run settings' digests, in buckets of
    runSettingIds (runlog/cohortindex.py): per bucket a digest, and per run the digest of its
    setting's canonical JSON and where that lies in the record's body, so that `runlog diff
    B1 B2` compares two 100 000-run cohorts bucket by bucket and decodes only the runs that
    differ (the buckets' digests are compared in `batch_settings_digests`, which holds them
    without the runs: a few pages per batch). Derived, like an index: written by Ledger in
    the transaction that adds the batch record (not by a trigger: SQLite has no SHA-256),
    checked by verify. Filled here for the batch records already in the ledger."""
    from functools import partial

    from runlog import cohortindex, fastjson
    from runlog.ledger import read_blob

    run_sql(
        db,
        """
        CREATE TABLE IF NOT EXISTS batch_settings (
            batch INTEGER NOT NULL,
            bucket INTEGER NOT NULL,
            digest BLOB NOT NULL,
            runs TEXT NOT NULL,
            PRIMARY KEY (batch, bucket)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS batch_settings_digests ON batch_settings(batch, bucket, digest);
        DELETE FROM batch_settings;
        """
    )
    for (seq,) in db.execute("SELECT seq FROM records WHERE kind = 'batch' ORDER BY seq").fetchall():
        data = db.execute("SELECT body FROM records WHERE seq = ?", (seq,)).fetchone()[0].encode("utf-8")
        try:  # one record at a time in memory (a batch's may be tens of MB)
            found = cohortindex.record_rows(fastjson.decode_canonical(data)[0], data, partial(read_blob, db))
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            found = None  # a record edited outside runlog: no rows (verify names the record)
        if found is not None:
            db.conn.executemany("INSERT INTO batch_settings (batch, bucket, digest, runs) VALUES (?, ?, ?, ?)",
                                [(seq, *row) for row in found])


def m010_batch_view_given(db: sqlite_utils.Database) -> None:
    """`records_batch_view` (m007) makes a batch record's view only when the transaction that
    adds the record has not written it already: submit-batch writes the view it cut from the
    record's bytes (Ledger._append), where SQLite would parse the record's tens of MB twice
    (json_array_length, json_remove: about 0.4 s at 100 000 runs). Import and pull still leave
    it to the trigger. The views are the same either way (verify compares each with
    json_remove of its record's body)."""
    run_sql(
        db,
        """
        DROP TRIGGER IF EXISTS records_batch_view;
        CREATE TRIGGER records_batch_view AFTER INSERT ON records
        WHEN NEW.kind = 'batch' AND NOT EXISTS (SELECT 1 FROM batch_views v WHERE v.record = NEW.address)
        BEGIN INSERT OR REPLACE INTO batch_views (record, runs, view)
        VALUES (NEW.address, json_array_length(NEW.body, '$.batch.settings_file.content'),
        json_remove(NEW.body, '$.batch.settings_file.content')); END;
        """
    )


def m011_attempt_intent_zlib(db: sqlite_utils.Database) -> None:
    """`attempts.intent_zlib`: a batch's intent (its cohort: 27 MB at 100 000 runs) kept
    compressed by zlib, `intent` then empty, so that the attempt committed before StartRunBatch
    is ~1.5 MB to write instead of 27 MB. `intent_sha256` stays the digest of the canonical
    JSON; the seal leaves the column out as it leaves `intent` (the digest covers both);
    ledger.attempt_intent reads either form. Older attempts keep their text (NULL here)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(attempts)").fetchall()}
    if "intent_zlib" not in columns:  # (a ledger whose user_version was set back by hand may have it)
        db.execute("ALTER TABLE attempts ADD COLUMN intent_zlib BLOB")


def m012_blobs(db: sqlite_utils.Database) -> None:
    """`blobs`: a batch record's cohort held by reference (runlog/blobs.py): the settings
    file's content and the inputs' identities, each its canonical JSON compressed by zlib,
    named by the SHA-256 of that JSON and written with the attempt, before StartRunBatch is
    sent, so that the record written after the answer is a few kilobytes. Append-only like
    the records that name them; verify checks each against its name. The trigger of m010
    makes a view's `runs` from `batch.runs` for a record that holds its content by reference
    (nothing to take out of its body then), and the views m007 made for such records again
    (only in a ledger whose user_version was set back by hand can m007 run after them)."""
    run_sql(
        db,
        """
        CREATE TABLE IF NOT EXISTS blobs (
            sha256 TEXT PRIMARY KEY,
            bytes INTEGER NOT NULL,
            data BLOB NOT NULL
        );
        DROP TRIGGER IF EXISTS records_batch_view;
        CREATE TRIGGER records_batch_view AFTER INSERT ON records
        WHEN NEW.kind = 'batch' AND NOT EXISTS (SELECT 1 FROM batch_views v WHERE v.record = NEW.address)
        BEGIN INSERT OR REPLACE INTO batch_views (record, runs, view)
        VALUES (NEW.address, CASE WHEN json_type(NEW.body, '$.batch.settings_file.content_blob') IS NOT NULL
        THEN json_extract(NEW.body, '$.batch.runs')
        ELSE json_array_length(NEW.body, '$.batch.settings_file.content') END,
        json_remove(NEW.body, '$.batch.settings_file.content')); END;
        UPDATE batch_views SET runs = (SELECT json_extract(r.body, '$.batch.runs') FROM records r
        WHERE r.address = batch_views.record) WHERE record IN (SELECT address FROM records WHERE kind = 'batch'
        AND instr(body, '"content_blob":') AND json_type(body, '$.batch.settings_file.content_blob') IS NOT NULL);
        """
    )


# a batch record that holds its settings file's content by reference (runlog/blobs.py), named by
# its blob's digest; a body that is not JSON (changed outside runlog: verify names it) is none
# (the CASE: SQLite may evaluate an AND's terms in any order, and json_type stops at such a body)
_HELD_RECORD = ("kind = 'batch' AND CASE WHEN instr(body, '\"content_blob\":') AND json_valid(body) THEN "
                "json_type(body, '$.batch.settings_file.content_blob.sha256') = 'text' END")


def m013_blob_settings(db: sqlite_utils.Database) -> None:
    """`blob_settings`: m009's per-run digests of a settings file's content held by reference
    (runlog/blobs.py), keyed by the blob instead of the batch record. The blob is named before
    StartRunBatch is sent, so submit-batch writes these rows while the service answers (about
    8 MB at 100 000 runs), and the record written after the answer is only the record; two
    batches of one settings file share them. Derived, like an index: checked by verify, made
    by Ledger for any batch record held by reference that arrives without them (pull). The
    rows m009 made for such records move here."""
    run_sql(
        db,
        f"""
        CREATE TABLE IF NOT EXISTS blob_settings (
            blob TEXT NOT NULL,
            bucket INTEGER NOT NULL,
            digest BLOB NOT NULL,
            runs TEXT NOT NULL,
            PRIMARY KEY (blob, bucket)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS blob_settings_digests ON blob_settings(blob, bucket, digest);
        INSERT OR IGNORE INTO blob_settings (blob, bucket, digest, runs)
        SELECT json_extract(r.body, '$.batch.settings_file.content_blob.sha256'), s.bucket, s.digest, s.runs
        FROM batch_settings s JOIN records r ON r.seq = s.batch WHERE s.batch IN (SELECT seq FROM records WHERE {_HELD_RECORD});
        DELETE FROM batch_settings WHERE batch IN (SELECT seq FROM records WHERE {_HELD_RECORD});
        """
    )


# What the two member triggers of m008 do for every row, done for a page of rows with one
# statement each (Ledger.add_received_records, add_checked_observations: a pull), while
# `member_triggers_paused` holds its row (m014). ?1: the first seq of the page (the rows
# inserted since, in one transaction). PAGE_MEMBERS: the member records' rows, as
# records_batch_member writes them. PAGE_STATUSES: of a page of observations, the one that
# sorts first for each member, if it sorts before the member's status: where
# observations_member_status, one row after the other, ends (STATUS_ORDER is a total order).
PAGE_MEMBERS = f"""INSERT OR REPLACE INTO batch_members
    (seq, batch, created, outcome, status, status_rank, status_time, status_seen, status_obs)
    SELECT r.seq, (SELECT b.seq FROM records b WHERE b.address = json_extract(r.body, '$.batch.record')),
    r.created, r.outcome, o.status, CASE WHEN o.seq IS NOT NULL THEN {_STATUS_RANK.format(o="o")} END,
    {_STATUS_TIME.format(o="o")}, julianday(o.observed_at), o.seq
    FROM records r LEFT JOIN observations o ON o.seq = {_LATEST_SEQ.format(address="r.address")}
    WHERE r.seq >= ?1 AND r.kind = 'member'"""
# PAGE_MEMBERS for a page whose members are all of one batch, whose record's address is ?2 (the
# caller made them so: a refresh's pages): the batch is looked up once, not read from each
# member's JSON (its parse was half the statement's work for a page of 100 000-run cohort members).
PAGE_MEMBERS_OF = PAGE_MEMBERS.replace("json_extract(r.body, '$.batch.record')", "?2")
assert PAGE_MEMBERS_OF != PAGE_MEMBERS
PAGE_STATUSES = f"""UPDATE batch_members SET status = k.status, status_rank = k.rank, status_time = k.time,
    status_seen = k.seen, status_obs = k.obs
    FROM (SELECT member, obs, status, rank, time, seen, row_number() OVER (PARTITION BY member
        ORDER BY rank DESC, time DESC, seen DESC, obs DESC) AS n
        FROM (SELECT r.seq AS member, o.seq AS obs, o.status AS status, {_STATUS_RANK.format(o="o")} AS rank,
            {_STATUS_TIME.format(o="o")} AS time, julianday(o.observed_at) AS seen
            FROM observations o JOIN records r ON r.address = o.record
            WHERE o.seq >= ?1 AND o.status IS NOT NULL)) AS k
    WHERE k.n = 1 AND batch_members.seq = k.member AND ({_member_status_newer("k", "k.obs")})"""


def m014_member_triggers_paused(db: sqlite_utils.Database) -> None:
    """`member_triggers_paused`: while it holds its one row, which a writer inserts and deletes
    inside one transaction, the member triggers of m008 stand aside and that writer keeps
    `batch_members` itself, one statement a page (PAGE_MEMBERS, PAGE_STATUSES): a pull of a
    100 000-member cohort, where the triggers' row-by-row work was a third of SQLite's part of
    the inserts. Every other writer leaves the table empty and the triggers do the work; the
    rows are the same either way (verify recomputes them, and names a row left in the table).
    The triggers are m008's, each with the test of the table added to its WHEN."""
    records_member, observations_status = _member_triggers(" AND NOT EXISTS (SELECT 1 FROM member_triggers_paused)")
    run_sql(
        db,
        f"""
        CREATE TABLE IF NOT EXISTS member_triggers_paused (
            paused INTEGER PRIMARY KEY CHECK (paused = 1)
        );
        DROP TRIGGER IF EXISTS records_batch_member;
        DROP TRIGGER IF EXISTS observations_member_status;
        {records_member}
        {observations_status}
        DELETE FROM member_triggers_paused;
        """
    )


def m015_shorter_fingerprint_key(db: sqlite_utils.Database) -> None:
    """`records_fingerprint` indexes the first FINGERPRINT_PREFIX characters of the
    configuration fingerprint (a SHA-256, 64 hex characters), not the whole of it. The
    fingerprint is random, so each member of a 100 000-run cohort put its entry at a random
    place of the index, and every transaction of a refresh wrote most of the index's pages
    again; with entries a fifth as long, the index has a fifth of the pages. Eight hex
    characters are 32 bits of the SHA-256: besides the records of the configuration looked
    up, a lookup reads one other record per four billion in the ledger, which the comparison
    of the whole fingerprint then leaves out. (The run uuid keeps its whole value in its
    index: its form is the service's, and a time-ordered uuid would share its first
    characters with every run started in the same minute.) Index only: rows, seals and chain
    unchanged. An older ledger's index is made again from its rows once, when this
    migration runs."""
    run_sql(
        db,
        f"""
        DROP INDEX IF EXISTS records_fingerprint;
        CREATE INDEX records_fingerprint ON records(substr(fingerprint, 1, {FINGERPRINT_PREFIX}));
        """
    )


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    m001_initial,
    m002_observation_addresses,
    m003_row_seals,
    m004_batch_id,
    m005_pending_attempts,
    m006_lighter_member_indexes,
    m007_batch_members,
    m008_batch_members_by_seq,
    m009_batch_settings,
    m010_batch_view_given,
    m011_attempt_intent_zlib,
    m012_blobs,
    m013_blob_settings,
    m014_member_triggers_paused,
    m015_shorter_fingerprint_key,
]

LEDGER_FORMAT = len(MIGRATIONS)
# The oldest format the read commands use as it is, without migrating a copy of it in memory
# (Ledger._snapshot, which holds the whole ledger in memory and rebuilds what the migrations
# change). The migrations after it change indexes only, and every query reads the same rows
# with the indexes it has: since m015, a format-14 ledger's fingerprint lookup (`log --same-as`)
# reads every record instead of its index. A writing command migrates the file in place.
READS_AS_IS = 14
