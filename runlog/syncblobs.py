"""Blobs on a team ledger: the cohorts batch records hold by reference (runlog/blobs.py).

    blobs/<sha256>.json.zlib    zlib's compression of a blob's canonical JSON, named by the
                                SHA-256 of that JSON (the digest the records' references hold)

A blob is an object of its own, in both remote formats (packs, runlog.remote/2, and one
object per record, runlog.remote/1), not an item of a pack: its name is already its content
address, so a listing of `blobs/` says which the remote holds (no index to read), a blob
named by several batch records (the same settings file submitted again) is sent and fetched
once, and a pull fetches the blobs of the batch records it takes without downloading the
packs of anything else. It is sent as the ledger stores it (zlib's, about 1.5 MB for the
27 MB of a 100 000-run cohort), so that neither side compresses it again.

Push checks each blob it is about to send as `runlog verify` does and sends it before the
records that name it; pull treats each as hostile: its compressed size is capped by the
listing and the GetObject, its decompressed size by the reference's `bytes` and the pull's
limit (a zlib bomb stops there), it must be one whole zlib stream, its bytes must be the
canonical JSON its name is the SHA-256 of, of the length the reference says (blobs.check),
and a settings file's content must list as many run settings as the record's `batch.runs`.

Nothing here talks to S3; the ledger is only read."""

from __future__ import annotations

import re
import zlib
from typing import Any

from runlog import blobs

BLOB_KEY_RE = re.compile(r"^blobs/(?P<sha256>[0-9a-f]{64})\.json\.zlib$")
CONTENT_TYPE = "application/zlib"
_NAMES = b'_blob":'  # in the canonical JSON of any record holding a reference (content_blob, inputs_blob)


def blob_key(sha256: str) -> str:
    return f"blobs/{sha256}.json.zlib"


def references(body: bytes | str) -> tuple[list[tuple[str, dict]], Any]:
    """(place, reference) of each blob the record whose canonical JSON is `body` names, and its
    `batch.runs`; a record naming none is not parsed."""
    from runlog import fastjson

    data = body.encode("utf-8") if isinstance(body, str) else body
    if _NAMES not in data:
        return [], None
    record = fastjson.loads(data)
    return [(place, ref) for place, _, ref in blobs.refs(record)], (record.get("batch") or {}).get("runs")


def unpack(packed: bytes, size: int) -> tuple[bytes | None, str | None]:
    """(the bytes zlib's `packed` holds, None) when it is one whole zlib stream of at most
    `size` bytes decompressed; else (None, why). Never more than `size` + 1 bytes are made."""
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(packed, size + 1)
    except zlib.error:
        return None, "is not zlib data"
    if len(data) > size:
        return None, f"decompresses to more than {size} bytes (a zlib bomb?)"
    if not inflater.eof or inflater.unused_data:
        return None, "is not one whole zlib stream (truncated, or bytes after it)"
    return data, None


def check(ref: dict, data: bytes, place: str, runs: Any) -> str | None:
    """What is wrong with a blob's canonical JSON `data` for one reference to it (blobs.check,
    and for a settings file's content, as many run settings as the record's `runs`)."""
    import orjson

    why = blobs.check(ref, data)
    if why is None and place == blobs.CONTENT:
        listed = orjson.loads(data)
        if not isinstance(listed, list) or len(listed) != runs:
            why = (f"blob {ref['sha256']} holds {len(listed) if isinstance(listed, list) else 'no list of'} run "
                   f"settings, the record says {runs}")
    return why


def received(ref: dict, packed: bytes, place: str, runs: Any, max_bytes: int) -> tuple[bytes | None, str | None]:
    """A blob object fetched from a remote (`packed`, its bytes) for a record's reference
    `ref` to it: (its canonical JSON, None) when it is what the reference names, else
    (None, why). Its decompressed size is capped by the reference's `bytes` and `max_bytes`."""
    if ref["bytes"] > max_bytes:
        return None, (f"too large: its reference says {ref['bytes']} bytes, more than the limit of {max_bytes} "
                      "(`max_bytes`, or max_object_mib in the configuration)")
    data, why = unpack(packed, ref["bytes"])
    if data is None:
        return None, f"blob {ref['sha256']} {why}"
    why = check(ref, data, place, runs)
    return (None, why) if why else (data, None)


def outgoing(ledger, ref: dict, place: str, runs: Any) -> tuple[bytes | None, str | None]:
    """A blob the ledger holds, about to be pushed for a reference to it, checked as `runlog
    verify` checks it: (its bytes as stored, zlib's, None), else (None, why)."""
    stored = ledger.packed_blob(ref["sha256"])
    if stored is None:
        return None, blobs.check(ref, None)
    size, packed = stored
    data, why = unpack(packed, max(ref["bytes"], size))
    if data is None:
        return None, f"blob {ref['sha256']} {why}"
    why = check(ref, data, place, runs)
    if why is None and size != len(data):
        why = f"blob {ref['sha256']} says it holds {size} bytes, it holds {len(data)}"
    return (None, why) if why else (packed, None)
