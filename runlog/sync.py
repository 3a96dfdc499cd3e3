"""A team ledger in S3: records, observations and pending attempts as immutable objects.

Layout under s3://BUCKET/PREFIX/ (docs/team-ledger.md):

  runlog-remote.json                          {"format": "runlog.remote/2"} (or /1)
  packs/<sha256>.pack                         many records and observations (runlog/syncpack.py),
  packs/<sha256>.index.json                   and what they are: written by push
  records/<aa>/<address>.json                 (runlog.remote/1, push --objects: one object each)
                                              a record's canonical JSON (the ledger's `body`);
                                              <aa> = the address's first two hex digits
  observations/<record>/<address>.json        an observation (ledger.observation_object), named
                                              by the SHA-256 of its bytes
  attempts/<requestId, %-quoted>/<sha>.json   a pending attempt's intent, named by its SHA-256
  blobs/<sha256>.json.zlib                    a batch record's cohort held by reference: zlib's
                                              compression of a blob's canonical JSON, named by
                                              the SHA-256 of that JSON (runlog/syncblobs.py);
                                              in both formats

Every object is written once, with `If-None-Match: *`, so nothing on the remote is ever
overwritten; because names are content addresses, merging ledgers is a set union. A pull
checks every object against its name and the record schema before anything is inserted.

boto3/botocore are only imported inside functions (the client is passed in)."""

from __future__ import annotations

import gc
import re
import threading
from collections.abc import Callable, Collection, Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from runlog import record as rec
from runlog import spool as spooling
from runlog.errors import RunlogError, UsageError
from runlog.ledger import Ledger
from runlog.safejson import DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH, UntrustedJSONError, loads_untrusted
from runlog.spool import Spool
from runlog.syncblobs import BLOB_KEY_RE, blob_key
from runlog.syncinsert import Received, ReceivedObservation, RequestOwners, Streamer, cache_kib, insert_all, received
from runlog.syncpack import INDEX_KEY_RE, PACK_KEY_RE, Hint, Pack, PackIndex, index_key, parse_index, read_hints
from runlog.syncreceive import check_observations, check_records
from runlog.textsafe import terminal_safe

if TYPE_CHECKING:
    from runlog.syncworker import Checkers
    from runlog.verify import OutgoingChecks

FORMAT = "runlog.remote/2"  # what a new remote is marked with: packs (runlog/syncpack.py)
FORMAT_OBJECTS = "runlog.remote/1"  # one object per record and observation; still read, written by --objects
FORMATS = (FORMAT, FORMAT_OBJECTS)
MARKER = "runlog-remote.json"
# Left (once) in a remote marked runlog.remote/1 when packs are first pushed to it: a key
# under records/ that is no content address, so that a runlog from before packs, which does
# not see packs, refuses it by name and exits 1 on pull instead of missing their records.
PACKS_NOTICE = "records/0-packs-here-upgrade-runlog.json"
HEX = "0123456789abcdef"
REMOTE_RE = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?$")
# Keys relative to the prefix.
RECORD_KEY_RE = re.compile(r"^records/(?P<fan>[0-9a-f]{2})/(?P<address>[0-9a-f]{64})\.json$")
OBSERVATION_KEY_RE = re.compile(r"^observations/(?P<record>[0-9a-f]{64})/(?P<address>[0-9a-f]{64})\.json$")
ATTEMPT_KEY_RE = re.compile(r"^attempts/(?P<request>[^/]+)/(?P<address>[0-9a-f]{64})\.json$")

# The largest object a pull accepts unless told otherwise. A batch record holds its whole
# cohort (the settings file's content and the identity of every input): about 27 MiB at
# 100 000 runs, so the limit is well above that; objects above LARGE_OBJECT_BYTES (by their
# listed size) are fetched one at a time, so that at most one of them is in memory.
PULL_MAX_BYTES = 256 * 1024 * 1024
LARGE_OBJECT_BYTES = DEFAULT_MAX_BYTES
# ... and that memory is taken from the spool: a pull keeps this much of its checked rows in
# memory (the rest in its temporary file, which the system caches) instead of the spool's
# 64 MiB, so that its peak, reached while it inserts (the cache fills with the pages written
# too), stays where it was (a 30 000-member pull: 272 MiB with SQLite's default cache and a
# 64 MiB spool, 322 MiB with the larger cache, 276 MiB with it and a 16 MiB spool; a
# 10 000-member one, whose 25 MiB of rows all stayed in memory: 200-202 MiB before, 214-216
# MiB with a 16 MiB spool).
PULL_SPOOL_MEMORY = 4 * 1024 * 1024

# While a push or pull runs, Python's cyclic garbage collector leaves alone the objects made
# before it (gc.freeze: the modules, botocore's service models) and looks at the young
# objects once this many more have been made than freed (700 by default). A cohort's pull
# makes a few objects per item received (its address, its row, where it waits), hundreds of
# thousands in all and none in a cycle, and at the defaults every object the process held
# was walked again and again by the older generations' collections: about a tenth of a
# pull's CPU. Cycles (botocore's, an exception's traceback) are still collected: a threshold
# of 100 000 left them long enough to add a sixth to the peak memory of a pull.
COLLECT_AFTER = 10_000

# progress(items, total, label) -> the same items, shown as they pass (the CLI draws a bar)
Progress = Callable[[Iterable, int, str], Iterable]


def no_progress(items: Iterable, total: int, label: str) -> Iterable:
    return items


@dataclass(frozen=True)
class Remote:
    bucket: str
    prefix: str  # "" or ending in "/"

    @classmethod
    def parse(cls, text: str | None) -> Remote:
        if not text:
            raise UsageError("no remote: give s3://BUCKET/PREFIX, or set remote = \"s3://BUCKET/PREFIX\" "
                             "in .runlog.toml")
        match = REMOTE_RE.match(text.strip())
        if not match or ".." in match.group("bucket"):
            raise UsageError(f"remote {text!r} is not s3://BUCKET[/PREFIX] (BUCKET a valid S3 bucket name: "
                             "3-63 lower-case letters, digits, dots and hyphens)")
        prefix = (match.group("prefix") or "").strip("/")
        return cls(match.group("bucket"), prefix + "/" if prefix else "")

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, relative: str) -> str:
        return self.prefix + relative

    def record_key(self, address: str) -> str:
        return self.key(f"records/{address[:2]}/{address}.json")

    def observation_key(self, record: str, address: str) -> str:
        return self.key(f"observations/{record}/{address}.json")

    def attempt_key(self, request_id: str, address: str) -> str:
        return self.key(f"attempts/{quote(request_id, safe='')}/{address}.json")


@dataclass
class Listing:
    """What a remote holds, from one (concurrent) listing."""

    marker: dict | None = None
    records: dict[str, str] = field(default_factory=dict)  # address -> key
    observations: dict[str, tuple[str, str]] = field(default_factory=dict)  # address -> (record, key)
    attempts: dict[str, tuple[str, str]] = field(default_factory=dict)  # address -> (request id, key)
    blobs: dict[str, str] = field(default_factory=dict)  # sha256 -> key (runlog/syncblobs.py)
    misnamed: list[str] = field(default_factory=list)  # keys in records/ or observations/ that are no address
    packs: dict[str, PackIndex] = field(default_factory=dict)  # digest -> its (well-formed) index
    pack_keys: dict[str, str] = field(default_factory=dict)  # digest -> key of each pack listed
    refused: list[tuple[str, str]] = field(default_factory=list)  # (key, why): pack indexes that cannot be used
    sizes: dict[str, int] = field(default_factory=dict)  # key -> size in bytes, as listed
    # digest -> the claims of a pack's index object (its oldest record, its oldest observation)
    hints: dict[str, tuple[Hint | None, Hint | None]] = field(default_factory=dict)
    marker_refused: str | None = None  # why the format marker could not be read (it is then {})

    def packed(self) -> tuple[set[str], set[str]]:
        """The record and observation addresses the packs' indexes name."""
        records = {a for index in self.packs.values() for a in index.records}
        return records, {a for index in self.packs.values() for a, _ in index.observations}


@dataclass
class PushResult:
    remote: str
    records_sent: int = 0
    records_present: int = 0  # already on the remote
    observations_sent: int = 0
    attempts_sent: int = 0
    packs_sent: int = 0  # runlog.remote/2: how many packs (each with its index) were written
    blobs_sent: int = 0  # the cohorts batch records hold by reference (runlog/syncblobs.py)
    conditional_writes: bool = True  # False: the store ignored If-None-Match; HEAD then PUT was used

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PullResult:
    remote: str
    records_received: int = 0
    records_present: int = 0  # on the remote and already in the local ledger
    observations_received: int = 0
    blobs_received: int = 0  # the cohorts of the batch records received (runlog/syncblobs.py)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (key, why)
    remote_pending: list[str] = field(default_factory=list)  # request ids pending elsewhere

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["refused"] = [{"key": key, "why": why} for key, why in self.refused]
        return data


@contextmanager
def collector_relaxed() -> Iterator[None]:
    """Python's cyclic garbage collector run less often (COLLECT_AFTER) and over the objects
    made since (gc.freeze), then as before."""
    before = gc.get_threshold()
    # a host program that froze objects itself keeps them frozen: CPython cannot undo only
    # runlog's freeze, so runlog freezes only when nothing is frozen yet
    freezing = gc.get_freeze_count() == 0
    if freezing:
        gc.freeze()
    gc.set_threshold(max(before[0], COLLECT_AFTER), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        if freezing:
            gc.unfreeze()


# glibc's allocator moves its threshold for giving a freed block back to the system up to the
# largest block freed (up to 32 MiB): once a fetch thread has freed a 1 MiB pack, every later
# pack, page of rows and answer of a worker lands in one of the per-thread heaps (arenas) of a
# pull's 16 fetch threads and stays there when freed. Python's own allocations at the peak of
# a 30 000-member pull were 146 MiB (tracemalloc) against 411-546 MiB resident. With the
# threshold fixed at 128 KiB (its starting value) blocks that large are mapped and unmapped
# each time: the same pull peaked at 231 MiB instead of 358 MiB, for no measurable CPU.
MMAP_THRESHOLD = 128 * 1024


def return_large_blocks() -> None:
    """Fix glibc's mmap threshold at MMAP_THRESHOLD for the rest of the process (a no-op on
    other C libraries): what a pull frees, it gives back (see MMAP_THRESHOLD). A setting of the
    whole process that cannot be undone, so `pull` does not make it: the CLI, whose process
    it is, calls this before pulling; a program using the Python API may."""
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return
    try:
        ctypes.CDLL(None).mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


# -- errors -------------------------------------------------------------------------------------


def _code(exc: Exception) -> tuple[str, int | None]:
    response = getattr(exc, "response", None) or {}
    return (response.get("Error", {}).get("Code", ""), response.get("ResponseMetadata", {}).get("HTTPStatusCode"))


class TransferError(RunlogError):
    """S3 failed part way; nothing local was changed by the failed step."""

    exit_code = 1


def _fail(exc: Exception, remote: Remote, doing: str, done: str = "") -> RunlogError:
    """An S3 failure as one line naming the remote, the cause and what to do."""
    from runlog import aws

    if isinstance(exc, RunlogError):
        return exc
    code, status = _code(exc)
    operation = getattr(exc, "operation_name", None) or "S3"
    if code == "NoSuchBucket":
        cause = f"bucket {remote.bucket} does not exist (create it as docs/team-ledger.md shows, or fix the remote)"
    elif code in ("AccessDenied", "AllAccessDisabled", "Forbidden") or status == 403:
        cause = (f"access denied ({operation}): this AWS identity may not use {remote}; check its IAM policy "
                 "and the bucket policy (`aws sts get-caller-identity` shows who you are)")
    elif aws.is_transport_error(exc):
        cause = f"cannot reach S3: {exc}"
    else:
        cause = aws.error_from(exc, operation).message
    done = f" after {done}" if done else ""
    return TransferError(terminal_safe(f"{doing} {remote} failed{done}: {cause}; nothing local was changed: "
                                       "run it again to resume"))  # the cause may quote the endpoint


# -- listing ------------------------------------------------------------------------------------


class NotS3Error(TransferError):
    """The endpoint answered a listing with something that is not an S3 listing (an HTML
    login page of a proxy, a web server): no conclusion about the remote can be drawn."""


def _not_s3(remote: Remote, page: dict) -> NotS3Error:
    headers = (page.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
    status = (page.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    kind = terminal_safe(headers.get("content-type") or "no content type")[:80]
    return NotS3Error(f"{remote} did not answer as S3: ListObjectsV2 returned HTTP {status} with {kind} and no "
                      "listing (a proxy's login page, or an endpoint that is not S3?); check the S3 endpoint "
                      "(AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL or the profile's endpoint_url); nothing local "
                      "was changed")


def _list_keys(s3, remote: Remote, prefix: str) -> list[tuple[str, int | None]]:
    """(key, size) of every object under prefix. Every page must be an S3 listing: an answer
    that parses to no listing at all (HTML with status 200) is an error, not an empty remote."""
    keys: list[tuple[str, int | None]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=remote.bucket, Prefix=prefix):
        if "IsTruncated" not in page or "text/html" in str(
                ((page.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}).get("content-type", "")):
            raise _not_s3(remote, page)
        keys.extend((item["Key"], item.get("Size")) for item in page.get("Contents", []))
    return keys


def _too_large(size: int, max_bytes: int) -> str:
    return (f"too large: {size} bytes, more than the limit of {max_bytes} (`max_bytes`, or "
            "max_object_mib in the configuration)")


def read_limited(s3, bucket: str, key: str, max_bytes: int) -> bytes:
    """GetObject, reading at most max_bytes + 1 bytes. Raises UntrustedJSONError for an object
    larger than max_bytes (which is never downloaded whole)."""
    return _get_limited(s3, bucket, key, max_bytes)[0]


def _get_limited(s3, bucket: str, key: str, max_bytes: int) -> tuple[bytes, object]:
    """read_limited, with the object's user metadata (as boto3 gives it)."""
    answer = s3.get_object(Bucket=bucket, Key=key)
    body = answer["Body"]
    try:
        size = answer.get("ContentLength")
        if isinstance(size, int) and size > max_bytes:
            raise UntrustedJSONError(_too_large(size, max_bytes))
        data = body.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise UntrustedJSONError(_too_large(len(data), max_bytes).replace(" bytes", " bytes or more", 1))
        return data, answer.get("Metadata")
    finally:
        body.close()


def _read_marker(s3, remote: Remote, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[dict | None, str | None]:
    """(marker, None); (None, None) when there is none; ({}, why) for a marker that is not
    strict JSON within the limits (every object is still checked on its own, so a pull goes on)."""
    try:
        data = read_limited(s3, remote.bucket, remote.key(MARKER), max_bytes)
        marker = loads_untrusted(data, max_bytes=max_bytes, max_depth=DEFAULT_MAX_DEPTH)
    except UntrustedJSONError as exc:
        return {}, exc.reason
    except Exception as exc:
        if _code(exc)[0] in ("NoSuchKey", "404"):
            return None, None
        raise
    return (marker, None) if isinstance(marker, dict) else ({"format": None}, None)


def check_format(remote: Remote, marker: dict) -> None:
    found = marker.get("format")
    if found not in FORMATS:
        what = f"format {terminal_safe(found)[:80]}" if isinstance(found, str) else "a format this runlog cannot read"
        raise UsageError(f"{remote} holds a team ledger in {what} (its {MARKER}); this runlog reads and writes "
                         f"{' and '.join(FORMATS)}: upgrade runlog (pip install -U runlog)")


def _no_team_ledger(remote: Remote) -> TransferError:
    return TransferError(f"{remote} holds no team ledger (no {MARKER}): check the bucket and prefix, "
                         "or `push()` to start one there")


def survey(s3, remote: Remote, *, jobs: int = 16, doing: str = "reading", expect_ledger: bool = False,
           max_bytes: int = DEFAULT_MAX_BYTES) -> Listing:
    """List the remote: the format marker, then records, observations and attempts, with the
    key space split by the first hex digit so that pages are fetched in parallel.
    Raises TransferError (bucket missing, no permission, network, an answer that is not S3;
    with expect_ledger, no marker) or UsageError (a format this runlog does not know).
    A marker that is not strict JSON within the limits is noted in `marker_refused`."""
    parts = ([f"records/{h}" for h in HEX] + [f"observations/{h}" for h in HEX] + [f"packs/{h}" for h in HEX]
             + ["attempts/", "blobs/"])
    listing = Listing()
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            marker = pool.submit(_read_marker, s3, remote, min(max_bytes, LARGE_OBJECT_BYTES))
            pages = [pool.submit(_list_keys, s3, remote, remote.key(part)) for part in parts]
            listing.marker, listing.marker_refused = marker.result()
            if listing.marker is not None and listing.marker_refused is None:
                check_format(remote, listing.marker)
            keys = [key for page in pages for key in page.result()]
    except Exception as exc:
        raise _fail(exc, remote, doing) from None
    if expect_ledger and listing.marker is None:
        raise _no_team_ledger(remote)
    indexes: dict[str, str] = {}
    for key, size in keys:
        if size is not None:
            listing.sizes[key] = size
        relative = key[len(remote.prefix):]
        if match := PACK_KEY_RE.match(relative):
            listing.pack_keys[match.group("digest")] = key
            continue
        if match := INDEX_KEY_RE.match(relative):
            indexes[match.group("digest")] = key
            continue
        if relative == PACKS_NOTICE:
            continue
        if match := RECORD_KEY_RE.match(relative):
            if match.group("fan") == match.group("address")[:2]:
                listing.records[match.group("address")] = key
                continue
        elif match := OBSERVATION_KEY_RE.match(relative):
            listing.observations[match.group("address")] = (match.group("record"), key)
            continue
        elif match := ATTEMPT_KEY_RE.match(relative):
            listing.attempts[match.group("address")] = (unquote(match.group("request")), key)
            continue
        elif match := BLOB_KEY_RE.match(relative):
            listing.blobs[match.group("sha256")] = key
            continue
        if not relative.startswith("attempts/"):
            listing.misnamed.append(key)
    _read_indexes(s3, remote, listing, indexes, jobs=jobs, doing=doing, max_bytes=max_bytes)
    return listing


def _read_indexes(s3, remote: Remote, listing: Listing, indexes: dict[str, str], *, jobs: int, doing: str,
                  max_bytes: int) -> None:
    """Fetch the index of every pack listed, --jobs at a time (small objects: one per pack).
    A pack without an index is not yet (or never completely) pushed: its pusher sends its
    items again, so it is left alone. An index without its pack, or one that is not a
    well-formed index of that pack, is noted in `refused` and its pack is not used."""
    for digest, key in indexes.items():
        if digest not in listing.pack_keys:
            listing.refused.append((key, "index of a pack that is not there"))
    wanted = sorted((digest, key) for digest, key in indexes.items() if digest in listing.pack_keys)

    def fetch(item: tuple[str, str]) -> tuple[tuple[PackIndex, object] | None, str | None]:
        digest, key = item
        size = listing.sizes.get(key)
        if size is not None and size > max_bytes:
            return None, _too_large(size, max_bytes)
        try:
            data, metadata = _get_limited(s3, remote.bucket, key, max_bytes)
        except Exception as exc:
            why = _fetch_problem(exc, remote)
            if why is None:
                raise
            return None, why
        index, why = parse_index(digest, data, max_bytes)
        return (None, why) if index is None else ((index, metadata), None)

    for (digest, key), (found, why) in _transfer(wanted, fetch, remote, doing, jobs=jobs, progress=no_progress,
                                                 label="reading pack indexes"):
        if found is None:
            listing.refused.append((key, why or "unreadable"))
        else:
            listing.packs[digest] = found[0]
            listing.hints[digest] = read_hints(found[1])


# -- transfers ----------------------------------------------------------------------------------


def run_concurrently(items: list, action: Callable, *, jobs: int, progress: Progress = no_progress,
                     label: str = "") -> Generator[tuple[Any, Any], None, None]:
    """Run action(item) for every item on up to `jobs` threads (boto3 clients may be shared
    between threads); yields (item, result) as each finishes. The first failure is raised;
    what has not started is cancelled, and so is everything when the caller stops early."""
    if not items:
        return
    pool = ThreadPoolExecutor(max_workers=max(1, min(jobs, len(items))))
    try:
        futures = {pool.submit(action, item): item for item in items}
        for future in progress(as_completed(futures), len(futures), label):
            yield futures[future], future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _transfer(items: list, action: Callable, remote: Remote, doing: str, *, jobs: int, progress: Progress,
              label: str, each: Callable[[Any, Any], None] | None = None) -> list[tuple[Any, Any]]:
    """run_concurrently, collected, or with `each`, handed to each(item, result) as each
    arrives (what each raises is raised as it is); a failure of the transfer becomes one
    TransferError line saying how far it got."""
    done: list[tuple[Any, Any]] = []
    count = 0
    results = run_concurrently(items, action, jobs=jobs, progress=progress, label=label)
    try:
        while True:
            try:
                pair = next(results)
            except StopIteration:
                break
            except Exception as exc:
                raise _fail(exc, remote, doing, f"{count} of {len(items)} objects") from None
            count += 1
            if each is None:
                done.append(pair)
            else:
                each(*pair)
    finally:
        results.close()
    return done


class ConditionalWriter:
    """PutObject that never overwrites: `If-None-Match: *` (412 means the object is there).
    A store that answers 501 Not Implemented to the condition gets HEAD, then PUT if absent,
    from then on (a race with another writer of the same key is harmless: same name, same bytes)."""

    def __init__(self, s3, bucket: str):
        self.s3 = s3
        self.bucket = bucket
        self.conditional = True

    def put(self, key: str, body: bytes, metadata: dict[str, str], content_type: str = "application/json") -> bool:
        """True when written, False when an object of that name was already there."""
        args = {"Bucket": self.bucket, "Key": key, "Body": body, "ContentType": content_type,
                "Metadata": metadata}
        if self.conditional:
            try:
                self.s3.put_object(IfNoneMatch="*", **args)
                return True
            except Exception as exc:
                code, status = _code(exc)
                # 409: a conditional write of the same key (same bytes) is under way elsewhere
                if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (412, 409):
                    return False
                if code != "NotImplemented" and status != 501:
                    raise
                self.conditional = False
        if self._exists(key):
            return False
        self.s3.put_object(**args)
        return True

    def _exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _code(exc)[0] in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True


# -- push ---------------------------------------------------------------------------------------


@collector_relaxed()
def push(ledger: Ledger, s3, remote: Remote, *, jobs: int = 16, progress: Progress = no_progress,
         objects: bool = False) -> PushResult:
    """Send what the remote lacks: records, observations, pending attempts, and the blobs of
    the cohorts batch records hold by reference (runlog/syncblobs.py). The remote is
    listed first (with the index of every pack), so pushing twice sends nothing and an
    interrupted push resumes. Records and observations go in packs (runlog.remote/2, see
    runlog/syncpack.py), or with `objects` one object each (runlog.remote/1, which runlog
    versions before packs read). Each is checked as verify checks it as it is read from the
    ledger (verify.outgoing_records, outgoing_observations), and the bytes checked are the
    bytes sent; one that fails is refused (LedgerError naming it, and saying what was sent)
    and is never sent: in packs, the checks run while the packs made before are sent, so
    those being sent when it is found are finished (each with its index), and no pack is
    sent after, least of all one holding it; with `objects`, nothing is sent. The local
    ledger is only read, except that observation addresses are cached once the push
    succeeded."""
    from runlog import pushworker
    from runlog.verify import outgoing_observations

    pushworker.worker_count(0)  # a RUNLOG_PUSH_WORKERS that is no number is said before anything is sent
    result = PushResult(str(remote))
    head = ledger.head()  # read first: every record it counts is among those pushed below
    listing = survey(s3, remote, jobs=jobs, doing="push to")
    writer = ConditionalWriter(s3, remote.bucket)
    if listing.marker is None:
        try:
            writer.put(remote.key(MARKER), rec.canonical_json({"format": FORMAT_OBJECTS if objects else FORMAT}), {})
        except Exception as exc:
            raise _fail(exc, remote, "push to") from None
    packed_records, packed_observations = listing.packed()
    attempts = []
    intents = []  # of the attempts sent: the blobs they name are sent too
    for intent in ledger.pending():
        data = rec.canonical_json(intent)
        address = rec.sha256_hex(data)
        if address not in listing.attempts:
            attempts.append(("attempt", remote.attempt_key(intent["request"]["requestId"], address), data,
                             {"runlog-address": address}))
            intents.append(intent)
    held = ledger.addresses()
    records = held - set(listing.records) - packed_records
    result.records_present = len(held) - len(records)
    present = set(listing.observations) | packed_observations
    computed: list[tuple[int, str]] = []  # observation addresses computed on the way, cached at the end
    with pushworker.Checkers(ledger) as checkers:
        most, observations = outgoing_observations(ledger, present, computed, checkers)
        checkers.start(pushworker.worker_count(len(records) + most))  # the checks on the cores the sending leaves idle
        items = _checked_items(ledger, records, observations, checkers)
        blobs, problems = _outgoing_blobs(ledger, records, intents, listing.blobs)
        problems.extend(_second_starts(ledger, records))
        if objects:
            work: list[tuple[str, str, bytes, dict[str, str]]] = []  # (kind, key, body, metadata)
            for kind, name, body, record, found, _ in items:
                problems.extend(problem.message for problem in found)
                if problems:
                    continue
                assert name is not None and body is not None
                if kind == "record":
                    work.append((kind, remote.record_key(name), body, {"runlog-address": name}))
                else:
                    work.append((kind, remote.observation_key(str(record), name), body,
                                 {"runlog-address": name, "runlog-record": str(record)}))
            if problems:
                raise _refusal(problems, result)
            _push_blobs(blobs, listing, writer, remote, result, jobs=jobs, progress=progress)
            _push_objects(work + attempts, writer, remote, result, jobs=jobs, progress=progress)
        else:
            if problems:
                raise _refusal(problems, result)
            _push_blobs(blobs, listing, writer, remote, result, jobs=jobs, progress=progress)
            notice = (lambda: _put_packs_notice(writer, remote)) if isinstance(listing.marker, dict) \
                and listing.marker.get("format") == FORMAT_OBJECTS else None
            problems = _push_packs(items, len(records) + most, writer, remote, result, jobs=jobs, progress=progress,
                                   first=notice)
            if problems:
                raise _refusal(problems, result)
            _push_objects(attempts, writer, remote, result, jobs=jobs, progress=progress)
    result.conditional_writes = writer.conditional
    _put_head(writer, remote, ledger, head)
    _cache_observation_addresses(ledger, computed)
    return result


# (kind, address, JSON, record, problems, when): `when` a record's `created`, an observation's
# `observed_at` (None when not known: its pack then claims no oldest item of that kind)
Checked = tuple[str, str | None, bytes | None, str | None, list, str | None]


def _checked_items(ledger: Ledger, records: Collection[str], observations: Iterator[tuple],
                   checkers: OutgoingChecks | None = None) -> Iterator[Checked]:
    """(kind, address, canonical JSON, record, problems, when) of each record among `records`, oldest
    first (verify.outgoing_records), then of each of `observations` (verify.outgoing_observations': the record
    an observation is about; verify's Problems found, none for an item that may be sent), read
    and checked as they are taken (by `checkers`' workers when it has any: runlog/pushworker.py)."""
    from runlog.verify import outgoing_records

    if records:
        for address, body, problems, created in outgoing_records(ledger, records, checkers):
            yield "record", address, body, None, problems, created
    for named, record, data, found, observed in observations:
        yield "observation", named, data, record, found, observed


def _second_starts(ledger: Ledger, records: Collection[str]) -> list[str]:
    """What is wrong with the records about to be sent that say they started a run or batch
    another record started, or in another form (verify.check_started_once): pull would refuse
    them. Those the remote holds already are not sent again, so are not named."""
    from runlog.verify import check_started_once

    return [f"{problem.message} ({problem.where})" for problem in check_started_once(ledger)
            if problem.where in records]


def _refusal(problems: list[str], result: PushResult) -> RunlogError:
    """The error of a push that refused what failed verify's checks, saying what it sent."""
    from runlog.errors import LedgerError

    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    sent = ", ".join(f"{count} {what}" for count, what in (
        (result.records_sent, "record(s)"), (result.observations_sent, "observation(s)"),
        (result.blobs_sent, "blob(s)")) if count)
    done = f"{sent} checked before it were sent, nothing after" if sent else "nothing was sent"
    return LedgerError(f"refusing to push: {problems[0]}{more}; {done} (run `verify()` to see every problem)")


def _push_objects(work: list[tuple[str, str, bytes, dict[str, str]]], writer: ConditionalWriter, remote: Remote,
                  result: PushResult, *, jobs: int, progress: Progress) -> None:
    """One object per item (runlog.remote/1's layout; attempts always)."""
    done = _transfer(work, lambda item: writer.put(*item[1:]), remote, "push to", jobs=jobs, progress=progress,
                     label="pushing")
    for (kind, _, _, _), written in done:
        if kind == "record":
            result.records_sent += written
            result.records_present += not written
        elif kind == "observation":
            result.observations_sent += written
        else:
            result.attempts_sent += written


class _Refused(Exception):
    """An item to push failed its checks: no further pack is made."""


class _LedgerRead(Exception):
    """Reading or checking the ledger failed (its cause): raised as it is, not as S3's failure."""


def _push_packs(items: Iterator[Checked], total: int, writer: ConditionalWriter, remote: Remote,
                result: PushResult, *, jobs: int, progress: Progress, first: Callable[[], None] | None = None
                ) -> list[str]:
    """Items (kind, address, canonical JSON, record, problems, when: _checked_items) in packs: each
    pack written, then its index (a pack counts as pushed only once its index is there),
    --jobs packs at a time. Packs are made from the items as the threads take them, so that
    about 2 x jobs packs, and never all the items, are held at once, and the items are read
    and checked while the packs made before are sent. An item goes into a pack only when its
    checks found nothing: at the first that found something no further pack is made (the one
    being filled is dropped), the packs being sent are finished and those not yet started are
    not sent; the rest of the items are checked (not sent) and every problem found is
    returned, else []. `first` is called before the first pack is sent. Each item
    goes with its time (a record's `created`, an observation's `observed_at`), for the claims
    each index object carries as metadata (the oldest record and observation of its pack:
    syncpack.Pack.hint_metadata)."""
    from runlog.syncpack import build_packs, pack_key

    problems: list[str] = []
    counted = threading.Lock()

    def passed() -> Iterator[tuple[str, str, bytes, str | None, str | None]]:
        while True:
            try:
                kind, address, data, record, found, when = next(items)
            except StopIteration:
                return
            except Exception as exc:
                raise _LedgerRead from exc
            if found:
                problems.extend(problem.message for problem in found)
                raise _Refused
            assert address is not None and data is not None
            yield kind, address, data, record, when

    def packs() -> Iterator[Pack]:
        for number, pack in enumerate(build_packs(progress(passed(), total, "pushing"))):
            if number == 0 and first is not None:
                first()
            yield pack

    def send(pack: Pack) -> None:
        written = writer.put(remote.key(pack_key(pack.digest)), pack.body, {"runlog-pack": pack.digest},
                             content_type="application/x-ndjson")
        writer.put(remote.key(index_key(pack.digest)), pack.index, {"runlog-pack": pack.digest, **pack.hint_metadata()})
        with counted:  # here, not as the main thread takes the results: a refusal leaves some untaken
            result.packs_sent += written
            if written:
                result.records_sent += len(pack.records)
                result.observations_sent += len(pack.observations)
            else:  # the same pack is there already (a push stopped after it, before its index)
                result.records_present += len(pack.records)

    sent = 0
    try:
        for pack, _ in _bounded(packs(), send, jobs=jobs):
            sent += len(pack.records) + len(pack.observations)
    except _Refused:
        problems.extend(problem.message for *_, found, _ in items for problem in found)
    except _LedgerRead as failed:
        assert failed.__cause__ is not None
        raise failed.__cause__ from None
    except Exception as exc:
        raise _fail(exc, remote, "push to", f"{sent} of {total} records and observations") from None
    return problems


def _bounded(items: Iterator, action: Callable, *, jobs: int) -> Iterator[tuple[Any, Any]]:
    """(item, action(item)) for items taken from an iterator as threads free up, with at most
    2 x jobs taken and not yet done; the first failure is raised, and the rest cancelled.
    When taking an item raises, what was not started is cancelled, what was is finished."""
    from concurrent.futures import FIRST_COMPLETED, wait

    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    pending: dict = {}
    try:
        for item in items:
            pending[pool.submit(action, item)] = item
            while len(pending) >= 2 * jobs:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield pending.pop(future), future.result()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield pending.pop(future), future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _put_packs_notice(writer: ConditionalWriter, remote: Remote) -> None:
    body = rec.canonical_json({"format": FORMAT, "note": "this runlog.remote/1 team ledger also holds packs "
                               "(packs/): upgrade runlog to pull them"})
    try:
        writer.put(remote.key(PACKS_NOTICE), body, {})
    except Exception as exc:
        raise _fail(exc, remote, "push to") from None


def _outgoing_blobs(ledger: Ledger, records: set[str], intents: Iterable[dict], present: Collection[str]
                    ) -> tuple[dict[str, bytes], list[str]]:
    """The blobs named by the records about to be sent (their addresses), by the pending
    attempts' `intents` and by any other record whose blob the remote lacks (not among
    `present`: removed, or refused by every pull), each checked as verify checks it
    (syncblobs.outgoing): ({sha256: bytes as stored}, what is wrong with those that fail,
    one line each)."""
    from runlog import blobs
    from runlog.syncblobs import outgoing, references

    named: list[tuple[str, str, dict, Any]] = []  # (who names it, place, reference, the batch's runs)
    for address, body in ledger.blob_holders():
        refs, runs = references(body)
        named.extend((f"record {address}", place, ref, runs) for place, ref in refs
                     if address in records or ref["sha256"] not in present)
    for intent in intents:
        runs = (intent.get("batch") or {}).get("runs")
        who = f"pending attempt {terminal_safe(intent['request']['requestId'])[:80]}"
        named.extend((who, place, ref, runs) for place, _, ref in blobs.refs(intent))
    held: dict[str, bytes] = {}
    checked: set[tuple[str, int, str, Any]] = set()
    problems: list[str] = []
    for who, place, ref, runs in named:
        if (ref["sha256"], ref["bytes"], place, runs) in checked:
            continue
        packed, why = outgoing(ledger, ref, place, runs)
        if packed is None:
            problems.append(f"{who}: its {place} (held by reference) cannot be trusted: {why}")
            continue
        checked.add((ref["sha256"], ref["bytes"], place, runs))
        held[ref["sha256"]] = packed
    return held, problems


def _push_blobs(held: dict[str, bytes], listing: Listing, writer: ConditionalWriter, remote: Remote,
                result: PushResult, *, jobs: int, progress: Progress) -> None:
    """The blobs the remote lacks (`held`: {sha256: zlib's bytes}), one object each, before the
    records that name them (runlog/syncblobs.py)."""
    from runlog.syncblobs import CONTENT_TYPE

    work = sorted(sha for sha in held if sha not in listing.blobs)
    done = _transfer(work, lambda sha: writer.put(remote.key(blob_key(sha)), held[sha], {"runlog-blob": sha},
                                                  content_type=CONTENT_TYPE),
                     remote, "push to", jobs=jobs, progress=progress, label="pushing blobs")
    result.blobs_sent += sum(written for _, written in done)


# -- heads: a witness of each ledger's length and chain ------------------------------------------

HEAD_FORMAT = "runlog.head/1"
HEAD_KEY_RE = re.compile(r"heads/(?P<ledger>[0-9a-f-]{36})/(?P<count>\d{12})\.json$")


def _head_key(remote: Remote, ledger_id: str, count: int) -> str:
    return remote.key(f"heads/{ledger_id}/{count:012d}.json")


def _put_head(writer: ConditionalWriter, remote: Remote, ledger: Ledger, head: tuple[int, str | None]) -> None:
    """Leave heads/<ledger id>/<count>.json, {records, chain}, once the records are there: what
    `runlog verify` later checks the local ledger against (records deleted from its end, or a
    rewritten chain, no longer match). Written once, like every object; never read by pull."""
    count, chain = head
    ledger_id = ledger.meta().get("ledger_id")
    if not count or not ledger_id:
        return
    body = rec.canonical_json({"format": HEAD_FORMAT, "ledger": ledger_id, "records": count, "chain": chain})
    key = _head_key(remote, ledger_id, count)
    try:
        if key in {name for name, _ in _list_keys(writer.s3, remote, remote.key(f"heads/{ledger_id}/"))}:
            return  # pushed before with this many records: nothing new to witness
        writer.put(key, body, {})
    except Exception as exc:
        raise _fail(exc, remote, "push to", "records and observations sent; the head") from None


def remote_head(s3, remote: Remote, ledger_id: str) -> tuple[int, str] | None:
    """The newest head this ledger pushed to the remote, as (records, chain), or None."""
    prefix = remote.key(f"heads/{ledger_id}/")
    try:
        keys = [name for name, _ in _list_keys(s3, remote, prefix)]
        found = [(int(m.group("count")), key) for key in keys
                 if (m := HEAD_KEY_RE.search(key)) and m.group("ledger") == ledger_id]
        if not found:
            return None
        count, key = max(found)
        raw = s3.get_object(Bucket=remote.bucket, Key=key)["Body"].read(64 * 1024 + 1)
    except Exception as exc:
        raise _fail(exc, remote, "read the head from") from None
    try:  # written by whoever can write the bucket: read like every remote object
        data = loads_untrusted(raw, max_bytes=64 * 1024, max_depth=4)
    except UntrustedJSONError as exc:
        raise TransferError(f"{remote}: head object {key} is malformed ({exc})") from None
    if (not isinstance(data, dict) or data.get("records") != count or data.get("ledger") != ledger_id
            or not isinstance(data.get("chain"), str) or not re.fullmatch(r"[0-9a-f]{64}", data["chain"])):
        raise TransferError(f"{remote}: head object {key} is malformed")
    return count, data["chain"]


def check_remote_head(ledger: Ledger, report, s3, remote: Remote) -> None:
    """Add to a verify Report (runlog.verify) whether the ledger still holds the newest head
    it pushed to `remote`: records removed from its end since the push are named. A head
    that cannot be read is a problem too."""
    from runlog.verify import Problem, check_head

    report.witnesses.append(str(remote))
    ledger_id = ledger.meta().get("ledger_id")
    try:
        head = remote_head(s3, remote, ledger_id) if ledger_id else None
    except RunlogError as exc:
        report.problems.append(Problem("head", str(remote), f"cannot read the head pushed to {remote}: "
                                       f"{exc.message}"))
        return
    if head is not None:
        report.problems.extend(check_head(ledger, head[0], head[1], witness=f"the head pushed to {remote}"))


def _cache_observation_addresses(ledger: Ledger, found: list[tuple[int, str]] | None = None) -> None:
    """Store the observations' addresses (those push computed: `found`, else all not stored)."""
    from runlog.errors import LedgerError

    try:
        ledger.index_observations(found)
    except LedgerError:  # a read-only ledger: the addresses are computed again next time
        pass


# -- pull ---------------------------------------------------------------------------------------

def _fetch_problem(exc: Exception, remote: Remote) -> str | None:
    """Why one object could not be fetched, when the cause is that object (denied, gone,
    too large) rather than the connection or the service (those abort the pull)."""
    if isinstance(exc, UntrustedJSONError):
        return exc.reason
    code, status = _code(exc)
    if code in ("AccessDenied", "AllAccessDisabled", "Forbidden") or status == 403:
        return (f"access denied (GetObject): this AWS identity may not read this object of {remote}; check "
                "the IAM and bucket policies")
    if code in ("NoSuchKey", "404", "NotFound") or status == 404:
        return "gone: listed, then not found (deleted since the listing?)"
    if code in ("InvalidObjectState", "ObjectNotInActiveTierError"):
        return f"cannot be read ({code}: archived to a storage class that must be restored first)"
    return None


@collector_relaxed()
def pull(ledger: Ledger, s3, remote: Remote, *, jobs: int = 16, progress: Progress = no_progress,
         listing: Listing | None = None, max_bytes: int = PULL_MAX_BYTES, workers: int | None = None) -> PullResult:
    """Fetch the records and observations the local ledger lacks, verify each, and insert the
    good ones (records first, oldest first, at the end of the local chain). Objects that fail
    (a wrong name or content, not strict JSON, larger than max_bytes, nested too deep, a
    requestId another record already has, denied or gone) are named in `refused` and left
    out; the rest are imported. A batch record holding its cohort by reference is taken with
    its blobs, checked as hostile input (_pull_blobs), or left out. A failure of the
    connection or of S3 itself raises TransferError before anything is inserted.

    Each item is checked once, as it arrives (runlog/syncreceive.py), and what its row needs
    waits in a spool on disk: memory holds the packs being checked and a few dozen bytes per
    item, never every item received. A pull with many packs to check checks them in worker
    processes (runlog/syncworker.py), `workers` of them (by default one per core; 0: none)."""
    result = PullResult(str(remote))
    if listing is None:
        listing = survey(s3, remote, jobs=jobs, doing="pull from", expect_ledger=True, max_bytes=max_bytes)
    if listing.marker is None:
        raise _no_team_ledger(remote)
    if listing.marker_refused:
        result.refused.append((remote.key(MARKER), f"format marker unreadable: {listing.marker_refused}"))
    result.refused.extend((key, "not named by a content address in the layout") for key in listing.misnamed)
    result.refused.extend(listing.refused)
    with Spool(min(PULL_SPOOL_MEMORY, spooling.SPOOL_MEMORY)) as spool:
        _receive(ledger, s3, remote, listing, spool, result, jobs=jobs, progress=progress, max_bytes=max_bytes,
                 workers=workers)
    recorded = ledger.request_ids()
    result.remote_pending = sorted({request for request, _ in listing.attempts.values() if request not in recorded})
    result.refused.sort()
    return result


def _receive(ledger: Ledger, s3, remote: Remote, listing: Listing, spool: Spool, result: PullResult, *,
             jobs: int, progress: Progress, max_bytes: int, workers: int | None = None) -> None:
    """pull(): fetch and check what the ledger lacks, into `spool`, then insert it."""
    one_large = threading.Semaphore(1)

    def fetch(key: str, check: Callable[[bytes], tuple[Any, str | None]]) -> tuple[Any, str | None]:
        size = listing.sizes.get(key)
        if size is not None and size > max_bytes:
            return None, _too_large(size, max_bytes)
        try:
            if size is None or size > LARGE_OBJECT_BYTES:
                with one_large:
                    data = read_limited(s3, remote.bucket, key, max_bytes)
                    return check(data)
            data = read_limited(s3, remote.bucket, key, max_bytes)
        except Exception as exc:
            why = _fetch_problem(exc, remote)
            if why is None:
                raise
            return None, why
        return check(data)

    def fetch_record(item: tuple[str, str]) -> tuple[Any, str | None]:
        address, key = item

        def check(data: bytes) -> tuple[Any, str | None]:
            (found, why), = check_records([(address, data)], max_bytes)
            if found is None:
                return None, why
            created, request_id, row = found
            return received(created, address, key, request_id, row, spool), None

        return fetch(key, check)

    local = ledger.addresses()
    have = ledger.observation_addresses()
    packed_records, _ = listing.packed()
    wanted = [(address, key) for address, key in listing.records.items() if address not in local]
    result.records_present = len((set(listing.records) | packed_records) & local)
    records: list[Received] = []
    for (_, key), (found, why) in _transfer(wanted, fetch_record, remote, "pull from", jobs=jobs,
                                                  progress=progress, label="pulling records"):
        if why:
            result.refused.append((key, why))
        else:
            records.append(found)
    remote_records = local | set(listing.records) | packed_records
    wanted_obs = [(address, record, key) for address, (record, key) in listing.observations.items()
                  if address not in have and record in remote_records]
    observations: list[ReceivedObservation] = []

    def fetch_observation(item: tuple[str, str, str]) -> tuple[Any, str | None]:
        address, record, key = item

        def check(data: bytes) -> tuple[Any, str | None]:
            (row, why), = check_observations([(address, record, data)], max_bytes)
            return (None, why) if row is None else ((row[3], address, record, spool.put(row)), None)

        return fetch(key, check)

    for (_, _, key), (found, why) in _transfer(wanted_obs, fetch_observation, remote, "pull from", jobs=jobs,
                                               progress=progress, label="pulling observations"):
        if why:
            result.refused.append((key, why))
        else:
            observations.append(found)
    # then the packs, for what no runlog.remote/1 object supplied (a mixed remote)
    need_records = packed_records - local - {address for _, address, *_ in records}
    got = {address for _, address, _, _ in observations}
    need_observations = {address for index in listing.packs.values() for address, record in index.observations
                         if address not in have and address not in got and record in remote_records}
    from runlog.syncworker import Checkers, worker_count

    size = sum(listing.sizes.get(listing.pack_keys[digest], LARGE_OBJECT_BYTES)
               for digest, index in listing.packs.items()
               if any(address in need_records for address in index.records)
               or any(address in need_observations for address, _ in index.observations))
    rows = len(records) + len(observations) + len(need_records) + len(need_observations)
    opened: list[bool] = []
    with Checkers(worker_count(size, workers)) as checkers, ExitStack() as transaction:
        def begin() -> None:
            """The pull's one transaction, opened once, as the first row is about to be written."""
            if not opened:
                opened.append(True)
                transaction.enter_context(ledger.page_cache_for(cache_kib(rows)))
                transaction.enter_context(ledger.one_transaction())

        stream = None
        streamed_blobs: set[str] = set()
        if not records and not observations and (need_records or need_observations):
            def blobs_of(item: Received, refused: list[tuple[str, str]]) -> bool:
                kept, held = _pull_blobs(ledger, spool, listing, [item], fetch, remote, refused, jobs=jobs,
                                         progress=no_progress, max_bytes=max_bytes, fetched=streamed_blobs)
                if held:
                    ledger.add_blobs(held)
                    streamed_blobs.update(sha for sha, _, _ in held)
                return bool(kept)

            stream = Streamer(ledger, spool, checkers, begin, {"records": len(need_records),
                              "batch_members": len(need_records), "observations": len(need_observations)},
                              blobs_of, f"s3://{remote.bucket}")
        from_packs, packed_observations = _pull_packs(listing, fetch, spool, need_records, need_observations, remote,
                                                      result.refused, checkers, jobs=jobs, progress=progress,
                                                      max_bytes=max_bytes, stream=stream)
        records.extend(from_packs)
        observations.extend(packed_observations)
        del local, have, got, need_records, need_observations
        done = stream.finish() if stream is not None else None
        if stream is not None and done is not None:
            result.records_received, result.observations_received = done
            result.refused.extend(stream.refused)
            result.blobs_received = len(streamed_blobs)
            return
        records.sort(key=lambda t: t[:2])
        owners = RequestOwners(ledger, f"s3://{remote.bucket}", result.refused)
        records = [item for item in records if owners.keep(item)]
        records, held = _pull_blobs(ledger, spool, listing, records, fetch, remote, result.refused, jobs=jobs,
                                    progress=progress, max_bytes=max_bytes)
        observations.sort(key=lambda t: t[:2])
        if records or observations or held:  # else no write transaction (a ledger that cannot be written pulls nothing new)
            begin()
            result.records_received, result.observations_received = insert_all(ledger, spool, records, observations,
                                                                               result.refused, checkers, held)
        result.blobs_received = len(held)


def _pull_blobs(ledger: Ledger, spool: Spool, listing: Listing, records: list[Received], fetch: Callable,
                remote: Remote, refused: list[tuple[str, str]], *, jobs: int, progress: Progress,
                max_bytes: int, fetched: Collection[str] = ()) -> tuple[list[Received], list[tuple[str, int, bytes]]]:
    """The blobs named by the batch records received (their cohorts held by reference:
    runlog/syncblobs.py) that the ledger lacks, fetched --jobs at a time and checked as hostile
    input (syncblobs.received). A record whose blob is not on the remote, or is refused, is left
    out and named in `refused` (its members are then refused with it: _MemberCheck). Returns
    the records kept and the blobs they name, as Ledger.add_blobs stores them. `fetched`: blobs
    this pull stored already (streamed inserts: for an earlier batch record), fetched and
    checked again for these records' references, as they would be had every batch record's
    blobs been fetched together (the ledger holding one does not make another reference to it
    right)."""
    from runlog.blobs import stored_problem
    from runlog.syncblobs import received, references

    needs: dict[str, list[tuple[Received, str, dict, Any]]] = {}  # sha256 -> (record, place, reference, runs)
    for item in records:
        if item[5] == "batch":
            refs, runs = references(spool.get(item[4])[1])
            for place, ref in refs:
                needs.setdefault(ref["sha256"], []).append((item, place, ref, runs))
    if not needs:
        return records, []
    local = ledger.has_blobs(needs) - set(fetched)
    bad: dict[str, str] = {}  # record address -> why it is left out

    def refuse(item: Received, place: str, why: str) -> None:
        bad.setdefault(item[1], f"record {item[1]} is left out: its {place} is held by reference, and {why}")

    for sha in sorted(local):  # held already: each reference checked against the ledger's copy, as verify will
        stored = ledger.packed_blob(sha)
        fits: dict[tuple, str | None] = {}  # (bytes, place, runs) -> why a reference so does not fit
        for item, place, ref, runs in needs[sha]:
            if (ref["bytes"], place, runs) not in fits:
                fits[ref["bytes"], place, runs] = stored_problem(ref, stored, place, runs)
            if (problem := fits[ref["bytes"], place, runs]) is not None:
                refuse(item, place, f"the ledger's copy of the blob does not fit that reference: {problem}")
    for sha in needs:
        if sha not in local and sha not in listing.blobs:
            for item, place, _, _ in needs[sha]:
                refuse(item, place, f"the remote does not hold blob {sha} ({blob_key(sha)})")
    one_check = threading.Lock()  # a cohort's blob decoded at a time (100 000 run settings: ~150 MiB)

    def fetch_blob(sha: str) -> tuple[Any, str | None]:
        def check(packed: bytes) -> tuple[Any, str | None]:
            problems: list[tuple[Received, str, str]] = []
            whys: dict[tuple, str | None] = {}  # (bytes, place, runs) -> why a reference so is refused
            size = None
            with one_check:
                for item, place, ref, runs in needs[sha]:
                    if (ref["bytes"], place, runs) not in whys:
                        data, whys[ref["bytes"], place, runs] = received(ref, packed, place, runs, max_bytes)
                        if data is not None:
                            size = len(data)
                        del data
                    if (why := whys[ref["bytes"], place, runs]) is not None:
                        problems.append((item, place, why))
            return ((sha, size, packed) if size is not None else None, problems), None

        return fetch(listing.blobs[sha], check)

    wanted = sorted(sha for sha in needs if sha not in local and sha in listing.blobs)
    held: list[tuple[str, int, bytes]] = []
    for sha, (found, why) in _transfer(wanted, fetch_blob, remote, "pull from", jobs=jobs, progress=progress,
                                       label="pulling blobs"):
        key = listing.blobs[sha]
        if why:
            found = None, [(item, place, why) for item, place, _, _ in needs[sha]]
        stored, problems = found
        for item, place, problem in problems:
            refuse(item, place, f"s3://{remote.bucket}/{key} was refused: {problem}")
        if stored is not None:
            held.append(stored)
    kept = [item for item in records if item[1] not in bad]
    refused.extend((item[2], bad[item[1]]) for item in records if item[1] in bad)
    named = {ref["sha256"] for sha, uses in needs.items() for item, _, ref, _ in uses if item[1] not in bad}
    return kept, [blob for blob in held if blob[0] in named]


def _pull_packs(listing: Listing, fetch: Callable, spool: Spool, need_records: set[str],
                need_observations: set[str], remote: Remote, refused: list[tuple[str, str]], checkers: Checkers, *,
                jobs: int, progress: Progress, max_bytes: int, stream: Streamer | None = None
                ) -> tuple[list[Received], list[ReceivedObservation]]:
    """Fetch the packs that hold what is needed, --jobs at a time, and verify them: the pack
    against its name and its index, then each needed item as a runlog.remote/1 object would
    be (canonical JSON, schema; an observation names the record its index files it under),
    a pack's items together (syncreceive.check_records, check_observations), the good ones
    into the spool. Packs are chosen, in order of name, each only when it holds something no
    pack chosen before it holds, and fetched in that order or, with a `stream`, in the order
    of the claims their index objects carry (the packs with records first, oldest first), so
    that the stream can append what arrived while the rest is fetched; what a refused pack (or item) should have
    supplied is looked for in the other packs, round after round. The checks run in the
    worker processes of `checkers`, when the pull has them (runlog/syncworker.py). Returns
    the records and observations as pull() keeps them."""
    records: dict[str, Received] = {}
    observations: dict[str, ReceivedObservation] = {}
    tried: set[str] = set()
    # what the rounds before this one received: each pack of a round is checked for every needed
    # item it holds that they did not bring, whatever the packs of its own round taken meanwhile
    before: tuple[set[str], set[str]] = (set(), set())

    def fetch_pack(digest: str) -> tuple[Any, str | None]:
        index = listing.packs[digest]
        key = listing.pack_keys[digest]
        want_records = [address for address in index.records if address in need_records and address not in before[0]]
        want_observations = [address for address, _ in index.observations
                             if address in need_observations and address not in before[1]]

        def check(data: bytes) -> tuple[Any, str | None]:
            found, why = checkers.check(digest, data, index, want_records, want_observations, max_bytes)
            if found is None:
                return None, why
            del data
            checked_records, checked_observations, bad = found
            good_records = [received(created, address, key, request_id, row, spool)
                            for created, address, request_id, row in checked_records]
            good_observations = [(row[3], row[0], row[1], spool.put(row)) for row in checked_observations]
            return (good_records, good_observations, bad), None

        return fetch(key, check)

    def take(digest: str, answer: tuple[Any, str | None]) -> None:
        found, why = answer
        key = listing.pack_keys[digest]
        if why:
            refused.append((key, why))
            if stream is not None:
                stream.offer(digest, [], [], refused=True)
            return
        good_records, good_observations, bad = found
        refused.extend((key, problem) for problem in bad)
        new_records = [item for item in good_records if item[1] not in records]
        new_observations = [observed for observed in good_observations if observed[1] not in observations]
        for item in new_records:
            records[item[1]] = item
        for observed in new_observations:
            observations[observed[1]] = observed
        if stream is not None:
            stream.offer(digest, new_records, new_observations, refused=bool(bad))

    while True:
        missing = (need_records - set(records)) | (need_observations - set(observations))
        chosen: list[str] = []
        for digest in sorted(set(listing.packs) - tried):  # chosen by name, whatever the claims
            index = listing.packs[digest]
            holds = {a for a in index.records if a in missing} | {a for a, _ in index.observations if a in missing}
            if holds:
                chosen.append(digest)
                missing -= holds
        if not chosen:
            break
        tried.update(chosen)
        before = (set(records), set(observations))
        if stream is not None:
            wanted = {digest: (*listing.hints.get(digest, (None, None)),
                               any(a in need_records for a in listing.packs[digest].records),
                               any(a in need_observations for a, _ in listing.packs[digest].observations),
                               listing.sizes.get(listing.pack_keys[digest], LARGE_OBJECT_BYTES))
                      for digest in chosen}
            chosen = _fetch_order(wanted)
            stream.expect(wanted)
        _transfer(chosen, fetch_pack, remote, "pull from", jobs=jobs, progress=progress, label="pulling packs",
                  each=take)
    return list(records.values()), list(observations.values())


def _fetch_order(chosen: dict[str, tuple]) -> list[str]:
    """The packs chosen (by name, whatever their claims) in the order a streamed pull fetches
    them (Streamer.expect's view of each: its claims, whether it holds records and observations
    wanted): those with records wanted first, each kind by the claim of its oldest item (one
    without a claim first), then by name. Something else may write the claims: they order the
    downloads, never choose them."""
    least = ("", "")

    def order(digest: str) -> tuple:
        record, observation, with_records, _, _ = chosen[digest]
        return (0, record or least, digest) if with_records else (1, observation or least, digest)

    return sorted(chosen, key=order)
