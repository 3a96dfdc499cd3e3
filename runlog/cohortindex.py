"""Per-run digests of a batch record's cohort (migration m009: `batch_settings`,
`batch_setting_buckets`), computed here from the record and its canonical JSON, without SQL.

A batch of 100 000 runs holds 100 000 run settings in one record (14 MB). `runlog diff B1 B2`
must tell which runs were added, removed or changed without decoding both: it compares
digests stored when the record was written, and decodes only the runs whose digests differ,
read from the record's body at the byte offsets stored beside them.

For each runSettingId of the record's run settings (`run_settings`, as the diff reads them,
keyed as a dict built from the list keys them: a runSettingId given twice keeps the place of
its first setting and the value of its last):

- `bucket`: CRC-32 of the runSettingId's UTF-8 bytes, modulo BUCKETS (where to look; it
  depends on the id alone, so a run's row is in the same bucket in every batch);
- `position`: the index of its first setting in the list (the order the diff lists runs in);
- `digest`: the first 16 bytes of the SHA-256 of its setting's canonical JSON;
- `start`, `length`: where that canonical JSON lies in the record's body, in bytes.

and for each bucket, the first 16 bytes of the SHA-256 of its rows' digests, sorted and
joined (a setting's canonical JSON holds its runSettingId: its digest stands for the id too),
so that two 100 000-run cohorts are compared bucket by bucket (4 096 rows) and run by run
only where a bucket differs.

Equal digests mean equal canonical JSON, so equal settings; different digests only make a
run a candidate, which the diff decodes and compares as it always did. A record whose run
settings are not a list of objects with text runSettingIds, or whose settings cannot be
found in its body as canonical JSON, gets no rows: the diff then decodes it whole.
"""

from __future__ import annotations

import hashlib
import zlib

import orjson

BUCKETS = 4096
DIGEST_BYTES = 16

SettingRow = tuple[int, str, int, bytes, int, int]  # bucket, runSettingId, position, digest, start, length
BucketRow = tuple[int, bytes]  # bucket, digest


def run_settings(record: dict) -> list[dict]:
    """The batch record's run settings: inline, or the settings file's content as pinned."""
    request = record["request"]
    inline = (request.get("batchRunSettings") or {}).get("inlineSettings")  # none: an imported batch
    if inline is not None:
        return inline
    return ((record.get("batch") or {}).get("settings_file") or {}).get("content") or []


def bucket_of(setting_id: str) -> int:
    return zlib.crc32(setting_id.encode("utf-8")) % BUCKETS


def digest(data: bytes | memoryview) -> bytes:
    return hashlib.sha256(data).digest()[:DIGEST_BYTES]


def setting_rows(record: dict, body: bytes) -> tuple[list[SettingRow], list[BucketRow]] | None:
    """The rows of `batch_settings` and `batch_setting_buckets` for a batch record (`record`
    decoded, `body` its canonical JSON), each list sorted by its key; None when the record
    gets none (see the module's docstring).

    The run settings are found in the body as one JSON list (orjson encodes the list once and
    the bytes are looked for in the body; the json module's encoding is tried when they are
    not there) and cut into its members where `},{` separates them, which is exact when the
    list holds as many of those as members but one (a `},{` inside a text value makes one more:
    then each setting is encoded on its own). Each member's bytes are hashed where they lie."""
    listed = run_settings(record)
    if not isinstance(listed, list) or not listed:
        return None
    ids = []
    for setting in listed:
        if type(setting) is not dict or type(setting.get("runSettingId")) is not str:
            return None
        ids.append(setting["runSettingId"])
    spans = _spans(listed, body)
    if spans is None:
        return None
    view = memoryview(body)
    first: dict[str, int] = {}  # a runSettingId given twice: its first place, its last value
    last: dict[str, int] = {}
    if len(set(ids)) != len(ids):
        last = {setting_id: position for position, setting_id in enumerate(ids)}
        for position, setting_id in enumerate(ids):
            first.setdefault(setting_id, position)
    buckets: list[list[SettingRow]] = [[] for _ in range(BUCKETS)]
    sha256, crc32 = hashlib.sha256, zlib.crc32
    try:
        for position, setting_id, (start, length) in zip(range(len(ids)), ids, spans, strict=True):
            if first:
                if last[setting_id] != position:
                    continue  # not its last value
                position = first[setting_id]
            bucket = crc32(setting_id.encode("utf-8")) % BUCKETS
            buckets[bucket].append((bucket, setting_id, position, sha256(view[start:start + length]).digest()[:16],
                                    start, length))
    except UnicodeEncodeError:  # a lone surrogate: in no canonical body
        return None
    rows: list[SettingRow] = []
    digests: list[BucketRow] = []
    for bucket, found in enumerate(buckets):
        if found:
            found.sort()  # by runSettingId (unique within the bucket)
            rows += found
            digests.append((bucket, sha256(b"".join(sorted(row[3] for row in found))).digest()[:DIGEST_BYTES]))
    return rows, digests


def bucket_digests(rows: list[SettingRow]) -> list[BucketRow]:
    """(bucket, digest) of rows sorted by bucket, as setting_rows computes them (verify)."""
    found: dict[int, list[bytes]] = {}
    for row in rows:
        found.setdefault(row[0], []).append(row[3])
    return [(bucket, hashlib.sha256(b"".join(sorted(digests))).digest()[:DIGEST_BYTES])
            for bucket, digests in sorted(found.items())]


def _spans(listed: list[dict], body: bytes) -> list[tuple[int, int]] | None:
    """(start, length) in body of each setting's canonical JSON, or None if not found there."""
    from runlog import record as rec

    for encode in (lambda value: orjson.dumps(value, option=orjson.OPT_SORT_KEYS), rec.canonical_json):
        try:
            whole = encode(listed)
        except (TypeError, ValueError):
            continue
        at = _find(body, whole)
        if at < 0:
            continue
        pieces = whole[1:-1].split(b"},{")
        spans, start = [], at + 1
        if len(pieces) == len(listed):
            last = len(pieces) - 1
            for index, piece in enumerate(pieces):
                length = len(piece) + (index > 0) + (index < last)
                spans.append((start, length))
                start += length + 1
            return spans
        for setting in listed:  # a "},{" inside a value: each setting encoded on its own
            length = len(encode(setting))
            spans.append((start, length))
            start += length + 1
        return spans
    return None


def _find(body: bytes, whole: bytes) -> int:
    """Where `whole` lies in body, or -1."""
    head = whole[:64]
    at = body.find(head)
    while at >= 0:
        if body.startswith(whole, at):
            return at
        at = body.find(head, at + 1)
    return -1
