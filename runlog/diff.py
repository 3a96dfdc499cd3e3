"""What changed between two records: the parts that decide a computation, section by section.

The comparison is made on a *view* of each record (see `view`), reported as DeepDiff reports
it (lists that differ are compared by DeepDiff itself): JSON key order and white space never
matter (records are parsed JSON), a changed type does ("true" vs true).
Run identity (run id, uuid, ARN, times, requestId, name) is never counted as a difference;
`identity=True` adds it as a section of its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from runlog.record import effective_parameters

SECTIONS = ("workflow", "parameters", "inputs", "cache", "run settings", "git", "runlog", "identity")
RUN_SETTINGS = ("priority", "storageCapacity", "storageType", "retentionMode", "logLevel", "runGroupId",
                "roleArn", "outputUri", "networkingMode", "configurationName", "tags")
OWN_TAG_PREFIX = "runlog:"  # tags runlog adds itself (e.g. on replays) are bookkeeping, not configuration


@dataclass
class Change:
    section: str
    path: str
    old: Any
    new: Any
    kind: str  # changed | type_changed | added | removed

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _workflow_digest(record: dict, facts: dict) -> str | None:
    resolved = ((record.get("resolution") or {}).get("workflow") or {}).get("digest")
    return resolved or facts.get("digest") or None


# Whether the tree had uncommitted changes, as far as the record knows: not captured ("unknown",
# an imported run's) or no repository ("none") says nothing of it (left out, not false).
_DIRTY = {"dirty": True, "clean": False}


def view(record: dict, facts: dict | None = None, *, identity: bool = False) -> dict[str, dict]:
    """The comparable parts of a record. `facts` is the latest GetRun observation, if any
    (its workflow digest counts when the record has no resolution)."""
    facts = facts or {}
    request = record["request"]
    git = record.get("git") or {}
    sections: dict[str, dict] = {
        "workflow": {
            "id": request.get("workflowId"), "type": request.get("workflowType"),
            "version": request.get("workflowVersionName"), "owner": request.get("workflowOwnerId"),
            "source run": request.get("runId"), "digest": _workflow_digest(record, facts),
        },
        "parameters": effective_parameters(request, record.get("resolution")) or {},
        "inputs": _inputs(record),
        "cache": {"id": request.get("cacheId"), "behavior": request.get("cacheBehavior")},
        "run settings": {k: request.get(k) for k in RUN_SETTINGS},
        "git": {
            "state": git.get("state"), "commit": git.get("commit"), "branch": git.get("branch"),
            "remote": git.get("remote"), "dirty": _DIRTY.get(str(git.get("state"))),
            "diff digest": git.get("diff_sha256"), "untracked": git.get("untracked") or [],
            "untracked digest": git.get("untracked_sha256"),
        },
        "runlog": {"version": record.get("runlog_version")},
    }
    if record.get("kind") == "member" and "tags" not in request:  # a batch's run is tagged with its runTags
        sections["run settings"]["tags"] = request.get("runTags")
    tags = sections["run settings"]["tags"] or {}
    sections["run settings"]["tags"] = {k: v for k, v in tags.items() if not k.startswith(OWN_TAG_PREFIX)}
    # A member that is absent and one that is null are the same to the service: leave both
    # out, so a member given on one side only is "added" or "removed", not a type change.
    for name in ("workflow", "cache", "run settings", "git"):
        sections[name] = {k: v for k, v in sections[name].items() if v is not None}
    if identity:
        response = record["outcome"].get("response") or {}
        sections["identity"] = {
            "kind": record.get("kind"), "created": record.get("created"), "name": request.get("name"),
            "requestId": request.get("requestId"), "outcome": record["outcome"]["status"],
            "run id": response.get("id"), "run uuid": response.get("uuid"), "run arn": response.get("arn"),
            "runOutputUri": response.get("runOutputUri"), "caller": (record.get("caller") or {}).get("arn"),
            "region": (record.get("aws") or {}).get("region"),
        }
        sections["identity"] = {k: v for k, v in sections["identity"].items() if v is not None}
    return sections


def _only_known_on_both(left: dict, right: dict) -> None:
    """Facts runlog looked up (the workflow digest, input identities) are compared only where
    both sides know them: an unknown is not a difference. Failed look-ups count as unknown."""
    for side in (left, right):
        side["inputs"] = {uri: identity for uri, identity in side["inputs"].items() if "error" not in identity}
    if "digest" not in left["workflow"] or "digest" not in right["workflow"]:
        left["workflow"].pop("digest", None)
        right["workflow"].pop("digest", None)
    for uri in set(left["inputs"]) ^ set(right["inputs"]):
        left["inputs"].pop(uri, None)
        right["inputs"].pop(uri, None)


def _json_path(parts: list) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


_KINDS = {
    "values_changed": "changed", "type_changes": "type_changed",
    "dictionary_item_added": "added", "iterable_item_added": "added",
    "dictionary_item_removed": "removed", "iterable_item_removed": "removed",
}


def untracked_changes(old: list, new: list) -> list[Change]:
    """The untracked files (git section) are a set of names, not a list whose places mean
    something: each name only one side has is removed or added (path `untracked`), in name
    order. Compared place by place, a file added before the others read as each later name
    "changed" into the one before it."""
    return ([Change("git", "untracked", name, None, "removed") for name in sorted(set(old) - set(new))]
            + [Change("git", "untracked", None, name, "added") for name in sorted(set(new) - set(old))])


def compare(a: dict, b: dict, facts_a: dict | None = None, facts_b: dict | None = None, *,
            identity: bool = False) -> list[Change]:
    """Every difference between two records' configurations, in section order."""
    left, right = view(a, facts_a, identity=identity), view(b, facts_b, identity=identity)
    _only_known_on_both(left, right)
    changes = untracked_changes(left["git"].pop("untracked", []), right["git"].pop("untracked", []))
    _walk(left, right, [], changes)
    order = {name: i for i, name in enumerate(SECTIONS)}
    changes.sort(key=lambda c: (order.get(c.section, len(order)), c.path))
    return changes


def no_differences(fingerprint_a: str | None, fingerprint_b: str | None) -> tuple[bool, str]:
    """(identical, what to say) of two records in which the comparison found no difference:
    identical configurations only when their fingerprints are equal; otherwise the fingerprint
    covers more than the comparison shows, and both are named."""
    a, b = fingerprint_a or "", fingerprint_b or ""
    if a and a == b:
        return True, f"No differences: identical configurations (fingerprint {a[:12]})."
    return False, (f"No differences in what is compared; the configuration fingerprints differ "
                   f"(A {a[:12] or '-'}, B {b[:12] or '-'}).")


def same_json(x: Any, y: Any) -> bool:
    """JSON equality where the type counts ("true" vs true, 1 vs 1.0 vs true), as DeepDiff's."""
    if type(x) is not type(y):
        return False
    if isinstance(x, dict):
        return x.keys() == y.keys() and all(same_json(v, y[k]) for k, v in x.items())
    if isinstance(x, list):
        return len(x) == len(y) and all(same_json(u, v) for u, v in zip(x, y, strict=True))
    return x == y


def _walk(x: Any, y: Any, path: list, out: list[Change]) -> None:
    """DeepDiff's report (verbose_level=2, threshold_to_diff_deeper=0) for JSON values:
    objects key by key, scalars by value and type. Two lists that differ are handed to
    DeepDiff itself (its in-order list matching is what the report has always used), so
    DeepDiff is imported only for them: most comparisons never pay for its import."""
    if type(x) is not type(y):
        out.append(_change(path, x, y, "type_changed"))
    elif isinstance(x, dict):
        for key in x:
            if key not in y:
                out.append(_change([*path, key], x[key], None, "removed"))
            else:
                _walk(x[key], y[key], [*path, key], out)
        for key in y:
            if key not in x:
                out.append(_change([*path, key], None, y[key], "added"))
    elif isinstance(x, list):
        if not same_json(x, y):
            _deepdiff(x, y, path, out)
    elif x != y:
        out.append(_change(path, x, y, "changed"))


def _change(parts: list, old: Any, new: Any, kind: str) -> Change:
    return Change(parts[0], _json_path(parts[1:]), old, new, kind)


# Called before DeepDiff is first imported: the CLI sets it to import DeepDiff without its
# optional numpy and pydantic support (runlog.cli.diff); a library user's process imports it as is.
def _nothing() -> None:
    return None


before_deepdiff_import: Callable[[], None] = _nothing


def _deepdiff(x: list, y: list, path: list, out: list[Change]) -> None:
    before_deepdiff_import()
    from deepdiff import DeepDiff

    # threshold_to_diff_deeper=0: always report key by key, never "the whole object changed".
    diff = DeepDiff(x, y, verbose_level=2, threshold_to_diff_deeper=0)
    for report_type, items in diff.tree.items():
        kind = _KINDS.get(report_type)
        if kind is None:
            continue
        for item in items:
            parts = [*path, *item.path(output_format="list")]
            out.append(_change(parts, None if kind == "added" else item.t1, None if kind == "removed" else item.t2,
                               kind))


def header(record: dict, address: str | None) -> dict[str, Any]:
    """How a side of the comparison is named in reports (never compared). A record without
    an address is the configuration as it would be submitted now: it has no run."""
    response = (record["outcome"].get("response") or {}) if address else {}
    return {
        "record": address, "kind": record.get("kind"), "created": record.get("created"),
        "name": record["request"].get("name") or record["request"].get("batchName"), "outcome": record["outcome"]["status"] if address else "not sent",
        "run_id": response.get("id"), "run_uuid": response.get("uuid"), "run_arn": response.get("arn"),
        "request_id": record["request"].get("requestId"), "fingerprint": record.get("fingerprint"),
    }


def _inputs(record: dict) -> dict:
    """Input identities, with the parametersUri object's (without its content, which is
    compared as the parameters)."""
    resolution = record.get("resolution") or {}
    inputs = dict(resolution.get("inputs") or {})
    found = resolution.get("parameters_file")
    if found:
        inputs[found["uri"] + " (parameters file)"] = {k: v for k, v in found.items() if k not in ("uri", "content")}
    return inputs


def as_of_now(record: dict, git_repo: Path, cwd: Path) -> tuple[dict, list[str]]:
    """The record as it would be submitted now: the current git state and, when the
    parameters came from a file that still exists, that file read again. Returns the
    synthetic record and notes saying what was refreshed."""
    import copy
    import json

    from runlog import __version__, gitcapture
    from runlog.config import find_git_root

    now = copy.deepcopy(record)
    now["git"] = gitcapture.capture(git_repo)
    now["runlog_version"] = __version__
    notes = [f"git state of {git_repo} now ({now['git']['state']})"]
    source = record.get("parameters") or {}
    # parameters from --parameters file://, or from the "parameters" of a --cli-input-json file://
    if source.get("source") in ("file", "cli-input-json") and source.get("file"):
        candidates = [cwd / source["file"]["path"]]
        root = find_git_root(git_repo.resolve())
        workdir = (record.get("git") or {}).get("workdir")
        if root is not None and workdir:
            candidates.insert(0, root / workdir / source["file"]["path"])
        for candidate in candidates:
            if candidate.is_file():
                try:
                    value = json.loads(candidate.read_text(encoding="utf-8-sig"))
                    if source["source"] == "cli-input-json":
                        value = value.get("parameters") if isinstance(value, dict) else None
                        if value is None:
                            raise ValueError("no parameters in it")
                    now["request"]["parameters"] = value
                    notes.append(f"parameters read again from {source['file']['path']}")
                except ValueError:
                    notes.append(f"{source['file']['path']} is no longer valid JSON (or has no parameters): "
                                 "parameters as recorded")
                break
        else:
            notes.append(f"{source['file']['path']} no longer exists: parameters as recorded")
    return now, notes


@dataclass
class Diff:
    """Two sides compared: their headers (record, run, name, fingerprint; `b["record"]` is
    None for "as it would be submitted now"), the changes, and notes on what was read again."""

    a: dict[str, Any]
    b: dict[str, Any]
    changes: list[Change]
    notes: list[str]
    complete: bool = True  # False: a part could not be read (the notes say which), so "same" is not known

    @property
    def same(self) -> bool | None:
        """True when the configurations are identical (no change counted); None when not all
        could be compared and no change was found."""
        return not self.changes if self.complete or self.changes else None

    def as_dict(self) -> dict[str, Any]:
        """The JSON `runlog diff --json` prints (docs/diff.md)."""
        return {"a": self.a, "b": self.b, "same": self.same, "notes": self.notes,
                "changes": [c.as_dict() for c in self.changes]}


def between(ledger, ref_a: str, ref_b: str | None = None, *, git_repo: Path, cwd: Path,
            identity: bool = False) -> Diff:
    """What changed from the run `ref_a` to the run `ref_b`, or, without `ref_b`, to what
    would be submitted now (the git state of `git_repo` now, a parameters file read again
    from `cwd`). `identity` compares run identity too."""
    from runlog.observe import latest_run_facts

    entry_a = ledger.resolve(ref_a, whole=False)  # a batch as its view: its cohort is read only if needed
    entry_b = ledger.resolve(ref_b, whole=False) if ref_b is not None else None
    if "batch" in (entry_a.kind, entry_b.kind if entry_b else None):  # the cohort audit (runlog/batch.py)
        if entry_b is None or entry_a.kind != entry_b.kind:
            from runlog.errors import UsageError

            raise UsageError("a batch is compared with another batch: give two batch REFs; two member runs are "
                             "compared as runs")
        from runlog.batchread import compare_batch_entries

        changes, view_a, view_b, unseen = compare_batch_entries(ledger, entry_a, entry_b)
        if ledger.lost:  # a cohort's blob cannot be read (Ledger.partial): what was compared, not all
            return Diff(header(view_a, entry_a.address), header(view_b, entry_b.address), changes, unseen,
                        complete=False)
        if unseen and not changes:  # the runs not compared: "no differences" would not be known
            from runlog.errors import UsageError

            raise UsageError(f"{unseen[0][3:]}, and nothing else differs: whether the two cohorts are the same "
                             "cannot be told; `diff('RUN_ID', 'RUN_ID')` compares two of their runs")
        return Diff(header(view_a, entry_a.address), header(view_b, entry_b.address), changes, unseen)
    facts_a = latest_run_facts(ledger, entry_a.address)
    notes: list[str] = []
    record_a, known_a = _member_settings(ledger, entry_a.record, entry_a.address, "A", notes)
    if entry_b is None:
        record_b, now_notes = as_of_now(record_a, git_repo, cwd)
        notes += now_notes
        address_b, facts_b, known_b = None, facts_a, known_a
    else:
        record_b, known_b = _member_settings(ledger, entry_b.record, entry_b.address, "B", notes)
        address_b = entry_b.address
        facts_b = latest_run_facts(ledger, entry_b.address)
    changes = compare(record_a, record_b, facts_a, facts_b, identity=identity)
    head_a, head_b = header(record_a, entry_a.address), header(record_b, address_b)
    for head, known in ((head_a, known_a), (head_b, known_b)):
        if known is not None:
            head["settings"] = {k: v for k, v in known.as_dict().items() if k != "settings"}
    return Diff(head_a, head_b, changes, notes)


def _member_settings(ledger, record: dict, address: str, side: str, notes: list[str]) -> tuple[dict, Any]:
    """A member of a batch started without runlog holds the default setting alone: compared
    with the settings GetRun reported for it (runlog.membersettings), and the notes say so;
    its settings unknown, the notes say that the default alone is compared. Other records
    as they are (and no Known)."""
    from runlog.membersettings import as_observed, known_settings, needs_settings

    if not needs_settings(record):
        return record, None
    known = known_settings(record, ledger.observations(address))
    notes.append(f"{side}: {known.note}")
    return as_observed(record, known), known
