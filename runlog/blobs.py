"""A batch record's cohort held by reference: content-addressed blobs (migration m012).

A batch started from a settings file (s3UriSettings) may hold 100 000 run settings and the
identities of every input they name: ~27 MB of JSON at 100 000 runs. Written inside the
record, all of it was written again after StartRunBatch answered (the record is the intent
plus the answer). submit-batch now takes the two parts that grow with the cohort out of the
intent, stores each as a blob in the same transaction as the attempt (before the call), and
puts a reference in their place; the record written after the answer is a few kilobytes.

The two places (PLACES), each as the record holds it by reference:

- `batch.settings_file.content`  ->  `batch.settings_file.content_blob`
- `resolution.inputs`            ->  `resolution.inputs_blob`

A reference is {"sha256": the SHA-256 of the value's canonical JSON (hex), "bytes": that
JSON's length, "items": how many run settings or inputs the value holds}. The blob is that canonical JSON, stored zlib-compressed in `blobs` and named
by the digest: the record's address covers the digest, the digest covers the bytes (a
Merkle tree of two levels). `runlog verify` checks each blob against its name and each
reference against its blob; push and pull carry the blobs beside the records.

Readers see one form: `inflate` puts each referenced value back in its place and drops the
reference, so that a record held by reference reads exactly as one written inline (the
form of every batch record before m012, and of inline batches). Ledger entries of whole
batch records are inflated when their record is first read (ledger.Entry.record). A batch's
view (`show B`, `diff B1 B2`) keeps the inputs' reference (`view_of`): they are decoded only
by a reader that needs them.

Because the blob is the settings' canonical JSON, the per-run digests and offsets of a
record held by reference (runlog/cohortindex.py) are its blob's: kept in `blob_settings`
(migration m013), keyed by the blob and offsets into it, where a record written inline keeps
its own in `batch_settings`, offsets into its body (Ledger._settings_bytes reads either).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

PLACES = ((("batch", "settings_file"), "content", "content_blob"),
          (("resolution",), "inputs", "inputs_blob"))
PACK_LEVEL = 1  # zlib's fastest: 27 MB of a 100 000-run cohort in ~0.1 s to ~1.5 MB
# In the canonical JSON of every record or intent holding a reference (`content_blob":`,
# `inputs_blob":`): a body without it holds none, and need not be decoded to tell.
MARKER = '_blob":'


class Blob:
    """A value's canonical JSON (`data`), its digest, and the reference a record holds to it."""

    __slots__ = ("data", "sha256", "items")

    def __init__(self, data: bytes, sha256: str | None = None, items: int | None = None):
        from runlog.record import sha256_hex

        self.data = data
        self.sha256 = sha256 if sha256 is not None else sha256_hex(data)
        self.items = items  # how many members or elements the value has (readers count without decoding)

    @property
    def ref(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "bytes": len(self.data),
                **({"items": self.items} if self.items is not None else {})}

    def packed(self) -> bytes:
        import zlib

        return zlib.compress(self.data, PACK_LEVEL)


def _parent(record: dict, path: tuple[str, ...]) -> dict | None:
    node: Any = record
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def take_out(record: dict, made: Callable[[Blob], Any] | None = None) -> dict[str, tuple[Any, Blob]]:
    """Move both places' values out of `record` (changed in place) into blobs, a reference
    left in each value's place. Returns {place: (value, its blob)} (no entry for a place the
    record does not fill). The values are encoded as canonical JSON here (fastjson); `made` is
    given each blob as soon as it is (to compress it while the next is encoded)."""
    from runlog import fastjson

    found = {}
    for path, key, ref_key in PLACES:
        parent = _parent(record, path)
        if parent is None or key not in parent:
            continue
        value = parent.pop(key)
        blob = Blob(fastjson.dumps(value), items=len(value) if isinstance(value, (list, dict)) else None)
        parent[ref_key] = blob.ref
        found[".".join((*path, key))] = (value, blob)
        if made is not None:
            made(blob)
    return found


CONTENT = "batch.settings_file.content"
INPUTS = "resolution.inputs"
INPUTS_REF = PLACES[1][2]  # "inputs_blob", in `resolution`
PLACE_NAMES = tuple(".".join((*path, key)) for path, key, _ in PLACES)  # CONTENT, INPUTS


def refs(record: dict) -> list[tuple[str, str, dict]]:
    """(place, ref key, reference) of each reference `record` holds; place is the dotted path
    of the value it stands for."""
    found = []
    for path, key, ref_key in PLACES:
        parent = _parent(record, path)
        if parent is not None and ref_key in parent:
            found.append((".".join((*path, key)), ref_key, parent[ref_key]))
    return found


def by_reference(record: dict) -> bool:
    return bool(refs(record))


def inflate(record: dict, load: Callable[[str], bytes], lost: list | None = None) -> dict:
    """`record` with each referenced value put back in its place and the reference dropped
    (a copy of the dicts on the way; `record` is left as it is). `load(sha256)` gives a
    blob's canonical JSON (Ledger.blob). A record with no reference is returned as it is.
    With a list as `lost`, a blob `load` cannot give (BlobLost) is added to it and its
    reference left in place (what a read command shows of a damaged ledger)."""
    from runlog import fastjson
    from runlog.errors import BlobLost

    if not by_reference(record):
        return record
    out = dict(record)
    for path, key, ref_key in PLACES:
        parent = _parent(record, path)
        if parent is None or ref_key not in parent:
            continue
        try:
            data = load(parent[ref_key]["sha256"])
        except BlobLost as exc:
            if lost is None:
                raise
            lost.append(exc)
            continue
        node = out
        for step in path[:-1]:
            node[step] = dict(node[step])
            node = node[step]
        value = fastjson.loads(data)
        # in sorted order, as the body has its members (what `show --json` prints)
        node[path[-1]] = dict(sorted([*((k, v) for k, v in parent.items() if k != ref_key), (key, value)]))
    return out


def view_of(view: dict) -> dict:
    """A batch record's view (the record without its settings file's content: Ledger.batch_view)
    as an inline record's reads: the content's reference dropped with the content. The inputs
    stay a reference (`inputs_blob`, with how many there are): a reader that needs them takes
    them with `value_of` (100 000 inputs' identities are ~0.15 s to decode)."""
    return without_ref(view, CONTENT)


def _place(place: str) -> tuple[tuple[str, ...], str]:
    """(path, ref key) of a place (dotted, as `refs` names it)."""
    for path, key, ref_key in PLACES:
        if ".".join((*path, key)) == place:
            return path, ref_key
    raise ValueError(f"no such place: {place}")


def ref_of(record: dict, place: str) -> dict | None:
    """The reference `record` (or a view of it) holds for one place, if it holds it so."""
    path, ref_key = _place(place)
    parent = _parent(record, path)
    held = parent.get(ref_key) if parent is not None else None
    return held if isinstance(held, dict) else None


def without_ref(record: dict, place: str) -> dict:
    """`record` with one place's reference dropped (copies of the dicts on its path; `record`
    is left as it is), or `record` itself when it holds none there."""
    path, ref_key = _place(place)
    parent = _parent(record, path)
    if parent is None or ref_key not in parent:
        return record
    out = dict(record)
    node = out
    for step in path[:-1]:
        node[step] = dict(node[step])
        node = node[step]
    node[path[-1]] = {k: v for k, v in parent.items() if k != ref_key}
    return out


def value_of(record: dict, place: str, load: Callable[[str], bytes]) -> Any:
    """One place's value (dotted, as `refs` names it) whether held inline or by reference;
    None when the record has neither."""
    from runlog import fastjson

    path, ref_key = _place(place)
    parent = _parent(record, path)
    if parent is None:
        return None
    key = place.rsplit(".", 1)[1]
    if key in parent:
        return parent[key]
    if ref_key in parent:
        return fastjson.loads(load(parent[ref_key]["sha256"]))
    return None


def unpack(packed: bytes, size: int) -> tuple[bytes | None, str | None]:
    """(the bytes zlib's `packed` holds, None) when it is one whole zlib stream of at most
    `size` bytes decompressed; else (None, why). Never more than `size` + 1 bytes are made
    (a zlib bomb from a remote stops there)."""
    import zlib

    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(packed, size + 1)
    except (zlib.error, TypeError):
        return None, "is not zlib data"
    if len(data) > size:
        return None, f"decompresses to more than {size} bytes (a zlib bomb?)"
    if not inflater.eof or inflater.unused_data:
        return None, "is not one whole zlib stream (truncated, or bytes after it)"
    return data, None


def readable(sha256: str, row: tuple[Any, Any] | None) -> tuple[bytes | None, str | None]:
    """(the canonical JSON a stored blob holds, None), given its `bytes` and `data` columns
    (`row`, None when the ledger lacks it), when it is one zlib stream of no more than its row
    says, of that length, hashing to its name; else (None, why). What a reader checks before
    it shows or exports a cohort (Ledger.blob); `verify` checks the rest (`stored_problem`)."""
    from runlog.record import sha256_hex

    if row is None:
        return None, "is missing"
    size, packed = row
    if type(size) is not int or size < 0:
        return None, "has no size in its row"
    data, why = unpack(packed, size)
    if data is None:
        return None, why
    if len(data) != size or sha256_hex(data) != sha256:
        return None, "does not hold the bytes its name is the digest of"
    return data, None


def check(ref: dict, data: bytes | None, place: str | None = None, runs: Any = None) -> str | None:
    """What is wrong with the blob a reference names, given its canonical JSON (None: absent
    from the ledger); None when nothing is. For a settings file's content (`place` CONTENT),
    it must list as many run settings as the record's `batch.runs` (`runs`)."""
    import gc

    from runlog import fastjson
    from runlog.record import held_errors, sha256_hex

    if data is None:
        return f"blob {ref['sha256']} is missing"
    if sha256_hex(data) != ref["sha256"]:
        return f"blob {ref['sha256']} does not hold the bytes its name is the digest of"
    if len(data) != ref["bytes"]:
        return f"blob {ref['sha256']} holds {len(data)} bytes, the record says {ref['bytes']}"
    # Decoded with the cyclic garbage collector off: a cohort is ~100 000 small containers that
    # cannot form a cycle, and each collection while they are made walks all made so far
    # (a third of orjson's time at 100 000 runs). Only their count is kept; they are freed
    # before the collector is on again, so that it never walks them.
    enabled = gc.isenabled()
    gc.disable()
    try:
        value, canonical, _ = fastjson.decode_canonical(data)
        is_list = isinstance(value, list)
        count = len(value) if isinstance(value, (list, dict)) else None
        # what the record schema allows there (the blob may come from a team ledger: hostile)
        unfit = held_errors(place, value) if place in PLACE_NAMES and canonical else []
        del value
    except (ValueError, TypeError, RecursionError):
        return f"blob {ref['sha256']} is not JSON"
    finally:
        if enabled:
            gc.enable()
    if not canonical:
        return f"blob {ref['sha256']} is not canonical JSON"
    if unfit:
        return f"blob {ref['sha256']} holds what the record schema refuses at {place}: {unfit[0][:300]}"
    if place == CONTENT and (not is_list or count != runs):
        return f"blob {ref['sha256']} holds {count if is_list else 'no list of'} run settings, the record says {runs}"
    if "items" in ref and (count is None or count != ref["items"]):
        return f"blob {ref['sha256']} holds {'no' if count is None else count} items, the record says {ref['items']}"
    return None


def stored_problem(ref: dict, row: tuple[int, bytes] | None, place: str | None = None,
                   runs: Any = None) -> str | None:
    """What is wrong with a blob as a ledger stores it (`row`: its `bytes` and `data` columns,
    None when absent) for a reference to it: `check`, and the `bytes` column must be the
    length of what `data` decompresses to (verify, and push before it sends the blob)."""
    if row is None:
        return check(ref, None)
    size, packed = row
    data, why = unpack(packed, max(ref["bytes"], size))
    if data is None:
        return f"blob {ref['sha256']} {why}"
    why = check(ref, data, place, runs)
    if why is None and size != len(data):
        why = f"blob {ref['sha256']} says it holds {size} bytes, it holds {len(data)}"
    return why
