"""A team ledger in S3: records, observations and pending attempts as immutable objects.

Layout under s3://BUCKET/PREFIX (docs/team-ledger.md):

  PREFIX/runlog-remote.json                       {"format": "runlog.remote/1"}
  PREFIX/records/<aa>/<address>.json              a record's canonical JSON; <aa> = its first 2 hex
  PREFIX/observations/<record address>/<sha>.json an observation; <sha> = SHA-256 of the object's bytes
  PREFIX/attempts/<requestId>.json                a pending attempt (for the team to see)

Every object is written once, with `If-None-Match: *`, so nothing on the remote is ever
overwritten; because names are content addresses, merging ledgers is a set union."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from runlog import record as rec
from runlog.errors import RunlogError, UsageError
from runlog.ledger import Ledger

FORMAT = "runlog.remote/1"
MARKER = "runlog-remote.json"
REMOTE_RE = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?$")
RECORD_KEY_RE = re.compile(r"records/[0-9a-f]{2}/(?P<address>[0-9a-f]{64})\.json$")
OBSERVATION_KEY_RE = re.compile(r"observations/(?P<record>[0-9a-f]{64})/(?P<sha>[0-9a-f]{64})\.json$")


@dataclass(frozen=True)
class Remote:
    bucket: str
    prefix: str  # "" or ending in "/"

    @classmethod
    def parse(cls, text: str | None) -> "Remote":
        if not text:
            raise UsageError("no remote: give s3://BUCKET/PREFIX, or set remote = \"s3://…\" in .runlog.toml")
        match = REMOTE_RE.match(text.strip())
        if not match:
            raise UsageError(f"remote {text!r} is not s3://BUCKET[/PREFIX] (a valid bucket name, lower case)")
        prefix = (match.group("prefix") or "").strip("/")
        return cls(match.group("bucket"), prefix + "/" if prefix else "")

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def record_key(self, address: str) -> str:
        return f"{self.prefix}records/{address[:2]}/{address}.json"

    def observation_key(self, record: str, sha: str) -> str:
        return f"{self.prefix}observations/{record}/{sha}.json"


@dataclass
class Result:
    sent: int = 0
    present: int = 0
    observations_sent: int = 0
    attempts_sent: int = 0
    received: int = 0
    observations_received: int = 0
    remote_pending: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)  # (key, why)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()} | {"refused": [{"key": k, "why": w} for k, w in self.refused]}


def _fail(exc: Exception, remote: Remote, doing: str) -> RunlogError:
    """A botocore error during a transfer as one line; the local ledger is never touched by it."""
    from runlog import aws

    error = aws.error_from(exc, doing)
    code = getattr(error, "code", "")
    hint = {"NoSuchBucket": f"bucket {remote.bucket} does not exist (create it: see docs/team-ledger.md)",
            "AccessDenied": f"no permission on {remote} for this identity"}.get(code)
    message = f"{doing} {remote}: {hint or error.message}; nothing local was changed, run it again to resume"
    return RunlogError(message, exit_code=1)


def _list(s3, remote: Remote, under: str) -> list[str]:
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=remote.bucket, Prefix=remote.prefix + under):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


def _put_once(s3, bucket: str, key: str, body: bytes, metadata: dict[str, str]) -> bool:
    """Write an object unless it exists. True when written, False when it was already there."""
    from botocore.exceptions import ClientError

    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", Metadata=metadata,
                      IfNoneMatch="*")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
            return False
        raise
    return True


def check_marker(s3, remote: Remote, *, create: bool) -> None:
    """Refuse a remote written in a format this runlog does not know; mark a new one."""
    from botocore.exceptions import ClientError

    try:
        body = s3.get_object(Bucket=remote.bucket, Key=remote.prefix + MARKER)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
            raise
        if create:
            _put_once(s3, remote.bucket, remote.prefix + MARKER, json.dumps({"format": FORMAT}).encode(), {})
        return
    try:
        found = json.loads(body).get("format")
    except (ValueError, AttributeError):
        found = None
    if found != FORMAT:
        raise RunlogError(f"{remote} holds a team ledger in format {found!r}, which this runlog does not know "
                          f"(it writes {FORMAT}); upgrade runlog", exit_code=2)


def observation_object(row: tuple) -> bytes:
    record, run_uuid, observed_at, source, status, body = row
    return rec.canonical_json({"record": record, "run_uuid": run_uuid, "observed_at": observed_at,
                               "source": source, "status": status, "body": json.loads(body)})


def _local_observations(ledger: Ledger) -> dict[str, tuple[str, bytes]]:
    rows = ledger.conn.execute(
        "SELECT record, run_uuid, observed_at, source, status, body FROM observations ORDER BY seq")
    out = {}
    for row in rows:
        data = observation_object(row)
        out[rec.sha256_hex(data)] = (row[0], data)
    return out


def push(ledger: Ledger, s3, remote: Remote, *, jobs: int = 16,
         progress: Callable[[Iterable, int], Iterable] = lambda items, n: items) -> Result:
    """Send what the remote lacks. Lists first, so a second push sends nothing."""
    result = Result()
    try:
        check_marker(s3, remote, create=True)
        remote_records = {m.group("address") for k in _list(s3, remote, "records/") if (m := RECORD_KEY_RE.search(k))}
        remote_observations = {m.group("sha") for k in _list(s3, remote, "observations/")
                               if (m := OBSERVATION_KEY_RE.search(k))}
    except Exception as exc:
        raise _fail(exc, remote, "push to") from None
    rows = ledger.conn.execute("SELECT address, body FROM records ORDER BY seq").fetchall()
    work = [(remote.record_key(a), body.encode("utf-8"), {"runlog-address": a})
            for a, body in rows if a not in remote_records]
    result.present = len(rows) - len(work)
    for sha, (record, data) in _local_observations(ledger).items():
        if sha not in remote_observations:
            work.append((remote.observation_key(record, sha), data, {"runlog-sha256": sha}))
    for intent in ledger.pending():
        request_id = intent["request"]["requestId"]
        work.append((f"{remote.prefix}attempts/{request_id}.json", rec.canonical_json(intent), {}))
    sent = _transfer(work, lambda item: _put_once(s3, remote.bucket, *item), jobs, progress, remote, "push to")
    for (key, _, _), written in zip(work, sent):
        if "/records/" in "/" + key:
            result.sent += written
            result.present += not written
        elif "/observations/" in "/" + key:
            result.observations_sent += written
        else:
            result.attempts_sent += written
    return result


def _transfer(work: list, action, jobs: int, progress, remote: Remote, doing: str) -> list:
    if not work:
        return []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(action, item) for item in work]
        results = []
        try:
            for future in progress(futures, len(futures)):
                results.append(future.result())
        except Exception as exc:
            for future in futures:
                future.cancel()
            raise _fail(exc, remote, doing) from None
    return results


def verify_record_object(key: str, address: str, data: bytes) -> tuple[dict | None, str | None]:
    """(record, None) when the object is the record its key names, else (None, why not)."""
    if rec.sha256_hex(data) != address:
        return None, "content does not match its address (tampered or truncated)"
    try:
        record = json.loads(data)
    except ValueError:
        return None, "not JSON"
    if not isinstance(record, dict) or rec.canonical_json(record) != data:
        return None, "not a record in canonical JSON"
    problems = rec.schema_errors(record)
    if problems:
        return None, "not a valid record: " + problems[0]
    return record, None


def pull(ledger: Ledger, s3, remote: Remote, *, jobs: int = 16,
         progress: Callable[[Iterable, int], Iterable] = lambda items, n: items) -> Result:
    """Fetch what the local ledger lacks; verify every object before anything enters it."""
    result = Result()

    def fetch(key: str) -> bytes:
        return s3.get_object(Bucket=remote.bucket, Key=key)["Body"].read()

    try:
        check_marker(s3, remote, create=False)
        record_keys = {m.group("address"): k for k in _list(s3, remote, "records/") if (m := RECORD_KEY_RE.search(k))}
        observation_keys = {m.group("sha"): (m.group("record"), k) for k in _list(s3, remote, "observations/")
                            if (m := OBSERVATION_KEY_RE.search(k))}
        result.remote_pending = len(_list(s3, remote, "attempts/"))
    except RunlogError:
        raise
    except Exception as exc:
        raise _fail(exc, remote, "pull from") from None
    local = {row[0] for row in ledger.conn.execute("SELECT address FROM records")}
    wanted = [(address, key) for address, key in record_keys.items() if address not in local]
    datas = _transfer([key for _, key in wanted], fetch, jobs, progress, remote, "pull from")
    good = []
    for (address, key), data in zip(wanted, datas):
        record, why = verify_record_object(key, address, data)
        if why:
            result.refused.append((key, why))
        else:
            good.append(record)
    for record in sorted(good, key=lambda r: (r["created"], rec.address(r))):
        _, added = ledger.add_record(record)
        result.received += added

    have = set(_local_observations(ledger))
    known = {row[0] for row in ledger.conn.execute("SELECT address FROM records")}
    wanted_obs = [(sha, key) for sha, (record, key) in observation_keys.items() if sha not in have and record in known]
    datas = _transfer([key for _, key in wanted_obs], fetch, jobs, progress, remote, "pull from")
    for (sha, key), data in zip(wanted_obs, datas):
        if rec.sha256_hex(data) != sha:
            result.refused.append((key, "content does not match its name (tampered or truncated)"))
            continue
        try:
            item = json.loads(data)
            ledger.add_observation(item["record"], item["source"], item["body"], observed_at=item["observed_at"],
                                   run_uuid=item.get("run_uuid"), status=item.get("status"))
        except (ValueError, KeyError, TypeError):
            result.refused.append((key, "not an observation"))
            continue
        result.observations_received += 1
    return result
