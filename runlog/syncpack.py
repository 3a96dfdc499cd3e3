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


@dataclass
class PackIndex:
    """What a pack's index says it holds (not yet checked against the pack)."""

    digest: str
    size: int
    records: list[str]
    observations: list[tuple[str, str]]  # (address, record)


def _finish(lines: list[bytes], records: list[str], observations: list[tuple[str, str]]) -> Pack:
    body = HEADER + b"".join(lines)
    digest = rec.sha256_hex(body)
    index = rec.canonical_json({"format": INDEX_FORMAT, "pack": digest, "size": len(body), "records": records,
                                "observations": [list(pair) for pair in observations]})
    return Pack(digest, body, index, records, observations)


def build_packs(items: Iterable[tuple[str, str, bytes, str | None]], *, max_bytes: int = PACK_BYTES,
                max_items: int = PACK_ITEMS) -> Iterator[Pack]:
    """Packs of (kind, address, canonical JSON, record) items ("record" or "observation"; the
    record an observation is about), in the order given, each closed at max_bytes or
    max_items; yielded one at a time, so that only the pack being filled is held. The same
    items in the same order make the same packs (and so the same names)."""
    lines: list[bytes] = []
    records: list[str] = []
    observations: list[tuple[str, str]] = []
    size = len(HEADER)
    for kind, address, data, record in items:
        line = (b"r " if kind == "record" else b"o ") + data + b"\n"
        if lines and (size + len(line) > max_bytes or len(lines) >= max_items):
            yield _finish(lines, records, observations)
            lines, records, observations, size = [], [], [], len(HEADER)
        lines.append(line)
        size += len(line)
        if kind == "record":
            records.append(address)
        else:
            assert record is not None
            observations.append((address, record))
    if lines:
        yield _finish(lines, records, observations)


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

