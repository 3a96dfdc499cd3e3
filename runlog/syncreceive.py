"""What a pull receives: every record and observation checked once, and kept on disk until
it is inserted.

The checks are those of runlog.remote/1's objects (docs/team-ledger.md): the content
matches its address, it is strict JSON within the limits (safejson.loads_untrusted), in
canonical form, a record passes the record schema, an observation has exactly the members
of ledger.observation_object, is filed under the record it names and was not made in the
future. `check_records` and `check_observations` make them the way `runlog verify` checks
the ledger's own rows (verify._clean): a step at a time over a pack's items, with orjson
(its writing of a value is the canonical form whenever fastjson.plain says so) and the
record schema compiled by jsonschema-rs. An item the fast way does not pass goes to
`verify_record_object` / `verify_observation_object`, the reference checks, which decide
and name the problem: the fast way only ever accepts what they accept.

A record that passes is reduced to what its row needs (address, canonical bytes, the
lookup columns of ledger.index_columns), so that it is never parsed, checked or encoded
again on the way into the ledger; those rows wait in a `runlog.spool.Spool` (sync.PULL_SPOOL_MEMORY
bytes in memory, the rest in a private temporary file), so that a pull holds no more than that, the
packs being checked and a few hundred bytes per item (to order them, oldest first, and to
keep one record per requestId) in memory."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from runlog import record as rec
from runlog.blobs import by_reference
from runlog.ledger import INDEX_COLUMNS, OBSERVATION_FIELDS, index_columns
from runlog.obsrules import status_problem
from runlog.safejson import DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH, UntrustedJSONError, loads_untrusted
from runlog.textsafe import terminal_safe

# The service's times and observed_at are ISO 8601 in UTC; an observation made more than a day
# in this machine's future is refused (it would stay the "latest" for ever).
OBSERVED_AT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
FUTURE_SLACK_DAYS = 1
_FIELDS = frozenset(OBSERVATION_FIELDS)

# What a checked record is reduced to: (created, request id, row), the row being what
# Ledger.add_received_records takes: (address, canonical bytes, index_columns' values in
# INDEX_COLUMNS' order), and for a batch record its rows of `batch_settings` and its view
# (cohortindex.received, made from the value its check decoded: the ledger need not decode
# a cohort's tens of MB again, nor SQLite parse them for the view, and the work is done where
# the check is, in a worker process when a pull has them, runlog/syncworker.py).
Row = tuple  # (address, bytes, columns), or for a batch (..., setting rows or None, (runs, view) or None)
# A checked observation, as Ledger.add_checked_observations takes it: (address, record,
# run_uuid, observed_at, source, status, the body's canonical bytes, their SHA-256).
ObservationRow = tuple[str, str, str | None, str, str, str | None, bytes, str]


# -- the reference checks (one item; they name the problem) ---------------------------------------


def _parse(data: bytes, max_bytes: int) -> tuple[Any, str | None]:
    try:
        return loads_untrusted(data, max_bytes=max_bytes, max_depth=DEFAULT_MAX_DEPTH), None
    except UntrustedJSONError as exc:
        return None, exc.reason


def _canonical_object(address: str, data: bytes, max_bytes: int, kind: str) -> tuple[dict | None, str | None]:
    """(object, None) when data is named `address` (its SHA-256) and is a JSON object in canonical
    form within the limits, else (None, why not); `kind` ("a record") names it in the reason."""
    if rec.sha256_hex(data) != address:
        return None, "content does not match its address (tampered or truncated)"
    value, why = _parse(data, max_bytes)
    if why:
        return None, why
    if not isinstance(value, dict) or rec.canonical_json(value) != data:
        return None, f"not {kind} in canonical JSON"
    return value, None


def verify_record_object(address: str, data: bytes, max_bytes: int = DEFAULT_MAX_BYTES
                         ) -> tuple[dict | None, str | None]:
    """(record, None) when data is the record named `address`, else (None, why not)."""
    record, why = _canonical_object(address, data, max_bytes, "a record")
    if record is None:
        return None, why
    problems = rec.schema_errors(record)
    if problems:
        return None, "not a valid record: " + problems[0]
    return record, None


def _latest_allowed() -> datetime:
    """The latest observed_at accepted now."""
    return datetime.now(UTC) + timedelta(days=FUTURE_SLACK_DAYS)


def _observed_at_problem(observed_at: str, latest: datetime | None = None) -> str | None:
    """Why observed_at is not acceptable (not an ISO 8601 time with a zone, or later than
    `latest`: by default a day from now), else None."""
    if not OBSERVED_AT_RE.match(observed_at):
        return "not an observation (observed_at is not an ISO 8601 time with a time zone)"
    try:
        moment = rec.parse_timestamp(observed_at)
    except ValueError:
        return "not an observation (observed_at is not a valid time)"
    if moment > (latest or _latest_allowed()):
        return f"observed_at {observed_at} is in the future"
    return None


def verify_observation_object(record: str, address: str, data: bytes, max_bytes: int = DEFAULT_MAX_BYTES
                              ) -> tuple[dict | None, str | None]:
    """(observation, None) when data is the observation named `address` of `record`, else (None, why)."""
    item, why = _canonical_object(address, data, max_bytes, "an observation")
    if item is None:
        return None, why
    if set(item) != set(OBSERVATION_FIELDS):
        return None, "not an observation (members must be " + ", ".join(OBSERVATION_FIELDS) + ")"
    if item["record"] != record:
        return None, f"names record {terminal_safe(item['record'])[:12]} but is stored under record {record[:12]}"
    types_ok = (isinstance(item["observed_at"], str) and isinstance(item["source"], str)
                and isinstance(item["body"], dict) and all(isinstance(item[k], (str, type(None)))
                                                           for k in ("status", "run_uuid")))
    if not types_ok:
        return None, "not an observation (a member has the wrong type)"
    if why := status_problem(item["source"], item["status"], item["body"]):
        return None, f"not an observation runlog makes: {terminal_safe(why)}"
    return item, _observed_at_problem(item["observed_at"])


# -- the same checks, fast, a pack's items at a time ----------------------------------------------


def _canonical_values(items: Sequence[tuple[str, bytes]], max_bytes: int, hashed: bool) -> list[Any]:
    """For each (address, bytes): the JSON object the bytes hold when they are its canonical
    form, match the address (unless `hashed`: the caller computed the address from these
    bytes) and are within max_bytes and DEFAULT_MAX_DEPTH; else None (the reference check
    decides). Canonical: orjson's sorted writing of the value gives the bytes back and
    fastjson.plain holds, which is record.canonical_json's form (tests/test_fastjson.py), so
    no key was given twice and every number reads back as written; orjson refuses NaN,
    Infinity, lone surrogates, invalid UTF-8 and trailing data."""
    import orjson

    from runlog.fastjson import SORTED, plain

    sha256, loads, dumps = hashlib.sha256, orjson.loads, orjson.dumps
    deep = b"\n" + b" " * (2 * DEFAULT_MAX_DEPTH)  # a line that deep in orjson's indented writing
    values: list[Any] = []
    for address, data in items:
        value = None
        if len(data) <= max_bytes and (hashed or sha256(data).hexdigest() == address):
            try:
                value = loads(data)
            except orjson.JSONDecodeError:
                value = None
            if type(value) is not dict or dumps(value, option=SORTED) != data or not plain(data):
                value = None
            # no deeper than allowed: it cannot be, with fewer openings than levels allowed
            elif data.count(b"{") + data.count(b"[") > DEFAULT_MAX_DEPTH \
                    and deep in dumps(value, option=orjson.OPT_INDENT_2):
                value = None
        values.append(value)
    return values


def check_records(items: Sequence[tuple[str, bytes]], max_bytes: int = DEFAULT_MAX_BYTES, *,
                  hashed: bool = False) -> list[tuple[tuple[str, str | None, Row] | None, str | None]]:
    """For each (address, bytes) received: ((created, request id, row), None) when the bytes are
    the record named by the address (verify_record_object's checks), else (None, why). With
    `hashed`, the address was computed from these very bytes (a pack's item)."""
    values = _canonical_values(items, max_bytes, hashed)
    is_valid = rec.fast_validator().is_valid
    checked: list[tuple[tuple[str, str | None, Row] | None, str | None]] = []
    for (address, data), value in zip(items, values, strict=True):
        row = None
        if value is not None:
            try:
                if is_valid(value):
                    row = _row(address, data, value)
            except (TypeError, ValueError, KeyError, AttributeError, OverflowError):
                row = None
        if row is None:  # the reference check decides, and names the problem
            record, why = verify_record_object(address, data, max_bytes)
            if record is None:
                checked.append((None, why))
                continue
            row = _row(address, data, record)
        checked.append((row, None))
    return checked


def _row(address: str, data: bytes, record: dict) -> tuple[str, str | None, Row]:
    columns = index_columns(record)
    row: Row = (address, data, tuple(columns[name] for name in INDEX_COLUMNS))
    if record["kind"] == "batch" and not by_reference(record):
        # (one holding its cohort by reference gets them from the ledger, which then holds its
        # blobs: Ledger._index_settings, and the view from the trigger of migration m012)
        from runlog.cohortindex import received

        row = (*row, *received(record, data))
    return record["created"], columns["request_id"], row


def check_observations(items: Sequence[tuple[str, str, bytes]], max_bytes: int = DEFAULT_MAX_BYTES, *,
                       hashed: bool = False) -> list[tuple[ObservationRow | None, str | None]]:
    """For each (address, record it is filed under, bytes) received: (row, None) when the bytes
    are that observation (verify_observation_object's checks), else (None, why)."""
    import orjson

    from runlog.fastjson import SORTED

    values = _canonical_values([(address, data) for address, _, data in items], max_bytes, hashed)
    checked: list[tuple[ObservationRow | None, str | None]] = []
    # a pack's observations were mostly made at a few moments (a refresh's): each distinct
    # observed_at is checked once, against one "now"
    latest = _latest_allowed()
    times: dict[str, str | None] = {}

    def time_problem(observed_at: str) -> str | None:
        if observed_at not in times:
            times[observed_at] = _observed_at_problem(observed_at, latest)
        return times[observed_at]

    for (address, record, data), item in zip(items, values, strict=True):
        if item is None or item.keys() != _FIELDS or item["record"] != record or type(item["body"]) is not dict \
                or type(item["observed_at"]) is not str or type(item["source"]) is not str \
                or not (item["status"] is None or type(item["status"]) is str) \
                or not (item["run_uuid"] is None or type(item["run_uuid"]) is str) \
                or time_problem(item["observed_at"]) or status_problem(item["source"], item["status"], item["body"]):
            item, why = verify_observation_object(record, address, data, max_bytes)
            if item is None or why:
                checked.append((None, why))
                continue
            body = rec.canonical_json(item["body"])  # the reference form (the fast one did not take it)
        else:
            body = orjson.dumps(item["body"], option=SORTED)  # a part of canonical, plain bytes: canonical
        checked.append(((address, record, item["run_uuid"], item["observed_at"], item["source"], item["status"],
                         body, rec.sha256_hex(body)), None))
    return checked


