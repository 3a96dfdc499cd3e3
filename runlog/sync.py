"""A team ledger in S3: records, observations and pending attempts as immutable objects.

Layout under s3://BUCKET/PREFIX/ (docs/team-ledger.md):

  runlog-remote.json                          {"format": "runlog.remote/1"}
  records/<aa>/<address>.json                 a record's canonical JSON (the ledger's `body`);
                                              <aa> = the address's first two hex digits
  observations/<record>/<address>.json        an observation (ledger.observation_object), named
                                              by the SHA-256 of its bytes
  attempts/<requestId, %-quoted>/<sha>.json   a pending attempt's intent, named by its SHA-256

Every object is written once, with `If-None-Match: *`, so nothing on the remote is ever
overwritten; because names are content addresses, merging ledgers is a set union. A pull
checks every object against its name and the record schema before anything is inserted.

boto3/botocore are only imported inside functions (the client is passed in)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from runlog import record as rec
from runlog.errors import RunlogError, UsageError
from runlog.ledger import OBSERVATION_FIELDS, Ledger

FORMAT = "runlog.remote/1"
MARKER = "runlog-remote.json"
HEX = "0123456789abcdef"
REMOTE_RE = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?$")
# Keys relative to the prefix.
RECORD_KEY_RE = re.compile(r"^records/(?P<fan>[0-9a-f]{2})/(?P<address>[0-9a-f]{64})\.json$")
OBSERVATION_KEY_RE = re.compile(r"^observations/(?P<record>[0-9a-f]{64})/(?P<address>[0-9a-f]{64})\.json$")
ATTEMPT_KEY_RE = re.compile(r"^attempts/(?P<request>[^/]+)/(?P<address>[0-9a-f]{64})\.json$")

# progress(items, total, label) -> the same items, shown as they pass (the CLI draws a bar)
Progress = Callable[[Iterable, int, str], Iterable]


def no_progress(items: Iterable, total: int, label: str) -> Iterable:
    return items


@dataclass(frozen=True)
class Remote:
    bucket: str
    prefix: str  # "" or ending in "/"

    @classmethod
    def parse(cls, text: str | None) -> "Remote":
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
    misnamed: list[str] = field(default_factory=list)  # keys in records/ or observations/ that are no address


@dataclass
class PushResult:
    remote: str
    records_sent: int = 0
    records_present: int = 0  # already on the remote
    observations_sent: int = 0
    attempts_sent: int = 0
    conditional_writes: bool = True  # False: the store ignored If-None-Match; HEAD then PUT was used

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PullResult:
    remote: str
    records_received: int = 0
    records_present: int = 0  # on the remote and already in the local ledger
    observations_received: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)  # (key, why)
    remote_pending: list[str] = field(default_factory=list)  # request ids pending elsewhere

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["refused"] = [{"key": key, "why": why} for key, why in self.refused]
        return data


# -- errors -------------------------------------------------------------------------------------


def _code(exc: Exception) -> tuple[str, int | None]:
    response = getattr(exc, "response", None) or {}
    return (response.get("Error", {}).get("Code", ""), response.get("ResponseMetadata", {}).get("HTTPStatusCode"))


class TransferError(RunlogError):
    """S3 failed part way; nothing local was changed by the failed step."""

    exit_code = 1


def _fail(exc: BaseException, remote: Remote, doing: str, done: str = "") -> RunlogError:
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
    return TransferError(f"{doing} {remote} failed{done}: {cause}; nothing local was changed: "
                         "run it again to resume")


# -- listing ------------------------------------------------------------------------------------


def _list_keys(s3, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


def _read_marker(s3, remote: Remote) -> dict | None:
    try:
        data = s3.get_object(Bucket=remote.bucket, Key=remote.key(MARKER))["Body"].read()
    except Exception as exc:
        if _code(exc)[0] in ("NoSuchKey", "404"):
            return None
        raise
    try:
        marker = json.loads(data)
    except ValueError:
        marker = None
    return marker if isinstance(marker, dict) else {"format": None}


def check_format(remote: Remote, marker: dict) -> None:
    found = marker.get("format")
    if found != FORMAT:
        what = f"format {found}" if isinstance(found, str) else "a format this runlog cannot read"
        raise UsageError(f"{remote} holds a team ledger in {what} (its {MARKER}); this runlog reads and writes "
                         f"{FORMAT}: upgrade runlog (pip install -U runlog)")


def _no_team_ledger(remote: Remote) -> TransferError:
    return TransferError(f"{remote} holds no team ledger (no {MARKER}): check the bucket and prefix, "
                         "or `runlog push` to start one there")


def survey(s3, remote: Remote, *, jobs: int = 16, doing: str = "reading", expect_ledger: bool = False) -> Listing:
    """List the remote: the format marker, then records, observations and attempts, with the
    key space split by the first hex digit so that pages are fetched in parallel.
    Raises TransferError (bucket missing, no permission, network; with expect_ledger, no marker)
    or UsageError (a format this runlog does not know)."""
    parts = [f"records/{h}" for h in HEX] + [f"observations/{h}" for h in HEX] + ["attempts/"]
    listing = Listing()
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            marker = pool.submit(_read_marker, s3, remote)
            pages = [pool.submit(_list_keys, s3, remote.bucket, remote.key(part)) for part in parts]
            listing.marker = marker.result()
            if listing.marker is not None:
                check_format(remote, listing.marker)
            keys = [key for page in pages for key in page.result()]
    except Exception as exc:
        raise _fail(exc, remote, doing) from None
    if expect_ledger and listing.marker is None:
        raise _no_team_ledger(remote)
    for key in keys:
        relative = key[len(remote.prefix):]
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
        if not relative.startswith("attempts/"):
            listing.misnamed.append(key)
    return listing


# -- transfers ----------------------------------------------------------------------------------


def run_concurrently(items: list, action: Callable, *, jobs: int, progress: Progress = no_progress,
                     label: str = "") -> Iterator[tuple[Any, Any]]:
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
              label: str) -> list[tuple[Any, Any]]:
    """run_concurrently, collected; a failure becomes one TransferError line saying how far it got."""
    done: list[tuple[Any, Any]] = []
    try:
        for pair in run_concurrently(items, action, jobs=jobs, progress=progress, label=label):
            done.append(pair)
    except Exception as exc:
        raise _fail(exc, remote, doing, f"{len(done)} of {len(items)} objects") from None
    return done


class ConditionalWriter:
    """PutObject that never overwrites: `If-None-Match: *` (412 means the object is there).
    A store that answers 501 Not Implemented to the condition gets HEAD, then PUT if absent,
    from then on (a race with another writer of the same key is harmless: same name, same bytes)."""

    def __init__(self, s3, bucket: str):
        self.s3 = s3
        self.bucket = bucket
        self.conditional = True

    def put(self, key: str, body: bytes, metadata: dict[str, str]) -> bool:
        """True when written, False when an object of that name was already there."""
        args = {"Bucket": self.bucket, "Key": key, "Body": body, "ContentType": "application/json",
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


def push(ledger: Ledger, s3, remote: Remote, *, jobs: int = 16, progress: Progress = no_progress) -> PushResult:
    """Send what the remote lacks: records, observations, pending attempts. The remote is
    listed first, so pushing twice sends nothing and an interrupted push resumes. The local
    ledger is only read, except that observation addresses are cached once the push succeeded."""
    result = PushResult(str(remote))
    head = ledger.head()  # read first: every record it counts is among those pushed below
    listing = survey(s3, remote, jobs=jobs, doing="push to")
    writer = ConditionalWriter(s3, remote.bucket)
    if listing.marker is None:
        try:
            writer.put(remote.key(MARKER), rec.canonical_json({"format": FORMAT}), {})
        except Exception as exc:
            raise _fail(exc, remote, "push to") from None
    work: list[tuple[str, str, bytes, dict[str, str]]] = []  # (kind, key, body, metadata)
    for address, body in ledger.record_bodies():
        if address in listing.records:
            result.records_present += 1
        else:
            work.append(("record", remote.record_key(address), body.encode("utf-8"), {"runlog-address": address}))
    for address, record, data in ledger.observation_objects(skip=set(listing.observations)):
        work.append(("observation", remote.observation_key(record, address), data,
                     {"runlog-address": address, "runlog-record": record}))
    for intent in ledger.pending():
        data = rec.canonical_json(intent)
        address = rec.sha256_hex(data)
        if address not in listing.attempts:
            work.append(("attempt", remote.attempt_key(intent["request"]["requestId"], address), data,
                         {"runlog-address": address}))
    _refuse_tampered(ledger, work)
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
    result.conditional_writes = writer.conditional
    _put_head(writer, remote, ledger, head)
    _cache_observation_addresses(ledger)
    return result


def _refuse_tampered(ledger: Ledger, work: list[tuple[str, str, bytes, dict[str, str]]]) -> None:
    """Nothing is sent when a record or observation about to be sent fails verify's checks."""
    from runlog.errors import LedgerError
    from runlog.verify import check_outgoing

    records = {meta["runlog-address"] for kind, _, _, meta in work if kind == "record"}
    observations = {meta["runlog-address"] for kind, _, _, meta in work if kind == "observation"}
    problems = check_outgoing(ledger, records, observations)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise LedgerError(f"refusing to push: {problems[0].message}{more}; nothing was sent "
                          "(run `runlog verify` to see every problem)")


# -- heads: a witness of each ledger's length and chain ------------------------------------------

HEAD_FORMAT = "runlog.head/1"
HEAD_KEY_RE = re.compile(r"heads/(?P<ledger>[0-9a-f-]{36})/(?P<count>\d{12})\.json$")


def _head_key(remote: Remote, ledger_id: str, count: int) -> str:
    return remote.key(f"heads/{ledger_id}/{count:012d}.json")


def _put_head(writer: "ConditionalWriter", remote: Remote, ledger: Ledger, head: tuple[int, str | None]) -> None:
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
        if key in _list_keys(writer.s3, remote.bucket, remote.key(f"heads/{ledger_id}/")):
            return  # pushed before with this many records: nothing new to witness
        writer.put(key, body, {})
    except Exception as exc:
        raise _fail(exc, remote, "push to", "records and observations sent; the head") from None


def remote_head(s3, remote: Remote, ledger_id: str) -> tuple[int, str] | None:
    """The newest head this ledger pushed to the remote, as (records, chain), or None."""
    prefix = remote.key(f"heads/{ledger_id}/")
    try:
        keys = _list_keys(s3, remote.bucket, prefix)
        found = [(int(m.group("count")), key) for key in keys
                 if (m := HEAD_KEY_RE.search(key)) and m.group("ledger") == ledger_id]
        if not found:
            return None
        count, key = max(found)
        data = json.loads(s3.get_object(Bucket=remote.bucket, Key=key)["Body"].read())
    except Exception as exc:
        raise _fail(exc, remote, "read the head from") from None
    if (not isinstance(data, dict) or data.get("records") != count or data.get("ledger") != ledger_id
            or not isinstance(data.get("chain"), str) or not re.fullmatch(r"[0-9a-f]{64}", data["chain"])):
        raise TransferError(f"{remote}: head object {key} is malformed")
    return count, data["chain"]


def _cache_observation_addresses(ledger: Ledger) -> None:
    from runlog.errors import LedgerError

    try:
        ledger.index_observations()
    except LedgerError:  # a read-only ledger: the addresses are computed again next time
        pass


# -- pull ---------------------------------------------------------------------------------------


def verify_record_object(address: str, data: bytes) -> tuple[dict | None, str | None]:
    """(record, None) when data is the record named `address`, else (None, why not)."""
    if rec.sha256_hex(data) != address:
        return None, "content does not match its address (tampered or truncated)"
    try:
        record = json.loads(data)
    except ValueError:
        return None, "not JSON (tampered or truncated)"
    if not isinstance(record, dict) or rec.canonical_json(record) != data:
        return None, "not a record in canonical JSON"
    problems = rec.schema_errors(record)
    if problems:
        return None, "not a valid record: " + problems[0]
    return record, None


def verify_observation_object(record: str, address: str, data: bytes) -> tuple[dict | None, str | None]:
    """(observation, None) when data is the observation named `address` of `record`, else (None, why)."""
    if rec.sha256_hex(data) != address:
        return None, "content does not match its address (tampered or truncated)"
    try:
        item = json.loads(data)
    except ValueError:
        return None, "not JSON (tampered or truncated)"
    if not isinstance(item, dict) or rec.canonical_json(item) != data:
        return None, "not an observation in canonical JSON"
    if set(item) != set(OBSERVATION_FIELDS):
        return None, "not an observation (members must be " + ", ".join(OBSERVATION_FIELDS) + ")"
    if item["record"] != record:
        return None, f"names record {str(item['record'])[:12]} but is stored under record {record[:12]}"
    types_ok = (isinstance(item["observed_at"], str) and isinstance(item["source"], str)
                and isinstance(item["body"], dict) and all(isinstance(item[k], (str, type(None)))
                                                           for k in ("status", "run_uuid")))
    if not types_ok:
        return None, "not an observation (a member has the wrong type)"
    return item, None


def pull(ledger: Ledger, s3, remote: Remote, *, jobs: int = 16, progress: Progress = no_progress,
         listing: Listing | None = None) -> PullResult:
    """Fetch the records and observations the local ledger lacks, verify each, and insert the
    good ones (records first, oldest first, at the end of the local chain). Objects that fail
    are named in `refused`. A transfer failure raises TransferError before anything is inserted."""
    result = PullResult(str(remote))
    if listing is None:
        listing = survey(s3, remote, jobs=jobs, doing="pull from", expect_ledger=True)
    if listing.marker is None:
        raise _no_team_ledger(remote)
    result.refused.extend((key, "not named by a content address in the layout") for key in listing.misnamed)

    def fetch(key: str) -> bytes:
        return s3.get_object(Bucket=remote.bucket, Key=key)["Body"].read()

    local = ledger.addresses()
    wanted = [(address, key) for address, key in listing.records.items() if address not in local]
    result.records_present = len(listing.records) - len(wanted)
    records = []
    for (address, key), (record, why) in _transfer(
            wanted, lambda item: verify_record_object(item[0], fetch(item[1])), remote, "pull from", jobs=jobs,
            progress=progress, label="pulling records"):
        if why:
            result.refused.append((key, why))
        else:
            records.append((record["created"], address, record))

    known = local | {address for _, address, _ in records}
    have = ledger.observation_addresses()
    wanted_obs = [(address, record, key) for address, (record, key) in listing.observations.items()
                  if address not in have and record in known]
    observations = []
    for (address, record, key), (item, why) in _transfer(
            wanted_obs, lambda item: verify_observation_object(item[1], item[0], fetch(item[2])), remote,
            "pull from", jobs=jobs, progress=progress, label="pulling observations"):
        if why:
            result.refused.append((key, why))
        else:
            observations.append((item["observed_at"], address, item))

    result.records_received = ledger.add_records([r for *_, r in sorted(records, key=lambda t: t[:2])])
    result.observations_received = ledger.add_received_observations([o for *_, o in sorted(observations,
                                                                                           key=lambda t: t[:2])])
    recorded = ledger.request_ids()
    result.remote_pending = sorted({request for request, _ in listing.attempts.values() if request not in recorded})
    result.refused.sort()
    return result
