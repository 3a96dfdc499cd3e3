"""Resolved provenance: which workflow definition and which bytes a submission names.

Before StartRun, within a time budget, runlog asks:
  - GetWorkflow / GetWorkflowVersion (or GetRun of the source run for `--run-id`): the
    workflow's name, engine, digest, uuid and parameter template;
  - for every `s3://` value at any depth of the parameters, HeadObject (ETag, VersionId,
    size, LastModified) or, for a prefix ending in `/`, a listing summary;
  - for every `omics://` read set or reference, GetReadSetMetadata / GetReferenceMetadata.

What it finds goes into the record's `resolution` (docs/resolve.md); what it cannot find is
recorded per input with the error's code, and is a warning, not a failure."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runlog.errors import TemplateMismatch, Unresolved
from runlog.params import OMICS_RE, walk_strings
from runlog.record import effective_parameters  # here as well: replay imports it from here

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

DEFAULT_TIMEOUT = 5.0
PREFIX_LIST_LIMIT = 10_000


def input_uris(parameters: Any) -> list[str]:
    """Every s3:// and omics:// string in the parameters, once, in order of appearance."""
    seen: dict[str, None] = {}
    for _, text in walk_strings(parameters or {}):
        if text.startswith(("s3://", "omics://")):
            seen.setdefault(text, None)
    return list(seen)


def _error(exc: Exception) -> dict[str, str]:
    response = getattr(exc, "response", None) or {}
    err = response.get("Error") or {}
    code = err.get("Code") or type(exc).__name__
    if code in ("404", "NoSuchKey", "NotFound"):
        code = "NotFound"
    elif code == "403":
        code = "AccessDenied"
    elif code in ("501", "NotImplemented"):
        return {"code": "NotS3", "message": "the endpoint answered 501 Not Implemented: it does not serve this S3 "
                                            "call (point AWS_ENDPOINT_URL_S3 at an S3 endpoint)"}
    return {"code": code, "message": err.get("Message") or str(exc)}


def _iso(value) -> str | None:
    from runlog.record import jsonable

    return jsonable(value) if value is not None else None


def s3_identity(s3, uri: str) -> dict[str, Any]:
    bucket, _, key = uri[5:].partition("/")
    try:
        if key == "" or key.endswith("/"):
            return _s3_prefix(s3, bucket, key)
        head = s3.head_object(Bucket=bucket, Key=key)
    except Exception as exc:  # recorded per input, never fatal here
        return {"kind": "s3-object", "error": _error(exc)}
    found = {"kind": "s3-object", "etag": head.get("ETag", "").strip('"'), "version_id": head.get("VersionId"),
             "size": head.get("ContentLength"), "last_modified": _iso(head.get("LastModified"))}
    return {k: v for k, v in found.items() if v is not None}


def _s3_prefix(s3, bucket: str, prefix: str) -> dict[str, Any]:
    digest, count, size, truncated = hashlib.sha256(), 0, 0, False
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            count += 1
            size += item.get("Size", 0)
            digest.update(f"{item['Key']}\0{item.get('ETag', '').strip(chr(34))}\n".encode())
            if count >= PREFIX_LIST_LIMIT:
                truncated = True
                break
        if truncated:
            break
    return {"kind": "s3-prefix", "objects": count, "size": size, "digest": digest.hexdigest(), "truncated": truncated}


PARAMETERS_FILE_LIMIT = 16 * 1024 * 1024  # bytes of a parametersUri object runlog reads


def read_object(s3, uri: str, limit: int) -> tuple[dict[str, Any], bytes | None]:
    """GetObject of an s3:// object whose content is recorded (a parameters or settings
    file), reading at most `limit` + 1 bytes: ({"uri", "error"}, None) when it cannot be
    read; else its identity (uri, etag, version_id, size, last_modified, sha256 of what was
    read) and its bytes, longer than `limit` when the object is (the caller decides)."""
    bucket, _, key = uri[5:].partition("/")
    try:
        answer = s3.get_object(Bucket=bucket, Key=key)
        body = answer["Body"].read(limit + 1)
    except Exception as exc:
        return {"uri": uri, "error": _error(exc)}, None
    return {"uri": uri, "etag": (answer.get("ETag") or "").strip('"') or None, "version_id": answer.get("VersionId"),
            "size": len(body), "last_modified": _iso(answer.get("LastModified")),
            "sha256": hashlib.sha256(body).hexdigest()}, body


def parameters_file(s3, uri: str) -> dict[str, Any]:
    """The object `parametersUri` names: its identity (ETag, VersionId, size, LastModified)
    and its content, parsed as strict JSON (it *is* the run's parameters). Errors are
    recorded, never fatal here."""
    from runlog.errors import UsageError
    from runlog.params import parse_json_text

    found, body = read_object(s3, uri, PARAMETERS_FILE_LIMIT)
    if body is None:
        return found
    if len(body) > PARAMETERS_FILE_LIMIT:
        return {"uri": uri, "error": {"code": "TooLarge",
                                      "message": f"larger than {PARAMETERS_FILE_LIMIT} bytes; not read"}}
    try:
        content = parse_json_text(body.decode("utf-8-sig"), uri)
    except UnicodeDecodeError as exc:
        return {**{k: v for k, v in found.items() if v is not None},
                "error": {"code": "InvalidJSON", "message": f"not UTF-8 text (byte {exc.start})"}}
    except UsageError as exc:
        return {**{k: v for k, v in found.items() if v is not None},
                "error": {"code": "InvalidJSON", "message": exc.message[:300]}}
    if not isinstance(content, dict):
        return {**{k: v for k, v in found.items() if v is not None},
                "error": {"code": "InvalidJSON", "message": "not a JSON object of parameters"}}
    found["content"] = content
    return {k: v for k, v in found.items() if v is not None}


def omics_identity(omics, uri: str) -> dict[str, Any]:
    match = OMICS_RE.match(uri)
    if not match:
        return {"kind": "omics", "error": {"code": "InvalidUri", "message": "not a read-set or reference URI"}}
    store, ident = match.group("store"), match.group("id")
    if match.group("kind") == "readSet":
        try:
            meta = omics.get_read_set_metadata(sequenceStoreId=store, id=ident)
        except Exception as exc:
            return {"kind": "read-set", "error": _error(exc)}
        etag = meta.get("etag") or {}
        found = {"kind": "read-set", "id": ident, "store": store, "status": meta.get("status"),
                 "file_type": meta.get("fileType"), "name": meta.get("name"),
                 # the named file's own checksum; an index or a missing file has none of source1's
                 "etag": etag.get(match.group("file") or "source1"),
                 "etag_algorithm": etag.get("algorithm"), "creation_time": _iso(meta.get("creationTime"))}
    else:
        try:
            meta = omics.get_reference_metadata(referenceStoreId=store, id=ident)
        except Exception as exc:
            return {"kind": "reference", "error": _error(exc)}
        found = {"kind": "reference", "id": ident, "store": store, "status": meta.get("status"),
                 "name": meta.get("name"), "md5": meta.get("md5"), "creation_time": _iso(meta.get("creationTime"))}
    return {k: v for k, v in found.items() if v is not None}


def workflow_identity(omics, request: dict) -> dict[str, Any]:
    """The workflow a request names (or, for --run-id, the source run's workflow)."""
    try:
        if request.get("runId") and not request.get("workflowId"):
            source = omics.get_run(id=request["runId"])
            request = {"workflowId": source.get("workflowId"), "workflowType": source.get("workflowType"),
                       "workflowOwnerId": source.get("workflowOwnerId"),
                       "workflowVersionName": source.get("workflowVersionName")}
        ask = {"type": request["workflowType"]} if request.get("workflowType") else {}
        if request.get("workflowOwnerId"):
            ask["workflowOwnerId"] = request["workflowOwnerId"]
        if request.get("workflowVersionName"):
            answer = omics.get_workflow_version(workflowId=request["workflowId"],
                                                versionName=request["workflowVersionName"], **ask)
            # GetWorkflowVersion has no name: the workflow's name comes from GetWorkflow
            try:
                answer["name"] = omics.get_workflow(id=request["workflowId"], **ask).get("name")
            except Exception:  # the version is resolved; only its name is unknown
                pass
        else:
            answer = omics.get_workflow(id=request["workflowId"], **ask)
    except Exception as exc:
        return {"error": _error(exc)}
    found = {"id": answer.get("workflowId") or answer.get("id"), "type": answer.get("type"),
             "name": answer.get("name"), "engine": answer.get("engine"), "digest": answer.get("digest"),
             "uuid": answer.get("uuid"), "version_name": answer.get("versionName"),
             "owner_id": request.get("workflowOwnerId"), "arn": answer.get("arn"),
             "parameter_template": answer.get("parameterTemplate")}
    return {k: v for k, v in found.items() if v is not None}


def check_template(workflow: dict, parameters: dict | None) -> list[str]:
    """Problems with the parameters against the workflow's parameterTemplate."""
    template = workflow.get("parameter_template")
    if not template:
        return []
    given = parameters or {}
    problems = []
    missing = sorted(n for n, spec in template.items() if not (spec or {}).get("optional") and n not in given)
    if missing:
        problems.append(f"missing required parameter(s) {', '.join(missing)}")
    unknown = sorted(set(given) - set(template))
    if unknown:
        problems.append(f"unknown parameter(s) {', '.join(unknown)} (the workflow takes "
                        f"{', '.join(sorted(template))})")
    return problems


def resolve_inputs(parameters: Any, clients: dict, *, timeout: float = DEFAULT_TIMEOUT,
                   pool: ThreadPoolExecutor | None = None) -> dict[str, dict]:
    """{uri: identity} for every input URI, concurrently, within `timeout` seconds.
    `clients` holds "s3" and "omics" boto3 clients (made by runlog.aws)."""
    # imported here, not at the top: only a resolution with inputs to look up needs a pool
    from concurrent.futures import ThreadPoolExecutor, wait

    uris = input_uris(parameters)
    if not uris:
        return {}
    own_pool = pool is None
    pool = pool or ThreadPoolExecutor(max_workers=min(16, len(uris)))
    try:
        futures = {
            uri: pool.submit(s3_identity if uri.startswith("s3://") else omics_identity,
                             clients["s3" if uri.startswith("s3://") else "omics"], uri)
            for uri in uris
        }
        wait(futures.values(), timeout=timeout)
        out = {}
        for uri, future in futures.items():
            if future.done():
                out[uri] = future.result()
            else:
                future.cancel()
                kind = "s3-object" if uri.startswith("s3://") else "omics"
                out[uri] = {"kind": kind, "error": {"code": "Timeout",
                                                     "message": f"not resolved within {timeout:g} s"}}
        return out
    finally:
        if own_pool:
            pool.shutdown(wait=False, cancel_futures=True)


IDENTITY_FIELDS = ("etag", "version_id", "size", "md5", "digest", "objects", "status", "file_type")


def identity_changes(recorded: dict[str, dict], current: dict[str, dict]) -> list[dict]:
    """Inputs whose identity differs between two resolutions (same URI, other bytes).
    Fields that one side could not resolve are not compared."""
    changes = []
    for uri, before in (recorded or {}).items():
        after = (current or {}).get(uri)
        if after is None or "error" in before or "error" in after:
            continue
        for field in IDENTITY_FIELDS:
            if field in before and field in after and before[field] != after[field]:
                changes.append({"uri": uri, "field": field, "old": before[field], "new": after[field]})
    return changes


@dataclass(frozen=True)
class Options:
    """How `submit` resolves: --no-resolve, --no-check, --strict, --resolve-timeout."""

    enabled: bool = True
    check: bool = True
    strict: bool = False
    timeout: float = DEFAULT_TIMEOUT


def unresolved(inputs: dict[str, dict]) -> list[str]:
    """The URIs of `inputs` ({uri: identity}) whose identity is an error, in order; found
    without a Python loop over the inputs (a cohort has 100 000)."""
    from itertools import compress
    from operator import methodcaller

    return list(compress(inputs, map(methodcaller("__contains__", "error"), inputs.values())))


def unresolved_hint(inputs: dict[str, dict], failed: list[str] | None = None) -> str:
    """What fixes the commonest unresolved inputs, for the warning that lists them: S3 calls
    sent to an endpoint that is not S3 (the emulator, through AWS_ENDPOINT_URL). `failed`:
    unresolved(inputs), when the caller has it. Each distinct identity is looked at once (a
    cohort's missing inputs share one NotFound)."""
    errors = list(map(inputs.__getitem__, unresolved(inputs) if failed is None else failed))
    distinct = dict(zip(map(id, errors), errors, strict=True)).values()
    if any((identity.get("error") or {}).get("code") == "NotS3" for identity in distinct):
        return "; NotS3: the S3 calls went to an endpoint that is not S3, point AWS_ENDPOINT_URL_S3 at one"
    return ""


def resolve(request: dict, clients: dict, *, timeout: float = DEFAULT_TIMEOUT, check: bool = True,
            strict: bool = False, workflow: dict | None = None) -> tuple[dict, list[str]]:
    """The `resolution` for a request, and warnings. Raises UsageError (nothing sent) for
    template violations when `check`, and for unresolved inputs when `strict`.
    `clients` maps "omics" (and "s3" when there are s3:// inputs) to boto3 clients.
    `workflow` is workflow_identity's answer when the caller already has it (not asked again)."""
    from concurrent.futures import ThreadPoolExecutor, wait

    started = time.monotonic()
    warnings: list[str] = []
    pool = ThreadPoolExecutor(max_workers=16)
    resolution: dict[str, Any] = {}
    try:
        workflow_future = pool.submit(workflow_identity, clients["omics"], request) if workflow is None else None
        parameters = request.get("parameters")
        if request.get("parametersUri"):
            resolution["parameters_file"] = found = parameters_file(clients["s3"], request["parametersUri"])
            if "error" in found:
                message = (f"parameters file {request['parametersUri']} not read ({found['error']['code']}: "
                           f"{found['error']['message']})")
                if strict:
                    raise Unresolved(message, [request["parametersUri"]])
                warnings.append(message + "; its parameters are not in the record and not checked")
            parameters = effective_parameters(request, resolution)
        left = max(0.1, timeout - (time.monotonic() - started))
        inputs = resolve_inputs(parameters, clients, timeout=left, pool=pool)
        if workflow is not None:
            workflow = dict(workflow)  # the caller's copy keeps its parameter template
        else:
            assert workflow_future is not None
            wait([workflow_future], timeout=max(0.0, timeout - (time.monotonic() - started)))
            workflow = workflow_future.result() if workflow_future.done() else {
                "error": {"code": "Timeout", "message": f"not resolved within {timeout:g} s"}}
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    template_checked = False
    if "error" in workflow:
        warnings.append(f"workflow not resolved: {workflow['error']['code']}: {workflow['error']['message']}")
    elif check and not request.get("runId") and "error" not in resolution.get("parameters_file", {}):
        where = (f"the parameters in {request['parametersUri']}" if "parameters_file" in resolution
                 else "the parameters")
        problems = check_template(workflow, parameters)
        if problems:
            raise TemplateMismatch(f"{where} do not fit workflow {workflow.get('id')} ({workflow.get('name')}): "
                                   + "; ".join(problems), problems)
        template_checked = "parameter_template" in workflow
    workflow.pop("parameter_template", None)
    failed = unresolved(inputs)
    if failed:
        message = ("input(s) not resolved: " + ", ".join(f"{uri} ({inputs[uri]['error']['code']})" for uri in failed)
                   + unresolved_hint(inputs, failed))
        if strict:
            raise Unresolved(message, failed)
        warnings.append(message + "; recorded as such")
    return {"workflow": workflow, "inputs": inputs, "template_checked": template_checked, **resolution}, warnings
