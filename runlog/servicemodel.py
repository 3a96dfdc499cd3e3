"""Constraint checks from botocore's service model: what the service validates and
botocore does not (enum values, patterns, maximum lengths and values)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

# The models write Java-style classes of Unicode categories: [\p{L}||\p{M}||\p{Z}||\p{S}||\p{N}||\p{P}]+
# (a run's name, a runSettingId, a batch name) is letters, marks, separators, symbols, numbers and
# punctuation (and `|`, which `||` writes in a Java class): every character but those of category
# C, "Other" — controls (Cc: C0, DEL, C1 such as \x9b and \x85), formats (Cf: bidi overrides such
# as \u202e, zero-width characters), surrogates (Cs), private use (Co) and unassigned (Cn).
# Python's re has no \p{..}: such a pattern is read here, as the service reads it, by each
# character's category (refused_character); every check of a text against the model goes through it.
_CLASS_PATTERN = re.compile(r"([A-Za-z]*)\[((?:\\p\{[A-Z]\}|\|\||\\[tnr])+)\]\+")
_ESCAPES = {"\\t": "\t", "\\n": "\n", "\\r": "\r"}
_EVERY_CATEGORY_BUT_OTHER = frozenset("LMZSNP")
_OTHER = {"Cc": "a control character", "Cf": "a format character", "Cs": "a surrogate",
          "Co": "a private-use character", "Cn": "an unassigned code point"}


@lru_cache(maxsize=8)
def service_model(service: str):
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


def model_of(raw: dict, service: str):
    """botocore's ServiceModel over a model already read as JSON (runlog.startrun.raw_model):
    its shapes without reading the model's file again."""
    from botocore.model import ServiceModel

    return ServiceModel(raw, service_name=service)


def loader_model(service: str) -> dict:
    """The service's model as JSON, through botocore's Loader (for installs where the model
    file cannot be found directly)."""
    from botocore.loaders import create_loader

    return create_loader().load_service_model(service, "service-2")


def skeleton(shape, *, member_names: bool = False) -> Any:
    """What `aws ... --generate-cli-skeleton` prints for a shape: the input's members with
    empty values, or (member_names) the output's with their names as values."""
    from botocore.utils import ArgumentGenerator

    return ArgumentGenerator(use_member_names=member_names).generate_skeleton(shape)


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


@lru_cache(maxsize=64)
def pattern_classes(pattern: str) -> tuple[str, frozenset[str], str] | None:
    """A pattern of \\p{..} classes (`PREFIX[\\p{L}||\\p{N}\\t]+`) as its literal prefix, the
    major Unicode categories it takes and the other characters it takes; None for any other pattern."""
    if "\\p{" not in pattern:
        return None
    found = _CLASS_PATTERN.fullmatch(pattern)
    if found is None:  # not a form runlog knows: only category C is refused
        return "", _EVERY_CATEGORY_BUT_OTHER, ""
    body = found.group(2)
    extra = "".join(char for escape, char in _ESCAPES.items() if escape in body) + ("|" if "||" in body else "")
    return found.group(1), frozenset(re.findall(r"\\p\{([A-Z])\}", body)), extra


def refused_character(text: str, categories: frozenset[str] = _EVERY_CATEGORY_BUT_OTHER,
                      extra: str = "") -> str | None:
    """The first character of `text` outside the major Unicode `categories` (the model's
    \\p{..} classes; by default every category but C, "Other") and not in `extra`, or None.
    Text str.isprintable() passes (no character of category C or Z but the space) is a quick
    yes when the categories take Z; otherwise each distinct character is looked at once."""
    if _EVERY_CATEGORY_BUT_OTHER <= categories and text.isprintable():
        return None
    from unicodedata import category

    refused = {char for char in set(text) if category(char)[0] not in categories and char not in extra}
    return next((char for char in text if char in refused), None) if refused else None


def pattern_problem(pattern: str, value: str) -> str | None:
    """What makes `value` not match the model's `pattern` (a message's end, after the value),
    or None when it matches. A \\p{..} class names the first character it refuses, its place
    and its Unicode category."""
    read = pattern_classes(pattern)
    if read is None:
        return None if _compiled(pattern).fullmatch(value) else f"does not match the pattern {pattern}"
    prefix, categories, extra = read
    rest = value[len(prefix):] if value.startswith(prefix) else None
    if not rest:
        return f"does not match the pattern {pattern}"
    char = refused_character(rest, categories, extra)
    if char is None:
        return None
    from unicodedata import category

    kind = category(char)
    what = f"{_OTHER[kind]}, " if kind in _OTHER else ""
    return (f"has {ascii(char)[1:-1]} at character {value.index(char) + 1} ({what}Unicode category {kind}), "
            f"which the model's pattern {pattern} refuses; remove it")


def pattern_matches(pattern: str, value: str) -> bool:
    """Whether `value` matches the model's `pattern` (read as pattern_problem reads it)."""
    return pattern_problem(pattern, value) is None


def constraint_errors(shape, value: Any, path: str) -> list[str]:
    """Messages for every constraint of `shape` that `value` breaks (types are botocore's job)."""
    errors: list[str] = []
    meta = shape.metadata
    kind = shape.type_name
    if kind == "string" and isinstance(value, str):
        enum = meta.get("enum") or getattr(shape, "enum", None)
        if enum and value not in enum:
            errors.append(f"{path}: {value!r} is not one of {', '.join(enum)}")
        if "min" in meta and len(value) < meta["min"]:
            errors.append(f"{path}: {value!r} is shorter than {meta['min']} characters")
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{path}: {len(value)} characters, at most {meta['max']} allowed")
        pattern = meta.get("pattern")
        problem = pattern_problem(pattern, value) if pattern and not enum else None
        if problem:
            errors.append(f"{path}: {value!r} {problem}")
    elif kind in ("integer", "long") and isinstance(value, int):
        if "min" in meta and value < meta["min"]:
            errors.append(f"{path}: {value} is less than the minimum {meta['min']}")
        if "max" in meta and value > meta["max"]:
            errors.append(f"{path}: {value} is more than the maximum {meta['max']}")
    elif kind == "structure" and isinstance(value, dict) and not meta.get("document"):
        for name, member in shape.members.items():
            if name in value:
                errors.extend(constraint_errors(member, value[name], f"{path}.{name}" if path else name))
    elif kind == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{path}: {len(value)} items, at most {meta['max']} allowed")
        for index, item in enumerate(value):
            errors.extend(constraint_errors(shape.member, item, f"{path}[{index}]"))
    elif kind == "map" and isinstance(value, dict):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{path}: {len(value)} entries, at most {meta['max']} allowed")
        for key, item in value.items():
            errors.extend(constraint_errors(shape.key, key, f"{path} key"))
            errors.extend(constraint_errors(shape.value, item, f"{path}[{key}]"))
    return errors

