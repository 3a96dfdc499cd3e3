"""The StartRun request: the aws CLI's `start-run` options, how they become a request,
and the checks made before anything is written or sent."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from runlog.config import parse_key_values
from runlog.errors import UsageError
from runlog.params import FILE_PREFIX, read_json_argument, read_text_argument

MAX_TAGS = 50
SERVICE = "omics"
OPERATION = "StartRun"

# What runlog adds to the model's own documentation of a member.
_NOTES = {
    "roleArn": "Default: role_arn in the config.",
    "outputUri": "Default: output_uri in the config.",
    "tags": "KEY=VALUE,KEY=VALUE, JSON or file://PATH; added to the config's tags.",
    "requestId": "Default: a new UUID (recorded before sending).",
    "parameters": "Inline JSON or file://PATH (the file's path and SHA-256 are recorded).",
}


@dataclass(frozen=True)
class Option:
    member: str  # StartRun member name
    flag: str  # aws CLI spelling
    kind: str  # the model's type: string | integer | long | boolean | float | double | timestamp |
    #            blob | document | structure | map | list
    help: str
    shape: str = ""  # the member's shape name in the model
    enum: tuple[str, ...] = ()
    required: bool = False

    @property
    def takes_json(self) -> bool:
        return self.kind in ("document", "structure", "map", "list")


def member_name(member: str) -> str:
    """How library messages name a StartRun member: as boto3's start_run keyword argument."""
    return member


def flag_for(member: str) -> str:
    """The aws CLI's spelling of a member (botocore's xform_name with '-'): workflowId ->
    --workflow-id, outputUriPrefixMode -> --output-uri-prefix-mode. No botocore import."""
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1-\2", member)
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1-\2", text)
    return "--" + text.lower()


def _model_path() -> Path | None:
    """botocore's omics model file, searched as botocore's Loader searches: AWS_DATA_PATH,
    ~/.aws/models, then botocore's own data; the newest API version, first path that has it."""
    import importlib.util
    import os

    roots = [Path(p).expanduser() for p in os.environ.get("AWS_DATA_PATH", "").split(os.pathsep) if p]
    roots.append(Path("~/.aws/models").expanduser())
    spec = importlib.util.find_spec("botocore")
    if spec and spec.submodule_search_locations:
        roots.append(Path(list(spec.submodule_search_locations)[0]) / "data")
    versions: dict[str, list[Path]] = {}
    for root in roots:
        service_dir = root / SERVICE
        if not service_dir.is_dir():
            continue
        for version in service_dir.iterdir():
            for name in ("service-2.json", "service-2.json.gz"):
                if (version / name).is_file():
                    versions.setdefault(version.name, []).append(version / name)
                    break
    if not versions:
        return None
    return versions[max(versions)][0]


# The model file raw_model() parsed, by path: botocore's loader in this process takes it from
# here instead of parsing the same file again (runlog.aws, parsed_model_file).
_parsed: dict[str, dict] = {}


def parsed_model_file(path: str) -> dict | None:
    """The omics model parsed from `path` in this process, if raw_model() read that very file."""
    return _parsed.get(path)


@lru_cache(maxsize=1)
def raw_model() -> dict:
    """The omics service model as botocore ships it (JSON). Read directly, so --help and
    option parsing do not pay for importing botocore; botocore's Loader is the fallback."""
    import gzip
    import json

    path = _model_path()
    if path is not None:
        data = path.read_bytes()
        model = json.loads(gzip.decompress(data) if path.suffix == ".gz" else data)
        _parsed[str(path)] = model
        return model
    from runlog.servicemodel import loader_model  # pragma: no cover - unusual installs

    return loader_model(SERVICE)


def shapes() -> dict:
    return raw_model()["shapes"]


def input_shape() -> dict:
    return shapes()[raw_model()["operations"][OPERATION]["input"]["shape"]]


def kind_of(shape_name: str) -> str:
    shape = shapes()[shape_name]
    return "document" if shape.get("document") else shape["type"]


def plain_text(html: str) -> str:
    """The model's HTML documentation as one line of text."""
    import html as html_lib

    text = re.sub(r"<[^>]+>", "", html or "")
    return re.sub(r"\s+", " ", html_lib.unescape(text)).strip()


def _short_help(html: str) -> str:
    """The first paragraph of the documentation, at most two sentences."""
    first = re.split(r"</p>", html or "", maxsplit=1)[0]
    text = plain_text(first)
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z])", text)
    return " ".join(sentences[:2])


@lru_cache(maxsize=1)
def options() -> tuple[Option, ...]:
    """One Option per StartRun member, in the model's order."""
    shape = input_shape()
    required = set(shape.get("required", ()))
    result = []
    for member, ref in shape["members"].items():
        target = shapes()[ref["shape"]]
        enum = tuple(target.get("enum", ()))
        parts = [_short_help(ref.get("documentation", ""))]
        if enum:
            parts.append(f"One of: {', '.join(enum)}.")
        if member in _NOTES:
            parts.append(_NOTES[member])
        result.append(Option(member=member, flag=flag_for(member), kind=kind_of(ref["shape"]),
                             help=" ".join(p for p in parts if p), shape=ref["shape"], enum=enum,
                             required=member in required))
    return tuple(result)


def members() -> dict[str, Option]:
    return {o.member: o for o in options()}


def __getattr__(name: str):
    # OPTIONS and MEMBERS are computed from the model on first use.
    if name == "OPTIONS":
        return options()
    if name == "MEMBERS":
        return members()
    raise AttributeError(name)


# How messages name a member: member_name (the library, boto3's keyword arguments) or
# flag_for (the command line, the aws CLI's options).
Spell = Callable[[str], str]


@dataclass
class StartRunRequest:
    """A StartRun request ready to send, with the record's `parameters` section (where the
    parameters came from) and how messages about it name its members."""

    request: dict[str, Any]
    parameters: dict[str, Any]  # the record's `parameters` section
    spell: Spell = field(default=member_name, repr=False, compare=False)


_KIND_WORDS = {
    "string": "a string", "integer": "a whole number", "long": "a whole number", "boolean": "true or false",
    "float": "a number", "double": "a number", "timestamp": "a timestamp", "blob": "a string",
    "document": "any JSON value", "structure": "a JSON object", "map": "a JSON object", "list": "a JSON list",
}


def describe_shape(shape_name: str) -> str:
    shape = shapes()[shape_name]
    kind = kind_of(shape_name)
    if kind == "map":
        return f"a map of {describe_shape(shape['key']['shape']).removeprefix('a ')}s to " \
               f"{describe_shape(shape['value']['shape']).removeprefix('a ')}s"
    if kind == "list":
        return f"a list of {describe_shape(shape['member']['shape']).removeprefix('a ')}s"
    return _KIND_WORDS.get(kind, kind)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def type_errors(shape_name: str, value: Any, path: str) -> list[str]:
    """Where `value` does not have the type the model gives `shape_name` (as botocore's
    parameter validation would say, before anything is written or sent)."""
    shape = shapes()[shape_name]
    kind = kind_of(shape_name)
    ok = {
        "string": lambda v: isinstance(v, str), "blob": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "long": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "double": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "timestamp": lambda v: isinstance(v, (str, int, float)) and not isinstance(v, bool),
        "document": lambda v: True,
        "structure": lambda v: isinstance(v, dict), "map": lambda v: isinstance(v, dict),
        "list": lambda v: isinstance(v, list),
    }[kind]
    if not ok(value):
        return [f"{path} must be {describe_shape(shape_name)}, got {_json_kind(value)}"]
    errors: list[str] = []
    if kind == "map":
        for key, item in value.items():
            errors += type_errors(shape["value"]["shape"], item, f"{path}[{json.dumps(key)}]")
    elif kind == "list":
        for index, item in enumerate(value):
            errors += type_errors(shape["member"]["shape"], item, f"{path}[{index}]")
    elif kind == "structure":
        known = shape.get("members", {})
        for key, item in value.items():
            if key not in known:
                errors.append(f"{path}.{key} is not a member of {shape_name} (valid: {', '.join(known)})")
            else:
                errors += type_errors(known[key]["shape"], item, f"{path}.{key}")
    return errors


def parse_map(value: str, option: str, shape_name: str, cwd: Path | None = None) -> dict:
    """A map option as the aws CLI reads it: KEY=VALUE,KEY=VALUE shorthand, JSON or file://."""
    text = value.strip()
    if text.startswith(("{", "[", FILE_PREFIX)):
        parsed, _ = read_json_argument(text, option, cwd)
    else:
        parsed = parse_key_values(text, option)
    problems = type_errors(shape_name, parsed, option)
    if problems:
        example = " (e.g. project=wgs,owner=alice)" if option.endswith("tags") else ""
        raise UsageError(f"{problems[0]}{example}")
    return parsed


def parse_flag(option: Option, raw: Any, cwd: Path | None = None, spell: Spell = member_name,
               hint: Callable[[Any], str] | None = None) -> tuple[Any, dict]:
    """One option's value as the aws CLI reads it, or a Python value as boto3 takes it (a dict
    of parameters or tags, a number, a bool), checked against the model's type. Text is read
    as the aws CLI reads it (JSON, KEY=VALUE shorthand, file://). Returns (value,
    {"argument", "file"?}): the argument as typed, or a Python value's JSON text. `hint(value)`:
    what to add to the error for a value of the wrong type (the likely mistake and its fix)."""
    if not isinstance(raw, str) or (option.kind in ("string", "blob") and not raw.startswith(FILE_PREFIX)):
        problems = type_errors(option.shape, raw, spell(option.member))
        if problems:
            raise UsageError(problems[0] + (hint(raw) if hint else ""))
        text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)
        return raw, {"argument": text}
    if option.kind == "map":
        return parse_map(raw, spell(option.member), option.shape, cwd), {"argument": raw}
    if option.takes_json:
        parsed, info = read_json_argument(raw, spell(option.member), cwd)
        problems = type_errors(option.shape, parsed, spell(option.member))
        if problems:
            raise UsageError(problems[0] + (hint(parsed) if hint else ""))
        return parsed, info
    if option.kind in ("string", "blob") and isinstance(raw, str) and raw.startswith(FILE_PREFIX):
        # the aws CLI reads file:// for any parameter: e.g. --session-policy file://policy.json
        text, info = read_text_argument(raw, spell(option.member), cwd)
        return text, info
    return raw, {"argument": raw}


def read_cli_input_json(value: str, cwd: Path | None = None, spell: Spell = member_name) -> tuple[dict, dict]:
    """--cli-input-json: every member of StartRun, types checked against the model. Like the
    aws CLI, values are taken as written: the empty strings --generate-cli-skeleton puts in
    must be filled in or deleted (the service refuses them). `spell` names the argument
    (spell("cliInputJson")) in messages."""
    base, info = read_json_argument(value, spell("cliInputJson"), cwd)
    where = spell("cliInputJson") + (f" {value}" if value.startswith(FILE_PREFIX) else "")
    if not isinstance(base, dict):
        raise UsageError(f"{where}: expected a JSON object of StartRun members, got {_json_kind(base)}")
    known = members()
    unknown = sorted(set(base) - set(known))
    if unknown:
        raise UsageError(f"{where}: unknown StartRun member(s) {', '.join(unknown)} (valid: {', '.join(known)})")
    empty = [m for m, v in base.items() if v == "" and known[m].kind == "string"]
    if empty:
        raise UsageError(f"{where}: {', '.join(empty)} {'is' if len(empty) == 1 else 'are'} \"\" (the "
                         "placeholders of the aws CLI's input skeleton): fill in or delete "
                         f"{'it' if len(empty) == 1 else 'them'}, as the aws CLI requires")
    if "parameters" in base and not isinstance(base["parameters"], dict):  # a document to the model: any JSON
        raise UsageError(f"{where}: parameters must be a JSON object mapping parameter names to values, got "
                         f"{_json_kind(base['parameters'])}")
    for member, item in base.items():
        problems = type_errors(known[member].shape, item, member)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise UsageError(f"{where}: {problems[0]}{more}")
    return base, info


def build_request(flags: dict[str, Any], *, cli_input_json: str | None = None,
                  defaults: dict[str, Any] | None = None, cwd: Path | None = None,
                  spell: Spell = member_name) -> StartRunRequest:
    """Merge --cli-input-json, config defaults and flags (flags win) into a StartRun request.

    `flags` maps member names to values (None = not given): the raw option text as the aws
    CLI reads it, or Python values as boto3's start_run takes them (parameters and tags as
    dicts). A dict of parameters is recorded as `inline`, with its JSON text as the argument.
    Unknown members are refused. `defaults` may hold roleArn, outputUri and tags from the
    configuration. `spell` names members in messages (flag_for: --role-arn; member_name: roleArn)."""
    request: dict[str, Any] = {}
    param_info: dict[str, Any] = {"source": "none", "argument": None}
    if cli_input_json is not None:
        base, info = read_cli_input_json(cli_input_json, cwd, spell)
        request.update(base)
        if "parameters" in base:
            # a file:// argument is recorded with its path and SHA-256, as --parameters file:// is
            param_info = {"source": "cli-input-json", "argument": None}
            if "file" in info:
                param_info.update(argument=cli_input_json, file=info["file"])
    defaults = defaults or {}
    for member in ("roleArn", "outputUri"):
        if member not in request and defaults.get(member):
            request[member] = defaults[member]
    tags = dict(defaults.get("tags") or {})
    tags.update(request.get("tags") or {})

    known = members()
    unknown = sorted(set(flags) - set(known))
    if unknown:
        raise UsageError(f"unknown StartRun member(s) {', '.join(unknown)} (valid: {', '.join(known)})")
    for member, raw in flags.items():
        if raw is None:
            continue
        option = known[member]
        value, info = parse_flag(option, raw, cwd, spell)
        if member == "parameters":
            request["parameters"] = value
            param_info = {"source": "file" if "file" in info else "inline", **info}
        elif member == "tags":
            tags.update(value)
        else:
            request[member] = value
    if tags:
        request["tags"] = tags
    request.setdefault("requestId", str(uuid.uuid4()))
    check_request(request, spell)
    return StartRunRequest(request=request, parameters=param_info, spell=spell)


def check_request(request: dict[str, Any], spell: Spell = member_name) -> None:
    """Refuse (UsageError) what the service would refuse, before anything is written or sent.
    `spell` names members in the message (flag_for on the command line)."""
    known = members()
    missing = [m for m in ("roleArn", "outputUri") if not request.get(m)]
    if missing:
        raise UsageError(f"missing {' and '.join(spell(m) for m in missing)} (give it, or set "
                         f"{' / '.join(_config_key(flag_for(m)) for m in missing)} in .runlog.toml)")
    if not request.get("workflowId") and not request.get("runId"):
        raise UsageError(f"give {spell('workflowId')} (the workflow to run) or {spell('runId')} (a run to "
                         "duplicate)")
    if "parameters" in request and not isinstance(request["parameters"], dict):
        raise UsageError(f"{spell('parameters')} must be a JSON object mapping parameter names to values")
    if "parameters" in request and request.get("parametersUri"):
        raise UsageError(f"give {spell('parameters')} or {spell('parametersUri')}, not both (HealthOmics takes "
                         "one of them)")
    for member, value in request.items():
        if member in known:
            problems = type_errors(known[member].shape, value, spell(member))
            if problems:
                raise UsageError(problems[0])
    if len(request.get("tags") or {}) > MAX_TAGS:
        raise UsageError(f"{spell('tags')}: {len(request['tags'])} tags, HealthOmics allows at most {MAX_TAGS}")


def check_against_model(request: dict[str, Any], service_model, spell: Spell = member_name) -> None:
    """Enum values, patterns, lengths and ranges from the service model (the client's own,
    so the model is loaded once), refused (UsageError) before anything is written or sent."""
    from runlog.servicemodel import constraint_errors

    shape = service_model.operation_model("StartRun").input_shape
    problems = constraint_errors(shape, request, "")
    if problems:
        first = problems[0]
        member = first.split(":", 1)[0].split(".")[0].split(" ")[0].split("[")[0]
        flag = spell(member) if member in members() else member
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise UsageError(f"{flag}: {first.split(': ', 1)[1]}{more}")


def _config_key(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


DOCS_BEGIN = "<!-- options generated from botocore's model: python -m runlog.startrun docs/submit.md -->"
DOCS_END = "<!-- end of generated options -->"


def options_markdown() -> str:
    """The table of submit's StartRun options, as docs/submit.md shows it."""
    kinds = {"document": "JSON or file://", "structure": "JSON or file://", "list": "JSON or file://",
             "map": "KEY=VALUE,… or JSON or file://", "boolean": "flag (--no-… for false)",
             "integer": "integer", "long": "integer", "string": "text (or file://)"}
    lines = ["| option | StartRun member | takes | from the model's documentation |", "|---|---|---|---|"]
    for option in options():
        flag = f"`{option.flag}` / `--no-{option.flag[2:]}`" if option.kind == "boolean" else f"`{option.flag}`"
        required = " (required)" if option.required and option.member != "requestId" else ""
        text = option.help.replace("|", "\\|")
        lines.append(f"| {flag} | `{option.member}`{required} | {kinds.get(option.kind, option.kind)} | {text} |")
    return "\n".join(lines)


def _rewrite_docs(path: str) -> None:
    text = Path(path).read_text(encoding="utf-8")
    start, end = text.index(DOCS_BEGIN) + len(DOCS_BEGIN), text.index(DOCS_END)
    Path(path).write_text(text[:start] + "\n" + options_markdown() + "\n" + text[end:], encoding="utf-8")


if __name__ == "__main__":
    import sys

    _rewrite_docs(sys.argv[1] if len(sys.argv) > 1 else "docs/submit.md")
