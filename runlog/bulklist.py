"""A cohort's S3 input identities in bulk: ListObjectsV2 over key ranges, several at once.

A batch of 100 000 runs names 100 000 input objects, usually in a few directories. One
HeadObject each is 100 000 requests; a listing returns 1 000 ETags a call. The wanted keys
of one bucket and directory are sorted and cut into ranges of about a page each; each range
is listed from just before its first key (StartAfter) under the longest prefix its keys
share, until its last key is passed, and the ranges are listed by a few threads at once (the
service answers one range while this process reads another's page). Listing under the
narrowest prefix also spares the service from looking at the rest of the directory.

What a listing says is the identity each key would get from resolve.s3_identity (ETag, size,
LastModified; a listing has no VersionId). The rules of what is recorded:

- a key in a range whose listing went past it (or to the end of the listing) without seeing
  it is NotFound;
- a range whose listing failed (an error from S3, midway or at once) leaves the keys it had
  not seen yet with that error; the keys seen before the failure keep their identity;
- a range not finished within the time budget leaves its keys not seen with Timeout.

Nothing is guessed: a key is given an identity only from an item the service listed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

from runlog import record as rec

PAGE = 1000  # keys per ListObjectsV2 call (S3's most)
JOBS = 8  # ranges listed at once
HEAD_BELOW = 3  # a directory with fewer wanted keys gets one HeadObject each

TIMEOUT = {"kind": "s3-object", "error": {"code": "Timeout", "message": "not resolved within the time budget"}}
NOT_FOUND = {"kind": "s3-object", "error": {"code": "NotFound", "message": "not in the listing of its prefix"}}


def common_prefix(first: str, last: str) -> str:
    """The longest prefix of `first` and `last`: every text between them starts with it."""
    size = min(len(first), len(last))
    at = 0
    while at < size and first[at] == last[at]:
        at += 1
    return first[:at]


def ranges(directory: str, keys: list[str], size: int = PAGE) -> list[tuple[str, str, list[str]]]:
    """(prefix, start_after, keys) for the sorted, distinct `keys` of one directory, cut into
    ranges of at most `size` keys: each listed under the longest prefix its first and last
    keys share, after the previous range's last key (the first range: after its first key
    less its last character, which every key from the first on sorts after)."""
    out = []
    after = ""
    for at in range(0, len(keys), size):
        chunk = keys[at:at + size]
        start = after or (chunk[0][:-1] if len(chunk[0]) > len(directory) else "")
        out.append((common_prefix(chunk[0], chunk[-1]), start, chunk))
        after = chunk[-1]
    return out


def listed(item: dict) -> dict[str, Any]:
    """A ListObjectsV2 item as an input identity (resolve.s3_identity's fields)."""
    found = {"kind": "s3-object", "etag": item.get("ETag", "").strip('"')}
    if item.get("Size") is not None:
        found["size"] = item["Size"]
    moment = item.get("LastModified")
    if moment is not None:  # a datetime from botocore: written as records write one, without a JSON round trip
        found["last_modified"] = rec._default(moment) if isinstance(moment, datetime) else rec.jsonable(moment)
    return found


class Range:
    """One key range of a directory: its wanted keys ({key: uri}, all under `prefix` and
    after `start_after`), listed by `run` from `start_after` until the greatest wanted key is
    passed. What it has found so far can be read (`found`) while it runs: a range the time
    budget cut short keeps the identities of the pages it had read."""

    def __init__(self, s3, bucket: str, prefix: str, start_after: str, keys: dict[str, str], deadline: float,
                 stop: threading.Event | None = None):
        self.s3, self.bucket, self.prefix, self.start_after = s3, bucket, prefix, start_after
        self.keys, self.deadline = keys, deadline
        self.stop = stop or threading.Event()  # set: no further page is asked for (the caller has gone)
        self._found: dict[str, dict] = {}
        self._lock = threading.Lock()

    def found(self) -> dict[str, dict]:
        """{uri: identity} of the wanted keys listed so far."""
        with self._lock:
            return dict(self._found)

    def run(self) -> dict[str, dict]:
        """{uri: identity} for every wanted key: those not listed are NotFound when the
        listing got past them, else Timeout (the budget was spent) or the error S3 answered
        with (the keys listed before it keep their identities)."""
        from runlog.resolve import _error

        if time.monotonic() >= self.deadline:
            return self._rest(TIMEOUT)
        keys, last = self.keys, max(self.keys)
        try:
            pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix,
                                                                       StartAfter=self.start_after)
            for page in pages:
                seen = {}
                passed = False
                for item in page.get("Contents", ()):
                    key = item["Key"]
                    wanted = keys.get(key)
                    if wanted is not None:
                        seen[wanted] = listed(item)
                    if key >= last:
                        passed = True
                        break
                with self._lock:
                    self._found.update(seen)
                if passed:
                    return self._rest(NOT_FOUND)
                if (time.monotonic() >= self.deadline or self.stop.is_set()) and page.get("IsTruncated"):
                    return self._rest(TIMEOUT)  # listed in part
        except Exception as exc:  # recorded per input: those not seen yet are unresolved
            return self._rest({"kind": "s3-object", "error": _error(exc)})
        return self._rest(NOT_FOUND)  # the listing ended before the last wanted key

    def _rest(self, identity: dict) -> dict[str, dict]:
        """What was found, with `identity` for every wanted key not found (one shared dict:
        a record is never changed in place)."""
        found = self.found()
        if len(found) < len(self.keys):
            for uri in self.keys.values():
                if uri not in found:
                    found[uri] = identity
        return found


def _one_page(s3, bucket: str, prefix: str, start_after: str, keys: dict[str, str],
              deadline: float) -> dict[str, dict] | None:
    """{uri: identity} for every wanted key of a directory when one ListObjectsV2 page from
    `start_after` under `prefix` is the whole listing (not truncated: a key it does not hold
    is NotFound); None when there is more to list, the page failed or the budget is spent
    (the ranges then list it, and record what they find or why they could not)."""
    if time.monotonic() >= deadline:
        return None
    try:
        page = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, StartAfter=start_after)
    except Exception:  # the ranges list again and record the error per key
        return None
    if page.get("IsTruncated"):
        return None
    seen = dict.fromkeys(keys.values(), NOT_FOUND)  # what the page does not hold (one shared dict)
    for item in page.get("Contents", ()):
        uri = keys.get(item["Key"])
        if uri is not None:
            seen[uri] = listed(item)
    return seen


def _heads(s3, uris: list[str], deadline: float) -> dict[str, dict]:
    from runlog.resolve import s3_identity

    return {uri: s3_identity(s3, uri) if time.monotonic() < deadline else TIMEOUT for uri in uris}


def bulk_s3_identities(s3, uris: list[str], *, deadline: float, head_below: int = HEAD_BELOW,
                       jobs: int = JOBS, page: int = PAGE) -> dict[str, dict]:
    """{uri: identity} for s3:// URIs, in the order of `uris`: objects by listing key ranges
    (see the module's documentation), `jobs` at once; a directory with fewer than
    `head_below` wanted keys, a prefix (ending in "/") and a whole bucket one call each
    (resolve.s3_identity). `deadline` is time.monotonic()'s: what it leaves is Timeout."""
    from concurrent.futures import ThreadPoolExecutor, wait

    groups: dict[tuple[str, str], dict[str, str]] = {}  # (bucket, directory) -> {key: uri}
    single: list[str] = []  # prefixes and whole buckets: summarised one by one
    directories: dict[str, tuple[dict[str, str], int]] = {}  # "s3://bucket/dir/" -> (its group, where keys start)
    for uri in uris:
        cut = uri.rfind("/") + 1
        directory = directories.get(uri[:cut])
        if directory is None:
            bucket, slash, key = uri[5:].partition("/")
            if not slash:
                single.append(uri)
                continue
            where = (bucket, key[:key.rfind("/") + 1])
            directory = directories[uri[:cut]] = (groups.setdefault(where, {}), 6 + len(bucket))
        if cut == len(uri):
            single.append(uri)
            continue
        directory[0][uri[directory[1]:]] = uri
    stop = threading.Event()  # set when this call returns or raises: its ranges ask for no further page
    # (work, what it found when cut short, the URIs it answers for)
    tasks: list[tuple[Callable[[], dict[str, dict]], Callable[[], dict[str, dict]], list[str]]] = []
    found_early: dict[str, dict] = {}  # directories one page listed whole
    for (bucket, folder), keys in groups.items():
        if len(keys) < head_below:
            single.extend(keys[key] for key in sorted(keys))
            continue
        cuts = ranges(folder, sorted(keys), page)
        if len(cuts) > 1:  # one page first: a directory holding few objects (or none) is listed whole by it
            whole = _one_page(s3, bucket, common_prefix(cuts[0][2][0], cuts[-1][2][-1]), cuts[0][1], keys,
                              deadline)
            if whole is not None:
                found_early.update(whole)
                continue
        for prefix, start_after, chunk in cuts:
            one = Range(s3, bucket, prefix, start_after, {key: keys[key] for key in chunk}, deadline, stop)
            tasks.append((one.run, one.found, list(one.keys.values())))
    for at in range(0, len(single), 16):
        part = single[at:at + 16]
        tasks.append((partial(_heads, s3, part, deadline), dict, part))
    found: dict[str, dict] = found_early
    if len(tasks) == 1 or time.monotonic() >= deadline:
        for work, _, _ in tasks:
            found.update(work())  # each says Timeout itself when the budget is spent
    elif tasks:
        pool = ThreadPoolExecutor(max_workers=min(jobs, len(tasks)), thread_name_prefix="runlog-list")
        try:
            futures = [(pool.submit(work), so_far, answers_for) for work, so_far, answers_for in tasks]
            wait([future for future, _, _ in futures], timeout=max(0.0, deadline - time.monotonic()))
            for future, so_far, answers_for in futures:
                if future.done() and not future.cancelled():
                    found.update(future.result())  # Range and _heads record their own errors
                else:  # cut short by the budget: what it had read, and Timeout for the rest
                    future.cancel()
                    found.update(dict.fromkeys(answers_for, TIMEOUT))
                    found.update(so_far())
        finally:
            stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
    identities = dict.fromkeys(uris, NOT_FOUND)
    identities.update(found)
    return identities
