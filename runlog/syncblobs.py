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
from typing import Any

from runlog import blobs

BLOB_KEY_RE = re.compile(r"^blobs/(?P<sha256>[0-9a-f]{64})\.json\.zlib$")
CONTENT_TYPE = "application/zlib"


def blob_key(sha256: str) -> str:
    return f"blobs/{sha256}.json.zlib"


def references(body: bytes | str) -> tuple[list[tuple[str, dict]], Any]:
    """(place, reference) of each blob the record whose canonical JSON is `body` names, and its
    `batch.runs`; a record naming none is not parsed."""
    from runlog import fastjson

    data = body.encode("utf-8") if isinstance(body, str) else body
    if blobs.MARKER.encode("utf-8") not in data:
        return [], None
    record = fastjson.loads(data)
    return [(place, ref) for place, _, ref in blobs.refs(record)], (record.get("batch") or {}).get("runs")


def received(ref: dict, packed: bytes, place: str, runs: Any, max_bytes: int) -> tuple[bytes | None, str | None]:
    """A blob object fetched from a remote (`packed`, its bytes) for a record's reference
    `ref` to it: (its canonical JSON, None) when it is what the reference names, else
    (None, why). Its decompressed size is capped by the reference's `bytes` and `max_bytes`."""
    if ref["bytes"] > max_bytes:
        return None, (f"too large: its reference says {ref['bytes']} bytes, more than the limit of {max_bytes} "
                      "(`max_bytes`, or max_object_mib in the configuration)")
    data, why = blobs.unpack(packed, ref["bytes"])
    if data is None:
        return None, f"blob {ref['sha256']} {why}"
    why = blobs.check(ref, data, place, runs)
    return (None, why) if why else (data, None)


def outgoing(ledger, ref: dict, place: str, runs: Any) -> tuple[bytes | None, str | None]:
    """A blob the ledger holds, about to be pushed for a reference to it, checked as `runlog
    verify` checks it: (its bytes as stored, zlib's, None), else (None, why)."""
    stored = ledger.packed_blob(ref["sha256"])
    why = blobs.stored_problem(ref, stored, place, runs)
    return (None, why) if why or stored is None else (stored[1], None)
