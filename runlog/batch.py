"""Batches: StartRunBatch recorded as one batch record, and its runs as member records.

A batch is submitted like a run (runlog/submit.py): every check first, the intent committed
before StartRunBatch is called with its requestId (the idempotency token), the record after.
Before sending, runlog reads what the request names once: the s3UriSettings file (pinned:
ETag, VersionId, SHA-256, its content kept), the default workflow's identity and template
(each run's merged parameters are checked against it), and the identities of the runs' S3
inputs, listed in bulk (ListObjectsV2 over the prefixes they share, 1 000 a call).

The runs appear later: `record_members` pages ListRunsInBatch and writes one member record
per run setting (a pure function of the batch record and the listing item, so recording it
twice, or in two ledgers, gives the same address), and `observe_members` pages ListRuns
(batchId) to append status observations. See docs/batch.md."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, partial
from itertools import chain, repeat
from operator import is_not, itemgetter, methodcaller
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runlog import record as rec
from runlog.batchread import (  # noqa: F401  (the read side, re-exported: runlog.batch.summary, …)
    FINISHED,
    SHOWN_FAILURES,
    SOURCE_REPEATED,
    SOURCE_SETTINGS_FILE,
    SOURCE_SHARED,
    batch_entry,
    batch_failure,
    batch_failure_words,
    batch_record_view,
    compare_batch_entries,
    compare_batches,
    last_batch_status,
    newest,
    not_found_since,
    run_settings,
    settings_changes,
    summary,
)
from runlog.errors import OperationError, RunlogError, TemplateMismatch, Unresolved, UsageError
from runlog.inputsfork import UNRESOLVED_ENDING, InputsApart, recorded_warning, unresolved_warning
from runlog.ledger import Entry, Ledger
from runlog.membersettings import unknown_warning
from runlog.resolve import Options, unresolved  # submit-batch resolves as submit does: the one Options

if TYPE_CHECKING:
    from concurrent.futures import Future

    from runlog.writerproc import WriterProcess

OPERATION = "StartRunBatch"
MAX_INLINE = 100
MAX_RUNS = 100_000
MAX_TAGS = 50
SETTINGS_FILE_LIMIT = 512 * 1024 * 1024  # bytes of an s3UriSettings object runlog reads
SOURCE_BATCH = "GetBatch"
SOURCE_RUNS = "ListRuns"
SOURCE_SUBMISSION = "ListRunsInBatch"
PARAMETERS = {"source": "batch", "argument": None}
# GetBatch statuses after DeleteRunBatch: the member runs deleted are no longer in ListRuns.
RUNS_DELETE = frozenset({"RUNS_DELETING", "RUNS_DELETED", "RUNS_DELETE_FAILED"})

# What runlog adds to the model's own documentation of a member.
_NOTES = {
    "requestId": "Default: a new UUID (recorded before sending).",
    "defaultRunSetting": "JSON or file://PATH; roleArn and outputUri default to role_arn / output_uri in the config.",
    "batchRunSettings": "JSON or file://PATH: {\"inlineSettings\": [...]} (at most 100) or "
                        "{\"s3UriSettings\": \"s3://...\"} (a JSON list, at most 100 000; pinned and kept).",
    "tags": "The batch's own tags (KEY=VALUE,..., JSON or file://); runs get defaultRunSetting.runTags.",
}


# -- the request ---------------------------------------------------------------------------

@lru_cache(maxsize=1)
def options() -> tuple:
    """One startrun.Option per StartRunBatch member, in the model's order (the aws CLI's
    `start-run-batch` options, with a newer botocore's new members)."""
    from runlog import startrun

    model = startrun.raw_model()
    shape = startrun.shapes()[model["operations"][OPERATION]["input"]["shape"]]
    required = set(shape.get("required", ()))
    found = []
    for member, ref in shape["members"].items():
        target = startrun.shapes()[ref["shape"]]
        enum = tuple(target.get("enum", ()))
        parts = [startrun._short_help(ref.get("documentation", ""))]
        if member in _NOTES:
            parts.append(_NOTES[member])
        found.append(startrun.Option(member=member, flag=startrun.flag_for(member), kind=startrun.kind_of(ref["shape"]),
                                     help=" ".join(p for p in parts if p), shape=ref["shape"], enum=enum,
                                     required=member in required))
    return tuple(found)


def members() -> dict:
    return {o.member: o for o in options()}


@dataclass
class BatchRequest:
    request: dict[str, Any]
    sources: dict[str, Any] = field(default_factory=dict)  # option -> {"argument", "file"?}


def build_request(flags: dict[str, Any], *, cli_input_json: str | None = None,
                  defaults: dict[str, Any] | None = None, cwd: Path | None = None,
                  spell: Callable[[str], str] | None = None) -> BatchRequest:
    """--cli-input-json, the config's defaults and the flags (flags win) as a StartRunBatch
    request, checked (UsageError, nothing sent or written)."""
    from runlog.params import read_json_argument
    from runlog.startrun import member_name, parse_flag, type_errors

    known = members()
    request: dict[str, Any] = {}
    sources: dict[str, Any] = {}
    if cli_input_json is not None:
        base, info = read_json_argument(cli_input_json, "`cli_input_json`", cwd)
        if not isinstance(base, dict):
            raise UsageError("`cli_input_json`: expected a JSON object of StartRunBatch members", option="cli_input_json")
        unknown = sorted(set(base) - set(known))
        if unknown:
            raise UsageError(f"`cli_input_json`: unknown StartRunBatch member(s) {', '.join(unknown)} "
                             f"(valid: {', '.join(known)})", option="cli_input_json")
        for member, value in base.items():
            problems = type_errors(known[member].shape, value, member)
            if problems:
                raise UsageError(f"`cli_input_json`: {problems[0]}", option="cli_input_json")
        request.update(base)
        sources["cli-input-json"] = info
    tags = dict(request.get("tags") or {})
    for member, raw in flags.items():
        if raw is None:
            continue
        value, info = parse_flag(known[member], raw, cwd, spell or member_name, hint=_HINTS.get(member))
        sources[known[member].flag] = info
        if member == "tags":
            tags.update(value)
        else:
            request[member] = value
    if tags:
        request["tags"] = tags
    default = request.get("defaultRunSetting")
    if isinstance(default, dict):
        for member, key in (("roleArn", "role_arn"), ("outputUri", "output_uri")):
            if not default.get(member) and (defaults or {}).get(key):
                default[member] = defaults[key]  # type: ignore[index]
    request.setdefault("requestId", str(uuid.uuid4()))
    check_request(request)
    return BatchRequest(request=request, sources=sources)


def _settings_list_hint(value: Any) -> str:
    """The fix for a bare list of run settings given as --batch-run-settings."""
    if not isinstance(value, list):
        return ""
    return ("; a list of run settings goes inside an object: {\"inlineSettings\": [...]} (at most "
            f"{MAX_INLINE}), or put it in a JSON file in S3 and give {{\"s3UriSettings\": \"s3://bucket/key.json\"}}")


_HINTS: dict[str, Callable[[Any], str]] = {"batchRunSettings": _settings_list_hint}


def check_request(request: dict[str, Any]) -> None:
    """Refuse (exit 2) what the service would refuse, before anything is written or sent."""
    from runlog.startrun import type_errors

    known = members()
    default = request.get("defaultRunSetting")
    if not isinstance(default, dict):
        raise UsageError("missing `defaultRunSetting` (a JSON object with at least workflowId and roleArn)",
                         option="defaultRunSetting")
    missing = [m for m in ("workflowId", "roleArn") if not default.get(m)]
    if missing:
        raise UsageError(f"`defaultRunSetting`: missing {' and '.join(missing)}"
                         + (" (or set role_arn in .runlog.toml)" if "roleArn" in missing else ""),
                         option="defaultRunSetting")
    not_object = _merged_not_object(default)
    if not_object:
        raise UsageError(f"`defaultRunSetting`: {not_object}", option="defaultRunSetting")
    settings = request.get("batchRunSettings")
    if settings is not None and not isinstance(settings, dict):
        problems = type_errors(known["batchRunSettings"].shape, settings, "`batchRunSettings`")
        raise UsageError(problems[0] + _settings_list_hint(settings), option="batchRunSettings")
    if not isinstance(settings, dict):
        raise UsageError("missing `batchRunSettings`: give {\"inlineSettings\": [...]} or "
                         "{\"s3UriSettings\": \"s3://bucket/settings.json\"}", option="batchRunSettings")
    has_inline, has_uri = "inlineSettings" in settings, "s3UriSettings" in settings
    if has_inline == has_uri:
        raise UsageError("`batchRunSettings`: give exactly one of inlineSettings and s3UriSettings "
                         f"({'both' if has_inline else 'neither'} given)", option="batchRunSettings")
    for member, value in request.items():  # (batchRunSettings is an object here: its hint has nothing to add)
        if member in known:
            problems = type_errors(known[member].shape, value, f"`{member}`")
            if problems:
                raise UsageError(problems[0], option=member)
    if has_inline:
        inline = settings["inlineSettings"]
        if len(inline) > MAX_INLINE:
            raise UsageError(f"`batchRunSettings`: {len(inline)} inlineSettings, at most {MAX_INLINE} "
                             "(put more, up to 100 000, in a JSON file in S3 and give s3UriSettings)",
                             option="batchRunSettings")
        if not inline:
            raise UsageError("`batchRunSettings`: inlineSettings is empty (give at least one run setting)",
                             option="batchRunSettings")
        check_settings(inline, "`batchRunSettings` inlineSettings")
    elif not str(settings["s3UriSettings"]).startswith("s3://"):
        raise UsageError(f"`batchRunSettings`: s3UriSettings {str(settings['s3UriSettings'])[:200]!r} is not "
                         "an s3:// URI", option="batchRunSettings")
    if len(request.get("tags") or {}) > MAX_TAGS:
        raise UsageError(f"`tags`: {len(request['tags'])} tags, HealthOmics allows at most {MAX_TAGS}",
                         option="tags")


def check_settings(settings: list, where: str) -> None:
    """Each run setting an object with a runSettingId; no runSettingId twice; each member one of
    the model's InlineSetting members, of its type (as botocore checks inline settings: a
    settings file is not checked by botocore, and a run setting of another type would be sent
    and make its member record fail). A cohort that passes is seen to pass at C speed (the ids
    joined as text, then counted as a set; each member's values' types as a set); one that does
    not is walked to name its first bad item."""
    try:
        ids = list(map(itemgetter("runSettingId"), settings))
        "".join(ids)  # TypeError unless every id is text
        # (an item that is no object has no ["runSettingId"]: TypeError)
        if "" not in ids and len(set(ids)) == len(ids) and _types_pass(settings):
            return
    except (TypeError, KeyError, IndexError):
        pass
    from runlog.startrun import _json_kind, type_errors

    known = inline_members()
    seen: dict[str, int] = {}  # runSettingId -> its item
    for index, setting in enumerate(settings):
        if not isinstance(setting, dict):
            raise UsageError(f"{where}[{index}] is not a JSON object (each run setting is an object with a "
                             "runSettingId)")
        ident = setting.get("runSettingId")
        if ident is not None and ident != "" and not isinstance(ident, str):
            raise UsageError(f"{where}[{index}]: runSettingId is {_json_kind(ident)}; it must be a non-empty "
                             "string")
        if not isinstance(ident, str) or not ident:
            raise UsageError(f"{where}[{index}] has no runSettingId (a non-empty string)")
        if ident in seen:
            raise UsageError(f"{where}[{index}]: runSettingId {ident[:128]!r} appears twice (items {seen[ident]} "
                             f"and {index}); each run needs its own")
        seen[ident] = index
        not_object = _merged_not_object(setting)
        if not_object:
            raise UsageError(f"{where}[{index}] (runSettingId {ident[:128]!r}): {not_object}")
        for member, value in setting.items():
            if member not in known:
                raise UsageError(f"{where}[{index}] (runSettingId {ident[:128]!r}): {str(member)[:128]!r} is not "
                                 f"a member of a run setting; remove it or use one of {', '.join(known)}")
            problems = type_errors(known[member], value, member)
            if problems:
                raise UsageError(f"{where}[{index}] (runSettingId {ident[:128]!r}): {problems[0]}")


def check_constraints(settings: list[dict], where: str) -> None:
    """The model's lengths, patterns and ranges on each run setting of a settings file, as
    they are checked on inline settings (check_against_model) and by the service: botocore
    never sees a file's content. Run after check_settings (the types are right). The texts of
    the members that are text or maps of texts (runSettingId, name, outputUri, runTags' names
    and values: their lengths, and where the model's pattern is \\p{..} classes, no character of
    Unicode category C: servicemodel.refused_character) are seen at C speed, one member at a
    time (each distinct character once); when one fails that look, or a
    run setting has another constrained member (priority, outputBucketOwnerId), the run
    settings are walked with servicemodel.constraint_errors, naming the first that breaks one."""
    from runlog.servicemodel import constraint_errors

    shape, quick = _inline_constraints()
    present = set().union(*settings)
    if present <= quick.keys() and all(_quick_pass(settings, member, quick[member]) for member in present):
        return
    for index, setting in enumerate(settings):
        problems = constraint_errors(shape, setting, "")
        if problems:
            raise UsageError(f"{where}[{index}] (runSettingId {setting['runSettingId'][:128]!r}): {problems[0]}")


# a text's least and most characters, and the model's \p{..} classes it must be made of (None: any
# character), as servicemodel.pattern_classes reads them: the major Unicode categories, other characters
Limits = tuple[int, "int | None", "tuple[frozenset[str], str] | None"]


def _quick_pass(settings: list[dict], member: str, check: tuple[Limits, ...] | None) -> bool:
    """Whether `member` of every run setting is within its limits (None: no constraint): a
    text's, or a map's names' and values'."""
    if check is None:
        return True
    values: list[Any] = list(filter(partial(is_not, None), map(dict.get, settings, repeat(member))))  # at C speed
    if len(check) == 1:
        return _texts_pass(values, *check[0])
    names, texts = check
    return (_texts_pass(list(chain.from_iterable(map(dict.keys, values))), *names)
            and _texts_pass(list(chain.from_iterable(map(dict.values, values))), *texts))


def _texts_pass(values: list[str], low: int, high: int | None,
                classes: tuple[frozenset[str], str] | None) -> bool:
    """Whether every text has from `low` to `high` characters (and, `classes`, every character
    one the model's pattern takes: servicemodel.refused_character, on the texts joined)."""
    from runlog.servicemodel import refused_character

    if not values:
        return True
    lengths = list(map(len, values))
    return (min(lengths) >= low and (high is None or max(lengths) <= high)
            and (classes is None or refused_character("".join(values), *classes) is None))


@lru_cache(maxsize=1)
def _inline_constraints() -> tuple[Any, dict[str, tuple[Limits, ...] | None]]:
    """The model's InlineSetting shape (from the model runlog.startrun has read: no second
    load), and the members _quick_pass checks: documents (None: no constraint), texts and
    maps of texts whose patterns, if any, are \\p{..} classes, with their limits."""
    from runlog import startrun
    from runlog.servicemodel import model_of, pattern_classes

    model = model_of(startrun.raw_model(), startrun.SERVICE)
    shape = model.operation_model(OPERATION).input_shape.members["batchRunSettings"].members["inlineSettings"].member

    def limits(text) -> Limits | None:
        meta, pattern = text.metadata, text.metadata.get("pattern")
        classes = pattern_classes(pattern) if pattern else None
        if text.type_name != "string" or meta.get("enum") or (pattern and (classes is None or classes[0])):
            return None  # a pattern that is not \p{..} classes alone: the walk checks it
        return meta.get("min", 0), meta.get("max"), classes[1:] if classes else None

    quick: dict[str, tuple[Limits, ...] | None] = {}
    for name, member in shape.members.items():
        if member.metadata.get("document"):
            quick[name] = None
        elif member.type_name == "map" and not {"min", "max"} & member.metadata.keys():
            found = (limits(member.key), limits(member.value))
            if found[0] is not None and found[1] is not None:
                quick[name] = (found[0], found[1])
        elif (found_text := limits(member)) is not None:
            quick[name] = (found_text,)
    return shape, quick


@lru_cache(maxsize=1)
def inline_members() -> dict[str, str]:
    """The members of a run setting (the model's InlineSetting, found through StartRunBatch's
    batchRunSettings.inlineSettings), each with its shape's name, in the model's order."""
    from runlog import startrun

    shapes = startrun.shapes()
    settings = shapes[shapes[members()["batchRunSettings"].shape]["members"]["inlineSettings"]["shape"]]
    return {name: ref["shape"] for name, ref in shapes[settings["member"]["shape"]]["members"].items()}


# The Python types (from JSON) a value of each kind may have, as startrun.type_errors says, and
# one such value (what a run setting without the member is taken to hold). A kind not here (a
# structure, a list) is not checked quickly: the walk in check_settings checks it.
_KIND_TYPES: dict[str, tuple[frozenset[type], Any]] = {
    "string": (frozenset({str}), ""), "blob": (frozenset({str}), ""), "integer": (frozenset({int}), 0),
    "long": (frozenset({int}), 0), "boolean": (frozenset({bool}), False),
    "float": (frozenset({int, float}), 0), "double": (frozenset({int, float}), 0), "map": (frozenset({dict}), {}),
}
Quick = tuple[frozenset[type], Any, frozenset[type] | None]


@lru_cache(maxsize=1)
def _quick_types() -> dict[str, Quick | None]:
    """Per run-setting member: the types its value may have, the value that stands for it when
    missing, and for a map the types of its values (None: any); None for a document (any
    value). A member missing here is left to the walk."""
    from runlog import startrun

    quick: dict[str, Quick | None] = {}
    for member, shape_name in inline_members().items():
        kind = "map" if member in MERGED else startrun.kind_of(shape_name)  # parameters: see _merged_not_object
        if kind == "document":
            quick[member] = None
        elif kind == "map":
            value_shape = startrun.shapes()[shape_name].get("value", {}).get("shape")
            value_kind = startrun.kind_of(value_shape) if value_shape else "document"
            if value_kind == "document" or value_kind in _KIND_TYPES:
                values = None if value_kind == "document" else _KIND_TYPES[value_kind][0]
                quick[member] = (*_KIND_TYPES["map"], values)
        elif kind in _KIND_TYPES:
            quick[member] = (*_KIND_TYPES[kind], None)
    return quick


def _types_pass(settings: list[dict]) -> bool:
    """Whether every run setting's members are run-setting members of their types, seen with
    one pass over the settings for their member names and one per member present (no Python
    loop over the runs). False: the walk in check_settings names the first that is not."""
    quick = _quick_types()
    for member in set().union(*settings) - {"runSettingId"}:  # the ids: text, seen by check_settings
        if member not in quick:
            return False
        check = quick[member]
        if check is None:
            continue
        types, missing, value_types = check
        values: Iterator[Any] = map(dict.get, settings, repeat(member), repeat(missing))
        if value_types is None:
            if not set(map(type, values)) <= types:
                return False
        # a map's values' types in one pass: dict.values refuses (TypeError) a value that is no object
        elif not set(map(type, chain.from_iterable(map(dict.values, values)))) <= value_types:
            return False
    return True


# A run setting's members merged name by name into the default's (effective_setting): JSON objects.
MERGED = ("parameters", "runTags")
JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", type(None): "null"}


def _merged_not_object(setting: dict) -> str | None:
    """What is wrong with a setting whose `parameters` or `runTags` is there but no JSON object
    (an array's items would be taken for names, and no member record could hold it), or None."""
    for key in MERGED:
        if key in setting and not isinstance(setting[key], dict):
            value = setting[key]
            kind = str(value).lower() if isinstance(value, bool) else JSON_KINDS.get(type(value), "value")
            return (f"{key} is a JSON {kind}; it must be a JSON object of "
                    + ("parameter names and values" if key == "parameters" else "tag names and values"))
    return None


def check_against_model(request: dict[str, Any], service_model) -> None:
    """Enum values, patterns, lengths and ranges of StartRunBatch's model (exit 2)."""
    from runlog.servicemodel import constraint_errors

    problems = constraint_errors(service_model.operation_model(OPERATION).input_shape, request, "")
    if problems:
        first = problems[0]
        member = first.split(":", 1)[0].split(".")[0].split(" ")[0].split("[")[0]
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        item = _INLINE_ITEM.match(first)
        if item:  # a run setting's: named as a settings file's are (check_constraints), by its id
            index = int(item.group(1))
            ident = str(request["batchRunSettings"]["inlineSettings"][index].get("runSettingId"))
            raise UsageError(f"`batchRunSettings` inlineSettings[{index}] (runSettingId {ident[:128]!r}): "
                             f"{first[item.end():]}{more}", option=member)
        raise UsageError(f"`{member}`: {first.split(': ', 1)[1]}{more}", option=member)


_INLINE_ITEM = re.compile(r"batchRunSettings\.inlineSettings\[(\d+)\]\.?")


def effective_setting(default: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """What one run gets: the default setting with its own laid over it; parameters and
    runTags are merged name by name (its own win); runSettingId is not a run setting."""
    merged = {**default, **{k: v for k, v in own.items() if k != "runSettingId"}}
    for key in ("parameters", "runTags"):
        if isinstance(default.get(key), dict) and isinstance(own.get(key), dict):
            merged[key] = {**default[key], **own[key]}
    return merged


# -- resolving before sending ------------------------------------------------------------------

def read_settings_file(s3, uri: str, on_body: Callable[[bytes], Any] | None = None) -> dict[str, Any]:
    """The s3UriSettings object: identity and content. Unreadable: {"uri", "error"} (a
    warning). Readable but not a JSON list of run settings: UsageError (nothing sent).
    `on_body(bytes)` is called with its bytes before they are parsed."""
    from runlog.resolve import read_object
    from runlog.safejson import UntrustedJSONError, loads_untrusted

    found, body = read_object(s3, uri, SETTINGS_FILE_LIMIT)
    if body is None:
        return found
    if len(body) > SETTINGS_FILE_LIMIT:
        raise UsageError(f"settings file {uri} is larger than {SETTINGS_FILE_LIMIT} bytes; runlog does not send "
                         "a cohort it cannot record")
    if on_body is not None:
        on_body(body)
    try:
        content = loads_untrusted(body, max_bytes=SETTINGS_FILE_LIMIT, max_depth=64)
    except UntrustedJSONError as exc:
        raise UsageError(f"settings file {uri} is not a JSON list of run settings: {exc.reason}") from None
    if not isinstance(content, list):
        raise UsageError(f"settings file {uri} is not a JSON list of run settings (it holds a JSON "
                         f"{type(content).__name__.replace('dict', 'object')})")
    if not content:
        raise UsageError(f"settings file {uri} is an empty list: a batch needs at least one run setting")
    if len(content) > MAX_RUNS:
        raise UsageError(f"settings file {uri} holds {len(content)} run settings, at most {MAX_RUNS}")
    check_settings(content, f"settings file {uri} item")
    check_constraints(content, f"settings file {uri} item")
    found["content"] = content
    return {k: v for k, v in found.items() if v is not None}


def check_templates(workflow: dict, default: dict, settings: list[dict]) -> None:
    """Each run's merged parameters against the workflow's template: the first run that
    misses a required parameter or gives an unknown one is named (TemplateMismatch). A cohort
    has few distinct sets of parameter names (100 000 runs, usually one): each distinct set
    (the names of a run's own parameters, in their order) is checked once."""
    template = workflow.get("parameter_template")
    if not template:
        return
    required = {n for n, spec in template.items() if not (spec or {}).get("optional")}
    known = set(template)
    base = set(default.get("parameters") or {})
    distinct = _name_sets(settings)
    if distinct is not None and all(required <= given and given <= known
                                    for given in map(base.union, distinct)):
        return  # every run fits: seen at C speed; otherwise the walk below names the first that does not
    fits: dict[tuple, bool] = {}
    for index, setting in enumerate(settings):
        own = setting.get("parameters")
        names = tuple(own) if own else ()  # a dict's keys (what else is there, set() took before)
        fit = fits.get(names)
        if fit is None:
            given = base.union(names)
            fit = fits[names] = required <= given and given <= known
        if fit:
            continue
        given = base.union(names)
        missing, unknown = required - given, given - known
        problems = []
        if missing:
            problems.append(f"missing required parameter(s) {', '.join(sorted(missing))}")
        if unknown:
            problems.append(f"unknown parameter(s) {', '.join(sorted(unknown))} (the workflow takes "
                            f"{', '.join(sorted(known))})")
        raise TemplateMismatch(f"run setting {setting['runSettingId'][:128]!r} (item {index}) does not fit "
                               f"workflow {workflow.get('id')} ({workflow.get('name')}): " + "; ".join(problems),
                               problems)


def _name_sets(settings: list[dict]) -> set[tuple] | None:
    """The distinct sets of parameter names the runs give (each run's own parameters' names,
    in their order; () for a run without any), made without a Python loop over the runs; None
    when a run's parameters are not an object of names (the walk then names it)."""
    try:
        own = list(filter(None, map(dict.get, settings, repeat("parameters"))))
        if set(map(type, own)) - {dict}:
            return None
        distinct = set(map(tuple, own))
    except TypeError:  # a run setting that is not an object
        return None
    if len(own) < len(settings):
        distinct.add(())
    return distinct


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _flat_input_uris(settings: list[dict]) -> list[str] | None:
    """The runs' own input URIs in order of appearance when every run's parameters are an
    object of text values (the usual cohort), found without a Python loop over the runs;
    None otherwise (settings_input_uris then walks them)."""
    try:
        own = list(filter(None, map(dict.get, settings, repeat("parameters"))))
        values = list(chain.from_iterable(map(dict.values, own)))
    except TypeError:  # a run setting, or its parameters, not an object
        return None
    kinds = set(map(type, values))
    if kinds - _SCALARS:  # an object or a list among them: walked for the URIs it holds
        return None
    if kinds != {str}:
        values = [value for value in values if value.__class__ is str]
    return list(filter(methodcaller("startswith", ("s3://", "omics://")), values))


def inherited_parameters(default: dict, settings: list[dict]) -> Any:
    """The default setting's parameters that at least one run inherits: a run inherits the
    default parameters it does not set itself (effective_setting). A default parameter every
    run sets is no run's input: it is not resolved at submission nor checked by a replay. All
    of them when the runs are not known (a settings file not read) or when a run has no
    parameters object of its own (none, null: the service's merge of anything but an object
    is not assumed). Found without a Python loop over the runs."""
    parameters = default.get("parameters")
    if type(parameters) is not dict or not parameters or not settings or type(settings[0]) is not dict:
        return parameters
    first = settings[0].get("parameters")
    everywhere = set(parameters).intersection(first) if type(first) is dict else None
    if not everywhere:  # the first run inherits them all (the usual cohort: the default holds what all share)
        return parameters
    try:
        own: list[Any] = list(map(dict.get, settings, repeat("parameters")))
    except TypeError:  # a run setting that is not an object (check_settings names it): keep them all
        return parameters
    if set(map(type, own)) != {dict}:
        return parameters
    everywhere.intersection_update(*set(map(tuple, own)))  # the distinct sets of names: few in a cohort
    if not everywhere:
        return parameters
    return {name: value for name, value in parameters.items() if name not in everywhere}


def settings_input_uris(default: dict, settings: list[dict]) -> list[str]:
    """resolve.input_uris over the default's parameters some run inherits
    (inherited_parameters), then each run's own, once each in order of appearance; a run's
    flat parameters (text values: the usual cohort) are read without the general walk."""
    from runlog.resolve import input_uris

    schemes = ("s3://", "omics://")
    inherited = input_uris(inherited_parameters(default, settings))
    flat = _flat_input_uris(settings)
    if flat is not None:  # one pass over 100 000 URIs (an update of a dict of them would be two)
        return list(dict.fromkeys(chain(inherited, flat)))
    uris: dict[str, None] = dict.fromkeys(inherited)
    for setting in settings:
        own = setting.get("parameters")
        if not own:
            continue
        if isinstance(own, dict):
            for value in own.values():
                if value.__class__ is str:
                    if value.startswith(schemes):
                        uris[value] = None
                elif isinstance(value, (dict, list)):
                    for found in input_uris(value):
                        uris[found] = None
        else:
            for found in input_uris(own):
                uris[found] = None
    return list(uris)


def bulk_s3_identities(s3, uris: list[str], *, deadline: float, head_below: int = 3) -> dict[str, dict]:
    """{uri: identity} for s3:// object URIs, by listing the prefixes they share
    (runlog.bulklist: ListObjectsV2 over key ranges, 1 000 ETags a call, several ranges at
    once) instead of one HeadObject each; a directory with fewer than `head_below` wanted keys
    gets HeadObjects. What is not found is NotFound; what the time budget (`deadline`,
    time.monotonic()) leaves is Timeout; a listing that fails leaves the keys it had not seen
    with its error."""
    from runlog import bulklist

    return bulklist.bulk_s3_identities(s3, uris, deadline=deadline, head_below=head_below)


def input_identities(uris: list[str], clients: dict, *, deadline: float) -> dict[str, dict]:
    """{uri: identity} in the order of `uris`, as a cohort's inputs are resolved (at
    submission and again when it is replayed): s3:// objects in bulk (bulk_s3_identities),
    omics:// read sets and references one call each; what the time budget (`deadline`,
    time.monotonic()) leaves is Timeout."""
    s3_uris = list(filter(methodcaller("startswith", "s3://"), uris))
    inputs = bulk_s3_identities(clients["s3"], s3_uris, deadline=deadline) if s3_uris else {}
    if len(s3_uris) < len(uris):  # omics:// inputs too
        from runlog.resolve import omics_identity

        for found_uri in uris:
            if found_uri.startswith("omics://"):
                inputs[found_uri] = omics_identity(clients["omics"], found_uri) if time.monotonic() < deadline \
                    else {"kind": "omics", "error": {"code": "Timeout", "message": "not resolved within the time "
                                                                                   "budget"}}
        inputs = {u: inputs[u] for u in uris if u in inputs}
    return inputs


def _refuse_changed_since_checked(uri: str, found: dict, expected: dict | None) -> None:
    """DriftError when a replay's settings file (`expected`: as prepare read it, with the
    SHA-256 of its bytes) is read now with other bytes: the cohort sent would not be the one
    whose drift was checked and recorded."""
    from runlog.errors import DriftError

    if expected is None or expected.get("uri") != uri or not expected.get("sha256"):
        return
    if found.get("sha256") == expected["sha256"]:
        return
    now = found.get("sha256")
    what = (f"changed after the replay checked it (SHA-256 {expected['sha256'][:12]} then, {now[:12]} now)" if now
            else f"could not be read again after the replay checked it ({(found.get('error') or {}).get('code')})")
    raise DriftError(f"settings file {uri} {what}: nothing was sent; run the replay again to check the file as it is",
                     [_settings_file_drift(uri, expected["sha256"], found.get("sha256"))])


def resolve_batch(request: dict, clients: dict, options: Options, written: dict | None = None,
                  expected: dict | None = None, apart: InputsApart | None = None) -> tuple[dict, dict, list[str]]:
    """(resolution, batch section, warnings) for a StartRunBatch request. The settings file is
    read even with --no-resolve: it is the cohort, and the record keeps it. `written`: the file
    as runlog has just written it (a replay's selection: its PutObject's ETag and VersionId,
    its bytes' size and SHA-256, its content), pinned when it cannot be read back: runlog
    knows what it holds (S3 took it with IfNoneMatch: no other object was there). `expected`:
    the file as a replay read and checked it (batchreplay.prepare): read with other bytes now
    (rewritten in between), DriftError, before anything is written or sent. `apart`: the
    inputs may be resolved by a forked child (runlog/inputsfork.py); when it started one, the
    resolution has no `inputs` and the caller takes the child's answer (_settle_inputs)."""
    from runlog import fastjson
    from runlog.resolve import workflow_identity

    started = time.monotonic()
    warnings: list[str] = []
    section: dict[str, Any] = {}
    settings = request["batchRunSettings"].get("inlineSettings")
    uri = request["batchRunSettings"].get("s3UriSettings")
    default = request["defaultRunSetting"]
    pending_workflow = None
    if options.enabled and uri is not None:  # GetWorkflow asked while the settings file is read
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="runlog-workflow")
        pending_workflow = pool.submit(workflow_identity, clients["omics"], default)
        pool.shutdown(wait=False)  # the thread ends with its one call (workflow_identity never raises)
        if apart is not None:  # no thread may be running when the inputs' child is forked
            apart.waits.append(partial(pool.shutdown, wait=True))
    on_body = None  # a forked child parses the bytes too, and resolves the inputs (runlog/inputsfork.py)
    if apart is not None and options.enabled and not options.strict:
        on_body = partial(apart.start, default=default, s3=clients["s3"],
                          deadline=started + options.timeout)
    if uri is not None:
        section["settings_file"] = found = read_settings_file(clients["s3"], uri, on_body)
        _refuse_changed_since_checked(uri, found, expected)
        if "error" in found and written is not None and written.get("uri") == uri and "content" in written:
            warnings.append(f"settings file {uri} not read back ({found['error']['code']}: "
                            f"{found['error']['message']}); pinned as runlog wrote it (PutObject's ETag)")
            section["settings_file"] = found = dict(written)
        if "error" in found:
            message = f"settings file {uri} not read ({found['error']['code']}: {found['error']['message']})"
            if options.strict:
                raise Unresolved(message, [uri])
            warnings.append(message + "; the cohort is not in the record and its runs are not checked")
        settings = found.get("content")
    settings = settings or []
    section["runs"] = len(settings)
    section["run_setting_ids_sha256"] = rec.sha256_hex(fastjson.dumps(list(map(itemgetter("runSettingId"), settings))))
    if not options.enabled:
        return {}, section, warnings
    workflow = pending_workflow.result() if pending_workflow is not None else workflow_identity(clients["omics"],
                                                                                                 default)
    template_checked = False
    if "error" in workflow:
        warnings.append(f"workflow not resolved: {workflow['error']['code']}: {workflow['error']['message']}")
    elif options.check and settings:
        check_templates(workflow, default, settings)
        template_checked = "parameter_template" in workflow
    workflow.pop("parameter_template", None)
    resolution: dict[str, Any] = {"workflow": workflow, "template_checked": template_checked}
    if apart is not None and apart.started:  # the caller takes the child's answer (_settle_inputs)
        apart.warning_at, apart.settings = len(warnings), settings
    else:
        uris = settings_input_uris(default, settings)
        resolution["inputs"] = inputs = input_identities(uris, clients, deadline=started + options.timeout)
        failed = unresolved(inputs)
        if failed:
            message = unresolved_warning(inputs, failed)
            if options.strict:
                raise Unresolved(message, failed)
            warnings.append(message + UNRESOLVED_ENDING)
    return resolution, section, warnings


# -- submitting ------------------------------------------------------------------------------

def _collector_paused():
    """Python's cyclic garbage collector paused (lifetime.collector_paused). A cohort's
    submission makes hundreds of thousands of dicts and lists (the settings file's runs, the
    inputs' identities), none of them in a cycle, and the collector would walk them over and
    over as they are made: about half the time of reading a 100 000-run settings file."""
    from runlog.lifetime import collector_paused

    return collector_paused()


def submit_batch(open_ledger: Callable[[], Ledger], request: dict[str, Any], *, settings,
                 git_path: str | Path = ".", capture_git: bool = True, lookup_caller: bool = True,
                 resolve_options: Options | None = None, allow_duplicate: bool = False,
                 warn: Callable[[str], None] = lambda message: None, dry_run: bool = False,
                 client_options: dict[str, Any] | None = None, kind: str = "batch",
                 extra: dict[str, Any] | None = None, session=None, omics=None, written: dict | None = None,
                 expected: dict | None = None):
    """Record and send one StartRunBatch request (the library entry point; the CLI's
    `submit-batch` and runlog.api call it). `request` is checked again here. Returns a
    submit.Submission (the batch record's entry and the response: id, arn, status, uuid), or a submit.DryRun with dry_run. Raises as submit.submit does: UsageError
    (bad input, nothing sent or written), RunlogError exit 1 (refused, recorded), PendingError
    (outcome unknown, the attempt stays pending for `runlog recover`). `written`: the settings
    file runlog has just written for this request (write_settings_file's pin with its
    `content`), pinned as written when it cannot be read back (resolve_batch). `expected`: the
    settings file as a replay checked it (its pin); other bytes now raise DriftError, nothing
    sent or written."""
    with _collector_paused():
        return _submit_batch(open_ledger, request, settings=settings, git_path=git_path, capture_git=capture_git,
                             lookup_caller=lookup_caller, resolve_options=resolve_options,
                             allow_duplicate=allow_duplicate, warn=warn, dry_run=dry_run,
                             client_options=client_options, kind=kind, extra=extra, session=session, omics=omics,
                             written=written, expected=expected)


def _submit_batch(open_ledger: Callable[[], Ledger], request: dict[str, Any], *, settings,
                  git_path: str | Path, capture_git: bool, lookup_caller: bool, resolve_options: Options | None,
                  allow_duplicate: bool, warn: Callable[[str], None], dry_run: bool,
                  client_options: dict[str, Any] | None, kind: str, extra: dict[str, Any] | None,
                  session=None, omics=None, written: dict | None = None, expected: dict | None = None):
    from concurrent.futures import ThreadPoolExecutor

    from runlog import aws, background, gitcapture, lifetime
    from runlog.aws import AwsSettings
    from runlog.startrun import StartRunRequest
    from runlog.submit import _dry_run, check_intent, make_intent, send_attempt, settle_context

    check_request(request)
    pending_git = background.start(gitcapture.capture_with_notes, str(git_path)) if capture_git else None
    sess = session or aws.session(settings)  # a library caller's session and client, when given
    omics = omics or aws.client(settings, "omics", sess=sess, **(client_options or {}))
    check_against_model(request, omics.meta.service_model)
    settings = AwsSettings(settings.profile, sess.region_name,
                           settings.endpoint_url if settings.pinned
                           else aws.custom_endpoint("omics", settings.endpoint_url, sess), settings.pinned)
    options = resolve_options or Options()
    clients = {"omics": omics}
    s3_options: dict[str, Any] = {"connect_timeout": options.timeout, "read_timeout": max(options.timeout, 30),
                  "retries": {"total_max_attempts": 2, "mode": "standard"}}
    if request["batchRunSettings"].get("s3UriSettings") or options.enabled:
        clients["s3"] = aws.client(settings, "s3", sess=sess, **s3_options)

    warnings: list[str] = []
    pool = ThreadPoolExecutor(max_workers=1)
    caller_future = pool.submit(aws.caller_identity, settings, sess) if lookup_caller else None
    pool.shutdown(wait=False)  # its thread ends with the lookup; InputsApart waits for it before a fork
    apart = None
    if not dry_run:  # (a new S3 client, for the inputs resolved here after the forked copy failed)
        apart = InputsApart(partial(aws.client, settings, "s3", sess=sess, **s3_options))
        apart.waits.append(partial(pool.shutdown, wait=True))
    later = False  # the warnings shown once the forked copy's one is in place
    try:
        resolution, section, found = resolve_batch(request, clients, options, written, expected, apart)
        warnings.extend(found)
        captured = pending_git.result() if pending_git else {"git": {"state": "unknown", "reason": "not captured"}}
        caller = caller_future.result() if caller_future else {"unknown": "not asked (caller_identity = false)"}
        # with the inputs still being resolved, the warnings are shown once their own is in place
        later = apart is not None and apart.started
        git = settle_context(captured, caller, caller_future is not None, warnings, (lambda _: None) if later else warn)
        more: dict[str, Any] = {"batch": section, **(extra or {})}
        if resolution:
            more["resolution"] = resolution
        intent = make_intent(StartRunRequest(request=request, parameters=dict(PARAMETERS)), kind=kind,
                             settings=settings, git=git, caller=caller, warnings=warnings, extra=more, check=dry_run)
        ledger = open_ledger()
        if dry_run:  # (checked whole: a dry run shows the intent as readers see the record)
            return _dry_run(ledger, intent, warn, allow_duplicate)
        # the cohort goes into blobs stored with the attempt; the intent and the record hold
        # references to them (runlog/blobs.py), so that the record written after the answer is small
        held, stored, inputs = _held_cohort(intent)
        found_problems = None
        if later and apart is not None:
            inputs, found_problems = _settle_inputs(apart, intent, clients, stored)
    except BaseException as exc:
        if later and apart is not None and apart.started and isinstance(exc, Exception):
            # what one process would have found before the failure is shown: the inputs' warning too
            answer = apart.answer()
            if answer is not None and answer["warning"] is not None:
                warnings.insert(apart.warning_at, answer["warning"])
        if apart is not None and apart.started:
            apart.discard()  # (Ctrl-C, or a failure before the warnings were settled: stopped)
        if later:
            for message in warnings:
                warn(message)
        raise
    if later:
        for message in warnings:
            warn(message)
    # checked as it is stored: the run settings were checked one by one, more strictly than the
    # schema does (check_settings); the inputs' identities, made of what the services answered
    # (a read set's status, an object's size), are checked on their own (about 0.03 s at 200 000)
    check_intent(intent, inputs, found_problems)
    parts, encoded = _encode_intent(intent)
    lifetime.keep(held, resolution)  # the cohort: not freed run by run when the runlog program ends at once
    # the attempt's commit leaves its WAL to be copied while StartRunBatch is answered (send)
    return send_attempt(ledger, intent, omics, partial(send, parts=parts, encoded=encoded, held=held),
                        allow_duplicate=allow_duplicate, encoded=encoded, checkpoint=False, blobs=stored)


def _held_cohort(intent: dict) -> tuple[tuple[list, Any] | None, list[tuple[str, int, bytes]], Any]:
    """Take the intent's cohort out into blobs (blobs.take_out): ((the settings file's
    content, its blob) or None, the blobs as Ledger.add_blobs stores them, the inputs'
    identities taken out or None). Each blob is
    compressed in a thread (zlib works without the GIL) from when it is encoded: the settings
    file's while the inputs are encoded."""
    from concurrent.futures import ThreadPoolExecutor

    from runlog import blobs

    with ThreadPoolExecutor(max_workers=len(blobs.PLACES), thread_name_prefix="runlog-pack") as pool:
        packed: list[tuple[blobs.Blob, Future]] = []  # each compressed while the next is encoded
        found = blobs.take_out(intent, made=lambda blob: packed.append((blob, pool.submit(blob.packed))))
        stored = [(blob.sha256, len(blob.data), future.result()) for blob, future in packed]
    content, inputs = found.get(blobs.CONTENT), found.get(blobs.INPUTS)
    return ((content if content is not None and isinstance(content[0], list) else None), stored,
            inputs[0] if inputs is not None else None)


def _settle_inputs(apart: InputsApart, intent: dict, clients: dict,
                   stored: list[tuple[str, int, bytes]]) -> tuple[Any, list[str] | None]:
    """The inputs a forked child resolved (InputsApart), put in the intent as _held_cohort
    puts its own: their reference in their place, their blob added to `stored`, the warning
    naming those not resolved where resolve_batch puts it. A child that failed: the inputs
    resolved here instead, as resolve_batch does. Returns (the inputs, for check_intent, or
    None, and what the child's check of them found, or None)."""
    from runlog import blobs

    at = apart.warning_at
    answer = apart.answer()
    resolution = intent["resolution"]
    if answer is None:
        resolution["inputs"] = inputs = apart.resolve_here(clients)
        warning = recorded_warning(inputs)
        if warning is not None:
            intent["warnings"].insert(at, warning)
        blob = blobs.take_out(intent)[blobs.INPUTS][1]
        stored.append((blob.sha256, len(blob.data), blob.packed()))
        return inputs, None
    if answer["warning"] is not None:
        intent["warnings"].insert(at, answer["warning"])
    ref = answer["ref"]
    resolution[blobs.INPUTS_REF] = ref
    stored.append((ref["sha256"], ref["bytes"], answer["packed"]))
    return None, answer["problems"]


def _encode_intent(intent: dict) -> tuple[tuple[list, list], bytes]:
    """(parts, encoded): the intent's canonical JSON in its two parts around `outcome`
    (fastjson.members), and joined (fastjson.joined), from which the record's is made after
    the answer (_record_bytes). Its cohort is held by reference (_held_cohort) or inline (at
    most 100 run settings): kilobytes, compressed by Ledger.add_attempt as a batch's intent is
    kept."""
    from runlog import fastjson

    parts = fastjson.members(intent, "outcome")
    return parts, fastjson.joined(*parts)


def send(ledger: Ledger, intent: dict, omics, *, recovered: bool = False, parts: tuple[list, list] | None = None,
         encoded: bytes | None = None, held: tuple[list, Any] | None = None):
    """Call StartRunBatch with the intent's request and append the batch record. Only a
    modelled 4xx refusal makes a rejected record; anything else leaves the attempt pending.
    `parts`: the intent's canonical JSON as fastjson.members(intent, "outcome") gives it, and
    `encoded` joined (fastjson.joined): then what the record needs beside its outcome is made
    while the service answers (`_meanwhile`). `held`: the settings file's content the intent
    holds by reference and its blob (_held_cohort), whose digests are computed meanwhile too."""
    from runlog.submit import Submission, settle_failure
    from runlog.submit import _complete as complete

    request = intent["request"]
    ahead = _meanwhile(ledger, intent, parts, encoded, held)
    _complete = partial(_completed, complete, ahead)
    try:
        response = omics.start_run_batch(**request)
    except (KeyboardInterrupt, Exception) as exc:
        settle_failure(exc, intent, omics.meta.service_model.operation_model(OPERATION), "batch",
                       recovered=recovered, record=lambda outcome: _complete(
                           ledger, intent, outcome, run_id=None, encoded=_record_bytes(parts, outcome)))
    metadata = response.pop("ResponseMetadata", None)
    outcome = {"status": "submitted", "response": rec.jsonable(response)}
    if recovered:
        outcome["recovered"] = True
    entry = _complete(ledger, intent, outcome, run_id=None, encoded=_record_bytes(parts, outcome))
    return Submission(entry=entry, response=response, warnings=list(intent["warnings"]), metadata=metadata)


def _meanwhile(ledger: Ledger, intent: dict, parts: tuple[list, list] | None,
               encoded: bytes | None, held: tuple[list, Any] | None = None) -> Future | None:
    """What can be done while StartRunBatch is answered (the service reads and checks the
    settings file: about a second at 100 000 runs), in threads while this one waits on the
    socket: the attempt's WAL copied into the ledger's file (Ledger.checkpoint: SQLite works
    without the GIL), and the batch record's per-run digests computed from the intent
    (cohortindex.prepare; the ledger takes them only where the record's bytes are the
    intent's). The Future gives the cohortindex.Prepared, once both are done."""
    from concurrent.futures import ThreadPoolExecutor

    if parts is None or encoded is None:
        return None
    # the ledger may have its settings file's rows already (the same file sent before): nothing to compute
    known = held is not None and ledger.has_blob_settings(held[1].sha256)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="runlog-batch")
    ahead = pool.submit(_prepare, ledger, intent, encoded, parts[0], held, known)
    pool.shutdown(wait=False)  # the thread ends with its work
    return ahead


def _prepare(ledger: Ledger, intent: dict, encoded: bytes, before: list, held: tuple[list, Any] | None = None,
             known: bool = False):
    """cohortindex.prepare (of the blob `held`, when the intent holds its settings by
    reference), while another thread copies the WAL (Ledger.checkpoint); the blob's rows are
    then written to the ledger from a connection of their own (Ledger.index_blob_apart).
    `known`: the ledger has the blob's rows (None then)."""
    import threading

    from runlog import cohortindex

    copier = threading.Thread(target=ledger.checkpoint, name="runlog-checkpoint")
    copier.start()
    try:
        if known:
            return None
        if held is None:
            return cohortindex.prepare(intent, encoded, before)
        prepared = cohortindex.Prepared.of_blob(held[0], held[1].data, held[1].sha256)
    finally:
        copier.join()
    # keyed by the blob (migration m013): written now, the record's transaction has only the record to write
    ledger.index_blob_apart(held[1].sha256, prepared.rows)
    return prepared


def _completed(complete: Callable[..., Entry], ahead: Future | None, ledger: Ledger, intent: dict, outcome: dict,
               run_id: str | None, encoded: bytes | None = None) -> Entry:
    """submit._complete, with the digests computed meanwhile (when that worked). The record's
    commit copies its WAL into the ledger's file as any commit does: a copy left to a thread
    that outlives this call could lose SQLite's locks when the same process opens the file
    again (POSIX locks belong to the process, and closing any descriptor of the file drops
    them), so it is not done."""
    prepared = None
    if ahead is not None:
        try:
            prepared = ahead.result()
        except Exception:  # the ledger computes them from the record instead
            prepared = None
    return complete(ledger, intent, outcome, run_id, encoded=encoded, prepared=prepared)


def _record_bytes(parts: tuple[list, list] | None, outcome: dict) -> bytes | None:
    """The record's canonical JSON: the intent's parts with the outcome between them."""
    from runlog import fastjson

    if parts is None:
        return None
    return fastjson.joined(parts[0], fastjson.member("outcome", outcome), parts[1])


# -- members and observations ------------------------------------------------------------------

def member_record(batch: dict, batch_address: str, item: dict) -> dict[str, Any]:
    """The member record of one ListRunsInBatch item: a pure function of the batch record and
    the item, so the same run is the same record (same address) in every ledger."""
    settings = {s["runSettingId"]: s for s in run_settings(batch)}
    return _member(batch, batch_address, item, settings.get(item.get("runSettingId") or ""))


def _member(batch: dict, batch_address: str, item: dict, own: dict | None,
            floatless: bool = False) -> dict[str, Any]:
    """member_record's work. `floatless`: the caller has proven that no float is in `batch`,
    `own` or `item` (MemberPages), so that no float is in the member either and its canonical
    JSON needs none of the checks floats need (fastjson.dumps_floatless)."""
    from runlog import fastjson

    response = batch["outcome"]["response"]
    default = batch["request"]["defaultRunSetting"]
    setting_id = item.get("runSettingId") or ""
    warnings = [] if own is not None else [unknown_warning(setting_id)]
    request = effective_setting(default, own or {})
    if item.get("runId"):
        outcome: dict[str, Any] = {"status": "submitted", "response": {
            "id": item["runId"], "uuid": item.get("runInternalUuid") or "", "arn": item.get("runArn") or ""}}
    else:
        outcome = {"status": "rejected", "error": {"code": item.get("submissionFailureReason") or "SubmissionFailed",
                                                   "message": item.get("submissionFailureMessage") or "",
                                                   "http_status": None}}
    member = {
        "format": rec.FORMAT, "kind": "member", "created": batch["created"], "runlog_version": batch["runlog_version"],
        "request": request, "parameters": dict(PARAMETERS), "git": batch["git"], "caller": batch["caller"],
        "aws": batch["aws"], "warnings": warnings, "outcome": outcome,
        "batch": {"record": batch_address, "batch_id": response["id"], "batch_arn": response.get("arn"),
                  "batch_uuid": response.get("uuid"), "run_setting_id": setting_id},
    }
    dumps = fastjson.dumps_floatless if floatless else fastjson.dumps
    member["fingerprint"] = rec.sha256_hex(dumps(rec.fingerprint_material(member)))  # rec.fingerprint
    return member


def listing_item(member: dict) -> dict[str, Any]:
    """The ListRunsInBatch item a member record was made from (_member's inverse): its run
    setting id, and the run's id, uuid and ARN, or the submission's failure."""
    item: dict[str, Any] = {"runSettingId": (member.get("batch") or {}).get("run_setting_id") or ""}
    outcome = member.get("outcome") or {}
    if outcome.get("status") == "submitted":
        response = outcome.get("response") or {}
        item.update(runId=response.get("id"), runInternalUuid=response.get("uuid"), runArn=response.get("arn"))
    else:
        error = outcome.get("error") or {}
        item.update(submissionFailureReason=error.get("code"), submissionFailureMessage=error.get("message"))
    return item


def unmade_members(batch: dict, batch_address: str, members: Iterable[tuple[str, bytes]]) -> dict[str, str]:
    """{address: why} for each (address, canonical JSON) of a member record of the batch
    record `batch` (at `batch_address`) that is not what member_record makes of its run: a
    member is a pure function of its batch record and its ListRunsInBatch item, so one that
    differs (another input, another default, settings for a run setting the batch does not
    have) was not made by runlog from this batch record. The item is the service's word: a
    member for a run setting id the batch does not have, with the default alone and the
    unknown-settings warning, is what runlog makes of such an item, and passes. Checked where
    members arrive from elsewhere (pull) and by verify (see member_check)."""
    check = member_check(batch, batch_address)
    return {address: why for address, data in members if (why := check(address, data)) is not None}


def member_check(batch: dict, batch_address: str) -> Callable[[str, bytes], str | None]:
    """unmade_members' check of one member at a time: a function of a member record's
    (address, canonical JSON) giving why it is not what the batch record `batch` (at
    `batch_address`) makes of its run, or None when it is. What is the same for every member
    (whether the batch record holds a float, its run settings by id) is worked out once, here,
    so that a pull checks its members page by page as it inserts them. Members are encoded as
    MemberPages encodes them: without the float checks when neither the batch record nor the
    item holds a float (fastjson.dumps_floatless, the same bytes)."""
    from runlog import fastjson

    floatless = not fastjson.has_float(batch)
    try:
        settings = {s["runSettingId"]: s for s in run_settings(batch)}
    except (TypeError, KeyError, AttributeError):  # a runSettingId that is no text: no member is made of it
        return lambda address, _: (f"member record {address} names batch record {batch_address}, whose run settings "
                                   "make no member (a runSettingId that is not text): a member is made from its batch "
                                   "record, never written by hand")

    try:  # what _member reads of the batch record: the rest (its inputs' identities, half of it) is let go
        batch = {"outcome": {"response": batch["outcome"]["response"]},
                 "request": {"defaultRunSetting": batch["request"]["defaultRunSetting"]},
                 **{key: batch[key] for key in ("created", "runlog_version", "git", "caller", "aws")}}
    except (KeyError, TypeError):  # a batch record of another shape: each member says so, below
        pass

    def check(address: str, data: bytes) -> str | None:
        try:
            item = listing_item(fastjson.loads_inexact(data))  # (its text alone: the bytes are compared below)
            exact = floatless and fastjson.plain_flat(item)
            made = _member(batch, batch_address, item, settings.get(item["runSettingId"]), exact)
            expected = fastjson.dumps_floatless(made) if exact else fastjson.dumps(made)
        except (ValueError, TypeError, AttributeError, KeyError):  # no JSON object of a member's shape
            return (f"member record {address} is no member record its batch record {batch_address} could make "
                    "(not JSON, or JSON of another shape): a member is made from its batch record, never written "
                    "by hand")
        if expected != bytes(data) and not _made_before_engine_counted(made, data, exact):
            return (f"member record {address} is not what its batch record {batch_address} makes of run setting "
                    f"{str(item['runSettingId'])[:80]!r} (its settings or its batch differ): a member is made from "
                    "its batch record, never written by hand")
        return None

    return check


def _made_before_engine_counted(made: dict, data: bytes, floatless: bool) -> bool:
    """Whether `data` is the member `made` as runlog 0.1.0 made it: with the fingerprint of
    rec.legacy_fingerprint_material (engineSettings not counted), all else the same."""
    from runlog import fastjson

    legacy = rec.legacy_fingerprint_material(made)
    if legacy is None:
        return False
    dumps = fastjson.dumps_floatless if floatless else fastjson.dumps
    return dumps({**made, "fingerprint": rec.sha256_hex(dumps(legacy))}) == bytes(data)


def members_of(ledger: Ledger, batch: Entry, limit: int | None = None) -> list[Entry]:
    """The batch's member records (newest first), each with its latest status."""
    if not batch.batch_id:
        return []
    return ledger.members(batch.batch_id, batch.address, limit)


def prefetched(pages: Iterable[Any], ahead: int = 2) -> Iterator[Any]:
    """The items of `pages` (a paginator's pages), fetched by a thread of their own at most
    `ahead` pages before they are used, so that the service answers the next page while this
    one is written to the ledger. Memory: ahead + 1 pages. An error fetching a page is raised
    here, where that page would have been; leaving the loop early stops the thread."""
    import queue
    import threading

    handoff: queue.Queue = queue.Queue(maxsize=ahead)
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def fetch() -> None:
        try:
            for page in pages:
                if not put((page, None)):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put((None, exc))
            return
        put((done, None))

    worker = threading.Thread(target=fetch, name="runlog-pages", daemon=True)
    worker.start()
    try:
        while True:
            page, error = handoff.get()
            if error is not None:
                raise error
            if page is done:
                return
            yield page
    finally:
        stop.set()


def record_members(ledger: Ledger, batch: Entry, omics, outline: dict | None = None,
                   child: WriterProcess | None = None, most: int | None = None) -> dict[str, Any]:
    """Page ListRunsInBatch and write each run setting's member record once, whole pages a
    transaction, written by a thread while the next pages are made (refreshpipe.PageWriter).
    `outline`: the batch record without its settings file's content (Ledger.batch_outline);
    the settings of a page's runs are read from the ledger page by page
    (Ledger.file_run_settings), so memory holds a few pages of members and one of settings,
    whatever the size of the batch. `child`: a writer process (runlog/writerproc.py) that
    builds, checks and writes the members of the pages handed to it, while this process only
    pages. `most`: the most pages the listing may take (most_pages; aws.pages). An item with
    neither a run nor the status FAILED has no outcome yet: it is not recorded (a member is for
    good). Returns {"listed", "added", "repeated": {runSettingId: [its run ids]} of each run
    setting the listing gave more than once with another run (check_repeated), "shared"
    (_shared_runs), "unsettled": how many items were not recorded so, "not_text": how many items were
    not recorded because a member the record would hold is not text (outside the model),
    "unknown_settings": how many items named a run setting the batch record does not hold
    (MemberPages.unknown)}."""
    from runlog import aws
    from runlog.refreshpipe import page_writer

    record = outline if outline is not None else ledger.batch_outline(batch.address)
    if record["outcome"]["status"] != "submitted":
        raise UsageError(f"batch record {batch.address[:12]} was {record['outcome']['status']}: it has no runs")
    from contextlib import ExitStack

    listed = unsettled = not_text = 0
    first_run: dict[Any, Any] = {}  # runSettingId -> the run the listing first gave it
    repeated: dict[Any, list] = {}
    try:
        with ExitStack() as stack:
            if child is None:  # each page built and checked here while the one before is written (refreshpipe)
                maker = MemberPages(record, batch.address)
                from_file = stack.enter_context(ledger.file_run_settings(batch.address))
                writer = stack.enter_context(page_writer(ledger))
            for page in prefetched(aws.pages(omics.get_paginator("list_runs_in_batch").paginate(
                    batchId=batch.batch_id, PaginationConfig={"PageSize": 100}), "ListRunsInBatch", most)):
                runs = page.get("runs", [])
                listed += len(runs)
                # an item whose identifiers are not text (outside the model: a faulty or hostile answer)
                # makes no member record (one would break the schema, and the page with it): counted, said
                items = [item for item in runs if _text_members(item)]
                not_text += len(runs) - len(items)
                for item in items:  # each run setting once, one run each: else said (check_repeated)
                    key, run = item.get("runSettingId"), item.get("runId")
                    if first_run.setdefault(key, run) != run and run not in repeated.get(key, ()):
                        repeated.setdefault(key, [first_run[key]]).append(run)
                # a submission with neither a run nor a failure (a status outside the model's, or none)
                # has no outcome yet: no member record, which would say `rejected` for good
                settled = [item for item in items if item.get("runId") or item.get("submissionStatus") == "FAILED"]
                unsettled += len(items) - len(settled)
                if not settled:
                    continue
                if child is None:
                    writer.records(maker.encode(settled, from_file), batch.address)  # each names this batch
                else:
                    child.members(settled)
    except RunlogError:
        raise
    except Exception as exc:
        raise aws.error_from(exc, "ListRunsInBatch") from None
    added = writer.added if child is None else child.flush()
    return {"listed": listed, "added": added, "repeated": repeated, "shared": _shared_runs(first_run, repeated),
            "unsettled": unsettled, "not_text": not_text,
            "unknown_settings": maker.unknown if child is None else child.unknown_settings}


# The members of a ListRunsInBatch item a member record holds (batch._member), each text or absent
# in the service's model
_ITEM_TEXT = ("runSettingId", "runId", "runInternalUuid", "runArn", "submissionStatus", "submissionFailureReason",
              "submissionFailureMessage")


def _text_members(item: Any) -> bool:
    """Whether a ListRunsInBatch item is an object whose members a member record holds are text
    or absent (None), as the service's model has them."""
    return isinstance(item, dict) and all(type(item.get(name, "")) in (str, type(None)) for name in _ITEM_TEXT)


def _shared_runs(first_run: dict[Any, Any], repeated: dict[Any, list]) -> dict[Any, list]:
    """{run id: [its run setting ids]} of each run a listing gave to more than one run setting
    (record_members' `first_run` and `repeated`)."""
    settings_of: dict[Any, list] = {}
    for setting, run in first_run.items():
        if run is not None:
            settings_of.setdefault(run, []).append(setting)
    for setting, runs in repeated.items():
        for run in runs[1:]:  # the first is first_run's
            if run is not None:
                settings_of.setdefault(run, []).append(setting)
    return {run: settings for run, settings in settings_of.items() if len(settings) > 1}


class MemberPages:
    """The member records of one batch, a page of ListRunsInBatch items at a time, built,
    schema-checked and encoded for Ledger.write_records (record_members).

    The same records, byte for byte, as member_record and Ledger.encode_records make; what
    is saved is the checks for floats (fastjson.dumps: numbers orjson writes in another form,
    NaN written as null), done per member because a member always holds nulls. A member is
    made of the batch's outline (walked once here: fastjson.has_float), its own run setting
    (read with fastjson.MarkedReader, which tells whether it read a float), the item's values
    (fastjson.plain_flat: text, integers, true, false, null) and text runlog writes; when none
    of them holds a float, neither does the member, and fastjson.dumps_floatless writes it
    (tests/test_member_encode.py compares the two on hostile items and settings). Otherwise
    the member goes through fastjson.dumps, as before. Every member is still checked against
    the schema before it is handed over."""

    def __init__(self, record: dict, address: str):
        from runlog import fastjson

        self._record = record
        self._address = address
        self._floatless = not fastjson.has_float(record)  # the default and inline settings included
        self._reader = fastjson.MarkedReader()
        # how many items were built for a run setting the batch record does not hold (its own
        # settings unknown: refresh then asks GetRun for them, runlog.membersettings)
        self.unknown = 0
        inline = (record["request"].get("batchRunSettings") or {}).get("inlineSettings")
        self._inline: dict[str, tuple[dict, bool]] | None = (
            {s["runSettingId"]: (s, True) for s in inline} if inline is not None else None)

    def members(self, items: list[dict], from_file: Callable[[list[str]], dict[str, str]]
                ) -> tuple[list[dict], list[bool]]:
        """The page's member records, and for each whether it is proven to hold no float."""
        from runlog import fastjson

        ids = [item.get("runSettingId") or "" for item in items]
        settings = self._inline if self._inline is not None else self._marked(from_file(ids))
        members, floatless = [], []
        for item, setting_id in zip(items, ids, strict=True):
            own, own_floatless = settings.get(setting_id) or (None, True)
            self.unknown += own is None
            exact = self._floatless and own_floatless and fastjson.plain_flat(item)
            members.append(_member(self._record, self._address, item, own, exact))
            floatless.append(exact)
        return members, floatless

    def _marked(self, texts: dict[str, str]) -> dict[str, tuple[dict, bool]]:
        """_settings, each with whether it holds no float (fastjson.MarkedReader)."""
        marked = {}
        for setting_id, text in texts.items():
            value, had_float = self._reader.read(text)
            marked[setting_id] = (value, not had_float)
        return marked

    def encode(self, items: list[dict], from_file: Callable[[list[str]], dict[str, str]]) -> list[tuple]:
        """Ledger.encode_records of the page's member records."""
        members, floatless = self.members(items, from_file)
        return Ledger.encode_records(members, floatless)


def _settings(texts: dict[str, str]) -> dict[str, dict]:
    """Run settings stored as JSON text, read as the record's were (the json module: orjson
    reads integers beyond 64 bits as floats)."""
    import json

    return {setting_id: json.loads(text) for setting_id, text in texts.items()}


def observe_batch(ledger: Ledger, batch: Entry, omics, outline: dict | None = None) -> dict[str, Any]:
    """GetBatch, appended as an observation of the batch record when its status or summaries
    changed (against the GetBatch observation made last, by when: batchread.newest). A batch
    whose id now names another batch, or that GetBatch no longer knows after runlog last saw it
    in a final status (DeleteBatch takes only a batch that has ended), is observed once as
    status DELETED; nothing is removed from the ledger. Not found while last seen unfinished
    (never observed since its submission, say): it may not be found yet, or may have ended and
    been deleted since runlog looked. That is observed with no status (`_observe_not_found`)
    and the answer returned is {"status": None, "not_found": …}, until GetBatch has not found it
    for NOT_FOUND_SETTLES seconds: then it is taken as deleted, and the reason says since when."""
    from runlog import aws
    from runlog.errors import ServiceError

    response = (outline or batch.record)["outcome"].get("response") or {}

    def asked_at_home() -> None:  # not found where it never was, or by another account: says nothing of it
        aws.refuse_if_asked_elsewhere(omics, response.get("arn"), "GetBatch", f"batch {batch.batch_id}")

    observed = ledger.observations(batch.address)
    try:
        answer = omics.get_batch(batchId=batch.batch_id)
    except Exception as exc:
        error = aws.error_from(exc, "GetBatch")
        if isinstance(error, ServiceError) and error.code == "ResourceNotFoundException":
            asked_at_home()
            # what the service said, not why: a batch GetBatch finds again later gets its status
            # observed again (and it is the batch's status from then on: Ledger._fill_status)
            reason = f"GetBatch: batch {batch.batch_id} not found"
            seen_last = last_batch_status(observed, response)
            if seen_last in FINISHED:  # DeleteBatch, most likely
                return _observe_gone(ledger, batch, observed, reason)
            since = not_found_since(observed)
            if since is not None and _seconds_since(since) >= NOT_FOUND_SETTLES:
                return _observe_gone(ledger, batch, observed, f"{reason} since {since} (last seen {seen_last}): "
                                     "taken as deleted")
            return _observe_not_found(ledger, batch, observed, reason, seen_last)
        raise error from None
    answer.pop("ResponseMetadata", None)
    body = rec.jsonable(answer)
    recorded_uuid = response.get("uuid")
    if recorded_uuid and body.get("uuid") and body["uuid"] != recorded_uuid:
        asked_at_home()
        return _observe_gone(ledger, batch, observed, f"batch id {batch.batch_id} now belongs to batch {body['uuid']}")
    last = newest(observed)
    if last is None or _summary(last["body"]) != _summary(body):
        ledger.observe(batch.address, SOURCE_BATCH, body, run_uuid=None, status=body.get("status"))
    return body


# How long GetBatch must not find a batch runlog last saw unfinished before it is taken as deleted:
# long past any delay between StartRunBatch and GetBatch finding the batch, short enough that a batch
# that ended and was deleted between two refreshes is settled by the next refreshes of the day
NOT_FOUND_SETTLES = 3600.0


def _seconds_since(moment: str) -> float:
    from datetime import UTC, datetime

    try:
        return (datetime.now(UTC) - rec.parse_timestamp(moment)).total_seconds()
    except (TypeError, ValueError):
        return 0.0


def _observe_not_found(ledger: Ledger, batch: Entry, observed: list[dict], reason: str,
                       last: str | None) -> dict[str, Any]:
    """GetBatch's ResourceNotFound for a batch runlog last saw unfinished (`last`): recorded as
    the service answered, with no status (neither DELETED nor a guess at another), once until
    GetBatch answers otherwise. The batch stays unfinished, so the next `refresh` asks again."""
    body = {"status": None, "reason": reason, "last_seen": last}
    seen = newest(observed)
    if seen is None or seen["body"] != body:
        ledger.observe(batch.address, SOURCE_BATCH, body, run_uuid=None, status=None)
    return {**body, "not_found": True}


def _observe_gone(ledger: Ledger, batch: Entry, observed: list[dict], reason: str) -> dict[str, Any]:
    """The batch as GetBatch can no longer describe it: status DELETED, observed once."""
    body = {"status": "DELETED", "reason": reason}
    last = newest(observed)
    if last is None or not isinstance(last["body"], dict) or last["body"].get("status") != "DELETED":
        ledger.observe(batch.address, SOURCE_BATCH, body, run_uuid=None, status="DELETED")
    return body


def observe_deleted_runs(ledger: Ledger, batch: Entry, omics) -> int:
    """After DeleteRunBatch (runlog's or anyone's): page ListRunsInBatch for the submissions
    whose runs were deleted (DELETE_SUCCESS) and append status DELETED to each member not yet
    observed so (ListRuns no longer lists a deleted run). One transaction a page; returns how
    many members changed."""
    from runlog import aws

    changed = 0
    try:
        for page in aws.pages(omics.get_paginator("list_runs_in_batch").paginate(
                batchId=batch.batch_id, submissionStatus="DELETE_SUCCESS", PaginationConfig={"PageSize": 100}),
                "ListRunsInBatch", most_pages(None)):
            ids = [item["runId"] for item in page.get("runs", []) if item.get("runId")]
            if not ids:
                continue
            rows = ledger.member_runs(batch.batch_id, ids)
            seen = [(address, run_uuid, {"status": "DELETED", "id": run_id, "submissionStatus": "DELETE_SUCCESS",
                                         "reason": "deleted with its batch's runs (DeleteRunBatch)"})
                    for address, run_id, run_uuid, status in rows if status != "DELETED"]
            if seen:
                with ledger.write():
                    for address, run_uuid, body in seen:
                        ledger._insert_observation(address, run_uuid, rec.utc_now(), SOURCE_SUBMISSION, "DELETED",
                                                   body)
                changed += len(seen)
    except RunlogError:
        raise
    except Exception as exc:
        raise aws.error_from(exc, "ListRunsInBatch") from None
    return changed


def most_pages(runs: Any) -> int:
    """The most pages a listing of one batch's runs (ListRunsInBatch, ListRuns by batchId)
    may take before runlog stops it as one that never ends (aws.pages): a page per run
    (`runs`: GetBatch's totalRuns; unknown: the 100 000 a batch can have) and 100 more."""
    return (runs if isinstance(runs, int) and not isinstance(runs, bool) and runs > 0 else 100_000) + 100


def _summary(body: Any) -> tuple:
    if not isinstance(body, dict):  # a pulled observation is anyone's JSON
        return (body,)
    return body.get("status"), body.get("submissionSummary"), body.get("runSummary"), body.get("failureReason")


def status_pages(omics, batch: Entry, most: int | None = None
                 ) -> Iterator[tuple[str, int, list[tuple[str, Any, bytes]]]]:
    """ListRuns(batchId), page by page, each as (observed_at, runs listed, [(run id, status,
    the item's canonical JSON), ...]): what observe_members needs of a page, in marshal's
    types (spool.Prefetch keeps the pages in a file until they are used). `most`: the most
    pages the listing may take (most_pages; aws.pages)."""
    from runlog import aws, fastjson

    for page in aws.pages(omics.get_paginator("list_runs").paginate(batchId=batch.batch_id,
                                                                    PaginationConfig={"PageSize": 100}),
                          "ListRuns", most):
        observed_at = rec.utc_now()  # the page's answer: one moment for all its runs
        items = [i for i in page.get("items", []) if i.get("id")]
        # written once, as the canonical JSON the ledger stores (no dict of it made and encoded again):
        # fastjson.dumps_flat, the UTC times written by orjson itself
        yield observed_at, len(items), [(i["id"], i.get("status"), fastjson.dumps_flat(i)) for i in items]


def observe_members(ledger: Ledger, batch: Entry, omics,
                    pages: Iterable[tuple[str, int, list[tuple[str, Any, bytes]]]] | None = None,
                    child: WriterProcess | None = None) -> dict[str, int]:
    """Append a status observation for each member whose status changed, from `pages`
    (status_pages: ListRuns(batchId); by default paged here), whole pages a transaction
    (refreshpipe.PageWriter, or the writer process `child`). Returns {"listed", "changed"}."""
    from contextlib import nullcontext

    from runlog import aws, fastjson
    from runlog.refreshpipe import PageWriter, page_writer

    listed = 0
    written: dict[str, Any] = {}  # run id -> the status this refresh observed it in (for each of its members)
    try:
        with nullcontext(child) if child is not None else page_writer(ledger) as writer:
            for observed_at, count, items in (pages if pages is not None else prefetched(status_pages(omics, batch))):
                listed += count
                if not items:
                    continue
                rows = ledger.member_runs(batch.batch_id, [run_id for run_id, _, _ in items])
                # run id -> its members: one each, or more when ListRunsInBatch gave the run to more than
                # one run setting (check_shared): each member record naming the run gets its status
                known: dict[str, list[tuple[str, str | None, str | None]]] = {}
                for address, run_id, run_uuid, status in rows:
                    known.setdefault(run_id, []).append((address, run_uuid, status))
                seen: list[tuple[str, str | None, str, str, str | None, dict | bytes]] = []
                for run_id, new, body in items:
                    answered = None  # GetRun's answer for a FAILED run: asked once, for all its members
                    # a run listed again on a later page (a listing that shifts or repeats): the status this
                    # refresh wrote for each of its members, which the ledger may not show yet (an open
                    # transaction). Kept by run id, not by member: a few MiB fewer at 100 000 runs
                    again = written.get(run_id)
                    for address, run_uuid, status in known.get(run_id, ()):
                        status = again if again is not None else status
                        # a status that is no text (a faulty or hostile answer) says nothing: not a
                        # change (it would be one at every refresh: the ledger keeps no such status)
                        if not isinstance(new, str) or not new or new == status:
                            continue
                        source, now, text = SOURCE_RUNS, new, body
                        if new == "FAILED":  # ListRuns has no reason: GetRun, for the failed only
                            if answered is None:
                                try:
                                    answer = omics.get_run(id=run_id)
                                except Exception as exc:  # named as GetRun's, not as the listing's
                                    raise aws.error_from(exc, f"GetRun of failed run {run_id}") from None
                                answer.pop("ResponseMetadata", None)
                                answered = (answer.get("status"), fastjson.dumps(answer))
                            source, (now, text) = "GetRun", answered
                        seen.append((address, run_uuid, observed_at, source, now if isinstance(now, str) else None,
                                     text))
                        written[run_id] = new
                writer.observations(ledger.encode_observations(seen))
    except RunlogError:
        raise
    except Exception as exc:
        raise aws.error_from(exc, "ListRuns") from None
    return {"listed": listed, "changed": writer.added if isinstance(writer, PageWriter) else writer.flush()}


def observe_outputs(ledger: Ledger, batch: Entry, omics, jobs: int = 16) -> dict[str, Any]:
    """GetRun for each member whose run ended and whose output location (runOutputUri) no
    observation holds yet (ListRuns' items have none; refresh asks GetRun only for the failed),
    `jobs` calls at a time; each answer appended as a GetRun observation, one transaction per
    round of calls, so a rerun asks only for what is still missing. A run the service no
    longer knows (deleted) is skipped. Returns {"asked", "recorded", "gone"}, and
    "parameters_reported" ({count, first: run ids}) when GetRun reported parameters other than
    a member's record holds (membersettings.reported_parameters)."""
    from concurrent.futures import ThreadPoolExecutor

    from runlog import aws
    from runlog.errors import ServiceError

    def get_run(run_id: str) -> dict | None:
        try:
            answer = omics.get_run(id=run_id)
        except Exception as exc:
            error = aws.error_from(exc, "GetRun")
            if isinstance(error, ServiceError) and error.code == "ResourceNotFoundException":
                return None
            raise error from None
        answer.pop("ResponseMetadata", None)
        return _json_value(answer)

    from runlog.membersettings import reported_parameters

    asked = recorded = gone = 0
    after = 0
    differ: list[str] = []  # run ids whose GetRun reports other parameters than their member record holds
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="runlog-getrun") as pool:
        while True:
            rows = ledger.members_without_output(batch.address, after, jobs * 8)
            if not rows:
                break
            after = rows[-1][0]
            answers = list(pool.map(get_run, [run_id for _, _, run_id, _ in rows]))
            asked += len(rows)
            observed_at = rec.utc_now()
            seen = [(address, run_uuid, observed_at, "GetRun", body.get("status"), body)
                    for (_, address, _, run_uuid), body in zip(rows, answers, strict=True) if body is not None]
            gone += len(rows) - len(seen)
            recorded += ledger.add_observations(seen)
            for address, _, _, _, _, body in seen:
                member = ledger.get(address)
                if member is not None and reported_parameters(member.record, [
                        {"source": "GetRun", "observed_at": observed_at, "body": body}]) is not None:
                    differ.append(str(body.get("id") or member.run_id))
    found: dict[str, Any] = {"asked": asked, "recorded": recorded, "gone": gone}
    if differ:
        found["parameters_reported"] = {"count": len(differ), "first": differ[:5]}
    return found


def _json_value(value: Any) -> Any:
    """record.jsonable(value) for a parsed response (datetimes become ISO 8601 UTC text),
    through orjson; what orjson writes otherwise than the json module reads back the same
    (numbers), and what it refuses or writes as null (NaN, infinities: the json module
    refuses them) goes to record.jsonable."""
    import orjson

    try:
        data = orjson.dumps(value, default=rec._default, option=orjson.OPT_PASSTHROUGH_DATETIME)
    except TypeError:
        return rec.jsonable(value)
    return rec.jsonable(value) if b"null" in data else orjson.loads(data)


def refresh_batches(ledger: Ledger, entries: list[Entry], client_for, *, outputs_jobs: int | None = None,
                    jobs: int = 16, words=lambda message: message, s3_for=None) -> list[dict[str, Any]]:
    """refresh_batch for each batch record, with `client_for(entry)`'s HealthOmics client (bad
    settings stop everything) and `s3_for(entry)`'s S3 client when given (its settings file
    checked). One change per batch: {record, batch_id, status, members_added,
    …} or, when it could not be refreshed, {record, batch_id, error} (`words(message)`: the
    caller's wording). Shared by `runlog refresh` and Runlog.refresh."""
    from runlog.observe import NOT_ASKED

    if entries:  # what HealthOmics answers is recorded, or it is not asked (exit 2)
        ledger.check_writable(NOT_ASKED)
    changes: list[dict[str, Any]] = []
    unreachable: list[str] = []  # S3 could not be reached for a settings file: not asked again this refresh
    for entry in entries:
        if not entry.batch_id:
            changes.append({"record": entry.address, "batch_id": None,
                            "error": f"no batch: this submission was {entry.outcome}"})
            continue
        omics = client_for(entry)
        try:
            changes.append(refresh_batch(ledger, entry, omics, outputs_jobs, jobs=jobs,
                                         s3=_Made(partial(s3_for, entry)) if s3_for is not None and not unreachable
                                         else None, unreachable=unreachable))
        except RunlogError as exc:
            changes.append({"record": entry.address, "batch_id": entry.batch_id, "error": words(exc.message)})
    return changes


class _Made:
    """A client made by `make` when it is first used: a batch with no settings file to check
    (an inline cohort) costs no S3 client (about 20 ms each)."""

    def __init__(self, make: Callable[[], Any]):
        self._make, self._client = make, None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            self._client = self._make()
        return getattr(self._client, name)


def refresh_batch(ledger: Ledger, batch: Entry, omics, outputs_jobs: int | None = None,
                  jobs: int = 16, s3=None, unreachable: list[str] | None = None) -> dict[str, Any]:
    """GetBatch, then the members (ListRunsInBatch) and their statuses (ListRuns); with
    `outputs_jobs`, then GetRun for the ended members' output locations (observe_outputs).
    A batch whose record lacks its runs' own settings (imported), or whose listing gave runs for
    run settings its record does not hold: GetRun, `jobs` at a time, for the members whose
    settings no observation holds yet (runlog.membersettings). With an
    S3 client `s3`: whether its settings file is still the one pinned (check_settings_file);
    `unreachable` (refresh_batches') says why S3 could not be reached for an earlier batch's
    file: this batch's is not asked about, and its change says so (settings_file_unchecked)."""
    from runlog.inflight import hold_batch

    with hold_batch(ledger.path, batch.address):  # another refresh of this batch ends first
        return _refresh_batch(ledger, batch, omics, outputs_jobs, jobs, s3, unreachable)


def _refresh_batch(ledger: Ledger, batch: Entry, omics, outputs_jobs: int | None, jobs: int, s3,
                   unreachable: list[str] | None) -> dict[str, Any]:
    outline = ledger.batch_outline(batch.address)  # never the whole cohort as Python objects
    answer = observe_batch(ledger, batch, omics, outline)
    unreachable = [] if unreachable is None else unreachable
    changed_file = check_settings_file(ledger, batch, outline, s3, _submitted_time(ledger, batch, answer),
                                       unreachable) if s3 is not None else None
    # ListRunsInBatch no longer answers (or, for a batch GetBatch did not find, would not now)
    gone = answer.get("status") == "DELETED" or bool(answer.get("not_found"))
    from runlog.spool import spooled

    # ListRuns is paged (into a file) while ListRunsInBatch's members are recorded: the two
    # pagings' round trips overlap; the statuses are written once every member is
    from runlog.writerproc import writer_for

    # a large batch's members are built, checked and written by a child process, with an
    # interpreter lock of its own, while this one pages (runlog/writerproc.py)
    most = most_pages(answer.get("totalRuns"))
    with ledger.bulk_writes(), writer_for(ledger, batch.address, outline, None if gone else answer.get("totalRuns"),
                                          batch.batch_id) as child, \
            spooled(status_pages(omics, batch, most)) as statuses_spool:
        members: dict[str, Any] = ({"listed": 0, "added": 0} if gone
                                   else record_members(ledger, batch, omics, outline, child, most))
        statuses = observe_members(ledger, batch, omics, statuses_spool.pages(), child)
        if answer.get("status") in RUNS_DELETE:
            statuses["changed"] += observe_deleted_runs(ledger, batch, omics)
        outputs = observe_outputs(ledger, batch, omics, outputs_jobs) if outputs_jobs and not gone else None
        learned = _member_settings(ledger, batch, omics, outline, jobs, members.get("unknown_settings", 0))
    repeated = check_repeated(ledger, batch, members.get("repeated") or {})
    shared = check_shared(ledger, batch, members.get("shared") or {})
    change = {"record": batch.address, "batch_id": batch.batch_id, "status": answer.get("status"),
              "members_listed": members["listed"], "members_added": members["added"],
              "statuses_changed": statuses["changed"]}
    if outputs is not None:
        change["outputs_recorded"] = outputs["recorded"]
        if "parameters_reported" in outputs:
            change["parameters_reported"] = outputs["parameters_reported"]
    if learned is not None:
        change["settings_observed"], change["settings_unknown"] = learned["observed"], learned["unknown"]
    if changed_file is not None:
        change["settings_file_changed"] = changed_file
    elif unreachable and _pinned_settings_file(outline):
        change["settings_file_unchecked"] = unreachable[0]
    if repeated is not None:
        change["repeated_run_settings"] = repeated
    if shared is not None:
        change["shared_runs"] = shared
    if members.get("unsettled"):
        change["submissions_unsettled"] = members["unsettled"]
    if members.get("not_text"):
        change["listed_not_text"] = {"count": members["not_text"]}
    if answer.get("not_found"):
        change["not_found"] = {"last_seen": answer.get("last_seen")}
    return change


def check_repeated(ledger: Ledger, batch: Entry, repeated: dict[Any, list], shown: int = 5) -> dict[str, Any] | None:
    """The run settings ListRunsInBatch listed more than once, each time with another run
    (record_members' `repeated`: a service fault, or a hostile answer). Every run it listed is a
    member record (a run the service reported); this says so instead of leaving counts that read
    as if nothing were odd. Observed on the batch record (source SOURCE_REPEATED, no status) when
    it differs from the last such observation, and returned: {count, first: the first `shown`
    as {run_setting_id, run_ids}, "-" for a listing of it with no run (a failed submission)};
    None when there is none. The first are by run setting id, their runs by id: the same
    finding is the same observation whatever order the service lists the runs in."""
    if not repeated:
        return None
    # sorted by the id as shown, each kept: no run setting id (None) and the id "None" both print
    # as None, and must not fold into one (a dict keyed by the text kept only the last one's runs)
    ordered = sorted(repeated.items(), key=lambda listed: (str(listed[0]), listed[0] is None))
    first = [{"run_setting_id": str(setting), "run_ids": sorted(str(run) if run is not None else "-" for run in runs)}
             for setting, runs in ordered[:shown]]
    found = {"count": len(repeated), "first": first}
    seen = [o["body"] for o in ledger.observations(batch.address) if o["source"] == SOURCE_REPEATED]
    if not seen or seen[-1] != found:
        ledger.observe(batch.address, SOURCE_REPEATED, found, run_uuid=None, status=None)
    return found


def check_shared(ledger: Ledger, batch: Entry, shared: dict[Any, list], shown: int = 5) -> dict[str, Any] | None:
    """The runs ListRunsInBatch gave to more than one run setting (record_members' `shared`: a
    service fault, or a hostile answer): each such run setting has a member record naming the
    run, and each gets the run's statuses; this says so, as check_repeated says its finding.
    Observed on the batch record (source SOURCE_SHARED, no status) when it differs from the
    last such observation, and returned: {count, first: the first `shown` as {run_id,
    run_setting_ids}} by run id; None when there is none."""
    if not shared:
        return None
    first = [{"run_id": str(run), "run_setting_ids": sorted(str(setting) for setting in settings)}
             for run, settings in sorted(shared.items(), key=lambda listed: str(listed[0]))[:shown]]
    found = {"count": len(shared), "first": first}
    seen = [o["body"] for o in ledger.observations(batch.address) if o["source"] == SOURCE_SHARED]
    if not seen or seen[-1] != found:
        ledger.observe(batch.address, SOURCE_SHARED, found, run_uuid=None, status=None)
    return found


# The S3 client refresh checks a settings file with (check_settings_file): one HeadObject, bounded
# as submission's look-ups are (resolve.DEFAULT_TIMEOUT), so an S3 that cannot be reached
# costs a refresh seconds, not minutes.
SETTINGS_CHECK_CLIENT: dict[str, Any] = {"connect_timeout": 5, "read_timeout": 5,
                                         "retries": {"total_max_attempts": 2, "mode": "standard"}}


def _submitted_time(ledger: Ledger, batch: Entry, answer: dict[str, Any]) -> str | None:
    """GetBatch's submittedTime (every run submitted: the service has read the settings file by
    then), from this refresh's answer, else the last GetBatch observed (a batch deleted since)."""
    if isinstance(answer.get("submittedTime"), str):
        return answer["submittedTime"]
    for observed in reversed(ledger.observations(batch.address)):
        if observed["source"] == SOURCE_BATCH and isinstance(observed["body"].get("submittedTime"), str):
            return observed["body"]["submittedTime"]
    return None


def _later(first: str | None, second: str | None) -> bool:
    """Whether ISO 8601 time `first` is after `second` (False when either is unknown)."""
    from datetime import datetime

    try:
        return first is not None and second is not None and \
            datetime.fromisoformat(first) > datetime.fromisoformat(second)
    except (TypeError, ValueError):  # a time without an offset next to one with: not comparable
        return False


def _pinned_settings_file(outline: dict) -> dict[str, Any] | None:
    """The settings file submit-batch read and pinned (uri s3://…, etag, …), or None."""
    pinned = (outline.get("batch") or {}).get("settings_file") or {}
    uri = pinned.get("uri")
    return pinned if isinstance(uri, str) and uri.startswith("s3://") and pinned.get("etag") else None


def check_settings_file(ledger: Ledger, batch: Entry, outline: dict, s3, submitted: str | None = None,
                        unreachable: list[str] | None = None) -> dict[str, Any] | None:
    """The batch's s3UriSettings file as S3 has it now (HeadObject), against the identity
    submit-batch pinned (ETag) when it read the file. The service reads the file
    itself, when it starts the batch, after runlog's read: a file changed in between gives runs
    whose settings are not those the batch record holds and its member records state. A file
    no longer the one pinned is observed once per identity it is seen with (an observation of
    the batch record, source SOURCE_SETTINGS_FILE, no status) and returned: {uri, pinned,
    now}, `now` with its LastModified, from which a reader tells whether it changed before
    the batch was submitted. None when it is the one pinned, when the file there now was written
    after `submitted` (GetBatch's submittedTime: every run was submitted, from the file the
    service had read before; a file regenerated for a later cohort), when nothing was pinned (an
    inline cohort, a file not read at submission) or when it cannot be asked about now (gone,
    no access: that says nothing of what the service read). S3 not reached (no connection, no
    answer in time) or failing (a 5xx or a throttle after the retries): why, appended to
    `unreachable`, and None."""
    from runlog import aws
    from runlog.resolve import _iso

    pinned = _pinned_settings_file(outline)
    if pinned is None:
        return None
    uri = pinned["uri"]
    bucket, _, key = uri[5:].partition("/")
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except RunlogError as exc:  # the S3 client could not be made (made when first used: _Made)
        if unreachable is not None:
            unreachable.append(exc.message)
        return None
    except Exception as exc:
        # not reached, or failing (a 5xx or a throttle after the retries): the file's identity is
        # unknown, which is said; gone or forbidden says nothing of what the service read: silence
        if unreachable is not None and (aws.is_transport_error(exc)
                                        or aws.passing_failure(aws.error_from(exc, "HeadObject"), "HeadObject")):
            unreachable.append(aws.describe_failure(exc))
        return None
    now = {"etag": (head.get("ETag") or "").strip('"') or None, "version_id": head.get("VersionId"),
           "last_modified": _iso(head.get("LastModified"))}
    # the ETag alone: a new VersionId with the pinned ETag is the same bytes put again (S3 gives
    # an upload of other bytes another ETag, whatever the encryption), which the runs got as pinned
    if now["etag"] == pinned["etag"] or _later(now["last_modified"], submitted):
        return None
    found = {"uri": uri, "pinned": {"etag": pinned["etag"], "version_id": pinned.get("version_id")}, "now": now}
    seen = [body["now"] for body in settings_changes(ledger.observations(batch.address))]
    if now not in seen:
        ledger.observe(batch.address, SOURCE_SETTINGS_FILE, found, run_uuid=None, status=None)
    return found


def _member_settings(ledger: Ledger, batch: Entry, omics, outline: dict, jobs: int,
                     unlisted: int = 0) -> dict[str, int] | None:
    """runlog.membersettings.observe_settings, for a batch whose record lacks its runs' settings,
    or whose listing gave `unlisted` runs for run settings its record does not hold (a service
    that lists a run setting the batch was not sent: those members' own settings are unknown
    too, and a member says `refresh` asks GetRun for them, runlog.membersettings.NOT_ASKED)."""
    from runlog import membersettings

    if not membersettings.settings_unknown(outline) and not unlisted:
        return None
    return membersettings.observe_settings(ledger, batch, omics, jobs)


def expand_refs(ledger: Ledger, refs: list[str]) -> list[str]:
    """REFs with each batch's REF replaced by its member records' addresses (in the order
    they were recorded): what `runlog export BATCH` exports is the cohort's runs."""
    out: list[str] = []
    for ref in refs:
        entry = ledger.resolve(ref)
        if entry.kind != "batch":
            out.append(ref)
            continue
        members = ledger.member_addresses(entry.batch_id, entry.address)
        failure = None if members else batch_failure(ledger.observations(entry.address))
        if failure:  # refresh cannot help: the service started no run
            raise UsageError(f"{batch_failure_words(entry.batch_id, failure)}: it has no member runs, so there are "
                             "none to export")
        if not members:
            raise UsageError(f"batch {entry.batch_id or entry.address[:12]} has no member runs in the ledger yet: "
                             f"`refresh(['{entry.batch_id or entry.address[:12]}'])` records them")
        out.extend(members)
    return out


# -- replaying --------------------------------------------------------------------------------------

def member_as_run(request: dict[str, Any]) -> dict[str, Any]:
    """A member's effective setting as a StartRun request (`runlog replay MEMBER` starts it as
    a single run): runTags become the run's tags; what StartRun does not take is left out."""
    from runlog.startrun import members as startrun_members

    known = startrun_members()
    out = {k: v for k, v in request.items() if k in known}
    if request.get("runTags"):
        out["tags"] = {**request["runTags"], **(out.get("tags") or {})}
    return out


def failed_settings(ledger: Ledger, batch: Entry) -> list[str]:
    """runSettingIds of the batch's members whose submission failed or whose run ended
    FAILED or CANCELLED (as last recorded; for a run deleted since, as recorded before it was)."""
    facts = summary(ledger, batch, failures=None)
    found = [f["run_setting_id"] for f in facts["failures"]]
    found += ledger.member_settings_with_status(batch.address, ("CANCELLED",))
    # (the runs that FAILED before they were deleted are among the failures: summary lists them)
    found += [row[2] for row in ledger.deleted_members(batch.address, ("CANCELLED",))]
    return list(dict.fromkeys(found))


def replay_request(ledger: Ledger, batch: Entry, *, only: Sequence[str] = (), sets: Sequence[str] = (),
                   batch_name: str | None = None,
                   settings_uri: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(StartRunBatch request, lineage) to start batch `batch` again as a new batch: a new
    requestId, the recorded default setting (--set changes its parameters), and the recorded
    run settings, all of them or `only` those (runSettingIds, or "failed"). The settings file
    of an s3UriSettings batch is named again when all its runs are replayed (its bytes are
    checked against the pinned SHA-256 before sending); a selection goes inline (at most 100),
    or, when larger or `settings_uri` is given, into a new settings file: the request names
    it (`settings_uri`, default `replay_settings_uri`) and `lineage.overrides.settings_uri`
    says runlog writes it (`write_settings_file`, before sending; `selected_settings` gives
    its content)."""
    import copy

    from runlog.replay import apply_set, parse_set

    record = batch.record
    if record["outcome"]["status"] != "submitted" and only:
        raise UsageError(f"batch record {batch.address[:12]} never started: it has no runs to select from")
    if "batchRunSettings" not in record["request"]:  # the cohort is not rebuilt from GetRun's answers (batch.md)
        raise UsageError(f"batch {batch.batch_id} was imported (started without runlog): its run settings were "
                         "never seen, and runlog does not rebuild a cohort from what GetRun reported of each run; "
                         "`replay('RUN_ID')` replays one of its runs from the settings GetRun reported")
    pinned = (record.get("batch") or {}).get("settings_file") or {}
    if only and "error" in pinned:  # its members' settings were observed from GetRun, one by one
        raise UsageError(f"batch {batch.batch_id}'s settings file {pinned.get('uri')} could not be read at "
                         f"submission ({_reason(pinned['error'])}): its runs' settings were not recorded, so "
                         "none can be selected; `replay('RUN_ID')` replays one of its runs from the settings "
                         "GetRun reported", option="only")
    if settings_uri is not None:
        check_settings_uri(settings_uri)
    request = copy.deepcopy(record["request"])
    request.pop("requestId", None)
    request_id = str(uuid.uuid4())
    settings = run_settings(record)
    overrides: dict[str, Any] = {}
    selected: list[str] = []
    if only:
        wanted = [w for w in only if w != "failed"]
        if "failed" in only and any(s.get("runSettingId") == "failed" for s in settings):
            raise UsageError(f"`only` failed: batch {batch.batch_id} has a run setting whose runSettingId is "
                             "'failed', which `only` also takes for its failed runs, so which is meant cannot be "
                             "told; `replay('MEMBER')` (that run setting's member record) starts it alone, and "
                             "the other runSettingIds name the rest", option="only")
        if "failed" in only:
            wanted = failed_settings(ledger, batch) + wanted
            failure = None if wanted else batch_failure(ledger.observations(batch.address))
            if failure:  # refresh cannot help: no run failed, the batch did
                members = ledger.member_addresses(batch.batch_id, batch.address)
                raise UsageError(f"{batch_failure_words(batch.batch_id, failure)}: "
                                 + (f"none of its {len(members)} recorded run(s) failed" if members else
                                    "it has no runs, so none failed")
                                 + f"; `replay('{batch.batch_id}')` starts the whole batch again once the cause "
                                 "is fixed", option="only")
            if not wanted:
                raise UsageError(f"batch {batch.batch_id} has no failed runs recorded (`refresh(['{batch.batch_id}'])` "
                                 "first?)")
        by_id = {s["runSettingId"]: s for s in settings}
        unknown = [w for w in wanted if w not in by_id]
        if unknown:
            raise UsageError(f"`only`: runSettingId {unknown[0][:128]!r} is not in batch {batch.batch_id}'s "
                             f"recorded settings ({len(by_id)} runs; {_which_id(unknown[0], list(by_id))})",
                             option="only")
        selected = list(dict.fromkeys(wanted))
        if len(selected) > MAX_INLINE or settings_uri is not None:
            original = record["request"]["batchRunSettings"].get("s3UriSettings")
            if settings_uri is None and original is None:
                raise UsageError(f"`only` selects {len(selected)} runs, more than {MAX_INLINE}: give `settings_uri` "
                                 "(s3://BUCKET/KEY.json) for the settings file runlog writes for them",
                                 option="settings_uri")
            uri = settings_uri or replay_settings_uri(original, request_id)
            request["batchRunSettings"] = {"s3UriSettings": uri}
            overrides["settings_uri"] = uri
        else:
            request["batchRunSettings"] = {"inlineSettings": [by_id[w] for w in selected]}
        overrides["runs"] = selected
    elif settings_uri is not None:
        raise UsageError("`settings_uri` names the settings file runlog writes for the runs `only` selects; "
                         "without `only` the batch is replayed with its own settings", option="settings_uri")
    elif "inlineSettings" not in request["batchRunSettings"] and "content" not in (
            record["batch"].get("settings_file") or {}):
        raise UsageError(f"batch {batch.batch_id}'s settings file was not read at submission: runlog cannot tell "
                         "whether it still holds the same runs")
    default = request["defaultRunSetting"]
    for text in sets:
        path, parts, value = parse_set(text)
        apply_set(default.setdefault("parameters", {}), path, parts, value)
        overrides.setdefault("parameters", {})[path] = value
    if batch_name is not None:
        request["batchName"] = batch_name
        overrides.setdefault("members", {})["batchName"] = batch_name
    request["tags"] = {**(request.get("tags") or {}), "runlog:replay-of": batch.batch_id or batch.address}
    request["requestId"] = request_id
    response = record["outcome"].get("response") or {}
    lineage = {"replay_of": {"record": batch.address, "run_uuid": response.get("uuid"),
                             "run_id": response.get("id"), "run_arn": response.get("arn")},
               "mode": "request", "overrides": overrides, "drift": []}
    return request, lineage


def _reason(error: Any) -> str:
    """A recorded error ({"code", "message"} or text) as a few words."""
    if isinstance(error, dict):
        return ": ".join(str(error[k]) for k in ("code", "message") if error.get(k))
    return str(error)


def check_settings_uri(uri: str) -> None:
    """`settings_uri`: an s3:// URI of an object (a bucket and a key that is not a prefix)."""
    bucket, _, key = uri[5:].partition("/") if uri.startswith("s3://") else ("", "", "")
    if not bucket or not key or key.endswith("/"):
        raise UsageError(f"`settings_uri` {uri[:200]!r}: expected s3://BUCKET/KEY (the object runlog writes the "
                         "selected run settings to)", option="settings_uri")


def _which_id(wanted: str, ids: list[str]) -> str:
    """How to give the runSettingId `wanted` was meant to be: the batch's id it nearly is (the
    same but for case, or close in spelling: looked for among up to 20 000 ids), else the
    batch's first ids."""
    import difflib

    folded = wanted.casefold()
    near = next((i for i in ids if i.casefold() == folded), None)
    if near is None and len(ids) <= 20_000:
        near = next(iter(difflib.get_close_matches(wanted, ids, n=1, cutoff=0.8)), None)
    if near is not None:
        return f"did you mean {near[:128]!r}?"
    return "its run settings: " + ", ".join(repr(i[:128]) for i in ids[:5]) + (", …" if len(ids) > 5 else "")


def replay_settings_uri(original: str, request_id: str) -> str:
    """Where a replay's settings file goes by default: beside the original, named after it
    and the replay's requestId (`cohort.json` -> `cohort.replay-<requestId>.json`), a new
    name for every replay."""
    stem, dot, suffix = original.rpartition(".")
    if dot and "/" not in suffix and stem.rpartition("/")[2]:
        return f"{stem}.replay-{request_id}.{suffix}"
    return f"{original}.replay-{request_id}.json"


def selected_settings(record: dict, lineage: dict) -> list[dict]:
    """The run settings a replay with --only selected (lineage.overrides.runs), in that order."""
    by_id = {s["runSettingId"]: s for s in run_settings(record)}
    return [by_id[ident] for ident in lineage["overrides"]["runs"]]


def settings_file_bytes(settings: list[dict]) -> bytes:
    """A settings file's bytes: a JSON list of run settings, UTF-8, one setting a line."""
    import json

    return ("[\n" + ",\n".join(json.dumps(s, ensure_ascii=False) for s in settings)
            + "\n]\n").encode("utf-8")


def settings_uri_taken(s3, uri: str) -> UsageError | None:
    """The refusal of `uri` as a new settings file when an object is already there (a
    HeadObject), None when there is none. A HeadObject S3 refuses otherwise raises its error."""
    from runlog import aws
    from runlog.errors import ServiceError

    check_settings_uri(uri)
    bucket, _, key = uri[5:].partition("/")
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        error = aws.error_from(exc, "HeadObject")
        if isinstance(error, ServiceError) and error.code in ("404", "NoSuchKey", "NotFound"):
            return None
        raise error from None
    return _already_there(uri)


def _already_there(uri: str) -> UsageError:
    return UsageError(f"`settings_uri` {uri}: an object is already there and runlog never overwrites one; "
                      "name a new key", option="settings_uri")


def write_settings_file(s3, uri: str, settings: list[dict]) -> dict[str, Any]:
    """Write a new settings file (a replay's selection) to `uri`, never over an existing object:
    a HeadObject first (a clear refusal), then PutObject with IfNoneMatch '*' (S3 refuses if
    the object appeared in between). Returns {"uri", "sha256", "size", "etag", "version_id"}.
    UsageError when the object exists; RunlogError (exit 1) when S3 refuses the write."""
    from runlog import aws
    from runlog.errors import ServiceError

    taken = settings_uri_taken(s3, uri)
    if taken:
        raise taken
    bucket, _, key = uri[5:].partition("/")
    body = settings_file_bytes(settings)
    try:
        answer = s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", IfNoneMatch="*")
    except Exception as exc:
        error = aws.error_from(exc, "PutObject")
        if isinstance(error, ServiceError) and error.code in ("PreconditionFailed", "412",
                                                                "ConditionalRequestConflict"):
            raise _already_there(uri) from None
        raise error from None
    return {k: v for k, v in {"uri": uri, "sha256": hashlib.sha256(body).hexdigest(), "size": len(body),
                              "etag": (answer.get("ETag") or "").strip('"') or None,
                              "version_id": answer.get("VersionId")}.items() if v is not None}


def batch_drift(record: dict, git_now: dict, workflow_now: dict, settings_now: dict | None) -> list[dict]:
    """What no longer is as the batch recorded it: git, the default workflow's digest, the
    settings file's bytes. Each finding as replay's lineage holds it."""
    drift = []
    git = record["git"]
    for what, key in (("commit", "commit"), ("uncommitted changes", "diff_sha256"),
                      ("untracked files", "untracked_sha256")):
        if git.get(key) != git_now.get(key):
            drift.append({"kind": "git", "what": what, "recorded": git.get(key), "current": git_now.get(key)})
    recorded = ((record.get("resolution") or {}).get("workflow") or {}).get("digest")
    if recorded and workflow_now.get("digest") and workflow_now["digest"] != recorded:
        drift.append({"kind": "workflow", "what": "digest", "recorded": recorded, "current": workflow_now["digest"]})
    pinned = (record.get("batch") or {}).get("settings_file") or {}
    if settings_now is not None and pinned.get("sha256") and settings_now.get("sha256") != pinned["sha256"]:
        drift.append(_settings_file_drift(pinned["uri"], pinned["sha256"],
                                          settings_now.get("sha256") or settings_now.get("error")))
    return drift


def _settings_file_drift(uri: str, recorded: str, current: Any) -> dict[str, Any]:
    """A settings file's bytes no longer what was checked, as replay's lineage holds a drift."""
    return {"kind": "input", "what": f"{uri} sha256", "recorded": recorded, "current": current}


# -- cancelling and deleting ------------------------------------------------------------------------

ACTIONS = {"cancel": ("CancelRunBatch", "cancel_run_batch"), "delete-runs": ("DeleteRunBatch", "delete_run_batch")}


def action_told(batch: Entry, action: str, failure: RunlogError) -> dict[str, Any] | None:
    """What act_on_batch recorded of `action` on `batch` before it raised `failure` (its
    `observation`), as `runlog cancel --json` prints it: {"record", "batch_id", "action",
    "outcome": refused, unknown or accepted (the GetBatch after it failed), "status": None,
    "error": the service's words, else the failure's}; None when it recorded nothing (a bad
    REF, a ledger that could not be written)."""
    body = failure.observation
    if body is None:
        return None
    return {"record": batch.address, "batch_id": batch.batch_id, "action": ACTIONS[action][0],
            "outcome": body.get("outcome", "accepted"), "status": None,
            "error": body.get("error") or failure.message}


def _status_after_unknown(ledger: Ledger, batch: Entry, omics) -> str:
    """What GetBatch says of a batch after an action whose outcome is unknown, recorded as
    any GetBatch is (observe_batch), in words for the error; or why it could not be asked."""
    try:
        seen = observe_batch(ledger, batch, omics)
    except Exception as exc:  # the service still failing: the next refresh records the status
        return f"GetBatch could not tell what happened either ({type(exc).__name__}): `refresh()` records it later"
    return f"GetBatch says the batch is {seen.get('status')} now (recorded)"


def act_on_batch(ledger: Ledger, batch: Entry, omics, action: str) -> dict[str, Any]:
    """CancelRunBatch (stop submitting, cancel what runs) or DeleteRunBatch (delete a finished
    batch's runs), recorded as an observation of the batch record: what was asked, when, and
    the service's answer or refusal. Nothing is removed from the ledger. Raises RunlogError
    (exit 1) when the service refuses (the refusal is recorded too)."""
    from runlog import aws

    operation, method = ACTIONS[action]
    if batch.kind != "batch":
        raise UsageError(f"record {batch.address[:12]} is a {batch.kind} record, not a batch: `cancel()` "
                         "cancels a batch or deletes its runs, nothing else (give a batch's id, uuid, ARN or @N)")
    if not batch.batch_id:
        raise UsageError(f"batch record {batch.address[:12]} was {batch.outcome}: there is no batch to {action}")
    body: dict[str, Any] = {"action": operation, "batchId": batch.batch_id}
    ledger.check_writable(f"{operation} of batch {batch.batch_id} was not asked, since what it asks could not "
                          "be recorded")  # what is asked is recorded, or nothing is asked
    try:
        answer = getattr(omics, method)(batchId=batch.batch_id)
        answer.pop("ResponseMetadata", None)
        body["answer"] = rec.jsonable(answer)
        status = None
    except Exception as exc:
        error = aws.error_from(exc, operation)
        body["error"] = error.message
        # only a modelled 4xx on the first try proves the service did nothing (aws.refusal); after
        # a 5xx, a throttle or a lost answer the batch may be cancelled (or its runs deleted)
        refused = aws.refusal(exc, omics.meta.service_model.operation_model(operation)) is not None
        body["outcome"] = "refused" if refused else "unknown"
        ledger.observe(batch.address, operation, body, status=None)
        if refused:
            error.observation = body
            raise error from None
        now = _status_after_unknown(ledger, batch, omics)
        failure = OperationError(f"{operation} of batch {batch.batch_id}: the outcome is unknown "
                                 f"({aws.describe_failure(exc)}); {now}")
        failure.observation = body
        raise failure from None
    ledger.observe(batch.address, operation, body, status=status)
    try:
        after = observe_batch(ledger, batch, omics)
    except RunlogError as exc:  # the action was accepted, and is recorded: said first, not hidden by this
        failure = OperationError(f"{operation} of batch {batch.batch_id} was accepted (recorded), but the GetBatch "
                                 f"after it failed ({exc.message}): a refresh of the batch records its status")
        failure.observation = body
        raise failure from None
    return {"record": batch.address, "batch_id": batch.batch_id, "action": operation, "status": after.get("status")}
