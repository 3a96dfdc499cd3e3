"""Packs: many records and observations in one object of a team ledger (runlog.remote/2).

A pack is a line-oriented file, named by the SHA-256 of its bytes:

    runlog.pack/1\\n
    r <a record's canonical JSON>\\n
    o <an observation's canonical JSON (ledger.observation_object)>\\n
    ...

Canonical JSON never holds a raw newline (JSON escapes control characters in strings), so
each line is one item, and the item's content address is the SHA-256 of the bytes after
`r ` or `o `. Next to each pack, a small index object (canonical JSON) lists what it holds:

    {"format": "runlog.pack-index/1", "pack": DIGEST, "size": BYTES,
     "records": [ADDRESS, ...], "observations": [[ADDRESS, RECORD], ...]}

so that "what does the remote lack" is a listing plus one small GET per pack, never a
download of the packs. The index is only a claim: a pull checks the pack against its name
and checks that it holds exactly what its index names, item by item, before anything of it
is used (docs/team-ledger.md).

The index object also carries two claims as S3 metadata, outside its bytes (so that a runlog
that does not read them reads the same index): the oldest record the pack holds, as
`x-amz-meta-runlog-oldest-record: <created> <address>`, and the oldest observation,
`x-amz-meta-runlog-oldest-observation: <observed_at> <address>`. A pull uses them only to
choose the order it fetches packs in and to append what it received while the rest is
still coming (runlog/syncinsert.py); a claim that lies makes it slower, never wrong.

Nothing here talks to S3 or the ledger: building packs from items, and reading them back."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from runlog import record as rec
from runlog.safejson import UntrustedJSONError, loads_untrusted

PACK_FORMAT = "runlog.pack/1"
INDEX_FORMAT = "runlog.pack-index/1"
HEADER = PACK_FORMAT.encode("ascii") + b"\n"
# Keys relative to the prefix: packs/<digest>.pack and packs/<digest>.index.json.
PACK_KEY_RE = re.compile(r"^packs/(?P<digest>[0-9a-f]{64})\.pack$")
INDEX_KEY_RE = re.compile(r"^packs/(?P<digest>[0-9a-f]{64})\.index\.json$")
ADDRESS_RE = re.compile(r"^[0-9a-f]{64}$")

# A pack is closed once it holds this many bytes or items (a single item larger than that
# gets a pack of its own: a 100 000-run batch record is 26 MiB). 1 MiB keeps a 10 000-member
# cohort (about 40 MiB) in tens of packs, so that --jobs of them are in flight at once, and a
# 100 000-member one in a few hundred; each is one PutObject and one GetObject.
PACK_BYTES = 1024 * 1024
PACK_ITEMS = 4096
KINDS = {b"r": "record", b"o": "observation"}
# The claims of the oldest items, as S3 metadata of the index object (without x-amz-meta-).
HINT_RECORD = "runlog-oldest-record"
HINT_OBSERVATION = "runlog-oldest-observation"
Hint = tuple[str, str]  # (created or observed_at, address): the order a pull appends items in
_HINT_RE = re.compile(r"^([0-9A-Za-z:.+\-]{1,64}) ([0-9a-f]{64})$")


def pack_key(digest: str) -> str:
    return f"packs/{digest}.pack"


def index_key(digest: str) -> str:
    return f"packs/{digest}.index.json"


@dataclass
class Pack:
    """A pack about to be written: its bytes, its index's bytes, what it holds."""

    digest: str
    body: bytes
    index: bytes
    records: list[str] = field(default_factory=list)
    observations: list[tuple[str, str]] = field(default_factory=list)  # (address, record)
    oldest_record: Hint | None = None
    oldest_observation: Hint | None = None

    def hint_metadata(self) -> dict[str, str]:
        """The S3 metadata of the index object: the claims of the oldest items it holds."""
        metadata = {}
        for name, hint in ((HINT_RECORD, self.oldest_record), (HINT_OBSERVATION, self.oldest_observation)):
            if hint is not None and _HINT_RE.match(f"{hint[0]} {hint[1]}"):
                metadata[name] = f"{hint[0]} {hint[1]}"
        return metadata


def read_hints(metadata: object) -> tuple[Hint | None, Hint | None]:
    """The claims (oldest record, oldest observation) of an index object's S3 metadata (None
    for one absent or not of the form push writes)."""
    found: list[Hint | None] = []
    for name in (HINT_RECORD, HINT_OBSERVATION):
        value = metadata.get(name) if isinstance(metadata, dict) else None
        match = _HINT_RE.match(value) if isinstance(value, str) else None
        found.append((match.group(1), match.group(2)) if match else None)
    return found[0], found[1]


@dataclass
class PackIndex:
    """What a pack's index says it holds (not yet checked against the pack)."""

    digest: str
    size: int
    records: list[str]
    observations: list[tuple[str, str]]  # (address, record)


def _finish(lines: list[bytes], records: list[str], observations: list[tuple[str, str]],
            oldest: list[Hint | None], unknown: list[bool]) -> Pack:
    body = HEADER + b"".join(lines)
    digest = rec.sha256_hex(body)
    index = rec.canonical_json({"format": INDEX_FORMAT, "pack": digest, "size": len(body), "records": records,
                                "observations": [list(pair) for pair in observations]})
    claims = [None if gap else hint for hint, gap in zip(oldest, unknown, strict=True)]
    return Pack(digest, body, index, records, observations, claims[0], claims[1])


def build_packs(items: Iterable[tuple[str, str, bytes, str | None, str | None]], *, max_bytes: int | None = None,
                max_items: int | None = None) -> Iterator[Pack]:
    """Packs of (kind, address, canonical JSON, record, when) items ("record" or
    "observation"; the record an observation is about; when the item was made: a record's
    `created`, an observation's `observed_at`, or None when not known), in the order given,
    each closed at max_bytes or max_items; yielded one at a time, so that only the pack being
    filled is held. The same items in the same order make the same packs (and so the same
    names). Each pack claims its oldest record and oldest observation (Pack.hint_metadata),
    unless an item of that kind has no time. The limits are PACK_BYTES and PACK_ITEMS unless
    given."""
    max_bytes = PACK_BYTES if max_bytes is None else max_bytes
    max_items = PACK_ITEMS if max_items is None else max_items
    lines: list[bytes] = []
    records: list[str] = []
    observations: list[tuple[str, str]] = []
    oldest: list[Hint | None] = [None, None]  # of the records, of the observations
    unknown = [False, False]  # an item of that kind whose time is not known: no claim
    size = len(HEADER)
    for kind, address, data, record, when in items:
        line = (b"r " if kind == "record" else b"o ") + data + b"\n"
        if lines and (size + len(line) > max_bytes or len(lines) >= max_items):
            yield _finish(lines, records, observations, oldest, unknown)
            lines, records, observations, size = [], [], [], len(HEADER)
            oldest, unknown = [None, None], [False, False]
        lines.append(line)
        size += len(line)
        if kind == "record":
            records.append(address)
            which = 0
        else:
            assert record is not None
            observations.append((address, record))
            which = 1
        if when is None:
            unknown[which] = True
        elif oldest[which] is None or (when, address) < oldest[which]:  # type: ignore[operator]
            oldest[which] = (when, address)
    if lines:
        yield _finish(lines, records, observations, oldest, unknown)


def parse_index(digest: str, data: bytes, max_bytes: int) -> tuple[PackIndex | None, str | None]:
    """(index, None) when data is a well-formed index of pack `digest`, else (None, why).
    An index in canonical JSON, as push writes it, is read by orjson (its writing of the
    value gives the bytes back, so nothing was read otherwise than the strict reader reads
    it, and a well-formed index nests three levels); anything else, or anything that is not
    a well-formed index, is read by safejson.loads_untrusted, which names the problem."""
    if len(data) <= max_bytes:
        value = _canonical(data)
        if value is not None:
            index, _ = _index_of(digest, value)
            if index is not None:
                return index, None
    try:
        value = loads_untrusted(data, max_bytes=max_bytes, max_depth=4)
    except UntrustedJSONError as exc:
        return None, f"pack index: {exc.reason}"
    return _index_of(digest, value)


def _canonical(data: bytes) -> object | None:
    """The JSON value of data when data is its canonical form (record.canonical_json's), else None."""
    import orjson

    from runlog.fastjson import SORTED, plain

    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if orjson.dumps(value, option=SORTED) == data and plain(data) else None


def _index_of(digest: str, value: object) -> tuple[PackIndex | None, str | None]:
    if not isinstance(value, dict) or set(value) != {"format", "pack", "size", "records", "observations"}:
        return None, "not a pack index (members must be format, pack, size, records, observations)"
    if value["format"] != INDEX_FORMAT:
        return None, "pack index in a format this runlog does not know"
    if value["pack"] != digest:
        return None, f"pack index names pack {str(value['pack'])[:12]} but is stored as the index of {digest[:12]}"
    size, records, observations = value["size"], value["records"], value["observations"]
    if type(size) is not int or size < 0 or not isinstance(records, list) or not isinstance(observations, list):
        return None, "not a pack index (a member has the wrong type)"
    if not all(isinstance(a, str) and ADDRESS_RE.match(a) for a in records):
        return None, "pack index lists a record that is not a content address"
    if not all(isinstance(pair, list) and len(pair) == 2 and all(isinstance(a, str) and ADDRESS_RE.match(a)
                                                                 for a in pair) for pair in observations):
        return None, "pack index lists an observation that is not [address, record address]"
    if len(set(records)) != len(records) or len({a for a, _ in observations}) != len(observations):
        return None, "pack index lists an item twice"
    return PackIndex(digest, size, records, [(a, r) for a, r in observations]), None


def split_pack(digest: str, data: bytes, index: PackIndex) -> tuple[list[tuple[str, str, bytes]], str | None]:
    """The items of a pack, as (kind, address, canonical JSON bytes), in order; or ([], why)
    when the pack as a whole cannot be trusted: its bytes do not hash to its name, it is not
    a pack, or it does not hold exactly what its index names. The items themselves are
    checked by the caller (canonical form, schema) one by one."""
    if rec.sha256_hex(data) != digest:
        return [], "content does not match its address (tampered or truncated)"
    if not data.startswith(HEADER) or not data.endswith(b"\n"):
        return [], f"not a pack (it must start with the line {PACK_FORMAT} and end with a newline)"
    if len(data) != index.size:
        return [], f"pack holds {len(data)} bytes, its index says {index.size}"
    items: list[tuple[str, str, bytes]] = []
    for number, line in enumerate(data[len(HEADER):-1].split(b"\n"), start=2):
        kind = KINDS.get(line[:1])
        if kind is None or line[1:2] != b" " or len(line) < 3:
            return [], f"not a pack (line {number} is not `r JSON` or `o JSON`)"
        body = line[2:]
        items.append((kind, rec.sha256_hex(body), body))
    held_records = [address for kind, address, _ in items if kind == "record"]
    held_observations = [address for kind, address, _ in items if kind == "observation"]
    for claimed, held, what in ((index.records, held_records, "record"),
                                ([a for a, _ in index.observations], held_observations, "observation")):
        if claimed != held:
            missing = sorted(set(claimed) - set(held))
            if missing:
                return [], f"its index names {what} {missing[0]} that the pack does not hold"
            extra = sorted(set(held) - set(claimed))
            if extra:
                return [], f"holds {what} {extra[0]} that its index does not name"
            return [], f"its {what}s are not those its index names, in that order (one held twice?)"
    return items, None

