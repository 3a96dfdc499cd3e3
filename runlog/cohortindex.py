"""Per-run digests of a batch record's cohort (migration m009: `batch_settings`; m013:
`blob_settings`, those of a settings file's content held by reference), computed
here from the record and its canonical JSON, without SQL.

A batch of 100 000 runs holds 100 000 run settings in one record (14 MB). `runlog diff B1 B2`
must tell which runs were added, removed or changed without decoding both: it compares
digests stored when the record was written, and decodes only the runs whose digests differ,
read from the record's body at the byte offsets stored beside them.

The runSettingIds of the record's run settings (`run_settings`, keyed as the diff keys them,
as a dict built from the list: a runSettingId given twice keeps the place of its first
setting and the value of its last) are put in BUCKETS buckets by the CRC-32 of their UTF-8
bytes (a run is in the same bucket in every batch). One row per bucket that has runs:

- `bucket`;
- `digest`: the first 16 bytes of the SHA-256 of its runs' digests (hex), sorted and joined
  (a setting's canonical JSON holds its runSettingId: its digest stands for the id too);
- `runs`: its runs as a JSON list sorted by runSettingId, each [runSettingId, position (the
  index of its first setting in the list: the order the diff lists runs in), digest (the
  first 16 bytes of the SHA-256 of its setting's canonical JSON, hex), start, length (where
  that canonical JSON lies in the record's body, in bytes)].

Two 100 000-run cohorts are compared bucket by bucket (4 096 rows each, in SQL), and run by
run only in the buckets that differ. One row per bucket rather than per run: writing
100 000 rows cost submit-batch more than computing the digests.

Equal digests mean equal canonical JSON, so equal settings; different digests only make a
run a candidate, which the diff decodes and compares as it always did. A record whose run
settings are not a list of objects with text runSettingIds, or whose settings cannot be
found in its body as canonical JSON, gets no rows: the diff then decodes it whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from itertools import accumulate
from typing import Any

# hashlib, zlib and orjson are imported where they are used: `show` and `log --batch` import
# this module (run_settings, through runlog.batchread) and never hash or encode
BUCKETS = 4096
DIGEST_BYTES = 16

DIGEST_HEX = 2 * DIGEST_BYTES
BucketRow = tuple[int, bytes, str]  # bucket, digest, runs (JSON)


def run_settings(record: dict) -> list[dict]:
    """The batch record's run settings: inline, or the settings file's content as pinned."""
    request = record["request"]
    inline = (request.get("batchRunSettings") or {}).get("inlineSettings")  # none: an imported batch
    if inline is not None:
        return inline
    return ((record.get("batch") or {}).get("settings_file") or {}).get("content") or []


def digest(data: bytes | memoryview) -> str:
    """A run setting's digest (of its canonical JSON), as `runs` holds it: hex."""
    import hashlib

    return hashlib.sha256(data).hexdigest()[:DIGEST_HEX]


def setting_rows(record: dict, body: bytes) -> list[BucketRow] | None:
    """The rows of `batch_settings` for a batch record (`record` decoded, `body` its canonical
    JSON), by bucket; None when the record gets none (see the module's docstring). For a
    record holding its settings file's content by reference (runlog/blobs.py), `rows_of`."""
    found = _rows_and_span(record, body)
    return None if found is None else found[0]


def record_rows(record: dict, body: bytes, load: Callable[[str], bytes | None]) -> list[BucketRow] | None:
    """setting_rows for a batch record in either form: for one holding its settings file's
    content by reference (runlog/blobs.py), the rows of the blob `load(sha256)` gives (its
    canonical JSON; None when it cannot be read: no rows), whose offsets are into the blob."""
    from runlog.blobs import CONTENT, ref_of

    held = ref_of(record, CONTENT)
    if held is None:
        return setting_rows(record, body)
    data = load(held["sha256"])
    return None if data is None else blob_rows(data)


def blob_rows(data: bytes) -> list[BucketRow] | None:
    """rows_of the run settings a settings file's content blob holds (`data`, its canonical
    JSON), read exactly (fastjson.loads: an integer beyond 64 bits stays one, or its run would
    not be found in the blob); None for a blob that is not a JSON list, or is nested deeper
    than the json module reads (verify names it)."""
    from runlog import fastjson

    try:
        listed = fastjson.loads(data)
    except (ValueError, RecursionError):
        return None
    return rows_of(listed, data) if isinstance(listed, list) else None


def rows_of(listed: list, data: bytes, *, canonical: bool = False) -> list[BucketRow] | None:
    """The rows for run settings `listed` whose canonical JSON is `data` (a blob holding a
    settings file's content: the offsets are into it). `canonical`: `data` was made from
    `listed` (fastjson.dumps, as blobs.Blob is), so it is not looked for again."""
    found = _rows_and_span_of(listed, data, data if canonical else None)
    return None if found is None else found[0]


class Prepared:
    """The rows of a batch record computed ahead, from its intent: submit-batch computes them
    while StartRunBatch is answered (`prepare`), and the ledger takes them for the record
    (`rows_for`) only when the run settings lie in the record's body where they lay in the
    intent's, byte for byte: then every run's digest, start and length are the record's too.
    The record is the intent with the member `outcome` added; the members that sort before it
    (`batch`, which holds an s3UriSettings file's content) keep their offsets, those after it
    (`request`, with inline settings) do not, and are computed again from the record."""

    def __init__(self, rows: list[BucketRow] | None, span: tuple[int, int], intent_body: bytes, shared: int,
                 from_file: bool = False, blob: str | None = None):
        self.rows, self.span, self._intent_body, self._shared = rows, span, intent_body, shared
        self._from_file = from_file  # the settings are a settings file's content (not inline)
        self._blob = blob  # the digest of the blob the rows were computed from (runlog/blobs.py)

    @classmethod
    def of_blob(cls, listed: list, data: bytes, sha256: str) -> Prepared:
        """The rows of a settings file's content held by reference, computed from its blob
        (`data`, made from `listed` by blobs.take_out, named `sha256`) ahead of the record."""
        return cls(rows_of(listed, data, canonical=True), (0, 0), b"", 0, True, sha256)

    def blob_rows(self, sha256: str) -> list[BucketRow] | None:
        """The rows, when they were computed from the blob named `sha256`; else None."""
        return self.rows if self._blob is not None and self._blob == sha256 else None

    def rows_for(self, body: bytes) -> list[BucketRow] | None:
        """The rows for the record whose canonical JSON is `body`, or None when they must be
        computed from it (setting_rows): the intent had none, or its settings do not lie within
        the bytes the record shares with it, or those bytes differ (the one comparison)."""
        low, high = self.span
        if self.rows is None or self._blob is not None or high > self._shared or high > len(body):
            return None
        if not body.startswith(memoryview(self._intent_body)[low:high], low):
            return None
        return self.rows

    def view_for(self, record: dict, body: bytes) -> tuple[int, str] | None:
        """(runs, view) of `batch_views` for `record`, whose canonical JSON is `body`, as the
        trigger of migration m007 makes them (json_array_length and json_remove of
        `$.batch.settings_file.content`), cut from the bytes instead of parsed: the view is
        the body without the settings file's member `"content":[...]` (its first, sorted) and
        the comma after it. None unless the rows are the record's (rows_for), the settings are
        the settings file's, and the list lies exactly where canonical JSON writes that member
        (the members before it encoded again: a few hundred bytes)."""
        from runlog import fastjson

        low, high = self.span
        if not self._from_file or self.rows_for(body) is None:
            return None
        section = record.get("batch")
        if not isinstance(section, dict):
            return None
        settings_file = section.get("settings_file")
        if not isinstance(settings_file, dict) or min(settings_file) != "content":
            return None
        head = [fastjson.member(key, record[key]) for key in sorted(record) if key < "batch"]
        inner = [fastjson.member(key, section[key]) for key in sorted(section) if key < "settings_file"]
        prefix = b"".join([b"{", b",".join(head), b"," if head else b"", b'"batch":{', b",".join(inner),
                           b"," if inner else b"", b'"settings_file":{'])
        if len(prefix) + len(b'"content":') != low or not body.startswith(prefix) \
                or not body.startswith(b'"content":', len(prefix)):
            return None
        after = body[high:high + 1]
        if after not in (b",", b"}"):
            return None
        view = body[:len(prefix)] + body[high + 1 if after == b"," else high:]
        return len(settings_file["content"]), view.decode("utf-8")


def prepare(intent: dict, intent_body: bytes, before: list) -> Prepared:
    """The rows of the batch record that `intent` (its canonical JSON `intent_body`) will
    become, computed from the intent. `before`: the intent's members that sort before
    `outcome`, as fastjson.members gives them; the record's body shares `{` and those
    members, with their commas, with the intent's."""
    shared = 1 + sum(len(piece) for piece in before) + max(len(before) - 1, 0)
    from_file = (intent.get("request", {}).get("batchRunSettings") or {}).get("inlineSettings") is None
    found = _rows_and_span(intent, intent_body)
    if found is None:
        return Prepared(None, (0, 0), intent_body, shared)
    return Prepared(found[0], found[1], intent_body, shared, from_file)


def _rows_and_span(record: dict, body: bytes) -> tuple[list[BucketRow], tuple[int, int]] | None:
    """setting_rows, with the span of body (from the list's `[` to its `]`) the rows depend on.

    The run settings are found in the body as one JSON list (orjson encodes the list once and
    the bytes are looked for in the body; the json module's encoding is tried when they are
    not there) and cut into its members where `},{` separates them, which is exact when the
    list holds as many of those as members but one (a `},{` inside a text value makes one more:
    then each setting is encoded on its own). Each member's bytes are hashed where they lie."""
    return _rows_and_span_of(run_settings(record), body)


def _rows_and_span_of(listed: list, body: bytes,
                      whole: bytes | None = None) -> tuple[list[BucketRow], tuple[int, int]] | None:
    """_rows_and_span for the run settings `listed`, found in `body`; `whole`: `body` is
    their canonical JSON, made from them (not encoded and looked for again)."""
    import hashlib
    import zlib

    import orjson

    if not isinstance(listed, list) or not listed:
        return None
    ids = []
    for setting in listed:
        if type(setting) is not dict or type(setting.get("runSettingId")) is not str:
            return None
        ids.append(setting["runSettingId"])
    spans = _spans(listed, body, whole)
    if spans is None:
        return None
    view = memoryview(body)
    sha256, crc32, buckets_count = hashlib.sha256, zlib.crc32, BUCKETS
    try:
        places = [crc32(setting_id.encode("utf-8")) % buckets_count for setting_id in ids]
    except UnicodeEncodeError:  # a lone surrogate: in no canonical body
        return None
    starts, lengths = spans
    span = (starts[0] - 1, starts[-1] + lengths[-1] + 1)  # the list, brackets included
    digests = [sha256(view[start:start + length]).hexdigest()[:DIGEST_HEX]
               for start, length in zip(starts, lengths, strict=True)]
    positions: list[int] | range = range(len(ids))
    runs: Iterable[tuple[int, tuple]] = zip(places, zip(ids, positions, digests, starts, lengths, strict=True),
                                            strict=True)
    if len(set(ids)) != len(ids):  # a runSettingId given twice: its first place, its last value
        last = {setting_id: position for position, setting_id in enumerate(ids)}
        first: dict[str, int] = {}
        positions = [first.setdefault(setting_id, position) for position, setting_id in enumerate(ids)]
        runs = [run for index, run in enumerate(zip(places, zip(ids, positions, digests, starts, lengths,
                                                                  strict=True), strict=True))
                if last[run[1][0]] == index]
    groups: list[list[tuple]] = [[] for _ in range(buckets_count)]  # each bucket's runs, then sorted by
    for bucket, entry in runs:  # runSettingId (unique): a few dozen each, not one sort of them all
        groups[bucket].append(entry)
    found: list[BucketRow] = []
    for bucket, entries in enumerate(groups):
        if entries:
            entries.sort()
            found.append((bucket, bucket_digest(entries), orjson.dumps(entries).decode("utf-8")))
    return found, span


def bucket_digest(runs: list) -> bytes:
    """A bucket's digest: of its runs' digests, sorted, joined (a setting's canonical JSON
    holds its runSettingId: its digest stands for the id too)."""
    return digests_digest(run[2] for run in runs)


def digests_digest(digests: Iterable[str]) -> bytes:
    """bucket_digest of the runs whose digests these are."""
    import hashlib

    return hashlib.sha256("".join(sorted(digests)).encode("ascii")).digest()[:DIGEST_BYTES]


def bucket_of(setting_id: str) -> int:
    """The bucket a runSettingId falls in (setting_rows inlines this in its loop)."""
    import zlib

    return zlib.crc32(setting_id.encode("utf-8")) % BUCKETS


def _spans(listed: list[dict], body: bytes, made: bytes | None = None) -> tuple[list[int], list[int]] | None:
    """(starts, lengths) in body of each setting's canonical JSON, or None if not found there;
    `made`: `body` is that canonical JSON, made from `listed` by fastjson.dumps."""
    import orjson

    from runlog import record as rec

    if made is not None:
        from runlog import fastjson

        return _cut(made, len(listed), 0, partial(_lengths, fastjson.dumps, listed))
    for encode in (lambda value: orjson.dumps(value, option=orjson.OPT_SORT_KEYS), rec.canonical_json):
        try:
            whole = encode(listed)
        except (TypeError, ValueError):
            continue
        at = _find(body, whole)
        if at >= 0:
            return _cut(whole, len(listed), at, partial(_lengths, encode, listed))
    return None


def _lengths(encode: Callable[[Any], bytes], listed: list) -> list[int]:
    """The length of each setting's canonical JSON, each encoded on its own."""
    return [len(encode(setting)) for setting in listed]


def _cut(whole: bytes, count: int, at: int, each: Callable[[], list[int]]) -> tuple[list[int], list[int]]:
    """(starts, lengths) of the `count` settings of the list whose canonical JSON `whole` lies
    at `at`: cut where `},{` separates them, exact when the list holds as many of those as
    settings but one; otherwise `each()` gives their lengths (each setting encoded on its own)."""
    pieces = whole[1:-1].split(b"},{")
    if len(pieces) == count:  # each piece a setting without the braces the cuts took
        lengths = [len(piece) + 2 for piece in pieces]
        lengths[0] -= 1
        lengths[-1] -= 1
    else:  # a "},{" inside a value
        lengths = each()
    return list(accumulate((length + 1 for length in lengths[:-1]), initial=at + 1)), lengths


def _find(body: bytes, whole: bytes) -> int:
    """Where `whole` lies in body, or -1."""
    head = whole[:64]
    at = body.find(head)
    while at >= 0:
        if body.startswith(whole, at):
            return at
        at = body.find(head, at + 1)
    return -1


def received(record: dict, body: bytes) -> tuple[list[BucketRow] | None, tuple[int, str] | None]:
    """For a batch record received whole (a pull, runlog/syncreceive.py), `record` decoded and
    `body` its canonical JSON: its rows of `batch_settings` (setting_rows) and the (runs, view)
    of `batch_views` cut from its bytes (Prepared.view_for), None for either that cannot be
    made so (the ledger's trigger then makes the view, as for any record)."""
    from_file = (record.get("request", {}).get("batchRunSettings") or {}).get("inlineSettings") is None
    found = _rows_and_span(record, body)
    if found is None:
        return None, None
    return found[0], Prepared(found[0], found[1], body, len(body), from_file).view_for(record, body)
